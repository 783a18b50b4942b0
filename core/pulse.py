"""Pulse processing kernels: raw_records -> records, zeroed outside their hits.

Pure numba, GIL released, no IO. They follow strax 2.2.3's and straxen 4.0.0's operation order
(including which values are float32 and which float64) so that results are bit-identical, not
just close: the records of a run must not depend on which implementation processed it.
Hit finding is in ``hits``, pulse counting in ``pulse_counts``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.dtypes import HIT_DTYPE, record_dtype
from straxd.core.errors import BadInput
from straxd.core.hits import (
    ABOVE_EVERY_SAMPLE,
    find_hits_at,
    hit_thresholds,
    record_threshold,
    run_edges,
)

NO_RECORD_LINK = -1
# strax's baseline for fragments whose first fragment is missing, where sloppy chunking allows it.
FALLBACK_BASELINE = 16000.0
HITS_ONLY = 2  # strax ReductionLevel.HITS_ONLY


@numba.njit(nogil=True, cache=True)
def _check_overlaps(records: np.ndarray, last_end: np.ndarray) -> tuple[int, bool, Any]:
    """(first bad row or -1, whether its channel is out of range, highest channel seen)."""
    top = np.int64(-1)
    for i in range(len(records)):
        ch = records[i]["channel"]
        if ch < 0 or ch >= len(last_end):
            return i, True, top
        if ch > top:
            top = np.int64(ch)
        if records[i]["time"] < last_end[ch]:
            return i, False, top
        last_end[ch] = records[i]["time"] + records[i]["length"] * records[i]["dt"]
    return -1, False, top


def check_overlaps(raw_records: np.ndarray, n_channels: int = 3000) -> int:
    """Raise BadInput if a pulse starts before the previous one in its channel ended, or a
    channel is outside [0, n_channels); the highest channel (-1 without rows) otherwise."""
    last_end = np.zeros(n_channels, dtype=np.int64)
    i, bad_channel, top = _check_overlaps(raw_records, last_end)
    if i < 0:
        return int(top)
    r = raw_records[i]
    if bad_channel:
        raise BadInput(f"channel {int(r['channel'])} is outside the {n_channels} channels")
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
    fallback_baseline: float = FALLBACK_BASELINE,
) -> np.ndarray:
    """strax's raw_to_records, zero_out_of_bounds, baseline and integrate in one pass.

    Each raw fragment is read once and its record written once, where the four steps each went
    through the whole chunk; the operations and their order per record are the same, so are
    the results.
    """
    no_thresholds = np.zeros(0)
    records, _ = _records_of(
        raw_records, (no_thresholds, no_thresholds), False,
        baseline_samples, flip, allow_sloppy_chunking, fallback_baseline,
    )  # fmt: skip
    return records


def baselined_records_and_hits(
    raw_records: np.ndarray,
    thresholds: tuple[np.ndarray, np.ndarray],
    baseline_samples: int = 40,
    allow_sloppy_chunking: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``baselined_records`` and their hits at ``thresholds`` (per-channel amplitude and height
    over noise, covering every channel), in record order.

    The hits are counted while the records are written, which saves a pass over them.
    """
    records, n_hits = _records_of(
        raw_records, thresholds, True,
        baseline_samples, True, allow_sloppy_chunking, FALLBACK_BASELINE,
    )  # fmt: skip
    return records, find_hits_at(records, *thresholds, n_hits=n_hits)


def _records_of(
    raw_records: np.ndarray,
    thresholds: tuple[np.ndarray, np.ndarray],
    count_hits: bool,
    baseline_samples: int,
    flip: bool,
    allow_sloppy_chunking: bool,
    fallback_baseline: float,
) -> tuple[np.ndarray, int]:
    samples = raw_records.dtype["data"].shape[0]
    records = np.empty(len(raw_records), dtype=record_dtype(samples))
    # np.empty: every field is written below; a new field in the dtype must be added there too.
    assert set(records.dtype.names or ()) == _RECORD_FIELDS
    options = (baseline_samples, flip, allow_sloppy_chunking, fallback_baseline)
    bad, n_hits = _baselined(raw_records, records, *options, *thresholds, count_hits)
    if bad >= 0:
        _raise_no_first_fragment(records[bad])
    return records, n_hits


