"""Leases: atomic claims, renewals, fencing, expiry, and claimers in several processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from straxd.core.db import Databases, utcnow
from straxd.core.errors import LeaseLost
from straxd.core.leases import (
    Lease,
    claim,
    claim_first,
    fenced_update,
    release,
    renew,
    still_owned,
)
from tests.conftest import DbNames

CLAIMER = Path(__file__).with_name("claimer.py")


async def _insert_runs(dbs: Databases, n: int) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await dbs.runs.insert_many(
        [{"number": i, "start": start + dt.timedelta(minutes=i), "bootstrax": {}} for i in range(n)]
    )


class TestClaim:
    async def test_claim_sets_all_fields_at_once(self, dbs: Databases) -> None:
        """One update sets state, host, time, lease_until and increments epoch."""
        await _insert_runs(dbs, 3)
        got = await claim(dbs.runs, {}, "eb3", lease_s=30)
        assert got is not None
        document, lease = got
        assert lease == Lease(2, "eb3", 1)  # newest first
        sub = document["bootstrax"]
        assert (sub["state"], sub["host"], sub["epoch"]) == ("considering", "eb3", 1)
        assert (
            dt.timedelta(seconds=29) < sub["lease_until"] - sub["time"] <= dt.timedelta(seconds=30)
        )
        assert sub["time"].tzinfo is not None

    async def test_claim_first_takes_the_queries_in_order(self, dbs: Databases) -> None:
        """The first query that finds a run claims; later ones only when earlier find none."""
        await _insert_runs(dbs, 3)
        queries = [("odd", {"number": {"$in": [1]}}), ("any", {})]
        first = await claim_first(dbs.runs, queries, "eb3", lease_s=30)
        assert first is not None and first[0] == "odd" and first[2] == Lease(1, "eb3", 1)
        second = await claim_first(dbs.runs, queries, "eb3", lease_s=30, sub="restrax")
        assert second is not None and second[0] == "odd" and second[2].sub == "restrax"
        third = await claim_first(dbs.runs, queries, "eb3", lease_s=30)
        assert third is not None and third[0] == "any" and third[2].number == 2  # newest
        assert await claim_first(dbs.runs, [("odd", {"number": 1})], "eb4") is None

    async def test_held_run_is_not_claimed_again(self, dbs: Databases) -> None:
        """A run with a live lease is skipped; nothing left gives None."""
        await _insert_runs(dbs, 1)
        assert await claim(dbs.runs, {}, "eb3") is not None
        assert await claim(dbs.runs, {}, "eb4") is None

    async def test_expired_lease_is_reclaimed_with_new_epoch(self, dbs: Databases) -> None:
        """After expiry a peer claims the run; the epoch goes up and fences the old owner."""
        await _insert_runs(dbs, 1)
        got = await claim(dbs.runs, {}, "eb3", lease_s=0.05)
        assert got is not None
        old = got[1]
        await dbs.runs.update_one(
            {"number": 0}, {"$set": {"bootstrax.lease_until": utcnow() - dt.timedelta(seconds=1)}}
        )
        taken = await claim(dbs.runs, {}, "eb4")
        assert taken is not None
        new = taken[1]
        assert (new.host, new.epoch) == ("eb4", old.epoch + 1)
        assert not await renew(dbs.runs, old)
        with pytest.raises(LeaseLost, match="eb3 at epoch 1"):
            await fenced_update(dbs.runs, old, {"$set": {"bootstrax.state": "done"}})
        assert (await dbs.runs.find_one({"number": 0}))["bootstrax"]["state"] == "considering"


class TestFencing:
    async def test_stale_epoch_same_host_matches_nothing(self, dbs: Databases) -> None:
        """The same host with an older epoch (e.g. before its own restart) is fenced out."""
        await _insert_runs(dbs, 1)
        got = await claim(dbs.runs, {}, "eb3")
        assert got is not None
        lease = got[1]
        await release(dbs.runs, lease)
        again = await claim(dbs.runs, {}, "eb3")
        assert again is not None
        assert again[1].epoch == lease.epoch + 1
        with pytest.raises(LeaseLost):
            await fenced_update(dbs.runs, lease, {"$set": {"bootstrax.state": "busy"}})
        await fenced_update(dbs.runs, again[1], {"$set": {"bootstrax.state": "busy"}})
        assert (await dbs.runs.find_one({"number": 0}))["bootstrax"]["state"] == "busy"

    async def test_other_host_matches_nothing(self, dbs: Databases) -> None:
        """Another host with the same epoch number cannot write."""
        await _insert_runs(dbs, 1)
        got = await claim(dbs.runs, {}, "eb3")
        assert got is not None
        impostor = Lease(0, "eb4", got[1].epoch)
        with pytest.raises(LeaseLost):
            await fenced_update(dbs.runs, impostor, {"$set": {"bootstrax.state": "done"}})
        assert not await still_owned(dbs.runs, impostor)
        assert await still_owned(dbs.runs, got[1])

    async def test_expired_but_unclaimed_lease_can_be_renewed(self, dbs: Databases) -> None:
        """Renewal only checks host and epoch: a late heartbeat still keeps the run."""
        await _insert_runs(dbs, 1)
        got = await claim(dbs.runs, {}, "eb3")
        assert got is not None
        past = utcnow() - dt.timedelta(seconds=5)
        await dbs.runs.update_one({"number": 0}, {"$set": {"bootstrax.lease_until": past}})
        assert await renew(dbs.runs, got[1], lease_s=30)
        sub = (await dbs.runs.find_one({"number": 0}))["bootstrax"]
        assert sub["lease_until"] > utcnow() + dt.timedelta(seconds=25)

    async def test_release_makes_claimable_without_failure(self, dbs: Databases) -> None:
        """Handing back sets state None and phase interrupted; n_failures is untouched."""
        await _insert_runs(dbs, 1)
        got = await claim(dbs.runs, {}, "eb3")
        assert got is not None
        assert await release(dbs.runs, got[1])
        sub = (await dbs.runs.find_one({"number": 0}))["bootstrax"]
        assert (sub["state"], sub["phase"], sub["lease_until"]) == (None, "interrupted", None)
        assert "n_failures" not in sub
        assert await claim(dbs.runs, {"bootstrax.state": None}, "eb4") is not None


class TestConcurrentClaimers:
    async def test_tasks_in_one_process_claim_each_run_once(self, dbs: Databases) -> None:
        """20 concurrent tasks on 10 runs: every run claimed exactly once."""
        await _insert_runs(dbs, 10)
        results = await asyncio.gather(*(claim(dbs.runs, {}, f"h{i}") for i in range(20)))
        numbers = [r[1].number for r in results if r is not None]
        assert sorted(numbers) == list(range(10))

    def test_two_processes_ten_tasks_each(self, mongo_uri: str, db_names: DbNames) -> None:
        """2 processes x 10 tasks claiming 10 runs: each run claimed exactly once overall."""
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_uri)
        try:
            client[db_names.runs_db]["runs"].insert_many(
                [{"number": i, "start": i, "bootstrax": {"state": None}} for i in range(10)]
            )
            procs = [
                subprocess.Popen(
                    [sys.executable, str(CLAIMER), mongo_uri, db_names.runs_db, host, "10"],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for host in ("eb3", "eb4")
            ]
            claimed = []
            for proc in procs:
                out, _ = proc.communicate(timeout=120)
                assert proc.returncode == 0
                claimed += json.loads(out.splitlines()[-1])
            assert sorted(claimed) == list(range(10))
            owners = {
                d["number"]: d["bootstrax"]["host"] for d in client[db_names.runs_db]["runs"].find()
            }
            assert set(owners.values()) <= {"eb3", "eb4"}
        finally:
            client.drop_database(db_names.runs_db)
            client.close()
