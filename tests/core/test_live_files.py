"""The live_data directory reader's pieces: row gather and grouping, the window/order check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.dtypes import raw_record_dtype
from straxd.core.errors import BadInput
from straxd.core.live_files import Fragments, group_in_place, read_dir, read_dirs
from straxd.core.redax import LiveDataWriter, ReaderLayout
from straxd.core.row_order import permute_rows_in_place
from straxd.core.rows import take_rows

ODD_ROW = np.dtype([("time", np.int64), ("channel", np.int16), ("tag", "S3")])  # 13 bytes


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    picks=st.lists(st.integers(0, 10**6), max_size=400),
    odd=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_gather_equals_numpy(n: int, picks: list[int], odd: bool, seed: int) -> None:
    """Any index (repeats, any order) gives numpy's rows byte for byte, for any row size."""
    dtype = ODD_ROW if odd else raw_record_dtype(7)
    rows = np.frombuffer(np.random.default_rng(seed).bytes(n * dtype.itemsize), dtype).copy()
    index = np.array([p % n for p in picks] if n else [], dtype=np.int64)
    assert take_rows(rows, index).tobytes() == rows[index].tobytes()
    out = np.empty(len(index) + 2, dtype)
    take_rows(rows, index, out[1:-1])  # into a slice of a larger array
    assert out[1:-1].tobytes() == rows[index].tobytes()


def test_fragments_in_time_then_channel_order(tmp_path: Path) -> None:
    """Files are joined in name order and ordered stably by (time, channel), as strax sorts."""
    rows = np.zeros(6, raw_record_dtype())
    rows["time"] = [30, 10, 10, 20, 10, 30]
    rows["channel"] = [2, 5, 1, 1, 1, 0]
    rows["record_i"] = np.arange(6)
    rows["length"], rows["dt"] = 110, 10
    writer = LiveDataWriter(
        tmp_path, ReaderLayout({"reader0_reader_0": 2}), chunk_ns=1000, overlap_ns=100
    )
    writer.write_directory("000000", rows)
    got = read_dir(tmp_path / "000000", rows.dtype, "lz4", 0, 1000)
    expected = rows[np.lexsort((rows["channel"], rows["time"]))]
    every_row = got.rows[np.argsort(got.rows["record_i"])]
    assert every_row.tobytes() == rows.tobytes()
    assert got.sorted_rows()["time"].tolist() == expected["time"].tolist()
    assert got.sorted_rows()["channel"].tolist() == expected["channel"].tolist()
    ends = got.sorted_rows()["time"] + 1100
    assert got.sorted_endtime().tolist() == ends.tolist()
    with pytest.raises(BadInput, match="lies outside its window"):
        read_dir(tmp_path / "000000", rows.dtype, "lz4", 15, 1000)


def test_select_keeps_rows_and_order() -> None:
    """A selection of ordered positions is a view of the same rows."""
    rows = np.zeros(4, ODD_ROW)
    rows["time"] = [3, 1, 2, 0]
    ordered = Fragments(rows, np.array([3, 1, 2, 0]))
    assert ordered.select(slice(1, 3)).sorted_time().tolist() == [1, 2]
    assert Fragments.of_sorted(rows).sorted_time().tolist() == [3, 1, 2, 0]


def test_gather_out_of_range_is_refused() -> None:
    """An index beyond the rows raises instead of reading past the array."""
    rows = np.zeros(3, ODD_ROW)
    with pytest.raises(IndexError, match="row 3 is out of range for 3 rows"):
        take_rows(rows, np.array([0, 3]))
    with pytest.raises(IndexError, match="row -1 is out of range"):
        take_rows(rows, np.array([-1]))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 300), odd=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_permute_in_place_equals_numpy(n: int, odd: bool, seed: int) -> None:
    """Any permutation gives numpy's ``rows[perm]``; anything else is refused."""
    dtype = ODD_ROW if odd else raw_record_dtype(7)
    rng = np.random.default_rng(seed)
    rows = np.frombuffer(rng.bytes(n * dtype.itemsize), dtype).copy()
    perm = rng.permutation(n)
    expected = rows[perm].tobytes()
    permute_rows_in_place(rows, perm)
    assert rows.tobytes() == expected
    if n > 1:
        with pytest.raises(ValueError, match="not a permutation"):
            permute_rows_in_place(rows, np.zeros(n, np.int64))
    with pytest.raises(ValueError, match="positions for"):
        permute_rows_in_place(rows, np.arange(n + 1))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    n_groups=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_group_in_place_equals_gathering(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], n_groups: int, seed: int
) -> None:
    """Directories read together, rows grouped within their array: each group's slice holds
    what gathering its positions into a new array gives."""
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("live")
    writer = LiveDataWriter(
        root, ReaderLayout({"reader0_reader_0": 2}), chunk_ns=10**6, overlap_ns=100
    )
    windows = []
    for i, size in enumerate(sizes):
        rows = np.zeros(size, raw_record_dtype())
        rows["time"] = rng.integers(0, 10**6, size)
        rows["channel"] = rng.integers(0, 50, size)
        rows["record_i"] = np.arange(size)
        writer.write_directory(f"{i:06d}", rows)
        windows.append((root / f"{i:06d}", 0, 10**6))
    pieces = read_dirs(windows, raw_record_dtype(), "lz4")
    sorted_rows = np.concatenate([p.sorted_rows() for p in pieces])
    label = rng.integers(0, n_groups + 1, len(sorted_rows))  # n_groups: in no group
    groups = [np.flatnonzero(label == g) for g in range(n_groups)]
    expected = [sorted_rows[g].tobytes() for g in groups]
    got = group_in_place(pieces, groups)
    assert [g.tobytes() for g in got] == expected
    assert group_in_place([*pieces, Fragments.of_sorted(sorted_rows[:1])], groups) is None
