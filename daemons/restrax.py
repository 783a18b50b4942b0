"""restrax: rechunk and recompress finished runs into the production folder, crash-safe.

It takes runs bootstrax finished on this host (``bootstrax.state: done``, ``status:
eb_finished_pre``), claims each with a lease like bootstrax, rewrites every data type in a
spawned worker (so memory is returned after each run), verifies the copies, moves them into
STRAXD_OUTPUT_DIR, points the ``data`` entries at them and sets ``status: eb_ready_to_upload``;
only then are the sources removed. Runs left half-way by a crash are completed by the next
attempt. Exit codes (``--once``, ``--process``): 0 done or nothing to do, 1 a run failed,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.config_docs import ConfigSource, config_diff, config_hash, watch_config
from straxd.core.daqlog import beat_until, heartbeat
from straxd.core.daqlog_mirror import DaqLogMirror
from straxd.core.db import ensure_indexes, open_databases, utcnow
from straxd.core.errors import StraxdError
from straxd.core.finish import remove_tree, stale_work_dirs, work_dir
from straxd.core.leases import Lease, claim_first, renew
from straxd.core.lifecycle import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ServiceRun,
    serve,
    wait_for_stop,
)
from straxd.core.logging import configure_logging, get_logger
from straxd.core.restrax_config import LEGACY_KEYS, RestraxConfig
from straxd.core.settings import Settings, settings_for_cli
from straxd.daemons.restrax_dryrun import DryRunOptions, run_dry
from straxd.daemons.restrax_run import WORK_DIRNAME, RestraxOptions, RestraxRun, cleanup


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``restrax --help``)."""
    parser = argparse.ArgumentParser(
        prog="restrax",
        description=__doc__.splitlines()[0],
        epilog="Exit codes (--once, --process, test mode): 0 done or nothing to do, 1 a run "
        "failed, 2 usage or configuration error. Settings (database, folders) come from "
        "STRAXD_* variables or --config; tunables from the daq.restrax_config document.",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="claim runs, move, register and remove sources (default: test mode, a dry run "
        "into --test_output that only reads the database)",
    )
    parser.add_argument("--process", type=int, metavar="N", help="handle run N only, then exit")
    parser.add_argument("--once", action="store_true", help="handle what is waiting, then exit")
    parser.add_argument("--bypass_mode", action="store_true", help="only move, never rewrite")
    parser.add_argument(
        "--skip_compression",
        nargs="*",
        default=None,
        metavar="PATTERN",
        help="types only moved (fnmatch patterns; default from the config)",
    )
    parser.add_argument(
        "--recompress_min_chunks",
        type=int,
        default=None,
        help="non-raw types with at most this many chunks are only moved",
    )
    parser.add_argument("--max_threads", type=int, default=None, help="types rewritten at once")
    parser.add_argument("--deep_compare", action="store_true", help="compare every row after")
    parser.add_argument("--ignore_checks", action="store_true", help="skip the copy checks")
    parser.add_argument(
        "--input_folder",
        type=Path,
        default=None,
        help="test mode: folders to read (default STRAXD_PRE_DIR); refused with --production",
    )
    parser.add_argument(
        "--test_output",
        type=Path,
        default=Path("restrax"),
        help="test mode: where the rewritten copies go (default ./restrax)",
    )
    parser.add_argument(
        "--undying",
        action="store_true",
        help="on an unexpected error, log it, wait 60 s and start over",
    )
    parser.add_argument("--debug", action="store_true", help="log at debug level")
    parser.add_argument("--config", type=Path, default=None, help="straxd settings file (TOML)")
    args = parser.parse_args(argv)
    if args.production and args.input_folder is not None:
        parser.error("--input_folder is for test mode; with --production input is STRAXD_PRE_DIR")
    if args.max_threads is not None and args.max_threads < 1:
        parser.error("--max_threads must be at least 1")
    return args


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config values the command line fixes for this process."""
    overrides: dict[str, Any] = {}
    if args.bypass_mode:
        overrides["bypass_mode"] = True
    if args.skip_compression is not None:
        overrides["skip_compression"] = tuple(args.skip_compression)
    for name in ("recompress_min_chunks", "max_threads"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return overrides


class Restrax:
    """One restrax process."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.args, self.host = args, settings.host
        self.dbs = open_databases(
            settings.runs_uri(), settings.daq_uri(), settings.runs_db, settings.daq_db
        )
        self.source = ConfigSource(
            self.dbs.config_collection("restrax"), "restrax", RestraxConfig, LEGACY_KEYS
        )
        self.config = RestraxConfig()
        self.options = RestraxOptions(
            host=settings.host,
            pre_dir=settings.pre_dir,
            output_dir=settings.output_dir,
            unregistered_dir=settings.unregistered_dir,
            state_dir=settings.state_dir,
            deep_compare=args.deep_compare,
            ignore_checks=args.ignore_checks,
        )
        self.log = get_logger()
        self.lease: Lease | None = None
        self.lease_lost = asyncio.Event()
        self.halt = asyncio.Event()
        self.state, self.failed = "starting", 0

    def _apply(self, config: RestraxConfig) -> None:
        merged = RestraxConfig.model_validate({**config.model_dump(), **cli_overrides(self.args)})
        self.log.info(
            "config_applied",
            hash=config_hash(merged),
            diff=config_diff(self.config, merged) or None,
        )
        self.config = merged

    async def run(self, stop: asyncio.Event) -> int:
        """Load the config, then the loop beside the heartbeat and the config watcher."""
        try:
            await ensure_indexes(self.dbs)
            self._apply((await self.source.load()).config)
        except StraxdError as err:
            self.log.error("config_invalid", error=str(err))
            return EXIT_USAGE
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._heartbeat()), group.create_task(self._watch())]
            try:
                return await self._loop(stop)
            finally:
                self.halt.set()
                for task in tasks:
                    task.cancel()

    def _base(self) -> dict[str, Any]:
        query: dict[str, Any] = {"bootstrax.state": "done", "bootstrax.host": self.host}
        if self.args.process is not None:
            query["number"] = self.args.process
        return query

    async def _claim(self) -> tuple[dict[str, Any], Lease] | None:
        base = self._base()
        queries: list[tuple[str, dict[str, Any]]] = [
            ("new", {**base, "status": "eb_finished_pre", "restrax.state": None}),
            ("retry", {
                **base,
                "status": "eb_finished_pre",
                "restrax.state": "failed",
                "restrax.n_tries": {"$lt": self.config.max_tries},
                "restrax.next_retry": {"$lt": utcnow()},
            }),
            ("takeover", {**base, "restrax.state": "busy"}),  # a crashed attempt's lease expired
        ]  # fmt: skip
        got = await claim_first(
            self.dbs.runs,
            queries,
            self.host,
            state="busy",
            sub="restrax",
            lease_s=self.config.lease_s,
            sort=[("_id", -1)],
            extra={"phase": "claimed", "started_processing": utcnow()},
        )
        return None if got is None else got[1:]

    async def _loop(self, stop: asyncio.Event) -> int:
        for folder in stale_work_dirs(self.options.output_dir, self.host, WORK_DIRNAME):
            await asyncio.to_thread(
                remove_tree, folder
            )  # leftovers of a crash (one restrax per host)
        while not stop.is_set():
            try:
                await self._finish_cleanups()
                got = await self._claim()
            except PyMongoError as err:
                self.log.warning("database_unavailable", error=str(err)[:200])
                if await wait_for_stop(stop, self.config.poll_interval_s):
                    break
                continue
            if got is not None:
                await self._handle(*got)
                continue
            if self.args.once or self.args.process is not None:
                break
            self.state = "idle"
            await wait_for_stop(stop, self.config.poll_interval_s)
        return EXIT_FAILED if self.failed else EXIT_OK

    async def _handle(self, document: dict[str, Any], lease: Lease) -> None:
        self.state, self.lease = "busy", lease
        self.lease_lost.clear()
        self.log.info("run_claimed", run_id=f"{lease.number:06d}", epoch=lease.epoch)
        work = RestraxRun(self.dbs, document, lease, self.options, self.config, self.lease_lost)
        try:
            if not await work.execute():
                self.failed += 1
        finally:
            self.lease = None

    async def _finish_cleanups(self) -> None:
        """Runs handed on whose sources were not yet removed (a crash right after ``done``)."""
        query = {
            **self._base(),
            "restrax.state": "done",
            "restrax.phase": "cleaning",
            "restrax.host": self.host,
        }
        async for document in self.dbs.runs.find(query):
            sub = document["restrax"]
            lease = Lease(document["number"], self.host, int(sub.get("epoch", 0)), "restrax")
            run_id = f"{document['number']:06d}"
            # Only sources whose copy is registered in the production folder: never a last copy.
            output = self.options.output_dir.resolve()
            placed = {
                Path(e["location"]).name
                for e in document.get("data", [])
                if e.get("host") == self.host
                and e.get("location")
                and Path(e["location"]).parent.resolve() == output
            }
            sources = [
                self.options.pre_dir / n
                for n in sorted(placed)
                if (self.options.pre_dir / n).exists()
            ]
            work = work_dir(self.options.output_dir, run_id, self.host, lease.epoch, WORK_DIRNAME)
            await cleanup(self.dbs, lease, self.options, sources, work)
            self.log.info("cleanup_completed", run_id=run_id, removed=[p.name for p in sources])

    async def _heartbeat(self) -> None:
        await beat_until(self.halt, self._beat, lambda: self.config.heartbeat_interval_s, self.log)

    async def _beat(self) -> None:
        """Renew the lease of the run in hand, then the status."""
        if self.lease is not None and not await renew(
            self.dbs.runs, self.lease, self.config.lease_s
        ):
            self.lease_lost.set()
        await heartbeat(
            self.dbs,
            "restrax",
            self.host,
            self.state,
            config_hash=config_hash(self.config),
            fields={"run_id": f"{self.lease.number:06d}" if self.lease else None},
            history=False,
        )

    async def _watch(self) -> None:
        async for event in watch_config(self.source, self.halt, poll_interval_s=5.0):
            if event.error is not None:
                self.log.error(
                    "config_rejected", error=str(event.error), kept=config_hash(self.config)
                )
            elif event.loaded is not None:
                self._apply(event.loaded.config)


