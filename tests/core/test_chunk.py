"""The chunk model against strax 2.2.3: split, concatenate, continuity, rechunking."""

from __future__ import annotations

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.chunk import (
    Chunk,
    Rechunker,
    continuity_check,
    endtime,
    get_splits,
    sort_by_time,
    sort_by_time_in_place,
    split_array,
    take_rows,
    take_rows_in_place,
)
from straxd.core.dtypes import peak_dtype
from straxd.core.errors import CannotSplit, ChunkError
from tests.strategies import TIME_DT_DTYPE, TIME_END_DTYPE, interval_arrays

DTYPES = st.sampled_from([TIME_DT_DTYPE, TIME_END_DTYPE])


def _chunk(data: np.ndarray, start: int | None = None, end: int | None = None) -> Chunk:
    start = int(data["time"][0]) if start is None else start
    end = int(endtime(data).max()) if end is None else end
    return Chunk("things", "things", "000001", start, end, data)


def _strax_chunk(data: np.ndarray, start: int, end: int) -> strax.Chunk:
    return strax.Chunk(
        data_type="things",
        data_kind="things",
        dtype=data.dtype,
        run_id="000001",
        start=start,
        end=end,
        data=data,
        target_size_mb=1,
    )


class TestConstruction:
    def test_rows_before_start_refused(self) -> None:
        """A row starting before the chunk is refused with the type and run named."""
        data = np.zeros(1, TIME_END_DTYPE)
        data["time"], data["endtime"] = 5, 10
        with pytest.raises(ChunkError, match="things.*000001.*before"):
            _chunk(data, start=6, end=20)

    def test_rows_after_end_refused(self) -> None:
        """A row ending after the chunk is refused."""
        data = np.zeros(1, TIME_END_DTYPE)
        data["time"], data["endtime"] = 5, 30
        with pytest.raises(ChunkError, match="after"):
            _chunk(data, start=0, end=20)

    def test_zero_length_chunk_must_be_empty(self) -> None:
        """A zero-length chunk is fine empty and refused with data."""
        empty = np.zeros(0, TIME_END_DTYPE)
        assert len(_chunk(empty, 7, 7)) == 0
        with pytest.raises(ChunkError):
            _chunk(np.zeros(1, TIME_END_DTYPE), 0, 0)
        with pytest.raises(ChunkError, match="start <= end"):
            _chunk(empty, 8, 7)


class TestSplit:
    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), dtype=DTYPES, early=st.booleans())
    def test_split_array_equals_strax(
        self, data: st.DataObject, dtype: np.dtype, early: bool
    ) -> None:
        """split_array gives strax's halves and split time, and fails where strax fails."""
        arr = data.draw(interval_arrays(dtype=dtype))
        t = data.draw(st.integers(500_000, 1_300_000))
        try:
            theirs = strax.split_array(arr, t, early)
        except strax.CannotSplit:
            with pytest.raises(CannotSplit):
                split_array(arr, t, early)
            return
        left, right, t_used = split_array(arr, t, early)
        np.testing.assert_array_equal(left, theirs[0])
        np.testing.assert_array_equal(right, theirs[1])
        assert t_used == theirs[2]

    @settings(max_examples=100, deadline=None)
    @given(data=st.data(), early=st.booleans())
    def test_chunk_split_equals_strax(self, data: st.DataObject, early: bool) -> None:
        """Chunk.split gives the same boundaries and rows as strax's Chunk.split."""
        arr = data.draw(interval_arrays(dtype=TIME_DT_DTYPE, max_rows=30))
        start, end = 900_000, 1_000_000 + 30 * 3000 + 30 * 1500 + 10
        t = data.draw(st.integers(start - 10, end + 10))
        try:
            a, b = _strax_chunk(arr, start, end).split(t, allow_early_split=early)
        except strax.CannotSplit:
            with pytest.raises(CannotSplit, match="straddles"):
                _chunk(arr, start, end).split(t, allow_early_split=early)
            return
        x, y = _chunk(arr, start, end).split(t, allow_early_split=early)
        assert (x.start, x.end, y.start, y.end) == (a.start, a.end, b.start, b.end)
        np.testing.assert_array_equal(x.data, a.data)
        np.testing.assert_array_equal(y.data, b.data)


