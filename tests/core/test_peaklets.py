"""peaklets and lone_hits equal straxen 4.0.0's Peaklets plugin, field for field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from straxd.core import pulse
from straxd.core.chunk import Chunk, sort_by_time
from straxd.core.classification import PeakletClassification, classify
from straxd.core.dtypes import merged_s2s_dtype, peaks_dtype
from straxd.core.errors import ConfigInvalid
from straxd.core.merged_s2s import MergedS2s, merge_s2s
from straxd.core.peak_basics import make_peak_basics, make_peaks
from straxd.core.peaklets_plugin import Peaklets
from straxd.core.pipeline import merge_chunks
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
        r = pulse.pulse_processing(
            raw, start, end, hit_min_amplitude=np.full(494, 15.0), n_tpc_pmts=494
        )["records"]
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
