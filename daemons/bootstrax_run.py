"""One claimed run in bootstrax: prepare, process in a child, check, move, register, finish.

The unit of work of bootstrax. Domain errors of the run are caught at one place (``execute``)
and turn into a failed run with a precise reason; a lost lease stops the work without a single
write about the run; a shutdown hands the run back. Every write about the run is fenced by the
lease, and the steps of the finish are ordered so a crash at any point (see the fault points)
leaves the old valid state or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.bootstrax_config import BootstraxConfig
from straxd.core.child import ChildProcess, newest_mtime
from straxd.core.db import Databases, utcnow
from straxd.core.errors import LeaseLost, StraxdError
from straxd.core.finish import (
    WORK_DIRNAME,
    CheckFailed,
    Output,
    check_outputs,
    collect_outputs,
    remove_tree,
    work_dir,
)
from straxd.core.leases import Lease, fenced_update, release
from straxd.core.lifecycle import wait_for_stop
from straxd.core.logging import get_logger
from straxd.core.memory import with_malloc_tunables
from straxd.core.online_store import remove_run
from straxd.core.rundoc import RunDoc, parse_run_doc, write_run_doc
from straxd.daemons.bootstrax_finish import FinishSteps
from straxd.daemons.bootstrax_plan import RunPlan, plan_run
from straxd.daemons.bootstrax_prepare import RunFailed, clean_host_data, live_location
from straxd.daemons.bootstrax_types import Outcome, Progress, RunOptions

_END_WAIT_S = 120.0  # the dispatcher sets ``end`` shortly after the readers finish


class RunWork(FinishSteps):
    """Everything bootstrax does with one claimed run."""

    def __init__(
        self,
        dbs: Databases,
        document: dict[str, Any],
        lease: Lease | None,
        options: RunOptions,
        config: BootstraxConfig,
        stop: asyncio.Event,
        lease_lost: asyncio.Event,
    ) -> None:
        self.dbs, self.raw_document, self.lease = dbs, document, lease
        self.options, self.config = options, config
        self.stop, self.lease_lost = stop, lease_lost
        self.number = int(document["number"])
        self.run_id = f"{self.number:06d}"
        self.epoch = lease.epoch if lease else 0
        self.work = work_dir(options.pre_dir, self.run_id, options.host, self.epoch)
        self.progress = Progress(run_id=self.run_id, phase="preparing")
        self.log = get_logger(run_id=self.run_id, epoch=self.epoch)
        self.child: ChildProcess | None = None
        self.plan: RunPlan | None = None
        self.started = time.monotonic()

    # ------------------------------------------------------------------ entry point
    async def execute(self) -> Outcome:
        """Process the run to the end; the one boundary where its domain errors are caught."""
        try:
            return await self._execute()
        except LeaseLost as err:
            self.log.warning("lease_lost", error=str(err))
            await self._discard()
            return Outcome.LOST
        except RunFailed as err:
            return await self._fail(err.reason, retry=err.retry)
        except StraxdError as err:
            return await self._fail(f"{type(err).__name__}: {err}", detail=traceback.format_exc())
        except PyMongoError as err:
            # The database stayed away too long to finish cleanly: drop this attempt; the lease
            # runs out and the run is taken again (by any host).
            self.log.error("database_lost_during_run", error=str(err)[:200])
            await self._discard()
            return Outcome.LOST
        finally:
            if self.child is not None and self.child.running():
                await self.child.stop(self.config.kill_grace_s)

    async def _execute(self) -> Outcome:
        run = parse_run_doc(self.raw_document)
        await self._phase("preparing")
        live_dir = live_location(run)
        await self._prepare(run)
        self.plan = await plan_run(self.dbs, run, self.options, self.config, self.stop)
        self.progress.fields.update(self.plan.as_fields())
        code = await self._process(run, live_dir)
        if code is None:
            return await self._interrupted()
        if code != 0:
            text = self.child.failure_text() if self.child else ""
            raise RunFailed(f"straxer exited with code {code}.\n{text}")
        run = await self._await_end()
        outputs = await self._check(run)
        return await self._finish(run, outputs, live_dir)

    # ------------------------------------------------------------------ steps
    async def _phase(self, phase: str, **fields: Any) -> None:
        self.progress.phase = phase
        self.log.info("run_phase", phase=phase, state=fields.get("state"))
        if self.lease is not None:
            state = {f"bootstrax.{k}": v for k, v in fields.items()}
            await fenced_update(
                self.dbs.runs, self.lease, {"$set": {"bootstrax.phase": phase, **state}}
            )

    async def _prepare(self, run: RunDoc) -> None:
        """Remove what earlier attempts of this host left: work folders, data, monitor docs."""
        stale = self.options.pre_dir / WORK_DIRNAME
        if stale.is_dir():
            for folder in stale.glob(f"{self.run_id}.{self.options.host}.e*"):
                await asyncio.to_thread(remove_tree, folder)
        if self.lease is None:
            return
        await clean_host_data(self.dbs, run, self.options.host, "reprocessing", self.lease.fence())
        await remove_run(self.dbs.online_monitor, self.number)

    async def _process(self, run: RunDoc, live_dir: Path) -> int | None:
        """Run the child; its exit code, or None when bootstrax is shutting down."""
        self.work.mkdir(parents=True, exist_ok=True)
        snapshot = self.work / "run-document.json"
        await asyncio.to_thread(write_run_doc, snapshot, self.raw_document)
        self.child = ChildProcess(
            self._child_argv(snapshot),
            self.options.state_dir
            / "runs"
            / f"{self.run_id}-{self.options.host}-e{self.epoch}.log",
            env=self._child_env(live_dir),
            on_event=self._on_child_event,
        )
        await self.child.start()
        self.progress.child_pid = self.child.pid
        await self._phase("processing", state="busy", started_processing=utcnow())
        return await self._supervise(run)

    def _child_argv(self, snapshot: Path) -> list[str]:
        assert self.plan is not None
        resources = self.plan.resources
        return [
            sys.executable,
            *("-m", "straxd.daemons.straxer", self.run_id),
            *("--target", *self.plan.targets),
            *("--output", str(self.work)),
            *("--workers", str(resources.cores)),
            *("--max_messages", str(resources.max_messages)),
            *("--records_compressor", resources.records_compressor),
            *("--timeout", str(resources.timeout_s)),
            *("--run-doc", str(snapshot)),
            "--supervised",
        ]

    def _child_env(self, live_dir: Path) -> dict[str, str]:
        env = with_malloc_tunables({k: v for k, v in os.environ.items() if k != "STRAXD_FAULT_AT"})
        env["STRAXD_LIVE_DIR"] = str(live_dir.parent)
        return env

    def _on_child_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "progress":
            self.progress.fraction = event.get("fraction")
            self.progress.raw_mb = float(event.get("raw_mb") or 0.0)

    async def _supervise(self, run: RunDoc) -> int | None:
        """Wait for the child, killing it on a timeout, a lost lease or a shutdown."""
        assert self.child is not None
        exited = asyncio.ensure_future(self.child.wait())
        try:
            while not exited.done():
                waiters = [exited, _event_task(self.stop), _event_task(self.lease_lost)]
                await asyncio.wait(
                    waiters, timeout=self._check_interval_s(), return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waiters[1:]:
                    waiter.cancel()
                if exited.done():
                    break
                if self.lease_lost.is_set():
                    raise LeaseLost(f"run {self.number}: the lease could not be renewed")
                if self.stop.is_set():
                    await self.child.stop(self.config.kill_grace_s)
                    return None
                if reason := await self._timed_out(run):
                    await self.child.stop(self.config.kill_grace_s)
                    raise RunFailed(reason)
            return exited.result()
        finally:
            if not exited.done():
                exited.cancel()

    def _check_interval_s(self) -> float:
        return min(10.0, self.config.max_no_write_time_s / 3, self.config.max_processing_time_s / 3)

    async def _timed_out(self, run: RunDoc) -> str | None:
        """The original's three supervision timeouts; the reason, or None."""
        cfg, elapsed_s = self.config, time.monotonic() - self.started
        if elapsed_s > cfg.max_processing_time_s:
            return f"Processing took longer than {cfg.max_processing_time_s:.0f} s"
        try:
            current = await self.dbs.runs.find_one({"number": self.number}, {"end": 1})
        except PyMongoError:
            current = None  # an outage must not kill a healthy child; checked again next time
        end = (current or {}).get("end")
        after_end = cfg.max_processing_time_after_end_s
        if (
            end is not None
            and elapsed_s > after_end
            and (utcnow() - end).total_seconds() > after_end
        ):
            return f"After the run ended, processing did not succeed in {after_end:.0f} s"
        if elapsed_s > cfg.max_no_write_time_s:
            newest = await asyncio.to_thread(newest_mtime, self.work)
            if newest is None or time.time() - newest > cfg.max_no_write_time_s:
                return f"No data written for {cfg.max_no_write_time_s:.0f} s"
        return None

    async def _await_end(self) -> RunDoc:
        """The run document once the dispatcher has set ``end`` (it may lag the readers)."""
        deadline = time.monotonic() + _END_WAIT_S
        while True:
            try:
                document = await self.dbs.runs.find_one({"number": self.number})
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise
                await wait_for_stop(self.stop, 1.0)
                continue
            if document is None:
                raise RunFailed("the run document was deleted while processing")
            run = parse_run_doc(document)
            if run.end is not None or time.monotonic() > deadline or self.stop.is_set():
                return run
            await wait_for_stop(self.stop, 1.0)

    async def _check(self, run: RunDoc) -> list[Output]:
        await self._phase("checking")
        outputs = await asyncio.to_thread(collect_outputs, self.work, self.run_id)
        if self.options.ignore_checks:
            return outputs
        raw_rows = sum(
            int(c.get("n", 0))
            for o in outputs
            if o.data_type.startswith("raw_records")
            for c in o.stored.metadata["chunks"]
        )
        if outputs and raw_rows == 0:
            raise RunFailed("no data in live_data", retry=False)
        try:
            await asyncio.to_thread(
                check_outputs, outputs, run.model_dump(), self.config.run_length_tolerance_s
            )
        except CheckFailed as err:
            raise RunFailed(str(err)) from None
        return outputs

    # ------------------------------------------------------------------ other endings
    async def _interrupted(self) -> Outcome:
        await self._discard()
        if self.lease is not None and await release(self.dbs.runs, self.lease, "interrupted"):
            self.log.info("run_handed_back")
        return Outcome.HANDED_BACK

    async def _discard(self) -> None:
        if self.child is not None and self.child.running():
            await self.child.stop(self.config.kill_grace_s)
        await asyncio.to_thread(remove_tree, self.work)

    async def _fail(self, reason: str, detail: str = "", retry: bool = True) -> Outcome:
        await self._discard()
        if self.lease is None:
            self.log.error("run_failed", reason=reason.splitlines()[0], mode="test")
            return Outcome.FAILED
        try:
            await fail_run(self.dbs, self.lease, self.config, reason, detail, retry=retry)
        except LeaseLost:
            self.log.warning("lease_lost_while_failing")
            return Outcome.LOST
        return Outcome.FAILED