class TestConcatenate:
    def test_concatenate_joins_in_order(self) -> None:
        """Two adjacent chunks join into one spanning both."""
        data = np.zeros(2, TIME_END_DTYPE)
        data["time"], data["endtime"] = [0, 10], [5, 15]
        a, b = _chunk(data, 0, 20).split(8)
        joined = Chunk.concatenate([a, b])
        assert (joined.start, joined.end) == (0, 20)
        np.testing.assert_array_equal(joined.data, data)

    def test_overlapping_chunks_refused(self) -> None:
        """Overlapping or out-of-order chunks cannot be joined; the message names both."""
        empty = np.zeros(0, TIME_END_DTYPE)
        with pytest.raises(ChunkError, match="overlap"):
            Chunk.concatenate([_chunk(empty, 0, 10), _chunk(empty, 5, 20)])
        with pytest.raises(ChunkError, match="overlap"):
            Chunk.concatenate([_chunk(empty, 10, 20), _chunk(empty, 0, 10)])

    def test_other_type_refused(self) -> None:
        """Chunks of different types never mix."""
        empty = np.zeros(0, TIME_END_DTYPE)
        other = Chunk("other", "other", "000001", 10, 20, empty)
        with pytest.raises(ChunkError, match="different type"):
            Chunk.concatenate([_chunk(empty, 0, 10), other])

    def test_continuity_check(self) -> None:
        """A gap between consecutive chunks is reported with both times."""
        empty = np.zeros(0, TIME_END_DTYPE)
        continuity_check([_chunk(empty, 0, 10), _chunk(empty, 10, 20)])
        with pytest.raises(ChunkError, match="starting at 11 .* ending at 10"):
            continuity_check([_chunk(empty, 0, 10), _chunk(empty, 11, 20)])


class TestRechunk:
    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), dtype=DTYPES)
    def test_get_splits_equals_strax(self, data: st.DataObject, dtype: np.dtype) -> None:
        """Split indices equal strax.Rechunker.get_splits for any target size."""
        arr = data.draw(interval_arrays(dtype=dtype, max_rows=80))
        target = data.draw(st.integers(1, 40)) * arr.itemsize + data.draw(st.integers(0, 5))
        ours = get_splits(arr, target)
        try:
            theirs = strax.Rechunker.get_splits(arr, target, 1000)
        except ValueError:
            # strax crashes when it runs out of candidate gaps; we keep the rest in one piece.
            assert ours[0] == 0
            assert np.all(np.diff(ours) > 0)
            return
        np.testing.assert_array_equal(ours, theirs)

    def test_single_gap_does_not_crash(self) -> None:
        """One gap and a small target: strax raises, straxd keeps the data in one piece."""
        arr = np.zeros(6, TIME_END_DTYPE)
        arr["time"] = [0, 1, 2, 3, 4, 1006]
        arr["endtime"] = arr["time"] + 1
        with pytest.raises(ValueError, match="argmin"):
            strax.Rechunker.get_splits(arr, arr.itemsize, 1000)
        assert list(get_splits(arr, arr.itemsize)) == [0]

    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_rechunker_equals_strax(self, data: st.DataObject) -> None:
        """Feeding the same chunks gives the same output boundaries and rows as strax."""
        arr = data.draw(interval_arrays(dtype=TIME_END_DTYPE, max_rows=80, allow_overlap=False))
        start, end = 900_000, 1_000_000 + 80 * 3150
        cuts = sorted(data.draw(st.lists(st.integers(start, end), max_size=4)))
        ours, theirs = Rechunker(), strax.Rechunker(rechunk=True, run_id="000001")
        ours_out, theirs_out = [], []
        rest, srest = _chunk(arr, start, end), _strax_chunk(arr, start, end)
        for t in [*cuts, end]:
            piece, rest = rest.split(t, allow_early_split=True)
            spiece, srest = srest.split(piece.end, allow_early_split=False)
            piece = piece.with_data(piece.data, target_size_mb=1e-4 * data.draw(st.integers(1, 9)))
            spiece.target_size_mb = piece.target_size_mb
            try:
                theirs_out += theirs.receive(spiece)
            except ValueError:
                return  # strax's own crash (see test_single_gap_does_not_crash)
            ours_out += ours.receive(piece)
        ours_out += ours.flush()
        theirs_out += theirs.flush()
        assert [(c.start, c.end, len(c)) for c in ours_out] == [
            (c.start, c.end, len(c)) for c in theirs_out
        ]


