"""Sum waveforms of peaks, built from the hits inside them, and their downsampled storage.

Only samples inside (integration-extended) hits contribute, so baseline noise between hits does
not bias the sum. Waveforms longer than the peak's data field are downsampled by an integer
factor; the end is truncated rather than extended so that peaks never overlap.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def overlap_indices(
    a1: int, n_a: int, b1: int, n_b: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Index ranges in a and in b of the overlap of [a1, a1 + n_a) and [b1, b1 + n_b)."""
    if n_a == 0 or n_b == 0:
        return (0, 0), (0, 0)
    s = a1 - b1
    if s <= -n_a:
        return (0, 0), (0, 0)
    b_start = max(0, s)
    b_end = min(n_b, s + n_a)
    if b_start >= b_end:
        return (0, 0), (0, 0)
    return (max(0, -s), min(n_a, -s + n_b)), (b_start, b_end)


@numba.njit(nogil=True, cache=True)
def _build_hit_waveform(hit: np.ndarray, record: np.ndarray, hit_waveform: np.ndarray) -> np.int8:
    """Copy the record's samples inside the hit into hit_waveform; 1 if the record saturated."""
    (h_start, h_end), (r_start, r_end) = overlap_indices(
        int(hit["time"] // hit["dt"]),
        int(hit["length"]),
        int(record["time"] // record["dt"]),
        int(record["length"]),
    )
    record_data = record["data"][r_start:r_end]
    multiplier = 2 ** record["amplitude_bit_shift"]
    fraction = record["baseline"] % 1
    max_in_record = record_data.max() * multiplier
    hit_waveform[h_start:h_end] = multiplier * record_data + fraction
    return np.int8(max_in_record >= np.int16(record["baseline"]))


@numba.njit(nogil=True, cache=True)
def store_downsampled_waveform(
    p: np.ndarray, buffer: np.ndarray, store_top: bool, store_start: bool, buffer_top: np.ndarray
) -> None:
    """Store the waveform in ``p['data']`` (and top/start), downsampling when too long."""
    n_samples = len(p["data"])
    p_length = p["length"]
    factor = int(np.ceil(p["length"] / n_samples))
    if factor > 1:
        p["length"] = int(np.floor(p["length"] / factor))
        if store_top:
            p["data_top"][: p["length"]] = (
                buffer_top[: p["length"] * factor].reshape(-1, factor).sum(axis=1)
            )
        p["data"][: p["length"]] = buffer[: p["length"] * factor].reshape(-1, factor).sum(axis=1)
        p["dt"] *= factor
    else:
        if store_top:
            p["data_top"][: p["length"]] = buffer_top[: p["length"]]
        p["data"][: p["length"]] = buffer[: p["length"]]
    if store_start:
        if p_length > len(p["data_start"]):
            p["data_start"] = buffer[: len(p["data_start"])]
        else:
            p["data_start"][:p_length] = buffer[:p_length]


def sum_waveform(
    peaks: np.ndarray,
    hits: np.ndarray,
    records: np.ndarray,
    record_links: tuple[np.ndarray, np.ndarray],
    adc_to_pe: np.ndarray,
    n_top_channels: int = 0,
    store_data_top: bool = False,
    store_data_start: bool = False,
    select: np.ndarray | None = None,
) -> None:
    """Sum waveform, area, per-channel area and saturation of peaks (in place).

    Hits must be sorted by time and carry integration bounds; peaks and hits share one dt.
    ``select`` limits the work to those peak indices (ascending).
    """
    if not len(records) or not len(peaks):
        return
    chosen = np.arange(len(peaks)) if select is None else np.asarray(select, dtype=np.int64)
    if not len(chosen):
        return
    _sum_waveform(
        peaks,
        hits,
        records,
        record_links[0],
        record_links[1],
        np.asarray(adc_to_pe, dtype=np.float64),
        n_top_channels,
        store_data_top,
        store_data_start,
        chosen,
    )


@numba.njit(nogil=True, cache=True)
def _sum_waveform(
    peaks: np.ndarray,
    hits: np.ndarray,
    records: np.ndarray,
    prev_record: np.ndarray,
    next_record: np.ndarray,
    adc_to_pe: np.ndarray,
    n_top_channels: int,
    store_top: bool,
    store_start: bool,
    chosen: np.ndarray,
) -> None:
    dt = records[0]["dt"]
    n_samples_record = len(records[0]["data"])
    swv = np.zeros(peaks["length"].max() * 2, dtype=np.float32)
    twv = np.zeros(peaks["length"].max() * 2 if store_top else 1, dtype=np.float32)
    area_per_channel = np.zeros(len(peaks[0]["area_per_channel"]), dtype=np.float32)
    hit_waveform = np.zeros(hits["length"].max() if len(hits) else 1, dtype=np.float32)
    left_h_i = 0
    for peak_i in chosen:
        p = peaks[peak_i]
        p_length = p["length"]
        swv[: min(2 * p_length, len(swv))] = 0
        if store_top:
            twv[: min(2 * p_length, len(twv))] = 0
        area_per_channel *= 0
        p["area"] = 0
        # First hit that ends after the peak starts (hits are time-sorted; resume from the last).
        while (
            left_h_i < len(hits)
            and p["time"] >= hits[left_h_i]["time"] + hits[left_h_i]["length"] * dt
        ):
            left_h_i += 1
        if left_h_i == len(hits):
            break
        for right_h_i in range(left_h_i, len(hits)):
            h = hits[right_h_i]
            record_i = h["record_i"]
            ch = h["channel"]
            shift = (p["time"] - h["time"]) // dt
            if shift <= -p_length:
                break
            if h["length"] <= shift:
                continue
            (h_start, h_end), (p_start, p_end) = overlap_indices(
                h["time"] // dt, h["length"], p["time"] // dt, p_length
            )
            # Only this hit's samples are written and read below; zeroing the whole buffer (as
            # long as the longest hit) per hit cost more than the sum itself.
            hit_waveform[: h["length"]] = 0
            saturated = _build_hit_waveform(h, records[record_i], hit_waveform)
            if h["left_integration"] < 0 and prev_record[record_i] != -1:
                saturated |= _build_hit_waveform(h, records[prev_record[record_i]], hit_waveform)
            if h["right_integration"] > n_samples_record and next_record[record_i] != -1:
                saturated |= _build_hit_waveform(h, records[next_record[record_i]], hit_waveform)
            p["saturated_channel"][ch] |= saturated
            hit_data = hit_waveform[h_start:h_end]
            hit_data *= adc_to_pe[ch]
            swv[p_start:p_end] += hit_data
            if store_top and ch < n_top_channels:
                twv[p_start:p_end] += hit_data
            area_pe = hit_data.sum()
            area_per_channel[ch] += area_pe
            p["area"] += area_pe
        store_downsampled_waveform(p, swv, store_top, store_start, twv)
        p["n_saturated_channels"] = p["saturated_channel"].sum()
        p["area_per_channel"][:] = area_per_channel
