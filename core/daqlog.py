"""What operators see in the daq database: ``daq.log`` messages and heartbeats.

``daq.log`` keeps redax's shape ``{message, user, priority, runid}`` (plus ``time``) so the DAQ
website shows straxd's warnings next to redax's. Heartbeats go two ways: one upserted document per
(service, host) in the straxd-owned ``daq.straxd_status`` (the current state, hash of the active
config included), and insert-only history in ``daq.eb_monitor`` as the original scripts kept it,
with a ``service`` field added.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.db import Databases, utcnow
from straxd.core.lifecycle import wait_for_stop

# redax MongoLog priorities; anything else is logged as an error, as the original scripts did.
PRIORITIES = {"debug": 0, "info": 1, "warning": 2, "error": 3, "fatal": 4}


def priority_of(level: str) -> int:
    """redax's numeric priority for a level name."""
    return PRIORITIES.get(level, PRIORITIES["error"])


async def log_to_daq(
    dbs: Databases,
    message: str,
    *,
    level: str = "warning",
    user: str,
    run_number: int | None = None,
) -> None:
    """Insert one operator message into ``daq.log``."""
    document: dict[str, Any] = {
        "message": message,
        "user": user,
        "priority": priority_of(level),
        "time": utcnow(),
    }
    if run_number is not None:
        document["runid"] = int(run_number)
    await dbs.log.insert_one(document)


async def heartbeat(
    dbs: Databases,
    service: str,
    host: str,
    state: str,
    *,
    config_hash: str,
    fields: Mapping[str, Any] | None = None,
    history: bool = True,
) -> None:
    """Record that ``service`` on ``host`` is alive and in ``state``.

    ``history=False`` only updates the current status; callers add history about once a minute
    (as the original scripts did) so ``eb_monitor`` does not grow with every heartbeat.
    """
    now = utcnow()
    status: dict[str, Any] = {
        "service": service,
        "host": host,
        "pid": os.getpid(),
        "state": state,
        "time": now,
        "config_hash": config_hash,
        **(fields or {}),
    }
    await dbs.status.update_one({"service": service, "host": host}, {"$set": status}, upsert=True)
    if history:
        await dbs.eb_monitor.insert_one(dict(status))


async def beat_until(
    halt: asyncio.Event, beat: Callable[[], Awaitable[None]], interval_s: Callable[[], float],
    log: Any,
) -> None:  # fmt: skip
    """Call ``beat`` every ``interval_s()`` seconds until ``halt`` is set.

    A database error is logged and the next beat comes as usual: a service outlives an outage.
    """
    while not halt.is_set():
        try:
            await beat()
        except PyMongoError as err:
            log.warning("heartbeat_failed", error=str(err)[:200])
        await wait_for_stop(halt, interval_s())


async def current_status(dbs: Databases, service: str, host: str) -> dict[str, Any] | None:
    """The current status document of one service on one host."""
    return await dbs.status.find_one({"service": service, "host": host}, {"_id": 0})
