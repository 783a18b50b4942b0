"""merged_s2s (straxen 4.0.0's MergedS2sVanilla): S2 peaklets merged across small gaps.

Gaps between (non-S1) peaklets are merged smallest first while the merged area's gap threshold
allows and the result stays shorter than ``s2_merge_max_duration``; groups must start with an S2.
Merged waveforms are the members' waveforms upsampled to a common dt; lone hits inside a merged S2
add their area as a delta at their time.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from straxd.core.chunk import endtime
from straxd.core.dtypes import N_TOP_PMTS, N_TPC_PMTS, merged_s2s_dtype, peak_dtype
from straxd.core.peak_properties import compute_properties
from straxd.core.peak_waveform import store_downsampled_waveform
from straxd.core.peaks import fully_contained_in
from straxd.core.plugin import Option, Plugin
from straxd.core.records import per_channel
from straxd.core.rows import sort_by_time


@numba.njit(nogil=True, cache=True)
def merge_s2_threshold(log_area: float, gap_thresholds: np.ndarray) -> float:
    """Largest gap (ns) that may be merged for a merged S2 of this log10 area (interpolated)."""
    for i in range(len(gap_thresholds)):
        a1, g1 = gap_thresholds[i, 0], gap_thresholds[i, 1]
        if log_area < a1:
            if i == 0:
                return float(g1)
            a0, g0 = gap_thresholds[i - 1, 0], gap_thresholds[i - 1, 1]
            return float((log_area - a0) * (g1 - g0) / (a1 - a0) + g0)
    return float(gap_thresholds[-1, 1])


@numba.njit(nogil=True, cache=True)
def _filter_s1_starts(
    start: np.ndarray, types: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    for k in range(len(start)):
        while types[start[k]] != 2:
            if end[k] - start[k] <= 1:
                break
            start[k] += 1
    keep = (types[start] == 2) & (end - start >= 1)
    return start[keep], end[keep] + 1


@numba.njit(nogil=True, cache=True)
def merge_instructions(
    starts: np.ndarray,
    ends: np.ndarray,
    areas: np.ndarray,
    types: np.ndarray,
    gap_thresholds: np.ndarray,
    max_duration: int,
    max_gap: float,
    max_area: float,
) -> tuple[np.ndarray, np.ndarray]:
    """First and exclusive last peaklet index of every group to merge."""
    gaps = starts[1:] - ends[:-1]
    first = np.arange(len(starts))
    last = np.arange(len(starts))
    for gap_i in np.argsort(gaps, kind="mergesort"):
        a = first[gap_i]
        b = last[gap_i + 1]
        total = np.sum(areas[a : b + 1])
        gap = gaps[gap_i]
        if gap > max_gap:
            break
        if total > max_area:
            continue
        if total > 0 and gap > merge_s2_threshold(np.log10(total), gap_thresholds):
            continue
        if ends[b] - starts[a] >= max_duration:
            continue
        first[a : b + 1] = first[a]
        last[a : b + 1] = last[b]
    return _filter_s1_starts(np.unique(first), types, np.unique(last))


@numba.njit(nogil=True, cache=True)
def _merge_peaks(
    peaks: np.ndarray, start: np.ndarray, end: np.ndarray, max_buffer: int
) -> np.ndarray:
    new_peaks = np.zeros(len(start), dtype=peaks.dtype)
    buffer = np.zeros(max_buffer, dtype=np.float32)
    buffer_top = np.zeros(max_buffer, dtype=np.float32)
    for new_i in range(len(new_peaks)):
        new_p = new_peaks[new_i]
        new_p["min_diff"] = 2147483647
        old = peaks[start[new_i] : end[new_i]]
        common_dt = old["dt"][0]
        for k in range(1, len(old)):
            common_dt = math.gcd(common_dt, old["dt"][k])
        first, last = old[0], old[-1]
        new_p["channel"] = first["channel"]
        new_p["time"] = first["time"]
        new_p["dt"] = common_dt
        new_p["length"] = (last["time"] + last["length"] * last["dt"] - new_p["time"]) // common_dt
        bl = last["time"] - first["time"]
        bl += last["length"] * old["dt"].max()
        bl = min(int(bl / common_dt), max_buffer)
        buffer[:bl] = 0
        buffer_top[:bl] = 0
        max_data = np.zeros(len(old), dtype=np.float32)
        for k in range(len(old)):
            p = old[k]
            up = p["dt"] // common_dt
            n_after = p["length"] * up
            i0 = (p["time"] - new_p["time"]) // common_dt
            buffer[i0 : i0 + n_after] = np.repeat(p["data"][: p["length"]], up) / up
            buffer_top[i0 : i0 + n_after] = np.repeat(p["data_top"][: p["length"]], up) / up
            new_p["area"] += p["area"]
            new_p["area_per_channel"] += p["area_per_channel"]
            new_p["n_hits"] += p["n_hits"]
            new_p["saturated_channel"][p["saturated_channel"] == 1] = 1
            max_data[k] = p["data"][: p["length"]].max()
            new_p["max_diff"] = max(new_p["max_diff"], p["max_diff"])
            new_p["min_diff"] = min(new_p["min_diff"], p["min_diff"])
        store_downsampled_waveform(new_p, buffer, True, True, buffer_top)
        new_p["n_saturated_channels"] = new_p["saturated_channel"].sum()
        new_p["max_gap"] = -1
        new_p["max_goodness_of_split"] = np.nan
        new_p["first_channel"] = old[0]["first_channel"]
        new_p["last_channel"] = old[-1]["last_channel"]
        new_p["tight_coincidence"] = old["tight_coincidence"][np.argmax(max_data)]
    return new_peaks


@numba.njit(nogil=True, cache=True)
def _add_lone_hits(
    peaks: np.ndarray, lone_hits: np.ndarray, to_pe: np.ndarray, container: np.ndarray
) -> int:
    """Add contained lone hits as deltas; returns the index of a misplaced hit, or -1."""
    for k in range(len(lone_hits)):
        if container[k] == -1:
            continue
        h = lone_hits[k]
        p = peaks[container[k]]
        area = h["area"] * to_pe[h["channel"]]
        p["area"] += area
        p["area_per_channel"][h["channel"]] += area
        index = (h["time"] - p["time"]) // p["dt"]
        if index < 0 or index > len(p["data"]):
            return k
        p["data"][index] += area
    return -1


def add_lone_hits(peaks: np.ndarray, lone_hits: np.ndarray, to_pe: np.ndarray) -> None:
    """Lone hits fully inside a peak add their area (no top or start waveforms here)."""
    container = fully_contained_in(lone_hits, peaks)
    bad = _add_lone_hits(peaks, lone_hits, np.asarray(to_pe, dtype=np.float64), container)
    if bad >= 0:
        raise ValueError(f"lone hit {bad} lies outside the peak containing it")


class MergedS2s(Plugin):
    """peaklets (+ classification, lone_hits) -> merged_s2s."""

    provides = ("merged_s2s",)
    depends_on = ("peaklets", "peaklet_classification", "lone_hits")
    data_kind = "merged_s2s"
    lineage_name = "StraxdMergedS2s"
    version = "1.0.3"
    options = (
        Option("s2_merge_max_duration", 50_000, "no merged S2 longer than this (ns)"),
        Option(
            "s2_merge_gap_thresholds_vanilla",
            ((1.7, 2.65e4), (4.0, 2.6e3), (5.0, 0.0)),
            "(log10 area, largest mergeable gap in ns) points",
        ),
        Option("gain_model", 0.005, "PE per ADC x sample: number, per-channel list or file"),
        Option("merge_without_s1", True, "ignore S1s when merging"),
        Option("n_top_pmts", N_TOP_PMTS, "number of top PMTs"),
        Option("n_tpc_pmts", N_TPC_PMTS, "number of TPC PMTs"),
        Option("merged_s2s_get_window_size_factor", 5, "window size factor", track=False),
    )

    def setup(self) -> None:
        """Gains per channel and the overlap window straxen uses."""
        c = self.config
        self.to_pe = per_channel(c["gain_model"], c["n_tpc_pmts"], "gain_model")
        window = c["merged_s2s_get_window_size_factor"] * (
            int(c["s2_merge_gap_thresholds_vanilla"][0][1]) + c["s2_merge_max_duration"]
        )
        self.window_ns = (window, window)

    def infer_dtype(self) -> np.dtype[Any]:
        """Classification fields, then the peaklet fields, then ``merged``."""
        return merged_s2s_dtype(self.config["n_tpc_pmts"])

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """Merge one window of peaklets."""
        return merge_s2s(
            inputs["peaklets"], inputs["lone_hits"], self.config, self.to_pe, self.infer_dtype()
        )


def merge_s2s(
    peaklets: np.ndarray,
    lone_hits: np.ndarray,
    c: dict[str, Any],
    to_pe: np.ndarray,
    out_dtype: np.dtype[Any],
) -> np.ndarray:
    """straxen's MergedS2sVanilla.compute."""
    if c["merge_without_s1"]:
        peaklets = peaklets[peaklets["type"] != 1]
    thresholds = np.asarray(c["s2_merge_gap_thresholds_vanilla"], dtype=np.float64)
    if len(peaklets) <= 1 or thresholds[0][1] < 0:
        return np.zeros(0, dtype=out_dtype)
    full = np.zeros(
        len(peaklets), dtype=peak_dtype(c["n_tpc_pmts"], store_data_top=True, store_data_start=True)
    )
    for name in full.dtype.names or ():
        if name in (peaklets.dtype.names or ()):
            full[name] = peaklets[name]
    start, stop = merge_instructions(
        full["time"],
        endtime(full),
        full["area"],
        full["type"],
        thresholds,
        c["s2_merge_max_duration"],
        thresholds[0][1],
        10 ** thresholds[-1][0],
    )
    max_buffer = int(c["s2_merge_max_duration"] // np.gcd.reduce(full["dt"]))
    merged = _merge_peaks(full, start, stop, max_buffer)
    merged["type"] = 2
    compute_properties(merged, c["n_top_pmts"])
    lh = np.copy(lone_hits)
    lh["time"] = lh["time"] - (lh["left"] - lh["left_integration"]) * lh["dt"]
    lh["length"] = lh["right_integration"] - lh["left_integration"]
    add_lone_hits(merged, sort_by_time(lh), to_pe)
    result = np.zeros(len(merged), dtype=out_dtype)
    for name in out_dtype.names or ():
        if name != "merged":
            result[name] = merged[name]
    # straxen sets `merged` on an array that has no such field, so its merged_s2s carry
    # merged=False; kept for equal data (peaks recompute `merged` by containment anyway).
    result["merged"] = False
    return result
