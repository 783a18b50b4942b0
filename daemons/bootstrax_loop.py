"""bootstrax's supervision: the claim loop, the heartbeat, the config watcher, the runs watcher.

They run as tasks of one TaskGroup. The heartbeat renews the lease of the run in hand whatever
that run is doing (a database outage only delays it); a renewal that finds the lease taken sets
``lease_lost`` and the run's work stops without writing. Claims wake on the runs collection's
change stream and fall back to polling every ``poll_interval_s`` where there is none.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.bootstrax_config import LEGACY_KEYS, BootstraxConfig
from straxd.core.config_docs import ConfigSource, config_diff, config_hash
from straxd.core.daqlog_mirror import DaqLogMirror
from straxd.core.db import ensure_indexes, open_databases, utcnow
from straxd.core.errors import StraxdError
from straxd.core.finish import remove_tree, stale_work_dirs
from straxd.core.leases import Lease, claim_first, fenced_update
from straxd.core.lifecycle import EXIT_FAILED, EXIT_OK, EXIT_USAGE, wait_for_stop
from straxd.core.logging import get_logger
from straxd.core.settings import Settings
from straxd.daemons.bootstrax_background import BackgroundTasks
from straxd.daemons.bootstrax_housekeeping import (
    DEAD_STATE,
    check_disk,
    mark_dead_hosts,
    may_take_new_runs,
    sweep_runs,
)
from straxd.daemons.bootstrax_manual import (
    Refused,
    claim_for_process,
    manual_abandon,
    manual_fail,
)
from straxd.daemons.bootstrax_run import RunWork, fail_run
from straxd.daemons.bootstrax_types import Outcome, RunOptions

_HOLD = {"tags.name": {"$ne": "hold-processing"}}
_UNDYING_WAIT_S = 60.0


class Bootstrax(BackgroundTasks):
    """One bootstrax process."""

    def __init__(
        self, settings: Settings, args: argparse.Namespace, mirror: DaqLogMirror | None = None
    ) -> None:
        self.settings, self.args, self.mirror = settings, args, mirror
        self.host = settings.host
        self.dbs = open_databases(
            settings.runs_uri(), settings.daq_uri(), settings.runs_db, settings.daq_db
        )
        self.config = BootstraxConfig()
        self.source = ConfigSource(
            self.dbs.config_collection("bootstrax"), "bootstrax", BootstraxConfig, LEGACY_KEYS
        )
        self.log = get_logger()
        self.state = "starting"
        self.work: RunWork | None = None
        self.wake = asyncio.Event()
        self.halt = asyncio.Event()  # ends the background tasks once the work loop is done
        self.lease_lost = asyncio.Event()
        self.failed_runs = 0
        self.next_cleanup = 0.0
        self.disk: dict[str, float] = {}
        self.disk_full_logged = False
        self.options = RunOptions(
            host=self.host,
            pre_dir=settings.pre_dir if args.production else args.test_output,
            state_dir=settings.state_dir,
            targets=tuple(args.targets),
            post_process=tuple(args.post_process),
            workers=args.workers,
            max_messages=args.max_messages,
            fix_target=args.fix_target,
            fix_resources=args.fix_resources,
            infer_mode=args.infer_mode,
            production=args.production,
            delete_live=args.delete_live and args.production,
            ignore_checks=args.ignore_checks,
            live_root=settings.live_dir,
        )

    async def close(self) -> None:
        """Close the database clients."""
        await self.dbs.close()

    # ------------------------------------------------------------------ entry
    async def run(self, stop: asyncio.Event) -> int:
        """Dispatch: a manual action, or the loop with its background tasks."""
        try:
            await self._load_config()
        except StraxdError as err:
            self.log.error("config_invalid", error=str(err))
            return EXIT_USAGE
        if self.args.fail is not None or self.args.abandon is not None:
            return await self._manual()
        if self.mirror is not None:
            self.mirror.attach()
        async with asyncio.TaskGroup() as group:
            background = (
                [
                    group.create_task(self._heartbeat_loop()),
                    group.create_task(self._config_loop()),
                    group.create_task(self._runs_watcher()),
                    *([group.create_task(self.mirror.drain(self.dbs))] if self.mirror else []),
                ]
                if self.args.production
                else []
            )
            try:
                return await self._main(stop)
            finally:
                self.halt.set()
                if self.args.production:
                    await self._final_heartbeat()
                await self._flush_mirror()
                for task in background:
                    task.cancel()

    async def _main(self, stop: asyncio.Event) -> int:
        while True:
            try:
                if self.args.process is not None:
                    return await self._process_one(stop)
                return await self._loop(stop)
            except Exception as err:
                if not self.args.undying:
                    raise
                self.log.error("loop_crashed", error=str(err), restart_in_s=_UNDYING_WAIT_S)
                if await wait_for_stop(stop, _UNDYING_WAIT_S):
                    return EXIT_OK

    async def _load_config(self) -> None:
        if not self.args.production:
            return
        await ensure_indexes(self.dbs)
        loaded = await self.source.load()
        self._apply(loaded.config, loaded.missing, loaded.ignored_keys)

    def _apply(self, config: BootstraxConfig, missing: bool, ignored: tuple[str, ...]) -> None:
        diff = config_diff(self.config, config)
        self.config = config
        if missing:
            self.log.info("config_missing_using_defaults", collection=self.source.name)
        if ignored:
            self.log.warning("config_keys_ignored", keys=list(ignored))
        self.log.info("config_applied", hash=config_hash(config), diff=diff or None)
        self.wake.set()  # waits (for work, for disk space) look again under the new config

    # ------------------------------------------------------------------ the loop
    async def _loop(self, stop: asyncio.Event) -> int:
        seen: set[int] = set()
        # The lock makes this the only bootstrax of this host, so no work folder of this host
        # belongs to a running child: they are leftovers of a crash.
        for folder in await asyncio.to_thread(stale_work_dirs, self.options.pre_dir, self.host):
            self.log.info("stale_work_removed", folder=str(folder))
            await asyncio.to_thread(remove_tree, folder)
        disk_wait_started: float | None = None
        while not stop.is_set():
            if self.args.production and not await self._disk_ok():
                disk_wait_started = disk_wait_started or time.monotonic()
                if time.monotonic() - disk_wait_started > self.config.disk_max_wait_s:
                    self.state = DEAD_STATE
                    self.log.error("disk_full_gave_up", waited_s=self.config.disk_max_wait_s)
                    return EXIT_FAILED
                await self._wait_for_work(stop, self.config.disk_check_interval_s)
                continue
            disk_wait_started = None
            self.state = "busy"
            try:
                got = await self._claim_next(seen)
            except PyMongoError as err:
                self.log.warning("database_unavailable", error=str(err)[:200])
                got = None
                if await wait_for_stop(stop, self.config.poll_interval_s):
                    break
                continue
            if got is not None:
                await self._work_on(*got, stop)
                continue
            if self.args.production:
                await self._housekeeping()
            if self.args.once or not self.args.production:
                break
            self.state = "idle"
            await self._wait_for_work(stop, self.config.poll_interval_s)
        return EXIT_FAILED if self.failed_runs else EXIT_OK

    async def _disk_ok(self) -> bool:
        """Whether the output disk has room; says so once when it has not."""
        disk = await check_disk(self.options.pre_dir, self.config)
        self.disk = {"disk_used_percent": disk.used_percent, "disk_free_gb": disk.free_gb}
        if disk.ok:
            self.disk_full_logged = False
            return True
        self.state = "disk full"
        if not self.disk_full_logged:
            self.log.warning(
                "disk_full_waiting",
                path=str(self.options.pre_dir),
                limit_percent=self.config.disk_max_used_percent,
                min_free_gb=self.config.disk_min_free_gb,
                **self.disk,
            )
            self.disk_full_logged = True
        return False

    async def _housekeeping(self) -> None:
        """The cleanup sweep, at most every ``cleanup_interval_s``."""
        if time.monotonic() < self.next_cleanup:
            return
        self.next_cleanup = time.monotonic() + self.config.cleanup_interval_s
        try:
            await mark_dead_hosts(self.dbs, self.config)
            counts = await sweep_runs(self.dbs, self.config, self.host)
        except PyMongoError as err:
            self.log.warning("cleanup_failed", error=str(err)[:200])
            return
        if any(counts.values()):
            self.log.info("cleanup_done", **counts)

    async def _wait_for_work(self, stop: asyncio.Event, timeout_s: float) -> None:
        """Until a change of the runs (or the config), a stop, or ``timeout_s``."""
        self.wake.clear()
        waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _claim_next(self, seen: set[int]) -> tuple[dict[str, Any], Lease | None] | None:
        """New runs first, then failed runs due for a retry, then runs whose lease expired."""
        sort = [("start", -1 if self.config.claim_order == "newest_first" else 1)]
        if not self.args.production:  # test mode: walk the runs without claiming
            walk: dict[str, Any] = {"bootstrax.state": None, "number": {"$nin": sorted(seen)}}
            document = await self.dbs.runs.find_one(walk, sort=sort)
            if document is not None:
                seen.add(int(document["number"]))
            return None if document is None else (document, None)
        if not await may_take_new_runs(self.dbs, self.config, self.host):
            return None
        retry: dict[str, Any] = {
            "bootstrax.state": "failed",
            "bootstrax.n_failures": {"$lt": self.config.max_failures},
            "bootstrax.next_retry": {"$lt": utcnow()},
        }
        stale: dict[str, Any] = {"bootstrax.state": {"$in": ["considering", "busy"]}}
        got = await claim_first(
            self.dbs.runs,
            [
                ("new", {"bootstrax.state": None, **_HOLD}),
                ("retry", {**retry, **_HOLD}),
                ("takeover", {**stale, **_HOLD}),
            ],
            self.host,
            lease_s=self.config.lease_s,
            sort=sort,
            extra={"phase": "claimed"},
        )
        if got is None:
            return None
        kind, document, lease = got
        self.log.info("run_claimed", run_id=f"{lease.number:06d}", kind=kind, epoch=lease.epoch)
        if kind == "takeover" and not await self._count_takeover(document, lease):
            return None
        return document, lease

    async def _count_takeover(self, document: dict[str, Any], lease: Lease) -> bool:
        """Count a takeover; False (and the run failed) when it keeps happening."""
        await fenced_update(self.dbs.runs, lease, {"$inc": {"bootstrax.n_takeovers": 1}})
        n = int((document.get("bootstrax") or {}).get("n_takeovers") or 0) + 1
        self.log.warning("run_taken_over", run_id=f"{lease.number:06d}", n_takeovers=n)
        if n <= self.config.max_takeovers:
            return True
        reason = (
            f"{n} hosts stopped renewing their lease while processing; perhaps it "
            "crashes bootstrax on this run"
        )
        await fail_run(self.dbs, lease, self.config, reason)
        return False

    async def _work_on(
        self, document: dict[str, Any], lease: Lease | None, stop: asyncio.Event
    ) -> Outcome:
        self.lease_lost.clear()
        self.work = RunWork(
            self.dbs, document, lease, self.options, self.config, stop, self.lease_lost
        )
        started = time.monotonic()
        try:
            outcome = await self.work.execute()
        finally:
            self.work = None
        if outcome is Outcome.FAILED:
            self.failed_runs += 1
        self.log.info(
            "run_ended",
            run_id=f"{int(document['number']):06d}",
            outcome=outcome.value,
            wall_s=round(time.monotonic() - started, 1),
        )
        return outcome

    async def _process_one(self, stop: asyncio.Event) -> int:
        number = int(self.args.process)
        if not self.args.production:
            document = await self.dbs.runs.find_one({"number": number})
            if document is None:
                self.log.error("run_not_found", run=number)
                return EXIT_USAGE
            outcome = await self._work_on(document, None, stop)
        else:
            try:
                document, lease = await claim_for_process(
                    self.dbs, number, self.host, self.config, self.args.force
                )
            except (Refused, StraxdError) as err:
                self.log.error("process_refused", run=number, error=str(err))
                return EXIT_USAGE
            outcome = await self._work_on(document, lease, stop)
        return EXIT_OK if outcome is Outcome.DONE else EXIT_FAILED

    async def _manual(self) -> int:
        action, (number, reason) = (
            ("fail", self.args.fail)
            if self.args.fail is not None
            else ("abandon", self.args.abandon)
        )
        if not self.args.production:
            self.log.warning("test_mode_no_change", action=action, run=number)
            return EXIT_OK
        act = manual_fail if action == "fail" else manual_abandon
        try:
            await act(self.dbs, number, self.host, self.config, reason)
        except StraxdError as err:
            self.log.error("manual_action_failed", action=action, run=number, error=str(err))
            return EXIT_USAGE
        self.log.info("manual_action_done", action=action, run=number, reason=reason)
        return EXIT_OK
