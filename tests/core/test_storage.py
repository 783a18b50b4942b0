"""The strax file format: straxd writes what strax 2.2.3 loads, and reads what strax writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from straxd.core.chunk import Chunk, endtime
from straxd.core.dtypes import raw_record_dtype
from straxd.core.errors import BadInput, ChunkError, OutputExists
from straxd.core.lineage import DataKey
from straxd.core.storage import ChunkWriter
from straxd.core.storage_read import Status, find, open_data, status_of
from tests.strategies import TIME_DT_DTYPE, TIME_END_DTYPE, interval_arrays

COMPRESSORS = ("zstd", "lz4", "bz2", "blosc")
RUN = "000042"
RAW_DTYPE = raw_record_dtype()
RAW_FIXED = np.dtype([(n, RAW_DTYPE[n]) for n in RAW_DTYPE.names])  # titles dropped below


def _raw_records(n: int, seed: int) -> np.ndarray:
    """raw_records rows (titles included) with random waveforms, sorted by time."""
    rng = np.random.default_rng(seed)
    data = np.zeros(n, RAW_DTYPE)
    data["time"] = np.sort(rng.integers(1_000_000, 2_000_000, n)) // 10 * 10
    data["length"], data["dt"] = 110, 10
    data["channel"] = rng.integers(0, 494, n)
    data["data"] = rng.integers(15000, 16383, (n, 110))
    return data


def _split_into_chunks(data: np.ndarray, cuts: list[int], data_type: str) -> list[Chunk]:
    """Contiguous chunks covering the data, cut where nothing straddles."""
    start = int(data["time"][0]) if len(data) else 0
    end = int(endtime(data).max()) if len(data) else 10
    whole = Chunk(data_type, data_type, RUN, start, end, data)
    chunks = []
    for t in sorted(cuts):
        piece, whole = whole.split(t, allow_early_split=True)
        chunks.append(piece)
    chunks.append(whole)
    return chunks


def _strax_plugin(data_type: str, dtype: np.dtype[Any], compressor: str) -> type:
    """A strax plugin class whose lineage and dtype describe the folders our tests write."""

    class Things(strax.Plugin):
        provides = data_type
        depends_on: tuple[str, ...] = ()
        __version__ = "0.0.7"

    Things.dtype = dtype
    Things.compressor = compressor
    return Things


def _write(root: Path, chunks: list[Chunk], dtype: np.dtype[Any], compressor: str) -> Path:
    lineage = {chunks[0].data_type: ["Things", "0.0.7", {}]}
    writer = ChunkWriter(
        root, DataKey(RUN, chunks[0].data_type, lineage), dtype, chunks[0].data_kind, compressor
    )
    for chunk in chunks:
        writer.write(chunk)
    return writer.close()


class TestStraxReadsOurs:
    @pytest.mark.parametrize("compressor", COMPRESSORS)
    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(data=st.data())
    def test_strax_loads_identically(
        self, tmp_path_factory: pytest.TempPathFactory, compressor: str, data: st.DataObject
    ) -> None:
        """Chunked arrays (empty chunks too) load identically through Context and dry_load_files."""
        dtype = data.draw(st.sampled_from([TIME_DT_DTYPE, TIME_END_DTYPE, RAW_DTYPE]))
        if dtype is RAW_DTYPE:
            arr = _raw_records(data.draw(st.integers(0, 40)), data.draw(st.integers(0, 99)))
        else:
            arr = data.draw(interval_arrays(dtype=dtype, allow_overlap=False))
        cuts = data.draw(st.lists(st.integers(900_000, 2_100_000), max_size=4))
        chunks = _split_into_chunks(arr, cuts, "things")
        root = tmp_path_factory.mktemp("root")
        folder = _write(root, chunks, dtype, compressor)

        loaded = strax.io.dry_load_files(str(folder))
        np.testing.assert_array_equal(loaded, arr)

        context = strax.Context(
            storage=[strax.DataDirectory(str(root), readonly=True)],
            register=[_strax_plugin("things", dtype, compressor)],
        )
        assert context.is_stored(RUN, "things")
        via_context = context.get_array(RUN, "things")
        np.testing.assert_array_equal(via_context, arr)
        meta = context.get_metadata(RUN, "things")
        assert [(c["start"], c["end"], c["n"]) for c in meta["chunks"]] == [
            (c.start, c.end, len(c)) for c in chunks
        ]

    def test_metadata_has_strax_keys(self, tmp_path: Path) -> None:
        """Metadata keys and chunk entry keys are strax's (extra keys only added)."""
        arr = _raw_records(5, 1)
        folder = _write(
            tmp_path, _split_into_chunks(arr, [arr["time"][2] + 1], "things"), RAW_DTYPE, "zstd"
        )
        meta = json.loads((folder / f"{folder.name.split('-', 1)[1]}-metadata.json").read_text())
        for key in (
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
            "start",
            "end",
            "chunks",
        ):
            assert key in meta
        assert meta["lineage_hash"] == strax.deterministic_hash(meta["lineage"])
        assert folder.name == f"{RUN}-things-{meta['lineage_hash']}"
        entry = next(c for c in meta["chunks"] if c["n"])
        assert {
            "chunk_i",
            "n",
            "start",
            "end",
            "run_id",
            "subruns",
            "nbytes",
            "first_time",
            "first_endtime",
            "last_time",
            "last_endtime",
            "filename",
            "filesize",
        } <= set(entry)


