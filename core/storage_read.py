"""Reading data in the strax file format, with every check a corrupted folder can fail.

Reads what strax 2.2.3 writes (all four compressors, empty chunks, the legacy plain
``metadata.json``) and what ``storage.ChunkWriter`` writes. Every problem is an error that names
the file at fault; reading never modifies anything.
"""

from __future__ import annotations

import ast
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
from bson import json_util

from straxd.core.chunk import Chunk, endtime
from straxd.core.chunk_stream import TEMP_SUFFIX
from straxd.core.compress import decompress_file_into, decompress_file_rows, get_codec
from straxd.core.errors import BadInput, ChunkError, DataCorrupted, DataNotAvailable
from straxd.core.strax_files import metadata_filename, run_metadata_path

REQUIRED_KEYS = ("run_id", "data_type", "data_kind", "dtype", "compressor")
REQUIRED_CHUNK_KEYS = ("n", "start", "end", "run_id")
OLDEST_STRAX_VERSION = (0, 9, 0)
DEFAULT_CHUNK_TARGET_MB = 200
_RUN_METADATA_JSON = json_util.JSONOptions(tz_aware=True, tzinfo=UTC)


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


def parse_dtype(text: Any, source: str) -> np.dtype[Any]:
    """The dtype from strax's ``repr(dtype.descr)`` string."""
    try:
        dtype: np.dtype[Any] = np.dtype(ast.literal_eval(text))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        shown = str(text)[:80]
        raise DataCorrupted(f"{source}: dtype {shown!r} does not parse: {err}") from None
    return dtype


