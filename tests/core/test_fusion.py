"""raw_records -> peaklets in pieces: the same peaklets, lone_hits and pulse_counts as whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.chunk import Chunk, endtime
from straxd.core.dtypes import raw_record_dtype
from straxd.core.filestore import FileStore
from straxd.core.fusion import RecordsToPeaklets, quiet_pieces
from straxd.core.peaklets_plugin import Peaklets
from straxd.core.pipeline import Pipeline
from straxd.core.plugin import Registry, RunInPool, SourcePlugin
from straxd.core.pulse import baselined_records
from straxd.core.pulse_counts import NO_FOLLOWING, PulseCounter
from straxd.core.records import PulseProcessing
from straxd.core.rows import sort_by_time
from straxd.core.synth import DetectorModel, Simulator
from tests.oracle import assert_struct_equal

TO_PE = DetectorModel().to_pe()
RUN = "000003"


def simulated_raw(seed: int, rate_hz: float, seconds: float, offset_ns: int = 0) -> np.ndarray:
    """Time-sorted TPC raw_records of one simulated window."""
    start, end = offset_ns, offset_ns + int(seconds * 1e9)
    raw = Simulator(seed, rate_hz).window(seed, start, end).records
    raw = sort_by_time(raw[raw["channel"] < 494])
    return raw[(raw["time"] >= start) & (endtime(raw) <= end)]


@pytest.fixture(scope="module")
def windows() -> list[tuple[np.ndarray, int, int]]:
    """A quiet, a busy (pile-up) and a medium window, with saturated peaks in each."""
    out = []
    for seed, rate_hz, seconds in [(8, 60, 1.0), (10, 3000, 0.1), (11, 200, 0.5)]:
        out.append((simulated_raw(seed, rate_hz, seconds), 0, int(seconds * 1e9)))
    return out


class TestRecordsToPeaklets:
    @pytest.mark.parametrize(
        ("pulse_thresholds", "peaklet_thresholds", "shared"),
        [
            (15, 15, True),
            (15, 20, False),  # peaklets' own thresholds: its hits are looked for again
            ([0, *[15] * 493], [0, *[15] * 493], False),  # zeroed samples reach threshold 0
        ],
    )
    def test_pieces_give_the_whole_chunk_result(
        self,
        windows: list[tuple[np.ndarray, int, int]],
        pulse_thresholds: Any,
        peaklet_thresholds: Any,
        shared: bool,
    ) -> None:
        """Any piece size, hits kept from the cut or not: peaklets, lone_hits and pulse_counts
        equal the two plugins' output."""
        pulse = PulseProcessing({"hit_min_amplitude": pulse_thresholds})
        peaklets = Peaklets({"gain_model": TO_PE.tolist(), "hit_min_amplitude": peaklet_thresholds})
        assert RecordsToPeaklets(pulse, peaklets).shares_hits == shared
        redone = pieces_seen = 0
        for raw, start, end in windows:
            whole = pulse.compute(0, start, end, raw_records=raw)
            expected = peaklets.compute(0, start, end, records=whole["records"])
            assert (expected["peaklets"]["n_saturated_channels"] > 0).any()
            for piece_rows in (500, 3000, len(raw)):
                fused = RecordsToPeaklets(pulse, peaklets)
                fused.piece_rows = piece_rows
                before = raw.copy()
                got = fused.compute(0, start, end, raw_records=raw)
                np.testing.assert_array_equal(raw, before)  # the input is not touched
                for name in ("peaklets", "lone_hits"):
                    assert_struct_equal(got[name], expected[name])
                assert got["pulse_counts"].tobytes() == whole["pulse_counts"].tobytes()
                assert len(got["veto_regions"]) == 0
                redone += fused.pieces_redone
                pieces_seen += len(
                    quiet_pieces(raw["time"], endtime(raw), start, end, fused.quiet_ns, piece_rows)
                )
        empty = RecordsToPeaklets(pulse, peaklets).compute(0, 0, 10, raw_records=raw[:0])
        assert [len(empty[t]) for t in RecordsToPeaklets.provides] == [0, 0, 0, 0]
        # Pieces were cut, and some had to be redone with the chunk's saturation buffer.
        assert pieces_seen > 3 * len(windows)
        assert redone > 0


