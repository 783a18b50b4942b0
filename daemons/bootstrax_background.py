"""bootstrax's background tasks: heartbeat and lease renewal, config watcher, runs watcher.

They run beside the claim loop in its TaskGroup. The heartbeat renews the lease of the run in
hand whatever that run is doing (a database outage only delays it); a renewal that finds the
lease taken sets ``lease_lost`` and the run's work stops without writing. Claims wake on the
runs collection's change stream and fall back to polling where there is none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.bootstrax_config import BootstraxConfig
from straxd.core.config_docs import ConfigSource, config_hash, watch_config
from straxd.core.daqlog import beat_until, heartbeat
from straxd.core.daqlog_mirror import DaqLogMirror
from straxd.core.db import Databases
from straxd.core.leases import renew
from straxd.core.lifecycle import wait_for_stop
from straxd.core.versions import straxd_version
from straxd.daemons.bootstrax_housekeeping import DEAD_STATE
from straxd.daemons.bootstrax_run import RunWork
from straxd.daemons.bootstrax_types import RunOptions


class BackgroundTasks:
    """The background half of Bootstrax (a mixin: the state lives in Bootstrax)."""

    dbs: Databases
    args: argparse.Namespace
    host: str
    state: str
    config: BootstraxConfig
    source: ConfigSource[BootstraxConfig]
    options: RunOptions
    work: RunWork | None
    mirror: DaqLogMirror | None
    halt: asyncio.Event
    wake: asyncio.Event
    lease_lost: asyncio.Event
    disk: dict[str, float]
    log: Any
    last_history = 0.0  # monotonic time of the last heartbeat kept in eb_monitor

    def _apply(self, config: BootstraxConfig, missing: bool, ignored: tuple[str, ...]) -> None:
        raise NotImplementedError

    async def _heartbeat_loop(self) -> None:
        await beat_until(self.halt, self._beat, lambda: self.config.heartbeat_interval_s, self.log)

    async def _beat(self) -> None:
        """Renew the lease of the run in hand, then the status (history once in a while)."""
        work = self.work
        if await self._renew(work) is False:
            self.log.warning("lease_taken", run_id=work.run_id if work else None)
            self.lease_lost.set()
        history = time.monotonic() - self.last_history >= self.config.history_interval_s
        await self._send_heartbeat(self._status_fields(), history)
        if history:
            self.last_history = time.monotonic()

    async def _flush_mirror(self) -> None:
        """Give the daq.log mirror a moment to write what is queued (never more)."""
        if self.mirror is not None:
            await self.mirror.flush(timeout_s=5.0)

    async def _final_heartbeat(self) -> None:
        """Say "stopped" on the way out, so the status does not show a stale "busy"."""
        if self.state != DEAD_STATE:  # a host that gave up stays marked dead
            self.state = "stopped"
        with contextlib.suppress(PyMongoError):
            await self._send_heartbeat({**self._status_fields(), "run_id": None, "phase": None})

    async def _send_heartbeat(self, fields: dict[str, Any], history: bool = True) -> None:
        await heartbeat(
            self.dbs,
            "bootstrax",
            self.host,
            self.state,
            config_hash=config_hash(self.config),
            fields=fields,
            history=history,
        )

    async def _renew(self, work: RunWork | None) -> bool | None:
        """Renew the lease of the run in hand; None when there is nothing to renew."""
        if work is None or work.lease is None or work.progress.phase in ("done", "failed"):
            return None
        return await renew(self.dbs.runs, work.lease, self.config.lease_s)

    def _status_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "targets": list(self.options.targets),
            "max_cores": self.options.workers,
            "production_mode": self.args.production,
            "undying": self.args.undying,
            "role": self.config.role_of(self.host),
            **self.disk,
            "version": straxd_version(),
        }
        if self.work is not None:
            fields.update(self.work.progress.as_fields())
        else:
            fields.update(run_id=None, phase=None)
        return fields

    async def _config_loop(self) -> None:
        async for event in watch_config(
            self.source, self.halt, poll_interval_s=self.config.poll_interval_s
        ):
            if event.error is not None:
                self.log.error(
                    "config_rejected", error=str(event.error), kept=config_hash(self.config)
                )
            elif event.loaded is not None and event.loaded.config != self.config:
                self._apply(event.loaded.config, event.loaded.missing, event.loaded.ignored_keys)

    async def _runs_watcher(self) -> None:
        """Wake the claim loop on any change of the runs collection (polling covers the rest)."""
        while not self.halt.is_set():
            try:
                async with await self.dbs.runs.watch(
                    [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}}]
                ) as stream:
                    self.log.info("runs_watch_open")
                    async for _ in stream:
                        self.wake.set()
            except PyMongoError as err:
                self.log.info(
                    "runs_watch_unavailable",
                    error=str(err)[:200],
                    poll_s=self.config.poll_interval_s,
                )
            with contextlib.suppress(asyncio.CancelledError):
                await wait_for_stop(self.halt, self.config.poll_interval_s)
