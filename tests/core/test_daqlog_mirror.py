"""Warnings and errors mirrored into daq.log, from the loop and from worker threads."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
import structlog

from straxd.core.daqlog_mirror import MAX_QUEUED, DaqLogMirror
from straxd.core.db import Databases
from straxd.core.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


async def test_warnings_and_errors_reach_daq_log(dbs: Databases) -> None:
    mirror = DaqLogMirror("bootstrax_eb3")
    configure_logging("bootstrax", "eb3", stream=io.StringIO(), processors=[mirror])
    mirror.attach()
    drain = asyncio.create_task(mirror.drain(dbs))
    log = get_logger(run_id="000042")
    log.info("run_claimed", epoch=1)
    log.warning("live_data_kept", fragments=10, stored_rows=9)
    log.error("quiet", daq_log=False)
    await asyncio.to_thread(get_logger().error, "from_a_thread", path="/x")
    await mirror.flush(timeout_s=10)
    drain.cancel()
    documents = await dbs.log.find({}, {"_id": 0, "time": 0}).sort("priority").to_list()
    assert documents == [
        {
            "message": "live_data_kept: fragments=10 stored_rows=9",
            "user": "bootstrax_eb3",
            "priority": 2,
            "runid": 42,
        },
        {"message": 'from_a_thread: path="/x"', "user": "bootstrax_eb3", "priority": 3},
    ]


async def test_full_queue_drops_oldest(dbs: Databases) -> None:
    """Logging never blocks: beyond the bound the oldest messages are dropped and counted."""
    mirror = DaqLogMirror("bootstrax_eb3")
    configure_logging("bootstrax", "eb3", stream=io.StringIO(), processors=[mirror])
    mirror.attach()
    drain = asyncio.create_task(mirror.drain(dbs))
    for i in range(MAX_QUEUED + 5):
        get_logger().warning("burst", i=i)
    assert mirror.dropped == 5
    await mirror.flush(timeout_s=30)
    drain.cancel()
    first = await dbs.log.find_one({}, sort=[("time", 1), ("_id", 1)])
    assert first is not None and first["message"] == "burst: i=5"
