"""One claimed run in restrax: plan, rewrite in a worker, move, register, hand on, clean up.

The steps are ordered and recorded in ``restrax.phase`` so that a crash anywhere is completed by
the next attempt, never corrupted: outputs are written in a work folder and verified, then moved
into the production folder (an identical copy already there is adopted, anything else there is
quarantined), then each ``data`` entry is pointed at its new location (fenced), then the run is
handed on (``eb_ready_to_upload``), and only then are the sources removed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.child import ChildProcess
from straxd.core.db import Databases, utcnow
from straxd.core.errors import BadInput, DataCorrupted, LeaseLost, StraxdError
from straxd.core.faults import fault_point
from straxd.core.finish import remove_tree, work_dir
from straxd.core.leases import Lease, fenced_update
from straxd.core.logging import get_logger
from straxd.core.memory import rss_mb, with_malloc_tunables
from straxd.core.restrax_config import RestraxConfig, compressor_and_size, run_rate_mbs, skip_reason
from straxd.core.rundoc import RunDoc, parse_run_doc
from straxd.core.storage_read import open_data
from straxd.daemons.restrax_place import Item, place

WORK_DIRNAME = ".restrax-work"


class RestraxFailed(StraxdError):
    """This attempt cannot complete; the reason goes to the run document."""


@dataclass
class RestraxOptions:
    """Identity and command-line choices of this restrax."""

    host: str
    pre_dir: Path
    output_dir: Path
    unregistered_dir: Path
    state_dir: Path
    deep_compare: bool = False
    ignore_checks: bool = False


class RestraxRun:
    """Everything restrax does with one claimed run."""

    def __init__(
        self,
        dbs: Databases,
        document: dict[str, Any],
        lease: Lease,
        options: RestraxOptions,
        config: RestraxConfig,
        lease_lost: asyncio.Event,
    ) -> None:
        self.dbs, self.document, self.lease = dbs, document, lease
        self.options, self.config, self.lease_lost = options, config, lease_lost
        self.number = int(document["number"])
        self.run_id = f"{self.number:06d}"
        self.work = work_dir(
            options.output_dir, self.run_id, options.host, lease.epoch, WORK_DIRNAME
        )
        self.log = get_logger(run_id=self.run_id, epoch=lease.epoch)
        self.memory: dict[str, float] = {}
        self.phase = "claimed"

    async def execute(self) -> bool:
        """True when the run was handed on; failures are recorded, a lost lease just stops."""
        started = time.monotonic()
        try:
            await self._execute()
        except LeaseLost as err:
            self.log.warning("lease_lost", error=str(err))
            await asyncio.to_thread(remove_tree, self.work)
            return False
        except (StraxdError, OSError) as err:  # RestraxFailed included
            await self._fail(str(err), traceback.format_exc(limit=3))
            return False
        except PyMongoError as err:
            self.log.error("database_lost_during_run", error=str(err)[:200])
            return False
        self.log.info("run_done", wall_s=round(time.monotonic() - started, 1), **self.memory)
        return True

    async def _execute(self) -> None:
        run = parse_run_doc(self.document)
        await self._set_phase("planning")
        items = await asyncio.to_thread(self._plan, run)
        rewrite = [i for i in items if i.action == "rewrite"]
        if rewrite:
            await self._set_phase("rewriting")
            await self._rewrite(rewrite)
        await self._set_phase("moving")
        for item in items:
            await asyncio.to_thread(place, item, self.options.unregistered_dir, self.log)
        fault_point("restrax_after_move")
        await self._set_phase("registering")
        for item in items:
            await self._register(item)
        fault_point("restrax_after_register")
        await fenced_update(
            self.dbs.runs,
            self.lease,
            {
                "$set": {
                    "status": "eb_ready_to_upload",
                    "restrax.state": "done",
                    "restrax.phase": "cleaning",
                    "restrax.ended": utcnow(),
                    "restrax.lease_until": None,
                    "restrax.memory_usage_mb": self.memory or None,
                }
            },
        )
        fault_point("restrax_after_done")
        # Sources whose copy is now registered in the production folder (moved ones are gone).
        sources = [self.options.pre_dir / i.target.name for i in items if i.action != "move"]
        await cleanup(self.dbs, self.lease, self.options, sources, self.work)

    async def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.log.info("run_phase", phase=phase)
        update: dict[str, Any] = {"$set": {"restrax.phase": phase}}
        if phase == "planning":
            update["$inc"] = {"restrax.n_tries": 1}
        await fenced_update(self.dbs.runs, self.lease, update)

    # ------------------------------------------------------------------ planning
    def _plan(self, run: RunDoc) -> list[Item]:
        """One item per data entry of this host: rewrite, move, adopt or already done."""
        rate = run_rate_mbs(run.rate)
        this_try = int((self.document.get("restrax") or {}).get("n_tries") or 0) + 1
        items = []
        for entry in run.data:
            if entry.host != self.options.host or entry.type == "live" or not entry.location:
                continue
            source = Path(entry.location)
            target = self.options.output_dir / source.name
            if source.parent.resolve() == self.options.output_dir.resolve():
                items.append(Item(entry.type, source, target, "registered"))
                continue
            if not source.is_dir():
                if target.is_dir():
                    items.append(Item(entry.type, source, target, "adopt"))
                    continue
                raise RestraxFailed(f"source folder missing: {source}")
            try:
                stored = open_data(source)
            except (DataCorrupted, BadInput) as err:
                raise RestraxFailed(f"metadata unreadable: {err}") from None
            reason = skip_reason(entry.type, stored.n_chunks, run.mode, self.config)
            if reason is not None:
                self.log.info("move_only", data_type=entry.type, reason=reason)
                items.append(Item(entry.type, source, target, "move"))
                continue
            compressor, size = compressor_and_size(
                entry.type, stored.compressor, rate, this_try, self.config
            )
            items.append(Item(entry.type, source, target, "rewrite", compressor, size))
        if not items:
            raise RestraxFailed(f"no data of this host ({self.options.host}) in the run document")
        return items

    # ------------------------------------------------------------------ rewriting
    async def _rewrite(self, items: list[Item]) -> None:
        log_path = (
            self.options.state_dir / "runs" / f"{self.run_id}-restrax-e{self.lease.epoch}.log"
        )
        deep = self.options.deep_compare or self.config.deep_compare
        worker = Worker(
            self.work, log_path, self.config.max_threads, deep, self.options.ignore_checks
        )
        if not await worker.rewrite(items, abort=self.lease_lost, log=self.log):
            raise LeaseLost(f"run {self.number}: restrax lease lost while rewriting")
        self.memory = worker.memory

    # ------------------------------------------------------------------ registering
    async def _register(self, item: Item) -> None:
        """Point the entry of this type and host at its new location (fenced, idempotent)."""
        meta = await asyncio.to_thread(lambda: open_data(item.target).metadata)
        chunks = meta["chunks"]
        size_mb = sum(int(c.get("filesize", 0)) for c in chunks) / 1e6
        fields = {
            "location": str(item.target),
            "file_count": len(chunks) + 1,
            "meta.size_mb": round(size_mb, 3),
            "meta.avg_chunk_mb": round(size_mb / max(len(chunks), 1), 3),
            "meta.compressor": meta["compressor"],
            "meta.lineage_hash": meta["lineage_hash"],
            "meta.chunk_target_size_mb": meta.get("chunk_target_size_mb"),
        }
        result = await self.dbs.runs.update_one(
            {
                **self.lease.fence(),
                "data": {"$elemMatch": {"type": item.data_type, "host": self.options.host}},
            },
            {"$set": {f"data.$.{k}": v for k, v in fields.items()}},
        )
        if not result.matched_count:
            raise LeaseLost(f"run {self.number}: lease lost (or {item.data_type} entry gone)")

    async def _fail(self, reason: str, detail: str) -> None:
        await asyncio.to_thread(remove_tree, self.work)
        tries = int((self.document.get("restrax") or {}).get("n_tries") or 0) + 1
        retry_s = self.config.retry_delay_s(tries - 1)
        give_up = tries >= self.config.max_tries
        try:
            await fenced_update(
                self.dbs.runs,
                self.lease,
                {
                    "$set": {
                        "restrax.state": "failed",
                        "restrax.phase": f"failed while {self.phase}",
                        "restrax.reason": f"{self.options.host}:\n{reason}\n{detail}",
                        "restrax.ended": utcnow(),
                        "restrax.lease_until": None,
                        "restrax.next_retry": None
                        if give_up
                        else utcnow() + dt.timedelta(seconds=retry_s),
                    }
                },
            )
        except LeaseLost:
            return
        if give_up:
            self.log.error(
                "restrax_gave_up", reason=reason, n_tries=tries, hint="manual help is needed"
            )
        else:
            self.log.warning("run_failed", reason=reason, n_tries=tries, retry_in_s=round(retry_s))


async def cleanup(
    dbs: Databases, lease: Lease, options: RestraxOptions, sources: list[Path], work: Path
) -> None:
    """Remove the rewritten sources (only under the pre folder) and the work folder; phase done."""
    pre = await asyncio.to_thread(options.pre_dir.resolve)
    for source in sources:
        resolved = await asyncio.to_thread(source.resolve)
        if resolved.is_relative_to(pre) and resolved != pre:
            await asyncio.to_thread(remove_tree, resolved)
    await asyncio.to_thread(remove_tree, work)
    await fenced_update(dbs.runs, lease, {"$set": {"restrax.phase": "done"}})


@dataclass
class Worker:
    """restrax_worker as a child process: rewrite and verify items into ``work``."""

    work: Path
    log_path: Path
    max_threads: int
    deep_compare: bool
    ignore_checks: bool
    memory: dict[str, float] = field(default_factory=dict)  # avg and max RSS, MB
    done: list[dict[str, Any]] = field(default_factory=list)  # the worker's result per item

    async def rewrite(self, items: list[Item], abort: asyncio.Event, log: Any) -> bool:
        """Rewrite ``items`` (setting ``item.rewritten``, logged); False if ``abort`` stopped it.

        A failed rewrite or verification raises RestraxFailed naming the folders.
        """
        self.work.mkdir(parents=True, exist_ok=True)
        plan, result_path = self.work / "plan.json", self.work / "result.json"
        plan.write_text(json.dumps({
            "work": str(self.work), "max_threads": self.max_threads,
            "deep_compare": self.deep_compare, "ignore_checks": self.ignore_checks,
            "entries": [i.plan_entry() for i in items],
        }))  # fmt: skip
        child = ChildProcess(
            [sys.executable, "-m", "straxd.daemons.restrax_worker", str(plan), str(result_path)],
            self.log_path,
            # As bootstrax's children: glibc reads these only when a process starts.
            env=with_malloc_tunables(os.environ),
        )
        await child.start()
        samples: list[float] = []
        waiting = asyncio.ensure_future(child.wait())
        stopped = asyncio.ensure_future(abort.wait())
        try:
            while not waiting.done():
                await asyncio.wait([waiting, stopped], timeout=1.0, return_when="FIRST_COMPLETED")
                if stopped.done() and not waiting.done():
                    await child.stop(10.0)
                    return False
                if child.pid and (rss := rss_mb(child.pid)) is not None:
                    samples.append(rss)
        finally:
            stopped.cancel()
        result = json.loads(result_path.read_text()) if result_path.exists() else {"entries": []}
        if samples or result.get("peak_rss_mb"):
            peak = max([*samples, float(result.get("peak_rss_mb") or 0)])
            self.memory = {"avg": round(sum(samples) / max(len(samples), 1), 1), "max": peak}
        errors = [e["error"] for e in result["entries"] if "error" in e]
        if waiting.result() != 0 or errors:
            raise RestraxFailed(
                "; ".join(errors) or f"worker exited {waiting.result()}: {child.failure_text()}"
            )
        by_type = {e["type"]: e for e in result["entries"]}
        self.done = [by_type[item.data_type] for item in items]
        for item, done in zip(items, self.done, strict=True):
            item.rewritten = Path(done["folder"])
            log.info(
                "rewritten", data_type=item.data_type, compressor=item.compressor,
                rows=done["rows"], mb_in=round(done["bytes_in"] / 1e6, 2),
                mb_out=round(done["bytes_out"] / 1e6, 2),
            )  # fmt: skip
        return True
