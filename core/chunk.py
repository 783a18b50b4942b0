"""The chunk model: a [start, end) slice of one data type of one run.

A chunk holds all and only the rows that lie inside [start, end); no row straddles a boundary, and
consecutive chunks of one type are contiguous (``next.start == prev.end``). Rows are sorted by
time. Times are int64 ns since the unix epoch; a row ends at its ``endtime`` field, or at
``time + length * dt`` when it has none.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numba
import numpy as np

from straxd.core.errors import CannotSplit, ChunkError
from straxd.core.row_order import (
    compact_rows,
    count_descents,
    gather_rows,
    insertion_sort_rows,
    radix_time_channel_order,
    row_words,
)

DEFAULT_CHUNK_SPLIT_NS = 1000
# strax checks the end of only the last rows on construction: rows are sorted by time and
# intervals in one chunk are short, so the latest end lies among them.
_END_CHECK_ROWS = 500


def endtime(data: np.ndarray) -> np.ndarray:
    """Exclusive end of every row, as int64, in one pass.

    numpy's ``time + length.astype(int64) * dt.astype(int64)`` allocates three temporaries per
    call, which for hits and records cost more than what the ends are needed for.
    """
    if "endtime" in (data.dtype.names or ()):
        return np.asarray(data["endtime"], dtype=np.int64)
    return _ends(data["time"], data["length"], data["dt"])


@numba.njit(nogil=True, cache=True)
def _ends(time: np.ndarray, length: np.ndarray, dt: np.ndarray) -> np.ndarray:
    ends = np.empty(len(time), dtype=np.int64)
    for i in range(len(time)):
        ends[i] = time[i] + np.int64(length[i]) * np.int64(dt[i])
    return ends


@numba.njit(nogil=True, cache=True)
def _split_index(
    time: np.ndarray, end: np.ndarray, t: int, allow_early_split: bool
) -> tuple[int, int]:
    """Index and time at which sorted intervals split at ``t``; index -1 means cannot split."""
    if len(time) == 0 or time[0] >= t:
        return 0, t
    latest_end = -1
    splittable_i = 0
    first_beyond = -1
    for i in range(len(time)):
        if time[i] >= latest_end:
            splittable_i = i
        if time[i] >= t:
            first_beyond = i
            break
        latest_end = max(latest_end, end[i])
        if latest_end > t:
            break
    else:
        if latest_end <= t:
            return len(time), t
    if splittable_i != first_beyond or latest_end > t:
        if not allow_early_split:
            return -1, t
        t = min(time[splittable_i], t)
    return splittable_i, t


def split_array(
    data: np.ndarray, t: int, allow_early_split: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Split sorted rows into (ending at or before t, starting at or after t, t used).

    A row straddling ``t`` raises CannotSplit, or, with ``allow_early_split``, moves ``t`` back
    to the latest time where nothing straddles it.
    """
    index, t_used = _split_index(
        np.ascontiguousarray(data["time"]), endtime(data), int(t), allow_early_split
    )
    if index < 0:
        raise CannotSplit(f"a row straddles t={t} and an early split is not allowed")
    return data[:index], data[index:], int(t_used)


