"""peak_proximity, events and event_basics against straxen 4.0.0 on generated peaks; bad options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.dtypes import (
    EVENTS_DTYPE,
    PEAK_BASICS_DTYPE,
    PEAK_PROXIMITY_DTYPE,
    merged_dtype,
)
from straxd.core.errors import ConfigInvalid
from straxd.core.event_basics import EventBasics, event_basics
from straxd.core.event_info import EventInfo
from straxd.core.events import Events, find_peak_groups
from straxd.core.online_monitor import OnlinePeakMonitor, apply_selection, parse_selection
from straxd.core.proximity import PeakProximity, peak_positions_dtype, peak_proximity
from tests.oracle import assert_struct_equal, run_straxen_script

PEAKS_DTYPE = merged_dtype([PEAK_BASICS_DTYPE, peak_positions_dtype(), PEAK_PROXIMITY_DTYPE])
T0_NS = 1_700_000_000_000_000_000


def generated_peaks(seed: int) -> tuple[np.ndarray, int, int]:
    """Time-ordered peaks of all types over 40 ms (some overlapping, some in tight groups)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 90))
    times = np.sort(rng.integers(0, 40_000_000, n)) + T0_NS
    if n > 6:  # a few peaks close together, as S1s and S2s of one interaction
        times[3:6] = times[2] + np.sort(rng.integers(0, 5_000, 3))
        times = np.sort(times)
    p = np.zeros(n, dtype=PEAKS_DTYPE)
    p["time"] = times
    p["dt"] = rng.choice([10, 20, 50, 100], n)
    p["length"] = rng.integers(1, 200, n)
    p["endtime"] = p["time"] + p["dt"] * p["length"]
    p["center_time"] = p["time"] + (rng.uniform(0, 1, n) * (p["endtime"] - p["time"])).astype(int)
    p["type"] = rng.choice([0, 1, 2, 3], n, p=[0.1, 0.35, 0.5, 0.05])
    p["area"] = np.exp(rng.uniform(0, np.log(1e5), n)).astype(np.float32)
    p["area"][rng.uniform(size=n) < 0.05] = 0
    for name, high in (("tight_coincidence", 8), ("n_channels", 400), ("top_n_channels", 200)):
        p[name] = rng.integers(0, high, n)
    for name in ("n_hits", "max_pmt", "max_diff", "min_diff", "first_channel", "last_channel"):
        p[name] = rng.integers(0, 400, n)
    for name in ("median_time", "max_pmt_area", "range_50p_area", "range_90p_area", "rise_time"):
        p[name] = rng.uniform(0, 1000, n)
    p["area_fraction_top"] = rng.uniform(0, 1, n)
    p["merged"] = rng.uniform(size=n) < 0.3
    for name in ("x", "y", "x_cnf", "y_cnf"):
        p[name] = np.nan
    return p, T0_NS - 1_000_000, int(p["endtime"].max()) + 1_000_000


def ours(peaks: np.ndarray, start: int, end: int) -> dict[str, np.ndarray]:
    proximity = peak_proximity(peaks, PeakProximity().config)
    peaks = peaks.copy()
    for name in ("proximity_score", "n_competing", "n_competing_left"):
        peaks[name] = proximity[name]
    events = Events().compute(0, start, end, peaks=peaks)
    return {
        "peak_proximity": proximity,
        "events": events,
        "event_basics": event_basics(events, peaks, EventBasics().config),
    }


class TestAgainstStraxen:
    def test_generated_peaks_equal_straxen(self, tmp_path: Path) -> None:
        """Thirty generated inputs through straxen's three plugins in one call, field by field."""
        seeds: list[int] = [1, 2, 3]

        @settings(max_examples=27, deadline=None, database=None)
        @given(seed=st.integers(0, 2**32 - 1))
        def collect(seed: int) -> None:
            seeds.append(seed)

        collect()
        folder = tmp_path / "in"
        folder.mkdir()
        inputs = [generated_peaks(seed) for seed in seeds]
        for i, (peaks, _, _) in enumerate(inputs):
            np.save(folder / f"peaks_{i}.npy", peaks)
        bounds = [[start, end] for _, start, end in inputs]
        (folder / "bounds.json").write_text(json.dumps(bounds))
        run_straxen_script("straxen_events.py", str(folder), str(tmp_path / "out"))
        n_events = n_with_pair = 0
        for i, (peaks, start, end) in enumerate(inputs):
            mine = ours(peaks, start, end)
            for name, data in mine.items():
                theirs = np.load(tmp_path / "out" / f"{name}_{i}.npy")
                assert_struct_equal(data, theirs.astype(data.dtype))
            n_events += len(mine["events"])
            n_with_pair += int((~np.isnan(mine["event_basics"]["drift_time"])).sum())
        # The inputs exercise what matters: many events, many with an S1-S2 pair.
        assert n_events > 50 and n_with_pair > 20


