"""bootstrax's policy as processes: targets by mode, retries, tags, roles, disk, config, cleanup."""

from __future__ import annotations

import datetime as dt
import json

from tests.daemons.bootstrax_env import Daq, wait_for
from tests.daemons.test_bootstrax import ONCE, check_consistent


def configure(daq: Daq, **fields: object) -> None:
    daq.daq["bootstrax_config"].update_one({"name": "bootstrax_config"}, {"$set": fields})


def events(text: str, name: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in text.splitlines() if f'"event": "{name}"' in x]


def types_of(daq: Daq, number: int) -> set[str]:
    return {e["type"] for e in daq.processed_entries(number)}


class TestTargets:
    def test_raw_only_mode_and_fallback_mode(self, daq: Daq) -> None:
        """A noise run keeps raw data only; a PMT-gain run (led_calibration) falls back, warned."""
        daq.fakedaq(50, 2, 3, "--mode", "tpc_noise")
        daq.fakedaq(51, 2, 3, "--mode", "tpc_pmtgain")
        done = daq.bootstrax("eb1", *ONCE)
        assert done.returncode == 0, done.stdout[-3000:]
        for number in (50, 51):
            assert "raw_records" in types_of(daq, number)
            assert not {"peaklets", "event_info"} & types_of(daq, number)
        (warning,) = events(done.stdout, "targets_fallback")
        assert "led_calibration" in str(warning["reason"])
        logged = daq.daq["log"].find_one({"runid": 51, "message": {"$regex": "targets_fallback"}})
        assert logged is not None and logged["priority"] == 2


class TestBadRunDocuments:
    def test_bad_tags_and_unknown_mode(self, daq: Daq) -> None:
        """Tags that are not {name: ...} fail the run precisely; an unknown mode is processed."""
        daq.fakedaq(52, 2, 3)
        daq.fakedaq(53, 2, 3, "--mode", "something_new")
        daq.runs.update_one({"number": 52}, {"$set": {"tags": ["hold-processing"]}})
        done = daq.bootstrax("eb1", *ONCE)
        assert done.returncode == 1
        bx = daq.bx(52)
        assert bx["state"] == "failed" and "malformed run document: tags.0" in bx["reason"]
        check_consistent(daq, 53, "eb1")


class TestRetries:
    def test_retry_ladder_with_fewer_targets_until_the_limit(self, daq: Daq) -> None:
        """Corrupted live_data: fails naming the file, retried with fewer targets, stops at 3."""
        configure(
            daq, retry_base_s=1.0, retry_factor=2.0, retry_jitter=0.0, max_failures=3,
            remove_target_after_fails={"event*": 0, "online_peak*": 1, "*": 10},
        )  # fmt: skip
        daq.fakedaq(60, 2, 3)
        bad = sorted((daq.live / "000060" / "000000").iterdir())[0]
        bad.write_bytes(b"this is not lz4")
        host = daq.host("eb1")
        bx = wait_for(
            "third failure",
            lambda: daq.bx(60) if daq.bx(60).get("n_failures") == 3 and daq.bx(60).get(
                "state") == "failed" else None,
            180,
        )  # fmt: skip
        assert bad.name in bx["reason"]
        host.stop()
        planned = [e["targets"] for e in events(host.output(), "run_planned")]
        assert planned == [
            ["event_info", "online_peak_monitor"],
            ["online_peak_monitor"],
            ["raw_records"],
        ]
        wait_for("retry time passed", lambda: daq.bx(60)["next_retry"] < dt.datetime.now(dt.UTC))
        again = daq.bootstrax("eb1", *ONCE)
        assert again.returncode == 0 and '"run_claimed"' not in again.stdout
        assert daq.bx(60)["n_failures"] == 3


class TestTagsAndRoles:
    def test_hold_processing(self, daq: Daq) -> None:
        """A held run is not claimed, --process refuses it, --process --force processes it."""
        daq.fakedaq(61, 2, 3)
        daq.runs.update_one({"number": 61}, {"$set": {"tags": [{"name": "hold-processing"}]}})
        assert '"run_claimed"' not in daq.bootstrax("eb1", *ONCE).stdout
        refused = daq.bootstrax("eb1", "--production", "--process", "61")
        assert refused.returncode == 2 and "tagged hold-processing" in refused.stdout
        forced = daq.bootstrax("eb1", "--production", "--cores", "1", "--process", "61", "--force")
        assert forced.returncode == 0, forced.stdout[-3000:]
        check_consistent(daq, 61, "eb1")

    def test_roles(self, daq: Daq) -> None:
        """never: no claims; helper: only while more than helper_min_queue runs wait."""
        configure(daq, host_roles={"eb1": "never", "eb2": "helper"}, helper_min_queue=1)
        daq.fakedaq(62, 2, 3)
        daq.fakedaq(63, 2, 3)
        assert '"run_claimed"' not in daq.bootstrax("eb1", *ONCE).stdout
        helper = daq.bootstrax("eb2", *ONCE)
        assert len(events(helper.stdout, "run_claimed")) == 1
        assert daq.bootstrax("eb3", *ONCE).returncode == 0
        assert {daq.bx(62)["host"], daq.bx(63)["host"]} == {"eb2", "eb3"}


