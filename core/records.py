"""The records plugin (straxen's PulseProcessing), its steps, and per-channel option values.

``pulse_processing`` is one chunk's work: ``tpc_raw_records`` then ``hit_records``, whose pulse
counts accumulate in a ``PulseCounter``. The fused raw_records -> peaklets step (``fusion``)
calls the same two steps piece by piece.

Values straxen fetches from its databases (hit thresholds, gains) are plain configuration here:
a number for every channel, a list with one value per channel, or the path of a file holding
such a list (JSON, or whitespace-separated text).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from straxd.core.dtypes import HIT_DTYPE, N_TPC_PMTS, record_dtype
from straxd.core.errors import ConfigInvalid
from straxd.core.hits import hit_thresholds
from straxd.core.plugin import Option, Plugin, SaveWhen
from straxd.core.pulse import (
    baselined_records,
    baselined_records_and_hits,
    check_overlaps,
    cut_around_hits_in_place,
)
from straxd.core.pulse_counts import NO_FOLLOWING, PulseCounter, pulse_count_dtype

RECORDS_TYPES = ("records", "veto_regions", "pulse_counts")


def per_channel(value: Any, n_channels: int, name: str) -> np.ndarray:
    """One float per channel from a number, a list, or a file with a list."""
    if isinstance(value, str | Path):
        path = Path(value)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigInvalid(f"{name}: cannot read {path}: {err.strerror}") from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text.split()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigInvalid(f"{name}: expected a number or one number per channel") from None
    if array.ndim == 0:
        return np.full(n_channels, float(array))
    if array.shape != (n_channels,):
        raise ConfigInvalid(f"{name}: expected {n_channels} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ConfigInvalid(f"{name}: values must be finite numbers")
    return array


class PulseProcessing(Plugin):
    """raw_records -> records (baselined, hits only), pulse_counts, veto_regions."""

    provides = RECORDS_TYPES
    depends_on = ("raw_records",)
    data_kind = MappingProxyType({t: t for t in RECORDS_TYPES})
    lineage_name = "StraxdPulseProcessing"
    version = "0.2.3"
    compressor = "zstd"
    rechunk_on_save = MappingProxyType(
        {"records": False, "veto_regions": True, "pulse_counts": True}
    )
    save_when = MappingProxyType(
        {
            "records": SaveWhen.TARGET,
            "veto_regions": SaveWhen.ALWAYS,
            "pulse_counts": SaveWhen.ALWAYS,
        }
    )
    options = (
        Option("hev_gain_model", None, "gains for the software HE veto (not supported: None)"),
        Option("baseline_samples", 40, "samples at the pulse start that give the baseline"),
        Option("tail_veto_threshold", 0, "PE to trigger the tail veto (0: veto off)"),
        Option("tail_veto_duration", int(3e6), "ns vetoed after large peaks"),
        Option("tail_veto_resolution", int(1e3), "ns resolution of the veto sum waveform"),
        Option("tail_veto_pass_fraction", 0.05, "pass veto above this fraction of the maximum"),
        Option("tail_veto_pass_extend", 3, "samples to extend the pass-veto regions"),
        Option("max_veto_value", None, "pass peaks above this area regardless"),
        Option("pmt_pulse_filter", None, "linear filter for pulses (not supported: None)"),
        Option("save_outside_hits", (3, 20), "samples kept left and right of each hit"),
        Option("n_tpc_pmts", N_TPC_PMTS, "number of TPC PMTs"),
        Option("hit_min_amplitude", 15, "hit threshold in ADC: number, per-channel list or file"),
        Option("check_raw_record_overlaps", True, "fail on overlapping pulses", track=False),
        Option(
            "allow_sloppy_chunking", False, "default baseline for orphan fragments", track=False
        ),
    )

    def setup(self) -> None:
        """Check the options and resolve per-channel thresholds."""
        c = self.config
        if c["hev_gain_model"] is not None and c["tail_veto_threshold"]:
            raise ConfigInvalid(
                "the software high-energy veto is not supported; leave tail_veto_threshold at 0"
            )
        if c["pmt_pulse_filter"]:
            raise ConfigInvalid("pmt_pulse_filter is not supported; leave it None")
        left_right = tuple(c["save_outside_hits"])
        if len(left_right) != 2 or min(left_right) < 0:
            raise ConfigInvalid("save_outside_hits must be two non-negative sample counts")
        self.thresholds = per_channel(c["hit_min_amplitude"], c["n_tpc_pmts"], "hit_min_amplitude")

    def infer_dtype(self) -> dict[str, np.dtype[Any]]:
        """records, hits for veto_regions, and pulse_counts for n_tpc_pmts channels."""
        return {
            "records": record_dtype(),
            "veto_regions": HIT_DTYPE,
            "pulse_counts": pulse_count_dtype(self.config["n_tpc_pmts"]),
        }

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> Any:
        """One chunk of raw_records."""
        c = self.config
        return pulse_processing(
            inputs["raw_records"],
            start,
            end,
            n_tpc_pmts=c["n_tpc_pmts"],
            check_raw_record_overlaps=c["check_raw_record_overlaps"],
            **self.record_options(),
        )

    def record_options(self) -> dict[str, Any]:
        """The options of ``hit_records``, from this plugin's configuration."""
        c = self.config
        left, right = c["save_outside_hits"]
        return {
            "hit_min_amplitude": self.thresholds,
            "baseline_samples": c["baseline_samples"],
            "save_outside_hits": (left, right),
            "allow_sloppy_chunking": c["allow_sloppy_chunking"],
        }


