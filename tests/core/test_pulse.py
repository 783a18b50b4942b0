"""Pulse processing against strax 2.2.3's functions and straxen 4.0.0's PulseProcessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core import pulse
from straxd.core.dtypes import raw_record_dtype, record_dtype
from straxd.core.errors import BadInput
from straxd.core.hits import find_hits
from straxd.core.records import pulse_processing
from straxd.core.synth import Simulator
from tests.oracle import assert_struct_equal, run_straxen_script


@st.composite
def raw_records(draw: st.DrawFn, max_pulses: int = 12) -> np.ndarray:
    """Pulses of 1-400 samples cut into 110-sample fragments, baselines with noise, sorted."""
    n_pulses = draw(st.integers(1, max_pulses))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    fragments = []
    t_per_channel = {}
    for _ in range(n_pulses):
        channel = int(rng.integers(0, 6))
        n = int(draw(st.integers(1, 400)))
        t0 = t_per_channel.get(channel, 1_000_000) + int(rng.integers(0, 5000)) // 10 * 10
        t_per_channel[channel] = t0 + ((n + 109) // 110) * 1100 + 10
        base = float(draw(st.floats(15990, 16010)))
        wave = rng.normal(base, draw(st.floats(0.5, 4)), n)
        for _ in range(int(rng.integers(0, 4))):
            where = int(rng.integers(0, n))
            wave[where : where + 5] -= rng.uniform(5, 400)
        wave = np.clip(np.round(wave), 0, 16383).astype(np.int16)
        for i in range((n + 109) // 110):
            f = np.zeros(1, raw_record_dtype())
            part = wave[i * 110 : (i + 1) * 110]
            f["time"], f["length"], f["dt"], f["channel"] = t0 + i * 1100, len(part), 10, channel
            f["pulse_length"], f["record_i"] = n, i
            f["data"][0, : len(part)] = part
            fragments.append(f)
    data = np.concatenate(fragments)
    return data[np.lexsort((data["channel"], data["time"]))]


def _strax_records(raw: np.ndarray) -> np.ndarray:
    r = strax.raw_to_records(raw)
    strax.zero_out_of_bounds(r)
    strax.baseline(r)
    strax.integrate(r)
    return r


def _our_records(raw: np.ndarray) -> np.ndarray:
    return pulse.baselined_records(raw)


def _sort_hits(h: np.ndarray) -> np.ndarray:
    return h[np.lexsort((h["left"], h["record_i"], h["channel"], h["time"]))]


class TestAgainstStrax:
    @settings(max_examples=120, deadline=None)
    @given(raw=raw_records())
    def test_records_identical(self, raw: np.ndarray) -> None:
        """One pass for strax's raw_to_records, zero_out_of_bounds, baseline and integrate: every
        field bit-identical to strax's four steps (padding and all: the bytes compared)."""
        ours, theirs = _our_records(raw), _strax_records(raw)
        assert ours.dtype == theirs.dtype
        assert ours.tobytes() == theirs.tobytes()

    @settings(max_examples=120, deadline=None)
    @given(
        raw=raw_records(),
        thresholds=st.lists(st.integers(5, 40), min_size=6, max_size=6),
        noise=st.sampled_from([0, 3]),
        extensions=st.sampled_from([(3, 20), (0, 0), (60, 110), (150, 230)]),
    )
    def test_hits_and_cut_identical(
        self, raw: np.ndarray, thresholds: list[int], noise: int, extensions: tuple[int, int]
    ) -> None:
        """find_hits (per-channel thresholds), record_links and the cut around hits equal
        strax's, with extensions reaching into the neighbouring fragments and beyond them."""
        ours, theirs = _our_records(raw), _strax_records(raw)
        hits = find_hits(ours, np.array(thresholds, float), noise)
        their_hits = strax.find_hits(theirs, np.array(thresholds, float), noise)
        np.testing.assert_array_equal(_sort_hits(hits), _sort_hits(their_hits))
        for a, b in zip(pulse.record_links(ours), strax.record_links(theirs), strict=True):
            np.testing.assert_array_equal(a, b)
        cut = ours.copy()
        pulse.cut_around_hits_in_place(cut, np.array(thresholds, float), *extensions)
        their_cut = strax.cut_outside_hits(
            theirs, strax.find_hits(theirs, np.array(thresholds, float)), *extensions
        )
        np.testing.assert_array_equal(cut, their_cut)

    @settings(max_examples=80, deadline=None)
    @given(
        raw=raw_records(),
        thresholds=st.lists(st.integers(1, 40), min_size=6, max_size=6),
        extensions=st.sampled_from([(3, 20), (0, 0), (150, 230)]),
    )
    def test_cut_keeping_its_hits(
        self, raw: np.ndarray, thresholds: list[int], extensions: tuple[int, int]
    ) -> None:
        """Hits counted while baselining are find_hits' on the baselined records; cutting
        around them gives the same records as cutting without, and (thresholds positive) they
        are the hits found again in the cut records."""
        amplitude = np.array(thresholds, float)
        records, kept = pulse.baselined_records_and_hits(raw, (amplitude, np.zeros(6)))
        assert records.tobytes() == _our_records(raw).tobytes()
        assert kept.tobytes() == find_hits(records, amplitude).tobytes()
        cut = records.copy()
        pulse.cut_around_hits_in_place(cut, amplitude, *extensions)
        pulse.cut_around_hits_in_place(records, amplitude, *extensions, hits=kept)
        assert records.tobytes() == cut.tobytes()
        assert kept.tobytes() == find_hits(cut, amplitude).tobytes()

    @settings(max_examples=40, deadline=None)
    @given(
        raw=raw_records(),
        over_noise=st.sampled_from([0.0, 1.0, 3.5]),
        sloppy=st.booleans(),
    )
    def test_hits_counted_while_baselining_over_noise(
        self, raw: np.ndarray, over_noise: float, sloppy: bool
    ) -> None:
        """With a height-over-noise threshold too, and without first fragments (NaN noise),
        the hits counted on the way are those found after."""
        if sloppy:
            raw = raw[raw["record_i"] != 0] if (raw["record_i"] != 0).any() else raw
        amplitude, noise = np.full(6, 10.0), np.full(6, over_noise)
        records, kept = pulse.baselined_records_and_hits(
            raw, (amplitude, noise), allow_sloppy_chunking=True
        )
        assert kept.tobytes() == find_hits(records, amplitude, noise).tobytes()

    @settings(max_examples=40, deadline=None)
    @given(
        raw=raw_records(),
        threshold=st.sampled_from([-40000.0, -3.5, 0.0, 0.5, 14.2, 32767.0, 32767.5, 1e6]),
    )
    def test_hits_for_any_threshold(self, raw: np.ndarray, threshold: float) -> None:
        """Thresholds below, between and beyond the integer samples find strax's hits."""
        ours, theirs = _our_records(raw), _strax_records(raw)
        hits = find_hits(ours, threshold)
        np.testing.assert_array_equal(
            _sort_hits(hits), _sort_hits(strax.find_hits(theirs, threshold))
        )

    def test_documented_hit_example(self) -> None:
        """Section 5.1's example: hits (1,3) area 51 height 30.5, (5,7), (9,10)."""
        r = np.zeros(1, record_dtype())
        r["length"], r["dt"], r["baseline"] = 10, 10, 0.5
        r["data"][0, :10] = [0, 20, 30, 10, 0, 15, 15, 0, 0, 20]
        hits = find_hits(r, 15)
        assert [(h["left"], h["right"]) for h in hits] == [(1, 3), (5, 7), (9, 10)]
        assert (hits[0]["area"], hits[0]["height"]) == (51, 30.5)


