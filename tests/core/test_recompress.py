"""Streaming rechunk + recompress: same rows, new compressor, chunks near the target size."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.chunk import Chunk, endtime
from straxd.core.errors import OutputExists
from straxd.core.lineage import DataKey
from straxd.core.recompress import effective_target_mb, recompress
from straxd.core.storage import ChunkWriter
from straxd.core.storage_read import open_data

RUN = "000009"
T0 = 1_700_000_000 * 10**9
DTYPE = np.dtype([("time", "<i8"), ("length", "<i4"), ("dt", "<i2"), ("area", "<f4")])


def source_folder(root: Path, rows_per_chunk: list[int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    key = DataKey(RUN, "peaklets", {"peaklets": ["Peaklets", "1.2.3", {"x": 1}]})
    start = T0
    with ChunkWriter(root, key, DTYPE, "peaklets", "lz4", chunk_target_size_mb=1) as writer:
        for n in rows_per_chunk:
            data = np.zeros(n, DTYPE)
            gaps = rng.integers(100, 5_000, n)  # some gaps above strax's 1000 ns split gap
            data["time"] = start + np.cumsum(gaps)
            data["length"], data["dt"] = rng.integers(1, 20, n), 10
            data["area"] = rng.normal(size=n)
            data["area"][::50] = np.nan
            end = int(endtime(data).max()) + 1 if n else start + 1000
            writer.write(Chunk("peaklets", "peaklets", RUN, start, end, data))
            start = end
    return writer.final_dir


@pytest.mark.parametrize("compressor", ["zstd", "bz2", "blosc"])
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
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = source_folder(root / "pre", sizes, seed)
        result = recompress(source, root / "out", "zstd", target_mb=0.01, fsync=False)
        new = strax.io.dry_load_files(str(result.folder))
        assert len(new) == sum(sizes) == result.rows
        assert np.all(np.diff(new["time"]) >= 0)