def pulse_processing(
    raw_records: np.ndarray,
    start: int,
    end: int,
    *,
    hit_min_amplitude: float | np.ndarray | tuple[float, ...],
    n_tpc_pmts: int,
    baseline_samples: int = 40,
    save_outside_hits: tuple[int, int] = (3, 20),
    check_raw_record_overlaps: bool = True,
    allow_sloppy_chunking: bool = False,
) -> dict[str, np.ndarray]:
    """straxen PulseProcessing.compute with the software HE veto off (its default)."""
    raw_records = tpc_raw_records(raw_records, n_tpc_pmts, check_raw_record_overlaps)
    counter = PulseCounter(n_tpc_pmts)
    r, _ = hit_records(
        raw_records,
        counter,
        hit_min_amplitude=hit_min_amplitude,
        baseline_samples=baseline_samples,
        save_outside_hits=save_outside_hits,
        allow_sloppy_chunking=allow_sloppy_chunking,
    )
    counts = counter.result(start, end)
    return {"records": r, "pulse_counts": counts, "veto_regions": np.zeros(0, dtype=HIT_DTYPE)}


def tpc_raw_records(raw_records: np.ndarray, n_tpc_pmts: int, check: bool = True) -> np.ndarray:
    """The TPC channels' rows, after checking (with ``check``) that no pulses overlap."""
    if not len(raw_records):
        return raw_records
    # One pass over the channels of a whole chunk (a strided read: ~10 ms) gives both answers.
    top = check_overlaps(raw_records, n_channels=3000) if check else raw_records["channel"].max()
    if top >= n_tpc_pmts:
        raw_records = raw_records[raw_records["channel"] < n_tpc_pmts]
    return raw_records


def hit_records(
    raw_records: np.ndarray,
    counter: PulseCounter | None,
    *,
    hit_min_amplitude: float | np.ndarray | tuple[float, ...],
    baseline_samples: int = 40,
    save_outside_hits: tuple[int, int] = (3, 20),
    allow_sloppy_chunking: bool = False,
    following_time: int = NO_FOLLOWING,
    keep_hits: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """records of time-ordered TPC raw_records: baselined, counted (when ``counter`` is given;
    ``following_time`` as in ``PulseCounter.add``), then zeroed outside the hits; and, with
    ``keep_hits``, those hits (found before the cut), else None."""
    left, right = save_outside_hits
    hits = np.zeros(0, dtype=HIT_DTYPE) if keep_hits else None
    if keep_hits and len(raw_records):
        thresholds = hit_thresholds(raw_records, hit_min_amplitude, 0)
        r, hits = baselined_records_and_hits(
            raw_records, thresholds, baseline_samples, allow_sloppy_chunking
        )
    else:
        r = baselined_records(
            raw_records,
            baseline_samples=baseline_samples,
            allow_sloppy_chunking=allow_sloppy_chunking,
        )
    if counter is not None:
        counter.add(r, following_time)
    # In place: r is this call's own array, and a copy would double the chunk's memory.
    cut_around_hits_in_place(r, hit_min_amplitude, left, right, hits=hits)
    return r, hits