def _strax_source(compressor: str, arrays: list[np.ndarray], bounds: list[int]) -> type:
    """A strax source plugin emitting fixed chunks (some empty)."""

    class Pulses(strax.Plugin):
        provides = "pulses"
        depends_on: tuple[str, ...] = ()
        dtype = TIME_END_DTYPE
        rechunk_on_save = False
        __version__ = "1.0.0"

        def is_ready(self, chunk_i: int) -> bool:
            return chunk_i < len(arrays)

        def source_finished(self) -> bool:
            return True

        def compute(self, chunk_i: int) -> Any:
            return self.chunk(start=bounds[chunk_i], end=bounds[chunk_i + 1], data=arrays[chunk_i])

    Pulses.compressor = compressor
    Pulses.compute_takes_chunk_i = True
    return Pulses


class TestWeReadStrax:
    @pytest.mark.parametrize("compressor", COMPRESSORS)
    def test_read_strax_written_folder(self, tmp_path: Path, compressor: str) -> None:
        """A folder strax writes (with an empty middle chunk) reads identically, metadata too."""
        rng = np.random.default_rng(7)
        bounds = [0, 1000, 2000, 3000]
        arrays = []
        for i, n in enumerate([5, 0, 7]):
            a = np.zeros(n, TIME_END_DTYPE)
            a["time"] = np.sort(rng.integers(bounds[i], bounds[i + 1] - 20, n))
            a["endtime"] = a["time"] + 10
            a["value"] = rng.normal(size=n)
            arrays.append(a)
        context = strax.Context(
            storage=[strax.DataDirectory(str(tmp_path))],
            register=[_strax_source(compressor, arrays, bounds)],
        )
        context.make(RUN, "pulses")
        key = context.key_for(RUN, "pulses")
        stored = open_data(tmp_path / str(key))
        assert stored.complete
        chunks = list(stored.iter_chunks())
        assert [(c.start, c.end, len(c)) for c in chunks] == [
            (0, 1000, 5),
            (1000, 2000, 0),
            (2000, 3000, 7),
        ]
        for ours, theirs in zip(chunks, arrays, strict=True):
            np.testing.assert_array_equal(ours.data, theirs)
        assert stored.metadata["lineage_hash"] == key.lineage_hash
        assert stored.metadata["compressor"] == compressor
        found = find(tmp_path, RUN, "pulses", key.lineage_hash)
        np.testing.assert_array_equal(found.load_all(), np.concatenate(arrays))


