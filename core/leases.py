"""Leases with fencing on the processing sub-document of a run (``bootstrax`` or ``restrax``).

A claim is one atomic ``find_one_and_update`` that sets ``state``, ``host``, ``time`` and
``lease_until`` and increments ``epoch``. The claimer gets the new epoch and makes every later
write about that run conditional on ``host == me and epoch == E`` (a *fenced* write). A write that
matches nothing means the run was taken over: the worker stops and cleans only its own temporary
output. A heartbeat renews the lease; a lease whose ``lease_until`` has passed may be claimed by
any peer, which increments the epoch and so fences the previous owner out.

Clock skew. ``lease_until`` is written with the claimer's clock and compared with the reclaiming
peer's clock, so a peer whose clock runs ahead by ``s`` seconds sees leases expire ``s`` seconds
early. With the default 30 s lease renewed every 10 s, skews up to about 15 s leave a live owner
its lease; NTP keeps event builders within milliseconds. A larger skew can only make a peer take
over a run that is still being processed: the epoch increment then fences the old owner out, its
next fenced write fails and it stops, so the cost is duplicated work, never two owners writing
registered data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from straxd.core.db import Collection, utcnow
from straxd.core.errors import LeaseLost

DEFAULT_LEASE_S = 30.0


@dataclass(frozen=True)
class Lease:
    """What the claimer holds: the run, its host name and the epoch of the claim."""

    number: int
    host: str
    epoch: int
    sub: str = "bootstrax"

    def fence(self) -> dict[str, Any]:
        """The filter that matches the run only while this lease is current."""
        return {
            "number": self.number,
            f"{self.sub}.host": self.host,
            f"{self.sub}.epoch": self.epoch,
        }


def expired_lease(sub: str = "bootstrax", now: dt.datetime | None = None) -> dict[str, Any]:
    """Query part matching runs whose lease has run out (any peer may claim them)."""
    return {f"{sub}.lease_until": {"$lt": now or utcnow()}}


def no_live_lease(sub: str = "bootstrax", now: dt.datetime | None = None) -> dict[str, Any]:
    """Query part matching runs nobody holds: never leased, released, or expired."""
    return {
        "$or": [
            {f"{sub}.lease_until": {"$exists": False}},
            {f"{sub}.lease_until": None},
            expired_lease(sub, now),
        ]
    }


async def claim(
    runs: Collection,
    query: Mapping[str, Any],
    host: str,
    *,
    state: str = "considering",
    sub: str = "bootstrax",
    lease_s: float = DEFAULT_LEASE_S,
    sort: list[tuple[str, int]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], Lease] | None:
    """Atomically claim the first run matching ``query`` that nobody holds.

    Returns the updated document and the lease, or None when nothing is claimable.
    """
    now = utcnow()
    fields = {
        f"{sub}.state": state,
        f"{sub}.host": host,
        f"{sub}.time": now,
        f"{sub}.lease_until": now + dt.timedelta(seconds=lease_s),
        **{f"{sub}.{key}": value for key, value in (extra or {}).items()},
    }
    document = await runs.find_one_and_update(
        {"$and": [dict(query), no_live_lease(sub, now)]},
        {"$set": fields, "$inc": {f"{sub}.epoch": 1}},
        sort=sort or [("start", -1)],
        return_document=ReturnDocument.AFTER,
    )
    if document is None:
        return None
    return document, Lease(document["number"], host, int(document[sub]["epoch"]), sub)


async def claim_first(
    runs: Collection,
    queries: Sequence[tuple[str, Mapping[str, Any]]],
    host: str,
    **options: Any,
) -> tuple[str, dict[str, Any], Lease] | None:
    """Claim with the first of ``(kind, query)`` that finds a run, in order of preference.

    ``options`` are ``claim``'s. Returns the kind of the query that claimed, the document and
    the lease; None when no query finds a claimable run.
    """
    for kind, query in queries:
        got = await claim(runs, query, host, **options)
        if got is not None:
            return kind, *got
    return None


async def renew(runs: Collection, lease: Lease, lease_s: float = DEFAULT_LEASE_S) -> bool:
    """Extend the lease (and refresh ``time``); False if it was taken over.

    Conditional on host and epoch only, so a lease that expired but was not claimed by anyone
    yet is simply renewed.
    """
    now = utcnow()
    result = await runs.update_one(
        lease.fence(),
        {
            "$set": {
                f"{lease.sub}.time": now,
                f"{lease.sub}.lease_until": now + dt.timedelta(seconds=lease_s),
            }
        },
    )
    return result.matched_count == 1


async def fenced_update(runs: Collection, lease: Lease, update: Mapping[str, Any]) -> None:
    """Apply a field-level update only while ``lease`` is current, else raise LeaseLost."""
    result = await runs.update_one(lease.fence(), dict(update))
    if result.matched_count != 1:
        raise LeaseLost(
            f"run {lease.number}: {lease.sub} lease of {lease.host} at epoch {lease.epoch} "
            "is no longer current (taken over or released)"
        )


async def still_owned(runs: Collection, lease: Lease) -> bool:
    """Whether ``lease`` is still the current one (a read; use before irreversible steps)."""
    return await runs.count_documents(lease.fence(), limit=1) == 1


async def release(
    runs: Collection, lease: Lease, phase: str = "interrupted", state: str | None = None
) -> bool:
    """Hand the run back: ``state`` (None: claimable again) with ``phase``, lease cleared."""
    result = await runs.update_one(
        lease.fence(),
        {
            "$set": {
                f"{lease.sub}.state": state,
                f"{lease.sub}.phase": phase,
                f"{lease.sub}.time": utcnow(),
                f"{lease.sub}.lease_until": None,
            }
        },
    )
    return result.matched_count == 1
