"""peaklets and lone_hits, as straxen 4.0.0's Peaklets plugin makes them.

The chain per chunk: hits -> peaks (gap 700 ns) -> clipped to the chunk -> lone hits integrated
-> hitlets (hits widened to their integration bounds) -> sum waveforms -> properties ->
natural-breaks splitting -> saturation correction -> tight coincidence, hit timing features and
hit counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from straxd.core.dtypes import DIGITAL_SUM_WAVEFORM_CHANNEL, TIME_FIELDS
from straxd.core.peak_waveform import overlap_indices, sum_waveform
from straxd.core.peaks import fully_contained_in, interval_ends
from straxd.core.rows import sort_by_time_in_place, stable_time_order


@numba.njit(nogil=True, cache=True)
def touching_windows(
    thing_start: np.ndarray,
    thing_end: np.ndarray,
    container_start: np.ndarray,
    container_end: np.ndarray,
    window: int = 0,
) -> np.ndarray:
    """[first, last) indices of the things that reach within ``window`` of each container."""
    n = len(thing_start)
    order = np.argsort(container_end, kind="mergesort")
    left_i = right_i = 0
    result = np.zeros((len(container_start), 2), dtype=np.int32)
    for i in range(len(container_start)):
        while left_i <= n - 1 and thing_end[left_i] <= container_start[i] - window:
            left_i += 1
        result[i, 0] = left_i
    for i in order:
        while right_i <= n - 1 and thing_start[right_i] < container_end[i] + window:
            right_i += 1
        result[i, 1] = right_i
    return result


def outside_regions(peaklets: np.ndarray, start: int, end: int) -> np.ndarray:
    """The intervals between peaklets (and the chunk edges)."""
    if not len(peaklets):
        return np.zeros(0, dtype=TIME_FIELDS)
    out = np.zeros(len(peaklets) + 1, dtype=TIME_FIELDS)
    ends = interval_ends(peaklets)
    out["time"][0], out["endtime"][0] = start, peaklets["time"][0]
    out["time"][1:-1], out["endtime"][1:-1] = ends[:-1], peaklets["time"][1:]
    out["time"][-1], out["endtime"][-1] = ends[-1], end
    return out


@numba.njit(nogil=True, cache=True)
def tight_coincidence(
    hit_max_times: np.ndarray,
    hit_channels: np.ndarray,
    peak_max_times: np.ndarray,
    left: int,
    right: int,
    first_channel: int,
    last_channel: int,
) -> np.ndarray:
    """Channels with a hit maximum within [-left, right] ns of each peak's maximum."""
    left_hit_i = 0
    result = np.zeros(len(peak_max_times), dtype=np.int16)
    seen = np.zeros(last_channel - first_channel + 1, dtype=np.bool_)
    for p_i in range(len(peak_max_times)):
        seen[:] = 0
        for left_hit_i in range(left_hit_i, len(hit_max_times)):  # noqa: B020 - resumes
            d = hit_max_times[left_hit_i] - peak_max_times[p_i]
            if (-left <= d) & (d <= right):
                seen[hit_channels[left_hit_i] - first_channel] = 1
            if d > right:
                break
        result[p_i] = np.sum(seen)
    return result


def add_hit_features(
    hitlets: np.ndarray, peaklets: np.ndarray, by_max_time: np.ndarray | None = None
) -> None:
    """Largest and smallest gap between hit maxima, first and last channel by hit maximum.

    ``by_max_time`` is ``np.argsort(hitlets["max_time"], kind="mergesort")`` if the caller has it.
    """
    if by_max_time is None:
        by_max_time = stable_time_order(hitlets["max_time"])
    max_diff, min_diff, first, last = _hit_features(
        fully_contained_in(hitlets, peaklets),
        np.ascontiguousarray(hitlets["max_time"]),
        np.ascontiguousarray(hitlets["channel"]),
        by_max_time,
        len(peaklets),
        DIGITAL_SUM_WAVEFORM_CHANNEL,
    )
    peaklets["max_diff"] = max_diff
    peaklets["min_diff"] = min_diff
    peaklets["first_channel"] = first
    peaklets["last_channel"] = last


