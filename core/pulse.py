"""Pulse processing kernels: raw_records -> records, hits, pulse counts.

Pure numba, GIL released, no IO. They follow strax 2.2.3's and straxen 4.0.0's operation order
(including which values are float32 and which float64) so that results are bit-identical, not
just close: the records of a run must not depend on which implementation processed it.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.dtypes import HIT_DTYPE, record_dtype
from straxd.core.errors import BadInput

NO_RECORD_LINK = -1
# Hit thresholds beyond the int16 samples: no sample reaches the first, every one the second.
_NEVER_ABOVE = 2.0**15
_NEVER_ABOVE_INT = 2**15
_ALWAYS_ABOVE = -(2**15)
HITS_ONLY = 2  # strax ReductionLevel.HITS_ONLY
NO_PULSE_COUNTS = -9999


def pulse_count_dtype(n_channels: int) -> np.dtype[Any]:
    """straxen's pulse_counts: one row per chunk with per-channel counts and areas."""
    return np.dtype(
        [
            (("Start time of the chunk", "time"), np.int64),
            (("End time of the chunk", "endtime"), np.int64),
            (("Number of pulses", "pulse_count"), (np.int64, n_channels)),
            (("Number of lone pulses", "lone_pulse_count"), (np.int64, n_channels)),
            (
                ("Integral of all pulses in ADC_count x samples", "pulse_area"),
                (np.int64, n_channels),
            ),
            (
                ("Integral of lone pulses in ADC_count x samples", "lone_pulse_area"),
                (np.int64, n_channels),
            ),
            (("Average baseline", "baseline_mean"), (np.int16, n_channels)),
            (("Average baseline rms", "baseline_rms_mean"), (np.float32, n_channels)),
        ]
    )


@numba.njit(nogil=True, cache=True)
def _check_overlaps(records: np.ndarray, last_end: np.ndarray) -> int:
    for i in range(len(records)):
        ch = records[i]["channel"]
        if records[i]["time"] < last_end[ch]:
            return i
        last_end[ch] = records[i]["time"] + records[i]["length"] * records[i]["dt"]
    return -1


def check_overlaps(raw_records: np.ndarray, n_channels: int = 3000) -> None:
    """Raise BadInput if a pulse starts before the previous one in its channel ended."""
    if len(raw_records) and int(raw_records["channel"].max()) >= n_channels:
        raise BadInput(f"channel {int(raw_records['channel'].max())} beyond {n_channels} channels")
    last_end = np.zeros(n_channels, dtype=np.int64)
    i = _check_overlaps(raw_records, last_end)
    if i >= 0:
        r = raw_records[i]
        raise BadInput(
            f"channel {int(r['channel'])}: a pulse starts at {int(r['time'])} ns, before the "
            f"previous pulse in that channel ended ({int(last_end[r['channel']])} ns)"
        )


# The fields _baselined writes: all of record_dtype's.
_RECORD_FIELDS = {
    *("time", "length", "dt", "channel", "pulse_length", "record_i", "area", "reduction_level"),
    *("baseline", "baseline_rms", "amplitude_bit_shift", "data"),
}


def baselined_records(
    raw_records: np.ndarray,
    baseline_samples: int = 40,
    flip: bool = True,
    allow_sloppy_chunking: bool = False,
    fallback_baseline: float = 16000.0,
) -> np.ndarray:
    """strax's raw_to_records, zero_out_of_bounds, baseline and integrate in one pass.

    Each raw fragment is read once and its record written once, where the four steps each went
    through the whole chunk; the operations and their order per record are the same, so are
    the results.
    """
    samples = raw_records.dtype["data"].shape[0]
    records = np.empty(len(raw_records), dtype=record_dtype(samples))
    # np.empty: every field is written below; a new field in the dtype must be added there too.
    assert set(records.dtype.names or ()) == _RECORD_FIELDS
    bad = _baselined(
        raw_records, records, baseline_samples, flip, allow_sloppy_chunking, fallback_baseline
    )
    if bad >= 0:
        _raise_no_first_fragment(records[bad])
    return records


