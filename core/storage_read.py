"""Reading data in the strax file format, with every check a corrupted folder can fail.

Reads what strax 2.2.3 writes (all four compressors, empty chunks, the legacy plain
``metadata.json``) and what ``storage.ChunkWriter`` writes. Every problem is an error that names
the file at fault; nothing is ever modified by reading.
"""

from __future__ import annotations

import ast
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.compress import decompress_file_bytes, get_codec
from straxd.core.errors import BadInput, ChunkError, DataCorrupted, DataNotAvailable
from straxd.core.storage import TEMP_SUFFIX, metadata_filename

REQUIRED_KEYS = ("run_id", "data_type", "data_kind", "dtype", "compressor")
REQUIRED_CHUNK_KEYS = ("start", "end", "run_id")
OLDEST_STRAX_VERSION = (0, 9, 0)


class Status(enum.Enum):
    """How complete a stored folder is."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # still ``_temp`` or no ``writing_ended``
    BROKEN = "broken"  # ``exception`` recorded, or unreadable


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def parse_dtype(text: str, source: str) -> np.dtype[Any]:
    """The dtype from strax's ``repr(dtype.descr)`` string."""
    try:
        dtype: np.dtype[Any] = np.dtype(ast.literal_eval(text))
    except (ValueError, TypeError, SyntaxError, MemoryError) as err:
        raise DataCorrupted(f"{source}: dtype {text[:80]!r} does not parse: {err}") from None
    return dtype


def read_metadata(folder: Path) -> tuple[dict[str, Any], Path]:
    """The metadata dict of a folder and the file it came from."""
    path = folder / metadata_filename(folder.name.removesuffix(TEMP_SUFFIX))
    if not path.exists() and (folder / "metadata.json").exists():
        path = folder / "metadata.json"  # older strax wrote a plain name
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataCorrupted(f"{path}: metadata file is missing") from None
    except OSError as err:
        raise DataCorrupted(f"{path}: cannot read metadata: {err.strerror}") from None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataCorrupted(f"{path}: metadata is not valid JSON ({err})") from None
    if not isinstance(metadata, dict):
        raise DataCorrupted(f"{path}: metadata is not a JSON object")
    return metadata, path


