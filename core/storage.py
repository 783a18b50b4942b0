"""Writing data in the strax file format, crash-safe.

A data type of a run lives in ``<root>/<run_id>-<data_type>-<lineage_hash>/``: one compressed file
per non-empty chunk and ``<data_type>-<hash>-metadata.json``. While writing, the folder is
``..._temp`` and the metadata is rewritten after every chunk, so a run being written can be
followed. ``close()`` adds ``writing_ended`` and renames the folder; a failed write records the
``exception`` and stays in ``_temp``, so a broken output never takes the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np

from straxd.core.chunk import Chunk, endtime
from straxd.core.compress import get_codec
from straxd.core.dtypes import remove_titles
from straxd.core.errors import BadInput, ChunkError, OutputExists, StraxdError
from straxd.core.lineage import DataKey

# The strax file-format version we write; strax refuses data older than 0.9.0.
STRAX_FORMAT_VERSION = "2.2.3"
STRAXD_VERSION = "0.1.0"
TEMP_SUFFIX = "_temp"
Overwrite = Literal["never", "if_broken", "always"]


def metadata_filename(dirname: str) -> str:
    """``<data_type>-<hash>-metadata.json`` for folder ``<run_id>-<data_type>-<hash>``."""
    return f"{dirname.split('-', 1)[1]}-metadata.json"


def write_atomic(path: Path, payload: bytes, fsync: bool = True) -> None:
    """Write ``path`` through ``<path>_temp`` and a rename, so readers never see half a file."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    with temp.open("wb") as handle:
        handle.write(payload)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temp, path)


def dump_metadata(metadata: dict[str, Any]) -> bytes:
    """The metadata JSON exactly as strax formats it."""
    return json.dumps(metadata, sort_keys=True, indent=4).encode()


class ChunkWriter:
    """Write the chunks of one data type of one run; ``close()`` makes it final."""

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
        self.codec = get_codec(compressor)
        self.key = key
        self.dirname = str(key)
        self.final_dir = Path(root) / self.dirname
        self.temp_dir = Path(root) / (self.dirname + TEMP_SUFFIX)
        self.prefix = self.dirname.split("-", 1)[1]
        self.dtype = np.dtype(dtype)
        self.fsync = fsync
        self.closed = False
        self._check_overwrite(overwrite)
        self.metadata: dict[str, Any] = {
            **(extra_metadata or {}),
            "run_id": key.run_id,
            "data_type": key.data_type,
            "data_kind": data_kind,
            "dtype": repr(self.dtype.descr),
            "lineage": key.lineage,
            "lineage_hash": key.lineage_hash,
            "compressor": compressor,
            "chunk_target_size_mb": chunk_target_size_mb,
            "strax_version": STRAX_FORMAT_VERSION,
            "straxd_version": STRAXD_VERSION,
            "writing_started": time.time(),
            "chunks": [],
        }
        if self.temp_dir.exists():
            shutil.rmtree(self.temp_dir)  # a stale attempt: never anyone's last copy
        self.temp_dir.mkdir(parents=True)
        self._flush()

    def _check_overwrite(self, overwrite: Overwrite) -> None:
        if not self.final_dir.exists() or overwrite == "always":
            return
        if overwrite == "if_broken":
            from straxd.core.storage_read import Status, status_of  # the reader imports us

            if status_of(self.final_dir) is Status.COMPLETE:
                raise OutputExists(str(self.final_dir), f"complete data exists at {self.final_dir}")
            return
        raise OutputExists(str(self.final_dir))

    @property
    def n_chunks(self) -> int:
        """Chunks written so far."""
        return len(self.metadata["chunks"])

    def _flush(self) -> None:
        write_atomic(
            self.temp_dir / f"{self.prefix}-metadata.json", dump_metadata(self.metadata), self.fsync
        )

    def _check(self, chunk: Chunk) -> None:
        where = f"{self.temp_dir} chunk {self.n_chunks}"
        if remove_titles(chunk.data.dtype) != remove_titles(self.dtype):
            raise BadInput(f"{where}: dtype {chunk.data.dtype} differs from {self.dtype}")
        if (chunk.run_id, chunk.data_type) != (self.key.run_id, self.key.data_type):
            raise BadInput(f"{where}: got {chunk.run_id}/{chunk.data_type}")
        if self.metadata["chunks"]:
            previous_end = self.metadata["chunks"][-1]["end"]
            if chunk.start != previous_end:
                raise ChunkError(
                    f"{where}: starts at {chunk.start} but the previous chunk ended at "
                    f"{previous_end} (chunks must be contiguous and in order)"
                )

    def write(self, chunk: Chunk) -> None:
        """Compress and store one chunk, then rewrite the metadata (call from a worker thread)."""
        if self.closed:
            raise StraxdError(f"{self.temp_dir} is already closed")
        self._check(chunk)
        data = np.ascontiguousarray(chunk.data).astype(self.dtype, copy=False)
        info: dict[str, Any] = {
            "chunk_i": self.n_chunks,
            "n": len(data),
            "start": int(chunk.start),
            "end": int(chunk.end),
            "run_id": chunk.run_id,
            "subruns": chunk.subruns,
            "nbytes": int(data.nbytes),
        }
        if len(data):
            ends = endtime(data[[0, -1]])
            info.update(
                first_time=int(data["time"][0]),
                first_endtime=int(ends[0]),
                last_time=int(data["time"][-1]),
                last_endtime=int(ends[1]),
            )
            filename = f"{self.prefix}-{info['chunk_i']:06d}"
            payload = self.codec.compress(data.data.cast("B"))
            write_atomic(self.temp_dir / filename, payload, self.fsync)
            info.update(filename=filename, filesize=len(payload))
        self.metadata["chunks"].append(info)
        self._flush()

    def close(self, exception: BaseException | None = None) -> Path:
        """Finish writing and return the folder; on failure the folder stays ``_temp``."""
        if self.closed:
            raise StraxdError(f"{self.temp_dir} is already closed")
        self.closed = True
        chunks = self.metadata["chunks"]
        if chunks:
            self.metadata["start"], self.metadata["end"] = chunks[0]["start"], chunks[-1]["end"]
        if exception is not None:
            self.metadata["exception"] = "".join(traceback.format_exception(exception))
        self.metadata["writing_ended"] = time.time()
        self._flush()
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
        if aside is not None:
            shutil.rmtree(aside)


def write_run_metadata(root: Path, run_id: str, metadata: dict[str, Any]) -> Path:
    """Write ``<run_id>-metadata.json`` (strax's run-level metadata), atomically."""
    path = Path(root) / f"{run_id}-metadata.json"
    payload = json.dumps(metadata, sort_keys=True, indent=4, default=str).encode()
    write_atomic(path, payload)
    return path