class TestSort:
    def test_sort_by_time_then_channel(self) -> None:
        """Ties in time are broken by channel, stably."""
        data = np.zeros(4, TIME_DT_DTYPE)
        data["time"] = [5, 1, 5, 1]
        data["channel"] = [2, 3, 1, 0]
        data["length"], data["dt"] = 1, 1
        out = sort_by_time(data)
        assert list(zip(out["time"], out["channel"], strict=True)) == [
            (1, 0),
            (1, 3),
            (5, 1),
            (5, 2),
        ]
        np.testing.assert_array_equal(out, strax.sort_by_time(data))

    @settings(max_examples=60, deadline=None)
    @given(data=st.data(), presorted=st.booleans())
    def test_equals_strax_sorted_or_not(self, data: st.DataObject, presorted: bool) -> None:
        """Any order of rows, including already sorted ones (returned without a copy)."""
        arr = data.draw(interval_arrays(dtype=TIME_DT_DTYPE, max_rows=50))
        arr["channel"] = data.draw(
            st.lists(st.integers(0, 3), min_size=len(arr), max_size=len(arr))
        )
        if presorted:
            arr = strax.sort_by_time(arr)
        else:
            arr = arr[data.draw(st.permutations(list(range(len(arr)))))] if len(arr) else arr
        out = sort_by_time(arr)
        np.testing.assert_array_equal(out, strax.sort_by_time(arr))
        if presorted:
            assert out is arr

    def test_times_spanning_too_much_to_pack_still_sort(self) -> None:
        """Times further apart than the packed key holds fall back to a two-key sort."""
        data = np.zeros(3, TIME_DT_DTYPE)
        data["time"] = [2**62, 0, 2**62]
        data["channel"] = [1, 4, -2]
        np.testing.assert_array_equal(sort_by_time(data), strax.sort_by_time(data))


@settings(max_examples=100, deadline=None)
@given(
    arr=st.sampled_from([TIME_DT_DTYPE, TIME_END_DTYPE, peak_dtype(4)]).flatmap(
        lambda dtype: interval_arrays(dtype=dtype, max_length=2**31 - 1)
    )
)
def test_endtime_is_time_plus_length_times_dt(arr: np.ndarray) -> None:
    """Ends in int64 for length/dt rows of any widths (no int32 overflow), and the endtime
    field itself where there is one."""
    ends = endtime(arr)
    assert ends.dtype == np.int64
    if "endtime" in (arr.dtype.names or ()):
        expected = arr["endtime"].astype(np.int64)
    else:
        lengths = [int(n) * int(dt) for n, dt in zip(arr["length"], arr["dt"], strict=True)]
        expected = arr["time"].astype(np.int64) + np.array(lengths, dtype=np.int64)
    np.testing.assert_array_equal(ends, expected)


