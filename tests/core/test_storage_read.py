"""The reader: status detection, finding data, run metadata, and every kind of bad folder."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax

from straxd.core.errors import BadInput, ChunkError, DataCorrupted, DataNotAvailable
from straxd.core.lineage import DataKey
from straxd.core.storage_read import Status, find, open_data, read_run_metadata, status_of
from straxd.core.strax_files import write_run_metadata
from tests.core.test_storage import (
    COMPRESSORS,
    KEY,
    RUN,
    TIME_END,
    meta_path,
    new_writer,
    read_json,
    simple_chunks,
    snapshot,
    write_folder,
)


def good_folder(root: Path, compressor: str = "zstd") -> Path:
    """A complete folder of three 4-row chunks, plus an unrelated sibling folder."""
    write_folder(root / "sibling", simple_chunks(2), TIME_END, "lz4")
    return write_folder(root, simple_chunks(3), TIME_END, compressor)


def edit_meta(folder: Path, edit: Any) -> None:
    """Change the metadata JSON of a folder in place."""
    meta = read_json(folder)
    edit(meta)
    meta_path(folder).write_text(json.dumps(meta))


def chunk_file(folder: Path, chunk_i: int = 0) -> Path:
    """The file of one chunk."""
    return folder / read_json(folder)["chunks"][chunk_i]["filename"]


class TestStatusAndFind:
    def test_complete_folder(self, tmp_path: Path) -> None:
        """A closed folder is complete, found, and loads chunk by chunk and whole."""
        chunks = simple_chunks(3)
        chunks[1] = chunks[1].with_data(chunks[1].data[:0])
        folder = write_folder(tmp_path, chunks, TIME_END, "bz2")
        stored = find(tmp_path, RUN, "things", KEY.lineage_hash)
        assert stored.folder == folder and stored.complete and stored.compressor == "bz2"
        for i, chunk in enumerate(chunks):
            loaded = stored.load_chunk(i)
            assert (loaded.start, loaded.end, loaded.run_id) == (chunk.start, chunk.end, RUN)
            assert loaded.data.tobytes() == chunk.data.tobytes()
            assert loaded.data.dtype.descr == TIME_END.descr
        assert len(stored.load_chunk(1)) == 0
        whole = np.concatenate([c.data for c in chunks])
        assert stored.load_all().tobytes() == whole.tobytes()
        with pytest.raises(IndexError, match="no chunk 3 in 3"):
            stored.load_chunk(3)

    def test_temp_folder_is_incomplete(self, tmp_path: Path) -> None:
        """A folder still being written is found only with allow_incomplete."""
        writer = new_writer(tmp_path)
        assert status_of(writer.temp_dir) is Status.INCOMPLETE
        with pytest.raises(DataNotAvailable, match="not stored"):
            find(tmp_path, RUN, "things", KEY.lineage_hash)
        stored = find(tmp_path, RUN, "things", KEY.lineage_hash, allow_incomplete=True)
        assert stored.folder == writer.temp_dir and stored.n_chunks == 0
        assert stored.load_all().dtype == TIME_END

    def test_final_without_writing_ended_is_incomplete(self, tmp_path: Path) -> None:
        """A final folder without writing_ended is incomplete, refused unless allowed."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m.pop("writing_ended"))
        assert status_of(folder) is Status.INCOMPLETE
        with pytest.raises(DataNotAvailable, match="incomplete"):
            find(tmp_path, RUN, "things", KEY.lineage_hash)
        assert find(tmp_path, RUN, "things", KEY.lineage_hash, allow_incomplete=True).n_chunks == 3

    def test_exception_means_broken(self, tmp_path: Path) -> None:
        """A recorded exception marks the data broken; find never returns it."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m.update(exception="Traceback: out of memory"))
        assert status_of(folder) is Status.BROKEN
        for allow in (False, True):
            with pytest.raises(DataNotAvailable, match="writing failed: Traceback: out of memory"):
                find(tmp_path, RUN, "things", KEY.lineage_hash, allow_incomplete=allow)

    def test_status_of_missing_and_unreadable(self, tmp_path: Path) -> None:
        """A missing folder has no status; an unreadable one counts as broken."""
        assert status_of(tmp_path / "nothing") is None
        folder = good_folder(tmp_path)
        meta_path(folder).write_text("][")
        assert status_of(folder) is Status.BROKEN

    def test_legacy_metadata_name(self, tmp_path: Path) -> None:
        """Old folders keep their metadata in a plain metadata.json; it is read as a fallback."""
        folder = good_folder(tmp_path)
        meta_path(folder).rename(folder / "metadata.json")
        stored = open_data(folder)
        assert stored.metadata_path.name == "metadata.json" and stored.n_chunks == 3

    def test_not_a_folder(self, tmp_path: Path) -> None:
        """Opening a path that is not a folder says so."""
        with pytest.raises(DataNotAvailable, match="no such data folder"):
            open_data(tmp_path / "000042-things-abc")


class TestBadInput:
    """Each problem gives a clear error naming the file; nothing anywhere changes."""

    def _fails(self, tmp_path: Path, folder: Path, error: type[Exception], match: str) -> str:
        before = snapshot(tmp_path)
        with pytest.raises(error, match=match) as info:
            open_data(folder).load_all()
        assert snapshot(tmp_path) == before
        return str(info.value)

    def test_corrupted_chunk_file(self, tmp_path: Path) -> None:
        """Overwritten bytes in a chunk file: DataCorrupted naming the file."""
        folder = good_folder(tmp_path)
        path = chunk_file(folder, 1)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2 :] = b"\xff" * (len(raw) - len(raw) // 2)
        path.write_bytes(bytes(raw))
        message = self._fails(tmp_path, folder, DataCorrupted, "cannot decompress as zstd")
        assert message.startswith(str(path))

    @pytest.mark.parametrize("compressor", COMPRESSORS)
    def test_truncated_chunk_file(self, tmp_path: Path, compressor: str) -> None:
        """A chunk file cut short fails for every compressor, naming the file."""
        folder = good_folder(tmp_path, compressor)
        path = chunk_file(folder)
        path.write_bytes(path.read_bytes()[:-3])
        message = self._fails(tmp_path, folder, DataCorrupted, f"cannot decompress as {compressor}")
        assert message.startswith(str(path))

    def test_missing_chunk_file(self, tmp_path: Path) -> None:
        """A chunk file listed in the metadata but absent."""
        folder = good_folder(tmp_path)
        path = chunk_file(folder, 2)
        path.unlink()
        assert self._fails(tmp_path, folder, DataCorrupted, "chunk file is missing").startswith(
            str(path)
        )

    @pytest.mark.parametrize(("delta", "said"), [(1, "5 rows"), (-1, "3 rows")])
    def test_row_count_mismatch(self, tmp_path: Path, delta: int, said: str) -> None:
        """Metadata n that does not match the decompressed size: both sizes in rows."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m["chunks"][0].update(n=m["chunks"][0]["n"] + delta))
        message = self._fails(tmp_path, folder, DataCorrupted, f"metadata announces .*{said}")
        assert message.startswith(str(chunk_file(folder)))

    def test_size_not_whole_rows(self, tmp_path: Path) -> None:
        """A file that decompresses to a byte count that is not whole rows."""
        folder = good_folder(tmp_path, "lz4")
        edit_meta(folder, lambda m: m.update(dtype=repr([("time", "<i8"), ("endtime", "<i8")])))
        self._fails(tmp_path, folder, DataCorrupted, "decompresses to more than 64 bytes")
        edit_meta(folder, lambda m: m.update(dtype=repr([("time", "<i8"), ("x", "<i8", (6,))])))
        self._fails(tmp_path, folder, DataCorrupted, "not a whole number of 56-byte rows")

    def test_metadata_missing(self, tmp_path: Path) -> None:
        """No metadata file at all."""
        folder = good_folder(tmp_path)
        meta_path(folder).unlink()
        message = self._fails(tmp_path, folder, DataCorrupted, "metadata file is missing")
        assert message.startswith(str(meta_path(folder)))

    def test_metadata_not_json(self, tmp_path: Path) -> None:
        """Metadata that is not JSON, or JSON that is not an object."""
        folder = good_folder(tmp_path)
        meta_path(folder).write_text('{"run_id": "000042",')
        self._fails(tmp_path, folder, DataCorrupted, f"{meta_path(folder)}: .*not valid JSON")
        meta_path(folder).write_text("[1, 2]")
        self._fails(tmp_path, folder, DataCorrupted, "not a JSON object")

    @pytest.mark.parametrize("key", ["run_id", "data_type", "data_kind", "dtype", "compressor"])
    def test_metadata_missing_key(self, tmp_path: Path, key: str) -> None:
        """Each required key, when absent, is named with the file."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m.pop(key))
        message = self._fails(tmp_path, folder, DataCorrupted, f"lacks required keys .*{key}")
        assert message.startswith(str(meta_path(folder)))

    @pytest.mark.parametrize("drop", ["n", "start", "end", "run_id"])
    def test_chunk_entry_missing_key(self, tmp_path: Path, drop: str) -> None:
        """A chunk entry without one of the keys needed to load it."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m["chunks"][1].pop(drop))
        self._fails(tmp_path, folder, DataCorrupted, f"chunk entry 1 lacks \\['{drop}'\\]")

    def test_no_chunks_in_complete_folder(self, tmp_path: Path) -> None:
        """A finished folder whose chunk list is empty cannot be loaded."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m.update(chunks=[]))
        self._fails(tmp_path, folder, DataCorrupted, "metadata has no chunks")

    def test_unknown_compressor(self, tmp_path: Path) -> None:
        """An unknown compressor names the file and lists the known ones."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m.update(compressor="snappy"))
        message = self._fails(
            tmp_path, folder, DataCorrupted, "unknown compressor 'snappy'; known: blosc, bz2, lz4"
        )
        assert message.startswith(str(meta_path(folder)))

    @pytest.mark.parametrize("dtype", ["[('time', '<i8'), oops]", "[('time', '<q9')]", "17"])
    def test_dtype_does_not_parse(self, tmp_path: Path, dtype: str) -> None:
        """A dtype string that is not a valid descr."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m.update(dtype=dtype))
        message = self._fails(tmp_path, folder, DataCorrupted, "does not parse")
        assert message.startswith(str(meta_path(folder)))

    def test_chunks_overlap(self, tmp_path: Path) -> None:
        """Overlapping chunk entries in the metadata."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m["chunks"][2].update(start=m["chunks"][1]["end"] - 5))
        message = self._fails(tmp_path, folder, ChunkError, "chunk 2 .*overlapping or out of order")
        assert message.startswith(str(meta_path(folder)))

    def test_chunks_out_of_order(self, tmp_path: Path) -> None:
        """Chunk entries listed in the wrong order."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m["chunks"].reverse())
        self._fails(tmp_path, folder, ChunkError, f"{meta_path(folder)}: chunk 1 .*out of order")

    def test_rows_outside_their_chunk(self, tmp_path: Path) -> None:
        """A chunk whose rows lie outside the [start, end) its entry claims."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m["chunks"][0].update(start=m["chunks"][0]["start"] + 1))
        message = self._fails(tmp_path, folder, DataCorrupted, "before the chunk")
        assert message.startswith(str(chunk_file(folder)))

    def test_filename_outside_folder(self, tmp_path: Path) -> None:
        """A chunk filename that would leave the folder is refused, not followed."""
        folder = good_folder(tmp_path)
        edit_meta(folder, lambda m: m["chunks"][0].update(filename="../sibling/x"))
        self._fails(tmp_path, folder, DataCorrupted, "filename '../sibling/x' is bad")

    def test_run_id_with_dash(self, tmp_path: Path) -> None:
        """A run id with '-' (or a superrun's leading '_') cannot name a folder."""
        for run_id, match in [("0-1", "invalid run id '0-1'"), ("_sr0", "superruns")]:
            with pytest.raises(BadInput, match=match):
                DataKey(run_id, "things", {})
            with pytest.raises(BadInput, match=match):
                write_run_metadata(tmp_path, run_id, {})
        assert list(tmp_path.iterdir()) == []


