"""online_peak_monitor (straxen's OnlinePeakMonitor 0.0.5): one small summary row per chunk.

Histograms of peaks (log area vs log width, area fraction top, contributing channels) and of
isolated lone hits (area in ADC counts, per channel), plus a single-electron gain estimate. The
rows are small enough to be written to the runs database for the live monitor.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from straxd.core.chunk import endtime
from straxd.core.dtypes import N_TPC_PMTS
from straxd.core.errors import ConfigInvalid
from straxd.core.plugin import Option, Plugin

_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_NUMBER = r"[-+]?[0-9.]+(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"^\(?\s*([A-Za-z_]\w*)\s*(<=|>=|==|!=|<|>)\s*({_NUMBER})\s*\)?$")

Selection = list[tuple[str, Callable[[Any, Any], Any], float]]


def parse_selection(text: str) -> Selection:
    """``(field op number) & ...`` as (field, comparison, number) terms; '' selects all."""
    terms: Selection = []
    if not text.strip():
        return terms
    for raw in text.split("&"):
        match = _TERM.match(raw.strip())
        if match is None:
            raise ConfigInvalid(
                f"cannot read selection term {raw.strip()!r}: use (field op number) joined by &"
            )
        name, op, value = match.groups()
        terms.append((name, _COMPARISONS[op], float(value)))
    return terms


def apply_selection(data: np.ndarray, selection: Selection) -> np.ndarray:
    """The rows of ``data`` for which every term holds."""
    mask = np.ones(len(data), dtype=bool)
    for name, compare, value in selection:
        if name not in (data.dtype.names or ()):
            raise ConfigInvalid(f"selection uses {name!r}, which the data does not have")
        mask &= compare(data[name], value)
    return data[mask]


def online_peak_monitor_dtype(
    area_width_bins: int, bounds: tuple[int, ...], n_bins: int, n_pmts: int
) -> np.dtype[Any]:
    """straxen's dtype, shapes from the options."""
    square = (area_width_bins, area_width_bins)
    return np.dtype(
        [
            (("Start time of the chunk", "time"), np.int64),
            (("End time of the chunk", "endtime"), np.int64),
            (("Area vs width histogram (log-log)", "area_vs_width_hist"), (np.int64, square)),
            (("Area vs width edges (log-space)", "area_vs_width_bounds"), (np.float64, bounds)),
            (("Lone hits areas histogram [ADC-counts]", "lone_hits_area_hist"), (np.int64, n_bins)),
            (("Lone hits areas bounds [ADC-counts]", "lone_hits_area_bounds"), (np.float64, 2)),
            (("Lone hits per channel", "lone_hits_per_channel"), (np.int64, n_pmts)),
            (("AFT histogram", "aft_hist"), (np.int64, n_bins)),
            (("AFT bounds", "aft_bounds"), (np.float64, 2)),
            # straxen declares but never fills this one; it stays zero here too.
            (("Number of contributing channels histogram", "n_channel_hist"), (np.int64, n_pmts)),
            (("Single electron gain", "online_se_gain"), np.float32),
        ]
    )


def isolated(lone_hits: np.ndarray, min_gap_ns: int) -> np.ndarray:
    """Lone hits with more than ``min_gap_ns`` to both neighbours (chunk edges count as far)."""
    if not len(lone_hits):
        return lone_hits
    gap = lone_hits["time"][1:] - endtime(lone_hits)[:-1]
    mask = np.concatenate([[True], gap > min_gap_ns]) & np.concatenate([gap > min_gap_ns, [True]])
    return np.asarray(lone_hits[mask])


class OnlinePeakMonitor(Plugin):
    """peak_basics + lone_hits -> online_peak_monitor."""

    provides = ("online_peak_monitor",)
    depends_on = ("peak_basics", "lone_hits")
    data_kind = "online_peak_monitor"
    lineage_name = "StraxdOnlinePeakMonitor"
    version = "0.0.5"
    options = (
        Option("area_vs_width_nbins", 60, "bins per axis of the log area vs log width histogram"),
        Option("area_vs_width_bounds", ((-2, 5), (0, 5)), "log10 bounds of area and width"),
        Option("area_vs_width_cut_string", "", "selection for a cleaned histogram (unused)"),
        Option("lone_hits_area_bounds", (0, 1500), "lone hit area histogram bounds (ADC)"),
        Option("online_peak_monitor_nbins", 100, "bins of the 1D histograms"),
        Option("lone_hits_cut_string", "(area >= 50) & (area <= 250)", "lone hit selection"),
        Option("lone_hits_min_gap", 15_000, "ns between lone hits to count them (0: off)"),
        Option("n_tpc_pmts", N_TPC_PMTS, "number of TPC PMTs"),
        Option("online_se_bounds", (15, 70), "PE window in which to look for the SE gain"),
    )

    def setup(self) -> None:
        """Parse the selection once; refuse it early if it cannot be read."""
        self.lone_hit_selection = parse_selection(self.config["lone_hits_cut_string"])
        if np.shape(self.config["area_vs_width_bounds"]) != (2, 2):
            raise ConfigInvalid("area_vs_width_bounds must be ((low, high), (low, high))")

    def infer_dtype(self) -> np.dtype[Any]:
        """straxen's fields, shaped by the options."""
        c = self.config
        return online_peak_monitor_dtype(
            c["area_vs_width_nbins"],
            np.shape(c["area_vs_width_bounds"]),
            c["online_peak_monitor_nbins"],
            c["n_tpc_pmts"],
        )

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """One row summarising the chunk."""
        peaks, lone_hits, c = inputs["peaks"], inputs["lone_hits"], self.config
        n_bins, n_pmts = c["online_peak_monitor_nbins"], c["n_tpc_pmts"]
        res = np.zeros(1, dtype=self.infer_dtype())
        res["time"], res["endtime"] = start, end
        res["area_vs_width_bounds"] = c["area_vs_width_bounds"]
        res["lone_hits_area_bounds"] = c["lone_hits_area_bounds"]
        physical = peaks[(peaks["area"] > 0) & (peaks["range_50p_area"] > 0)]
        hist, _, _ = np.histogram2d(
            np.log10(physical["area"]),
            np.log10(physical["range_50p_area"]),
            range=c["area_vs_width_bounds"],
            bins=c["area_vs_width_nbins"],
        )
        res["area_vs_width_hist"] = hist.T
        # Lone hit areas are in ADC counts, not PE.
        hits = apply_selection(isolated(lone_hits, c["lone_hits_min_gap"]), self.lone_hit_selection)
        res["lone_hits_area_hist"] = np.histogram(
            hits["area"], bins=n_bins, range=c["lone_hits_area_bounds"]
        )[0]
        res["lone_hits_per_channel"] = np.histogram(
            hits["channel"], bins=n_pmts, range=(0, n_pmts)
        )[0]
        res["aft_hist"] = np.histogram(peaks["area_fraction_top"], bins=n_bins, range=(0, 1))[0]
        res["aft_bounds"] = [0, 1]
        se_hist, edges = np.histogram(peaks["area"], bins=n_bins, range=c["online_se_bounds"])
        res["online_se_gain"] = ((edges[1:] + edges[:-1]) / 2)[np.argmax(se_hist)]
        return res