@numba.njit(nogil=True, cache=True)
def _baselined(
    raw: np.ndarray,
    records: np.ndarray,
    baseline_samples: int,
    flip: bool,
    sloppy: bool,
    fallback: float,
    amplitude: np.ndarray,
    over_noise: np.ndarray,
    count_hits: bool,
) -> tuple[int, int]:
    """Fill records from raw: (the index of a record missing its first fragment or -1, the
    number of hits at the thresholds if ``count_hits``)."""
    n_hits = np.int64(0)
    if not len(raw):
        return -1, 0
    n_channels = raw["channel"].max() + 1
    last = np.zeros((n_channels, 2), dtype=np.float32)
    seen_first = np.zeros(n_channels, dtype=np.bool_)
    samples = len(records[0]["data"])
    sign = -1 if flip else 1
    for i in range(len(raw)):
        r, d = raw[i], records[i]
        _copy_header(r, d)
        n = min(r["length"], samples)
        source, data = r["data"], d["data"]
        ch = d["channel"]
        if d["record_i"] == 0:
            seen_first[ch] = True
            # strax takes the baseline after zeroing the record beyond its length: the raw
            # samples are those unless the record is shorter than the baseline window.
            if n < baseline_samples:
                data[:n] = source[:n]
                data[n:] = 0
                w = data[:baseline_samples]
            else:
                w = source[:baseline_samples]
            # float64 values for this record, float32 when reused by its later fragments
            bl, rms = w.mean(), w.std()
            last[ch, 0], last[ch, 1] = bl, rms
        else:
            bl, rms = last[ch, 0], last[ch, 1]
            if not seen_first[ch]:
                if not sloppy:
                    return i, 0
                last[ch, 0], last[ch, 1] = fallback, fallback
                bl, rms = last[ch, 0], np.nan
        d["baseline"], d["baseline_rms"] = bl, rms
        at_least = (
            record_threshold(d, amplitude, over_noise)[1] if count_hits else ABOVE_EVERY_SAMPLE
        )
        # Copy, subtract, sum and count rising edges at the threshold in one pass; values wrap
        # to int16 as strax's in-place store.
        integer_bl, total, before = int(bl), np.int64(0), np.int64(0)
        for j in range(n):
            x = np.int16(sign * (np.int64(source[j]) - integer_bl))
            data[j] = x
            total += x
            above = np.int64(x >= at_least)
            n_hits += above & (1 - before)
            before = above
        data[n:] = 0
        d["area"] = total + int(round((d["baseline"] % 1) * d["length"]))
    return -1, int(n_hits)


@numba.njit(nogil=True, cache=True)
def _copy_header(raw: Any, record: Any) -> None:
    """The fields a record takes from its raw fragment, and zero reduction and bit shift."""
    record["time"], record["length"], record["dt"] = raw["time"], raw["length"], raw["dt"]
    record["channel"], record["pulse_length"] = raw["channel"], raw["pulse_length"]
    record["record_i"] = raw["record_i"]
    record["reduction_level"], record["amplitude_bit_shift"] = 0, 0


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


