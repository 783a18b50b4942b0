"""The console-script launcher: straxer re-executes itself once with the malloc tunables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from straxd.core.memory import MALLOC_TUNABLES, with_malloc_tunables
from straxd.daemons import launch

BIN = Path(sys.executable).parent


class _Exec(Exception):
    """Raised by the stand-in for os.execve, carrying what it was called with."""


def test_tunables_added_once_and_others_kept() -> None:
    default = ":".join(MALLOC_TUNABLES)
    env = with_malloc_tunables({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.cpu.x86_ibt=on"})
    assert env["GLIBC_TUNABLES"] == f"glibc.cpu.x86_ibt=on:{default}"
    assert env["PATH"] == "/bin"
    assert with_malloc_tunables(env) == env
    assert with_malloc_tunables({})["GLIBC_TUNABLES"] == default
    # A setting chosen by the operator wins; the other tunable is still added.
    assert with_malloc_tunables({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == {
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0:glibc.malloc.arena_max=1"
    }


def test_straxer_reexecutes_with_the_tunable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the tunable: exec of ``python -m straxd.daemons.straxer`` with the same args."""
    calls = []

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))
        raise _Exec

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(sys, "argv", ["straxer", "000001", "--target", "peaklets"])
    with pytest.raises(_Exec):
        launch.straxer()
    path, argv, env = calls[0]
    assert path == sys.executable
    assert argv == [
        sys.executable,
        "-m",
        "straxd.daemons.straxer",
        "000001",
        "--target",
        "peaklets",
    ]
    assert env["GLIBC_TUNABLES"] == ":".join(MALLOC_TUNABLES)


def test_straxer_console_script_runs() -> None:
    """The installed ``straxer`` goes through the launcher to straxer's own --help."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run(
        [str(BIN / "straxer"), "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: straxer" in done.stdout and "--max_inflight_mb" in done.stdout
