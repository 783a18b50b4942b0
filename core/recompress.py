"""Rechunk and recompress one stored data type, streaming: memory independent of chunk sizes.

Source chunks are decoded piece by piece into one reused 16 MB array and the rows go straight
into the compressor of the output chunk being written; neither a source chunk nor a target's
worth of rows is ever held. Output
chunks are cut at quiet gaps (longer than strax's 1 µs split gap) with strax's rule: the gap
nearest to the target size. Rows after the last gap below the target wait until the first gap
beyond it shows which of the two is nearer; between such gaps there are rarely more than a few
rows. The output keeps the source's lineage, so its folder name is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from straxd.core.chunk import DEFAULT_CHUNK_SPLIT_NS, NO_END_BEFORE, Chunk, endtime, gap_starts
from straxd.core.chunk_stream import ChunkStream
from straxd.core.lineage import DataKey
from straxd.core.storage import ChunkWriter
from straxd.core.storage_read import StoredData, open_data
from straxd.core.strax_files import STRAX_METADATA_KEYS

# blosc cannot compress buffers over 2 GB; targets for it stay below.
BLOSC_MAX_TARGET_MB = 1500.0
# Source rows are decoded this many bytes at a time, whatever the size of the source chunks.
PIECE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class RecompressResult:
    """What was written."""

    folder: Path
    rows: int
    chunks: int
    bytes_in: int
    bytes_out: int


def effective_target_mb(compressor: str, target_mb: float) -> float:
    """The target, capped for blosc's 2 GB limit."""
    return min(target_mb, BLOSC_MAX_TARGET_MB) if compressor == "blosc" else target_mb


def recompress(
    source: Path,
    destination_root: Path,
    compressor: str,
    target_mb: float,
    *,
    fsync: bool = True,
) -> RecompressResult:
    """Write ``source`` again under ``destination_root`` with new compressor and chunk size."""
    stored = open_data(source)
    meta = stored.metadata
    key = DataKey(meta["run_id"], meta["data_type"], meta["lineage"])
    target_mb = effective_target_mb(compressor, target_mb)
    extra = {k: v for k, v in meta.items() if k not in STRAX_METADATA_KEYS}
    writer = ChunkWriter(
        destination_root, key, stored.dtype, meta["data_kind"], compressor,
        chunk_target_size_mb=int(target_mb), extra_metadata=extra, overwrite="never", fsync=fsync,
    )  # fmt: skip
    try:
        result = _stream(stored, writer, target_mb * 1e6)
    except BaseException as err:
        writer.close(err)
        raise
    folder = writer.close()
    return RecompressResult(folder, *result)


