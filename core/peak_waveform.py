"""Sum waveforms of peaks, built from the hits inside them, and their downsampled storage.

Only samples inside (integration-extended) hits contribute, so baseline noise between hits does
not bias the sum. Waveforms longer than the peak's data field are downsampled by an integer
factor; the end is truncated rather than extended so that peaks never overlap.
"""

from __future__ import annotations

import numba
import numpy as np

# Samples before a peak where _add_peak_hits starts counting: beyond any record of its hits.
_BASE_SAMPLES = 1 << 20


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
    swv = np.zeros(peaks["length"].max() * 2, dtype=np.float32)
    twv = np.zeros(peaks["length"].max() * 2 if store_top else 1, dtype=np.float32)
    area_per_channel = np.zeros(len(peaks[0]["area_per_channel"]), dtype=np.float32)
    links = (prev_record, next_record)
    left_h_i = 0
    for peak_i in chosen:
        p = peaks[peak_i]
        p_length = p["length"]
        swv[: min(2 * p_length, len(swv))] = 0
        if store_top:
            twv[: min(2 * p_length, len(twv))] = 0
        # As strax: a channel left negative by the last peak keeps -0.0 here, so a channel
        # without hits in this peak reads -0.0 or 0.0 depending on the peaks before it in this
        # call (equal as numbers; where a chunk is processed in pieces, the signs may differ).
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
        top_channels = n_top_channels if store_top else 0
        buffers = (swv, twv, area_per_channel)
        _add_peak_hits(p, hits, left_h_i, records, links, adc_to_pe, top_channels, buffers)
        store_downsampled_waveform(p, swv, store_top, store_start, twv)
        p["n_saturated_channels"] = p["saturated_channel"].sum()
        p["area_per_channel"][:] = area_per_channel


@numba.njit(nogil=True, cache=True)
def _add_peak_hits(
    p: np.ndarray,
    hits: np.ndarray,
    first_hit: int,
    records: np.ndarray,
    links: tuple[np.ndarray, np.ndarray],
    adc_to_pe: np.ndarray,
    top_channels: int,
    buffers: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Add the peak's hits, from ``first_hit`` on, to its waveforms, areas and saturation.

    The per-hit work stays in this one function on purpose: a compiled call taking arrays
    updates their reference counts atomically on entry and exit, which per hit took a third
    of the time. Helpers called per hit take records and numbers only.
    """
    swv, twv, area_per_channel = buffers
    dt, n_samples = records[0]["dt"], len(records[0]["data"])
    # Sample indices count from a multiple of dt well before the peak: floor division of the
    # small offsets from it gives the same differences as of the full times, and is faster.
    base = (p["time"] // dt - _BASE_SAMPLES) * dt
    p_index, p_length = (p["time"] - base) // dt, int(p["length"])
    # strax's shift = (peak time - hit time) // dt, compared without dividing (two 64-bit
    # divisions a hit fewer: one chunk's peaklets 122 -> 117 ms): for integers L and dt > 0,
    # floor(x / dt) <= -L  <=>  x < (1 - L) dt,  and  L <= floor(x / dt)  <=>  L dt <= x.
    dt64 = np.int64(dt)
    after_peak = (1 - np.int64(p_length)) * dt64
    for right_h_i in range(first_hit, len(hits)):
        h = hits[right_h_i]
        before_peak_by = p["time"] - h["time"]
        if before_peak_by < after_peak:
            break
        if np.int64(h["length"]) * dt64 <= before_peak_by:
            continue
        ch, record_i = h["channel"], np.int64(h["record_i"])
        h_index = (h["time"] - base) // dt
        (h_start, h_end), (p_start, _) = overlap_indices(h_index, h["length"], p_index, p_length)
        # The hit's samples in time order: from the previous record of the pulse if it spills
        # into it, its own, the next one's. They do not overlap, and hit samples no record
        # covers are zero, which adds nothing: so this sums in strax's order.
        prev_i = np.int64(links[0][record_i] if h["left_integration"] < 0 else -1)
        next_i = np.int64(links[1][record_i] if h["right_integration"] > n_samples else -1)
        to_pe, top = adc_to_pe[ch], ch < top_channels
        area_pe = np.float32(0)
        for source_i in (prev_i, record_i, next_i):
            if source_i == -1:
                continue
            r = records[source_i]
            h_offset, r_start, r_end = _record_overlap(h, r, base, int(dt), h_index)
            p["saturated_channel"][ch] |= _saturated(r, r_start, r_end)
            data, multiplier, fraction = r["data"], 2 ** r["amplitude_bit_shift"], r["baseline"] % 1
            first = max(h_start, h_offset)
            # Unsigned indices: numba then skips its negative-index wraparound per sample.
            n = np.uint64(max(0, min(h_end, h_offset + r_end - r_start) - first))
            r_i, p_i = np.uint64(r_start + first - h_offset), np.uint64(p_start + first - h_start)
            for k in range(n):
                # In ADC as float32, then scaled in float64 to float32 PE, as strax.
                x = np.float32(np.float32(multiplier * data[r_i + k] + fraction) * to_pe)
                swv[p_i + k] += x
                area_pe += x
                if top:
                    twv[p_i + k] += x
        area_per_channel[ch] += area_pe
        p["area"] += area_pe


@numba.njit(nogil=True, cache=True)
def _saturated(record: np.ndarray, r_start: int, r_end: int) -> np.int8:
    """1 if the record's samples [r_start, r_end) reach the ADC limit (its integer baseline)."""
    data = record["data"]
    highest = data[r_start]
    for i in range(np.uint64(r_start), np.uint64(r_end)):
        highest = max(highest, data[i])
    multiplier = 2 ** record["amplitude_bit_shift"]
    return np.int8(highest * multiplier >= np.int16(record["baseline"]))


@numba.njit(nogil=True, cache=True)
def _record_overlap(
    hit: np.ndarray, record: np.ndarray, base: int, dt: int, hit_index: int
) -> tuple[int, int, int]:
    """Where the record's samples inside the hit go: (hit index, record start, record end).

    Sample indices count from ``base``, a multiple of ``dt``, when both have that dt; the hit's
    is ``hit_index`` then. A record not overlapping the hit fails as strax's empty ``max`` over
    its samples does.
    """
    if hit["dt"] == dt and record["dt"] == dt:
        record_index = (record["time"] - base) // dt
    else:
        hit_index, record_index = hit["time"] // hit["dt"], record["time"] // record["dt"]
    (h_start, _), (r_start, r_end) = overlap_indices(
        int(hit_index), int(hit["length"]), int(record_index), int(record["length"])
    )
    if r_end == r_start:
        raise ValueError("zero-size array to reduction operation maximum which has no identity")
    return h_start, r_start, r_end
