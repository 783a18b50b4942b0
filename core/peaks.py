"""Peak building kernels: grouping hits into peaks, containment, lone-hit integration.

Pure numba, GIL released, no IO. Operation order and float widths follow strax 2.2.3 so results
are bit-identical (area sums accumulate per hit in float32 exactly as strax does).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.dtypes import DIGITAL_SUM_WAVEFORM_CHANNEL, peak_dtype
from straxd.core.errors import BadInput

_FAR_AWAY = np.iinfo(np.int64).max
# find_peaks fills its output in batches, the first of this many peaks, each next one twice as
# large up to _PEAK_BATCH. A piece of a chunk has about a hundred peaks, and a first batch of 10k
# (50 MB with the waveforms) would be fresh memory for the kernel to map and clear every call.
_FIRST_PEAK_BATCH = 256
_PEAK_BATCH = 10_000


def find_peaks(
    hits: np.ndarray,
    adc_to_pe: np.ndarray,
    gap_threshold: int = 300,
    left_extension: int = 20,
    right_extension: int = 150,
    min_area: float = 0,
    min_channels: int = 2,
    max_duration: int = 10_000_000,
    result_dtype: np.dtype[Any] | None = None,
) -> np.ndarray:
    """Group time-sorted hits into peaks as strax does: area, per-channel area, hits, gaps."""
    dtype = result_dtype if result_dtype is not None else peak_dtype(len(adc_to_pe))
    if not len(hits):
        return np.zeros(0, dtype=dtype)
    if hits[0]["dt"] <= 0 or min_channels < 1:
        raise BadInput("hits need a positive dt and min_channels must be >= 1")
    if gap_threshold <= left_extension + right_extension:
        raise BadInput("gap_threshold must be larger than left + right extension")
    if int(hits["channel"].max()) >= len(adc_to_pe):
        raise BadInput(
            f"hit in channel {int(hits['channel'].max())} but only {len(adc_to_pe)} gains"
        )
    pieces = []
    start_hit = 0
    to_pe = np.asarray(adc_to_pe, dtype=np.float64)
    batch = min(_FIRST_PEAK_BATCH, _PEAK_BATCH)
    while start_hit < len(hits):
        buffer = np.zeros(batch, dtype=dtype)
        n, start_hit = _find_peaks(
            hits,
            to_pe,
            gap_threshold,
            left_extension,
            right_extension,
            min_area,
            min_channels,
            max_duration,
            buffer,
            start_hit,
        )
        pieces.append(buffer[:n])
        batch = min(2 * batch, _PEAK_BATCH)
    return np.concatenate(pieces)


@numba.njit(nogil=True, cache=True)
def _find_peaks(
    hits: np.ndarray,
    adc_to_pe: np.ndarray,
    gap_threshold: int,
    left_extension: int,
    right_extension: int,
    min_area: float,
    min_channels: int,
    max_duration: int,
    buffer: np.ndarray,
    first_hit: int,
) -> tuple[int, int]:
    """Fill ``buffer`` from hit ``first_hit`` on; returns (peaks written, next hit to start at)."""
    n_channels = len(buffer[0]["area_per_channel"])
    area_per_channel = np.zeros(n_channels, dtype=np.float32)
    in_peak = False
    peak_endtime = 0
    offset = 0
    for hit_i in range(first_hit, len(hits)):
        hit = hits[hit_i]
        p = buffer[offset]
        t0 = hit["time"]
        dt = hit["dt"]
        t1 = hit["time"] + dt * hit["length"]
        if in_peak:
            p["max_gap"] = max(p["max_gap"], t0 - peak_endtime)
        else:
            area_per_channel *= 0
            peak_endtime = t1
            p["time"] = t0 - left_extension
            p["channel"] = DIGITAL_SUM_WAVEFORM_CHANNEL
            p["dt"] = dt
            p["n_hits"] = 0
            p["area"] = 0
            in_peak = True
            p["max_gap"] = 0
        p["n_hits"] += 1
        peak_endtime = max(peak_endtime, t1)
        hit_area_pe = hit["area"] * adc_to_pe[hit["channel"]]
        area_per_channel[hit["channel"]] += hit_area_pe
        p["area"] += hit_area_pe
        is_last = hit_i == len(hits) - 1
        too_long = far = False
        if not is_last:
            nxt = hits[hit_i + 1]
            far = nxt["time"] - peak_endtime >= gap_threshold
            too_long = (
                nxt["time"]
                - p["time"]
                + nxt["dt"] * nxt["length"]
                + left_extension
                + right_extension
            ) > max_duration
        if is_last or far or too_long:
            in_peak = False
            if p["area"] < min_area:
                continue
            if (area_per_channel != 0).sum() < min_channels:
                continue
            p["length"] = (peak_endtime - p["time"] + right_extension) / dt
            p["area_per_channel"][:] = area_per_channel
            offset += 1
            if offset == len(buffer):
                return offset, hit_i + 1
    return offset, len(hits)


def interval_ends(data: np.ndarray) -> np.ndarray:
    """``chunk.endtime``: the exclusive end of every row as int64, in one pass.

    numpy's ``time + length.astype(int64) * dt.astype(int64)`` allocates three temporaries per
    call, which for hits and records cost more than what the ends are needed for (a 60 s chunk's
    raw_records: 3.6 ms against 8.5). chunk.endtime stays numpy for processes without numba.
    """
    if "endtime" in (data.dtype.names or ()):
        return np.asarray(data["endtime"], dtype=np.int64)
    return _interval_ends(data["time"], data["length"], data["dt"])


@numba.njit(nogil=True, cache=True)
def _interval_ends(time: np.ndarray, length: np.ndarray, dt: np.ndarray) -> np.ndarray:
    ends = np.empty(len(time), dtype=np.int64)
    for i in range(len(time)):
        ends[i] = time[i] + np.int64(length[i]) * np.int64(dt[i])
    return ends


@numba.njit(nogil=True, cache=True)
def clip_peak_times(peaks: np.ndarray, start: int, end: int) -> None:
    """Keep peaks inside [start, end): starts move right, ends are cut (as straxen clips)."""
    for p in peaks:
        if p["time"] < start:
            p["time"] = start
        if p["time"] + p["length"] * p["dt"] > end:
            p["length"] = (end - p["time"]) // p["dt"]


def fully_contained_in(things: np.ndarray, containers: np.ndarray) -> np.ndarray:
    """Index of the container holding each thing entirely, or -1 (both sorted by time)."""
    result = np.full(len(things), -1, dtype=np.int32)
    _fully_contained_in(
        np.asarray(things["time"]),
        np.asarray(containers["time"]),
        interval_ends(things),
        interval_ends(containers),
        result,
    )
    return result


@numba.njit(nogil=True, cache=True)
def _fully_contained_in(
    a_start: np.ndarray,
    b_start: np.ndarray,
    a_end: np.ndarray,
    b_end: np.ndarray,
    result: np.ndarray,
) -> None:
    b_i = 0
    for a_i in range(len(a_start)):
        while b_i < len(b_start) and b_end[b_i] <= a_start[a_i]:
            b_i += 1
        if b_i == len(b_start):
            break
        if b_start[b_i] <= a_start[a_i] and a_end[a_i] <= b_end[b_i]:
            result[a_i] = b_i


def find_hit_integration_bounds(
    hits: np.ndarray,
    excluded: np.ndarray,
    records: np.ndarray,
    save_outside_hits: tuple[int, int],
    n_channels: int,
    allow_bounds_beyond_records: bool = False,
) -> None:
    """Set left/right_integration of hits (in place): extended by ns, clipped to neighbours."""
    if not len(hits):
        return
    # Records clip the bounds only when they may not go beyond them: only then their ends.
    rec_end = np.zeros(0, np.int64) if allow_bounds_beyond_records else interval_ends(records)
    _integration_bounds(
        hits,
        np.asarray(excluded["time"]),
        interval_ends(excluded),
        np.asarray(records["time"]),
        rec_end,
        np.asarray(records["dt"]),
        int(save_outside_hits[0]),
        int(save_outside_hits[1]),
        n_channels,
        allow_bounds_beyond_records,
    )


@numba.njit(nogil=True, cache=True)
def _integration_bounds(
    hits: np.ndarray,
    ex_start: np.ndarray,
    ex_end: np.ndarray,
    rec_start: np.ndarray,
    rec_end: np.ndarray,
    rec_dt: np.ndarray,
    left_ns: int,
    right_ns: int,
    n_channels: int,
    beyond: bool,
) -> None:
    n = len(hits)
    bounds = np.zeros((n, 2), dtype=np.int64)
    last_hit = np.full(n_channels, -1, dtype=np.int32)
    interval_i = 0
    for i in range(n):
        h = hits[i]
        bounds[i, 0] = h["time"] - left_ns
        bounds[i, 1] = h["time"] + h["length"] * h["dt"] + right_ns
        while interval_i < len(ex_start) and ex_start[interval_i] < h["time"]:
            interval_i += 1
        prev_end = ex_end[interval_i - 1] if interval_i != 0 else 0
        next_start = ex_start[interval_i] if interval_i != len(ex_start) else _FAR_AWAY
        r_i = h["record_i"]
        if beyond:
            bounds[i, 0] = max(prev_end, bounds[i, 0])
            bounds[i, 1] = min(next_start, bounds[i, 1])
        else:
            bounds[i, 0] = max(prev_end, rec_start[r_i], bounds[i, 0])
            bounds[i, 1] = min(next_start, rec_end[r_i], bounds[i, 1])
        ch = h["channel"]
        if last_hit[ch] != -1:
            bounds[last_hit[ch], 1] = min(bounds[last_hit[ch], 1], h["time"])
            bounds[i, 0] = max(bounds[last_hit[ch], 1], bounds[i, 0])
        last_hit[ch] = i
    for i in range(n):
        r_i = hits[i]["record_i"]
        hits[i]["left_integration"] = (bounds[i, 0] - rec_start[r_i]) // rec_dt[r_i]
        hits[i]["right_integration"] = (bounds[i, 1] - rec_start[r_i]) // rec_dt[r_i]


def integrate_lone_hits(
    lone_hits: np.ndarray,
    records: np.ndarray,
    peaks: np.ndarray,
    save_outside_hits: tuple[int, int],
    n_channels: int,
) -> None:
    """Integration bounds of hits outside peaks, and their area over those bounds (in place)."""
    find_hit_integration_bounds(lone_hits, peaks, records, save_outside_hits, n_channels)
    _integrate_lone_hits(lone_hits, records)


@numba.njit(nogil=True, cache=True)
def _integrate_lone_hits(lone_hits: np.ndarray, records: np.ndarray) -> None:
    for h in lone_hits:
        r = records[h["record_i"]]
        start, end = h["left_integration"], h["right_integration"]
        h["area"] = r["data"][start:end].sum() + (r["baseline"] % 1) * (end - start)
