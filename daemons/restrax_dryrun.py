"""restrax's test mode (no ``--production``): a dry run that changes nothing but its output folder.

It reads complete data folders from ``--input_folder`` (default STRAXD_PRE_DIR), plans each run
as production would (skip rules, compressor and target from ``daq.restrax_config`` and the run's
rate, read from the runs database when the run is registered), rewrites and verifies the copies
in the same worker, and puts them into ``--test_output``. Moves, registrations and source
removals are only logged (``would_move``, ``would_register``, ``would_remove_source``): the
database is only read and the input is left as it was. Runs whose output is already in the test
folder are skipped, so a second pass does nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError
from structlog.typing import FilteringBoundLogger as BoundLogger

from straxd.core.config_docs import ConfigSource
from straxd.core.db import Databases
from straxd.core.errors import BadInput, DataCorrupted, StraxdError
from straxd.core.finish import FOLDER_NAME, remove_tree
from straxd.core.lifecycle import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from straxd.core.logging import get_logger
from straxd.core.restrax_config import RestraxConfig, compressor_and_size, run_rate_mbs, skip_reason
from straxd.core.storage_read import Status, open_data
from straxd.daemons.restrax_place import Item
from straxd.daemons.restrax_run import Worker


@dataclass(frozen=True)
class DryRunOptions:
    """Where test mode reads and writes."""

    input_dir: Path
    output_dir: Path
    state_dir: Path
    process: int | None
    deep_compare: bool
    ignore_checks: bool


def find_runs(options: DryRunOptions) -> dict[int, list[Path]]:
    """Complete folders of the input per run number, leaving out what the output already has."""
    runs: dict[int, list[Path]] = defaultdict(list)
    if not options.input_dir.is_dir():
        raise BadInput(f"input folder {options.input_dir} does not exist")
    for folder in sorted(options.input_dir.iterdir()):
        match = FOLDER_NAME.match(folder.name)
        if not match or not folder.is_dir():
            continue
        number = int(match["run"])
        if options.process is not None and number != options.process:
            continue
        if (options.output_dir / folder.name).exists():
            continue  # done by an earlier pass
        try:
            complete = open_data(folder).status is Status.COMPLETE
        except (DataCorrupted, BadInput):
            complete = False
        if not complete:
            get_logger().warning("folder_skipped", folder=str(folder), reason="not complete")
            continue
        runs[number].append(folder)
    return dict(runs)


async def run_document(dbs: Databases, number: int) -> dict[str, Any]:
    """The run's mode and rate, or nothing when the run is not registered."""
    found = await dbs.runs.find_one({"number": number}, {"mode": 1, "rate": 1})
    return dict(found or {})


def plan(
    folders: list[Path], document: dict[str, Any], config: RestraxConfig, log: BoundLogger
) -> list[Item]:
    """What production would do with each folder: the folders to rewrite."""
    rate = run_rate_mbs(document.get("rate") or {})
    mode = document.get("mode")
    items = []
    for folder in folders:
        stored = open_data(folder)
        data_type = stored.metadata["data_type"]
        reason = skip_reason(data_type, stored.n_chunks, mode, config)
        if reason is not None:
            log.info("would_move", data_type=data_type, reason=reason)
            continue
        compressor, size = compressor_and_size(data_type, stored.compressor, rate, 1, config)
        items.append(Item(data_type, folder, folder, "rewrite", compressor, size))
    return items


async def rewrite_one_run(
    number: int, folders: list[Path], document: dict[str, Any], config: RestraxConfig,
    options: DryRunOptions, stop: asyncio.Event,
) -> bool:  # fmt: skip
    """Rewrite one run's folders into the test output; True when every copy verified."""
    run_id = f"{number:06d}"
    log = get_logger(run_id=run_id)
    items = await asyncio.to_thread(plan, folders, document, config, log)
    if not items:
        log.info("nothing_to_rewrite")
        return True
    work = options.output_dir / f".restrax-dryrun-{run_id}-{os.getpid()}"
    worker = Worker(
        work, options.state_dir / "runs" / f"{run_id}-restrax-dryrun.log",
        config.max_threads, options.deep_compare or config.deep_compare, options.ignore_checks,
    )  # fmt: skip
    try:
        if not await worker.rewrite(items, abort=stop, log=log):
            return False
        for item in items:
            assert item.rewritten is not None
            target = options.output_dir / item.source.name
            await asyncio.to_thread(os.rename, item.rewritten, target)
            log.info("would_register", data_type=item.data_type, location=str(target))
            log.info("would_remove_source", folder=str(item.source))
    except (StraxdError, OSError) as err:
        log.error("run_failed", error=str(err))
        return False
    finally:
        await asyncio.to_thread(remove_tree, work)
    log.info("run_done", memory_mb=worker.memory or None)
    return True


async def run_dry(
    dbs: Databases, source: ConfigSource[RestraxConfig], options: DryRunOptions,
    stop: asyncio.Event,
) -> int:  # fmt: skip
    """One pass over the input folder; the exit code."""
    log = get_logger()
    log.warning("test_mode", hint="no --production: nothing is moved, registered or removed")
    try:
        config = (await source.load()).config
        runs = await asyncio.to_thread(find_runs, options)
    except (StraxdError, PyMongoError) as err:
        log.error("test_mode_unusable", error=str(err))
        return EXIT_USAGE
    if options.process is not None and not runs:
        log.error("no_data", run_id=f"{options.process:06d}", input=str(options.input_dir))
        return EXIT_FAILED
    options.output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for number, folders in sorted(runs.items(), reverse=True):
        if stop.is_set():
            break
        try:
            document = await run_document(dbs, number)
        except PyMongoError as err:
            log.warning("run_document_unavailable", run_id=f"{number:06d}", error=str(err)[:200])
            document = {}
        failed += not await rewrite_one_run(number, folders, document, config, options, stop)
    log.info("test_mode_done", runs=len(runs), failed=failed)
    return EXIT_FAILED if failed else EXIT_OK