async def fail_run(
    dbs: Databases,
    lease: Lease,
    config: BootstraxConfig,
    reason: str,
    detail: str = "",
    *,
    retry: bool = True,
) -> None:
    """Mark the run failed (fenced), count it, and schedule the retry (or none)."""
    current = await dbs.runs.find_one({"number": lease.number}, {"bootstrax.n_failures": 1})
    before = int(((current or {}).get("bootstrax") or {}).get("n_failures") or 0)
    next_retry = utcnow() + dt.timedelta(seconds=config.retry_delay_s(before)) if retry else None
    text = f"{lease.host}:\n{reason}" + (f"\n{detail}" if detail else "")
    await fenced_update(
        dbs.runs,
        lease,
        {
            "$set": {
                "bootstrax.state": "failed",
                "bootstrax.phase": "failed",
                "bootstrax.reason": text,
                "bootstrax.time": utcnow(),
                "bootstrax.next_retry": next_retry,
                "bootstrax.lease_until": None,
            },
            "$inc": {"bootstrax.n_failures": 1},
        },
    )
    # A first failure is news for the shift (a warning, mirrored to daq.log); repeats are info.
    log = get_logger(run_id=f"{lease.number:06d}")
    (log.info if before else log.warning)(
        "run_failed",
        reason=reason.splitlines()[0],
        n_failures=before + 1,
        next_retry=next_retry.isoformat() if next_retry else None,
    )


def _event_task(event: asyncio.Event) -> asyncio.Future[Any]:
    return asyncio.ensure_future(event.wait())