def read_metadata(folder: Path) -> tuple[dict[str, Any], Path]:
    """The metadata dict of a folder and the file it came from."""
    path = folder / metadata_filename(folder.name)
    if not path.exists() and (folder / "metadata.json").exists():
        path = folder / "metadata.json"  # older strax wrote a plain name
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataCorrupted(f"{path}: metadata file is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataCorrupted(f"{path}: cannot read metadata: {err}") from None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataCorrupted(f"{path}: metadata is not valid JSON ({err})") from None
    if not isinstance(metadata, dict):
        raise DataCorrupted(f"{path}: metadata is not a JSON object")
    return metadata, path


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_chunk_entries(chunks: Any, source: str, allow_none: bool) -> None:
    """Entries complete, well-typed, in order and not overlapping."""
    if not isinstance(chunks, list) or (not chunks and not allow_none):
        raise DataCorrupted(f"{source}: metadata has no chunks")
    previous_end = None
    for i, info in enumerate(chunks):
        if not isinstance(info, dict):
            raise DataCorrupted(f"{source}: chunk entry {i} is not an object")
        absent = [k for k in REQUIRED_CHUNK_KEYS if k not in info]
        if absent:
            raise DataCorrupted(f"{source}: chunk entry {i} lacks {absent}")
        if not all(_is_int(info[k]) for k in ("n", "start", "end")) or info["n"] < 0:
            raise DataCorrupted(f"{source}: chunk entry {i} has a bad n, start or end")
        if info["start"] > info["end"]:
            raise ChunkError(f"{source}: chunk {i} ends at {info['end']} before its start")
        if previous_end is not None and info["start"] < previous_end:
            raise ChunkError(
                f"{source}: chunk {i} starts at {info['start']}, before the previous chunk "
                f"ends at {previous_end} (overlapping or out of order)"
            )
        previous_end = info["end"]


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
        try:
            get_codec(self.metadata["compressor"], source)
        except BadInput as err:
            raise DataCorrupted(str(err)) from None
        self.dtype = parse_dtype(self.metadata["dtype"], source)
        # A folder still being written may have no chunks yet; a finished one must have some.
        _check_chunk_entries(
            self.metadata.get("chunks"), source, self.status is not Status.COMPLETE
        )

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

    @property
    def compressor(self) -> str:
        """The compressor of every chunk file."""
        return str(self.metadata["compressor"])

    def load_chunk(self, chunk_i: int) -> Chunk:
        """Load and check one chunk (empty chunks have no file and give an empty array)."""
        info = self._info(chunk_i)
        try:
            data = np.empty(info["n"], dtype=self.dtype)
        except MemoryError:
            raise DataCorrupted(
                f"{self.metadata_path}: chunk {chunk_i} announces {info['n']} rows, more than "
                "fit in memory"
            ) from None
        if len(data):
            decompress_file_into(self.compressor, self._chunk_path(info, chunk_i), data)
        try:
            return Chunk(
                data_type=self.metadata["data_type"],
                data_kind=self.metadata["data_kind"],
                run_id=info["run_id"],
                start=info["start"],
                end=info["end"],
                data=data,
                target_size_mb=self.metadata.get("chunk_target_size_mb", DEFAULT_CHUNK_TARGET_MB),
                subruns=info.get("subruns"),
            )
        except ChunkError as err:
            raise DataCorrupted(f"{self._chunk_path(info, chunk_i)}: {err}") from None

    def _info(self, chunk_i: int) -> dict[str, Any]:
        if not 0 <= chunk_i < self.n_chunks:
            raise IndexError(f"{self.metadata_path}: no chunk {chunk_i} in {self.n_chunks}")
        info: dict[str, Any] = self.metadata["chunks"][chunk_i]
        return info

    def iter_chunk_rows(self, chunk_i: int, buffer: np.ndarray) -> Iterator[np.ndarray]:
        """The rows of one chunk in pieces decoded into ``buffer`` (see decompress_file_rows).

        Each piece is checked against the chunk's bounds, as ``load_chunk`` checks the chunk.
        """
        info = self._info(chunk_i)
        if not info["n"]:
            return
        path = self._chunk_path(info, chunk_i)
        first = True
        for rows in decompress_file_rows(self.compressor, path, info["n"], buffer):
            start = int(rows["time"][0])
            if first and start < info["start"]:
                raise DataCorrupted(
                    f"{path}: first row starts at {start}, before the chunk ({info['start']})"
                )
            last_end = int(endtime(rows).max())
            if last_end > info["end"]:
                raise DataCorrupted(f"{path}: a row ends at {last_end}, after the chunk")
            first = False
            yield rows

    def _chunk_path(self, info: dict[str, Any], chunk_i: int) -> Path:
        # strax's own loader uses ``filename``; the name it would have is the fallback.
        name = info.get("filename") or f"{self.folder.name.split('-', 1)[1]}-{chunk_i:06d}"
        if not isinstance(name, str) or "/" in name or name in (".", ".."):
            raise DataCorrupted(f"{self.metadata_path}: chunk {chunk_i} filename {name!r} is bad")
        return self.folder / name

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
    except (DataCorrupted, ChunkError, DataNotAvailable):
        return Status.BROKEN


def find(
    root: Path | str, run_id: str, data_type: str, lineage_hash: str, allow_incomplete: bool = False
) -> StoredData:
    """The stored data of one key; incomplete data (``_temp`` too) only if ``allow_incomplete``.

    Broken data (``exception`` recorded) is never returned, as in strax.
    """
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


def read_run_metadata(root: Path | str, run_id: str) -> dict[str, Any]:
    """Run-level metadata ``<run_id>-metadata.json``; datetimes come back timezone-aware UTC."""
    path = run_metadata_path(root, run_id)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataNotAvailable(f"{path}: no run metadata for run {run_id}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataCorrupted(f"{path}: cannot read run metadata: {err}") from None
    try:
        document = json_util.loads(text, json_options=_RUN_METADATA_JSON)
    except (ValueError, TypeError) as err:
        raise DataCorrupted(f"{path}: run metadata is not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise DataCorrupted(f"{path}: run metadata is not a JSON object")
    return document