class TestDiskAndConfig:
    def test_waits_for_disk_space_then_continues(self, daq: Daq) -> None:
        """Over the limit bootstrax waits and says so; raising the limit lets it go on."""
        configure(daq, disk_max_used_percent=0.001)
        daq.fakedaq(64, 2, 3)
        host = daq.host("eb1")
        status = wait_for(
            "disk full status", lambda: (daq.status("eb1") or {}).get("state") == "disk full", 60
        )
        assert status
        assert daq.status("eb1")["disk_used_percent"] > 0.001
        assert daq.bx(64).get("state") is None
        configure(daq, disk_max_used_percent=100.0)
        daq.wait_state(64, "done", timeout_s=120)
        host.stop()
        assert '"disk_full_waiting"' in host.output()

    def test_gives_up_after_the_disk_wait(self, daq: Daq) -> None:
        """A disk that stays full: dead_bootstrax in the status, exit 1, the run untouched."""
        configure(daq, disk_max_used_percent=0.001, disk_max_wait_s=2.0, disk_check_interval_s=0.5)
        daq.fakedaq(65, 2, 3)
        done = daq.bootstrax("eb1", "--production", "--cores", "1")
        assert done.returncode == 1
        assert '"disk_full_gave_up"' in done.stdout
        assert daq.status("eb1")["state"] == "dead_bootstrax"
        assert daq.bx(65).get("state") is None

    def test_hot_reload_valid_and_invalid(self, daq: Daq) -> None:
        """A valid change applies with its diff; an invalid one is rejected, the old one kept."""
        host = daq.host("eb1")
        first = wait_for("status", lambda: daq.status("eb1"), 60)["config_hash"]
        configure(daq, lease_s=6.0)
        wait_for("new hash", lambda: daq.status("eb1")["config_hash"] != first, 5)
        applied = events(host.output(), "config_applied")[-1]
        assert applied["diff"] == {"lease_s": [4.0, 6.0]}
        good = daq.status("eb1")["config_hash"]
        configure(daq, lease_s="forever", mystery=1)
        wait_for("rejection", lambda: '"config_rejected"' in host.output(), 10)
        rejected = events(host.output(), "config_rejected")[-1]
        assert "mystery" in str(rejected["error"])
        assert daq.daq["log"].find_one({"message": {"$regex": "config_rejected"}}) is not None
        assert daq.status("eb1")["config_hash"] == good
        host.stop()


class TestCleanup:
    def test_sweep_fails_inconsistent_and_abandons_tagged(self, daq: Daq) -> None:
        now = dt.datetime.now(dt.UTC)
        base = {"start": now - dt.timedelta(hours=1), "end": now, "data": []}
        live = [{"type": "live", "host": "daq", "location": "/nowhere"}]
        raw = [{"type": "raw_records", "host": "eb9", "location": "/nowhere/x"}]
        daq.runs.insert_many(
            [
                {**base, "number": 70, "end": None, "data": raw, "bootstrax": {"state": "done"}},
                {**base, "number": 71, "data": live, "bootstrax": {"state": "done"}},
                {**base, "number": 72, "data": raw, "tags": [{"name": "abandon"}],
                 "bootstrax": {"state": "done"}},
                {**base, "number": 73, "tags": [{"name": "abandon"}],
                 "bootstrax": {"state": "failed", "n_failures": 10}},
                {**base, "number": 74, "data": raw, "bootstrax": {"state": "done"}},
            ]
        )  # fmt: skip
        old = now - dt.timedelta(hours=1)
        daq.daq["straxd_status"].insert_one(
            {"service": "bootstrax", "host": "eb7", "state": "idle", "time": old}
        )
        done = daq.bootstrax("eb1", *ONCE)
        assert done.returncode == 0, done.stdout[-3000:]
        states = {n: daq.bx(n)["state"] for n in range(70, 75)}
        assert states == {70: "failed", 71: "failed", 72: "abandoned", 73: "abandoned", 74: "done"}
        assert "did not yet end" in daq.bx(70)["reason"]
        assert "no processed data" in daq.bx(71)["reason"]
        assert daq.status("eb7")["state"] == "dead_bootstrax"
