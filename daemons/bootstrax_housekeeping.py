"""bootstrax's housekeeping: the database cleanup sweep, host roles, and the disk-space wait.

The sweep is the original's ``cleanup_db`` on leases: hosts silent for ``presumed_dead_s`` are
marked dead, runs ``done`` without ``end`` or without processed data are failed, and runs tagged
``abandon`` are abandoned (a done one only within ``abandon_window_s`` of its start). Runs a
crashed host held need no sweep: their leases expire and any peer takes them over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from straxd.core.bootstrax_config import BootstraxConfig
from straxd.core.db import Databases, utcnow
from straxd.core.logging import get_logger
from straxd.core.rundoc import parse_run_doc
from straxd.daemons.bootstrax_manual import revoke
from straxd.daemons.bootstrax_prepare import clean_host_data

HOLD_TAG = "hold-processing"
DEAD_STATE = "dead_bootstrax"


async def may_take_new_runs(dbs: Databases, config: BootstraxConfig, host: str) -> bool:
    """By role: ``process`` always, ``helper`` only with a long queue, ``never`` not at all."""
    role = config.role_of(host)
    if role != "helper":
        return role == "process"
    waiting = await dbs.runs.count_documents(
        {"bootstrax.state": None, "tags.name": {"$ne": HOLD_TAG}}
    )
    return waiting > config.helper_min_queue


async def mark_dead_hosts(dbs: Databases, config: BootstraxConfig) -> list[str]:
    """Hosts whose bootstrax status is older than ``presumed_dead_s``: state dead_bootstrax."""
    cutoff = utcnow() - dt.timedelta(seconds=config.presumed_dead_s)
    query = {
        "service": "bootstrax",
        "time": {"$lt": cutoff},
        "state": {"$nin": [DEAD_STATE, "stopped"]},
    }
    hosts = [d["host"] async for d in dbs.status.find(query, {"host": 1})]
    if hosts:
        await dbs.status.update_many(query, {"$set": {"state": DEAD_STATE}})
        get_logger().warning("hosts_presumed_dead", hosts=hosts, silent_s=config.presumed_dead_s)
    return hosts


async def _fail_matching(dbs: Databases, host: str, query: dict[str, Any], reason: str) -> int:
    failed = 0
    while (document := await dbs.runs.find_one(query, {"number": 1})) is not None:
        await revoke(
            dbs, document["number"], host,
            {"state": "failed", "phase": "failed", "reason": f"{host}:\n{reason}",
             "next_retry": utcnow()},
            inc={"n_failures": 1},
        )  # fmt: skip
        get_logger(run_id=f"{document['number']:06d}").warning(
            "run_failed_by_cleanup", reason=reason
        )
        failed += 1
    return failed


async def sweep_runs(dbs: Databases, config: BootstraxConfig, host: str) -> dict[str, int]:
    """Fail inconsistent done runs and abandon tagged ones; counts per kind."""
    counts = {
        "done_without_end": await _fail_matching(
            dbs, host, {"bootstrax.state": "done", "end": None}, "done but run did not yet end"
        ),
        "done_without_data": await _fail_matching(
            dbs,
            host,
            {
                "bootstrax.state": "done",
                "data": {"$not": {"$elemMatch": {"type": {"$ne": "live"}}}},
            },
            "done but no processed data registered",
        ),
    }
    recent = utcnow() - dt.timedelta(seconds=config.abandon_window_s)
    abandon = {
        "tags.name": "abandon",
        "$or": [
            {"bootstrax.state": "done", "start": {"$gt": recent}},
            {"bootstrax.state": "failed"},
        ],
    }
    counts["abandoned"] = 0
    while (document := await dbs.runs.find_one(abandon)) is not None:
        revoked = await revoke(
            dbs, document["number"], host, {"state": "abandoned", "phase": "abandoned"}
        )
        await clean_host_data(dbs, parse_run_doc(revoked), host, "abandoned")
        get_logger(run_id=f"{document['number']:06d}").warning("run_abandoned", tag="abandon")
        counts["abandoned"] += 1
    return counts


@dataclass(frozen=True)
class DiskState:
    """How full the output disk is and whether bootstrax may write to it."""

    used_percent: float
    free_gb: float
    ok: bool


def disk_state(path: Path, config: BootstraxConfig) -> DiskState:
    """Usage of the disk holding ``path`` against the configured limits."""
    path.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(path)
    used_percent = 100.0 * usage.used / max(usage.total, 1)
    free_gb = usage.free / 1e9
    ok = used_percent <= config.disk_max_used_percent and (
        config.disk_min_free_gb is None or free_gb >= config.disk_min_free_gb
    )
    return DiskState(round(used_percent, 2), round(free_gb, 2), ok)


async def check_disk(path: Path, config: BootstraxConfig) -> DiskState:
    """``disk_state`` in a worker thread."""
    return await asyncio.to_thread(disk_state, path, config)
