"""Streaming rechunk + recompress: same rows, new compressor, chunks near the target size."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core import recompress as recompress_module
from straxd.core.chunk import Chunk, endtime
from straxd.core.errors import DataCorrupted, OutputExists
from straxd.core.lineage import DataKey
from straxd.core.recompress import effective_target_mb, recompress
from straxd.core.storage import ChunkWriter
from straxd.core.storage_read import open_data

RUN = "000009"
T0 = 1_700_000_000 * 10**9
DTYPE = np.dtype([("time", "<i8"), ("length", "<i4"), ("dt", "<i2"), ("area", "<f4")])


KEY = DataKey(RUN, "peaklets", {"peaklets": ["Peaklets", "1.2.3", {"x": 1}]})


def rows(n: int, seed: int, start: int = T0) -> np.ndarray:
    """Sorted rows after ``start``; some gaps exceed strax's 1000 ns split gap, some overlap."""
    rng = np.random.default_rng(seed)
    data = np.zeros(n, DTYPE)
    data["time"] = start + np.cumsum(rng.integers(100, 5_000, n))
    data["length"], data["dt"] = rng.integers(1, 20, n), 10
    data["area"] = rng.normal(size=n)
    data["area"][::50] = np.nan
    return data


def source_folder(root: Path, rows_per_chunk: list[int], seed: int = 0) -> Path:
    start = T0
    with ChunkWriter(root, KEY, DTYPE, "peaklets", "lz4", chunk_target_size_mb=1) as writer:
        for i, n in enumerate(rows_per_chunk):
            data = rows(n, seed + i, start)
            end = int(endtime(data).max()) + 1 if n else start + 1000
            writer.write(Chunk("peaklets", "peaklets", RUN, start, end, data))
            start = end
    return writer.final_dir


def folder_of(root: Path, data: np.ndarray, cuts: list[int]) -> Path:
    """``data`` stored in chunks cut before the rows ``cuts`` (where no row straddles the cut)."""
    ends = np.maximum.accumulate(endtime(data)) if len(data) else np.zeros(0, np.int64)
    fits = [c for c in sorted(set(cuts)) if 0 < c < len(data) and data["time"][c] >= ends[c - 1]]
    bounds = [0, *fits, len(data)]
    start = T0
    with ChunkWriter(root, KEY, DTYPE, "peaklets", "lz4", chunk_target_size_mb=1) as writer:
        for a, b in itertools.pairwise(bounds):
            end = int(data["time"][b]) if b < len(data) else int(ends[-1]) + 1 if b else T0 + 1
            writer.write(Chunk("peaklets", "peaklets", RUN, start, end, data[a:b]))
            start = end
    return writer.final_dir


def nearest_gap_cuts(data: np.ndarray, target_rows: int) -> list[int]:
    """The rule, written plainly: cut at the gap nearest last cut + target (a tie: the earlier),
    while some gap lies beyond that."""
    ends = endtime(data)
    gaps = [i for i in range(1, len(data)) if data["time"][i] - ends[:i].max() > 1000]
    cuts = [0]
    while beyond := [g for g in gaps if g > cuts[-1] + target_rows]:
        within = [g for g in gaps if cuts[-1] < g <= cuts[-1] + target_rows]
        if within and cuts[-1] + target_rows - within[-1] <= beyond[0] - cuts[-1] - target_rows:
            cuts.append(within[-1])
        else:
            cuts.append(beyond[0])
    return cuts


@pytest.mark.parametrize("compressor", ["zstd", "bz2", "blosc", "lz4"])
def test_rows_equal_and_chunks_near_target(tmp_path: Path, compressor: str) -> None:
    source = source_folder(tmp_path / "pre", [3000, 0, 5000, 2500, 4000])
    result = recompress(source, tmp_path / "out", compressor, target_mb=0.1)
    assert result.folder.name == source.name  # same lineage, same folder name
    old = strax.io.dry_load_files(str(source))
    new = strax.io.dry_load_files(str(result.folder))
    for name in DTYPE.names or ():
        np.testing.assert_array_equal(new[name], old[name])
    meta = open_data(result.folder).metadata
    assert (
        meta["compressor"] == compressor
        and meta["lineage"] == open_data(source).metadata["lineage"]
    )
    chunks = meta["chunks"]
    assert result.chunks == len(chunks) > 1 and result.rows == len(old)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(chunks))
    assert chunks[0]["start"] == open_data(source).metadata["chunks"][0]["start"]
    assert max(c["nbytes"] for c in chunks[:-1]) <= 0.1e6 * 1.5


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    source = source_folder(tmp_path / "pre", [100])
    recompress(source, tmp_path / "out", "zstd", 1)
    with pytest.raises(OutputExists):
        recompress(source, tmp_path / "out", "zstd", 1)