class TestSortKernels:
    @settings(max_examples=200, deadline=None)
    @given(
        rows=st.lists(st.tuples(st.integers(-50, 50), st.integers(-3, 3)), max_size=200),
        time_scale=st.sampled_from([1, 10**6, 2**40, 2**57]),
    )
    def test_radix_order_is_stable_lexsort(
        self, rows: list[tuple[int, int]], time_scale: int
    ) -> None:
        """The radix order equals np.lexsort((channel, time)), ties in original order; keys
        wider than 64 bits are refused."""
        from straxd.core.row_order import count_descents, radix_time_channel_order

        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        time, channel = table[:, 0] * time_scale, table[:, 1].astype(np.int16)
        if not len(time):
            return
        packed, order = radix_time_channel_order(time, channel)
        spans = (int(time.max()) - int(time.min()), int(channel.max()) - int(channel.min()))
        wide = sum(span.bit_length() for span in spans)
        assert packed == (wide <= 64)
        if packed:
            np.testing.assert_array_equal(order, np.lexsort((channel, time)))
        earlier, tie = time[1:] < time[:-1], time[1:] == time[:-1]
        expected = np.sum(earlier | (tie & (channel[1:] < channel[:-1])))
        assert count_descents(time, channel) == expected

    @settings(max_examples=50, deadline=None)
    @given(
        seed=st.integers(0, 2**32 - 1),
        n=st.sampled_from([0, 1, 100, 4095, 4096, 9000]),
        spread=st.sampled_from([3, 10**6, 2**62]),
    )
    def test_stable_time_order_is_stable_argsort(self, seed: int, n: int, spread: int) -> None:
        """Equal to numpy's stable argsort, ties in original order, on a strided field and
        on times spanning the whole int64 range, below and above the radix threshold."""
        from straxd.core.chunk import stable_time_order

        rng = np.random.default_rng(seed)
        rows = np.zeros(n, dtype=[("channel", np.int16), ("max_time", np.int64)])
        rows["max_time"] = rng.integers(-spread, spread, n)
        if n > 1:
            rows["max_time"][:2] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        expected = np.argsort(rows["max_time"], kind="stable")
        np.testing.assert_array_equal(stable_time_order(rows["max_time"]), expected)

    @settings(max_examples=100, deadline=None)
    @given(data=st.data(), n=st.integers(0, 3000))
    def test_sort_with_where_equals_sort_of_selection(self, data: st.DataObject, n: int) -> None:
        """Selecting rows while sorting equals sorting the selection, in each sorting path
        (in order, few out of place, many out of place by radix)."""
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
        arr = np.zeros(n, TIME_DT_DTYPE)
        arr["time"] = np.sort(rng.integers(0, 10**6, n)) + rng.integers(
            0, data.draw(st.sampled_from([1, 5, 10**5])), n
        )
        arr["channel"], arr["area"] = rng.integers(0, 5, n), np.arange(n)
        where = rng.random(n) < data.draw(st.sampled_from([0.0, 0.5, 1.0]))
        expected = strax.sort_by_time(arr[where]) if where.any() else arr[:0]
        assert sort_by_time(arr, where=where).tobytes() == expected.tobytes()
        assert sort_by_time(arr[where]).tobytes() == expected.tobytes()


class TestSortInPlace:
    @settings(max_examples=100, deadline=None)
    @given(data=st.data(), far=st.booleans())
    def test_equals_sort_by_time(self, data: st.DataObject, far: bool) -> None:
        """Rows a few places out of order are sorted in place; far from order (reversed,
        beyond the row-move budget) a sorted copy. Both equal sort_by_time, ties included."""
        arr = data.draw(interval_arrays(dtype=TIME_DT_DTYPE, max_rows=300, max_gap_ns=40))
        arr["channel"] = data.draw(
            st.lists(st.integers(0, 3), min_size=len(arr), max_size=len(arr))
        )
        arr["area"] = np.arange(len(arr))  # tells rows with equal keys apart
        arr = sort_by_time(arr)
        if far:
            arr = arr[::-1].copy()
        else:
            for _ in range(data.draw(st.integers(0, 40)) if len(arr) > 1 else 0):
                i = data.draw(st.integers(0, len(arr) - 2))  # a local swap
                arr[[i, i + 1]] = arr[[i + 1, i]]
        expected = sort_by_time(arr.copy())
        out = sort_by_time_in_place(arr)
        np.testing.assert_array_equal(out, expected)
        assert out.tobytes() == expected.tobytes()
        if not far:
            assert out is arr