class TestBadInput:
    def test_overlapping_pulses(self) -> None:
        """A pulse starting inside the previous one of its channel names channel and times."""
        raw = np.zeros(2, raw_record_dtype())
        raw["time"], raw["length"], raw["dt"], raw["channel"] = [0, 500], 110, 10, 7
        with pytest.raises(BadInput, match="channel 7: a pulse starts at 500 ns.*1100 ns"):
            pulse.check_overlaps(raw)

    def test_channel_out_of_range(self) -> None:
        """A channel outside the overlap check's range is named, not indexed."""
        raw = np.zeros(2, raw_record_dtype())
        raw["time"], raw["length"], raw["dt"], raw["channel"] = [0, 5000], 110, 10, [7, 3000]
        with pytest.raises(BadInput, match="channel 3000 is outside the 3000 channels"):
            pulse.check_overlaps(raw)
        raw["channel"][1] = -2
        with pytest.raises(BadInput, match="channel -2 is outside"):
            pulse.check_overlaps(raw)
        raw["channel"][1] = 9
        assert pulse.check_overlaps(raw) == 9

    def test_missing_first_fragment(self) -> None:
        """A continuation fragment without its first fragment cannot be baselined."""
        raw = np.zeros(1, raw_record_dtype())
        raw["time"], raw["length"], raw["dt"], raw["channel"], raw["record_i"] = 0, 110, 10, 3, 1
        with pytest.raises(BadInput, match="channel 3: fragment 1 .* no first fragment"):
            pulse.baselined_records(raw)
        sloppy = pulse.baselined_records(raw, allow_sloppy_chunking=True)
        assert sloppy["baseline"][0] == 16000 and np.isnan(sloppy["baseline_rms"][0])


