"""The last steps of a bootstrax run: move, publish, register, delete live_data.

Ordered so that a crash between any two steps (the named fault points) leaves either the old
valid state or the new one: nothing is registered before it is in place, the registration with
``done`` and the status is one fenced update, and live_data goes only after that, once the
stored raw data is shown to hold all of it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from straxd.core.db import Databases, utcnow
from straxd.core.errors import LeaseLost
from straxd.core.faults import fault_point
from straxd.core.finish import (
    Output,
    count_live_fragments,
    count_raw_rows,
    data_entry,
    move_outputs,
    remove_tree,
)
from straxd.core.leases import Lease, fenced_update, still_owned
from straxd.core.online_store import publish
from straxd.core.rundoc import RunDoc, move_to_deleted, parse_run_doc
from straxd.daemons.bootstrax_types import Outcome, RunOptions

ONLINE_MONITOR_TYPES = ("online_peak_monitor", "event_basics")


class FinishSteps:
    """The finish of RunWork (a mixin: it uses the run's state set up by RunWork)."""

    dbs: Databases
    lease: Lease | None
    options: RunOptions
    number: int
    run_id: str
    work: Path
    raw_document: dict[str, Any]
    started: float
    log: Any

    async def _phase(self, phase: str, **fields: Any) -> None:
        raise NotImplementedError

    async def _finish(self, run: RunDoc, outputs: list[Output], live_dir: Path) -> Outcome:
        if self.lease is None:  # test mode: keep the output, register nothing
            moved = await asyncio.to_thread(move_outputs, outputs, self.options.pre_dir)
            self.log.info("run_done", mode="test", folders=[str(p) for p in moved])
            await asyncio.to_thread(remove_tree, self.work)
            return Outcome.DONE
        await self._phase("finishing")
        fault_point("bootstrax_before_move")
        if not await still_owned(self.dbs.runs, self.lease):
            raise LeaseLost(f"run {self.number}: taken over before the output was moved")
        moved = await asyncio.to_thread(move_outputs, outputs, self.options.pre_dir)
        fault_point("bootstrax_after_move")
        entries = [
            data_entry(o, self.options.host, final).model_dump(exclude_none=True)
            for o, final in zip(outputs, moved, strict=True)
        ]
        await self._publish_online(moved)
        fault_point("bootstrax_after_online_monitor")
        # Only the run-document snapshot is left in the work folder: gone before ``done`` shows.
        await asyncio.to_thread(remove_tree, self.work)
        await self._register(run, entries)
        fault_point("bootstrax_after_register")
        if self.options.delete_live:
            await self._delete_live(live_dir, moved)
        self.log.info(
            "run_done",
            types={e["type"]: e["location"] for e in entries},
            wall_s=round(time.monotonic() - self.started, 1),
        )
        return Outcome.DONE

    async def _publish_online(self, folders: list[Path]) -> None:
        assert self.lease is not None
        if not await still_owned(self.dbs.runs, self.lease):
            raise LeaseLost(f"run {self.number}: taken over before the online monitor upload")
        for folder in folders:
            if folder.name.split("-")[1] in ONLINE_MONITOR_TYPES:
                n = await publish(self.dbs.online_monitor, folder, self.number)
                self.log.info("online_monitor_published", folder=folder.name, documents=n)

    async def _register(self, run: RunDoc, entries: list[dict[str, Any]]) -> None:
        """One atomic, fenced update: the data entries, ``done`` and the status."""
        assert self.lease is not None
        now = utcnow()
        done = {
            "bootstrax.state": "done",
            "bootstrax.phase": "done",
            "bootstrax.time": now,
            "bootstrax.finished_processing": now,
            "bootstrax.lease_until": None,
        }
        update = {"$push": {"data": {"$each": entries}}, "$set": done}
        with_status = {"$push": update["$push"], "$set": {**done, "status": "eb_finished_pre"}}
        result = await self.dbs.runs.update_one(
            {**self.lease.fence(), "status": {"$in": [None, "needs_upload"]}}, with_status
        )
        if result.matched_count:
            return
        await fenced_update(self.dbs.runs, self.lease, update)
        current = await self.dbs.runs.find_one({"number": self.number}, {"status": 1})
        status = (current or {}).get("status")
        level = "info" if status == "eb_finished_pre" else "warning"
        getattr(self.log, level)("status_unchanged", status=status, note="run done, status kept")

    async def _delete_live(self, live_dir: Path, folders: list[Path]) -> None:
        """Delete live_data once the stored raw data holds every fragment of it."""
        root = await asyncio.to_thread((self.options.live_root or live_dir.parent).resolve)
        if not (await asyncio.to_thread(live_dir.resolve)).is_relative_to(root):
            self.log.error("live_data_outside_root", path=str(live_dir), root=str(root))
            return
        daq = parse_run_doc(self.raw_document).daq_config
        assert daq is not None
        fragment_bytes = 24 + daq.strax_fragment_payload_bytes
        fragments = await asyncio.to_thread(
            count_live_fragments, live_dir, fragment_bytes, daq.compressor
        )
        rows = await asyncio.to_thread(count_raw_rows, folders)
        if fragments != rows:
            self.log.warning("live_data_kept", fragments=fragments, stored_rows=rows)
            return
        await move_to_deleted(
            self.dbs.runs,
            self.number,
            "live",
            "daq",
            self.options.host,
            "bootstrax delete_live",
            self.lease.fence() if self.lease else None,
        )
        fault_point("bootstrax_after_live_recorded")
        await asyncio.to_thread(remove_tree, live_dir)
        self.log.info("live_data_deleted", path=str(live_dir), fragments=fragments)
