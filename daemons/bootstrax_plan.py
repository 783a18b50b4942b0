"""What bootstrax makes of one run and with what: targets and resources for its child.

Targets follow the original's rules (``core.targets``); resources its benchmark table
(``core.resources``), fed with the data rate from the run document or, while the run is still
being taken, from ``daq.aggregate_status``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, replace
from typing import Any

from pymongo.errors import PyMongoError

from straxd.core.bootstrax_config import BootstraxConfig, provided_types
from straxd.core.db import Databases, utcnow
from straxd.core.lifecycle import wait_for_stop
from straxd.core.logging import get_logger
from straxd.core.resources import Resources, infer_resources
from straxd.core.rundoc import RunDoc
from straxd.core.targets import infer_targets
from straxd.daemons.bootstrax_types import RunOptions

_RATE_POLL_S = 2.0


@dataclass(frozen=True)
class RunPlan:
    """Targets and resources of one run's child."""

    targets: tuple[str, ...]
    resources: Resources
    rate_mbs: float | None

    def as_fields(self) -> dict[str, object]:
        """For logs and the heartbeat."""
        r = self.resources
        return {
            "targets": list(self.targets),
            "cores": r.cores,
            "max_messages": r.max_messages,
            "timeout": r.timeout_s,
            "records_compressor": r.records_compressor,
            "rate_mbs": None if self.rate_mbs is None else round(self.rate_mbs, 1),
        }


def rate_from_document(run: RunDoc) -> float | None:
    """The dispatcher's rate at run end: the sum over detectors of their maximum (as bootstrax)."""
    maxima = [v.get("max") for v in run.rate.values() if isinstance(v, dict)]
    values = [float(m) for m in maxima if isinstance(m, int | float)]
    return sum(values) if values else None


async def rate_from_status(
    dbs: Databases, run: RunDoc, config: BootstraxConfig, stop: asyncio.Event
) -> float | None:
    """The running rate from aggregate_status: wait until the run is old enough, then poll."""
    if run.start is None:
        return None
    age_s = (utcnow() - run.start).total_seconds()
    if await wait_for_stop(stop, config.rate_wait_min_s - age_s):
        return None
    deadline = time.monotonic() + config.rate_wait_max_s
    pipeline: list[dict[str, Any]] = [
        {"$match": {"number": run.number}},
        {"$group": {"_id": "$detector", "rate": {"$max": "$rate"}}},
    ]
    while True:
        try:
            rows = await (await dbs.aggregate_status.aggregate(pipeline)).to_list()
        except PyMongoError as err:
            get_logger().warning("rate_unavailable", error=str(err)[:200])
            return None
        rates = [float(r["rate"]) for r in rows if isinstance(r.get("rate"), int | float)]
        if rates:
            return sum(rates)
        if time.monotonic() > deadline or await wait_for_stop(stop, _RATE_POLL_S):
            get_logger().warning("rate_unknown", waited_s=config.rate_wait_max_s)
            return None


async def plan_run(
    dbs: Databases,
    run: RunDoc,
    options: RunOptions,
    config: BootstraxConfig,
    stop: asyncio.Event,
) -> RunPlan:
    """Targets (with the original's rules) and resources (from the rate) for this run."""
    log = get_logger(run_id=run.run_id)
    n_failures = run.bootstrax.n_failures
    choice = infer_targets(
        mode=run.mode,
        detectors=run.detectors or ["tpc"],
        n_failures=n_failures,
        host=options.host,
        targets=options.targets,
        post_process=options.post_process,
        rules=config.target_rules(),
        provided=provided_types(),
        fixed=options.fix_target,
    )
    for warning in choice.warnings:
        log.warning("targets_fallback", reason=warning)
    targets = tuple(dict.fromkeys((*choice.targets, *choice.post_process)))
    rate = rate_from_document(run)
    if rate is None and options.infer_mode and options.production:
        rate = await rate_from_status(dbs, run, config, stop)
    daq = run.daq_config
    resources = infer_resources(
        rate_mbs=rate,
        n_failures=n_failures,
        new_host=config.role_of(options.host) == "process",
        infer=options.infer_mode,
        degrade=not options.fix_resources,
        default_cores=options.workers,
        default_max_messages=options.max_messages,
        default_timeout_s=config.input_timeout_s,
        available_cpus=len(os.sched_getaffinity(0)),
        chunk_s=daq.strax_chunk_length if daq else 5.0,
        overlap_s=daq.strax_chunk_overlap if daq else 0.5,
        ambe="ambe" in (run.mode or ""),
        table=config.resource_rows(),
    )
    if options.infer_mode:
        # The table's mailbox sizes were for strax's small messages; straxd's are whole chunks.
        resources = replace(
            resources, max_messages=min(resources.max_messages, config.max_chunks_in_flight)
        )
    plan = RunPlan(targets, resources, rate)
    log.info("run_planned", n_failures=n_failures, **plan.as_fields())
    return plan