@numba.njit(nogil=True, cache=True)
def _hit_features(
    containers: np.ndarray,
    max_time: np.ndarray,
    channel: np.ndarray,
    by_max_time: np.ndarray,
    n_peaks: int,
    no_channel: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per peak, over its hits ordered (stably) by maximum: gaps' max and min, first/last channel.

    One pass over all hits in stable maximum order visits each peak's hits in exactly the order
    a stable sort of that peak's hits alone gives. Peaks without hits keep -1 gaps and
    ``no_channel``; one hit gives channels but no gaps.
    """
    max_diff = np.full(n_peaks, -1, dtype=np.int64)
    min_diff = np.full(n_peaks, -1, dtype=np.int64)
    first = np.full(n_peaks, no_channel, dtype=np.int64)
    last = np.full(n_peaks, no_channel, dtype=np.int64)
    previous = np.zeros(n_peaks, dtype=np.int64)  # maximum of the peak's hit seen last
    seen = np.zeros(n_peaks, dtype=np.bool_)
    for hit_i in by_max_time:
        p_i = containers[hit_i]
        if p_i < 0:
            continue
        if seen[p_i]:
            gap = max_time[hit_i] - previous[p_i]
            max_diff[p_i] = max(max_diff[p_i], gap)
            min_diff[p_i] = gap if min_diff[p_i] == -1 else min(min_diff[p_i], gap)
        else:
            first[p_i] = channel[hit_i]
            seen[p_i] = True
        previous[p_i] = max_time[hit_i]
        last[p_i] = channel[hit_i]
    return max_diff, min_diff, first, last


@numba.njit(nogil=True, cache=True)
def _saturation_inner(
    channel_saturated: np.ndarray,
    records: np.ndarray,
    p: np.ndarray,
    to_pe: np.ndarray,
    b_sumwf: np.ndarray,
    b_pulse: np.ndarray,
    b_index: np.ndarray,
    reference_length: int,
    min_reference_length: int,
) -> None:
    """Rescale saturated channels' records to the unsaturated channels' waveform shape."""
    dt = records["dt"][0]
    for ch in range(len(channel_saturated)):
        if not channel_saturated[ch]:
            continue
        b = b_pulse[ch]
        bl = np.inf
        for record_i in b_index[ch]:
            if record_i == -1:
                break
            bl = min(bl, records["baseline"][record_i])
        s0 = np.argmax(b >= np.int16(bl))
        lo = max(0, s0 - reference_length)
        if (b[lo:s0] * to_pe[ch] > 1).sum() < min_reference_length:
            continue
        if (b_sumwf[lo:s0] > 1).sum() < min_reference_length:
            continue
        if np.sum(b[lo:s0]) * to_pe[ch] / np.sum(b_sumwf[lo:s0]) > 1:
            continue
        scale = np.sum(b[lo:s0]) / np.sum(b_sumwf[lo:s0])
        for record_i in b_index[ch]:
            if record_i == -1:
                break
            r = records[record_i]
            (ra, rb), (ba, bb) = overlap_indices(
                r["time"] // dt, r["length"], p["time"] // dt + s0, p["length"] * p["dt"] // dt - s0
            )
            if rb == ra:
                continue
            sa, sb = ba + s0, bb + s0  # buffer indices from the saturation onset
            apax = scale * max(b_sumwf[sa:sb])
            if np.int32(apax) >= 2**15:
                bshift = int(np.floor(np.log2(apax) - 14))
                tmp = r["data"].astype(np.int32)
                tmp[ra:rb] = b_sumwf[sa:sb] * scale
                r["area"] = np.sum(tmp)
                r["data"][:] = np.right_shift(tmp, bshift)
                r["amplitude_bit_shift"] += bshift
            else:
                r["data"][ra:rb] = b_sumwf[sa:sb] * scale
                r["area"] = np.sum(r["data"])


@numba.njit(nogil=True, cache=True)
def _saturation_buffers(
    records: np.ndarray,
    peaks: np.ndarray,
    peak_list: np.ndarray,
    record_ranges: np.ndarray,
    to_pe: np.ndarray,
    reference_length: int,
    min_reference_length: int,
    len_buffer: int,
) -> bool:
    dt = records[0]["dt"]
    n_channels = len(peaks[0]["saturated_channel"])
    max_nrecord = len_buffer // len(records[0]["data"]) + 1
    overflowed = False
    b_sumwf = np.zeros(len_buffer, dtype=np.float32)
    b_pulse = np.zeros((n_channels, len_buffer), dtype=np.int16)
    b_index = np.zeros((n_channels, max_nrecord), dtype=np.int64)
    for ix in range(len(peak_list)):
        peak_i = peak_list[ix]
        b_sumwf[:] = 0
        b_pulse[:] = 0
        b_index[:] = -1
        p = peaks[peak_i]
        channel_saturated = p["saturated_channel"] > 0
        for record_i in range(record_ranges[ix][0], record_ranges[ix][1]):
            r = records[record_i]
            (ra, rb), (ba, bb) = overlap_indices(
                r["time"] // dt, r["length"], p["time"] // dt, p["length"] * p["dt"] // dt
            )
            ch = r["channel"]
            if channel_saturated[ch]:
                b_pulse[ch, ba:bb] += r["data"][ra:rb]
                # straxen's row holds max_nrecord indices; a full row overwrites its smallest.
                slot = np.argmin(b_index[ch])
                overflowed |= b_index[ch, slot] >= 0
                b_index[ch, slot] = record_i
            else:
                b_sumwf[ba:bb] += r["data"][ra:rb] * to_pe[ch]
        _saturation_inner(
            channel_saturated,
            records,
            p,
            to_pe,
            b_sumwf,
            b_pulse,
            b_index,
            reference_length,
            min_reference_length,
        )
        peaks[peak_i]["length"] = p["length"] * p["dt"] / dt
        peaks[peak_i]["dt"] = dt
    return overflowed


@dataclass
class SaturationBuffer:
    """straxen's saturation buffer, sized by the longest peak of the chunk.

    Its rows hold the indices of a saturated channel's records in one peak, as many as the size
    allows; a peak with more loses the first (straxen's behaviour). The size therefore depends on
    the other peaks of the chunk: a chunk processed in pieces sets ``samples`` to the whole
    chunk's, and ``overflowed`` tells whether a piece's own size made a difference.
    """

    samples: int | None = None  # forced size in samples; None: from the peaks given
    used_samples: int = 0
    overflowed: bool = False  # a saturated channel of some peak had more records than a row


def longest_samples(peaks: np.ndarray, dt: int) -> int:
    """straxen's saturation buffer size for these peaks: the longest, in samples of ``dt``."""
    if not len(peaks):
        return 0
    return int(np.max(peaks["length"].astype(np.int64) * peaks["dt"]) // dt + 1)


def peak_saturation_correction(
    records: np.ndarray,
    record_links: tuple[np.ndarray, np.ndarray],
    peaks: np.ndarray,
    hitlets: np.ndarray,
    to_pe: np.ndarray,
    reference_length: int = 100,
    min_reference_length: int = 20,
    n_top_channels: int = 0,
    store_data_top: bool = False,
    store_data_start: bool = False,
    buffer: SaturationBuffer | None = None,
) -> np.ndarray:
    """Correct peaks with saturated channels (records are changed in place); their indices."""
    if not len(records) or not len(peaks):
        return np.zeros(0, dtype=np.int64)
    peak_list = np.where(peaks["n_saturated_channels"] > 0)[0]
    chosen = peaks[peak_list]
    ranges = touching_windows(
        records["time"], interval_ends(records), chosen["time"], interval_ends(chosen)
    )
    buffer = buffer or SaturationBuffer()
    buffer.used_samples = buffer.samples or longest_samples(peaks, int(records[0]["dt"]))
    overflowed = _saturation_buffers(
        records,
        peaks,
        peak_list,
        ranges,
        np.asarray(to_pe, dtype=np.float64),
        reference_length,
        min_reference_length,
        buffer.used_samples,
    )
    buffer.overflowed = buffer.overflowed or bool(overflowed)
    sum_waveform(
        peaks,
        hitlets,
        records,
        record_links,
        to_pe,
        n_top_channels,
        store_data_top,
        store_data_start,
        select=peak_list,
    )
    return peak_list


def hitlets_of(hits: np.ndarray, copy: bool = True) -> np.ndarray:
    """Hits widened to their integration bounds, time-sorted (bounds must be set).

    With ``copy=False`` the hits themselves become the hitlets (and are re-sorted in place):
    widening moves each a few samples earlier, so they stay nearly in order.
    """
    hitlets = hits.copy() if copy else hits
    if len(hitlets):
        _widen(hitlets)
    return sort_by_time_in_place(hitlets)


@numba.njit(nogil=True, cache=True)
def _widen(hits: np.ndarray) -> None:
    """Start and length from the integration bounds, with numpy's int16 arithmetic (wrapping)."""
    for h in hits:
        h["time"] -= np.int16(np.int16(h["left"] - h["left_integration"]) * h["dt"])
        h["length"] = np.int16(h["right_integration"] - h["left_integration"])
