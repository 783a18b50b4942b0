"""The live_data directory reader's pieces: the row gather and the window/order check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.chunk import take_rows
from straxd.core.dtypes import raw_record_dtype
from straxd.core.errors import BadInput
from straxd.core.live_files import Fragments, read_dir
from straxd.core.redax import LiveDataWriter, ReaderLayout

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
