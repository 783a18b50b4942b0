"""restrax as a process: a bootstrax-processed run rewritten into the production folder."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
from pathlib import Path

import numpy as np
import pytest
import strax

from straxd.core.logging import get_logger
from straxd.core.memory import MALLOC_TUNABLES
from straxd.daemons.restrax_run import Worker
from tests.daemons.bootstrax_env import Daq, wait_for
from tests.daemons.test_bootstrax import ONCE

FAULT_POINTS = ("restrax_after_move", "restrax_after_register", "restrax_after_done")


def processed(daq: Daq, number: int) -> dict[str, np.ndarray]:
    """fakedaq + bootstrax: the run's registered types and their rows before restrax."""
    daq.fakedaq(number, 2, 3)
    done = daq.bootstrax("eb1", *ONCE)
    assert done.returncode == 0, done.stdout[-3000:]
    return {
        e["type"]: strax.io.dry_load_files(e["location"]) for e in daq.processed_entries(number)
    }


def check_invariants(daq: Daq, number: int, before: dict[str, np.ndarray]) -> None:
    """Every entry in the production folder, loadable, row for row equal; nothing left over."""
    run = daq.run(number)
    assert run["status"] == "eb_ready_to_upload" and run["restrax"]["state"] == "done"
    assert run["restrax"]["phase"] == "done"
    out = daq.root / "processed-eb1"
    entries = daq.processed_entries(number)
    assert {e["type"] for e in entries} == set(before)
    for entry in entries:
        assert Path(entry["location"]).parent == out, entry
        rows = strax.io.dry_load_files(entry["location"])
        for name in rows.dtype.names or ():
            np.testing.assert_array_equal(rows[name], before[entry["type"]][name])
    registered = {Path(e["location"]).name for e in entries}
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == registered
    assert not [p for p in (daq.root / "pre-eb1").iterdir() if p.name.startswith(f"{number:06d}-")]
    work = out / ".restrax-work"
    assert not work.exists() or not any(work.iterdir())


class TestRestrax:
    def test_end_to_end(self, daq: Daq) -> None:
        """Rewritten, verified, moved, registered, sources gone; memory recorded."""
        before = processed(daq, 80)
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 0, done.stdout[-3000:]
        check_invariants(daq, 80, before)
        run = daq.run(80)
        assert run["restrax"]["n_tries"] == 1 and run["restrax"]["memory_usage_mb"]["max"] > 0
        raw = next(e for e in run["data"] if e["type"] == "raw_records")
        assert raw["meta"]["compressor"] == "bz2"  # light rate: the strong codec
        assert '"move_only"' in done.stdout  # event types are only moved (skip_compression)

    @pytest.mark.parametrize("fault", FAULT_POINTS)
    def test_crash_at_each_step_then_rerun(self, daq: Daq, fault: str) -> None:
        before = processed(daq, 81)
        config = {"name": "restrax_config", "lease_s": 2.0, "heartbeat_interval_s": 1.0}
        daq.daq["restrax_config"].insert_one(config)
        died = daq.restrax("eb1", "--once", env={"STRAXD_FAULT_AT": fault})
        assert died.returncode == -signal.SIGKILL, died.stdout[-2000:]
        wait_for("lease expiry", lambda: _restrax_lease_free(daq, 81), 30)
        again = daq.restrax("eb1", "--once")
        assert again.returncode == 0, again.stdout[-3000:]
        check_invariants(daq, 81, before)

    def test_worker_crash_is_a_counted_failure_then_retried(self, daq: Daq) -> None:
        before = processed(daq, 82)
        daq.daq["restrax_config"].insert_one({"name": "restrax_config", "retry_base_s": 0.5})
        failed = daq.restrax("eb1", "--once", env={"STRAXD_FAULT_AT": "restrax_after_rechunk"})
        assert failed.returncode == 1
        rx = daq.run(82)["restrax"]
        assert rx["state"] == "failed" and rx["n_tries"] == 1 and "worker exited -9" in rx["reason"]
        assert all("pre-eb1" in e["location"] for e in daq.processed_entries(82))  # sources kept
        wait_for(
            "retry due", lambda: daq.run(82)["restrax"]["next_retry"] < dt.datetime.now(dt.UTC)
        )
        again = daq.restrax("eb1", "--once")
        assert again.returncode == 0, again.stdout[-3000:]
        check_invariants(daq, 82, before)
        assert daq.run(82)["restrax"]["n_tries"] == 2

    def test_bypass_mode_only_renames(self, daq: Daq) -> None:
        before = processed(daq, 83)
        inodes = {e["type"]: Path(e["location"]).stat().st_ino for e in daq.processed_entries(83)}
        done = daq.restrax("eb1", "--once", "--bypass_mode")
        assert done.returncode == 0, done.stdout[-3000:]
        check_invariants(daq, 83, before)
        after = {e["type"]: Path(e["location"]).stat().st_ino for e in daq.processed_entries(83)}
        assert after == inodes

    def test_config_changes_the_next_run(self, daq: Daq) -> None:
        """A smaller raw_records target size in the config gives the next run more chunks."""
        processed(daq, 84)
        assert daq.restrax("eb1", "--once").returncode == 0
        daq.daq["restrax_config"].insert_one(
            {
                "name": "restrax_config",
                "target_size": {"peak*": 1500.0, "_other": 1500.0, "_raw_records": 0.5},
            }
        )
        processed(daq, 85)
        assert daq.restrax("eb1", "--once").returncode == 0
        chunks = {}
        for number in (84, 85):
            entry = next(e for e in daq.processed_entries(number) if e["type"] == "raw_records")
            chunks[number] = len(strax.FileSytemBackend().get_metadata(entry["location"])["chunks"])
        assert chunks[85] > chunks[84] == 1


