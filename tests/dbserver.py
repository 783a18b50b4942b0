"""A SecantusDB server as its own process, with on-disk storage, that tests can stop and restart.

Tests that check behaviour across database outages use it; most tests use the in-process
session server of conftest.py instead.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pymongo.errors

SECANTUSD = Path(sys.executable).with_name("secantusd-py")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(uri: str, timeout_s: float = 30.0) -> None:
    """Block until the server answers a ping (pymongo's own server selection does the waiting)."""
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout_s * 1000)
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


class MongoProcess:
    """secantusd-py on 127.0.0.1:<port> storing its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, standalone: bool = False) -> None:
        self.data_dir = data_dir
        self.standalone = standalone
        self.port = port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self._config = data_dir.with_name(data_dir.name + "-secantusd.toml")
        self._config.write_text("# empty: keep secantusd from reading a config elsewhere\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start (or restart) the server on the same port and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(SECANTUSD),
                "--config",
                str(self._config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.data_dir),
                "--log-level",
                "WARNING",
                *(["--standalone"] if self.standalone else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(self.uri, timeout_s)
        except pymongo.errors.PyMongoError:
            self.kill()
            raise RuntimeError(f"secantusd-py did not come up on port {self.port}") from None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait for a clean exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout_s)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: an abrupt outage."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def wait_stopped(self) -> None:
        """Wait until the port is free again (after stop or kill)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"port {self.port} still busy")
