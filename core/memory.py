"""Memory of the processing processes: glibc's malloc settings, and resident memory from /proc
(Linux) for logs, heartbeats and run documents.

Resident memory is in MiB (2**20 bytes) throughout, as straxen's ``memory_usage_mb`` (from
memory_profiler) is, although the fields and functions say "mb".
"""

from __future__ import annotations

import ctypes
import resource
from collections.abc import Mapping
from pathlib import Path

# glibc (2.35+) tunables for the processing processes; other C libraries ignore them.
# hugetlb=1: malloc asks the kernel for transparent huge pages for the memory it maps.
# Chunk-sized buffers allocated outside numpy (codec outputs, file reads) then cost one page
# fault per 2 MB instead of per 4 kB: straxer on a 60 s run faulted 1.4 GB less in the
# raw_records compressor alone and ran 6 % faster.
# arena_max=1: one heap for every thread. With one per worker thread, each keeps its own free
# fragments and the process grows with the run (240 s run, peak RSS 530-555 -> 499-506 MB); the
# pool threads spend their time in numba kernels, not in malloc, so nothing waits on the lock.
MALLOC_TUNABLES = ("glibc.malloc.hugetlb=1", "glibc.malloc.arena_max=1")


def _status_mb(pid: int | str, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM), in MiB.

    ``ru_maxrss`` is not used: Linux carries it over from the parent across fork and exec, so a
    child of a big process would report the parent's peak.
    """
    peak = _status_mb("self", "VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb(pid: int) -> float | None:
    """The current resident memory of a process in MiB (None if it is gone)."""
    return _status_mb(pid, "VmRSS")


def with_malloc_tunables(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``MALLOC_TUNABLES`` in GLIBC_TUNABLES (read at process start only); a
    tunable already set there, by an operator, is left as it is."""
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    for tunable in MALLOC_TUNABLES:
        name = tunable.split("=")[0] + "="
        if not any(t.startswith(name) for t in tunables):
            tunables.append(tunable)
    return {**env, "GLIBC_TUNABLES": ":".join(tunables)}


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_THRESHOLD_BYTES = 4 * 2**20
HEAP_TRIM_BYTES = 16 * 2**20


def limit_heap_retention(
    threshold_bytes: int = HEAP_THRESHOLD_BYTES, trim_bytes: int = HEAP_TRIM_BYTES
) -> bool:
    """Have glibc give freed memory back to the system; False where that is not glibc.

    glibc raises its mmap threshold to the size of each freed large block (up to 32 MB), so chunk
    arrays of a few MB end up on the heap, whose freed space it keeps: the process then holds
    the peak of every chunk size it has seen. A fixed threshold keeps such arrays in their own
    mappings, returned on free (measured: peak RSS of a 60 s run 1051 -> 870 MB). 4 MB rather
    than 256 kB: the many arrays of a few hundred kB are then reused from the heap instead of
    being fresh pages each time (240 s run: page faults 2.9 M -> 1.9 M, 4 % faster, peak RSS
    755 -> 768 MB); the big ones get huge pages (``MALLOC_TUNABLES``).

    The heap, holding only blocks below ``threshold_bytes``, is trimmed once ``trim_bytes`` are
    free at its top: trimmed at 4 MB, the arrays of each piece of a chunk (a few MB together)
    were fresh pages again for the next piece (60 s run: 332 k page faults; at 16 MB: 173-205 k).
    32 and 64 MB faulted no less and raised the peak RSS of 240 s runs (16 MB: 470-472 MB,
    4 MB: 465-477, 32 MB: 471-497).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, threshold_bytes) and mallopt(_M_TRIM_THRESHOLD, trim_bytes)
    return bool(ok)
