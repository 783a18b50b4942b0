"""Following large in-flight arrays and holding a source back until they are freed."""

from __future__ import annotations

import asyncio
import gc

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.inflight import InflightBytes, root_array
from tests.strategies import TIME_END_DTYPE


def _chunk(n_rows: int) -> Chunk:
    data = np.zeros(n_rows, TIME_END_DTYPE)
    data["time"] = np.arange(n_rows)
    data["endtime"] = data["time"] + 1
    return Chunk("things", "things", "000001", 0, n_rows + 1, data)


class TestInflightBytes:
    def test_root_of_a_view_is_its_base(self) -> None:
        """Views and views of views lead to the array that owns the memory."""
        owner = np.zeros(10, TIME_END_DTYPE)
        assert root_array(owner[2:][1:]) is owner
        assert root_array(owner) is owner

    def test_counts_large_arrays_until_freed(self) -> None:
        """A large chunk counts once (also through views) and stops counting when freed."""
        inflight = InflightBytes(min_tracked_bytes=1000)
        chunk = _chunk(1000)
        inflight.follow(chunk)
        inflight.follow(chunk.with_data(chunk.data[10:]))
        assert inflight.nbytes == chunk.nbytes
        del chunk
        gc.collect()
        assert inflight.nbytes == 0

    def test_small_arrays_are_not_followed(self) -> None:
        """Arrays below the threshold are ignored."""
        inflight = InflightBytes(min_tracked_bytes=10**6)
        inflight.follow(_chunk(10))
        assert inflight.nbytes == 0

    async def test_wait_ends_when_freed(self) -> None:
        """wait_below returns once the followed array is dropped."""
        inflight = InflightBytes(min_tracked_bytes=1000)
        held = [_chunk(1000)]
        inflight.follow(held[0])
        waiter = asyncio.ensure_future(inflight.wait_below(0, lambda: False))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        held.clear()
        await asyncio.wait_for(waiter, 5)

    async def test_free_in_another_thread_wakes_the_waiter(self) -> None:
        """An array dropped by a pool thread (a saver's last reference) ends the wait."""
        inflight = InflightBytes(min_tracked_bytes=1000)
        held = [_chunk(1000)]
        inflight.follow(held[0])
        waiter = asyncio.ensure_future(inflight.wait_below(0, lambda: False))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(held.clear)
        await asyncio.wait_for(waiter, 5)
        assert inflight.nbytes == 0

    async def test_wait_ends_when_idle(self) -> None:
        """An array nobody will free (held back by a saver) does not block the source forever."""
        inflight = InflightBytes(min_tracked_bytes=1000)
        held = _chunk(1000)
        inflight.follow(held)
        await asyncio.wait_for(inflight.wait_below(0, lambda: True), 5)
        assert inflight.nbytes == held.nbytes