@dataclass
class StoredData:
    """One stored folder: its metadata, parsed and checked, and access to its chunks."""

    folder: Path
    metadata: dict[str, Any]
    metadata_path: Path
    dtype: np.dtype[Any] = field(init=False)

    def __post_init__(self) -> None:
        source = str(self.metadata_path)
        missing = [k for k in REQUIRED_KEYS if k not in self.metadata]
        if missing:
            raise DataCorrupted(f"{source}: metadata lacks required keys {missing}")
        version = self.metadata.get("strax_version")
        if version is not None and _version_tuple(str(version)) < OLDEST_STRAX_VERSION:
            raise DataCorrupted(f"{source}: written by strax {version}, older than 0.9.0")
        get_codec(self.metadata["compressor"])  # unknown compressor: a clear error now
        self.dtype = parse_dtype(self.metadata["dtype"], source)
        self._check_chunks(source)

    def _check_chunks(self, source: str) -> None:
        chunks = self.metadata.get("chunks")
        if not isinstance(chunks, list) or (not chunks and self.status is Status.COMPLETE):
            raise DataCorrupted(f"{source}: metadata has no chunks")
        previous_end = None
        for i, info in enumerate(chunks):
            absent = [k for k in REQUIRED_CHUNK_KEYS if k not in info]
            if absent:
                raise DataCorrupted(f"{source}: chunk {i} lacks {absent}")
            if info["start"] > info["end"]:
                raise ChunkError(f"{source}: chunk {i} ends before it starts")
            if previous_end is not None and info["start"] < previous_end:
                raise ChunkError(
                    f"{source}: chunk {i} starts at {info['start']}, before the previous chunk "
                    f"ends at {previous_end} (overlapping or out of order)"
                )
            previous_end = info["end"]

    @property
    def status(self) -> Status:
        """Complete, incomplete (still being written, or abandoned) or broken."""
        if "exception" in self.metadata:
            return Status.BROKEN
        if self.folder.name.endswith(TEMP_SUFFIX) or "writing_ended" not in self.metadata:
            return Status.INCOMPLETE
        return Status.COMPLETE

    @property
    def complete(self) -> bool:
        """True when the data is final and whole."""
        return self.status is Status.COMPLETE

    @property
    def n_chunks(self) -> int:
        """Number of chunks listed in the metadata."""
        return len(self.metadata["chunks"])

    def load_chunk(self, chunk_i: int) -> Chunk:
        """Load and check one chunk."""
        info = self.metadata["chunks"][chunk_i]
        n_rows = int(info.get("n", 0))
        if n_rows == 0:
            data = np.zeros(0, dtype=self.dtype)
        else:
            data = self._read_rows(info, chunk_i, n_rows)
        try:
            return Chunk(
                data_type=self.metadata["data_type"],
                data_kind=self.metadata["data_kind"],
                run_id=info["run_id"],
                start=int(info["start"]),
                end=int(info["end"]),
                data=data,
                target_size_mb=self.metadata.get("chunk_target_size_mb", 200),
                subruns=info.get("subruns"),
            )
        except ChunkError as err:
            raise DataCorrupted(f"{self.folder} chunk {chunk_i}: {err}") from None

    def _read_rows(self, info: dict[str, Any], chunk_i: int, n_rows: int) -> np.ndarray:
        name = info.get("filename") or f"{self.folder.name.split('-', 1)[1]}-{chunk_i:06d}"
        path = self.folder / name.removesuffix(TEMP_SUFFIX)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataCorrupted(f"{path}: chunk file is missing") from None
        payload = decompress_file_bytes(self.metadata["compressor"], raw, str(path))
        if len(payload) % self.dtype.itemsize:
            raise DataCorrupted(
                f"{path}: {len(payload)} bytes is not a whole number of "
                f"{self.dtype.itemsize}-byte rows"
            )
        data = np.frombuffer(payload, dtype=self.dtype)
        if len(data) != n_rows:
            raise DataCorrupted(f"{path}: holds {len(data)} rows, metadata says {n_rows}")
        return data

    def iter_chunks(self) -> Iterator[Chunk]:
        """Every chunk in order, empty chunks included."""
        for chunk_i in range(self.n_chunks):
            yield self.load_chunk(chunk_i)

    def load_all(self) -> np.ndarray:
        """All rows of all chunks in one array."""
        arrays = [chunk.data for chunk in self.iter_chunks()]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=self.dtype)


def open_data(folder: Path | str) -> StoredData:
    """Open a stored folder (final or ``_temp``) and check its metadata."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotAvailable(f"{folder}: no such data folder")
    metadata, path = read_metadata(folder)
    return StoredData(folder, metadata, path)


def status_of(folder: Path | str) -> Status | None:
    """Status of a folder, None when it does not exist; unreadable folders count as broken."""
    folder = Path(folder)
    if not folder.exists():
        return None
    try:
        return open_data(folder).status
    except (DataCorrupted, ChunkError, BadInput):
        return Status.BROKEN


def find(
    root: Path | str, run_id: str, data_type: str, lineage_hash: str, allow_incomplete: bool = False
) -> StoredData:
    """The stored data of one key; incomplete data only when ``allow_incomplete``."""
    name = f"{run_id}-{data_type}-{lineage_hash}"
    final = Path(root) / name
    candidates = [final, final.with_name(name + TEMP_SUFFIX)] if allow_incomplete else [final]
    for folder in candidates:
        if folder.is_dir():
            stored = open_data(folder)
            if stored.status is Status.BROKEN:
                raise DataNotAvailable(f"{folder}: writing failed: {stored.metadata['exception']}")
            if stored.complete or allow_incomplete:
                return stored
            raise DataNotAvailable(f"{folder}: incomplete (writing has not ended)")
    raise DataNotAvailable(f"{final}: not stored")
