"""bootstrax as processes: live processing, many hosts, crashes, signals and bad runs."""

from __future__ import annotations

import datetime as dt
import os
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import strax

from straxd.core.finish import WORK_DIRNAME
from straxd.core.redax import LiveDataWriter, ReaderLayout
from tests.daemons.bootstrax_env import Daq, process_gone, wait_for

FAULT_POINTS = (
    "bootstrax_before_move",
    "bootstrax_after_move",
    "bootstrax_after_online_monitor",
    "bootstrax_after_register",
    "bootstrax_after_live_recorded",
)
ONCE = ("--production", "--once", "--cores", "1")


def check_consistent(daq: Daq, number: int, host: str) -> None:
    """A finished run: done, handed on, one entry per type, each loads with strax, no leftovers."""
    run = daq.run(number)
    assert run["bootstrax"]["state"] == "done"
    assert run["status"] == "eb_finished_pre"
    entries = daq.processed_entries(number)
    assert {e["host"] for e in entries} == {host}
    counts = Counter(e["type"] for e in entries)
    assert counts and max(counts.values()) == 1, counts
    assert {"raw_records", "peaklets", "event_info"} <= set(counts)
    for entry in entries:
        rows = strax.io.dry_load_files(entry["location"])
        metadata = strax.FileSytemBackend().get_metadata(entry["location"])
        assert len(rows) == sum(c["n"] for c in metadata["chunks"]), entry["type"]
    pre = Path(entries[0]["location"]).parent
    registered = {Path(e["location"]).name for e in entries}
    on_disk = {p.name for p in pre.iterdir() if p.name.startswith(f"{number:06d}-")}
    assert on_disk == registered
    work = pre / WORK_DIRNAME
    assert not work.exists() or not any(work.iterdir())
    monitor = daq.client[daq.runs.database.name]["online_monitor"]
    assert monitor.count_documents({"number": number, "provides_meta": True}) == 2


class TestLive:
    def test_live_run_processed_while_written(self, daq: Daq) -> None:
        """A 30 s realtime run is processed while written, registered, and live_data deleted."""
        writer = daq.fakedaq_live(1, seconds=30, rate=10)
        host = daq.host("eb1", "--production", "--cores", "1", "--delete_live")
        busy = daq.wait_state(1, "busy", timeout_s=60)
        assert writer.poll() is None, "processing started only after the run was written"
        assert busy["host"] == "eb1" and busy["epoch"] == 1
        assert writer.wait(timeout=120) == 0
        ended = dt.datetime.now(dt.UTC)
        daq.wait_state(1, "done", timeout_s=180)
        lag_s = (daq.bx(1)["finished_processing"] - ended).total_seconds()
        print(f"run end to done: {lag_s:.1f} s")
        # live_data goes after done, once the stored raw data is shown to hold all of it
        wait_for("live_data deleted", lambda: not (daq.live / "000001").exists(), 120)
        check_consistent(daq, 1, "eb1")
        run = daq.run(1)
        assert [d["type"] for d in run["deleted_data"]] == ["live"]
        assert "live" not in {e["type"] for e in run["data"]}
        events = strax.io.dry_load_files(
            next(e["location"] for e in run["data"] if e["type"] == "event_info")
        )
        assert len(events) > 10
        status = wait_for("idle status", lambda: daq.status("eb1")["state"] == "idle")
        assert status
        host.stop()
        assert host.proc.returncode == 0
        assert daq.status("eb1")["state"] == "stopped"


class TestManyHosts:
    def test_three_hosts_six_runs_each_once(self, daq: Daq) -> None:
        """Three hosts share six runs: each run processed exactly once, no duplicate entries."""
        for number in range(10, 16):
            daq.fakedaq(number, seconds=2, rate=3)
        hosts = [daq.host(f"eb{i}", *ONCE) for i in (3, 4, 5)]
        assert [h.wait(timeout_s=600) for h in hosts] == [0, 0, 0]
        owners: Counter[str] = Counter()
        for number in range(10, 16):
            bx = daq.bx(number)
            assert bx["epoch"] == 1, f"run {number} claimed {bx['epoch']} times"
            check_consistent(daq, number, bx["host"])
            owners[bx["host"]] += 1
        assert sum(owners.values()) == 6