@numba.njit(nogil=True, cache=True)
def _baselined(
    raw: np.ndarray,
    records: np.ndarray,
    baseline_samples: int,
    flip: bool,
    sloppy: bool,
    fallback: float,
) -> int:
    """Fill records from raw; the index of a record missing its first fragment, or -1."""
    if not len(raw):
        return -1
    n_channels = raw["channel"].max() + 1
    last = np.zeros((n_channels, 2), dtype=np.float32)
    seen_first = np.zeros(n_channels, dtype=np.bool_)
    samples = len(records[0]["data"])
    sign = -1 if flip else 1
    for i in range(len(raw)):
        r, d = raw[i], records[i]
        d["time"], d["length"], d["dt"] = r["time"], r["length"], r["dt"]
        d["channel"], d["pulse_length"], d["record_i"] = (
            r["channel"],
            r["pulse_length"],
            r["record_i"],
        )
        d["reduction_level"], d["amplitude_bit_shift"] = 0, 0
        n = min(r["length"], samples)
        for j in range(n):
            d["data"][j] = r["data"][j]
        d["data"][n:] = 0
        ch = d["channel"]
        if d["record_i"] == 0:
            seen_first[ch] = True
            w = d["data"][:baseline_samples]
            # float64 values for this record, float32 when reused by its later fragments
            bl, rms = w.mean(), w.std()
            last[ch, 0], last[ch, 1] = bl, rms
        else:
            bl, rms = last[ch, 0], last[ch, 1]
            if not seen_first[ch]:
                if not sloppy:
                    return i
                last[ch, 0], last[ch, 1] = fallback, fallback
                bl, rms = last[ch, 0], np.nan
        for j in range(n):
            d["data"][j] = sign * (d["data"][j] - int(bl))
        d["baseline"] = bl
        d["baseline_rms"] = rms
        d["area"] = d["data"].sum() * 2 ** d["amplitude_bit_shift"] + int(
            round((d["baseline"] % 1) * d["length"])
        )
    return -1


def _raise_no_first_fragment(record: np.void) -> None:
    raise BadInput(
        f"channel {int(record['channel'])}: fragment {int(record['record_i'])} at "
        f"{int(record['time'])} ns has no first fragment to take the baseline from"
    )


