"""The chunk writer: strax's folder protocol, crash safety, refusals and overwrite rules.

The helpers at the top (test dtypes, chunks, folders, snapshots) are shared with
test_storage_read.py and test_storage_interop.py.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax

from straxd.core.chunk import Chunk
from straxd.core.errors import BadInput, ChunkError, OutputExists, StraxdError
from straxd.core.lineage import DataKey
from straxd.core.storage import ChunkWriter
from straxd.core.storage_read import Status, find, open_data, status_of
from straxd.core.strax_files import metadata_filename

COMPRESSORS = ("zstd", "lz4", "bz2", "blosc")
RUN = "000042"
T0_NS = 1_700_000_000 * 10**9
TIME_DT = np.dtype(
    [
        (("Start time since unix epoch [ns]", "time"), "<i8"),
        (("Length of the interval in samples", "length"), "<i4"),
        (("Width of one sample [ns]", "dt"), "<i2"),
        (("Channel/PMT number", "channel"), "<i2"),
        (("Integral [PE]", "area"), "<f4"),
    ]
)
TIME_END = np.dtype(
    [
        (("Start time since unix epoch [ns]", "time"), "<i8"),
        (("Exclusive end time since unix epoch [ns]", "endtime"), "<i8"),
        (("Some value", "value"), "<f8"),
    ]
)


def random_rows(dtype: np.dtype[Any], n: int, seed: int) -> np.ndarray:
    """Rows full of random bytes (valid bools); times are set by the caller."""
    rng = np.random.default_rng(seed)
    data = np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype).copy()
    for name in dtype.names or ():
        if dtype[name].kind == "b":
            data[name] = rng.integers(0, 2, data[name].shape).astype(bool)
    return data


def lineage_of(data_type: str) -> dict[str, Any]:
    """The lineage strax gives the test plugins below."""
    return {data_type: ["Things", "0.0.7", {}]}


def write_folder(
    root: Path, chunks: list[Chunk], dtype: np.dtype[Any], compressor: str, **kwargs: Any
) -> Path:
    """Write chunks with straxd under the test plugins' key; return the final folder."""
    data_type = chunks[0].data_type
    key = DataKey(chunks[0].run_id, data_type, lineage_of(data_type))
    with ChunkWriter(root, key, dtype, data_type, compressor, **kwargs) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.final_dir


def strax_reader_plugin(data_type: str, dtype: np.dtype[Any], compressor: str) -> type:
    """A strax plugin class whose lineage and dtype describe the folders straxd writes here."""

    class Things(strax.Plugin):
        provides = data_type
        depends_on: tuple[str, ...] = ()
        __version__ = "0.0.7"

    Things.dtype = dtype
    Things.compressor = compressor
    return Things


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root with its content and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def meta_path(folder: Path) -> Path:
    """The metadata file of a folder (final or _temp)."""
    return folder / metadata_filename(folder.name)


def read_json(folder: Path) -> dict[str, Any]:
    """The raw metadata JSON of a folder."""
    result: dict[str, Any] = json.loads(meta_path(folder).read_text())
    return result


def simple_chunks(n_chunks: int = 3, rows: int = 4, dtype: np.dtype[Any] = TIME_END) -> list[Chunk]:
    """Contiguous chunks of 1000 ns, each with ``rows`` rows (0 gives empty chunks)."""
    chunks = []
    for i in range(n_chunks):
        data = random_rows(dtype, rows, i)
        data["time"] = T0_NS + i * 1000 + np.arange(rows) * 10
        data["endtime"] = data["time"] + 5
        chunks.append(
            Chunk("things", "things", RUN, T0_NS + i * 1000, T0_NS + (i + 1) * 1000, data)
        )
    return chunks


KEY = DataKey(RUN, "things", lineage_of("things"))


def new_writer(root: Path, compressor: str = "zstd", **kwargs: Any) -> ChunkWriter:
    """A writer of the "things" test type, TIME_END dtype."""
    return ChunkWriter(root, KEY, TIME_END, "things", compressor, **kwargs)