class TestEvents:
    def test_groups_join_touching_windows(self) -> None:
        peaks = np.zeros(3, dtype=PEAKS_DTYPE)
        peaks["time"] = [1000, 1500, 10_000]
        peaks["endtime"] = peaks["time"] + 100
        t0, t1 = find_peak_groups(peaks, 1001, left_extension=200, right_extension=300)
        assert t0.tolist() == [800, 9800]
        assert t1.tolist() == [1900, 10_400]

    def test_event_windows_are_clipped_to_the_chunk(self) -> None:
        peaks = np.zeros(1, dtype=PEAKS_DTYPE)
        peaks["time"], peaks["endtime"] = 5_000_000, 5_000_500
        peaks["type"], peaks["area"] = 2, 1000
        events = Events().compute(0, 4_000_000, 6_000_000, peaks=peaks)
        assert events["time"].tolist() == [4_000_000]
        assert events["endtime"].tolist() == [5_250_500]

    def test_bad_options_refused(self) -> None:
        with pytest.raises(ConfigInvalid, match="s1_min_coincidence"):
            Events({"s1_min_coincidence": 3, "event_s1_min_coincidence": 2})
        with pytest.raises(ConfigInvalid, match="electron_drift_velocity"):
            Events({"electron_drift_velocity": 0})
        peaks = np.zeros(1, dtype=PEAKS_DTYPE)
        with pytest.raises(ConfigInvalid, match="trigger_feature 'nonsense'"):
            Events({"trigger_feature": "nonsense"}).compute(0, 0, 10, peaks=peaks)
        with pytest.raises(ConfigInvalid, match="three numbers"):
            PeakProximity({"proximity_exponents": (1.0, -1.0)})
        for bad in (0, -1.0, "16", True):
            with pytest.raises(ConfigInvalid, match="positive number"):
                EventInfo({"g2": bad})


class TestEventBasics:
    def test_s1_just_before_the_s2_at_epoch_times(self) -> None:
        """Times since the epoch compared as integers: 70 ns apart is before, not equal."""
        peaks = np.zeros(2, dtype=PEAKS_DTYPE)
        peaks["time"] = [T0_NS + 130, T0_NS + 200]  # equal once rounded to float64
        peaks["endtime"] = peaks["time"] + 50
        peaks["center_time"] = peaks["time"] + 20
        peaks["type"], peaks["area"], peaks["tight_coincidence"] = [1, 2], [50, 1000], [3, 3]
        events = np.zeros(1, dtype=EVENTS_DTYPE)
        events["time"], events["endtime"] = T0_NS, T0_NS + 1000
        basics = event_basics(events, peaks, EventBasics().config)
        assert basics["s1_index"].tolist() == [0] and basics["s2_index"].tolist() == [1]
        assert basics["drift_time"].tolist() == [70.0]


class TestOnlineMonitor:
    def test_selection_terms(self) -> None:
        data = np.zeros(4, dtype=[("area", np.float32), ("channel", np.int16)])
        data["area"] = [10, 60, 200, 300]
        selected = apply_selection(data, parse_selection("(area >= 50) & (area <= 250)"))
        assert selected["area"].tolist() == [60, 200]
        assert len(apply_selection(data, parse_selection(""))) == 4

    @pytest.mark.parametrize("text", ["area >> 3", "(area >= x)", "import os", "(area >= 1) |"])
    def test_unreadable_selection_refused(self, text: str) -> None:
        with pytest.raises(ConfigInvalid, match="cannot read selection"):
            OnlinePeakMonitor({"lone_hits_cut_string": text})

    def test_unknown_field_refused(self) -> None:
        data = np.zeros(1, dtype=[("area", np.float32)])
        with pytest.raises(ConfigInvalid, match="'height'"):
            apply_selection(data, parse_selection("height > 3"))
