"""The file side of finishing a bootstrax run: checks, data entries, moves, live_data counts.

The child writes into a work folder unique to (host, epoch). Only after these checks pass, and
only after a fenced check that this host still owns the run, does the parent move the folders
into the host's pre-processed folder and register them. Nothing here talks to the database.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from straxd.core.chunk_stream import TEMP_SUFFIX
from straxd.core.compress import decompress_file_bytes
from straxd.core.context import check_run_length
from straxd.core.daqreader import ARTIFICIAL_DEADTIME_CHANNEL, RAW_RECORDS_TYPES
from straxd.core.errors import BadInput, DataCorrupted, StraxdError
from straxd.core.rundoc import FILE_PROTOCOL, DataEntry
from straxd.core.storage_read import StoredData, open_data

WORK_DIRNAME = ".straxd-work"  # hidden: strax's DataDirectory never scans it
# ``<run_id>-<data_type>-<lineage_hash>``: a folder of one data type of one run.
FOLDER_NAME = re.compile(r"^(?P<run>\d{6})-(?P<type>[A-Za-z0-9_]+)-(?P<hash>[a-z0-9]+)$")


class CheckFailed(StraxdError):
    """The child's output does not pass the post-processing checks."""


def work_dir(root: Path, run_id: str, host: str, epoch: int, dirname: str = WORK_DIRNAME) -> Path:
    """Where the work of one claim is written: unique to (run, host, epoch)."""
    return root / dirname / f"{run_id}.{host}.e{epoch}"


def stale_work_dirs(root: Path, host: str, dirname: str = WORK_DIRNAME) -> list[Path]:
    """Every work folder of ``host`` (call only when no child of this host runs)."""
    folder = root / dirname
    return sorted(folder.glob(f"*.{host}.e*")) if folder.is_dir() else []


@dataclass(frozen=True)
class Output:
    """One finished data type in the work folder."""

    data_type: str
    folder: Path
    stored: StoredData

    @property
    def name(self) -> str:
        """``<run_id>-<type>-<hash>``."""
        return self.folder.name


def collect_outputs(root: Path, run_id: str) -> list[Output]:
    """Every data type the child finished; a folder left ``_temp`` fails the check."""
    outputs, broken = [], []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.endswith(TEMP_SUFFIX):
            broken.append(folder.name)
            continue
        match = FOLDER_NAME.match(folder.name)
        if not match or match["run"] != run_id:
            continue
        try:
            stored = open_data(folder)
        except (DataCorrupted, BadInput, OSError) as err:
            raise CheckFailed(f"metadata not readable: {err}") from None
        if not stored.complete:
            broken.append(folder.name)
            continue
        outputs.append(Output(match["type"], folder, stored))
    if broken:
        raise CheckFailed(f"data types were not finished: {broken}")
    return outputs


def check_outputs(outputs: list[Output], run_doc: Mapping[str, Any], tolerance_s: float) -> None:
    """The original's checks on the raw data: chunks written, files present, coverage."""
    by_type = {o.data_type: o for o in outputs}
    raw = next(
        (by_type[t] for t in RAW_RECORDS_TYPES if t in by_type and _has_span(by_type[t])), None
    )
    if raw is None:
        present = [t for t in RAW_RECORDS_TYPES if t in by_type]
        if not present:
            raise CheckFailed("metadata not readable: no raw_records type was written")
        raise CheckFailed(f"no chunks were written ({present} hold no data)")
    for output in outputs:
        for chunk in output.stored.metadata["chunks"]:
            if chunk.get("n") and "filesize" in chunk and not chunk["filesize"]:
                raise CheckFailed(f"{output.name}: at least one chunk failed writing")
    if run_doc.get("end") is None:
        raise CheckFailed("run hasn't yet ended")
    reason = check_run_length(raw.folder, run_doc, tolerance_s)
    if reason is not None:
        raise CheckFailed(reason)


def _has_span(output: Output) -> bool:
    return any(c.get("n") for c in output.stored.metadata["chunks"])


def data_entry(output: Output, host: str, location: Path) -> DataEntry:
    """The ``data[]`` entry of one output at its final location (strax/straxen shape)."""
    metadata = output.stored.metadata
    chunks = metadata["chunks"]
    size_mb = sum(int(c.get("nbytes", 0)) for c in chunks) / 1e6
    files = [p for p in location.iterdir()] if location.is_dir() else []
    return DataEntry(
        type=output.data_type,
        host=host,
        location=str(location),
        protocol=FILE_PROTOCOL,
        file_count=len(files),
        meta={
            "lineage": metadata.get("lineage", {}),
            "lineage_hash": metadata["lineage_hash"],
            "strax_version": metadata.get("strax_version"),
            "compressor": metadata["compressor"],
            "size_mb": round(size_mb, 3),
            "avg_chunk_mb": round(size_mb / max(len(chunks), 1), 3),
            "chunk_target_size_mb": metadata.get("chunk_target_size_mb"),
        },
    )


def move_outputs(outputs: list[Output], destination: Path) -> list[Path]:
    """Rename each output into ``destination``; an unregistered leftover there is replaced."""
    destination.mkdir(parents=True, exist_ok=True)
    moved = []
    for output in outputs:
        final = destination / output.name
        if final.exists():
            # A leftover of an earlier attempt of this host (the claim cleaned the registered
            # ones): set it aside first so the rename below is atomic.
            aside = output.folder.with_name(output.name + ".replaced")
            os.rename(final, aside)
            shutil.rmtree(aside)
        os.rename(output.folder, final)
        moved.append(final)
    return moved


def count_live_fragments(run_dir: Path, fragment_bytes: int, compressor: str) -> int:
    """Fragments in a run's live_data, each overlap counted once (``_post``, not ``_pre``)."""
    total = 0
    for directory in sorted(run_dir.iterdir()):
        if not directory.is_dir() or directory.name.endswith(("_pre", TEMP_SUFFIX)):
            continue
        if directory.name == "THE_END":
            continue
        for file in directory.iterdir():
            raw = file.read_bytes()
            if raw:
                total += len(decompress_file_bytes(compressor, raw, str(file))) // fragment_bytes
    return total


def count_raw_rows(folders: list[Path]) -> int:
    """Rows of every stored raw_records type, artificial-deadtime rows not counted."""
    total = 0
    for folder in folders:
        match = FOLDER_NAME.match(folder.name)
        if not match or match["type"] not in RAW_RECORDS_TYPES:
            continue
        stored = open_data(folder)
        for chunk_i in range(stored.n_chunks):
            data = stored.load_chunk(chunk_i).data
            total += int(np.count_nonzero(data["channel"] != ARTIFICIAL_DEADTIME_CHANNEL))
    return total


def remove_tree(path: Path) -> None:
    """Remove a folder (or a file) if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
