"""Back-pressure on a pipeline's source by the memory of large chunks still in flight.

Queues bound the number of chunks per edge, but one live_data chunk (~140 MB of raw_records at
25 MB/s) turns into records, hits and peaklets of similar size further down, and with the source
free to read ahead several such chunks are alive at once: peak memory then grows with the number
of chunks in flight, not with what one chunk needs. ``InflightBytes`` follows every large array
the pipeline publishes (by its base buffer, through a weak reference) and lets the source wait
until those of earlier chunks have been freed before it reads the next one.

The weak-reference callback that sees an array freed wakes the waiting source at once, whatever
thread drops the array. A large array can legitimately outlive its chunk (a saver holding data
back, an overlap window), so the wait also ends when the rest of the pipeline is idle: nothing
running in the pool and every queue empty. Then no more memory would be freed by waiting; that
condition has no event of its own and is checked every ``IDLE_CHECK_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable

import numpy as np

from straxd.core.chunk import Chunk

# Arrays below this size are not followed: peak-level data is small, and the point is the
# record-level chunks whose size scales with the DAQ chunk.
MIN_TRACKED_BYTES = 16 * 2**20
IDLE_CHECK_INTERVAL_S = 0.02
# The idle condition must hold on consecutive checks: a task woken by a queue may not have
# submitted its work to the pool yet when it is first observed.
IDLE_CHECKS = 3


def root_array(data: np.ndarray) -> np.ndarray:
    """The array owning the memory of ``data`` (itself when it owns it)."""
    root = data
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root


class InflightBytes:
    """Bytes of the large published arrays that are still referenced somewhere."""

    def __init__(self, min_tracked_bytes: int = MIN_TRACKED_BYTES) -> None:
        self.min_tracked_bytes = min_tracked_bytes
        self._lock = threading.Lock()
        self._live: dict[int, int] = {}  # id of a followed root array -> its bytes
        # (loop, event) of every waiter, set when an array is freed.
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def nbytes(self) -> int:
        """Bytes of followed arrays not yet freed."""
        with self._lock:
            return sum(self._live.values())

    def follow(self, chunk: Chunk) -> None:
        """Count the memory behind ``chunk`` until it is freed (once per buffer)."""
        root = root_array(chunk.data)
        if root.nbytes < self.min_tracked_bytes:
            return
        key = id(root)
        with self._lock:
            if key in self._live:
                return
            self._live[key] = root.nbytes
        # Called from whichever thread drops the last reference.
        weakref.finalize(root, self._forget, key)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._live.pop(key, None)
            waiters = list(self._waiters)
        for loop, freed in waiters:
            # The loop may be gone when an array outlives its pipeline; nobody waits then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(freed.set)

    async def wait_below(self, limit_bytes: int, idle: Callable[[], bool]) -> None:
        """Return once at most ``limit_bytes`` are in flight, or ``idle()`` holds for a while."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        freed = waiter[1]
        with self._lock:
            self._waiters.add(waiter)
        try:
            idle_checks = 0
            while True:
                # Cleared before the check: a free after it sets the event again.
                freed.clear()
                if self.nbytes <= limit_bytes:
                    return
                idle_checks = idle_checks + 1 if idle() else 0
                if idle_checks >= IDLE_CHECKS:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), IDLE_CHECK_INTERVAL_S)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