def _good_folder(tmp_path: Path, compressor: str = "zstd") -> Path:
    arr = _raw_records(6, 3)
    return _write(
        tmp_path, _split_into_chunks(arr, [int(arr["time"][3])], "things"), RAW_DTYPE, compressor
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _meta_path(folder: Path) -> Path:
    return folder / f"{folder.name.split('-', 1)[1]}-metadata.json"


def _edit_meta(folder: Path, **changes: Any) -> None:
    meta = json.loads(_meta_path(folder).read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    _meta_path(folder).write_text(json.dumps(meta))


def _open_and_load(folder: Path, load: bool) -> None:
    stored = open_data(folder)
    if load:
        stored.load_all()


class TestBadInput:
    """Each problem gives an error naming the file; reading never changes anything."""

    def _assert_fails(self, folder: Path, match: str, load: bool = True) -> None:
        before = _snapshot(folder)
        with pytest.raises(Exception, match=match) as info:
            _open_and_load(folder, load)
        assert "things" in str(info.value)  # the file or folder is named
        assert _snapshot(folder) == before

    def _chunk_file(self, folder: Path) -> Path:
        return next(p for p in folder.iterdir() if p.name.endswith("-000000"))

    def test_corrupted_chunk_file(self, tmp_path: Path) -> None:
        """Flipped bytes in a chunk file: DataCorrupted naming the file."""
        folder = _good_folder(tmp_path)
        path = self._chunk_file(folder)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2 : len(raw) // 2 + 16] = b"\xff" * 16
        path.write_bytes(bytes(raw))
        self._assert_fails(folder, r"things-\w+-000000")

    @pytest.mark.parametrize("compressor", COMPRESSORS)
    def test_truncated_chunk_file(self, tmp_path: Path, compressor: str) -> None:
        """A chunk file cut short fails for every compressor, naming the file."""
        folder = _good_folder(tmp_path, compressor)
        path = self._chunk_file(folder)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        self._assert_fails(folder, r"things-\w+-000000")

    def test_row_count_mismatch(self, tmp_path: Path) -> None:
        """Metadata n that does not match the file: DataCorrupted with both numbers."""
        folder = _good_folder(tmp_path)
        meta = json.loads(_meta_path(folder).read_text())
        meta["chunks"][0]["n"] += 1
        _meta_path(folder).write_text(json.dumps(meta))
        self._assert_fails(folder, "holds 3 rows, metadata says 4")

    def test_metadata_missing(self, tmp_path: Path) -> None:
        """No metadata file at all."""
        folder = _good_folder(tmp_path)
        _meta_path(folder).unlink()
        self._assert_fails(folder, "metadata file is missing")

    def test_metadata_not_json(self, tmp_path: Path) -> None:
        """Metadata that is not JSON."""
        folder = _good_folder(tmp_path)
        _meta_path(folder).write_text("{not json")
        self._assert_fails(folder, "not valid JSON")

    @pytest.mark.parametrize("key", ["run_id", "data_type", "data_kind", "dtype", "compressor"])
    def test_metadata_missing_key(self, tmp_path: Path, key: str) -> None:
        """Each required key, when absent, is named."""
        folder = _good_folder(tmp_path)
        _edit_meta(folder, **{key: None})
        self._assert_fails(folder, f"lacks required keys .*{key}")

    def test_unknown_compressor(self, tmp_path: Path) -> None:
        """An unknown compressor lists the known ones."""
        folder = _good_folder(tmp_path)
        _edit_meta(folder, compressor="snappy")
        before = _snapshot(folder)
        with pytest.raises(
            BadInput, match="unknown compressor 'snappy'; known: blosc, bz2, lz4, zstd"
        ):
            open_data(folder)
        assert _snapshot(folder) == before

    def test_dtype_does_not_parse(self, tmp_path: Path) -> None:
        """A dtype string that is not a descr."""
        folder = _good_folder(tmp_path)
        _edit_meta(folder, dtype="[('time', '<i8'), oops]")
        self._assert_fails(folder, "does not parse")

    def test_chunks_overlap(self, tmp_path: Path) -> None:
        """Overlapping chunk entries in the metadata."""
        folder = _good_folder(tmp_path)
        meta = json.loads(_meta_path(folder).read_text())
        meta["chunks"][1]["start"] = meta["chunks"][0]["end"] - 5
        _meta_path(folder).write_text(json.dumps(meta))
        self._assert_fails(folder, "overlapping or out of order")

    def test_chunks_out_of_order(self, tmp_path: Path) -> None:
        """Chunk entries listed in the wrong order."""
        folder = _good_folder(tmp_path)
        meta = json.loads(_meta_path(folder).read_text())
        meta["chunks"].reverse()
        _meta_path(folder).write_text(json.dumps(meta))
        self._assert_fails(folder, "overlapping or out of order")

    def test_run_id_with_dash(self) -> None:
        """A run id with '-' cannot name a folder."""
        with pytest.raises(BadInput, match="invalid run id '0-1'"):
            DataKey("0-1", "things", {})
        with pytest.raises(BadInput, match="superruns"):
            DataKey("_superrun", "things", {})


class TestWriter:
    def test_metadata_rewritten_after_every_chunk(self, tmp_path: Path) -> None:
        """While writing, the _temp folder's metadata lists every chunk written so far."""
        arr = _raw_records(9, 4)
        chunks = _split_into_chunks(arr, [int(arr["time"][3]), int(arr["time"][6])], "things")
        writer = ChunkWriter(tmp_path, DataKey(RUN, "things", {}), RAW_DTYPE, "things", "lz4")
        for i, chunk in enumerate(chunks, start=1):
            writer.write(chunk)
            stored = open_data(writer.temp_dir)
            assert stored.n_chunks == i
            assert stored.status is Status.INCOMPLETE
            assert len(stored.load_all()) == sum(len(c) for c in chunks[:i])
        folder = writer.close()
        assert not writer.temp_dir.exists()
        assert open_data(folder).complete

    def test_failed_write_stays_temp_and_broken(self, tmp_path: Path) -> None:
        """Closing with an exception records it and never takes the final name."""
        writer = ChunkWriter(tmp_path, DataKey(RUN, "things", {}), RAW_DTYPE, "things", "zstd")
        writer.write(_split_into_chunks(_raw_records(3, 1), [], "things")[0])
        folder = writer.close(RuntimeError("disk full"))
        assert folder.name.endswith("_temp")
        assert not writer.final_dir.exists()
        stored = open_data(folder)
        assert stored.status is Status.BROKEN
        assert "disk full" in stored.metadata["exception"]
        assert status_of(writer.final_dir) is None

    def test_refuses_gaps_overlaps_and_wrong_dtype(self, tmp_path: Path) -> None:
        """Non-contiguous chunks and a different dtype are refused, naming the folder."""
        writer = ChunkWriter(tmp_path, DataKey(RUN, "things", {}), TIME_END_DTYPE, "things", "zstd")
        empty = np.zeros(0, TIME_END_DTYPE)
        writer.write(Chunk("things", "things", RUN, 0, 10, empty))
        with pytest.raises(ChunkError, match="starts at 11 but the previous chunk ended at 10"):
            writer.write(Chunk("things", "things", RUN, 11, 20, empty))
        with pytest.raises(ChunkError, match="previous chunk ended at 10"):
            writer.write(Chunk("things", "things", RUN, 5, 20, empty))
        with pytest.raises(BadInput, match="dtype"):
            writer.write(Chunk("things", "things", RUN, 10, 20, np.zeros(0, TIME_DT_DTYPE)))
        assert writer.n_chunks == 1

    def test_overwrite_rules(self, tmp_path: Path) -> None:
        """never refuses, if_broken refuses complete data but replaces broken, always replaces."""
        key = DataKey(RUN, "things", {})
        chunk = Chunk("things", "things", RUN, 0, 10, np.zeros(0, TIME_END_DTYPE))

        def write(overwrite: str) -> Path:
            writer = ChunkWriter(
                tmp_path, key, TIME_END_DTYPE, "things", "zstd", overwrite=overwrite
            )  # type: ignore[arg-type]
            writer.write(chunk)
            return writer.close()

        folder = write("if_broken")
        with pytest.raises(OutputExists):
            write("if_broken")
        with pytest.raises(OutputExists):
            write("never")
        _edit_meta(folder, writing_ended=None)  # now incomplete: may be replaced
        assert open_data(write("if_broken")).complete
        assert open_data(write("always")).complete

    def test_stale_temp_removed(self, tmp_path: Path) -> None:
        """A leftover _temp folder from a crashed writer is cleared before writing."""
        key = DataKey(RUN, "things", {})
        stale = tmp_path / f"{key}_temp"
        stale.mkdir()
        (stale / "junk").write_bytes(b"x")
        writer = ChunkWriter(tmp_path, key, TIME_END_DTYPE, "things", "zstd")
        assert not (stale / "junk").exists()
        writer.close()