def sort_by_time(data: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Rows sorted by time, then channel when there is one; stable.

    With ``where``, only the rows where it is True (the same as sorting ``data[where]``, but
    with one copy instead of two). Data already in order (the common case) is returned as it
    is, not copied.
    """
    index = None if where is None or where.all() else np.flatnonzero(where)
    if len(data) == 0 or (index is not None and not len(index)):
        return data if index is None else data[:0]
    has_channel = "channel" in (data.dtype.names or ())
    time, second = data["time"], data["channel"] if has_channel else data["time"]
    if index is not None:
        time, second = time[index], second[index]
    descents = count_descents(time, second)
    if not descents:
        return data if index is None else take_rows(data, index)
    order = _time_channel_order(time, second, descents) if has_channel else None
    if order is None:
        order = np.lexsort((second, time))
    return take_rows(data, order if index is None else index[order])


def sort_by_time_in_place(data: np.ndarray) -> np.ndarray:
    """``sort_by_time`` for rows a few places out of order: sorts ``data`` itself and returns it.

    Rows move by insertion, so nothing is allocated; if rows turn out far from order this gives
    up (after at most a few row moves per row) and returns a sorted copy. Either way the result
    equals ``sort_by_time(data)``: insertion is stable, so the rows it moved keep the relative
    order that the stable sort then relies on.
    """
    words = row_words(data)
    if len(data) < 2 or words is None or "channel" not in (data.dtype.names or ()):
        return sort_by_time(data)
    max_moves = _MAX_ROW_MOVES * len(data)
    if insertion_sort_rows(words, data["time"], data["channel"], max_moves):
        return data
    return sort_by_time(data)


# sort_by_time_in_place moves up to this many rows per row before sorting the usual way.
_MAX_ROW_MOVES = 16
# Bits of the channel in the packed (time, channel) sort key: int16 channels span 2**16 values.
_CHANNEL_BITS = 16
# Rows far from order (at least one in this many out of place; hits in record order are about
# one in five) and this many rows or more are sorted by radix: numpy's sort is faster on rows
# nearly in order, where it merges long runs, and on a few hundred rows. Measured on hits of a
# 60 s run: from 4000 rows on the radix takes 25-30 ns a row, numpy's stable sort 47-50.
_RADIX_MIN_DISORDER = 16
_RADIX_MIN_ROWS = 1 << 12


def _time_channel_order(time: np.ndarray, channel: np.ndarray, descents: int) -> np.ndarray | None:
    """The stable (time, channel) order from one packed int64 key; None if times span too much.

    Packing ``time - min`` above ``channel - min`` keeps the order of the pair, so a stable sort
    of the key is ``np.lexsort((channel, time))`` exactly, at the cost of one sort instead of
    two (about half the time for hits and records, which are nearly in order already).
    ``descents`` (rows before their predecessor) chooses between a radix and numpy's sort.
    """
    if len(time) >= _RADIX_MIN_ROWS and descents * _RADIX_MIN_DISORDER > len(time):
        packed, order = radix_time_channel_order(time, channel)
        if packed:
            return order
    channel = channel.astype(np.int64)
    t0, c0 = int(time.min()), int(channel.min())
    time_span, channel_span = int(time.max()) - t0, int(channel.max()) - c0
    if time_span >= 2 ** (63 - _CHANNEL_BITS) or channel_span >= 2**_CHANNEL_BITS:
        return None
    key = ((time - t0) << _CHANNEL_BITS) | (channel - c0)
    return np.argsort(key, kind="stable")


def stable_time_order(time: np.ndarray) -> np.ndarray:
    """``np.argsort(time, kind="stable")`` of int64 times, by radix where that is faster.

    For the max_time of a piece's hitlets (about a third of them before their predecessor),
    the radix takes 16 ms a 60 s run's chunk against numpy's 28 ms.
    """
    if len(time) >= _RADIX_MIN_ROWS:
        packed, order = radix_time_channel_order(time, np.zeros(len(time), dtype=np.int16))
        if packed:
            return order
    return np.argsort(time, kind="stable")


def take_rows(data: np.ndarray, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``data[index]`` for an index or boolean mask array (into ``out`` if given), copying
    whole rows as words.

    numpy gathers structured rows field by field through a generic copy loop; viewing each row as
    a fixed number of integers makes the same gather a plain block copy (4-10x faster for hits
    and records). The bytes are the same, so the result equals ``data[index]`` exactly.
    """
    index = np.asarray(index)
    if index.dtype == np.bool_:
        index = np.flatnonzero(index)
    if out is None:
        out = np.empty(len(index), dtype=data.dtype)
    words = row_words(data)
    if words is None or not len(index):
        out[:] = data[index]
        return out
    bad = gather_rows(
        words,
        index.astype(np.int64, copy=False),
        out.view(words.dtype).reshape(len(out), words.shape[1]),
    )
    if bad >= 0:
        raise IndexError(f"row {int(index[bad])} is out of range for {len(data)} rows")
    return out


def take_rows_in_place(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``data[mask]`` made of ``data`` itself: the kept rows move to its front (a view of it).

    For a chunk-sized array no longer needed as it is, this saves allocating (and the kernel
    zeroing) a copy of about the same size.
    """
    words = row_words(data)
    if words is None:
        taken: np.ndarray = data[mask]
        return taken
    return data[: compact_rows(words, np.asarray(mask, dtype=np.bool_))]


NO_END_BEFORE = np.iinfo(np.int64).min  # for ``gap_starts``: no rows came before


def gap_starts(
    time: np.ndarray, end: np.ndarray, end_before: int, split_gap_ns: int
) -> tuple[np.ndarray, int]:
    """Rows that start after a gap longer than ``split_gap_ns``, and the running maximum end.

    The gap of a row is its start minus the latest end of every row before it, those of earlier
    pieces included through ``end_before`` (their maximum end; ``NO_END_BEFORE`` for none).
    numpy, not numba: restrax's worker calls only this, and compiling would cost it 50 MB.
    """
    if not len(time):
        return np.zeros(0, dtype=np.int64), end_before
    latest = np.empty(len(time), dtype=np.int64)  # latest end before each row
    latest[0] = end_before
    np.maximum.accumulate(end[:-1], out=latest[1:])
    np.maximum(latest[1:], end_before, out=latest[1:])
    starts = np.flatnonzero(time - latest > split_gap_ns)
    if end_before == NO_END_BEFORE and len(starts) and starts[0] == 0:
        starts = starts[1:]  # the very first row follows nothing
    return starts.astype(np.int64), max(int(latest[-1]), int(end[-1]))


def get_splits(
    data: np.ndarray, target_bytes: float, split_gap_ns: int = DEFAULT_CHUNK_SPLIT_NS
) -> np.ndarray:
    """Row indices (starting with 0) where to cut ``data`` into pieces of about ``target_bytes``.

    Only gaps longer than ``split_gap_ns`` are candidates; each cut is the candidate closest to
    ``last cut + target rows``, repeated while that lies before the last candidate, as strax's
    ``Rechunker.get_splits``.
    """
    target_rows = int(target_bytes // data.itemsize)
    if target_rows == 0:
        raise ValueError(f"target size {target_bytes} B is smaller than one row")
    gap_indices, _ = gap_starts(data["time"], endtime(data), NO_END_BEFORE, split_gap_ns)
    splits = [0]
    used = 0
    if len(gap_indices):
        while splits[-1] + target_rows < gap_indices[-1]:
            # strax never considers the first gap (its candidates start one past the last
            # used index); we keep that so our chunk boundaries equal strax's. Where strax then
            # runs out of candidates it crashes; we stop splitting instead.
            candidates = gap_indices[used + 1 :]
            if not len(candidates):
                break
            best = int(np.abs(candidates - target_rows - splits[-1]).argmin())
            splits.append(int(candidates[best]))
            used += best + 1
    return np.array(splits, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Chunk:
    """One chunk of one data type of one run, in ns since the unix epoch, end exclusive."""

    data_type: str
    data_kind: str
    run_id: str
    start: int
    end: int
    data: np.ndarray
    target_size_mb: int = 200
    subruns: dict[str, dict[str, int]] | None = field(default=None)

    def __post_init__(self) -> None:
        where = f"{self.data_type} chunk [{self.start}, {self.end}) of run {self.run_id}"
        if not 0 <= self.start <= self.end:
            raise ChunkError(f"{where}: need 0 <= start <= end")
        if not len(self.data):
            return
        if self.start == self.end:
            raise ChunkError(f"{where}: a zero-length chunk must be empty")
        first = int(self.data["time"][0])
        if first < self.start:
            raise ChunkError(f"{where}: first row starts at {first}, before the chunk")
        last_end = int(endtime(self.data[-_END_CHECK_ROWS:]).max())
        if last_end > self.end:
            raise ChunkError(f"{where}: a row ends at {last_end}, after the chunk")

    @property
    def nbytes(self) -> int:
        """Uncompressed size of the data in bytes."""
        return int(self.data.nbytes)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return (
            f"Chunk({self.run_id}.{self.data_type}: [{self.start}, {self.end}), "
            f"{len(self.data)} rows)"
        )

    def with_data(self, data: np.ndarray, **changes: Any) -> Chunk:
        """A copy with other data (and optionally other fields), validated again."""
        return replace(self, data=data, **changes)

    def split(self, t: int, allow_early_split: bool = False) -> tuple[Chunk, Chunk]:
        """Split at ``t`` (clamped to the chunk); both halves share the boundary actually used."""
        t = max(min(int(t), self.end), self.start)
        if t == self.end:
            left, right = self.data, self.data[:0]
        elif t == self.start:
            left, right = self.data[:0], self.data
        else:
            try:
                left, right, t = split_array(self.data, t, allow_early_split)
            except CannotSplit:
                raise CannotSplit(f"cannot split {self!r} at {t}: a row straddles it") from None
        return (
            self.with_data(_unpinned(left), end=max(self.start, t)),
            self.with_data(_unpinned(right), start=t),
        )

    @classmethod
    def concatenate(cls, chunks: Sequence[Chunk]) -> Chunk:
        """Join chunks of one type and run, in order and not overlapping."""
        if not chunks:
            raise ChunkError("need at least one chunk to concatenate")
        if len(chunks) == 1:
            return chunks[0]
        first = chunks[0]
        for before, after in itertools.pairwise(chunks):
            if (after.data_type, after.run_id) != (first.data_type, first.run_id):
                raise ChunkError(
                    f"cannot concatenate {before!r} with {after!r}: different type or run"
                )
            if after.start < before.end:
                raise ChunkError(f"cannot concatenate {before!r} with {after!r}: they overlap")
        filled = [c.data for c in chunks if len(c.data)]
        return replace(
            first,
            end=chunks[-1].end,
            # Joining onto an empty buffer (the usual case in input alignment) must not copy.
            data=filled[0] if len(filled) == 1 else np.concatenate([c.data for c in chunks]),
            # As strax: the joined chunk aims at the largest of the targets.
            target_size_mb=max(c.target_size_mb for c in chunks),
        )


def _unpinned(data: np.ndarray) -> np.ndarray:
    """An empty view replaced by a new empty array: a view keeps its whole base array alive."""
    return data if len(data) or data.base is None else np.zeros(0, dtype=data.dtype)


def continuity_check(chunks: Sequence[Chunk]) -> None:
    """Raise ChunkError unless every chunk starts where the previous one ended."""
    for before, after in itertools.pairwise(chunks):
        if after.start != before.end:
            raise ChunkError(
                f"{after.data_type} of run {after.run_id}: chunk starting at {after.start} "
                f"does not follow the previous one ending at {before.end}"
            )


class Rechunker:
    """Re-cut a stream of chunks into chunks of about their ``target_size_mb``, at gaps.

    ``receive`` returns the chunks ready to be written; ``flush`` the rest at the end.
    """

    def __init__(self, rechunk: bool = True, max_target_mb: float | None = None) -> None:
        self.rechunk = rechunk
        # Live processing caps the target: whatever is held back here is held in memory.
        self.max_target_mb = max_target_mb
        self._cache: Chunk | None = None

    def receive(self, chunk: Chunk) -> list[Chunk]:
        """Take one chunk; return finished chunks (possibly none)."""
        if not self.rechunk:
            return [chunk]
        if self._cache is not None:
            chunk = Chunk.concatenate([self._cache, chunk])
        target_mb: float = chunk.target_size_mb
        if self.max_target_mb is not None:
            target_mb = min(target_mb, self.max_target_mb)
        cuts = get_splits(chunk.data, target_mb * 1e6, DEFAULT_CHUNK_SPLIT_NS)
        ready = []
        for rows in np.diff(cuts):
            # Cut half a minimum gap before the first row of the next piece, as strax does.
            t = int(chunk.data["time"][rows]) - DEFAULT_CHUNK_SPLIT_NS // 2
            piece, chunk = chunk.split(t, allow_early_split=False)
            ready.append(piece)
        # The rest is usually a small view of a large array: keep a copy, not the array.
        self._cache = chunk if chunk.data.base is None else chunk.with_data(chunk.data.copy())
        return ready

    def flush(self) -> list[Chunk]:
        """The data still held back."""
        if self._cache is None:
            return []
        rest, self._cache = self._cache, None
        return [rest]