class TestRunMetadata:
    START = datetime.datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=datetime.UTC)

    def test_round_trip(self, tmp_path: Path) -> None:
        """Written run metadata reads back equal, datetimes as aware UTC, name defaulted."""
        doc = {"start": self.START, "mode": "background", "tags": [{"name": "x"}]}
        path = write_run_metadata(tmp_path, RUN, doc)
        assert path.name == f"{RUN}-metadata.json"
        assert read_run_metadata(tmp_path, RUN) == {**doc, "name": RUN}

    def test_strax_reads_ours_and_we_read_straxs(self, tmp_path: Path) -> None:
        """strax's DataDirectory reads our run metadata and we read what it writes."""
        write_run_metadata(tmp_path / "ours", RUN, {"start": self.START, "number": 42})
        theirs = strax.DataDirectory(str(tmp_path / "ours"), readonly=True).run_metadata(RUN)
        assert theirs["number"] == 42
        assert theirs["start"] == self.START.replace(tzinfo=None)  # strax reads naive UTC
        strax.DataDirectory(str(tmp_path / "strax")).write_run_metadata(
            RUN, {"start": self.START, "number": 42}
        )
        ours = read_run_metadata(tmp_path / "strax", RUN)
        assert ours == {"start": self.START, "number": 42, "name": RUN}
        assert (tmp_path / "ours" / f"{RUN}-metadata.json").read_text() == (
            tmp_path / "strax" / f"{RUN}-metadata.json"
        ).read_text()

    def test_missing_and_bad(self, tmp_path: Path) -> None:
        """Absent run metadata is DataNotAvailable; a broken file is DataCorrupted naming it."""
        with pytest.raises(DataNotAvailable, match=f"no run metadata for run {RUN}"):
            read_run_metadata(tmp_path, RUN)
        path = tmp_path / f"{RUN}-metadata.json"
        path.write_text("{'start': 1}")
        with pytest.raises(DataCorrupted, match=f"{path}: run metadata is not valid JSON"):
            read_run_metadata(tmp_path, RUN)
        assert path.read_text() == "{'start': 1}"