def _stream(
    stored: StoredData, writer: ChunkWriter, target_bytes: float
) -> tuple[int, int, int, int]:
    meta = stored.metadata
    start = int(meta["chunks"][0]["start"]) if meta["chunks"] else int(meta.get("start", 0))
    cutter = _Cutter(writer, max(1, int(target_bytes // stored.dtype.itemsize)), start)
    buffer = np.empty(max(1, PIECE_BYTES // stored.dtype.itemsize), stored.dtype)
    end_before, bytes_in = NO_END_BEFORE, 0
    for chunk_i in range(stored.n_chunks):
        for rows in stored.iter_chunk_rows(chunk_i, buffer):
            bytes_in += rows.nbytes
            gaps, end_before = gap_starts(rows["time"], endtime(rows), end_before, SPLIT_NS)
            cutter.feed(rows, gaps)
            cutter.keep_pending()  # before the buffer is filled again
    end = int(meta["chunks"][-1]["end"]) if meta["chunks"] else start
    cutter.close(max(end, end_before))
    bytes_out = sum(int(c.get("filesize", 0)) for c in writer.metadata["chunks"])
    return cutter.rows, writer.n_chunks, bytes_in, bytes_out


class _Cutter:
    """Cuts a stream of rows into output chunks at gaps, writing each row as soon as it can.

    Positions count rows from the start of the output chunk being written. ``last_gap`` is the
    position of the latest gap at or below the target (0: none yet); rows after it are
    ``pending``: they belong to this chunk or the next, decided at the first gap beyond the
    target. Without such a gap every row is certain and written at once.
    """

    def __init__(self, writer: ChunkWriter, target_rows: int, start: int) -> None:
        self.writer, self.target_rows, self.start = writer, target_rows, start
        self.out: ChunkStream | None = None  # opened by the first row of each chunk
        self.last_gap = 0
        self.pending: list[np.ndarray] = []
        self.borrowed = 0  # pending[borrowed:] are views of the source buffer
        self.rows = 0

    @property
    def position(self) -> int:
        """Rows in the current output chunk, pending ones included."""
        return (self.out.n if self.out else 0) + sum(len(p) for p in self.pending)

    def feed(self, rows: np.ndarray, gaps: np.ndarray) -> None:
        """Add ``rows``; ``gaps`` are the (sorted) indices of rows that follow a gap."""
        while len(rows):
            base = self.position
            if base == 0 and len(gaps) and gaps[0] == 0:
                gaps = gaps[1:]  # a chunk never ends before its first row
            below = int(np.searchsorted(gaps, self.target_rows - base, side="right"))
            if below:  # rows before the last gap within the target are this chunk's
                cut = int(gaps[below - 1])
                self._write(rows[:cut])
                self.last_gap = base + cut
                rows, gaps = rows[cut:], gaps[below:] - cut
            elif not len(gaps):  # no decision possible yet
                if self.last_gap:
                    self.pending.append(rows)
                else:
                    self._write(rows)
                return
            elif self._nearer_is_last_gap(base + int(gaps[0])):
                first = self.pending[0] if self.pending else rows
                self._next_chunk(int(first["time"][0]))  # the pending rows open the next chunk
            else:
                beyond = int(gaps[0])
                self._write(rows[:beyond])
                self._next_chunk(int(rows["time"][beyond]))
                rows, gaps = rows[beyond:], gaps[1:] - beyond

    def _nearer_is_last_gap(self, beyond: int) -> bool:
        """Whether to cut at ``last_gap`` rather than at ``beyond`` (a tie: the earlier one)."""
        return bool(self.last_gap) and self.target_rows - self.last_gap <= beyond - self.target_rows

    def _write(self, rows: np.ndarray | None = None) -> None:
        """Write the pending rows, then ``rows``."""
        for piece in [*self.pending, *([] if rows is None else [rows])]:
            if len(piece):
                if self.out is None:
                    self.out = self.writer.open_stream()
                self.out.write(piece)
                self.rows += len(piece)
        self.pending, self.borrowed = [], 0

    def _next_chunk(self, next_time: int) -> None:
        """End the chunk halfway into the gap before ``next_time``; pending rows move on."""
        assert self.out is not None  # a cut always follows written rows
        end = next_time - SPLIT_NS // 2
        self.writer.commit_stream(self.out, self.start, end)
        self.out, self.start, self.last_gap = None, end, 0
        self._write()  # at the start of a chunk, no row is in doubt

    def keep_pending(self) -> None:
        """Copy the pending rows out of the source buffer, which is about to be reused."""
        # Only the new ones: rows waiting through many pieces are copied once, not per piece.
        self.pending[self.borrowed :] = [p.copy() for p in self.pending[self.borrowed :]]
        self.borrowed = len(self.pending)

    def close(self, end: int) -> None:
        """Write the last chunk, ending at ``end`` (or later, if its rows reach further)."""
        self._write()
        end = max(end, self.start)
        if self.out is not None:
            self.writer.commit_stream(self.out, self.start, end)
            return
        if not self.writer.n_chunks:  # no rows at all: one empty chunk, as strax stores it
            meta = self.writer.metadata
            empty = np.zeros(0, self.writer.dtype)
            self.writer.write(
                Chunk(meta["data_type"], meta["data_kind"], meta["run_id"], self.start, end, empty)
            )


SPLIT_NS = DEFAULT_CHUNK_SPLIT_NS