class TestBadInput:
    def test_missing_source_fails_and_keeps_the_rest(self, daq: Daq) -> None:
        processed(daq, 86)
        entry = next(e for e in daq.processed_entries(86) if e["type"] == "peaklets")
        Path(entry["location"]).rename(daq.root / "elsewhere")
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 1
        rx = daq.run(86)["restrax"]
        assert rx["state"] == "failed" and "source folder missing" in rx["reason"]
        assert daq.run(86)["status"] == "eb_finished_pre"
        assert all(
            Path(e["location"]).exists()
            for e in daq.processed_entries(86)
            if e["type"] != "peaklets"
        )

    def test_unreadable_metadata_fails_and_keeps_everything(self, daq: Daq) -> None:
        processed(daq, 85)
        entry = next(e for e in daq.processed_entries(85) if e["type"] == "raw_records")
        (meta,) = Path(entry["location"]).glob("*-metadata.json")
        meta.write_text('{"chunks": [')  # cut short, as by a full disk
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 1
        rx = daq.run(85)["restrax"]
        assert rx["state"] == "failed" and "metadata unreadable" in rx["reason"]
        assert meta.name in rx["reason"] and daq.run(85)["status"] == "eb_finished_pre"
        assert all(Path(e["location"]).is_dir() for e in daq.processed_entries(85))
        assert not list((daq.root / "processed-eb1").glob("000085-*"))

    def test_corrupted_chunk_fails_verification_sources_kept(self, daq: Daq) -> None:
        processed(daq, 87)
        entry = next(e for e in daq.processed_entries(87) if e["type"] == "raw_records")
        chunk = sorted(p for p in Path(entry["location"]).iterdir() if "metadata" not in p.name)[0]
        chunk.write_bytes(b"garbage")
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 1
        rx = daq.run(87)["restrax"]
        assert rx["state"] == "failed" and chunk.parent.name in rx["reason"]
        assert Path(entry["location"]).is_dir()
        assert not list((daq.root / "processed-eb1").glob("000087-*"))

    def test_foreign_folder_at_destination_quarantined(self, daq: Daq) -> None:
        before = processed(daq, 88)
        entry = next(e for e in daq.processed_entries(88) if e["type"] == "peaklets")
        foreign = daq.root / "processed-eb1" / Path(entry["location"]).name
        foreign.mkdir(parents=True)
        (foreign / "junk").write_text("not strax data")
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 0, done.stdout[-3000:]
        check_invariants(daq, 88, before)
        (quarantined,) = (daq.root / "unregistered-eb1").iterdir()
        assert (quarantined / "junk").read_text() == "not strax data"
        assert '"destination_quarantined"' in done.stdout

    def test_invalid_config_document(self, daq: Daq) -> None:
        daq.daq["restrax_config"].insert_one({"name": "restrax_config", "max_tries": "many"})
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 2 and "max_tries" in done.stdout


