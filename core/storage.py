"""Writing data in the strax file format, crash-safe.

A data type of a run lives in ``<root>/<run_id>-<data_type>-<lineage_hash>/``: one compressed file
per non-empty chunk and ``<data_type>-<hash>-metadata.json``. While writing, the folder is
``..._temp`` and the metadata is rewritten after every chunk, so a run being written can be
followed. ``close()`` adds ``writing_ended`` and renames the folder; a failed write records the
``exception`` and stays in ``_temp``, so a broken output never takes the final name (strax itself
renames broken output; we keep the final name for data that is whole).

Every file goes through ``<name>_temp`` and a rename (``strax_files``), with an fsync in between
by default, so a crash leaves either the old file or the new one. The metadata keys are exactly
strax's.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from straxd.core.chunk import Chunk, endtime
from straxd.core.chunk_stream import TEMP_SUFFIX, ChunkStream
from straxd.core.compress import compress_array, get_codec
from straxd.core.dtypes import remove_titles
from straxd.core.errors import BadInput, ChunkError, OutputExists, StraxdError
from straxd.core.lineage import DataKey
from straxd.core.strax_files import (
    STRAX_FORMAT_VERSION,
    STRAX_METADATA_KEYS,
    dump_metadata,
    fsync_dir,
    metadata_filename,
    write_atomic,
)

# Chunks from this size on are compressed into their file piece by piece (ChunkWriter.write).
STREAM_FROM_BYTES = 32 * 2**20
Overwrite = Literal["never", "if_broken", "always"]


@dataclass(frozen=True)
class EncodedChunk:
    """A chunk compressed and described, ready to be committed to its folder."""

    info: dict[str, Any]  # strax's chunk entry, without chunk_i, filename and filesize
    payload: bytes | None  # None for an empty chunk: strax writes no file for it


def check_dtype(chunk: Chunk, dtype: np.dtype[Any]) -> None:
    """BadInput unless the chunk's fields are ``dtype``'s (titles aside)."""
    got, declared = remove_titles(chunk.data.dtype), remove_titles(dtype)
    if got != declared:
        raise BadInput(f"{chunk!r}: dtype {got} differs from the declared {declared}")


def encode_chunk(chunk: Chunk, dtype: np.dtype[Any], compressor: str) -> EncodedChunk:
    """Check and compress one chunk (pure and thread-safe: run it in a worker pool)."""
    check_dtype(chunk, dtype)
    # Same fields in the same order: the cast only adds the declared titles.
    data = np.ascontiguousarray(chunk.data).astype(dtype, copy=False)
    ends = endtime(data[[0, -1]]) if len(data) else None
    info = chunk_info(
        chunk.start, chunk.end, chunk.run_id, chunk.subruns, len(data), int(data.nbytes),
        None if ends is None else (int(data["time"][0]), int(ends[0])),
        None if ends is None else (int(data["time"][-1]), int(ends[1])),
    )  # fmt: skip
    if not len(data):
        return EncodedChunk(info, None)
    return EncodedChunk(info, compress_array(compressor, data))


def chunk_info(
    start: int, end: int, run_id: str, subruns: dict[str, Any] | None, n: int, nbytes: int,
    first: tuple[int, int] | None, last: tuple[int, int] | None,
) -> dict[str, Any]:  # fmt: skip
    """strax's metadata entry of a chunk (without chunk_i and the file); ``first`` and ``last``
    are the (time, endtime) of its first and last rows, None when it has none."""
    info: dict[str, Any] = {
        "n": n, "start": int(start), "end": int(end), "run_id": run_id, "subruns": subruns,
        "nbytes": nbytes,
    }  # fmt: skip
    if first is not None and last is not None:
        info.update(first_time=first[0], first_endtime=first[1], last_time=last[0],
                    last_endtime=last[1])  # fmt: skip
    return info


class ChunkWriter:
    """Write the chunks of one data type of one run; ``close()`` makes it final.

    Constructing it opens the output: the overwrite rule is checked, a stale ``_temp`` folder is
    removed and the metadata without chunks is written. Use it as a context manager (an exception
    closes it as broken) or call ``close`` yourself. ``write`` does everything in the calling
    thread; to compress in a pool, run ``encode`` there and ``commit`` the results in order.
    """

    def __init__(
        self,
        root: Path,
        key: DataKey,
        dtype: np.dtype[Any],
        data_kind: str,
        compressor: str,
        *,
        chunk_target_size_mb: int = 200,
        extra_metadata: dict[str, Any] | None = None,
        overwrite: Overwrite = "if_broken",
        fsync: bool = True,
    ) -> None:
        self.compressor = get_codec(compressor).name
        self.key = key
        self.dirname = str(key)
        self.root = Path(root)
        self.final_dir = self.root / self.dirname
        self.temp_dir = self.root / (self.dirname + TEMP_SUFFIX)
        self.dtype = np.dtype(dtype)
        self.data_kind = data_kind
        self.fsync = fsync
        self.closed = False
        self._stream: ChunkStream | None = None
        clash = sorted(STRAX_METADATA_KEYS & set(extra_metadata or {}))
        if clash:
            raise BadInput(f"{self.final_dir}: extra metadata may not set strax's keys {clash}")
        self._check_overwrite(overwrite)
        # Extra keys (e.g. ones found in a source folder being recompressed) come first, so
        # nothing can replace strax's own.
        self.metadata: dict[str, Any] = {
            **(extra_metadata or {}),
            "run_id": key.run_id,
            "data_type": key.data_type,
            "data_kind": data_kind,
            "dtype": repr(self.dtype.descr),
            "lineage": key.lineage,
            "lineage_hash": key.lineage_hash,
            "compressor": self.compressor,
            "chunk_target_size_mb": chunk_target_size_mb,
            "strax_version": STRAX_FORMAT_VERSION,
            "writing_started": time.time(),
            "chunks": [],
        }
        if self.temp_dir.exists():
            shutil.rmtree(self.temp_dir)  # an earlier attempt that died: never a valid copy
        self.temp_dir.mkdir(parents=True)
        self._flush()

    def _check_overwrite(self, overwrite: Overwrite) -> None:
        if overwrite not in ("never", "if_broken", "always"):
            raise BadInput(f"unknown overwrite rule {overwrite!r}; use never, if_broken or always")
        if not self.final_dir.exists() or overwrite == "always":
            return
        if overwrite == "if_broken":
            from straxd.core.storage_read import Status, status_of  # the reader imports us

            if status_of(self.final_dir) is Status.COMPLETE:
                raise OutputExists(
                    str(self.final_dir),
                    f"complete data exists at {self.final_dir} (overwrite rule if_broken)",
                )
            return
        raise OutputExists(
            str(self.final_dir), f"data exists at {self.final_dir} (overwrite rule never)"
        )

    @property
    def n_chunks(self) -> int:
        """Chunks written so far."""
        return len(self.metadata["chunks"])

    @property
    def metadata_path(self) -> Path:
        """The metadata file inside the temp folder."""
        return self.temp_dir / metadata_filename(self.dirname)

    def _flush(self) -> None:
        write_atomic(self.metadata_path, dump_metadata(self.metadata), self.fsync)

    def encode(self, chunk: Chunk) -> EncodedChunk:
        """Check the chunk belongs here and compress it; touches no file and no state."""
        self._check_belongs(chunk)
        try:
            return encode_chunk(chunk, self.dtype, self.compressor)
        except BadInput as err:
            raise BadInput(f"{self.temp_dir}: {err}") from None

    def _check_belongs(self, chunk: Chunk) -> None:
        where = f"{self.temp_dir}: {chunk!r}"
        if (chunk.run_id, chunk.data_type) != (self.key.run_id, self.key.data_type):
            raise BadInput(f"{where} is not {self.key.data_type} of run {self.key.run_id}")
        if chunk.data_kind != self.data_kind:
            raise BadInput(f"{where} has data kind {chunk.data_kind}, not {self.data_kind}")

    def commit(self, encoded: EncodedChunk) -> dict[str, Any]:
        """Store an encoded chunk as the next one and rewrite the metadata; returns its entry."""
        self._check_open()
        info = {"chunk_i": self.n_chunks, **encoded.info}
        self._check_contiguous(info)
        if encoded.payload is not None:
            filename = self._chunk_filename()
            write_atomic(self.temp_dir / filename, encoded.payload, self.fsync)
            info.update(filename=filename, filesize=len(encoded.payload))
        return self._append(info)

    def open_stream(self) -> ChunkStream:
        """The next chunk's file, to be written piece by piece and then ``commit_stream``-ed."""
        self._check_open()
        if self._stream is not None:
            raise StraxdError(f"{self.temp_dir}: a chunk stream is already open")
        self._stream = ChunkStream(
            self.temp_dir / self._chunk_filename(), self.dtype, self.compressor, self.fsync
        )
        return self._stream

    def commit_stream(
        self, stream: ChunkStream, start: int, end: int, subruns: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Finish the open chunk stream as the chunk [start, end) and rewrite the metadata."""
        self._check_open()
        if stream is not self._stream or stream.first is None or stream.last is None:
            raise StraxdError(f"{self.temp_dir}: not the open chunk stream, or it has no rows")
        info = {
            "chunk_i": self.n_chunks,
            **chunk_info(start, end, self.key.run_id, subruns, stream.n, stream.nbytes,
                         stream.first, stream.last),
        }  # fmt: skip
        self._check_contiguous(info)
        if stream.first[0] < start or max(stream.first[1], stream.last[1]) > end:
            raise ChunkError(f"{stream.path}: rows reach outside [{start}, {end})")
        stream.finish()
        self._stream = None
        info.update(filename=stream.path.name, filesize=stream.filesize)
        return self._append(info)

    def _check_open(self) -> None:
        if self.closed:
            raise StraxdError(f"{self.temp_dir} is already closed")

    def _chunk_filename(self) -> str:
        return f"{self.dirname.split('-', 1)[1]}-{self.n_chunks:06d}"

    def _check_contiguous(self, info: dict[str, Any]) -> None:
        if not self.metadata["chunks"]:
            return
        previous_end = self.metadata["chunks"][-1]["end"]
        if info["start"] != previous_end:
            order = "overlaps" if info["start"] < previous_end else "leaves a gap after"
            raise ChunkError(
                f"{self.temp_dir} chunk {info['chunk_i']}: [{info['start']}, {info['end']}) "
                f"{order} the previous chunk ending at {previous_end} (chunks must be "
                "contiguous and in order)"
            )

    def _append(self, info: dict[str, Any]) -> dict[str, Any]:
        self.metadata["chunks"].append(info)
        if info["chunk_i"] == 0:
            self.metadata["start"] = info["start"]  # as strax, so followers see the start early
        self._flush()
        return info

    def write(self, chunk: Chunk) -> dict[str, Any]:
        """Check, compress and store one chunk, then rewrite the metadata; returns its entry.

        A chunk of ``STREAM_FROM_BYTES`` or more is compressed into its file piece by piece
        (``open_stream``), so that its compressed copy (~70 MB for a live_data chunk's
        raw_records) is never held whole beside it.
        """
        self._check_open()
        if chunk.nbytes < STREAM_FROM_BYTES:
            return self.commit(self.encode(chunk))
        self._check_belongs(chunk)
        # What encode and commit would refuse is refused before a file is begun.
        try:
            check_dtype(chunk, self.dtype)
        except BadInput as err:
            raise BadInput(f"{self.temp_dir}: {err}") from None
        self._check_contiguous({"chunk_i": self.n_chunks, "start": chunk.start, "end": chunk.end})
        stream = self.open_stream()
        try:
            stream.write(chunk.data)
            return self.commit_stream(stream, chunk.start, chunk.end, chunk.subruns)
        except BaseException:
            stream.abort()
            self._stream = None
            raise

    def close(self, exception: BaseException | None = None) -> Path:
        """Finish writing and return the folder; on failure the folder stays ``_temp``.

        Closing without any chunk is a failure too: neither strax nor straxd can load it.
        """
        if self.closed:
            raise StraxdError(f"{self.temp_dir} is already closed")
        self.closed = True
        if self._stream is not None:  # a chunk being streamed when the writing failed
            self._stream.abort()
            exception = exception or StraxdError(f"{self.temp_dir}: closed mid-chunk")
        chunks = self.metadata["chunks"]
        no_chunks = None
        if exception is None and not chunks:
            exception = no_chunks = ChunkError(f"{self.temp_dir}: closed without any chunk")
        if chunks:
            self.metadata["start"], self.metadata["end"] = chunks[0]["start"], chunks[-1]["end"]
        if exception is not None:
            self.metadata["exception"] = "".join(traceback.format_exception(exception))
        self.metadata["writing_ended"] = time.time()
        self._flush()
        if no_chunks is not None:
            raise no_chunks
        if exception is not None:
            return self.temp_dir
        self._replace_final()
        return self.final_dir

    def _replace_final(self) -> None:
        """Move the temp folder to the final name; an old final folder is moved aside first."""
        aside = None
        if self.final_dir.exists():
            aside = self.final_dir.with_name(f"{self.dirname}_old_{uuid.uuid4().hex[:8]}")
            os.rename(self.final_dir, aside)
        os.rename(self.temp_dir, self.final_dir)
        if self.fsync:
            fsync_dir(self.root)
        if aside is not None:
            shutil.rmtree(aside)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.closed:
            self.close(exc)