def main(argv: Sequence[str] | None = None) -> int:
    """``restrax`` console script."""
    args = parse_args(argv)
    settings = settings_for_cli("restrax", args.config)
    if settings is None:
        return EXIT_USAGE
    mirror = DaqLogMirror(f"restrax_{settings.host}")
    configure_logging(
        "restrax",
        settings.host,
        level="debug" if args.debug else "info",
        processors=[mirror] if args.production else [],  # test mode writes nothing to daq.log
    )

    if not args.production:
        return serve("restrax", settings.lock_path("restrax-test"), _dry_run(settings, args))

    async def _run(stop: asyncio.Event) -> int:
        daemon = Restrax(settings, args)
        mirror.attach()
        drain = asyncio.create_task(mirror.drain(daemon.dbs))
        try:
            return await daemon.run(stop)
        finally:
            await mirror.flush(5.0)
            drain.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.dbs.close(), 10)

    return serve("restrax", settings.lock_path("restrax"), _run)


def _dry_run(settings: Settings, args: argparse.Namespace) -> ServiceRun:
    """Test mode: read-only database, output only into ``--test_output``."""
    options = DryRunOptions(
        input_dir=args.input_folder or settings.pre_dir,
        output_dir=args.test_output.resolve(),
        state_dir=settings.state_dir,
        process=args.process,
        deep_compare=args.deep_compare,
        ignore_checks=args.ignore_checks,
    )

    async def _run(stop: asyncio.Event) -> int:
        dbs = open_databases(
            settings.runs_uri(), settings.daq_uri(), settings.runs_db, settings.daq_db
        )
        source = ConfigSource(
            dbs.config_collection("restrax"), "restrax", RestraxConfig, LEGACY_KEYS
        )
        try:
            return await run_dry(dbs, source, options, stop)
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dbs.close(), 10)

    return _run


if __name__ == "__main__":
    sys.exit(main())