def _restrax_lease_free(daq: Daq, number: int) -> bool:
    until = (daq.run(number).get("restrax") or {}).get("lease_until")
    return until is None or until < dt.datetime.now(dt.UTC)


class TestOptions:
    def test_deep_compare_and_process_one_run(self, daq: Daq) -> None:
        """--process N --deep_compare handles that run only, comparing every field."""
        before = processed(daq, 89)
        processed(daq, 90)
        done = daq.restrax("eb1", "--process", "89", "--deep_compare")
        assert done.returncode == 0, done.stdout[-3000:]
        check_invariants(daq, 89, before)
        assert (daq.run(90).get("restrax") or {}).get("state") is None

    def test_gives_up_after_max_tries(self, daq: Daq) -> None:
        """Out of tries: no next retry, and the log asks for manual help."""
        processed(daq, 91)
        daq.daq["restrax_config"].insert_one({"name": "restrax_config", "max_tries": 1})
        entry = next(e for e in daq.processed_entries(91) if e["type"] == "peaklets")
        Path(entry["location"]).rename(daq.root / "elsewhere")
        done = daq.restrax("eb1", "--once")
        assert done.returncode == 1 and "manual help is needed" in done.stdout
        rx = daq.run(91)["restrax"]
        assert rx["n_tries"] == 1 and rx["next_retry"] is None
        assert '"run_claimed"' not in daq.restrax("eb1", "--once").stdout

    def test_second_instance_exits_1(self, daq: Daq) -> None:
        import subprocess
        import sys

        first = subprocess.Popen(
            [sys.executable, "-m", "straxd.daemons.restrax", "--production"],
            env={**daq.env, "STRAXD_HOST": "eb1", "STRAXD_OUTPUT_DIR": str(daq.root / "out")},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert first.stdout is not None
            wait_for("first started", lambda: "config_applied" in first.stdout.readline(), 60)
            second = daq.restrax("eb1")
            assert second.returncode == 1 and "restrax-eb1.lock" in second.stdout
            assert first.poll() is None
        finally:
            first.terminate()
            first.wait(timeout=60)


def test_invalid_config_while_running_keeps_the_old(daq: Daq) -> None:
    """A bad document while running is rejected with the reason; the next run still works."""
    import subprocess
    import sys

    log = daq.root / "restrax.log"
    env = {**daq.env, "STRAXD_HOST": "eb1", "STRAXD_PRE_DIR": str(daq.root / "pre-eb1"),
           "STRAXD_OUTPUT_DIR": str(daq.root / "processed-eb1")}  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "straxd.daemons.restrax", "--production"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for("started", lambda: "config_applied" in log.read_text(), 60)
        daq.daq["restrax_config"].insert_one({"name": "restrax_config", "max_tries": "many"})
        wait_for("rejected", lambda: "config_rejected" in log.read_text(), 30)
        assert "max_tries" in log.read_text()
        daq.daq["restrax_config"].delete_many({})
        before = processed(daq, 92)
        wait_for("restrax done", lambda: daq.run(92).get("status") == "eb_ready_to_upload", 120)
        wait_for("cleaned", lambda: daq.run(92)["restrax"].get("phase") == "done", 60)
        check_invariants(daq, 92, before)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_move_across_filesystems_copies_checks_deletes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """EXDEV from rename: copy to a temp name, check it, rename it, then delete the source."""
    import errno
    import os

    from straxd.daemons import restrax_place
    from tests.core.test_recompress import source_folder

    source = source_folder(tmp_path / "pre", [100, 200])
    target = tmp_path / "other-disk" / source.name
    target.parent.mkdir()
    real_rename, calls = os.rename, []

    def rename(a: object, b: object) -> None:
        calls.append((a, b))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(restrax_place.os, "rename", rename)
    restrax_place._move(source, target)
    assert not source.exists() and len(strax.io.dry_load_files(str(target))) == 300


class TestDryRun:
    """Without --production: rewrites into --test_output, reads the database, changes nothing."""

    def test_changes_nothing_but_its_output(self, daq: Daq) -> None:
        before = {96: processed(daq, 96), 97: processed(daq, 97)}
        runs_before = {n: daq.run(n) for n in before}
        pre = daq.root / "pre-eb1"
        pre_before = sorted((p.name, p.stat().st_mtime_ns) for p in pre.iterdir())
        log_before = daq.daq["log"].count_documents({})
        out = daq.root / "test-out"
        first = daq.restrax("eb1", "--process", "96", "--test_output", str(out), production=False)
        assert first.returncode == 0, first.stdout[-3000:]
        assert {p.name[:6] for p in out.iterdir()} == {"000096"}
        second = daq.restrax("eb1", "--test_output", str(out), production=False)  # every run
        assert second.returncode == 0, second.stdout[-3000:]
        moved = {
            (e["run_id"], e["data_type"])
            for e in map(json.loads, (first.stdout + second.stdout).splitlines())
            if e.get("event") == "would_move"
        }
        assert '"would_register"' in second.stdout and moved
        for number, rows_before in before.items():
            copies = [p for p in out.iterdir() if p.name.startswith(f"{number:06d}-")]
            rewritten = {p.name.split("-")[1] for p in copies}
            assert "raw_records" in rewritten and rewritten.isdisjoint(t for _, t in moved)
            assert rewritten | {t for r, t in moved if r == f"{number:06d}"} == set(rows_before)
            for copy in copies:
                rows = strax.io.dry_load_files(str(copy))
                assert rows.tobytes() == rows_before[copy.name.split("-")[1]].tobytes()
            assert daq.run(number) == runs_before[number]  # not a field written
        assert sorted((p.name, p.stat().st_mtime_ns) for p in pre.iterdir()) == pre_before
        assert daq.daq["log"].count_documents({}) == log_before
        third = daq.restrax("eb1", "--test_output", str(out), production=False)
        assert third.returncode == 0 and '"rewritten"' not in third.stdout  # already there

    def test_bad_input(self, daq: Daq) -> None:
        out = str(daq.root / "test-out")
        (daq.root / "pre-eb1").mkdir()
        missing = daq.restrax("eb1", "--process", "5", "--test_output", out, production=False)
        assert missing.returncode == 1 and '"no_data"' in missing.stdout
        nowhere = daq.restrax(
            "eb1", "--input_folder", str(daq.root / "nope"), "--test_output", out,
            production=False,
        )  # fmt: skip
        assert nowhere.returncode == 2 and "does not exist" in nowhere.stdout
        both = daq.restrax("eb1", "--input_folder", str(daq.root), production=True)
        assert both.returncode == 2 and "--input_folder is for test mode" in both.stderr


async def test_worker_process_runs_with_the_malloc_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker child starts with straxd's glibc tunables and limits its heap, as straxer."""
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    worker = Worker(tmp_path / "work", tmp_path / "worker.log", 1, False, False)
    assert await worker.rewrite([], asyncio.Event(), log=get_logger())
    result = json.loads((tmp_path / "work" / "result.json").read_text())
    assert result["malloc"] == {"tunables": ":".join(MALLOC_TUNABLES), "heap_limited": True}
