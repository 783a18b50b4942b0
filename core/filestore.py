"""The pipeline's view of a strax data directory: what is stored, loading it, writing new types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from straxd.core.chunk import Chunk, Rechunker
from straxd.core.lineage import DataKey
from straxd.core.plugin import Plugin, Registry
from straxd.core.storage import ChunkWriter, Overwrite
from straxd.core.storage_read import Status, find, status_of

# Rechunking holds data back in memory until a chunk reaches its target (2 GB for peaklets,
# as straxen), so memory would grow with the run. Processed data is rechunked to the production
# targets later (restrax); here chunks are capped at this size. Every rechunked type holds up to
# this much: at 16 MB the small event-level types alone grew a 240 s run by ~45 MB.
LIVE_MAX_CHUNK_MB = 4
# ... and no type holds more than this stretch of the run: the slow event-level types took most
# of a 240 s run to reach 4 MB, holding 26 MiB together near its end (the peak RSS grew with the
# run's length). With 30 s, all types together held 2-11 MiB (a file per type and 30 s).
LIVE_MAX_HELD_S = 30.0


class FileSink:
    """Saves one computed data type: optional rechunking in front of a ChunkWriter."""

    def __init__(
        self,
        writer: ChunkWriter,
        rechunk: bool,
        max_chunk_mb: float | None = None,
        max_held_s: float | None = None,
    ) -> None:
        self.writer = writer
        held_ns = None if max_held_s is None else int(max_held_s * 1e9)
        self.rechunker = Rechunker(rechunk, max_chunk_mb, held_ns)
        self.folder: Path | None = None

    def write(self, chunk: Chunk) -> None:
        """Take one chunk; write whatever the rechunker releases."""
        for ready in self.rechunker.receive(chunk):
            self.writer.write(ready)

    def close(self, exception: BaseException | None = None) -> None:
        """Flush and finish; with an exception the output stays ``_temp`` and broken."""
        if exception is None:
            for ready in self.rechunker.flush():
                self.writer.write(ready)
        self.folder = self.writer.close(exception)


class FileStore:
    """One run's data in one directory, as the pipeline's Store."""

    def __init__(
        self,
        root: Path,
        run_id: str,
        *,
        overwrite: Overwrite = "if_broken",
        extra_metadata: dict[str, Any] | None = None,
        fsync: bool = True,
        max_chunk_mb: float | None = LIVE_MAX_CHUNK_MB,
        max_held_s: float | None = LIVE_MAX_HELD_S,
        compressors: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.compressors = compressors or {}
        self.max_chunk_mb = max_chunk_mb
        self.max_held_s = max_held_s
        self.run_id = run_id
        self.overwrite = overwrite
        self.extra_metadata = extra_metadata or {}
        self.fsync = fsync
        self.sinks: dict[str, FileSink] = {}

    def folder(self, data_type: str, lineage_hash: str) -> Path:
        """Where a data type of this run lives."""
        return self.root / f"{self.run_id}-{data_type}-{lineage_hash}"

    def has(self, data_type: str, lineage_hash: str) -> bool:
        """Whether complete data of this type and lineage is stored."""
        return status_of(self.folder(data_type, lineage_hash)) is Status.COMPLETE

    async def load(self, data_type: str, lineage_hash: str) -> AsyncIterator[Chunk]:
        """Stream the stored chunks, each read in a worker thread."""
        stored = await asyncio.to_thread(find, self.root, self.run_id, data_type, lineage_hash)
        for chunk_i in range(stored.n_chunks):
            yield await asyncio.to_thread(stored.load_chunk, chunk_i)

    def open_sink(self, plugin: Plugin, data_type: str, registry: Registry) -> FileSink:
        """A sink writing ``data_type`` with its compressor (the plugin's unless overridden)."""
        key = DataKey(self.run_id, data_type, registry.lineage(data_type))
        writer = ChunkWriter(
            self.root,
            key,
            plugin.dtype_of(data_type),
            plugin.kind_of(data_type),
            self.compressors.get(data_type, plugin.compressor),
            chunk_target_size_mb=plugin.chunk_target_size_mb,
            extra_metadata=self.extra_metadata,
            overwrite=self.overwrite,
            fsync=self.fsync,
        )
        sink = FileSink(writer, plugin.rechunks(data_type), self.max_chunk_mb, self.max_held_s)
        self.sinks[data_type] = sink
        return sink
