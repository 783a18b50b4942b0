"""live_data directories decoded into one array, in (time, channel) order by an index.

The files of a chunk's directories (central part and overlaps) are decoded one after another
straight into a single array; their order is computed but not applied. The rows are then
rearranged within that array, each raw_records type one slice of it (``group_in_place``): one
write of the decoded data and one in-place permutation, and never a second copy of the chunk.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blosc
import lz4.frame
import numba
import numpy as np

from straxd.core.chunk import endtime
from straxd.core.compress import decompress_file_bytes, decompress_file_into
from straxd.core.errors import BadInput, DataCorrupted
from straxd.core.row_order import permute_rows_in_place
from straxd.core.rows import take_rows

# The packed sort key keeps (time - window start) above the channel shifted to be non-negative.
_CHANNEL_BITS = 16
_CHANNEL_OFFSET = 2**15
_HEADER_BYTES = 32  # enough for an lz4 frame header (at most 19 bytes) and blosc's (16)
_MAX_RATIO = 256  # lz4 and blosc (lz4 inside) expand no byte to more than about 255


@dataclass(frozen=True)
class Fragments:
    """Rows of one or more files, and the indices that put them in (time, channel) order."""

    rows: np.ndarray
    order: np.ndarray  # int64 indices into rows

    def __len__(self) -> int:
        return len(self.order)

    def sorted_time(self) -> np.ndarray:
        """Start times in order."""
        return np.asarray(self.rows["time"][self.order])

    def sorted_endtime(self) -> np.ndarray:
        """End times in order."""
        ends: np.ndarray = endtime(self.rows)[self.order]
        return ends

    def sorted_rows(self) -> np.ndarray:
        """The rows in order, as a new array."""
        return take_rows(self.rows, self.order)

    def select(self, index: slice | np.ndarray) -> Fragments:
        """The same rows, keeping the ordered positions ``index``."""
        return Fragments(self.rows, self.order[index])

    @classmethod
    def of_sorted(cls, rows: np.ndarray) -> Fragments:
        """Rows that are already in order."""
        return cls(rows, np.arange(len(rows), dtype=np.int64))


def read_dir(path: Path, dtype: np.dtype[Any], compressor: str, start: int, end: int) -> Fragments:
    """Every fragment of the files in ``path`` (in name order), with their time order.

    A file that does not decode, holds a partial fragment or a fragment starting outside
    [start, end) is BadInput or DataCorrupted naming it.
    """
    return read_dirs([(path, start, end)], dtype, compressor)[0]


def read_dirs(
    windows: Sequence[tuple[Path, int, int]], dtype: np.dtype[Any], compressor: str
) -> list[Fragments]:
    """``read_dir`` of several directories, their rows consecutive slices of one array.

    One array lets the caller put every row in its final place within it (``group_in_place``)
    instead of copying them into new arrays.
    """
    files = [sorted(path.iterdir()) for path, _, _ in windows]
    flat = [file for group in files for file in group]
    sizes, payloads = [], {}
    for i, file in enumerate(flat):
        n_bytes = _announced_size(compressor, file, dtype.itemsize)
        if n_bytes is None:
            payloads[i] = _decoded(compressor, file, dtype.itemsize)
            n_bytes = len(payloads[i])
        sizes.append(n_bytes // dtype.itemsize)
    bounds = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    rows = np.empty(int(bounds[-1]), dtype)
    for i, file in enumerate(flat):
        part = rows[bounds[i] : bounds[i + 1]]
        if i in payloads:
            part.view(np.uint8)[:] = np.frombuffer(payloads.pop(i), np.uint8)
        elif len(part):
            try:
                decompress_file_into(compressor, file, part)
            except DataCorrupted:
                # Say what is wrong with the content itself if decoding it all shows that.
                _decoded(compressor, file, dtype.itemsize)
                raise
    out, first = [], 0
    for group, (_, start, end) in zip(files, windows, strict=True):
        own = bounds[first : first + len(group) + 1]
        view = rows[own[0] : own[-1]]
        out.append(Fragments(view, _order(view, start, end, group, own - own[0])))
        first += len(group)
    return out


def group_in_place(
    pieces: Sequence[Fragments], groups: Sequence[np.ndarray]
) -> list[np.ndarray] | None:
    """Rows of ``pieces`` (from one ``read_dirs``) moved within their array, one slice per group.

    ``groups[g]`` lists positions in the pieces' concatenated order (piece after piece, each in
    its ``order``) of the rows of group g, in the order wanted. Returns one view per group; the
    rows no group lists end up after the last one. None when the pieces do not share one array.
    """
    buffer = pieces[0].rows.base
    if not isinstance(buffer, np.ndarray) or any(p.rows.base is not buffer for p in pieces):
        return None
    positions = np.concatenate(
        [p.order + (p.rows.ctypes.data - buffer.ctypes.data) // buffer.itemsize for p in pieces]
    )
    wanted = [positions[g] for g in groups]
    del positions
    left_out = np.ones(len(buffer), np.bool_)
    for w in wanted:
        left_out[w] = False
    perm = np.concatenate([*wanted, np.flatnonzero(left_out)])
    bounds = [0, *itertools.accumulate(len(w) for w in wanted)]
    # The rearranging is the reader's peak of memory, with the whole chunk in it: only the
    # permutation itself is kept for it, not the index arrays it was made of.
    del wanted, left_out
    permute_rows_in_place(buffer, perm)
    return [buffer[a:b] for a, b in itertools.pairwise(bounds)]


def _decoded(compressor: str, file: Path, row_bytes: int) -> bytearray:
    """The whole decoded content of a file, checked to be whole fragments."""
    payload = decompress_file_bytes(compressor, file.read_bytes(), str(file))
    if len(payload) % row_bytes:
        raise BadInput(
            f"{file}: {len(payload)} bytes is not a whole number of "
            f"{row_bytes}-byte fragments (wrong payload size?)"
        )
    return payload


def _announced_size(compressor: str, file: Path, row_bytes: int) -> int | None:
    """The decoded size the file's header announces, if it says and is plausible; else None.

    Plausible: whole fragments, and no more than the codec's best ratio allows for the file's
    size (a damaged header must not make us allocate terabytes).
    """
    with file.open("rb") as handle:
        head = handle.read(_HEADER_BYTES)
        file_bytes = os.fstat(handle.fileno()).st_size
    if not head:
        return 0
    try:
        if compressor == "lz4":
            size = int(lz4.frame.get_frame_info(head)["content_size"])  # 0: not recorded
        elif compressor == "blosc":
            size = int(blosc.get_cbuffer_sizes(head)[0])
        else:
            return None
    except Exception:  # a bad header: the full decoder reports it, naming the file
        return None
    if size <= 0 or size % row_bytes or size > _MAX_RATIO * file_bytes + 2**16:
        return None
    return size


def _order(
    rows: np.ndarray, start: int, end: int, files: Sequence[Path], bounds: np.ndarray
) -> np.ndarray:
    """Stable (time, channel) order of the rows, after checking every time is in the window."""
    if end - start >= 2 ** (63 - _CHANNEL_BITS):
        raise BadInput(f"a live_data window of {end - start} ns is too long")
    key, bad = _window_key(rows["time"], rows["channel"], start, end)
    if bad >= 0:
        file = files[int(np.searchsorted(bounds, bad, side="right")) - 1]
        raise BadInput(
            f"{file}: fragment starting at {int(rows['time'][bad])} ns lies outside its "
            f"window [{start}, {end})"
        )
    return np.argsort(key, kind="stable")


@numba.njit(nogil=True, cache=True)
def _window_key(
    time: np.ndarray, channel: np.ndarray, start: int, end: int
) -> tuple[np.ndarray, int]:
    """Packed (time, channel) sort keys; the index of the first time outside the window, or -1."""
    key = np.empty(len(time), np.int64)
    for i in range(len(time)):
        t = time[i]
        if t < start or t >= end:
            return key, i
        key[i] = ((t - start) << _CHANNEL_BITS) | (channel[i] + _CHANNEL_OFFSET)
    return key, -1
