"""The console-script launcher: straxer re-executes itself once with huge-page malloc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from straxd.core.memory import HUGEPAGE_TUNABLE, with_hugepage_malloc
from straxd.daemons import launch

BIN = Path(sys.executable).parent


class _Exec(Exception):
    """Raised by the stand-in for os.execve, carrying what it was called with."""


def test_tunable_added_once_and_others_kept() -> None:
    env = with_hugepage_malloc({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGEPAGE_TUNABLE}"
    assert env["PATH"] == "/bin"
    assert with_hugepage_malloc(env) == env
    assert with_hugepage_malloc({})["GLIBC_TUNABLES"] == HUGEPAGE_TUNABLE
    # A setting chosen by the operator wins.
    assert with_hugepage_malloc({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == {
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"
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
    assert env["GLIBC_TUNABLES"] == HUGEPAGE_TUNABLE


def test_straxer_console_script_runs() -> None:
    """The installed ``straxer`` goes through the launcher to straxer's own --help."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run(
        [str(BIN / "straxer"), "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: straxer" in done.stdout and "--max_inflight_mb" in done.stdout
