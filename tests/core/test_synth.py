"""The data simulator: digitizer-like fragments, physics-like content, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from straxd.core.dtypes import N_TOP_PMTS, N_TPC_PMTS
from straxd.core.synth import HE_CHANNEL_OFFSET, DetectorModel, Simulator

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def two_seconds() -> tuple[np.ndarray, np.ndarray]:
    """Two 1 s windows plus the flush, at 30 events per second."""
    sim = Simulator(seed=5, event_rate_hz=30)
    parts = [sim.window(i, i * SECOND, (i + 1) * SECOND) for i in range(2)] + [sim.flush()]
    records = np.concatenate([p.records for p in parts])
    truth = np.concatenate([p.truth for p in parts])
    return records, truth


class TestFragments:
    def test_fragments_follow_the_digitizer_rules(
        self, two_seconds: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """110-sample fragments, consecutive record_i, no overlap within a channel, dt 10 ns."""
        records, _ = two_seconds
        assert set(np.unique(records["dt"])) == {10}
        assert records["length"].max() == 110
        assert np.all(
            records["length"][records["record_i"] < records["pulse_length"] // 110] == 110
        )
        order = np.lexsort((records["time"], records["channel"]))
        r = records[order]
        end = r["time"] + r["length"] * 10
        same = r["channel"][1:] == r["channel"][:-1]
        assert not np.any(same & (r["time"][1:] < end[:-1]))
        continued = r["record_i"][1:] > 0
        assert np.all(r["time"][1:][continued] == r["time"][:-1][continued] + 1100)

    def test_baseline_noise_and_saturation(
        self, two_seconds: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """Baseline near 16000 with a few ADC of noise; the largest S2s saturate some channels."""
        records, _ = two_seconds
        first = records[records["record_i"] == 0]
        pre = first["data"][:, :40].astype(float)
        assert abs(np.median(pre) - 16000) < 2
        assert 1.5 < np.median(pre.std(axis=1)) < 4
        valid = np.arange(110)[None, :] < records["length"][:, None]
        saturated = np.any(valid & (records["data"] == 0), axis=1)
        assert saturated.any()  # clipped at the bottom of the ADC range
        assert np.unique(records["channel"][saturated]).size >= 1

    def test_channels_and_he_copies(self, two_seconds: tuple[np.ndarray, np.ndarray]) -> None:
        """TPC channels 0-493 and x0.5 copies of top PMTs in 500-752 only."""
        records, _ = two_seconds
        channels = np.unique(records["channel"])
        tpc = channels[channels < N_TPC_PMTS]
        he = channels[channels >= HE_CHANNEL_OFFSET]
        assert len(tpc) == N_TPC_PMTS
        assert he.min() >= HE_CHANNEL_OFFSET and he.max() < HE_CHANNEL_OFFSET + N_TOP_PMTS


class TestPhysics:
    def test_truth_pairs_s1_before_s2_within_max_drift(
        self, two_seconds: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """Every event has one S1 then one S2 within 2.2 ms; S2s are larger on average."""
        _, truth = two_seconds
        for event in np.unique(truth["event"]):
            s1, s2 = (
                truth[(truth["event"] == event) & (truth["type"] == 1)],
                truth[(truth["event"] == event) & (truth["type"] == 2)],
            )
            assert len(s1) == len(s2) == 1
            assert 0 < s2["time"][0] - s1["time"][0] <= 2_200_000 + 10_000
        assert (
            truth["n_pe"][truth["type"] == 2].mean() > 10 * truth["n_pe"][truth["type"] == 1].mean()
        )

    def test_gains_give_to_pe(self) -> None:
        """to_pe is 1 / (area of one photoelectron) per channel, around 1/86."""
        to_pe = DetectorModel().to_pe()
        assert to_pe.shape == (N_TPC_PMTS,)
        assert 0.008 < np.median(to_pe) < 0.016


class TestDeterminism:
    def test_same_seed_same_data(self) -> None:
        """A seed fixes every byte; another seed changes them."""

        def once(seed: int) -> bytes:
            return Simulator(seed, 10).window(0, 0, SECOND // 4).records.tobytes()

        assert once(1) == once(1)
        assert once(1) != once(2)