class TestProtocol:
    def test_metadata_rewritten_after_every_chunk(self, tmp_path: Path) -> None:
        """While writing, the _temp metadata lists every chunk so far and strax can follow it."""
        chunks = simple_chunks(3)
        writer = new_writer(tmp_path)
        assert read_json(writer.temp_dir)["chunks"] == []
        for i, chunk in enumerate(chunks, start=1):
            writer.write(chunk)
            meta = read_json(writer.temp_dir)
            assert [c["chunk_i"] for c in meta["chunks"]] == list(range(i))
            assert meta["start"] == chunks[0].start  # strax sets it with the first chunk
            assert "writing_ended" not in meta and "end" not in meta
            stored = find(tmp_path, RUN, "things", KEY.lineage_hash, allow_incomplete=True)
            assert stored.status is Status.INCOMPLETE
            expected = np.concatenate([c.data for c in chunks[:i]])
            assert stored.load_all().tobytes() == expected.tobytes()
            followed = strax.io.dry_load_files(str(writer.temp_dir))
            assert followed.tobytes() == expected.tobytes()
        assert not writer.final_dir.exists()
        folder = writer.close()
        assert folder == writer.final_dir and not writer.temp_dir.exists()
        meta = read_json(folder)
        assert (meta["start"], meta["end"]) == (chunks[0].start, chunks[-1].end)
        assert meta["writing_ended"] >= meta["writing_started"]
        assert open_data(folder).complete

    def test_empty_chunks_get_no_file(self, tmp_path: Path) -> None:
        """Empty chunks have a metadata entry without filename and no file, as strax writes."""
        chunks = simple_chunks(3)
        chunks[1] = chunks[1].with_data(chunks[1].data[:0])
        folder = write_folder(tmp_path, chunks, TIME_END, "lz4")
        entries = read_json(folder)["chunks"]
        assert "filename" not in entries[1] and entries[1]["n"] == 0
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [entries[0]["filename"], entries[2]["filename"], meta_path(folder).name]
        )

    def test_encode_in_pool_commit_in_order(self, tmp_path: Path) -> None:
        """Chunks compressed in a thread pool and committed in order give the same folder."""
        chunks = simple_chunks(6, rows=50)
        sequential = write_folder(tmp_path / "a", chunks, TIME_END, "zstd")
        writer = new_writer(tmp_path / "b")
        with ThreadPoolExecutor(2) as pool:
            for encoded in pool.map(writer.encode, chunks):
                writer.commit(encoded)
        parallel = writer.close()
        assert {p.name: p.read_bytes() for p in parallel.iterdir() if "meta" not in p.name} == {
            p.name: p.read_bytes() for p in sequential.iterdir() if "meta" not in p.name
        }
        drop = ("writing_started", "writing_ended")
        strip = [
            {k: v for k, v in read_json(f).items() if k not in drop} for f in (sequential, parallel)
        ]
        assert strip[0] == strip[1]

    def test_titles_added_to_untitled_data(self, tmp_path: Path) -> None:
        """Data with the declared fields but no titles is stored with the declared dtype."""
        chunk = simple_chunks(1)[0]
        plain = chunk.data.astype([(n, chunk.data.dtype[n]) for n in TIME_END.names])
        folder = write_folder(tmp_path, [chunk.with_data(plain)], TIME_END, "bz2")
        loaded = open_data(folder).load_all()
        assert loaded.dtype.descr == TIME_END.descr
        assert loaded.tobytes() == chunk.data.tobytes()

    def test_extra_metadata_kept_and_strax_still_loads(self, tmp_path: Path) -> None:
        """Extra keys are written beside strax's and do not disturb strax's loader."""
        chunks = simple_chunks(2)
        folder = write_folder(tmp_path, chunks, TIME_END, "zstd", extra_metadata={"note": "x"})
        assert read_json(folder)["note"] == "x"
        context = strax.Context(
            storage=[strax.DataDirectory(str(tmp_path), readonly=True)],
            register=[strax_reader_plugin("things", TIME_END, "zstd")],
        )
        loaded = context.get_array(RUN, "things")
        assert loaded.tobytes() == np.concatenate([c.data for c in chunks]).tobytes()

    def test_extra_metadata_cannot_replace_strax_keys(self, tmp_path: Path) -> None:
        """An extra key that clashes with strax's is refused before anything is written."""
        with pytest.raises(BadInput, match=r"strax's keys \['compressor'\]"):
            new_writer(tmp_path, extra_metadata={"compressor": "bz2"})
        assert list(tmp_path.iterdir()) == []

    def test_without_fsync(self, tmp_path: Path) -> None:
        """fsync can be turned off (tests, scratch disks) and the result is the same format."""
        folder = write_folder(tmp_path, simple_chunks(2), TIME_END, "lz4", fsync=False)
        assert open_data(folder).complete