class TestCrashes:
    def test_kill9_peer_takes_over(self, daq: Daq) -> None:
        """kill -9 mid-run: the child dies, a peer reclaims after expiry, nothing of A is kept."""
        writer = daq.fakedaq_live(2, seconds=15, rate=4)
        first = daq.host("eb1")
        wait_for("child running", lambda: (daq.status("eb1") or {}).get("child_pid"), 60)
        child = daq.status("eb1")["child_pid"]
        first.signal(signal.SIGKILL)
        first.wait()
        wait_for(f"child {child} gone", lambda: process_gone(child), 15)
        peer = daq.host("eb2")
        daq.wait_state(2, "done", timeout_s=240)
        assert writer.wait(timeout=60) == 0
        bx = daq.bx(2)
        assert (bx["host"], bx["epoch"], bx["n_takeovers"]) == ("eb2", 2, 1)
        check_consistent(daq, 2, "eb2")
        renamed = [p.name for p in first.pre.iterdir() if p.name.startswith("000002-")]
        assert renamed == [], "the dead host's output was moved into its pre folder"
        peer.stop()

    @pytest.mark.parametrize("fault", FAULT_POINTS)
    def test_fault_point_then_restart(self, daq: Daq, fault: str) -> None:
        """Dying at each step of the finish leaves a state the next attempt completes."""
        daq.fakedaq(3, seconds=2, rate=3)
        died = daq.bootstrax("eb1", *ONCE, "--delete_live", env={"STRAXD_FAULT_AT": fault})
        assert died.returncode == -signal.SIGKILL, died.stdout[-2000:]
        wait_for("lease expiry", lambda: _lease_free(daq, 3), 30)
        again = daq.bootstrax("eb1", *ONCE, "--delete_live")
        assert again.returncode == 0, again.stdout[-3000:]
        check_consistent(daq, 3, "eb1")
        run = daq.run(3)
        live = [e for e in run["data"] if e["type"] == "live"]
        deleted = [d for d in run.get("deleted_data", []) if d["type"] == "live"]
        if fault == "bootstrax_after_register":
            # Done before the deletion: live_data stays, registered, for ajax to remove later.
            assert len(live) == 1 and not deleted and (daq.live / "000003").is_dir()
        else:
            assert not live and len(deleted) == 1


def _lease_free(daq: Daq, number: int) -> bool:
    until = daq.bx(number).get("lease_until")
    return until is None or until < dt.datetime.now(dt.UTC)


class TestSignals:
    def test_sigterm_hands_back_then_finishes(self, daq: Daq) -> None:
        """SIGTERM mid-run: handed back (no failure), child gone; a restart finishes the run."""
        writer = daq.fakedaq_live(4, seconds=12, rate=4)
        host = daq.host("eb1")
        wait_for("child running", lambda: (daq.status("eb1") or {}).get("child_pid"), 60)
        child = daq.status("eb1")["child_pid"]
        host.signal(signal.SIGTERM)
        assert host.wait(timeout_s=60) == 0
        assert process_gone(child)
        bx = daq.bx(4)
        assert (bx["state"], bx["phase"], bx.get("n_failures", 0)) == (None, "interrupted", 0)
        assert "run_handed_back" in host.output()
        assert writer.wait(timeout=60) == 0
        again = daq.bootstrax("eb1", *ONCE)
        assert again.returncode == 0, again.stdout[-3000:]
        check_consistent(daq, 4, "eb1")

    def test_second_instance_exits_1(self, daq: Daq) -> None:
        """A second bootstrax for the same host exits 1 naming the lock; the first runs on."""
        first = daq.host("eb1")
        wait_for("first heartbeat", lambda: daq.status("eb1"), 60)
        second = daq.bootstrax("eb1", "--production")
        assert second.returncode == 1
        assert "already_running" in second.stdout and "bootstrax-eb1.lock" in second.stdout
        assert first.proc.poll() is None
        first.stop()
        assert first.proc.returncode == 0


def _insert_run(daq: Daq, number: int, **changes: object) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=30)
    threads = {"reader0_reader_0": 2}
    document: dict[str, object] = {
        "number": number,
        "start": start,
        "end": start + dt.timedelta(seconds=5),
        "daq_config": {
            "processing_threads": threads,
            "compressor": "lz4",
            "strax_fragment_payload_bytes": 220,
            "strax_chunk_length": 5.0,
            "strax_chunk_overlap": 0.5,
        },
        "data": [{"type": "live", "host": "daq", "location": str(daq.live)}],
        "bootstrax": {},
    }
    document.update(changes)
    daq.runs.insert_one(document)
    writer = LiveDataWriter(daq.live / f"{number:06d}", ReaderLayout(threads))
    writer.write_chunk(0, np.zeros(0, strax.raw_record_dtype()))
    writer.finish()


class TestBadRuns:
    def test_each_bad_run_fails_alone_with_its_reason(self, daq: Daq) -> None:
        """Malformed documents, missing live_data and empty runs fail; a good run is done."""
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        _insert_run(daq, 30, daq_config=None)
        _insert_run(daq, 31, daq_config={"compressor": "lz4"})
        _insert_run(daq, 32, data=[{"type": "live", "host": "daq", "location": str(daq.root)}])
        _insert_run(daq, 33, end=start - dt.timedelta(days=1))
        _insert_run(daq, 34)  # readers wrote nothing
        daq.fakedaq(35, seconds=2, rate=3)
        done = daq.bootstrax("eb1", *ONCE)
        assert done.returncode == 1, done.stdout[-3000:]
        expected = {
            30: ("no daq_config", False),
            31: ("no processing_threads", False),
            32: ("No live data at claimed location", True),
            33: ("before it starts", False),
            34: ("no data in live_data", False),
        }
        for number, (reason, retried) in expected.items():
            bx = daq.bx(number)
            assert bx["state"] == "failed", (number, bx)
            assert reason in bx["reason"] and bx["reason"].startswith("eb1:"), (number, bx)
            assert bx["n_failures"] == 1
            assert (bx["next_retry"] is not None) == retried, number
            assert daq.processed_entries(number) == []
        check_consistent(daq, 35, "eb1")
        logged = daq.daq["log"].count_documents({"runid": {"$in": list(expected)}})
        assert logged == len(expected)
        assert os.listdir(daq.root / "pre-eb1" / WORK_DIRNAME) == []