@pytest.fixture(scope="module")
def simulated_chunks(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[np.ndarray], list[list[int]]]:
    """Three 1 s chunks of simulated raw_records (TPC channels), saved for the straxen run."""
    folder = tmp_path_factory.mktemp("raw")
    sim = Simulator(21, event_rate_hz=40)
    chunks, bounds = [], []
    for i in range(3):
        raw = sim.window(i, i * 10**9, (i + 1) * 10**9).records
        raw = raw[np.lexsort((raw["channel"], raw["time"]))]
        np.save(folder / f"chunk_{i}.npy", raw)
        chunks.append(raw)
        bounds.append([i * 10**9 - 10**7, (i + 1) * 10**9])
    (folder / "bounds.json").write_text(json.dumps(bounds))
    return folder, chunks, bounds


class TestAgainstStraxenPlugin:
    @pytest.mark.parametrize("threshold", [15, "per_channel"])
    def test_pulse_processing_equals_straxen(
        self,
        tmp_path: Path,
        simulated_chunks: tuple[Path, list[np.ndarray], list[list[int]]],
        threshold: object,
    ) -> None:
        """records and pulse_counts of straxen's PulseProcessing, field for field."""
        folder, chunks, bounds = simulated_chunks
        thresholds = 15 if threshold == 15 else [10 + (ch % 7) * 3 for ch in range(494)]
        options = {"hit_min_amplitude": thresholds}
        run_straxen_script("straxen_records.py", str(folder), str(tmp_path), json.dumps(options))
        for i, raw in enumerate(chunks):
            ours = pulse_processing(
                raw,
                *bounds[i],
                hit_min_amplitude=np.asarray(thresholds, float) * np.ones(494),
                n_tpc_pmts=494,
            )
            np.testing.assert_array_equal(ours["records"], np.load(tmp_path / f"records_{i}.npy"))
            np.testing.assert_array_equal(
                ours["pulse_counts"], np.load(tmp_path / f"pulse_counts_{i}.npy")
            )
            assert (
                len(np.load(tmp_path / f"veto_regions_{i}.npy")) == len(ours["veto_regions"]) == 0
            )


class TestPerChannelValues:
    def test_number_list_and_files(self, tmp_path: Path) -> None:
        """A number, a list, a JSON file and a text file all give one value per channel."""
        from straxd.core.errors import ConfigInvalid
        from straxd.core.records import per_channel

        assert per_channel(15, 3, "x").tolist() == [15, 15, 15]
        assert per_channel([1, 2, 3], 3, "x").tolist() == [1, 2, 3]
        (tmp_path / "t.json").write_text("[4, 5, 6]")
        (tmp_path / "t.txt").write_text("7 8\n9\n")
        assert per_channel(str(tmp_path / "t.json"), 3, "x").tolist() == [4, 5, 6]
        assert per_channel(tmp_path / "t.txt", 3, "x").tolist() == [7, 8, 9]
        with pytest.raises(ConfigInvalid, match="expected 3 values, got 2"):
            per_channel([1, 2], 3, "hit_min_amplitude")
        with pytest.raises(ConfigInvalid, match="cannot read"):
            per_channel(str(tmp_path / "missing.json"), 3, "x")


class TestHypothesisBatchAgainstStraxen:
    def test_generated_pulses_equal_straxen_plugin(self, tmp_path: Path) -> None:
        """Twenty hypothesis-generated inputs through straxen's PulseProcessing in one call."""
        examples: list[np.ndarray] = []

        @settings(max_examples=20, deadline=None, database=None)
        @given(raw=raw_records())
        def collect(raw: np.ndarray) -> None:
            examples.append(raw)

        collect()
        folder = tmp_path / "in"
        folder.mkdir()
        bounds = []
        for i, raw in enumerate(examples):
            np.save(folder / f"chunk_{i}.npy", raw)
            bounds.append([0, int((raw["time"] + raw["length"] * raw["dt"]).max()) + 1])
        (folder / "bounds.json").write_text(json.dumps(bounds))
        run_straxen_script(
            "straxen_records.py",
            str(folder),
            str(tmp_path / "out"),
            json.dumps({"hit_min_amplitude": 12}),
        )
        for i, raw in enumerate(examples):
            ours = pulse_processing(
                raw, *bounds[i], hit_min_amplitude=np.full(494, 12.0), n_tpc_pmts=494
            )
            np.testing.assert_array_equal(
                ours["records"], np.load(tmp_path / "out" / f"records_{i}.npy")
            )
            assert_struct_equal(
                ours["pulse_counts"], np.load(tmp_path / "out" / f"pulse_counts_{i}.npy")
            )
