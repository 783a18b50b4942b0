"""The file side of bootstrax's finish: checks, counts, moves."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from straxd.core.chunk import Chunk
from straxd.core.daqreader import ARTIFICIAL_DEADTIME_CHANNEL
from straxd.core.dtypes import raw_record_dtype
from straxd.core.finish import (
    CheckFailed,
    check_outputs,
    collect_outputs,
    count_live_fragments,
    count_raw_rows,
    data_entry,
    move_outputs,
    stale_work_dirs,
    work_dir,
)
from straxd.core.lineage import DataKey
from straxd.core.redax import LiveDataWriter, ReaderLayout
from straxd.core.storage import ChunkWriter
from straxd.core.strax_files import metadata_filename

RUN = "000001"
T0_NS = 1_700_000_000 * 10**9
S = 10**9


def raw_chunk(start_s: float, end_s: float, n: int, deadtime: int = 0) -> Chunk:
    """raw_records rows spread over [start, end) plus ``deadtime`` rows on channel 799."""
    data = np.zeros(n + deadtime, raw_record_dtype())
    span = int((end_s - start_s) * S) - 1000
    data["time"] = T0_NS + int(start_s * S) + np.linspace(0, span, n + deadtime).astype(np.int64)
    data["length"], data["dt"] = 10, 10
    data["channel"][:deadtime] = ARTIFICIAL_DEADTIME_CHANNEL
    return Chunk(
        "raw_records", "raw_records", RUN, T0_NS + int(start_s * S), T0_NS + int(end_s * S), data
    )


def write_raw(root: Path, chunks: list[Chunk]) -> Path:
    key = DataKey(RUN, "raw_records", {"raw_records": ["DAQReader", "0.0.0", {}]})
    with ChunkWriter(root, key, raw_record_dtype(), "raw_records", "lz4") as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.final_dir


def run_doc(duration_s: float | None) -> dict[str, object]:
    start = dt.datetime.fromtimestamp(T0_NS / S, dt.UTC)
    end = None if duration_s is None else start + dt.timedelta(seconds=duration_s)
    return {"number": 1, "start": start, "end": end}


class TestChecks:
    def test_good_output_passes(self, tmp_path: Path) -> None:
        """Coverage within 5 s of the run's duration, files present: no complaint."""
        write_raw(tmp_path, [raw_chunk(0, 5, 100), raw_chunk(5, 10, 100)])
        outputs = collect_outputs(tmp_path, RUN)
        assert [o.data_type for o in outputs] == ["raw_records"]
        check_outputs(outputs, run_doc(10), 5)

    def test_run_without_end(self, tmp_path: Path) -> None:
        write_raw(tmp_path, [raw_chunk(0, 5, 100)])
        with pytest.raises(CheckFailed, match="run hasn't yet ended"):
            check_outputs(collect_outputs(tmp_path, RUN), run_doc(None), 5)

    def test_coverage_short_of_the_run(self, tmp_path: Path) -> None:
        write_raw(tmp_path, [raw_chunk(0, 5, 100)])
        with pytest.raises(CheckFailed, match="cover 5.0 s but the run lasted 30.0 s"):
            check_outputs(collect_outputs(tmp_path, RUN), run_doc(30), 5)

    def test_no_rows_at_all(self, tmp_path: Path) -> None:
        write_raw(tmp_path, [raw_chunk(0, 5, 0)])
        with pytest.raises(CheckFailed, match="no chunks were written"):
            check_outputs(collect_outputs(tmp_path, RUN), run_doc(5), 5)

    def test_empty_chunk_file(self, tmp_path: Path) -> None:
        """A chunk with rows but a zero file size (the blosc > 2 GB failure) fails."""
        folder = write_raw(tmp_path, [raw_chunk(0, 5, 100)])
        meta = folder / metadata_filename(folder.name)
        content = json.loads(meta.read_text())
        content["chunks"][0]["filesize"] = 0
        meta.write_text(json.dumps(content))
        with pytest.raises(CheckFailed, match="failed writing"):
            check_outputs(collect_outputs(tmp_path, RUN), run_doc(5), 5)

    def test_unfinished_and_unreadable_folders(self, tmp_path: Path) -> None:
        folder = write_raw(tmp_path, [raw_chunk(0, 5, 100)])
        (tmp_path / f"{RUN}-peaklets-abcdefghij_temp").mkdir()
        with pytest.raises(CheckFailed, match="not finished"):
            collect_outputs(tmp_path, RUN)
        (tmp_path / f"{RUN}-peaklets-abcdefghij_temp").rmdir()
        (folder / metadata_filename(folder.name)).write_text("{not json")
        with pytest.raises(CheckFailed, match="metadata not readable"):
            collect_outputs(tmp_path, RUN)


class TestCounts:
    def test_live_fragments_count_each_overlap_once(self, tmp_path: Path) -> None:
        """Fragments in central parts and overlaps (written twice by redax) counted once."""
        layout = ReaderLayout({"reader0_reader_0": 3})
        writer = LiveDataWriter(tmp_path / RUN, layout, chunk_ns=S, overlap_ns=S // 10)
        rng = np.random.default_rng(3)
        total = 0
        for chunk_i in range(3):
            n = int(rng.integers(50, 200))
            data = np.zeros(n, raw_record_dtype())
            data["time"] = chunk_i * (S + S // 10) + np.sort(rng.integers(0, S + S // 10, n))
            data["channel"] = rng.integers(0, 494, n)
            writer.write_chunk(chunk_i, data)
            total += n
        writer.finish()
        assert count_live_fragments(tmp_path / RUN, raw_record_dtype().itemsize, "lz4") == total

    def test_raw_rows_without_deadtime(self, tmp_path: Path) -> None:
        folder = write_raw(tmp_path, [raw_chunk(0, 5, 100, deadtime=3), raw_chunk(5, 10, 7)])
        assert count_raw_rows([folder]) == 107


class TestMoves:
    def test_move_replaces_a_leftover(self, tmp_path: Path) -> None:
        """An unregistered leftover of an earlier attempt at the destination is replaced."""
        work = work_dir(tmp_path / "pre", RUN, "eb1", 2)
        work.mkdir(parents=True)
        write_raw(work, [raw_chunk(0, 5, 100)])
        outputs = collect_outputs(work, RUN)
        leftover = tmp_path / "pre" / outputs[0].name
        leftover.mkdir()
        (leftover / "junk").write_text("old")
        (moved,) = move_outputs(outputs, tmp_path / "pre")
        assert moved == leftover and not (moved / "junk").exists()
        assert not outputs[0].folder.exists()
        entry = data_entry(outputs[0], "eb1", moved)
        assert (entry.type, entry.host, entry.protocol) == (
            "raw_records",
            "eb1",
            "FileSytemBackend",
        )
        assert entry.file_count == 2 and entry.meta["lineage_hash"] in moved.name
        assert stale_work_dirs(tmp_path / "pre", "eb1") == [work]
        assert stale_work_dirs(tmp_path / "pre", "eb2") == []