@numba.njit(nogil=True, cache=True)
def record_links(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the previous and next record of the same pulse (-1 where there is none)."""
    n = len(records)
    previous = np.full(n, NO_RECORD_LINK, dtype=np.int32)
    following = np.full(n, NO_RECORD_LINK, dtype=np.int32)
    if not n:
        return previous, following
    n_channels = records["channel"].max() + 1
    samples = len(records[0]["data"])
    last_seen = np.full(n_channels, NO_RECORD_LINK, dtype=np.int32)
    expected_start = np.zeros(n_channels, dtype=np.int64)
    for i in range(n):
        ch = records[i]["channel"]
        if records[i]["record_i"] != 0 and records[i]["time"] == expected_start[ch]:
            previous[i] = last_seen[ch]
            following[last_seen[ch]] = i
        last_seen[ch] = i
        expected_start[ch] = records[i]["time"] + samples * records[i]["dt"]
    return previous, following


def _thresholds(values: float | np.ndarray | tuple[float, ...], n_channels: int) -> np.ndarray:
    if isinstance(values, (tuple, list, np.ndarray)):
        return np.asarray(values, dtype=np.float64)
    return float(values) * np.ones(n_channels)


def find_hits(
    records: np.ndarray,
    min_amplitude: float | np.ndarray | tuple[float, ...] = 15,
    min_height_over_noise: float | np.ndarray | tuple[float, ...] = 0,
) -> np.ndarray:
    """Hits: maximal runs of samples at or above threshold within one record, in record order."""
    if not len(records):
        return np.zeros(0, dtype=HIT_DTYPE)
    per_channel = [
        v
        for v in (min_amplitude, min_height_over_noise)
        if isinstance(v, (tuple, list, np.ndarray))
    ]
    n_channels = len(per_channel[0]) if per_channel else int(records["channel"].max()) + 1
    amplitude = _thresholds(min_amplitude, n_channels)
    over_noise = _thresholds(min_height_over_noise, n_channels)
    if int(records["channel"].max()) >= min(len(amplitude), len(over_noise)):
        raise BadInput(
            f"hit thresholds given for {len(amplitude)} channels, but records have "
            f"channel {int(records['channel'].max())}"
        )
    hits = np.zeros(_count_hits(records, amplitude, over_noise), dtype=HIT_DTYPE)
    _fill_hits(records, amplitude, over_noise, hits)
    return hits


@numba.njit(nogil=True, cache=True)
def _threshold(record: Any, amplitude: np.ndarray, over_noise: np.ndarray) -> tuple[float, int]:
    """strax's hit threshold of a record, and the least integer sample reaching it.

    Samples are integers, so ``x >= threshold`` is ``x >= ceil(threshold)``, the cheaper test;
    a threshold that no sample reaches (or NaN) gives an integer above every int16.
    """
    ch = record["channel"]
    threshold = max(amplitude[ch], record["baseline_rms"] * over_noise[ch])
    if not threshold <= _NEVER_ABOVE:
        return threshold, _NEVER_ABOVE_INT
    return threshold, _ALWAYS_ABOVE if threshold < _ALWAYS_ABOVE else int(np.ceil(threshold))


@numba.njit(nogil=True, cache=True)
def _count_hits(records: np.ndarray, amplitude: np.ndarray, over_noise: np.ndarray) -> int:
    """Number of hits: rising edges of the above-threshold mask (no branches per sample)."""
    n = np.int64(0)
    for r in records:
        at_least = _threshold(r, amplitude, over_noise)[1]
        data = r["data"]
        before = np.int64(0)
        for i in range(r["length"]):
            above = np.int64(data[i] >= at_least)
            n += above & (1 - before)
            before = above
    return int(n)


@numba.njit(nogil=True, cache=True)
def _fill_hits(
    records: np.ndarray, amplitude: np.ndarray, over_noise: np.ndarray, hits: np.ndarray
) -> None:
    """Write the hits (``hits`` has room for exactly them).

    A hit without a sample above 0 takes ``max_time`` from the hit before it, even in an
    earlier record, as in strax (whose variable lives across records).
    """
    k = 0
    max_time = 0
    for record_i in range(len(records)):
        r = records[record_i]
        threshold, at_least = _threshold(r, amplitude, over_noise)
        data, n, t0, dt = r["data"], r["length"], r["time"], r["dt"]
        i = 0
        while i < n:
            if data[i] < at_least:
                i += 1
                continue
            start, area, height = i, 0, 0
            while i < n and data[i] >= at_least:
                x = data[i]
                area += x
                if x > height:
                    height = x
                    max_time = t0 + i * dt
                i += 1
            fraction = r["baseline"] % 1
            h = hits[k]
            h["threshold"] = threshold
            h["left"], h["right"] = start, i
            h["time"], h["length"], h["dt"] = t0 + start * dt, i - start, dt
            h["channel"], h["record_i"] = r["channel"], record_i
            h["area"] = area + (i - start) * fraction
            h["height"] = height + fraction
            h["max_time"] = max_time
            k += 1


def cut_outside_hits(
    records: np.ndarray, hits: np.ndarray, left_extension: int = 2, right_extension: int = 15
) -> np.ndarray:
    """A copy of records with data zeroed except around hits (into neighbouring fragments)."""
    if not len(records):
        return records
    result = records.copy()
    cut_outside_hits_in_place(result, hits, left_extension, right_extension)
    return result


def cut_outside_hits_in_place(
    records: np.ndarray, hits: np.ndarray, left_extension: int = 2, right_extension: int = 15
) -> None:
    """Zero data except around hits, in place (strax's cut_outside_hits, without a copy).

    Also zeroes the samples beyond each record's length (strax's zero_out_of_bounds, which
    follows the cut in pulse processing).
    """
    if not len(records):
        return
    records["reduction_level"] = HITS_ONLY
    first_hit = _first_hits(hits["record_i"], len(records))
    if not len(first_hit):  # not in record order (find_hits gives them in order)
        hits = hits[np.argsort(hits["record_i"], kind="stable")]
        first_hit = _first_hits(hits["record_i"], len(records))
    previous, following = record_links(records)
    _cut(records, hits, first_hit, previous, following, left_extension, right_extension)


@numba.njit(nogil=True, cache=True)
def _first_hits(by_record: np.ndarray, n_records: int) -> np.ndarray:
    """Index of each record's first hit (and the end); empty if the hits are not in order."""
    first = np.empty(n_records + 1, np.int64)
    k = 0
    for i in range(n_records + 1):
        while k < len(by_record) and by_record[k] < i:
            if k and by_record[k] < by_record[k - 1]:
                return first[:0]
            k += 1
        first[i] = k
    return first


@numba.njit(nogil=True, cache=True)
def _cut(
    records: np.ndarray,
    hits: np.ndarray,
    first_hit: np.ndarray,
    previous: np.ndarray,
    following: np.ndarray,
    left_extension: int,
    right_extension: int,
) -> None:
    """Per record, the samples strax's cut copies (its own hits' windows, the head a hit of the
    previous fragment reaches into, the tail one of the next reaches back to); zero the rest.
    The slices are strax's, so negative bounds wrap as they do there."""
    samples = len(records[0]["data"])
    keep = np.zeros(samples, dtype=np.bool_)
    for i in range(len(records)):
        keep[:] = False
        for k in range(first_hit[i], first_hit[i + 1]):
            a = max(0, hits[k]["left"] - left_extension)
            b = min(records[i]["length"], hits[k]["right"] + right_extension)
            if a < b:
                keep[a:b] = True
        p = previous[i]
        if p != NO_RECORD_LINK:
            for k in range(first_hit[p], first_hit[p + 1]):
                end_keep = hits[k]["right"] + right_extension
                if end_keep > samples:
                    keep[: end_keep - samples] = True
        f = following[i]
        if f != NO_RECORD_LINK:
            for k in range(first_hit[f], first_hit[f + 1]):
                start_keep = hits[k]["left"] - left_extension
                if start_keep < 0:
                    keep[samples + start_keep :] = True
        data, length = records[i]["data"], records[i]["length"]
        for j in range(samples):
            if j >= length or not keep[j]:
                data[j] = 0


def count_pulses(records: np.ndarray, n_channels: int) -> np.ndarray:
    """straxen's pulse_counts of one chunk (no row when there are no records)."""
    result = np.zeros(1 if len(records) else 0, dtype=pulse_count_dtype(n_channels))
    if len(records):
        if int(records["channel"].max()) >= n_channels:
            raise BadInput(f"channel {int(records['channel'].max())} beyond {n_channels}")
        _count_pulses(records, n_channels, result)
    return result


@numba.njit(nogil=True, cache=True)
def _count_pulses(records: np.ndarray, n_channels: int, result: np.ndarray) -> None:
    count = np.zeros(n_channels, dtype=np.int64)
    lone_count = np.zeros(n_channels, dtype=np.int64)
    area = np.zeros(n_channels, dtype=np.int64)
    lone_area = np.zeros(n_channels, dtype=np.int64)
    in_lone = np.zeros(n_channels, dtype=np.bool_)
    bl_sum = np.zeros(n_channels, dtype=np.float64)
    rms_sum = np.zeros(n_channels, dtype=np.float64)
    last_end = 0
    next_start = 0
    for i in range(len(records)):
        r = records[i]
        if i != len(records) - 1:
            next_start = records[i + 1]["time"]
        ch = r["channel"]
        area[ch] += r["area"]
        if r["record_i"] == 0:
            count[ch] += 1
            bl_sum[ch] += r["baseline"]
            rms_sum[ch] += r["baseline_rms"]
            pulse_end = r["time"] + r["pulse_length"] * r["dt"]
            if r["time"] > last_end and pulse_end < next_start:
                lone_count[ch] += 1
                in_lone[ch] = True
                lone_area[ch] += r["area"]
            else:
                in_lone[ch] = False
            last_end = max(last_end, pulse_end)
        elif in_lone[ch]:
            lone_area[ch] += r["area"]
    res = result[0]
    res["pulse_count"][:] = count
    res["lone_pulse_count"][:] = lone_count
    res["pulse_area"][:] = area
    res["lone_pulse_area"][:] = lone_area
    means = bl_sum / count
    means[np.isnan(means)] = NO_PULSE_COUNTS
    res["baseline_mean"][:] = means
    res["baseline_rms_mean"][:] = rms_sum / count


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
    if check_raw_record_overlaps:
        check_overlaps(raw_records, n_channels=3000)
    if len(raw_records) and raw_records["channel"].max() >= n_tpc_pmts:
        raw_records = raw_records[raw_records["channel"] < n_tpc_pmts]
    r = baselined_records(
        raw_records, baseline_samples=baseline_samples, allow_sloppy_chunking=allow_sloppy_chunking
    )
    counts = count_pulses(r, n_tpc_pmts)
    counts["time"], counts["endtime"] = start, end
    if len(r):
        hits = find_hits(r, min_amplitude=hit_min_amplitude)
        left, right = save_outside_hits
        # In place: r is this call's own array, and a copy would double the chunk's memory.
        cut_outside_hits_in_place(r, hits, left_extension=left, right_extension=right)
    return {"records": r, "pulse_counts": counts, "veto_regions": np.zeros(0, dtype=HIT_DTYPE)}
