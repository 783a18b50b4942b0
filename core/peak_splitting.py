"""Splitting peaks with the natural-breaks criterion, as strax's NaturalBreaksSplitter.

A peak is split where the sum of the within-piece squared deviations of its waveform drops the
most (the goodness of split), if that beats an area- and rise-time-dependent threshold. Pieces
get fresh waveforms from the hits and are split again, up to ``iterations`` times. As in strax,
the second piece ends one sample before the original waveform does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from straxd.core.errors import BadInput
from straxd.core.peak_properties import compute_properties
from straxd.core.peak_waveform import sum_waveform
from straxd.core.rows import sort_by_time


@numba.njit(nogil=True, cache=True)
def sum_squared_deviations(waveform: np.ndarray, normalize: bool = False) -> np.ndarray:
    """Running (left to right) weighted sum of squared deviations of sample index from the mean."""
    mean = sum_weights = s = 0
    result = np.zeros(len(waveform))
    for i, w in enumerate(waveform):
        w = max(0, w)
        sum_weights += w
        if sum_weights == 0:
            continue
        mean_old = mean
        mean = mean_old + (w / sum_weights) * (i - mean_old)
        s += w * (i - mean_old) * (i - mean)
        result[i] = s
        if normalize:
            result[i] /= sum_weights
    return result


@numba.njit(nogil=True, cache=True)
def symmetric_moving_average(a: np.ndarray, wing_width: int) -> np.ndarray:
    """Mean over [i - wing, i + wing] for every sample (windows cut at the ends)."""
    if wing_width == 0:
        return a
    n = len(a)
    out = np.empty(n, dtype=a.dtype)
    total = a[:wing_width].sum()
    count = wing_width
    for i in range(n):
        just_out = i - wing_width - 1
        if just_out > 0:
            count -= 1
            total -= a[just_out]
        just_in = i + wing_width
        if just_in < n:
            count += 1
            total += a[just_in]
        out[i] = total / count
    return out


@numba.njit(nogil=True, cache=True)
def natural_breaks_gof(
    w: np.ndarray,
    dt: int,
    normalize: bool = False,
    split_low: bool = False,
    filter_wing_width: int = 0,
) -> np.ndarray:
    """Goodness of split at each sample: ~0 for one sharp peak, ~1 for two far-apart ones."""
    left = sum_squared_deviations(w, normalize=normalize)
    right = sum_squared_deviations(w[::-1], normalize=normalize)[::-1]
    gof = 1 - (left + right) / left[-1]
    if split_low:
        filter_n = filter_wing_width // dt - 1
        filtered = symmetric_moving_average(w, filter_n) if filter_n > 0 else w
        gof *= 1 - filtered / filtered.max()
    result: np.ndarray = gof
    return result


@numba.njit(nogil=True, cache=True)
def _split_once(
    peaks: np.ndarray,
    thresholds: np.ndarray,
    orig_dt: int,
    min_area: float,
    filter_wing_width: int,
    is_split: np.ndarray,
    out: np.ndarray,
) -> int:
    """Split every peak whose best split beats its threshold; returns the new peaks written."""
    k = 0
    for p_i in range(len(peaks)):
        p = peaks[p_i]
        if p["area"] < min_area:
            continue
        w = p["data"][: p["length"]]
        gofs = natural_breaks_gof(w, p["dt"], False, True, filter_wing_width)
        max_i = np.argmax(gofs)
        if gofs[max_i] > thresholds[p_i]:
            is_split[p_i] = True
            previous: Any = 0
            for split_i in (max_i, len(w) - 1):
                r = out[k]
                r["time"] = p["time"] + previous * p["dt"]
                r["channel"] = p["channel"]
                r["dt"] = orig_dt
                r["length"] = (split_i - previous) * p["dt"] / orig_dt
                r["max_gap"] = -1
                r["max_diff"] = -1
                r["min_diff"] = -1
                r["first_channel"] = -1
                r["last_channel"] = -1
                if r["length"] <= 0:
                    return -1 - p_i
                k += 1
                previous = split_i
        p["max_goodness_of_split"] = gofs[max_i]
    return k


Threshold = Callable[[np.ndarray], np.ndarray]


def split_peaks(
    peaks: np.ndarray,
    hits: np.ndarray,
    records: np.ndarray,
    record_links: tuple[np.ndarray, np.ndarray],
    to_pe: np.ndarray,
    threshold: Threshold,
    *,
    min_area: float = 0,
    iterations: int = 1,
    filter_wing_width: int = 0,
    n_top_channels: int = 0,
    store_data_top: bool = False,
    store_data_start: bool = False,
) -> np.ndarray:
    """Peaks split by natural breaks, waveforms and properties of the pieces recomputed."""
    if not len(records) or not len(peaks) or not iterations:
        return peaks
    is_split = np.zeros(len(peaks), dtype=np.bool_)
    out = np.zeros(2 * len(peaks), dtype=peaks.dtype)
    n = _split_once(
        peaks,
        np.asarray(threshold(peaks), dtype=np.float64),
        int(records[0]["dt"]),
        min_area,
        filter_wing_width,
        is_split,
        out,
    )
    if n < 0:
        raise BadInput(f"splitting peak {-1 - n} would create an empty peak")
    if not is_split.any():
        return peaks
    pieces = out[:n]
    sum_waveform(
        pieces, hits, records, record_links, to_pe, n_top_channels, store_data_top, store_data_start
    )
    compute_properties(pieces, n_top_channels)
    pieces = split_peaks(
        pieces,
        hits,
        records,
        record_links,
        to_pe,
        threshold,
        min_area=min_area,
        iterations=iterations - 1,
        filter_wing_width=filter_wing_width,
        n_top_channels=n_top_channels,
        store_data_top=store_data_top,
        store_data_start=store_data_start,
    )
    if np.any(pieces["length"] == 0):
        raise BadInput("splitting produced a zero-length peak")
    return sort_by_time(np.concatenate([peaks[~is_split], pieces]))


# straxen's peak_split_gof_threshold: (None, S1-like (log10 area, gof) curve, S2-like curve).
DEFAULT_GOF_THRESHOLD = (None, ((0.5, 1.0), (6.0, 0.4)), ((2.5, 1.0), (5.625, 0.4)))


def natural_breaks_threshold(
    peaks: np.ndarray,
    gof_threshold: tuple = DEFAULT_GOF_THRESHOLD,  # type: ignore[type-arg]
) -> np.ndarray:
    """Split threshold per peak: blends the S1 and S2 curves by rise time (straxen's Peaklets)."""
    rise_time = -peaks["area_decile_from_midpoint"][:, 1]
    f_s2 = 8 * np.log10(rise_time.clip(1, 1e5) / 100)
    f_s2 = 1 / (1 + np.exp(-f_s2))
    log_area = np.log10(peaks["area"].clip(1, 1e7))
    s2_curve = np.interp(log_area, *np.transpose(gof_threshold[2]))
    s1_curve = np.interp(log_area, *np.transpose(gof_threshold[1]))
    result: np.ndarray = f_s2 * s2_curve + (1 - f_s2) * s1_curve
    return result
