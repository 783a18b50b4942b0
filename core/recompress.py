"""Rechunk and recompress one stored data type, streaming, with memory near one target chunk.

Rows from the source chunks are copied into one buffer of about the target size; when it is
full, the buffer is cut at a quiet gap (strax's rule, ``get_splits``), the first part is
compressed and written as one chunk, and the rest moves to the front. Memory therefore stays
near one target chunk plus one source chunk, where concatenating chunks (strax's rechunker) needs
about twice the target. The output keeps the source's lineage, so its folder name is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from straxd.core.chunk import DEFAULT_CHUNK_SPLIT_NS, Chunk, endtime, get_splits
from straxd.core.lineage import DataKey
from straxd.core.storage import STRAX_METADATA_KEYS, ChunkWriter
from straxd.core.storage_read import StoredData, open_data

# blosc cannot compress buffers over 2 GB; targets for it stay below.
BLOSC_MAX_TARGET_MB = 1500.0


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


class _Buffer:
    """Rows waiting to be written, in one preallocated array."""

    def __init__(self, dtype: np.dtype[Any], capacity_rows: int) -> None:
        self.data = np.zeros(max(capacity_rows, 1), dtype)
        self.n = 0

    def add(self, rows: np.ndarray) -> None:
        needed = self.n + len(rows)
        if needed > len(self.data):  # sized for target + largest chunk: only if a cut is late
            grown = np.zeros(needed + len(rows), self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : needed] = rows
        self.n = needed

    def drop(self, n_rows: int) -> None:
        """Forget the first ``n_rows`` (already written); the rest moves to the front."""
        rest = self.n - n_rows
        self.data[:rest] = self.data[n_rows : self.n]
        self.n = rest


def _cut(buffer: _Buffer, target_bytes: float) -> int | None:
    """Rows to write now: the first gap-cut of the buffer, or None if there is none yet."""
    rows = buffer.data[: buffer.n]
    splits = get_splits(rows, target_bytes, DEFAULT_CHUNK_SPLIT_NS)
    return int(splits[1]) if len(splits) > 1 else None


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
    meta, dtype = stored.metadata, stored.dtype
    counts = [int(c.get("n", 0)) for c in meta["chunks"]] or [0]
    # A target's worth plus one source chunk, never more than the data itself (a 5 GB target
    # for a small run must not reserve 5 GB).
    capacity = int(target_bytes // dtype.itemsize) + 1 + max(counts)
    buffer = _Buffer(dtype, min(capacity, sum(counts)))
    start = int(meta["chunks"][0]["start"]) if meta["chunks"] else int(meta.get("start", 0))
    rows = bytes_in = chunks = 0
    for chunk_i in range(stored.n_chunks):
        chunk = stored.load_chunk(chunk_i)
        bytes_in += chunk.data.nbytes
        buffer.add(chunk.data)
        del chunk
        # Look for a cut only once a target's worth is waiting (the search scans the buffer).
        while buffer.n * dtype.itemsize >= target_bytes and (n := _cut(buffer, target_bytes)):
            end = int(buffer.data["time"][n]) - DEFAULT_CHUNK_SPLIT_NS // 2
            # Written from a view of the buffer: compressed before the rest moves to the front.
            writer.write(_chunk(stored, start, end, buffer.data[:n]))
            buffer.drop(n)
            start, rows, chunks = end, rows + n, chunks + 1
    end = int(meta["chunks"][-1]["end"]) if meta["chunks"] else start
    if buffer.n or not chunks:
        writer.write(_chunk(stored, start, max(end, start), buffer.data[: buffer.n]))
        rows, chunks = rows + buffer.n, chunks + 1
    bytes_out = sum(int(c.get("filesize", 0)) for c in writer.metadata["chunks"])
    return rows, chunks, bytes_in, bytes_out


def _chunk(stored: StoredData, start: int, end: int, data: np.ndarray) -> Chunk:
    meta = stored.metadata
    if len(data):
        end = max(end, int(endtime(data).max()))
    return Chunk(meta["data_type"], meta["data_kind"], meta["run_id"], start, end, data)
