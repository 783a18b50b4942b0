"""Peak building against strax 2.2.3: find_peaks, containment, hit integration bounds."""

from __future__ import annotations

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core import peaks, pulse
from straxd.core.dtypes import peak_dtype
from straxd.core.hits import find_hits
from straxd.core.records import pulse_processing
from straxd.core.rows import sort_by_time
from straxd.core.synth import DetectorModel, Simulator
from tests.oracle import assert_struct_equal
from tests.strategies import TIME_DT_DTYPE, TIME_END_DTYPE, interval_arrays, pulses_hitlets_peaks

TO_PE = DetectorModel().to_pe()


def _records_and_hits(
    seed: int, seconds: float = 0.2, rate_hz: float = 300
) -> tuple[np.ndarray, np.ndarray]:
    """Processed records of a simulated window and their time-sorted hits."""
    raw = Simulator(seed, rate_hz).window(0, 0, int(seconds * 1e9)).records
    raw = sort_by_time(raw[raw["channel"] < 494])
    records = pulse_processing(
        raw, 0, int(seconds * 1e9), hit_min_amplitude=np.full(494, 15.0), n_tpc_pmts=494
    )["records"]
    hits = sort_by_time(find_hits(records, np.full(494, 15.0)))
    return records, hits


@pytest.fixture(scope="module", params=[1, 2, 3])
def data(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    return _records_and_hits(request.param)


class TestFindPeaks:
    @pytest.mark.parametrize(
        ("gap", "left", "right", "max_duration"),
        [(700, 30, 200, 10_000_000), (300, 20, 150, 10_000_000), (700, 30, 200, 5000)],
    )
    def test_equal_to_strax(
        self,
        data: tuple[np.ndarray, np.ndarray],
        gap: int,
        left: int,
        right: int,
        max_duration: int,
    ) -> None:
        """Every field of every peak (float32 sums included) equals strax.find_peaks."""
        _, hits = data
        dtype = peak_dtype(494, store_data_top=True, store_data_start=True)
        ours = peaks.find_peaks(hits, TO_PE, gap, left, right, 0, 2, max_duration, dtype)
        theirs = strax.find_peaks(
            hits,
            TO_PE,
            gap_threshold=gap,
            left_extension=left,
            right_extension=right,
            min_channels=2,
            max_duration=max_duration,
            result_dtype=dtype,
        )
        assert len(ours) > 10
        assert_struct_equal(ours, theirs)

    @pytest.mark.parametrize(("first", "most"), [(3, 3), (1, 5)])
    def test_batches_join_seamlessly(
        self,
        data: tuple[np.ndarray, np.ndarray],
        monkeypatch: pytest.MonkeyPatch,
        first: int,
        most: int,
    ) -> None:
        """With tiny output batches, fixed or growing, the peaks are those of one batch."""
        _, hits = data
        whole = peaks.find_peaks(hits, TO_PE, 700, 30, 200)
        assert len(whole) > 2 * most
        monkeypatch.setattr(peaks, "_FIRST_PEAK_BATCH", first)
        monkeypatch.setattr(peaks, "_PEAK_BATCH", most)
        assert_struct_equal(peaks.find_peaks(hits, TO_PE, 700, 30, 200), whole)


class TestContainmentAndBounds:
    def test_fully_contained_in(self, data: tuple[np.ndarray, np.ndarray]) -> None:
        """Container index of each hit equals strax's."""
        _, hits = data
        found = peaks.find_peaks(hits, TO_PE, 700, 30, 200)
        np.testing.assert_array_equal(
            peaks.fully_contained_in(hits, found), strax.fully_contained_in(hits, found)
        )

    @pytest.mark.parametrize("beyond", [False, True])
    def test_integration_bounds_and_lone_hits(
        self, data: tuple[np.ndarray, np.ndarray], beyond: bool
    ) -> None:
        """Integration bounds (and lone-hit areas) equal strax's."""
        records, hits = data
        found = peaks.find_peaks(hits, TO_PE, 700, 30, 200)
        lone = peaks.fully_contained_in(hits, found) == -1
        ours, theirs = hits[lone].copy(), hits[lone].copy()
        if beyond:
            peaks.find_hit_integration_bounds(ours, found, records, (30, 200), 494, True)
            strax.find_hit_integration_bounds(theirs, found, records, (30, 200), 494, True)
        else:
            peaks.integrate_lone_hits(ours, records, found, (30, 200), 494)
            strax.integrate_lone_hits(theirs, records, found, (30, 200), 494)
        assert_struct_equal(ours, theirs)

    def test_clip(self) -> None:
        """Peaks are clipped into the chunk as straxen clips peaklets."""
        p = np.zeros(2, peak_dtype(494))
        p["time"], p["length"], p["dt"] = [5, 90], [20, 20], 10
        peaks.clip_peak_times(p, 10, 200)
        assert p["time"].tolist() == [10, 90]
        assert p["length"].tolist() == [19, 11]  # both now end by 200


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 20_000), min_size=1, max_size=60),
    channels=st.lists(st.integers(0, 7), min_size=60, max_size=60),
    gap=st.integers(300, 2000),
)
def test_find_peaks_generated_hits(times: list[int], channels: list[int], gap: int) -> None:
    """Generated hit patterns (overlapping, same channel, long chains) peak as in strax."""
    hits = np.zeros(len(times), strax.hit_dtype)
    hits["time"] = np.sort(np.array(times)) * 10
    hits["length"], hits["dt"] = 3, 10
    hits["channel"] = channels[: len(times)]
    hits["area"] = np.linspace(1, 50, len(times))
    to_pe = np.linspace(0.5, 1.5, 8)
    dtype = peak_dtype(8)
    ours = peaks.find_peaks(hits, to_pe, gap, 30, 200, 0, 2, 20_000, dtype)
    theirs = strax.find_peaks(
        hits,
        to_pe,
        gap_threshold=gap,
        left_extension=30,
        right_extension=200,
        min_channels=2,
        max_duration=20_000,
        result_dtype=dtype,
    )
    assert_struct_equal(ours, theirs)


