"""Peak shape properties: area-fraction times, widths, centre time, area fraction top.

Widths are measured on the stored (possibly downsampled) waveform, interpolating inside the
sample where an area fraction is reached, with the peak's ``area`` as the total.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _index_of_fraction(peak: np.ndarray, fractions: np.ndarray, result: np.ndarray) -> None:
    area_tot = peak["area"]
    fraction_seen = 0
    k = 0
    needed = fractions[k]
    for i, x in enumerate(peak["data"][: peak["length"]]):
        fraction_this_sample = x / area_tot
        while fraction_seen + fraction_this_sample >= needed:
            area_needed = area_tot * (needed - fraction_seen)
            result[k] = i + area_needed / x if x != 0 else i
            k += 1
            if k > len(fractions) - 1:
                break
            needed = fractions[k]
        if k > len(fractions) - 1:
            break
        fraction_seen += fraction_this_sample
    if needed == 1:
        result[-1] = peak["length"]


@numba.njit(nogil=True, cache=True)
def index_of_fraction(peaks: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Fractional sample index where each peak reaches each area fraction (0 for area <= 0)."""
    results = np.zeros((len(peaks), len(fractions)), dtype=np.float32)
    for p_i in range(len(peaks)):
        if peaks[p_i]["area"] <= 0:
            continue
        _index_of_fraction(peaks[p_i], fractions, results[p_i])
    return results


def compute_widths(peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """median_time, width and area_decile_from_midpoint in ns."""
    widths = np.linspace(0, 1, len(peaks[0]["width"]))[1:]
    fractions = np.concatenate([0.5 - widths / 2, 0.5 + widths / 2])
    fractions = np.sort(np.unique(np.append(fractions, [0.5])), kind="mergesort")
    times = index_of_fraction(peaks, fractions)
    times *= peaks["dt"].reshape(-1, 1)
    i = len(fractions) // 2
    median_time = times[:, i]
    width = times[:, i:] - times[:, ::-1][:, i:]
    decile_from_midpoint = times[:, ::2] - times[:, i].reshape(-1, 1)
    return median_time, width, decile_from_midpoint


@numba.njit(nogil=True, cache=True)
def compute_center_time(peaks: np.ndarray) -> np.ndarray:
    """Area-weighted mean time, half a sample in, clipped to the peak."""
    center = np.zeros(len(peaks), dtype=np.int64)
    for p_i in range(len(peaks)):
        p = peaks[p_i]
        data = p["data"][: p["length"]]
        if data.sum() == 0.0:
            center[p_i] = p["time"]
            continue
        t = np.average(np.arange(p["length"]), weights=data)
        center[p_i] = (t + 1 / 2) * p["dt"]
        center[p_i] += p["time"]
    ends = peaks["time"] + peaks["length"] * peaks["dt"]
    clipped: np.ndarray = np.minimum(np.maximum(center, peaks["time"]), ends)
    return clipped


@numba.njit(nogil=True, cache=True)
def compute_area_fraction_top(peaks: np.ndarray, n_top_channels: int) -> np.ndarray:
    """Fraction of the area in the first ``n_top_channels``; NaN for area <= 0."""
    result = np.zeros(len(peaks), dtype=np.float32)
    for p_i in range(len(peaks)):
        p = peaks[p_i]
        top = p["area_per_channel"][:n_top_channels].sum()
        result[p_i] = top / p["area"] if p["area"] > 0 else np.nan
    return result


def compute_properties(
    peaks: np.ndarray, n_top_channels: int = 0, select: np.ndarray | None = None
) -> None:
    """Fill median_time, width, area_decile_from_midpoint, center_time, area_fraction_top."""
    if not len(peaks) or (select is not None and not len(select)):
        return
    index: np.ndarray | slice = slice(None) if select is None else select
    chosen = peaks[index]
    median_time, width, deciles = compute_widths(chosen)
    peaks["median_time"][index] = median_time
    peaks["width"][index] = width
    peaks["area_decile_from_midpoint"][index] = deciles
    peaks["center_time"][index] = compute_center_time(chosen)
    if n_top_channels > 0:
        peaks["area_fraction_top"][index] = compute_area_fraction_top(chosen, n_top_channels)
