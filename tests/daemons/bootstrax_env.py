"""A small DAQ for bootstrax process tests: a database, fakedaq runs and bootstrax hosts.

Waiting is always on a condition in the database or the process table, with a deadline; a test
fails with what it was waiting for when the deadline passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pymongo

T = TypeVar("T")

# Short leases and periods so takeovers and retries happen within seconds in tests.
FAST_CONFIG = {
    "name": "bootstrax_config",
    "lease_s": 4.0,
    "heartbeat_interval_s": 1.0,
    "poll_interval_s": 1.0,
    "history_interval_s": 5.0,
    "kill_grace_s": 5.0,
}


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float = 120.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


class Host:
    """One bootstrax process on a pretend event builder."""

    def __init__(self, daq: Daq, name: str, args: list[str], extra_env: dict[str, str]) -> None:
        self.name = name
        self.log = daq.root / f"bootstrax-{name}.log"
        self.pre = daq.root / f"pre-{name}"
        env = {**daq.env, "STRAXD_HOST": name, "STRAXD_PRE_DIR": str(self.pre), **extra_env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "straxd.daemons.bootstrax", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=daq.root,
            )

    def signal(self, signum: int) -> None:
        """Send a signal to bootstrax (not to its child)."""
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 120.0) -> int:
        """Wait for the exit code."""
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        """Everything the process printed."""
        return self.log.read_text(errors="replace")


class Daq:
    """The database, the live_data folder and the processes of one test."""

    def __init__(self, root: Path, uri: str, runs_db: str, daq_db: str) -> None:
        self.root = root
        self.live = root / "live"
        self.uri = uri
        self.env = {
            **os.environ,
            "STRAXD_MONGO_URI": uri,
            "STRAXD_RUNS_DB": runs_db,
            "STRAXD_DAQ_DB": daq_db,
            "STRAXD_LIVE_DIR": str(self.live),
            "STRAXD_STATE_DIR": str(root / "state"),
        }
        self.client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=30_000
        )
        self.runs = self.client[runs_db]["runs"]
        self.daq = self.client[daq_db]
        self.hosts: list[Host] = []
        self.daq["bootstrax_config"].insert_one(dict(FAST_CONFIG))

    def fakedaq(self, number: int, seconds: float = 3, rate: float = 4, *extra: str) -> None:
        """Write a run as fast as possible (run document, live_data, end)."""
        done = subprocess.run(
            [sys.executable, "-m", "straxd.daemons.fakedaq", "--run", str(number),
             "--duration-s", str(seconds), "--rate-mbs", str(rate), "--seed", str(number), *extra],
            env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def fakedaq_live(self, number: int, seconds: float, rate: float = 4) -> subprocess.Popen[bytes]:
        """Start a realtime fakedaq run in the background."""
        return subprocess.Popen(
            [sys.executable, "-m", "straxd.daemons.fakedaq", "--run", str(number),
             "--duration-s", str(seconds), "--rate-mbs", str(rate), "--seed", str(number),
             "--realtime"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def host(self, name: str, *args: str, env: dict[str, str] | None = None) -> Host:
        """Start bootstrax as ``name`` (production unless told otherwise)."""
        host = Host(self, name, list(args) or ["--production", "--cores", "1"], env or {})
        self.hosts.append(host)
        return host

    def bootstrax(
        self, name: str, *args: str, env: dict[str, str] | None = None, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run bootstrax to completion (``--once``, ``--process``, manual actions)."""
        return subprocess.run(
            [sys.executable, "-m", "straxd.daemons.bootstrax", *args],
            env={**self.env, "STRAXD_HOST": name, "STRAXD_PRE_DIR": str(self.root / f"pre-{name}"),
                 **(env or {})},
            capture_output=True, text=True, timeout=timeout_s, cwd=self.root,
        )  # fmt: skip

    def restrax(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        timeout_s: float = 300,
        production: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run restrax for host ``name`` to completion (its pre folder is bootstrax's)."""
        mode = ["--production"] if production else []
        return subprocess.run(
            [sys.executable, "-m", "straxd.daemons.restrax", *mode, *args],
            env={**self.env, "STRAXD_HOST": name, "STRAXD_PRE_DIR": str(self.root / f"pre-{name}"),
                 "STRAXD_OUTPUT_DIR": str(self.root / f"processed-{name}"),
                 "STRAXD_UNREGISTERED_DIR": str(self.root / f"unregistered-{name}"),
                 **(env or {})},
            capture_output=True, text=True, timeout=timeout_s, cwd=self.root,
        )  # fmt: skip

    def run(self, number: int) -> dict[str, Any]:
        """The run document."""
        document = self.runs.find_one({"number": number})
        assert document is not None
        return document

    def bx(self, number: int) -> dict[str, Any]:
        """The run's ``bootstrax`` sub-document."""
        document = self.runs.find_one({"number": number}, {"bootstrax": 1})
        return (document or {}).get("bootstrax") or {}

    def wait_state(self, number: int, *states: str, timeout_s: float = 180) -> dict[str, Any]:
        """Wait until the run's bootstrax state is one of ``states``."""
        return wait_for(
            f"run {number} in {states}",
            lambda: self.bx(number) if self.bx(number).get("state") in states else None,
            timeout_s,
        )

    def status(self, host: str) -> dict[str, Any] | None:
        """The current status document of bootstrax on ``host``."""
        return self.daq["straxd_status"].find_one({"service": "bootstrax", "host": host})

    def processed_entries(self, number: int) -> list[dict[str, Any]]:
        """The run's data entries other than live_data."""
        return [e for e in self.run(number).get("data", []) if e["type"] != "live"]

    def close(self) -> None:
        """Stop every host and close the client."""
        for host in self.hosts:
            host.stop()
        self.client.close()
