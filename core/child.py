"""A supervised child process: spawning, its output, and killing its whole process group.

bootstrax runs each run in a fresh interpreter (``python -m straxd.daemons.straxer --supervised``)
so a stuck or crashing run can be killed and its memory returned. The child is its own session
(process group), so SIGTERM, a grace period and then SIGKILL reach everything it started. It
dies with its parent two ways: the kernel's parent-death signal, and end-of-file on the stdin
pipe that only the parent holds open (portable, and it also covers a parent that closes it on
purpose). Everything the child prints is kept in a per-run log file; JSON lines are parsed so the
parent can turn them into its own logs, heartbeats and failure reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from straxd.core.logging import get_logger

_PR_SET_PDEATHSIG = 1
# Plain-text lines (a traceback printed by the interpreter) kept for the failure reason.
_TAIL_LINES = 40


def die_with_parent() -> None:
    """In the child: get SIGKILL when the parent dies (Linux), and exit now if it already has."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent == 1 or os.getppid() != parent:
        os._exit(1)  # the parent died before the signal was armed


async def stop_on_stdin_eof(stop: asyncio.Event) -> None:
    """In the child: set ``stop`` when stdin reaches end-of-file (the parent is gone)."""

    class _Watcher(asyncio.Protocol):
        def eof_received(self) -> bool | None:
            stop.set()
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            stop.set()

    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(_Watcher, sys.stdin)


class ChildProcess:
    """One supervised child: start it, follow its output, stop it."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.on_event = on_event
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.errors: list[str] = []
        self.last_output = time.monotonic()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid (also its process-group id), once started."""
        return None if self.proc is None else self.proc.pid

    async def start(self) -> None:
        """Spawn the child in its own session with stdin/stdout pipes."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            limit=1 << 20,
        )
        self._reader = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with self.log_path.open("ab") as log:
            while line := await self.proc.stdout.readline():
                log.write(line)
                log.flush()
                self.last_output = time.monotonic()
                self._interpret(line.decode(errors="replace").rstrip("\n"))

    def _interpret(self, text: str) -> None:
        event: Any = None
        if text.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(text)
        if not isinstance(event, dict):
            self.tail.append(text)
            return
        if event.get("level") in ("error", "critical"):
            self.errors.append(str(event.get("error") or event.get("event")))
        if self.on_event is not None:
            self.on_event(event)

    async def wait(self) -> int:
        """Wait for the child to exit and its output to be read; the exit code."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return code

    def running(self) -> bool:
        """Whether the child has not exited yet."""
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace_s: float) -> int | None:
        """SIGTERM to the process group, ``grace_s`` to exit, then SIGKILL; the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace_s)
            except TimeoutError:
                get_logger().warning("child_killed", pid=self.proc.pid, grace_s=grace_s)
        # Whatever the leader did, nothing of the group may outlive it.
        _signal_group(self.proc.pid, signal.SIGKILL)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return await self.wait()

    def failure_text(self) -> str:
        """What the child said about its failure: error events, then the plain-text tail."""
        parts = [*self.errors[-5:], *self.tail]
        return "\n".join(parts) if parts else "(the child printed nothing)"


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def newest_mtime(root: Path) -> float | None:
    """The newest modification time of any file under ``root`` (None if there is none)."""
    newest: float | None = None
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                mtime = os.stat(os.path.join(directory, name)).st_mtime
                newest = mtime if newest is None else max(newest, mtime)
    return newest
