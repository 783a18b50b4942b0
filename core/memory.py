"""Resident memory of processes, from /proc (Linux), for logs, heartbeats and run documents."""

from __future__ import annotations

import resource
from pathlib import Path


def _status_mb(pid: int | str, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM).

    ``ru_maxrss`` is not used: Linux carries it over from the parent across fork and exec, so a
    child of a big process would report the parent's peak.
    """
    peak = _status_mb("self", "VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb(pid: int) -> float | None:
    """The current resident memory of a process in MB (None if it is gone)."""
    return _status_mb(pid, "VmRSS")
