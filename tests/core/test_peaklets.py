"""peaklets and lone_hits equal straxen 4.0.0's Peaklets plugin, field for field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.chunk import Chunk
from straxd.core.classification import PeakletClassification, classify
from straxd.core.dtypes import merged_s2s_dtype, peaks_dtype
from straxd.core.errors import ConfigInvalid
from straxd.core.merged_s2s import MergedS2s, merge_s2s
from straxd.core.peak_basics import make_peak_basics, make_peaks
from straxd.core.peaklets_plugin import Peaklets
from straxd.core.pipeline_inputs import merge_chunks
from straxd.core.records import pulse_processing
from straxd.core.rows import sort_by_time
from straxd.core.synth import DetectorModel, Simulator
from tests.oracle import assert_struct_equal, run_straxen_script

TO_PE = DetectorModel().to_pe()


@pytest.fixture(scope="module")
def chunks(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[np.ndarray], list[list[int]]]:
    """Records of three simulated 1 s chunks (one at a pile-up rate), saved for straxen."""
    folder = tmp_path_factory.mktemp("records")
    records, bounds = [], []
    for i, (seed, rate, seconds) in enumerate([(8, 60, 1.0), (9, 60, 1.0), (10, 3000, 0.1)]):
        start, end = i * 10**9, i * 10**9 + int(seconds * 1e9)
        raw = Simulator(seed, rate).window(i, start, end).records
        raw = sort_by_time(raw[raw["channel"] < 494])
        raw = raw[raw["time"] >= start]
        r = pulse_processing(raw, start, end, hit_min_amplitude=np.full(494, 15.0), n_tpc_pmts=494)[
            "records"
        ]
        np.save(folder / f"records_{i}.npy", r)
        records.append(r)
        bounds.append([start, end])
    (folder / "bounds.json").write_text(json.dumps(bounds))
    return folder, records, bounds


class TestAgainstStraxen:
    def test_peaklets_and_lone_hits_equal(
        self, tmp_path: Path, chunks: tuple[Path, list[np.ndarray], list[list[int]]]
    ) -> None:
        """Every field of peaklets and lone_hits, including split, saturation-corrected peaks."""
        folder, records, bounds = chunks
        options = {"to_pe": TO_PE.tolist(), "hit_min_amplitude": 15}
        run_straxen_script("straxen_peaklets.py", str(folder), str(tmp_path), json.dumps(options))
        plugin = Peaklets({"gain_model": TO_PE.tolist(), "hit_min_amplitude": 15})
        saturated = split = 0
        kinds: set[int] = set()
        n_merged = 0
        for i, r in enumerate(records):
            before = r.copy()
            ours = plugin.compute(i, *bounds[i], records=r)
            np.testing.assert_array_equal(r, before)  # input chunk untouched
            for name in ("peaklets", "lone_hits"):
                assert_struct_equal(ours[name], np.load(tmp_path / f"{name}_{i}.npy"))
            types = classify(ours["peaklets"], PeakletClassification().config)
            assert_struct_equal(types, np.load(tmp_path / f"peaklet_classification_{i}.npy"))
            kinds |= set(types["type"].tolist())
            inputs = merge_chunks(
                [
                    Chunk("peaklets", "peaklets", "000001", *bounds[i], ours["peaklets"]),
                    Chunk("peaklet_classification", "peaklets", "000001", *bounds[i], types),
                ]
            ).data
            merged = merge_s2s(
                inputs,
                ours["lone_hits"],
                MergedS2s().config | {"gain_model": None},
                TO_PE,
                merged_s2s_dtype(),
            )
            assert_struct_equal(merged, np.load(tmp_path / f"merged_s2s_{i}.npy"))
            n_merged += len(merged)
            peaks = make_peaks(inputs, merged, True, peaks_dtype())
            assert_struct_equal(peaks, np.load(tmp_path / f"peaks_{i}.npy"))
            assert_struct_equal(
                make_peak_basics(peaks, 253), np.load(tmp_path / f"peak_basics_{i}.npy")
            )
            saturated += int((ours["peaklets"]["n_saturated_channels"] > 0).sum())
            split += int((ours["peaklets"]["max_gap"] == -1).sum())
        assert saturated > 0  # the saturation correction was exercised
        assert split > 0  # and so was splitting
        assert kinds == {0, 1, 2}
        assert n_merged > 0


class TestOptions:
    def test_limits_refused(self) -> None:
        """straxen's limits on options are enforced with clear errors."""
        with pytest.raises(ConfigInvalid, match="peak_min_pmts"):
            Peaklets({"peak_min_pmts": 3})
        with pytest.raises(ConfigInvalid, match="1000 ns"):
            Peaklets({"peaklet_gap_threshold": 2000})
        with pytest.raises(ConfigInvalid, match="gain_model: expected 494 values"):
            Peaklets({"gain_model": [1.0, 2.0]})


