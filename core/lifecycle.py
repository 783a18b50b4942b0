"""Process lifecycle shared by every daemon: signals, waiting, the instance lock, ``main()``.

A service is ``async def run(settings, stop: asyncio.Event) -> int``. ``serve()`` wraps it: it
configures logging once, takes the one-instance lock, installs the signal handlers and runs the
coroutine under uvloop. Signal handlers only change state: the first SIGTERM/SIGINT sets ``stop``
(stop claiming, finish or hand back the current unit within the grace period); the second cancels
the main task, so the process exits at once after its ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import sdnotify
import uvloop

from straxd.core.errors import StraxdError
from straxd.core.logging import get_logger

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class AlreadyRunning(StraxdError):
    """Another instance of the same service holds this host's lock file."""


async def wait_for_stop(stop: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``stop`` is set or ``timeout_s`` passes; True if stop was set."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(timeout_s, 0.0))
    return stop.is_set()


async def ticker(period_s: float, stop: asyncio.Event) -> AsyncIterator[float]:
    """Yield once per ``period_s`` (first tick at once) until ``stop`` is set.

    The period does not drift with the time the caller spends per tick; a tick that overran is
    followed at once by the next. Yields the monotonic time of the tick.
    """
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    next_tick = time.monotonic()
    while not stop.is_set():
        yield next_tick
        # An overrun tick is followed at once by the next, without building up a backlog.
        next_tick = max(next_tick + period_s, time.monotonic())
        if await wait_for_stop(stop, next_tick - time.monotonic()):
            return


class InstanceLock:
    """An exclusive ``flock`` on ``<state_dir>/<service>-<host>.lock`` holding the owner's pid.

    The kernel drops the lock when the process dies, even by SIGKILL, so a stale file never
    blocks a restart, and nothing ever kills another process to take it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunning(
                f"another instance holds {self.path} (pid {holder}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Drop the lock (the file stays; its content is only informative)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class SystemdNotifier:
    """READY/STOPPING/WATCHDOG/STATUS messages to systemd; silent when not under systemd."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier() if os.environ.get("NOTIFY_SOCKET") else None

    def notify(self, message: str) -> None:
        """Send one ``KEY=value`` line (no-op outside systemd)."""
        if self._notifier is not None:
            self._notifier.notify(message)


def install_signal_handlers(stop: asyncio.Event, main_task: asyncio.Task[int]) -> None:
    """First SIGTERM/SIGINT sets ``stop``; a second one cancels ``main_task``."""
    loop = asyncio.get_running_loop()
    log = get_logger()

    def _on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.info("shutdown_requested", signal=name, hint="send again to exit now")
            stop.set()
        else:
            log.warning("shutdown_forced", signal=name)
            main_task.cancel(msg=f"second {name}")

    for sig in _HANDLED_SIGNALS:
        loop.add_signal_handler(sig, _on_signal, sig)


ServiceRun = Callable[[asyncio.Event], Coroutine[Any, Any, int]]


def serve(service: str, lock_path: Path | None, run: ServiceRun) -> int:
    """Run one service to completion under uvloop and return its exit code.

    ``run`` receives the stop event. Logging must already be configured. A second signal makes
    the exit code 128 + signal number, as a shell reports a killed command.
    """
    log = get_logger()
    lock = InstanceLock(lock_path) if lock_path is not None else None
    try:
        if lock is not None:
            lock.acquire()
    except AlreadyRunning as err:
        log.error("already_running", service=service, error=str(err))
        return EXIT_FAILED
    except OSError as err:
        log.error("lock_unavailable", path=str(lock_path), error=err.strerror)
        return EXIT_FAILED
    try:
        return uvloop.run(_supervise(run))
    finally:
        if lock is not None:
            lock.release()


async def _supervise(run: ServiceRun) -> int:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    install_signal_handlers(stop, task)
    notifier = SystemdNotifier()
    notifier.notify("READY=1")
    try:
        return await task
    except asyncio.CancelledError:
        # Only a second signal cancels the service task; report it like a shell would.
        return 128 + signal.SIGTERM
    finally:
        notifier.notify("STOPPING=1")
        for sig in _HANDLED_SIGNALS:
            asyncio.get_running_loop().remove_signal_handler(sig)
