"""One chunk file written piece by piece: rows are compressed as they arrive, never held whole.

The file goes through ``<name>_temp`` and a rename like every other file of a folder, so a crash
leaves no half file under the final name. ``ChunkWriter.open_stream`` makes one and
``ChunkWriter.commit_stream`` adds it to the metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from straxd.core.chunk import endtime
from straxd.core.compress_stream import stream_encoder
from straxd.core.dtypes import remove_titles
from straxd.core.errors import BadInput, StraxdError

TEMP_SUFFIX = "_temp"
# Bytes handed to the encoder per call: bounds the compressed output held at once. Below the
# heap's mmap threshold (``memory.HEAP_THRESHOLD_BYTES``) each output reuses heap memory:
# with 16 MB pieces every lz4 output was a fresh mapping (71 k page faults in a 60 s run's
# raw_records, 4.3 s of compressing; 1 MB pieces: none, 3.3 s).
ENCODE_PIECE_BYTES = 2**20


class ChunkStream:
    """The rows of one chunk, compressed into its file as they are written."""

    def __init__(
        self, path: Path, dtype: np.dtype[Any], compressor: str, fsync: bool = True
    ) -> None:
        self.path = path
        self.dtype = dtype
        self.fsync = fsync
        self.n = self.nbytes = self.filesize = 0
        self.first: tuple[int, int] | None = None  # time and end of the first row
        self.last: tuple[int, int] | None = None
        self.finished = False
        self._encoder = stream_encoder(compressor)
        self._temp = path.with_name(path.name + TEMP_SUFFIX)
        self._handle = self._temp.open("wb")

    def write(self, rows: np.ndarray) -> None:
        """Append rows (in time order, after every row written before)."""
        if self.finished:
            raise StraxdError(f"{self.path} is already finished")
        if remove_titles(rows.dtype) != remove_titles(self.dtype):
            raise BadInput(f"{self.path}: rows of dtype {rows.dtype}, not {self.dtype}")
        if not len(rows):
            return
        ends = endtime(rows[[0, -1]])
        if self.first is None:
            self.first = (int(rows["time"][0]), int(ends[0]))
        self.last = (int(rows["time"][-1]), int(ends[1]))
        raw = np.ascontiguousarray(rows).reshape(-1).view(np.uint8).data
        for offset in range(0, len(raw), ENCODE_PIECE_BYTES):
            self._emit(self._encoder.compress(raw[offset : offset + ENCODE_PIECE_BYTES]))
        self.n += len(rows)
        self.nbytes += len(raw)

    def _emit(self, payload: bytes) -> None:
        self._handle.write(payload)
        self.filesize += len(payload)

    def finish(self) -> None:
        """Write the encoder's tail and give the file its final name."""
        if self.finished:
            raise StraxdError(f"{self.path} is already finished")
        self._emit(self._encoder.flush())
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temp, self.path)
        self.finished = True

    def abort(self) -> None:
        """Drop the partial file (the folder's writer records the failure)."""
        if not self.finished:
            self.finished = True
            self._handle.close()
            self._temp.unlink(missing_ok=True)