def test_blosc_target_capped() -> None:
    assert effective_target_mb("blosc", 5000) == 1500
    assert effective_target_mb("zstd", 5000) == 5000


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 800), min_size=1, max_size=8), st.integers(0, 2**16))
def test_any_chunking_keeps_every_row(sizes: list[int], seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = source_folder(root / "pre", sizes, seed)
        result = recompress(source, root / "out", "zstd", target_mb=0.01, fsync=False)
        new = strax.io.dry_load_files(str(result.folder))
        assert len(new) == sum(sizes) == result.rows
        assert np.all(np.diff(new["time"]) >= 0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 3000),
    st.lists(st.integers(0, 3000), max_size=6),
    st.integers(40, 900),
    st.integers(1, 400),
    st.integers(0, 2**16),
)
def test_cuts_follow_the_nearest_gap_rule_whatever_the_source_chunks(
    n_rows: int, source_cuts: list[int], target_rows: int, piece_rows: int, seed: int
) -> None:
    data = rows(n_rows, seed)
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        # Small decode pieces: rows wait across many refills of the reused buffer.
        patch.setattr(recompress_module, "PIECE_BYTES", piece_rows * DTYPE.itemsize)
        root = Path(tmp)
        source = folder_of(root / "pre", data, [c for c in source_cuts if c <= n_rows])
        target_mb = target_rows * DTYPE.itemsize / 1e6
        result = recompress(source, root / "out", "zstd", target_mb=target_mb, fsync=False)
        chunks = open_data(result.folder).metadata["chunks"]
        new = strax.io.dry_load_files(str(result.folder))
    expected = np.diff([*nearest_gap_cuts(data, target_rows), n_rows])
    assert [c["n"] for c in chunks] == (list(expected) if n_rows else [0])
    assert new.tobytes() == data.tobytes()


MEASURE = """
import os
import sys
from straxd.core.memory import peak_rss_mb, rss_mb
from straxd.core.recompress import recompress
before = rss_mb(os.getpid())
recompress(sys.argv[1], sys.argv[2], "zstd", target_mb=1000, fsync=False)
print(peak_rss_mb() - before)
"""


def grown_mb(source: Path, out: Path) -> float:
    """Peak memory growth of a fresh process rewriting ``source`` into one 1000 MB target."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(source), str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert len(open_data(out / source.name).metadata["chunks"]) == 1
    return float(done.stdout)


def test_memory_is_flat_in_the_amount_of_data(tmp_path: Path) -> None:
    chunk_rows, few, many = 150_000, 8, 40  # chunks of 2.7 MB; 22 MB against 108 MB of rows
    small = grown_mb(source_folder(tmp_path / "small", [chunk_rows] * few), tmp_path / "o1")
    large = grown_mb(source_folder(tmp_path / "large", [chunk_rows] * many), tmp_path / "o2")
    extra_mb = (many - few) * chunk_rows * DTYPE.itemsize / 1e6
    # A buffer filling towards the target would grow by all 86 MB of extra rows; streaming holds
    # one source chunk and the codecs' working memory, whatever the length of the run.
    assert large - small < 0.25 * extra_mb, (small, large, extra_mb)


def test_a_corrupted_source_chunk_leaves_no_output(tmp_path: Path) -> None:
    source = source_folder(tmp_path / "pre", [3000, 3000, 3000])
    broken = sorted(p for p in source.iterdir() if not p.name.endswith(".json"))[1]
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(DataCorrupted, match=broken.name):
        recompress(source, tmp_path / "out", "zstd", target_mb=1000)
    (temp,) = (tmp_path / "out").iterdir()
    assert temp.name.endswith("_temp")  # never the final name
    assert "exception" in open_data(temp).metadata
    assert not [p for p in temp.iterdir() if p.name.endswith("_temp")]  # no half chunk file


@pytest.mark.parametrize(
    ("field", "shift", "match"),
    [("end", -(10**6), "after the chunk"), ("start", 10**6, "before the chunk")],
)
def test_rows_outside_their_chunk_are_refused(
    tmp_path: Path, field: str, shift: int, match: str
) -> None:
    source = source_folder(tmp_path / "pre", [3000, 3000])
    (meta_path,) = source.glob("*-metadata.json")
    meta = json.loads(meta_path.read_text())
    meta["chunks"][1][field] += shift  # the metadata no longer covers the chunk's rows
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataCorrupted, match=f"{source.name}/.*-000001: .*{match}"):
        recompress(source, tmp_path / "out", "zstd", target_mb=1000)
