"""Seeded, physics-like digitizer data: what a V1724 readout of a xenon TPC looks like.

Photons are generated per signal (single photoelectron dark counts, single electrons, S1s and
S2s with a drift time up to the maximum), distributed over the 494 TPC PMTs (253 top), then
digitised per channel as a self-triggered digitizer does: samples around each group of
photoelectrons become one pulse (baseline, noise, negative-going signal clipped at 0 ADC), and each
pulse is cut into 110-sample fragments. The top PMTs are digitised a second time at half gain in
the high-energy channels (500 + pmt) when their signal is large. Times are ns since run start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from straxd.core.dtypes import N_TOP_PMTS, N_TPC_PMTS, raw_record_dtype

SAMPLE_NS = 10
RECORD_SAMPLES = 110
PRE_SAMPLES = 50
POST_SAMPLES = 50
# Shape of one photoelectron in samples; area 2.15 x amplitude.
SPE_SHAPE = np.array([0.3, 1.0, 0.6, 0.25], dtype=np.float64)
HE_CHANNEL_OFFSET = 500
HE_TRIGGER_PE = 4.0  # the x0.5 channels only trigger on sizeable signals
NV_CHANNELS = (2000, 2120)
MV_CHANNELS = (1000, 1084)
MAX_DRIFT_NS = 2_200_000
PHOTON_DTYPE = np.dtype([("time", np.int64), ("channel", np.int16), ("amp", np.float32)])
TRUTH_DTYPE = np.dtype(
    [
        ("event", np.int64),
        ("type", np.int8),
        ("time", np.int64),
        ("center_time", np.int64),
        ("endtime", np.int64),
        ("n_pe", np.int32),
    ]
)


@dataclass(frozen=True)
class DetectorModel:
    """Parameters of the simulated detector and digitizer (defaults: XENONnT-like)."""

    baseline_adc: float = 16000.0
    noise_adc: float = 2.5
    spe_amplitude_adc: float = 40.0
    gain_spread: float = 0.08
    dark_rate_hz: float = 40.0
    single_electron_rate_hz: float = 200.0
    s1_pe: tuple[float, float] = (3.0, 300.0)
    s2_pe: tuple[float, float] = (100.0, 200_000.0)
    s2_top_fraction: float = 0.7
    s1_top_fraction: float = 0.3
    veto_dark_rate_hz: float = 100.0
    seed_gains: int = 12345
    gains: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed_gains)
        gains = np.clip(rng.normal(1.0, self.gain_spread, N_TPC_PMTS), 0.6, 1.4)
        object.__setattr__(self, "gains", gains)

    def to_pe(self) -> np.ndarray:
        """PE per ADC x sample of every TPC channel (what processing needs as its gains)."""
        area_per_pe = self.spe_amplitude_adc * SPE_SHAPE.sum() * self.gains
        return np.asarray(1.0 / area_per_pe, dtype=np.float64)


def _pattern(rng: np.random.Generator, n: int, top_fraction: float, hotspot: int) -> np.ndarray:
    """Channels of ``n`` photons: a fraction on the top array, clustered round a hotspot PMT."""
    top = rng.random(n) < top_fraction
    channels = np.empty(n, dtype=np.int16)
    n_top = int(top.sum())
    # A third of the top light hits the PMT right above the interaction, the rest spreads out:
    # large S2s saturate that channel, as in the detector.
    spread = np.abs(rng.normal(0, 12, n_top)).astype(np.int64) * (rng.random(n_top) > 0.3)
    sign = rng.choice(np.array([-1, 1]), n_top)
    channels[top] = np.clip(hotspot + sign * spread, 0, N_TOP_PMTS - 1)
    channels[~top] = rng.integers(N_TOP_PMTS, N_TPC_PMTS, n - n_top)
    return channels


def _signal(
    rng: np.random.Generator, t0: int, n_pe: int, kind: int, hotspot: int, model: DetectorModel
) -> np.ndarray:
    """Photons of one S1 (kind 1), S2 (kind 2) or single electron (kind 2, few PE)."""
    photons = np.zeros(n_pe, PHOTON_DTYPE)
    if kind == 1:
        delays = rng.exponential(25.0, n_pe)
        photons["channel"] = _pattern(rng, n_pe, model.s1_top_fraction, hotspot)
    else:
        width_ns = 300.0 + 700.0 * rng.random()
        delays = np.abs(rng.normal(0, width_ns, n_pe)) + rng.exponential(200.0, n_pe)
        photons["channel"] = _pattern(rng, n_pe, model.s2_top_fraction, hotspot)
    photons["time"] = t0 + delays.astype(np.int64)
    photons["amp"] = rng.normal(1.0, 0.3, n_pe).clip(0.2, None)
    return photons


@dataclass
class SimChunk:
    """Fragments and truth of one time window."""

    records: np.ndarray
    truth: np.ndarray


class Simulator:
    """Generates consecutive windows of a run; same seed, same bytes."""

    def __init__(
        self,
        seed: int,
        event_rate_hz: float,
        model: DetectorModel | None = None,
        detectors: tuple[str, ...] = ("tpc",),
    ) -> None:
        self.seed = seed
        self.event_rate_hz = event_rate_hz
        self.model = model or DetectorModel()
        self.detectors = detectors
        self._event_id = 0
        self._carry = np.zeros(0, PHOTON_DTYPE)

    def _photons(
        self, rng: np.random.Generator, start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray]:
        model, duration_s = self.model, (end - start) / 1e9
        parts, truth = [], []
        n_events = rng.poisson(self.event_rate_hz * duration_s)
        for t1 in np.sort(rng.integers(start, end, n_events)):
            hotspot = int(rng.integers(0, N_TOP_PMTS))
            n1 = int(np.exp(rng.uniform(*np.log(model.s1_pe))))
            n2 = int(np.exp(rng.uniform(*np.log(model.s2_pe))))
            t2 = int(t1) + int(rng.uniform(2_000, MAX_DRIFT_NS))
            for kind, t0, n_pe in ((1, int(t1), n1), (2, t2, n2)):
                photons = _signal(rng, t0, n_pe, kind, hotspot, model)
                parts.append(photons)
                truth.append(
                    (
                        self._event_id,
                        kind,
                        int(photons["time"].min()),
                        int(photons["time"].mean()),
                        int(photons["time"].max()),
                        n_pe,
                    )
                )
            self._event_id += 1
        for t0 in rng.integers(start, end, rng.poisson(model.single_electron_rate_hz * duration_s)):
            parts.append(
                _signal(
                    rng,
                    int(t0),
                    int(rng.poisson(25)) + 1,
                    2,
                    int(rng.integers(0, N_TOP_PMTS)),
                    model,
                )
            )
        n_dark = rng.poisson(model.dark_rate_hz * N_TPC_PMTS * duration_s)
        dark = np.zeros(n_dark, PHOTON_DTYPE)
        dark["time"] = rng.integers(start, end, n_dark)
        dark["channel"] = rng.integers(0, N_TPC_PMTS, n_dark)
        dark["amp"] = rng.normal(1.0, 0.3, n_dark).clip(0.2, None)
        parts.append(dark)
        for name, (low, high) in (("neutron_veto", NV_CHANNELS), ("muon_veto", MV_CHANNELS)):
            if name in self.detectors:
                n = rng.poisson(model.veto_dark_rate_hz * (high - low) * duration_s)
                veto = np.zeros(n, PHOTON_DTYPE)
                veto["time"] = rng.integers(start, end, n)
                veto["channel"] = rng.integers(low, high, n)
                veto["amp"] = 1.0
                parts.append(veto)
        truth_arr = np.array(truth, dtype=TRUTH_DTYPE) if truth else np.zeros(0, TRUTH_DTYPE)
        return np.concatenate(parts), truth_arr

    def window(self, chunk_i: int, start: int, end: int) -> SimChunk:
        """Fragments of the pulses that are complete by ``end``, and truth of [start, end).

        Photons of a pulse that may still continue past ``end`` are carried into the next
        window, so fragments of one window can start a little before its ``start``.
        """
        rng = np.random.default_rng([self.seed, chunk_i])
        photons, truth = self._photons(rng, start, end)
        photons = np.concatenate([self._carry, photons])
        # The digitizers start at the run start: nothing before it, including pre-trigger samples.
        photons = photons[photons["time"] >= (PRE_SAMPLES + 1) * SAMPLE_NS]
        photons = photons[np.lexsort((photons["time"], photons["channel"]))]
        first, last, _ = _pulse_bounds(photons["time"], photons["channel"], len(SPE_SHAPE))
        open_after = end - (PRE_SAMPLES + POST_SAMPLES + len(SPE_SHAPE)) * SAMPLE_NS
        carry = np.zeros(len(photons), dtype=np.bool_)
        for a, b in zip(first, last, strict=True):
            if photons["time"][b - 1] >= open_after:
                carry[a:b] = True
        self._carry = photons[carry]
        records = digitise(photons[~carry], self.model, int(rng.integers(2**31)))
        return SimChunk(records=records, truth=truth)

    def flush(self) -> SimChunk:
        """The pulses still open at the end of the run."""
        records = digitise(self._carry, self.model, self.seed)
        self._carry = self._carry[:0]
        return SimChunk(records=records, truth=np.zeros(0, TRUTH_DTYPE))


def digitise(photons: np.ndarray, model: DetectorModel, seed: int) -> np.ndarray:
    """Turn photons into raw_records fragments as a self-triggered digitizer would."""
    photons = photons[np.lexsort((photons["time"], photons["channel"]))]
    gains = np.ones(3000, dtype=np.float64)
    gains[:N_TPC_PMTS] = model.gains
    amps = photons["amp"].astype(np.float64) * gains[photons["channel"]] * model.spe_amplitude_adc
    he = photons["channel"] < N_TOP_PMTS
    he_photons = photons[he].copy()
    he_photons["channel"] += HE_CHANNEL_OFFSET
    he_amps = amps[he] * 0.5
    parts = [
        _fragments(photons["time"], photons["channel"], amps, model, seed, 0.0),
        _fragments(
            he_photons["time"],
            he_photons["channel"],
            he_amps,
            model,
            seed + 1,
            HE_TRIGGER_PE * model.spe_amplitude_adc * 0.5,
        ),
    ]
    records = np.concatenate(parts)
    return records[np.argsort(records["time"], kind="stable")]


def _fragments(
    times: np.ndarray,
    channels: np.ndarray,
    amps: np.ndarray,
    model: DetectorModel,
    seed: int,
    min_peak_adc: float,
) -> np.ndarray:
    if not len(times):
        return np.zeros(0, raw_record_dtype())
    starts, ends, samples = _pulse_bounds(times, channels, len(SPE_SHAPE))
    n_frag = (samples + RECORD_SAMPLES - 1) // RECORD_SAMPLES
    out = np.zeros(int(n_frag.sum()), raw_record_dtype())
    _fill(
        times,
        channels,
        amps,
        starts,
        ends,
        samples,
        out,
        SPE_SHAPE,
        model.baseline_adc,
        model.noise_adc,
        seed,
        min_peak_adc,
    )
    return out[out["length"] > 0]


@numba.njit(nogil=True, cache=True)
def _pulse_bounds(
    times: np.ndarray, channels: np.ndarray, shape_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photon index ranges [first, last) of each pulse, and its length in samples.

    Photons must be sorted by (channel, time). A pulse runs from PRE samples before its first
    photon to POST samples after the last photon's shape; photons closer than that merge.
    """
    n = len(times)
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    samples = np.empty(n, np.int64)
    k = 0
    gap_ns = (PRE_SAMPLES + POST_SAMPLES + shape_len) * SAMPLE_NS
    a = 0
    for i in range(1, n + 1):
        if i == n or channels[i] != channels[i - 1] or times[i] - times[i - 1] > gap_ns:
            first[k], last[k] = a, i
            span = times[i - 1] // SAMPLE_NS - times[a] // SAMPLE_NS
            samples[k] = span + PRE_SAMPLES + shape_len + POST_SAMPLES
            k += 1
            a = i
    return first[:k], last[:k], samples[:k]


