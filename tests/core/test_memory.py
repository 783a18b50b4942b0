"""Process memory from /proc: a child of a big process reports its own peak."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from straxd.core.memory import peak_rss_mb, rss_mb

_CHILD = "from straxd.core.memory import peak_rss_mb; print(peak_rss_mb())"


def test_child_peak_is_its_own() -> None:
    """After the parent touched 300 MB, a fresh child still reports well under that."""
    ballast = np.ones(300 * 2**20 // 8)
    assert peak_rss_mb() > 300
    child = float(subprocess.check_output([sys.executable, "-c", _CHILD], text=True))
    assert 0 < child < 250
    del ballast


def test_rss_of_a_process() -> None:
    mine = rss_mb(os.getpid())
    assert mine is not None and 0 < mine <= peak_rss_mb()
    assert rss_mb(2**22 + 12345) is None  # no such process


def test_glibc_takes_the_heap_setting() -> None:
    """On glibc (Linux, where straxd runs) the heap thresholds are accepted."""
    from straxd.core.memory import limit_heap_retention

    assert limit_heap_retention() is True