class TestStreamedChunks:
    """Chunks from STREAM_FROM_BYTES on are compressed into their file piece by piece."""

    @pytest.mark.parametrize("compressor", COMPRESSORS)
    def test_same_data_and_entries_as_whole(
        self, tmp_path: Path, compressor: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """strax loads the same rows; the metadata entries differ only in file size."""
        chunks = simple_chunks(3, rows=90)
        chunks[1] = chunks[1].with_data(chunks[1].data[:0])
        chunks[2] = replace(chunks[2], subruns={"000041": {"start": 1, "end": 2}})
        whole = write_folder(tmp_path / "whole", chunks, TIME_END, compressor)
        monkeypatch.setattr("straxd.core.storage.STREAM_FROM_BYTES", 1)
        monkeypatch.setattr("straxd.core.chunk_stream.ENCODE_PIECE_BYTES", 1000)
        streamed = write_folder(tmp_path / "streamed", chunks, TIME_END, compressor)
        assert (
            strax.io.dry_load_files(str(streamed)).tobytes()
            == strax.io.dry_load_files(str(whole)).tobytes()
            == np.concatenate([c.data for c in chunks]).tobytes()
        )
        entries = [
            [{k: v for k, v in e.items() if k != "filesize"} for e in read_json(f)["chunks"]]
            for f in (whole, streamed)
        ]
        assert entries[0] == entries[1]
        assert entries[1][2]["subruns"] == {"000041": {"start": 1, "end": 2}}

    def test_refused_chunk_leaves_no_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A streamed chunk that is refused changes nothing; the next good one is taken."""
        monkeypatch.setattr("straxd.core.storage.STREAM_FROM_BYTES", 1)
        chunks = simple_chunks(3, rows=50)
        writer = new_writer(tmp_path)
        writer.write(chunks[0])
        before = snapshot(tmp_path)
        other_dtype = np.zeros(3, TIME_DT)
        other_dtype["time"] = chunks[1].start
        for bad, error in [
            (chunks[2], ChunkError),  # a gap
            (chunks[1].with_data(other_dtype), BadInput),
        ]:
            with pytest.raises(error):
                writer.write(bad)
            assert snapshot(tmp_path) == before
        writer.write(chunks[1])
        writer.write(chunks[2])
        folder = writer.close()
        expected = np.concatenate([c.data for c in chunks])
        assert strax.io.dry_load_files(str(folder)).tobytes() == expected.tobytes()


class TestFailures:
    def test_failed_write_stays_temp_and_broken(self, tmp_path: Path) -> None:
        """Closing with an exception records it and never takes the final name."""
        writer = new_writer(tmp_path)
        writer.write(simple_chunks(1)[0])
        folder = writer.close(RuntimeError("disk full"))
        assert folder == writer.temp_dir and not writer.final_dir.exists()
        stored = open_data(folder)
        assert stored.status is Status.BROKEN
        assert "disk full" in stored.metadata["exception"]
        assert "writing_ended" in stored.metadata
        assert status_of(writer.final_dir) is None

    def test_context_manager_closes_broken_on_exception(self, tmp_path: Path) -> None:
        """An exception inside the with-block closes the output as broken and propagates."""
        chunks = simple_chunks(2)
        writer = new_writer(tmp_path)

        def crash_while_writing() -> None:
            with writer:
                writer.write(chunks[0])
                raise ValueError("plugin crashed")

        with pytest.raises(ValueError, match="plugin crashed"):
            crash_while_writing()
        assert writer.closed and not writer.final_dir.exists()
        assert "plugin crashed" in read_json(writer.temp_dir)["exception"]

    def test_close_without_chunks_is_an_error(self, tmp_path: Path) -> None:
        """A folder without chunks cannot be loaded, so closing one fails and stays _temp."""
        writer = new_writer(tmp_path)
        with pytest.raises(ChunkError, match="closed without any chunk"):
            writer.close()
        assert not writer.final_dir.exists()
        assert status_of(writer.temp_dir) is Status.BROKEN

    def test_double_close_and_write_after_close(self, tmp_path: Path) -> None:
        """A closed writer refuses to close again or to write."""
        chunks = simple_chunks(2)
        writer = new_writer(tmp_path)
        writer.write(chunks[0])
        writer.close()
        with pytest.raises(StraxdError, match="already closed"):
            writer.close()
        with pytest.raises(StraxdError, match="already closed"):
            writer.write(chunks[1])

    def test_unknown_compressor_and_overwrite_rule(self, tmp_path: Path) -> None:
        """A writer with an unknown compressor or overwrite rule is refused, nothing written."""
        with pytest.raises(BadInput, match="unknown compressor 'gzip'; known: blosc, bz2, lz4"):
            new_writer(tmp_path, compressor="gzip")
        with pytest.raises(BadInput, match="unknown overwrite rule 'sometimes'"):
            new_writer(tmp_path, overwrite="sometimes")
        assert list(tmp_path.iterdir()) == []


class TestRefusedChunks:
    """Refused chunks name the folder and chunk index and change nothing on disk."""

    def _refuse(self, tmp_path: Path, chunk: Chunk, error: type[Exception], match: str) -> None:
        writer = new_writer(tmp_path)
        writer.write(simple_chunks(1)[0])
        before = snapshot(tmp_path)
        with pytest.raises(error, match=match) as info:
            writer.write(chunk)
        assert str(writer.temp_dir) in str(info.value)
        assert snapshot(tmp_path) == before
        assert writer.n_chunks == 1

    def test_gap(self, tmp_path: Path) -> None:
        """A chunk starting after the previous end leaves a gap."""
        chunk = simple_chunks(3)[2]  # chunk 1 skipped
        self._refuse(tmp_path, chunk, ChunkError, r"chunk 1: .* leaves a gap after .* ending at")

    def test_overlap(self, tmp_path: Path) -> None:
        """A chunk starting before the previous end overlaps it."""
        chunk = Chunk("things", "things", RUN, T0_NS + 500, T0_NS + 2000, np.zeros(0, TIME_END))
        self._refuse(tmp_path, chunk, ChunkError, r"chunk 1: .* overlaps the previous chunk")

    def test_out_of_order(self, tmp_path: Path) -> None:
        """The same chunk again (out of order) is refused."""
        self._refuse(tmp_path, simple_chunks(1)[0], ChunkError, "chunk 1: .* overlaps")

    def test_wrong_dtype(self, tmp_path: Path) -> None:
        """Data of another dtype is refused."""
        data = np.zeros(0, TIME_DT)
        chunk = Chunk("things", "things", RUN, T0_NS + 1000, T0_NS + 2000, data)
        self._refuse(tmp_path, chunk, BadInput, "differs from the declared")

    def test_wrong_type_run_or_kind(self, tmp_path: Path) -> None:
        """Chunks of another data type, run or data kind are refused."""
        empty = np.zeros(0, TIME_END)
        for chunk, match in [
            (Chunk("other", "things", RUN, T0_NS + 1000, T0_NS + 2000, empty), "is not things"),
            (Chunk("things", "things", "000043", T0_NS + 1000, T0_NS + 2000, empty), "of run"),
            (Chunk("things", "kind", RUN, T0_NS + 1000, T0_NS + 2000, empty), "data kind kind"),
        ]:
            self._refuse(
                tmp_path / chunk.run_id / chunk.data_type / chunk.data_kind, chunk, BadInput, match
            )


class TestOverwrite:
    def _final(self, root: Path, overwrite: Any = "if_broken", n_chunks: int = 2) -> Path:
        writer = new_writer(root, overwrite=overwrite)
        for chunk in simple_chunks(n_chunks):
            writer.write(chunk)
        return writer.close()

    def test_never_refuses_any_existing_folder(self, tmp_path: Path) -> None:
        """overwrite=never refuses even broken data, leaving everything as it was."""
        folder = self._final(tmp_path)
        meta = read_json(folder)
        meta.pop("writing_ended")
        meta_path(folder).write_text(json.dumps(meta))
        before = snapshot(tmp_path)
        with pytest.raises(OutputExists, match="overwrite rule never") as info:
            new_writer(tmp_path, overwrite="never")
        assert info.value.path == str(folder)
        assert snapshot(tmp_path) == before

    def test_if_broken_refuses_complete_data(self, tmp_path: Path) -> None:
        """overwrite=if_broken (the default) keeps complete data untouched."""
        self._final(tmp_path)
        before = snapshot(tmp_path)
        with pytest.raises(OutputExists, match="complete data exists"):
            new_writer(tmp_path)
        assert snapshot(tmp_path) == before

    @pytest.mark.parametrize("damage", ["writing_ended", "exception", "not_json"])
    def test_if_broken_replaces_incomplete_or_broken(self, tmp_path: Path, damage: str) -> None:
        """Incomplete, broken or unreadable final folders are replaced under if_broken."""
        folder = self._final(tmp_path, n_chunks=3)
        meta = read_json(folder)
        if damage == "writing_ended":
            meta.pop("writing_ended")
        elif damage == "exception":
            meta["exception"] = "Traceback: old failure"
        meta_path(folder).write_text("{" if damage == "not_json" else json.dumps(meta))
        writer = new_writer(tmp_path)
        assert folder.exists()  # the old data stays until the new data is complete
        writer.write(simple_chunks(1)[0])
        writer.close()
        stored = open_data(folder)
        assert stored.complete and stored.n_chunks == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]

    def test_always_replaces_complete_data(self, tmp_path: Path) -> None:
        """overwrite=always replaces complete data, only when the new data is complete."""
        folder = self._final(tmp_path, n_chunks=3)
        assert open_data(self._final(tmp_path, "always", n_chunks=1)).n_chunks == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]

    def test_stale_temp_removed(self, tmp_path: Path) -> None:
        """A leftover _temp folder of a crashed writer is cleared before writing."""
        stale = tmp_path / f"{KEY}_temp"
        stale.mkdir()
        (stale / "junk").write_bytes(b"x")
        writer = new_writer(tmp_path)
        assert sorted(p.name for p in stale.iterdir()) == [meta_path(stale).name]
        writer.write(simple_chunks(1)[0])
        assert not (writer.close() / "junk").exists()


class TestChunkStream:
    """A chunk written piece by piece: the same entry as ``write``, a file strax reads."""

    def rows(self, n: int) -> np.ndarray:
        data = random_rows(TIME_END, n, seed=n)
        data["time"] = T0_NS + 10 * np.arange(n)
        data["endtime"] = data["time"] + 5
        return data

    @pytest.mark.parametrize("compressor", COMPRESSORS)
    def test_same_entry_as_write(self, tmp_path: Path, compressor: str) -> None:
        data = self.rows(3000)
        chunk = Chunk("things", "things", RUN, T0_NS, T0_NS + 40_000, data)
        whole = write_folder(tmp_path / "whole", [chunk], TIME_END, compressor)
        key = DataKey(RUN, "things", lineage_of("things"))
        with ChunkWriter(tmp_path / "streamed", key, TIME_END, "things", compressor) as writer:
            stream = writer.open_stream()
            for piece in np.array_split(data, 3):
                stream.write(piece)
            writer.commit_stream(stream, T0_NS, T0_NS + 40_000)
        (a,), (b,) = (open_data(f).metadata["chunks"] for f in (whole, writer.final_dir))
        assert {k: v for k, v in a.items() if k != "filesize"} == {
            k: v for k, v in b.items() if k != "filesize"
        }
        assert strax.io.dry_load_files(str(writer.final_dir)).tobytes() == data.tobytes()

    def test_misuse_and_failure(self, tmp_path: Path) -> None:
        key = DataKey(RUN, "things", lineage_of("things"))
        writer = ChunkWriter(tmp_path, key, TIME_END, "things", "zstd")
        stream = writer.open_stream()
        with pytest.raises(StraxdError, match="already open"):
            writer.open_stream()
        with pytest.raises(StraxdError, match="no rows"):
            writer.commit_stream(stream, T0_NS, T0_NS + 1)
        stream.write(self.rows(10))
        with pytest.raises(ChunkError, match="outside"):
            writer.commit_stream(stream, T0_NS, T0_NS + 50)  # the last row ends at +95
        assert writer.close(RuntimeError("reader died")) == writer.temp_dir
        assert [p.name for p in writer.temp_dir.iterdir()] == [writer.metadata_path.name]
        assert "reader died" in open_data(writer.temp_dir).metadata["exception"]
