"""bootstrax's manual actions: ``--process N``, ``--fail N [REASON]``, ``--abandon N [REASON]``.

Failing or abandoning revokes any lease (the epoch goes up), so a host processing the run finds
its next fenced write rejected and stops without registering anything.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ReturnDocument

from straxd.core.bootstrax_config import BootstraxConfig
from straxd.core.daqlog import log_to_daq
from straxd.core.db import Databases, utcnow
from straxd.core.errors import RunNotFound, StraxdError
from straxd.core.leases import Lease, claim
from straxd.core.rundoc import parse_run_doc
from straxd.daemons.bootstrax_prepare import clean_host_data


class Refused(StraxdError):
    """A manual action that would harm a run (processing a done or leased run unforced)."""


async def revoke(
    dbs: Databases,
    number: int,
    host: str,
    fields: dict[str, Any],
    inc: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Take the run from whoever holds it (epoch + 1) and set ``fields`` in the same update."""
    document = await dbs.runs.find_one_and_update(
        {"number": number},
        {
            "$set": {
                **{f"bootstrax.{k}": v for k, v in fields.items()},
                "bootstrax.host": host,
                "bootstrax.time": utcnow(),
                "bootstrax.lease_until": None,
            },
            "$inc": {
                "bootstrax.epoch": 1,
                **{f"bootstrax.{k}": v for k, v in (inc or {}).items()},
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if document is None:
        raise RunNotFound(f"run {number} does not exist")
    return document


async def manual_fail(
    dbs: Databases, number: int, host: str, config: BootstraxConfig, reason: str | None
) -> None:
    """Fail the run by hand: revoke, count the failure, clean this host's data for it."""
    before = await dbs.runs.find_one({"number": number}, {"bootstrax": 1})
    if before is None:
        raise RunNotFound(f"run {number} does not exist")
    n_before = int((before.get("bootstrax") or {}).get("n_failures") or 0)
    text = "Manually set failed state. " + (reason or "")
    document = await revoke(
        dbs,
        number,
        host,
        {
            "state": "failed",
            "phase": "failed",
            "reason": f"{host}:\n{text}",
            "n_failures": n_before + 1,
            "next_retry": utcnow() + dt.timedelta(seconds=config.retry_delay_s(n_before)),
        },
    )
    await clean_host_data(dbs, parse_run_doc(document), host, "manually failed")
    await log_to_daq(dbs, f"run {number:06d}: {text}", user=f"bootstrax_{host}", run_number=number)


async def manual_abandon(
    dbs: Databases, number: int, host: str, config: BootstraxConfig, reason: str | None
) -> None:
    """Abandon the run (failing it first when a reason is given, as the original)."""
    if reason:
        await manual_fail(dbs, number, host, config, reason)
    await revoke(dbs, number, host, {"state": "abandoned", "phase": "abandoned"})
    await log_to_daq(
        dbs,
        f"run {number:06d} abandoned",
        level="info",
        user=f"bootstrax_{host}",
        run_number=number,
    )


async def claim_for_process(
    dbs: Databases, number: int, host: str, config: BootstraxConfig, force: bool
) -> tuple[dict[str, Any], Lease]:
    """Claim one run for ``--process``: refused if done or leased by anyone, unless forced."""
    document = await dbs.runs.find_one({"number": number})
    if document is None:
        raise RunNotFound(f"run {number} does not exist")
    sub = document.get("bootstrax") or {}
    lease_until = sub.get("lease_until")
    leased = lease_until is not None and lease_until > utcnow()
    held = any(t.get("name") == "hold-processing" for t in document.get("tags") or [])
    if not force and (sub.get("state") == "done" or leased or held):
        what = (
            "done" if sub.get("state") == "done"
            else f"leased by {sub.get('host')}" if leased
            else "tagged hold-processing"
        )  # fmt: skip
        raise Refused(f"run {number} is {what}; pass --force to process it anyway")
    if leased or sub.get("state") == "done":
        await revoke(dbs, number, host, {"state": None, "phase": "forced"})
    got = await claim(dbs.runs, {"number": number}, host, lease_s=config.lease_s)
    if got is None:
        raise Refused(f"run {number} was claimed by another host just now")
    return got