def _peaklets_and_hitlets(records: np.ndarray, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peaklets (before waveforms) and the hitlets inside them, as straxen's Peaklets makes them."""
    dtype = peak_dtype(494, store_data_top=True, store_data_start=True)
    found = peaks.find_peaks(hits, TO_PE, 700, 30, 200, 0, 2, 10_000_000, dtype)
    inside = hits[peaks.fully_contained_in(hits, found) != -1].copy()
    outside = np.zeros(len(found) + 1, strax.time_fields)  # the gaps between peaklets
    outside["time"][0], outside["endtime"][-1] = 0, 10**12
    outside["endtime"][:-1] = found["time"]
    outside["time"][1:] = strax.endtime(found)
    peaks.find_hit_integration_bounds(inside, outside, records, (30, 200), 494, True)
    inside["time"] -= (inside["left"] - inside["left_integration"]) * inside["dt"]
    inside["length"] = inside["right_integration"] - inside["left_integration"]
    return found, sort_by_time(inside)


class TestSumWaveform:
    @pytest.mark.parametrize(("top", "start"), [(True, True), (False, False)])
    def test_equal_to_strax(
        self, data: tuple[np.ndarray, np.ndarray], top: bool, start: bool
    ) -> None:
        """Waveforms (downsampled where long), areas and saturation equal strax.sum_waveform."""
        from straxd.core.peak_waveform import sum_waveform

        records, hits = data
        found, hitlets = _peaklets_and_hitlets(records, hits)
        ours, theirs = found.copy(), found.copy()
        links = pulse.record_links(records)
        sum_waveform(ours, hitlets, records, links, TO_PE, 253, top, start)
        strax.sum_waveform(
            theirs,
            hitlets,
            records,
            strax.record_links(records),
            TO_PE,
            n_top_channels=253,
            store_data_top=top,
            store_data_start=start,
        )
        assert (ours["dt"] > 10).any()  # some were downsampled
        assert (ours["area"] > 0).all()
        assert_struct_equal(ours, theirs)


@settings(max_examples=300, deadline=None)
@given(data=pulses_hitlets_peaks(), top=st.booleans(), start=st.booleans())
def test_sum_waveform_generated(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], top: bool, start: bool
) -> None:
    """Hitlets spilling into linked records or past them, bit shifts, fractional baselines,
    saturation, peaks cutting hitlets and downsampled: sums equal strax.sum_waveform."""
    from straxd.core.peak_waveform import sum_waveform

    records, hitlets, found = data
    to_pe = np.array([0.0071, 0.0123456789, 1.3, 0.5])
    ours, theirs = found.copy(), found.copy()
    sum_waveform(ours, hitlets, records, pulse.record_links(records), to_pe, 2, top, start)
    strax.sum_waveform(
        theirs,
        hitlets,
        records,
        strax.record_links(records),
        to_pe,
        n_top_channels=2,
        store_data_top=top,
        store_data_start=start,
    )
    assert_struct_equal(ours, theirs)


