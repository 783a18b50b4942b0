"""The same fakedaq run in 5 s and in 21 s DAQ chunks gives (nearly) the same events.

Chunk boundaries clip peaklets and events, which strax's lineage does not track; the differences
must be rare and lie within one event window of a DAQ chunk boundary.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.daemons.chain_run import ProcessedRun, process_run

EVENT_WINDOW_NS = 250_000 + int(148.6515 / 6.75e-5) + 250_000


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mongo_uri: str) -> dict[int, ProcessedRun]:
    result = {}
    for number, chunk_s in ((51, 5.0), (52, 21.0)):
        result[int(chunk_s)] = process_run(
            tmp_path_factory.mktemp(f"chunks{int(chunk_s)}"),
            mongo_uri,
            number,
            seed=51,
            duration_s=30,
            rate_mbs=25,
            chunk_length_s=chunk_s,
            with_straxen=False,
        )
    return result


def _relative(run: ProcessedRun) -> tuple[set[tuple[int, ...]], np.ndarray, int]:
    """Events as (time, endtime, main S1 index, main S2 index) from the run start; boundaries."""
    bounds = run.chunk_bounds("raw_records")
    t0 = bounds[0][0]
    events = run.load("event_basics")
    keys = {
        (int(e["time"]) - t0, int(e["endtime"]) - t0, int(e["s1_index"]), int(e["s2_index"]))
        for e in events
    }
    return keys, np.array([end for _, end in bounds[:-1]]) - t0, len(events)


def test_5s_and_21s_chunks_give_the_same_events(runs: dict[int, ProcessedRun]) -> None:
    short, short_bounds, n_short = _relative(runs[5])
    long, long_bounds, n_long = _relative(runs[21])
    assert len(short_bounds) >= 5 and len(long_bounds) >= 1
    assert min(n_short, n_long) > 1000
    same = len(short & long) / max(n_short, n_long)
    boundaries = np.concatenate([short_bounds, long_bounds])
    differing = sorted(short ^ long)
    far = [
        e
        for e in differing
        if np.min(np.minimum(np.abs(boundaries - e[0]), np.abs(boundaries - e[1])))
        > EVENT_WINDOW_NS
    ]
    print(f"identical events: {same:.4%} of {max(n_short, n_long)}; differing: {differing}")
    assert same >= 0.995
    # Every difference is an event cut (or joined) at a DAQ chunk boundary.
    assert far == []
