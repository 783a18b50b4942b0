"""Online monitor documents: strax's MongoBackend reads what straxd publishes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.chunk import Chunk, endtime
from straxd.core.db import Databases
from straxd.core.lineage import DataKey
from straxd.core.online_store import publish, remove_run, split_rows
from straxd.core.storage import ChunkWriter

RUN = "000007"
T0_NS = 1_700_000_000 * 10**9
DTYPE = np.dtype([("time", "<i8"), ("endtime", "<i8"), ("area", "<f4"), ("n", "<i2")])


def rows(n: int, start_ns: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = np.zeros(n, DTYPE)
    data["time"] = start_ns + np.arange(n) * 1000
    data["endtime"] = data["time"] + rng.integers(1, 900, n)
    data["area"] = rng.normal(100, 10, n).astype(np.float32)
    data["area"][::7] = np.nan
    data["n"] = rng.integers(0, 100, n)
    return data


def write(root: Path, sizes: list[int]) -> Path:
    key = DataKey(RUN, "event_basics", {"event_basics": ["EventBasics", "1.3.7", {}]})
    with ChunkWriter(root, key, DTYPE, "events", "zstd") as writer:
        for i, n in enumerate(sizes):
            start = T0_NS + i * 10**9
            writer.write(
                Chunk("event_basics", "events", RUN, start, start + 10**9, rows(n, start, i))
            )
    return writer.final_dir


class TestPublish:
    async def test_strax_reads_back_every_row(
        self, dbs: Databases, tmp_path: Path, mongo_uri: str
    ) -> None:
        """Metadata and chunk documents as MongoSaver writes them; big chunks split in pieces."""
        folder = write(tmp_path, [5, 0, 300])
        n_docs = await publish(dbs.online_monitor, folder, 7, max_doc_mb=0.01)
        assert n_docs > 3  # the 300-row chunk was cut into pieces under 10 kB each
        backend = strax.MongoBackend(mongo_uri, dbs.runs_db_name, "online_monitor")
        key = folder.name
        metadata = backend.get_metadata(key)
        assert [c["chunk_i"] for c in metadata["chunks"]] == list(range(n_docs))
        loaded = [backend._read_chunk(key, c, DTYPE, "none") for c in metadata["chunks"]]
        got = np.concatenate(loaded)
        expected = np.concatenate([rows(5, T0_NS, 0), rows(300, T0_NS + 2 * 10**9, 2)])
        for name in DTYPE.names or ():
            np.testing.assert_array_equal(got[name], expected[name])  # NaN equals NaN here
        for info, piece in zip(metadata["chunks"], loaded, strict=True):
            assert len(piece) == info["n"]
            if len(piece):
                assert info["start"] <= piece["time"].min() and endtime(piece).max() <= info["end"]

    async def test_republish_replaces_and_remove_clears(
        self, dbs: Databases, tmp_path: Path
    ) -> None:
        folder = write(tmp_path, [5, 5])
        await publish(dbs.online_monitor, folder, 7)
        await publish(dbs.online_monitor, folder, 7)
        assert await dbs.online_monitor.count_documents({"number": 7}) == 3
        assert await remove_run(dbs.online_monitor, 7) == 3


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 3000), min_size=0, max_size=60),
    gaps=st.lists(st.integers(0, 2000), min_size=60, max_size=60),
    max_rows=st.integers(1, 10),
)
def test_split_rows_never_cuts_through_a_row(
    lengths: list[int], gaps: list[int], max_rows: int
) -> None:
    """Pieces are in order, complete, and no row of a piece ends after the next one starts."""
    data = np.zeros(len(lengths), DTYPE)
    data["time"] = np.cumsum(gaps[: len(lengths)])
    data["endtime"] = data["time"] + np.array(lengths, dtype=np.int64)
    pieces = list(split_rows(data, max_rows))
    np.testing.assert_array_equal(np.concatenate(pieces) if pieces else data[:0], data)
    for before, after in itertools.pairwise(pieces):
        assert endtime(before).max() <= after["time"][0]