class TestProperties:
    def test_compute_properties_equal_to_strax(self, data: tuple[np.ndarray, np.ndarray]) -> None:
        """Widths, deciles, median and centre time, area fraction top equal strax's."""
        from straxd.core.peak_properties import compute_properties
        from straxd.core.peak_waveform import sum_waveform

        records, hits = data
        found, hitlets = _peaklets_and_hitlets(records, hits)
        sum_waveform(found, hitlets, records, pulse.record_links(records), TO_PE, 253, True, True)
        ours, theirs = found.copy(), found.copy()
        compute_properties(ours, 253)
        strax.compute_properties(theirs, n_top_channels=253)
        assert (ours["width"][:, 5] > 0).any()
        assert_struct_equal(ours, theirs)


class TestSplitting:
    @pytest.mark.parametrize("seed", [4, 5])
    def test_natural_breaks_split_equal_to_strax(self, seed: int) -> None:
        """Split peaklets (20 iterations, straxen's thresholds) equal strax.split_peaks."""
        from straxd.core.peak_properties import compute_properties
        from straxd.core.peak_splitting import natural_breaks_threshold, split_peaks
        from straxd.core.peak_waveform import sum_waveform

        # A pile-up rate, so that S2s overlap and get split.
        records, hits = _records_and_hits(seed, seconds=0.02, rate_hz=20_000)
        found, hitlets = _peaklets_and_hitlets(records, hits)
        links = pulse.record_links(records)
        sum_waveform(found, hitlets, records, links, TO_PE, 253, True, True)
        compute_properties(found, 253)
        ours = split_peaks(
            found.copy(),
            hitlets,
            records,
            links,
            TO_PE,
            natural_breaks_threshold,
            min_area=40,
            iterations=20,
            filter_wing_width=70,
            n_top_channels=253,
            store_data_top=True,
            store_data_start=True,
        )
        theirs = strax.split_peaks(
            found.copy(),
            hitlets,
            records,
            strax.record_links(records),
            TO_PE,
            algorithm="natural_breaks",
            threshold=natural_breaks_threshold,
            split_low=True,
            filter_wing_width=70,
            min_area=40,
            do_iterations=20,
            n_top_channels=253,
            store_data_top=True,
            store_data_start=True,
        )
        assert len(ours) > len(found)  # something was split
        assert_struct_equal(ours, theirs)


@settings(max_examples=100, deadline=None)
@given(
    arr=st.sampled_from([TIME_DT_DTYPE, TIME_END_DTYPE, peak_dtype(4)]).flatmap(
        lambda dtype: interval_arrays(dtype=dtype, max_length=2**31 - 1)
    )
)
def test_interval_ends_equal_endtime(arr: np.ndarray) -> None:
    """The one-pass ends equal chunk.endtime for length/dt rows (any widths) and endtime rows."""
    from straxd.core.chunk import endtime

    ends = peaks.interval_ends(arr)
    assert ends.dtype == np.int64
    np.testing.assert_array_equal(ends, endtime(arr))
