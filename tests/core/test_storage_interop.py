"""Interoperability with strax 2.2.3: it loads what straxd writes, straxd loads what it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from straxd.core.dtypes import remove_titles
from straxd.core.lineage import DataKey
from straxd.core.storage import STRAX_METADATA_KEYS
from straxd.core.storage_read import Status, find, open_data
from tests.core.test_storage import (
    COMPRESSORS,
    DTYPES,
    RUN,
    T0_NS,
    chunked_arrays,
    make_chunks,
    random_rows,
    read_json,
    strax_reader_plugin,
    strax_source_plugin,
    write_folder,
)

FIXTURE_OK = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CHUNK_KEYS = {"chunk_i", "n", "start", "end", "run_id", "subruns", "nbytes"}
ROW_KEYS = {"first_time", "first_endtime", "last_time", "last_endtime", "filename", "filesize"}


def same_rows(loaded: np.ndarray, expected: np.ndarray) -> None:
    """Equal bytes and equal fields (titles included)."""
    assert loaded.dtype.descr == expected.dtype.descr
    assert len(loaded) == len(expected)
    assert loaded.tobytes() == expected.tobytes()


def fixed_case(dtype: np.dtype[Any]) -> tuple[np.ndarray, list[int]]:
    """Six rows of 100 ns every 1000 ns, in chunks [3 rows, empty, 3 rows, empty]."""
    rows = random_rows(dtype, 6, 11)
    rows["time"] = T0_NS + np.array([0, 1, 2, 5, 6, 7]) * 1000
    if "endtime" in (dtype.names or ()):
        rows["endtime"] = rows["time"] + 100
    else:
        rows["length"], rows["dt"] = 10, 10
    offsets = [0, 2500, 4500, 7500, 9000]
    return rows, [T0_NS + o for o in offsets]


def strax_context(root: Path, plugin: type, readonly: bool) -> strax.Context:
    """A strax context with one data directory and one plugin."""
    return strax.Context(
        storage=[strax.DataDirectory(str(root), readonly=readonly)], register=[plugin]
    )


class TestStraxReadsOurs:
    @pytest.mark.parametrize("compressor", COMPRESSORS)
    @pytest.mark.parametrize("dtype_name", sorted(DTYPES))
    @FIXTURE_OK
    @given(data=st.data())
    def test_strax_loads_identically(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        compressor: str,
        dtype_name: str,
        data: st.DataObject,
    ) -> None:
        """Chunked arrays (empty chunks too) load identically via dry_load_files and a Context."""
        dtype = DTYPES[dtype_name]
        rows, bounds = data.draw(chunked_arrays(dtype))
        chunks = make_chunks(rows, bounds)
        root = tmp_path_factory.mktemp("root")
        folder = write_folder(root, chunks, dtype, compressor)

        same_rows(strax.io.dry_load_files(str(folder)), rows)
        context = strax_context(root, strax_reader_plugin("things", dtype, compressor), True)
        assert context.key_for(RUN, "things").lineage_hash == folder.name.rsplit("-", 1)[1]
        assert context.is_stored(RUN, "things")
        loaded = context.get_array(RUN, "things")
        assert remove_titles(loaded.dtype) == remove_titles(dtype)
        assert loaded.tobytes() == rows.tobytes()
        meta = context.get_metadata(RUN, "things")
        assert [(c["start"], c["end"], c["n"]) for c in meta["chunks"]] == [
            (c.start, c.end, len(c)) for c in chunks
        ]

    def test_metadata_keys_are_straxs(self, tmp_path: Path) -> None:
        """Top-level and chunk keys are exactly strax's, with strax's types and hash."""
        rows, bounds = fixed_case(DTYPES["raw"])
        chunks = make_chunks(rows, bounds)
        folder = write_folder(tmp_path, chunks, DTYPES["raw"], "zstd")
        meta = read_json(folder)
        assert set(meta) == STRAX_METADATA_KEYS - {"exception"}
        assert meta["lineage_hash"] == strax.deterministic_hash(meta["lineage"])
        assert folder.name == f"{RUN}-things-{meta['lineage_hash']}"
        assert meta["dtype"] == repr(DTYPES["raw"].descr)
        assert (meta["strax_version"], meta["compressor"]) == ("2.2.3", "zstd")
        for entry, chunk in zip(meta["chunks"], chunks, strict=True):
            assert set(entry) == (CHUNK_KEYS | ROW_KEYS if len(chunk) else CHUNK_KEYS)
            assert entry["nbytes"] == chunk.data.nbytes


class TestWeReadStrax:
    @pytest.mark.parametrize("compressor", COMPRESSORS)
    @pytest.mark.parametrize("dtype_name", sorted(DTYPES))
    @FIXTURE_OK
    @given(data=st.data())
    def test_read_strax_folder_identically(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        compressor: str,
        dtype_name: str,
        data: st.DataObject,
    ) -> None:
        """A strax folder reads identically (metadata too) and equals ours byte for byte."""
        dtype = DTYPES[dtype_name]
        rows, bounds = data.draw(chunked_arrays(dtype))
        chunks = make_chunks(rows, bounds)
        root = tmp_path_factory.mktemp("strax")
        context = strax_context(
            root, strax_source_plugin("things", dtype, compressor, chunks), False
        )
        context.make(RUN, "things")
        key = context.key_for(RUN, "things")

        stored = find(root, RUN, "things", key.lineage_hash)
        assert stored.status is Status.COMPLETE
        assert stored.dtype.descr == dtype.descr
        loaded = list(stored.iter_chunks())
        assert [(c.start, c.end, len(c), c.run_id) for c in loaded] == [
            (c.start, c.end, len(c), RUN) for c in chunks
        ]
        for ours, theirs in zip(loaded, chunks, strict=True):
            same_rows(ours.data, theirs.data.astype(dtype))
            assert (ours.data_type, ours.data_kind) == ("things", "things")
        meta = stored.metadata
        assert meta["lineage"] == strax_lineage(key)
        assert (
            meta["lineage_hash"]
            == key.lineage_hash
            == DataKey(RUN, "things", meta["lineage"]).lineage_hash
        )
        assert (meta["compressor"], meta["data_kind"]) == (compressor, "things")

        ours = write_folder(tmp_path_factory.mktemp("ours"), chunks, dtype, compressor)
        theirs = root / str(key)
        assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
        for path in theirs.iterdir():
            if not path.name.endswith("metadata.json"):
                assert (ours / path.name).read_bytes() == path.read_bytes(), path.name
        times = ("writing_started", "writing_ended")
        assert {k: v for k, v in read_json(ours).items() if k not in times} == {
            k: v for k, v in read_json(theirs).items() if k not in times
        }

    def test_strax_broken_folder_is_broken(self, tmp_path: Path) -> None:
        """strax renames a failed output to its final name with exception set; we see it broken."""
        rows, bounds = fixed_case(DTYPES["time_end"])
        chunks = make_chunks(rows, bounds)
        plugin = strax_source_plugin("things", DTYPES["time_end"], "lz4", chunks)
        original = plugin.compute

        def crash_on_last(self: Any, chunk_i: int) -> Any:
            if chunk_i == len(chunks) - 1:
                raise RuntimeError("digitizer on fire")
            return original(self, chunk_i)

        plugin.compute = crash_on_last
        context = strax_context(tmp_path, plugin, False)
        with pytest.raises(RuntimeError, match="digitizer on fire"):
            context.make(RUN, "things")
        folder = tmp_path / str(context.key_for(RUN, "things"))
        stored = open_data(folder)
        assert stored.status is Status.BROKEN
        assert "digitizer on fire" in stored.metadata["exception"]
        with pytest.raises(Exception, match="writing failed"):
            find(tmp_path, RUN, "things", folder.name.rsplit("-", 1)[1])


def strax_lineage(key: Any) -> dict[str, Any]:
    """strax's lineage as it appears in JSON (tuples become lists)."""
    return {k: [v[0], v[1], dict(v[2])] for k, v in key.lineage.items()}