def _hit_features_reference(
    containers: np.ndarray, max_time: np.ndarray, channel: np.ndarray, n_peaks: int
) -> tuple[np.ndarray, ...]:
    """straxen's loop: each peak's hits sorted (stably) by maximum, gaps and end channels."""
    max_diff, min_diff = np.full(n_peaks, -1), np.full(n_peaks, -1)
    first, last = np.full(n_peaks, -1), np.full(n_peaks, -1)
    for p_i in range(n_peaks):
        members = np.flatnonzero(containers == p_i)
        if not len(members):
            continue
        ordered = members[np.argsort(max_time[members], kind="mergesort")]
        first[p_i], last[p_i] = channel[ordered[0]], channel[ordered[-1]]
        if len(ordered) > 1:
            diffs = np.diff(max_time[ordered])
            max_diff[p_i], min_diff[p_i] = diffs.max(), diffs.min()
    return max_diff, min_diff, first, last


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(-1, 5), st.integers(0, 40), st.integers(0, 9)), max_size=80)
)
def test_hit_features_equal_per_peak_sorting(rows: list[tuple[int, int, int]]) -> None:
    """One pass in global maximum order equals sorting each peak's hits, ties and all."""
    from straxd.core.peaklets import _hit_features

    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    containers = table[:, 0].astype(np.int32)
    max_time, channel = table[:, 1].copy(), table[:, 2].copy()
    by_max_time = np.argsort(max_time, kind="mergesort")
    ours = _hit_features(containers, max_time, channel, by_max_time, 6, -1)
    for a, b in zip(ours, _hit_features_reference(containers, max_time, channel, 6), strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 3000),  # time
            st.integers(0, 3),  # channel
            st.integers(-200, 200),  # left
            st.integers(-200, 200),  # left_integration
            st.integers(-32768, 32767),  # right_integration
        ),
        max_size=60,
    ),
    dt=st.sampled_from([1, 10, 400]),
)
def test_hitlets_in_place_equal_numpy(rows: list[tuple[int, ...]], dt: int) -> None:
    """Widening in place (int16 arithmetic wrapping as numpy's) and re-sorting equals the copy."""
    from straxd.core.dtypes import HIT_DTYPE
    from straxd.core.peaklets import hitlets_of

    hits = np.zeros(len(rows), dtype=HIT_DTYPE)
    for name, column in zip(
        ("time", "channel", "left", "left_integration", "right_integration"),
        np.array(rows, dtype=np.int64).reshape(-1, 5).T,
        strict=True,
    ):
        hits[name] = column
    hits["dt"], hits["area"] = dt, np.arange(len(hits))
    hits = sort_by_time(hits)
    expected = hits.copy()
    expected["time"] -= (expected["left"] - expected["left_integration"]) * expected["dt"]
    expected["length"] = expected["right_integration"] - expected["left_integration"]
    expected = sort_by_time(expected)
    assert hitlets_of(hits.copy()).tobytes() == expected.tobytes()
    assert hitlets_of(hits, copy=False).tobytes() == expected.tobytes()
