"""peaks (straxen's PeaksVanilla) and peak_basics (PeakBasicsVanilla).

peaks are the peaklets with every non-S1 peaklet that touches a merged S2 replaced by that S2;
S1s (and far-xy S2s, type 20) are kept as they are, so S1s may overlap S2s. peak_basics is a
projection of peaks onto the properties analyses use most.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.chunk import endtime
from straxd.core.dtypes import N_TOP_PMTS, N_TPC_PMTS, PEAK_BASICS_DTYPE, peaks_dtype
from straxd.core.peaklets import touching_windows
from straxd.core.peaks import fully_contained_in
from straxd.core.plugin import Option, Plugin, SaveWhen
from straxd.core.rows import sort_by_time

FAR_XYPOS_S2_TYPE = 20


@numba.njit(nogil=True, cache=True)
def _replace_merged(
    result: np.ndarray, orig: np.ndarray, merge: np.ndarray, skip_windows: np.ndarray
) -> None:
    result_i = window_i = 0
    skip_start, skip_end = skip_windows[0, 0], skip_windows[0, 1]
    n_orig = len(orig)
    for orig_i in range(n_orig):
        if orig_i == skip_end:
            result[result_i] = merge[window_i]
            result_i += 1
            window_i += 1
            if window_i == len(skip_windows):
                skip_start = skip_end = n_orig + 100
            else:
                skip_start, skip_end = skip_windows[window_i, 0], skip_windows[window_i, 1]
        if orig_i >= skip_start:
            continue
        result[result_i] = orig[orig_i]
        result_i += 1
    if skip_end == n_orig:
        result[result_i] = merge[window_i]


def replace_merged(orig: np.ndarray, merge: np.ndarray) -> np.ndarray:
    """``merge`` plus the members of ``orig`` that touch none of them, in time order."""
    if not len(merge):
        return orig
    if not len(orig):
        return merge
    windows = touching_windows(orig["time"], endtime(orig), merge["time"], endtime(merge))
    n_skip = int(np.diff(windows, axis=1).sum())
    result = np.zeros(len(orig) - n_skip + len(merge), dtype=orig.dtype)
    _replace_merged(result, orig, merge, windows)
    return result


def make_peaks(
    peaklets: np.ndarray, merged_s2s: np.ndarray, merge_s0: bool, out_dtype: np.dtype[Any]
) -> np.ndarray:
    """straxen's PeaksVanilla.compute (peaklets carry their classification)."""
    converted = np.zeros(len(merged_s2s), dtype=peaklets.dtype)
    for name in peaklets.dtype.names or ():
        if name in (merged_s2s.dtype.names or ()):
            converted[name] = merged_s2s[name]
    kept = peaklets["type"] == FAR_XYPOS_S2_TYPE
    kept |= peaklets["type"] == 1 if merge_s0 else np.isin(peaklets["type"], [0, 1])
    combined = sort_by_time(
        np.concatenate([peaklets[kept], replace_merged(peaklets[~kept], converted)])
    )
    peaks = np.zeros(len(combined), dtype=out_dtype)
    for name in out_dtype.names or ():
        if name in (combined.dtype.names or ()):
            peaks[name] = combined[name]
    if len(merged_s2s):
        peaks["merged"] = fully_contained_in(peaks, merged_s2s) >= 0
    return peaks


class Peaks(Plugin):
    """peaklets + merged_s2s -> peaks (not saved unless asked for, as in straxen)."""

    provides = ("peaks",)
    depends_on = ("peaklets", "peaklet_classification", "merged_s2s")
    data_kind = "peaks"
    lineage_name = "StraxdPeaks"
    version = "0.1.3"
    compressor = "zstd"
    save_when = SaveWhen.EXPLICIT
    options = (
        Option("merge_s0", True, "merge unclassified peaklets into merged S2s"),
        Option("n_tpc_pmts", N_TPC_PMTS, "number of TPC PMTs"),
    )

    def infer_dtype(self) -> np.dtype[Any]:
        """peaklet fields plus ``merged``, aligned."""
        return peaks_dtype(self.config["n_tpc_pmts"])

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """One chunk."""
        return make_peaks(
            inputs["peaklets"], inputs["merged_s2s"], self.config["merge_s0"], self.infer_dtype()
        )


def make_peak_basics(p: np.ndarray, n_top_pmts: int) -> np.ndarray:
    """straxen's PeakBasicsVanilla.compute."""
    r = np.zeros(len(p), dtype=PEAK_BASICS_DTYPE)
    for name in (
        "time",
        "center_time",
        "length",
        "dt",
        "median_time",
        "area",
        "area_fraction_top",
        "type",
        "merged",
        "max_diff",
        "min_diff",
        "first_channel",
        "last_channel",
        "n_hits",
        "tight_coincidence",
        "n_saturated_channels",
    ):
        r[name] = p[name]
    r["endtime"] = p["time"] + p["dt"] * p["length"]
    r["n_channels"] = (p["area_per_channel"] > 0).sum(axis=1)
    r["top_n_channels"] = (p["area_per_channel"][:, :n_top_pmts] > 0).sum(axis=1)
    r["range_50p_area"] = p["width"][:, 5]
    r["range_90p_area"] = p["width"][:, 9]
    r["max_pmt"] = np.argmax(p["area_per_channel"], axis=1)
    r["max_pmt_area"] = np.max(p["area_per_channel"], axis=1)
    r["rise_time"] = -p["area_decile_from_midpoint"][:, 1]
    return r


class PeakBasics(Plugin):
    """peaks -> peak_basics."""

    provides = ("peak_basics",)
    depends_on = ("peaks",)
    data_kind = "peaks"
    lineage_name = "StraxdPeakBasics"
    version = "0.1.7"
    options = (Option("n_top_pmts", N_TOP_PMTS, "number of top PMTs"),)

    def infer_dtype(self) -> np.dtype[Any]:
        """straxen's peak_basics fields."""
        return PEAK_BASICS_DTYPE

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """One chunk."""
        return make_peak_basics(inputs["peaks"], self.config["n_top_pmts"])
