"""Rechunk and recompress one stored data type, streaming, with memory near one target chunk.

The source chunks are kept as they were loaded until a target's worth is waiting; then the
rows are cut at a quiet gap (strax's rule, ``get_splits``, applied to their time spans only) and
the first part is compressed straight from the loaded arrays (zstd streams them; the others
join them first) and written as one chunk. Memory therefore stays near one target chunk plus
one source chunk and the compressed output, where concatenating chunks (strax's rechunker)
needs about twice the target. The output keeps the source's lineage, so its folder name is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from straxd.core.chunk import DEFAULT_CHUNK_SPLIT_NS, endtime, get_splits
from straxd.core.compress import ZSTD_LEVEL, compress_array
from straxd.core.lineage import DataKey
from straxd.core.storage import STRAX_METADATA_KEYS, ChunkWriter, EncodedChunk
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


class _Pending:
    """Source rows waiting to be written: views of the loaded chunks, never copied."""

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        if len(rows):
            self.pieces.append(rows)
            self.rows += len(rows)

    def take(self, n_rows: int) -> list[np.ndarray]:
        """The first ``n_rows`` as views; the rest stays."""
        head: list[np.ndarray] = []
        while n_rows:
            piece = self.pieces[0]
            if len(piece) <= n_rows:
                head.append(self.pieces.pop(0))
                n_rows -= len(piece)
                self.rows -= len(piece)
            else:
                head.append(piece[:n_rows])
                self.pieces[0] = piece[n_rows:]
                self.rows -= n_rows
                n_rows = 0
        return head

    def first_time(self) -> int:
        return int(self.pieces[0]["time"][0])


def _cut(pending: _Pending, target_bytes: float, itemsize: int) -> int | None:
    """Rows to write now: strax's first gap-cut of the waiting rows, or None."""
    spans = np.zeros(pending.rows, [("time", "<i8"), ("endtime", "<i8")])
    spans["time"] = np.concatenate([p["time"] for p in pending.pieces])
    spans["endtime"] = np.concatenate([endtime(p) for p in pending.pieces])
    # Cut on the narrow time spans with the same target in rows as the full rows would give.
    target_rows = max(int(target_bytes // itemsize), 1)
    splits = get_splits(spans, target_rows * spans.itemsize, DEFAULT_CHUNK_SPLIT_NS)
    return int(splits[1]) if len(splits) > 1 else None


def compress_pieces(compressor: str, pieces: list[np.ndarray], nbytes: int) -> bytes:
    """One chunk file from several arrays; zstd streams them without joining them first."""
    if compressor != "zstd":
        return compress_array(compressor, np.concatenate(pieces))
    stream = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1).compressobj(size=nbytes)
    out = [stream.compress(np.ascontiguousarray(p).reshape(-1).view(np.uint8)) for p in pieces]
    out.append(stream.flush())
    return b"".join(out)


def encode_pieces(
    stored: StoredData, start: int, end: int, pieces: list[np.ndarray], compressor: str
) -> EncodedChunk:
    """The stored form of one output chunk made of ``pieces`` (as ``storage.encode_chunk``)."""
    meta = stored.metadata
    n = sum(len(p) for p in pieces)
    info: dict[str, Any] = {
        "n": n, "start": int(start), "end": int(end), "run_id": meta["run_id"],
        "subruns": None, "nbytes": n * stored.dtype.itemsize,
    }  # fmt: skip
    if not n:
        return EncodedChunk(info, None)
    last_end = max(int(endtime(p).max()) for p in pieces)
    info.update(
        end=max(int(end), last_end),
        first_time=int(pieces[0]["time"][0]),
        first_endtime=int(endtime(pieces[0][:1])[0]),
        last_time=int(pieces[-1]["time"][-1]),
        last_endtime=int(endtime(pieces[-1][-1:])[0]),
    )
    return EncodedChunk(info, compress_pieces(compressor, pieces, info["nbytes"]))


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
    meta, itemsize = stored.metadata, stored.dtype.itemsize
    pending = _Pending()
    start = int(meta["chunks"][0]["start"]) if meta["chunks"] else int(meta.get("start", 0))
    rows = bytes_in = chunks = 0
    for chunk_i in range(stored.n_chunks):
        data = stored.load_chunk(chunk_i).data
        bytes_in += data.nbytes
        pending.add(data)
        # Look for a cut only once a target's worth is waiting.
        while pending.rows * itemsize >= target_bytes and (
            n := _cut(pending, target_bytes, itemsize)
        ):
            head = pending.take(n)
            end = pending.first_time() - DEFAULT_CHUNK_SPLIT_NS // 2
            writer.commit(encode_pieces(stored, start, end, head, writer.compressor))
            start, rows, chunks = end, rows + n, chunks + 1
    end = int(meta["chunks"][-1]["end"]) if meta["chunks"] else start
    if pending.rows or not chunks:
        n = pending.rows
        head = pending.take(n)
        writer.commit(encode_pieces(stored, start, max(end, start), head, writer.compressor))
        rows, chunks = rows + n, chunks + 1
    bytes_out = sum(int(c.get("filesize", 0)) for c in writer.metadata["chunks"])
    return rows, chunks, bytes_in, bytes_out
