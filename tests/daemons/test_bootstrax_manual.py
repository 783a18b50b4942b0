"""bootstrax's manual actions, test mode and command line, as processes."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.daemons.bootstrax_env import Daq, process_gone, wait_for
from tests.daemons.test_bootstrax import ONCE, check_consistent


class TestManual:
    def test_process_refuses_done_run_unless_forced(self, daq: Daq) -> None:
        """--process of a done run exits 2; with --force it is redone, still one entry per type."""
        daq.fakedaq(40, seconds=2, rate=3)
        assert daq.bootstrax("eb1", *ONCE).returncode == 0
        refused = daq.bootstrax("eb1", "--production", "--cores", "1", "--process", "40")
        assert refused.returncode == 2
        assert "is done; pass --force" in refused.stdout
        forced = daq.bootstrax("eb1", "--production", "--cores", "1", "--process", "40", "--force")
        assert forced.returncode == 0, forced.stdout[-3000:]
        assert daq.bx(40)["epoch"] >= 3  # claimed, revoked by --force, claimed again
        check_consistent(daq, 40, "eb1")
        deleted = [d["type"] for d in daq.run(40).get("deleted_data", [])]
        assert "raw_records" in deleted  # the first output was recorded as replaced

    def test_fail_stops_the_owner(self, daq: Daq) -> None:
        """--fail of a run in processing: the owner's child stops, nothing is registered."""
        writer = daq.fakedaq_live(41, seconds=20, rate=4)
        host = daq.host("eb1")
        child = wait_for("child", lambda: (daq.status("eb1") or {}).get("child_pid"), 60)
        status = daq.status("eb1")
        assert status["run_id"] == "000041" and status["phase"] == "processing"
        assert status["targets"] == ["event_info", "online_peak_monitor"] and status["cores"] == 1
        leased = daq.bootstrax("eb9", "--production", "--process", "41")
        assert leased.returncode == 2 and "leased by eb1" in leased.stdout
        failed = daq.bootstrax("eb9", "--production", "--fail", "41", "bad", "cable")
        assert failed.returncode == 0, failed.stdout
        wait_for("owner's child gone", lambda: process_gone(child), 20)
        bx = daq.bx(41)
        assert bx["state"] == "failed" and "Manually set failed state. bad cable" in bx["reason"]
        assert bx["n_failures"] == 1 and bx["host"] == "eb9"
        assert daq.processed_entries(41) == []
        assert host.proc.poll() is None  # the owner lives on
        assert '"lease_lost"' in host.output()
        writer.kill()
        host.stop()

    def test_abandon_is_never_claimed(self, daq: Daq) -> None:
        daq.fakedaq(42, seconds=2, rate=3)
        done = daq.bootstrax("eb1", "--production", "--abandon", "42", "wrong", "mode")
        assert done.returncode == 0, done.stdout
        assert daq.bx(42)["state"] == "abandoned"
        assert "wrong mode" in daq.bx(42)["reason"]
        assert daq.bootstrax("eb1", *ONCE).returncode == 0
        assert daq.bx(42)["state"] == "abandoned"
        assert daq.processed_entries(42) == []


class TestTestMode:
    def test_writes_nothing_to_the_database(self, daq: Daq) -> None:
        """Without --production: output in --test_output, the run document untouched."""
        daq.fakedaq(43, seconds=2, rate=3)
        before = daq.run(43)
        out = daq.root / "test-output"
        done = daq.bootstrax("eb1", "--once", "--cores", "1", "--test_output", str(out))
        assert done.returncode == 0, done.stdout[-3000:]
        assert daq.run(43) == before
        assert daq.daq["straxd_status"].count_documents({}) == 0
        assert daq.daq["log"].count_documents({}) == 0
        assert any(p.name.startswith("000043-event_info-") for p in out.iterdir())


class TestCommandLine:
    def test_original_recommended_command_line(self, daq: Daq) -> None:
        """The original's flags are accepted; those without effect are named in a warning."""
        done = daq.bootstrax(
            "eb1", "--production", "--infer_mode", "--delete_live", "--undying", "--once",
            "--processor", "threaded_mailbox",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout
        assert '"flags_without_effect"' in done.stdout and "--processor" in done.stdout

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--targets", "event_info", "events_nv"], "not data types straxd provides"),
            (["--targets", "peaklets", "peaklets"], "lists a type twice"),
            (["--fail", "run7"], "needs a run number"),
            (["--cores", "0"], "--cores must be -1 or at least 1"),
        ],
    )
    def test_usage_errors_exit_2(self, daq: Daq, args: list[str], message: str) -> None:
        done = daq.bootstrax("eb1", *args)
        assert done.returncode == 2
        assert message in done.stderr

    def test_help_explains(self, daq: Daq) -> None:
        done = daq.bootstrax("eb1", "--help")
        assert done.returncode == 0
        for flag in ("--production", "--process", "--delete_live", "--once", "--undying"):
            assert flag in done.stdout

    def test_process_unknown_run(self, daq: Daq) -> None:
        done = daq.bootstrax("eb1", "--production", "--process", "999")
        assert done.returncode == 2 and "does not exist" in done.stdout


def test_retry_due_run_is_claimed(daq: Daq) -> None:
    """A failed run whose next_retry has passed is retried and finished."""
    daq.fakedaq(44, seconds=2, rate=3)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    daq.runs.update_one(
        {"number": 44},
        {"$set": {"bootstrax": {"state": "failed", "n_failures": 2, "next_retry": past}}},
    )
    done = daq.bootstrax("eb1", *ONCE)
    assert done.returncode == 0, done.stdout[-3000:]
    assert '"kind": "retry"' in done.stdout
    check_consistent(daq, 44, "eb1")
    assert daq.bx(44)["n_failures"] == 2


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("max_processing_time_s", "Processing took longer than 3 s"),
        ("max_no_write_time_s", "No data written for 3 s"),
    ],
)
def test_supervision_timeouts_kill_and_fail(daq: Daq, setting: str, reason: str) -> None:
    """A run over a supervision limit: the child is killed and the run failed with the reason."""
    daq.daq["bootstrax_config"].update_one({}, {"$set": {setting: 3.0}})
    writer = daq.fakedaq_live(45, seconds=60, rate=2)
    host = daq.host("eb1")
    child = wait_for("child", lambda: (daq.status("eb1") or {}).get("child_pid"), 60)
    bx = daq.wait_state(45, "failed", timeout_s=60)
    assert reason in bx["reason"]
    assert process_gone(child)
    writer.kill()
    host.stop()