class TestRowCopies:
    @settings(max_examples=40, deadline=None)
    @given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=4), seed=st.integers(0, 99))
    def test_equal_numpy_indexing(self, sizes: list[int], seed: int) -> None:
        """take_rows(_in_place): numpy's bytes, for odd row sizes, strided pieces."""
        rng = np.random.default_rng(seed)
        odd = np.dtype([("time", np.int64), ("channel", np.int16), ("flag", np.int8)])
        for dtype in (TIME_DT_DTYPE, odd):
            pieces = [np.frombuffer(rng.bytes(n * dtype.itemsize), dtype).copy() for n in sizes]
            pieces[0] = pieces[0][::2]  # not contiguous
            masks = [rng.random(len(p)) < 0.5 for p in pieces]
            order = rng.permutation(len(pieces[-1]))
            assert take_rows(pieces[-1], order).tobytes() == pieces[-1][order].tobytes()
            assert take_rows(pieces[-1], masks[-1]).tobytes() == pieces[-1][masks[-1]].tobytes()
            for piece, mask in zip(pieces, masks, strict=True):  # strided and contiguous
                expected = piece[mask].tobytes()
                assert take_rows_in_place(piece, mask).tobytes() == expected


class TestRechunkCap:
    def test_live_cap_bounds_what_is_held_back(self) -> None:
        """A 2 GB target is capped: chunks are written once they pass the cap, at gaps."""
        rows = np.zeros(1000, TIME_END_DTYPE)
        rows["time"] = np.arange(1000) * 5000
        rows["endtime"] = rows["time"] + 100
        cap_mb = 100 * rows.itemsize / 1e6
        rechunker = Rechunker(True, max_target_mb=cap_mb)
        out = []
        for i in range(10):
            piece = rows[i * 100 : (i + 1) * 100]
            chunk = _chunk(piece, i * 500_000, (i + 1) * 500_000)
            out += rechunker.receive(chunk.with_data(chunk.data, target_size_mb=2000))
        out += rechunker.flush()
        assert sum(len(c) for c in out) == 1000
        assert max(len(c) for c in out) <= 200
        assert len(out) >= 5


class TestNoPinnedMemory:
    """Pieces handed on never keep a large array alive through a view (core/inflight.py)."""

    def test_join_onto_empty_buffer_does_not_copy(self) -> None:
        """An empty chunk joined with a full one gives the full one's array, same span."""
        data = np.zeros(2, TIME_END_DTYPE)
        data["time"], data["endtime"] = [10, 12], [11, 20]
        empty = _chunk(np.zeros(0, TIME_END_DTYPE), 0, 5)
        joined = Chunk.concatenate([empty, _chunk(data, 5, 20)])
        assert joined.data is data
        assert (joined.start, joined.end) == (0, 20)

    def test_empty_split_halves_are_new_arrays(self) -> None:
        """Splitting at an end leaves an empty half that is not a view of the data."""
        data = np.zeros(2, TIME_END_DTYPE)
        data["time"], data["endtime"] = [0, 10], [5, 15]
        left, right = _chunk(data, 0, 20).split(20)
        assert left.data is data
        assert len(right) == 0 and right.data.base is None
        left, right = _chunk(data, 0, 20).split(0)
        assert len(left) == 0 and left.data.base is None

    def test_rechunker_keeps_a_copy_of_the_rest(self) -> None:
        """What the rechunker holds back is its own copy, not a view of the received chunk."""
        rows = np.zeros(300, TIME_END_DTYPE)
        rows["time"] = np.arange(300) * 5000
        rows["endtime"] = rows["time"] + 100
        rechunker = Rechunker(True, max_target_mb=100 * rows.itemsize / 1e6)
        ready = rechunker.receive(_chunk(rows, 0, 2_000_000))
        rest = rechunker.flush()
        assert ready and rest
        assert rest[0].data.base is None
        assert sum(len(c) for c in ready + rest) == 300
