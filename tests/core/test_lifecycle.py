"""Lifecycle: waiting, the ticker, the instance lock, and signals on a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from straxd.core.lifecycle import AlreadyRunning, InstanceLock, ticker, wait_for_stop

SERVICE = Path(__file__).with_name("lifecycle_service.py")


class TestWaiting:
    async def test_wait_for_stop_returns_early_when_set(self) -> None:
        """A set stop event ends the wait at once, whatever the timeout."""
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        started = time.monotonic()
        assert await wait_for_stop(stop, 60) is True
        assert time.monotonic() - started < 5

    async def test_wait_for_stop_times_out(self) -> None:
        """Without stop the wait ends after its timeout and says so."""
        assert await wait_for_stop(asyncio.Event(), 0.01) is False

    async def test_ticker_stops_when_stop_is_set(self) -> None:
        """The ticker yields immediately, then ends as soon as stop is set."""
        stop = asyncio.Event()
        ticks = []
        async for tick in ticker(0.01, stop):
            ticks.append(tick)
            if len(ticks) == 3:
                stop.set()
        assert len(ticks) == 3
        assert ticks == sorted(ticks)

    async def test_ticker_rejects_bad_period(self) -> None:
        """A non-positive period is a programming error reported clearly."""
        with pytest.raises(ValueError, match="period_s"):
            async for _ in ticker(0, asyncio.Event()):
                pass


class TestInstanceLock:
    def test_second_lock_in_same_host_refused(self, tmp_path: Path) -> None:
        """A second holder of the same lock file is refused with the first one's pid."""
        path = tmp_path / "svc-host.lock"
        with InstanceLock(path), pytest.raises(AlreadyRunning, match="pid"):
            InstanceLock(path).acquire()
        with InstanceLock(path):  # released: can be taken again
            pass


def _start(lock: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVICE), str(lock), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _next_state(proc) == "ready"
    return proc


def _next_state(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"service exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
    state: str = json.loads(line)["state"]
    return state


class TestSignals:
    def test_first_sigterm_drains_and_exits_zero(self, tmp_path: Path) -> None:
        """1. start; 2. SIGTERM; 3. the service sees stop, drains, exits 0."""
        proc = _start(tmp_path / "l.lock", "drain")
        proc.send_signal(signal.SIGTERM)
        assert _next_state(proc) == "stopping"
        assert _next_state(proc) == "drained"
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        events = [json.loads(line)["event"] for line in proc.stderr.read().splitlines()]
        assert "shutdown_requested" in events

    def test_second_signal_exits_at_once(self, tmp_path: Path) -> None:
        """1. start a service that ignores stop; 2. SIGTERM; 3. SIGINT: exit 128+15 at once."""
        proc = _start(tmp_path / "l.lock", "hang")
        proc.send_signal(signal.SIGTERM)
        assert _next_state(proc) == "stopping"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM

    def test_second_instance_exits_one_and_kill9_frees_lock(self, tmp_path: Path) -> None:
        """A second instance exits 1 naming the lock; after kill -9 of the first, a new one runs."""
        lock = tmp_path / "l.lock"
        first = _start(lock, "drain")
        second = subprocess.run(
            [sys.executable, str(SERVICE), str(lock), "drain"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already_running" in second.stderr
        assert str(first.pid) in second.stderr
        first.kill()
        first.wait(timeout=30)
        third = _start(lock, "drain")
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=30) == 0
