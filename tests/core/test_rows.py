"""Row ordering and selection (rows, row_order) against strax 2.2.3 and numpy."""

from __future__ import annotations

import numpy as np
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.rows import sort_by_time, sort_by_time_in_place, take_rows, take_rows_in_place
from tests.strategies import TIME_DT_DTYPE, TIME_END_DTYPE, interval_arrays

DTYPES = st.sampled_from([TIME_DT_DTYPE, TIME_END_DTYPE])


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
        from straxd.core.rows import stable_time_order

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
