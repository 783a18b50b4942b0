"""Before bootstrax processes a run: is the run document usable, where is its live_data, and
what of this host's earlier output must go first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from straxd.core.db import Databases
from straxd.core.errors import StraxdError
from straxd.core.finish import remove_tree
from straxd.core.logging import get_logger
from straxd.core.rundoc import RunDoc, move_to_deleted


class RunFailed(StraxdError):
    """The run cannot be processed (now); ``retry=False`` leaves it to a person."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def live_location(run: RunDoc) -> Path:
    """The run's live_data folder, after checking what the child will need.

    The live entry may be anywhere in ``data[]`` (the original only looked at the first one).
    """
    if run.daq_config is None:
        raise RunFailed("run document has no daq_config", retry=False)
    if not run.daq_config.processing_threads:
        raise RunFailed("daq_config has no processing_threads", retry=False)
    if run.start is None:
        raise RunFailed("run document has no start", retry=False)
    if run.end is not None and run.end < run.start:
        raise RunFailed(
            f"run ends ({run.end.isoformat()}) before it starts ({run.start.isoformat()})",
            retry=False,
        )
    live = [e for e in run.data if e.type == "live"]
    if not live or not live[0].location:
        raise RunFailed("run document has no live data entry")
    location = Path(live[0].location) / run.run_id
    if not location.is_dir():
        raise RunFailed(f"No live data at claimed location {location}")
    return location


async def clean_host_data(
    dbs: Databases, run: RunDoc, host: str, reason: str, fence: dict[str, Any] | None = None
) -> list[str]:
    """Remove this host's registered output of the run, except a raw copy that may be the last.

    raw_records* stay when the live_data is already gone (as the original's ``clean_run``):
    they may be the only copy of the run. Each removal is recorded in ``deleted_data``.
    """
    live_gone = not any(e.type == "live" for e in run.data)
    removed = []
    for entry in run.data:
        if entry.host != host or entry.type == "live":
            continue
        if live_gone and entry.type.startswith("raw_records"):
            get_logger().warning("raw_copy_kept", data_type=entry.type, location=entry.location)
            continue
        if entry.location:
            for path in (Path(entry.location), Path(entry.location + "_temp")):
                await asyncio.to_thread(remove_tree, path)
        await move_to_deleted(dbs.runs, run.number, entry.type, host, host, reason, fence)
        removed.append(entry.type)
    return removed
