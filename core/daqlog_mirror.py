"""Warnings and errors of a daemon, mirrored into ``daq.log`` where operators look.

A structlog processor copies every event at warning level or above into a bounded queue; a task
of the daemon drains it into ``daq.log`` in redax's shape. Logging never waits for the database:
when the queue is full (a long outage) the oldest messages are dropped and counted, and the
journal keeps everything anyway. Events can opt out with ``daq_log=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

from pymongo.errors import PyMongoError
from structlog.typing import EventDict, WrappedLogger

from straxd.core.daqlog import PRIORITIES, log_to_daq
from straxd.core.db import Databases

MAX_QUEUED = 1000
_SKIP_FIELDS = {"event", "level", "timestamp", "service", "host", "run_id", "daq_log"}


def message_of(event_dict: EventDict) -> str:
    """``event: key=value ...`` for operators (values of the event's own fields only)."""
    fields = {k: v for k, v in event_dict.items() if k not in _SKIP_FIELDS and v is not None}
    detail = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
    return f"{event_dict.get('event')}: {detail}" if detail else str(event_dict.get("event"))


class DaqLogMirror:
    """The processor (``__call__``) and the drain task (``drain``) of one daemon."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[str, str, int | None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        wanted = event_dict.pop("daq_log", True)
        level = str(event_dict.get("level", method))
        if wanted and PRIORITIES.get(level, 3) >= PRIORITIES["warning"] and self._loop:
            run = str(event_dict.get("run_id", ""))
            item = (message_of(event_dict), level, int(run) if run.isdigit() else None)
            if threading.get_ident() == self._thread:
                self._put(item)
            else:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    self._loop.call_soon_threadsafe(self._put, item)
        return event_dict

    def _put(self, item: tuple[str, str, int | None]) -> None:
        assert self._queue is not None
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
        self._queue.put_nowait(item)

    def attach(self) -> None:
        """Start queueing events (call from the event loop that will drain them)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._queue = asyncio.Queue(MAX_QUEUED)

    async def drain(self, dbs: Databases) -> None:
        """Copy queued messages into ``daq.log`` until cancelled."""
        if self._queue is None:
            self.attach()
        assert self._queue is not None
        try:
            while True:
                message, level, run = await self._queue.get()
                try:
                    with contextlib.suppress(PyMongoError):
                        await log_to_daq(dbs, message, level=level, user=self.user, run_number=run)
                finally:
                    self._queue.task_done()
        finally:
            self._loop = None

    async def flush(self, timeout_s: float) -> None:
        """Wait until everything queued is written, or ``timeout_s`` passes."""
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)
