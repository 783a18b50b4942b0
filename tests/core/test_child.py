"""Supervised children: output capture, killing the whole group, dying with the parent."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from straxd.core.child import ChildProcess, newest_mtime
from tests.daemons.bootstrax_env import process_gone, wait_for

# A child that talks, starts a grandchild that ignores SIGTERM, and then ignores SIGTERM itself.
STUBBORN = textwrap.dedent(
    """
    import json, signal, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print(json.dumps({"event": "progress", "raw_mb": 12.5, "fraction": 0.5}), flush=True)
    print(json.dumps({"event": "processing_failed", "level": "error", "error": "disk on fire"}),
          flush=True)
    print("Traceback (most recent call last):", flush=True)
    print(json.dumps({"event": "grandchild", "pid": grandchild.pid}), flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
    """
)


async def _until(check: Callable[[], object], timeout_s: float = 30.0) -> object:
    """Yield to the event loop until ``check`` returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return result


class TestChildProcess:
    async def test_output_events_and_group_kill(self, tmp_path: Path) -> None:
        """Events are parsed, text kept, the log written; stop() kills the whole group."""
        events: list[dict[str, object]] = []
        child = ChildProcess(
            [sys.executable, "-c", STUBBORN], tmp_path / "runs" / "x.log", on_event=events.append
        )
        await child.start()
        grandchild = await _until(
            lambda: next((e["pid"] for e in events if e["event"] == "grandchild"), None)
        )
        assert child.running()
        code = await child.stop(grace_s=0.5)
        assert code == -signal.SIGKILL
        # SIGKILL went to the whole group; under load the kernel may take a moment to end it.
        assert await _until(lambda: process_gone(int(grandchild)), timeout_s=10)  # type: ignore[arg-type]
        assert [e["event"] for e in events][:2] == ["progress", "processing_failed"]
        assert "disk on fire" in child.failure_text()
        assert "Traceback (most recent call last):" in child.failure_text()
        assert '"raw_mb": 12.5' in (tmp_path / "runs" / "x.log").read_text()

    async def test_exit_code_of_a_finished_child(self, tmp_path: Path) -> None:
        child = ChildProcess([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "y.log")
        await child.start()
        assert await child.wait() == 3
        assert not child.running()
        assert child.failure_text() == "(the child printed nothing)"


PARENT = textwrap.dedent(
    """
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c",
        "from straxd.core.child import die_with_parent; import time; die_with_parent(); "
        "print('armed', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    print(child.pid, flush=True)
    import time; time.sleep(600)
    """
)


def test_child_dies_with_its_parent() -> None:
    """kill -9 of the parent takes the armed child with it."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not process_gone(child)
    parent.kill()
    parent.wait()
    wait_for("child gone", lambda: process_gone(child), 10)


def test_newest_mtime(tmp_path: Path) -> None:
    assert newest_mtime(tmp_path) is None
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    mtime = newest_mtime(tmp_path)
    assert mtime is not None and abs(mtime - time.time()) < 60