def cut_around_hits_in_place(
    records: np.ndarray,
    min_amplitude: float | np.ndarray | tuple[float, ...],
    left_extension: int = 2,
    right_extension: int = 15,
    hits: np.ndarray | None = None,
) -> None:
    """strax's ``cut_outside_hits(records, find_hits(records, min_amplitude), ...)``, in place.

    Data is zeroed except around the hits, into neighbouring fragments of the same pulse, and
    beyond each record's length (strax's zero_out_of_bounds, which follows the cut in pulse
    processing). ``hits`` are the records' hits at ``min_amplitude`` in record order if the
    caller has them (``baselined_records_and_hits``); otherwise they are found again where
    needed instead of being stored (a chunk's hit array is half the size of its records).
    """
    if not len(records):
        return
    amplitude, over_noise = hit_thresholds(records, min_amplitude, 0)
    records["reduction_level"] = HITS_ONLY
    previous, following = record_links(records)
    head_to, tail_from = _reach(records, amplitude, over_noise, left_extension, right_extension)
    _cut(
        records, amplitude, over_noise, np.zeros(0, dtype=HIT_DTYPE) if hits is None else hits,
        (previous, following), (head_to, tail_from), left_extension, right_extension,
    )  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _reach(
    records: np.ndarray,
    amplitude: np.ndarray,
    over_noise: np.ndarray,
    left_extension: int,
    right_extension: int,
) -> tuple[np.ndarray, np.ndarray]:
    """How far each record's hits reach into its neighbours: the head ``[:head_to]`` of the next
    fragment and the tail ``[tail_from:]`` of the previous one (strax's slices, normalised).

    Only the first hit can reach back and only the last one forward, and only from within the
    extensions of the record's ends: the first and last samples at threshold there decide.
    """
    samples = len(records[0]["data"])
    head_to = np.zeros(len(records), np.int64)
    tail_from = np.full(len(records), samples, np.int64)
    for i in range(len(records)):
        r = records[i]
        at_least = record_threshold(r, amplitude, over_noise)[1]
        data, length = r["data"], r["length"]
        for j in range(min(left_extension, length)):
            if data[j] >= at_least:  # the first hit starts here: start_keep = j - left < 0
                # strax keeps [start_keep:] of the previous record (all of it below -samples)
                tail_from[i] = max(samples + j - left_extension, 0)
                break
        for j in range(length - 1, max(samples - right_extension, 0) - 1, -1):
            if data[j] >= at_least:  # the last hit ends after j: end_keep = j + 1 + right
                head_to[i] = min(j + 1 + right_extension - samples, samples)
                break
    return head_to, tail_from


@numba.njit(nogil=True, cache=True)
def _cut(
    records: np.ndarray,
    amplitude: np.ndarray,
    over_noise: np.ndarray,
    hits: np.ndarray,
    links: tuple[np.ndarray, np.ndarray],
    reach: tuple[np.ndarray, np.ndarray],
    left_extension: int,
    right_extension: int,
) -> None:
    """Keep each record's hit windows and what its neighbours' hits reach; zero the rest.

    ``hits`` are the records' hits in record order; if there are none, they are looked for here
    (which finds none where there are none).
    """
    previous, following = links
    head_to, tail_from = reach
    samples = len(records[0]["data"])
    keep = np.zeros(samples, dtype=np.bool_)
    edges = np.empty(samples + 1, dtype=np.int64)
    h = 0
    for i in range(len(records)):
        r = records[i]
        data, length = r["data"], r["length"]
        keep[:] = False
        if len(hits):
            while h < len(hits) and hits[h]["record_i"] == i:
                start, end = hits[h]["left"], hits[h]["right"]
                keep[max(0, start - left_extension) : min(length, end + right_extension)] = True
                h += 1
        else:
            at_least = record_threshold(r, amplitude, over_noise)[1]
            n_edges = run_edges(data, length, at_least, edges)
            for e in range(0, n_edges, 2):
                start, end = edges[e], edges[e + 1]
                keep[max(0, start - left_extension) : min(length, end + right_extension)] = True
        if previous[i] != NO_RECORD_LINK:
            keep[: head_to[previous[i]]] = True
        if following[i] != NO_RECORD_LINK:
            keep[tail_from[following[i]] :] = True
        for j in range(samples):
            if j >= length or not keep[j]:
                data[j] = 0
