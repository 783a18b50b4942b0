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

DEFAULT_CHUNK_SPLIT_NS = 1000
# strax checks the end of only the last rows on construction: rows are sorted by time and
# intervals in one chunk are short, so the latest end lies among them.
_END_CHECK_ROWS = 500


def endtime(data: np.ndarray) -> np.ndarray:
    """Exclusive end of every row, as int64.

    numpy, not numba: restrax's worker and the storage code call it, and compiling would cost
    them 50 MB. The processing kernels' hot paths use ``peaks.interval_ends``, one pass in numba.
    """
    if "endtime" in (data.dtype.names or ()):
        return np.asarray(data["endtime"], dtype=np.int64)
    return data["time"] + data["length"].astype(np.int64) * data["dt"].astype(np.int64)


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

    def __init__(
        self,
        rechunk: bool = True,
        max_target_mb: float | None = None,
        max_held_ns: int | None = None,
    ) -> None:
        self.rechunk = rechunk
        # Live processing caps the target: whatever is held back here is held in memory.
        self.max_target_mb = max_target_mb
        # ... and how long a stretch of the run is held: a type that fills its target slowly
        # would otherwise be held for most of the run, so memory would grow with its length.
        self.max_held_ns = max_held_ns
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
        if (
            len(chunk)
            and self.max_held_ns is not None
            and chunk.end - chunk.start >= self.max_held_ns
        ):
            ready.append(chunk)
            self._cache = None
            return ready
        # The rest is usually a small view of a large array: keep a copy, not the array.
        self._cache = chunk if chunk.data.base is None else chunk.with_data(chunk.data.copy())
        return ready

    def flush(self) -> list[Chunk]:
        """The data still held back."""
        if self._cache is None:
            return []
        rest, self._cache = self._cache, None
        return [rest]