@numba.njit(nogil=True, cache=True)
def _fill(
    times: np.ndarray,
    channels: np.ndarray,
    amps: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    samples: np.ndarray,
    out: np.ndarray,
    shape: np.ndarray,
    baseline: float,
    noise: float,
    seed: int,
    min_peak_adc: float,
) -> None:
    np.random.seed(seed)
    k = 0
    for p in range(len(starts)):
        a, b = starts[p], ends[p]
        t_first = times[a] // SAMPLE_NS * SAMPLE_NS - PRE_SAMPLES * SAMPLE_NS
        n_samples = samples[p]
        wave = np.zeros(n_samples, np.float64)
        for i in range(a, b):
            j = (times[i] - t_first) // SAMPLE_NS
            for m in range(len(shape)):
                wave[j + m] += amps[i] * shape[m]
        if wave.max() < min_peak_adc:
            continue
        n_frag = (n_samples + RECORD_SAMPLES - 1) // RECORD_SAMPLES
        for f in range(n_frag):
            r = out[k]
            r["time"] = t_first + f * RECORD_SAMPLES * SAMPLE_NS
            length = min(RECORD_SAMPLES, n_samples - f * RECORD_SAMPLES)
            r["length"] = length
            r["dt"] = SAMPLE_NS
            r["channel"] = channels[a]
            r["pulse_length"] = n_samples
            r["record_i"] = f
            for m in range(length):
                value = baseline - wave[f * RECORD_SAMPLES + m] + np.random.normal(0.0, noise)
                r["data"][m] = max(0, min(16383, int(np.floor(value + 0.5))))
            k += 1