@st.composite
def intervals(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Sorted starts with ends of any length (some reaching far past later starts)."""
    n = draw(st.integers(1, 300))
    steps = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n))
    times = 1000 + np.cumsum(np.array(steps, dtype=np.int64))
    return times, times + np.array(lengths, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(data=intervals(), quiet_ns=st.integers(1, 3000), piece_rows=st.integers(1, 50))
def test_pieces_are_cut_only_in_quiet_gaps(
    data: tuple[np.ndarray, np.ndarray], quiet_ns: int, piece_rows: int
) -> None:
    """Pieces cover every row in order, and each cut lies quiet_ns/2 from every row's span."""
    times, ends = data
    start, end = 0, int(ends.max()) + 10
    pieces = quiet_pieces(times, ends, start, end, quiet_ns, piece_rows)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(times)
    assert pieces[0][2] == start and pieces[-1][3] == end
    for (_, stop, _, t1), (first, _, t0, _) in pairwise(pieces):
        assert stop == first and t1 == t0
        assert ends[:stop].max() + quiet_ns // 2 <= t1 <= times[first] - quiet_ns // 2
    allowed = np.flatnonzero(times[1:] - np.maximum.accumulate(ends)[:-1] >= quiet_ns) + 1
    if len(pieces) == 1 and len(times) > piece_rows:
        # Left whole only when no cut is allowed anywhere.
        assert len(allowed) == 0


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 60_668), max_size=8))
def test_pulse_counts_over_any_pieces(cuts: list[int]) -> None:
    """Counting records in time-ordered pieces gives the whole chunk's row, bit for bit."""
    records = _records()
    bounds = [0, *sorted(set(cuts)), len(records)]
    counter = PulseCounter(494)
    for a, b in pairwise(bounds):
        counter.add(records[a:b], int(records["time"][b]) if b < len(records) else NO_FOLLOWING)
    whole = PulseCounter(494)
    whole.add(records)
    assert counter.result(0, 1).tobytes() == whole.result(0, 1).tobytes()


_RECORDS: list[np.ndarray] = []


def _records() -> np.ndarray:
    if not _RECORDS:
        _RECORDS.append(baselined_records(simulated_raw(8, 60, 1.0)))
    return _RECORDS[0]


class _Raw(SourcePlugin):
    """Two simulated 0.5 s chunks of raw_records."""

    provides = ("raw_records",)
    data_kind = "raw_records"
    rechunk_on_save = False

    def infer_dtype(self) -> np.dtype[Any]:
        return raw_record_dtype()

    async def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, Chunk]]:
        step = 500_000_000
        for i in range(2):
            raw = simulated_raw(20 + i, 200, 0.5, offset_ns=i * step)
            yield {"raw_records": Chunk("raw_records", "raw_records", RUN, *_span(i, step), raw)}


def _span(i: int, step: int) -> tuple[int, int]:
    return i * step, (i + 1) * step


async def _peaklets(folder: Path, targets: list[str]) -> tuple[Pipeline, np.ndarray]:
    plugins = [_Raw(), PulseProcessing(), Peaklets({"gain_model": TO_PE.tolist()})]
    registry = Registry(plugins)
    store = FileStore(folder, RUN, fsync=False)
    with ThreadPoolExecutor(2) as pool:
        pipeline = Pipeline(registry, store, RUN, targets, pool)
        await pipeline.run()
    stored = strax.io.dry_load_files(
        str(store.folder("peaklets", registry.lineage_hash("peaklets")))
    )
    return pipeline, stored


class TestInPipeline:
    async def test_fused_only_where_records_are_internal(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Target peaklets: one fused step; records also a target: the two plugins. Same data."""
        monkeypatch.setattr("straxd.core.fusion.PIECE_ROWS", 2000)
        fused, ours = await _peaklets(tmp_path / "a", ["peaklets"])
        separate, theirs = await _peaklets(tmp_path / "b", ["peaklets", "records"])
        assert [type(p) for p in fused.plan.compute] == [_Raw, RecordsToPeaklets]
        assert RecordsToPeaklets not in {type(p) for p in separate.plan.compute}
        assert "records" not in fused.report.types and "records" in separate.report.types
        assert len(ours) > 100
        assert_struct_equal(ours, theirs)
        for data_type in ("pulse_counts", "lone_hits", "peaklets"):
            assert fused.report.types[data_type].saved
            assert fused.report.types[data_type].rows == separate.report.types[data_type].rows
