"""Interoperability with strax 2.2.3: it loads what straxd writes, straxd loads what it writes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from straxd.core.chunk import Chunk
from straxd.core.dtypes import raw_record_dtype, remove_titles
from straxd.core.lineage import DataKey
from straxd.core.storage_read import Status, find, open_data
from straxd.core.strax_files import STRAX_METADATA_KEYS
from tests.core.test_storage import (
    COMPRESSORS,
    RUN,
    T0_NS,
    TIME_DT,
    TIME_END,
    random_rows,
    read_json,
    strax_reader_plugin,
    write_folder,
)

RAW = raw_record_dtype()  # titles and an i2[110] subarray
MIXED = np.dtype(  # titles on some fields only, bool, multi-dimensional subarrays
    [
        (("Start time since unix epoch [ns]", "time"), "<i8"),
        ("endtime", "<i8"),
        (("A flag", "flag"), "?"),
        ("waveform", "<f4", (3,)),
        (("A matrix", "matrix"), "<i2", (2, 2)),
        ("tag", "u1"),
    ]
)
DTYPES = {"time_dt": TIME_DT, "time_end": TIME_END, "raw": RAW, "mixed": MIXED}


@st.composite
def chunked_arrays(
    draw: st.DrawFn, dtype: np.dtype[Any], max_rows: int = 30
) -> tuple[np.ndarray, list[int]]:
    """Sorted, non-overlapping rows and chunk boundaries that lie in the gaps between them.

    Boundaries may repeat (a zero-length empty chunk) or enclose no row (an empty chunk).
    """
    n = draw(st.integers(0, max_rows))
    gaps = draw(st.lists(st.integers(0, 300), min_size=n + 1, max_size=n + 1))
    lengths = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    data = random_rows(dtype, n, draw(st.integers(0, 2**32 - 1)))
    has_dt = "dt" in (dtype.names or ())
    dt = draw(st.sampled_from([1, 2, 10])) if has_dt else 1
    safe = []  # intervals between rows where a boundary may lie
    t = T0_NS
    for i in range(n):
        safe.append((t, t + gaps[i]))
        t += gaps[i]
        data["time"][i] = t
        if has_dt:
            data["length"][i], data["dt"][i] = lengths[i], dt
        else:
            data["endtime"][i] = t + lengths[i] * dt
        t += lengths[i] * dt
    safe.append((t, t + gaps[n]))

    def boundary(where: tuple[int, float]) -> int:
        lo, hi = safe[where[0]]
        return lo + round(where[1] * (hi - lo))

    spot = st.tuples(st.integers(0, len(safe) - 1), st.floats(0, 1))
    inner = [boundary(w) for w in draw(st.lists(spot, max_size=5))]
    ends = boundary((0, draw(st.floats(0, 1)))), boundary((n, draw(st.floats(0, 1))))
    first, last = min(ends), max(ends)  # without rows both come from the same interval
    bounds = [first, *sorted(b for b in inner if first <= b <= last), last]
    return data, bounds


def make_chunks(
    data: np.ndarray, bounds: list[int], data_type: str = "things", run_id: str = RUN
) -> list[Chunk]:
    """The chunks [bounds[i], bounds[i+1]) holding the rows that start inside them."""
    chunks = []
    for start, end in itertools.pairwise(bounds):
        rows = data[(data["time"] >= start) & (data["time"] < end)]
        chunks.append(Chunk(data_type, data_type, run_id, start, end, rows))
    return chunks


def strax_source_plugin(data_type: str, dtype: np.dtype[Any], compressor: str, chunks: list[Chunk]):
    """A strax source plugin emitting exactly the given chunks (same lineage as above)."""

    class Things(strax.Plugin):
        provides = data_type
        depends_on: tuple[str, ...] = ()
        rechunk_on_save = False
        compute_takes_chunk_i = True
        __version__ = "0.0.7"

        def is_ready(self, chunk_i: int) -> bool:
            return chunk_i < len(chunks)

        def source_finished(self) -> bool:
            return True

        def compute(self, chunk_i: int) -> Any:
            chunk = chunks[chunk_i]
            return self.chunk(start=chunk.start, end=chunk.end, data=chunk.data)

    Things.dtype = dtype
    Things.compressor = compressor
    return Things


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
