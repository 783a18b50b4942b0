"""Online monitor documents: selected data types of a run in the runs database.

The documents have strax MongoSaver's shape, so strax's MongoFrontend and the DAQ website read
them: one metadata document ``{number, data_type, lineage_hash, write_time, run_start_time,
provides_meta: true, metadata}`` and one document per chunk with ``provides_meta: false``,
``chunk_i`` and ``data`` (the rows as plain values). MongoDB documents are limited to 16 MB and
live chunks can be larger, so stored chunks are cut into pieces of at most ``max_doc_mb`` at
moments no row straddles; each piece is one chunk in the published metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import numpy as np

from straxd.core.chunk import endtime
from straxd.core.db import Collection, utcnow
from straxd.core.storage_read import open_data

DEFAULT_MAX_DOC_MB = 8.0


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rows_as_documents(rows: np.ndarray) -> list[dict[str, Any]]:
    """The rows as dicts of plain Python values (NaN stays NaN)."""
    names = rows.dtype.names or ()
    return [{name: _plain(row[name]) for name in names} for row in rows]


def split_rows(rows: np.ndarray, max_rows: int) -> Iterator[np.ndarray]:
    """Pieces of at most ``max_rows`` rows (more where no row boundary is free of overlap)."""
    if len(rows) <= max_rows:
        yield rows
        return
    ends = np.maximum.accumulate(endtime(rows))
    start = 0
    while len(rows) - start > max_rows:
        cut = start + max_rows
        # A cut before row i is safe when nothing before it ends after row i starts.
        while cut < len(rows) and ends[cut - 1] > rows["time"][cut]:
            cut += 1
        yield rows[start:cut]
        start = cut
    if start < len(rows):
        yield rows[start:]


def _pieces(folder: Path, max_doc_mb: float) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """(chunk info, rows) per published chunk of one stored data type."""
    stored = open_data(folder)
    for chunk_i in range(stored.n_chunks):
        chunk = stored.load_chunk(chunk_i)
        rows = chunk.data
        if not len(rows):
            yield {"start": chunk.start, "end": chunk.end, "n": 0}, rows
            continue
        row_bytes = len(bson.encode(rows_as_documents(rows[:1])[0]))
        max_rows = max(1, int(max_doc_mb * 1e6 / row_bytes))
        pieces = list(split_rows(rows, max_rows))
        bounds = [chunk.start, *(int(p["time"][0]) for p in pieces[1:]), chunk.end]
        for piece, start, end in zip(pieces, bounds[:-1], bounds[1:], strict=True):
            yield {"start": start, "end": end, "n": len(piece)}, piece


async def publish(
    collection: Collection, folder: Path, number: int, max_doc_mb: float = DEFAULT_MAX_DOC_MB
) -> int:
    """Replace the run's documents of the folder's data type; returns the chunk documents."""
    stored = open_data(folder)
    data_type, lineage_hash = stored.metadata["data_type"], stored.metadata["lineage_hash"]
    key = {"number": number, "data_type": data_type, "lineage_hash": lineage_hash}
    await collection.delete_many({"number": number, "data_type": data_type})
    run_start = dt.datetime.fromtimestamp(int(stored.metadata["start"]) / 1e9, dt.UTC)
    basic = {**key, "write_time": utcnow(), "run_start_time": run_start}
    chunks: list[dict[str, Any]] = []
    for chunk_i, (info, rows) in enumerate(_pieces(folder, max_doc_mb)):
        info = {**info, "chunk_i": chunk_i, "run_id": f"{number:06d}"}
        if len(rows):
            info["first_time"] = int(rows["time"][0])
            info["last_endtime"] = int(endtime(rows).max())
        chunks.append(info)
        await collection.insert_one(
            {**basic, "chunk_i": chunk_i, "provides_meta": False, "data": rows_as_documents(rows)}
        )
    metadata = {k: v for k, v in stored.metadata.items() if k != "chunks"}
    await collection.insert_one(
        {**basic, "provides_meta": True, "metadata": {**metadata, "chunks": chunks}}
    )
    return len(chunks)


async def remove_run(collection: Collection, number: int) -> int:
    """Delete every online monitor document of a run (it is being reprocessed)."""
    result = await collection.delete_many({"number": number})
    return result.deleted_count
