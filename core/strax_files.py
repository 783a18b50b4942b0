"""Names, metadata JSON and atomic writes of the strax file format.

Shared by the chunk writer (``storage``), the readers (``storage_read``) and restrax: every file
goes through ``<name>_temp`` and a rename, with an fsync in between by default, so a crash leaves
either the old file or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bson import json_util

from straxd.core.chunk_stream import TEMP_SUFFIX
from straxd.core.lineage import check_run_id

# The strax version we write as; strax only refuses data older than 0.9.0, and naming the
# version whose format we reproduce lets any strax tool treat our folders as its own.
STRAX_FORMAT_VERSION = "2.2.3"
STRAX_METADATA_KEYS = frozenset(
    {
        "run_id",
        "data_type",
        "data_kind",
        "dtype",
        "lineage",
        "lineage_hash",
        "compressor",
        "chunk_target_size_mb",
        "strax_version",
        "writing_started",
        "writing_ended",
        "chunks",
        "start",
        "end",
        "exception",
    }
)


def metadata_filename(dirname: str) -> str:
    """``<data_type>-<hash>-metadata.json`` for folder ``<run_id>-<data_type>-<hash>``."""
    return f"{dirname.removesuffix(TEMP_SUFFIX).split('-', 1)[1]}-metadata.json"


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


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


def run_metadata_path(root: Path | str, run_id: str) -> Path:
    """``<root>/<run_id>-metadata.json``."""
    return Path(root) / f"{check_run_id(run_id)}-metadata.json"


def write_run_metadata(
    root: Path | str, run_id: str, metadata: dict[str, Any], fsync: bool = True
) -> Path:
    """Write run-level metadata as strax's ``DataDirectory.write_run_metadata``, atomically.

    Datetimes and other BSON types are written as MongoDB extended JSON, as strax does, so strax
    reads them back as datetimes. ``name`` defaults to the run id.
    """
    path = run_metadata_path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"name": run_id, **metadata}
    payload = json.dumps(document, sort_keys=True, indent=4, default=json_util.default)
    write_atomic(path, payload.encode(), fsync)
    return path
