"""restrax's worker process: rewrite the data types of one run and verify each copy.

restrax spawns one worker per run so the memory of rewriting is returned to the system when the
run is done. The worker reads a plan (JSON), rewrites each listed folder into the work folder
with its compressor and target size (streaming, memory near one target chunk per type), checks
each copy against its source, and writes a result (JSON) with rows, sizes and its peak memory.
It touches nothing else: moving, registering and removing are the parent's, under its lease.
Exit codes: 0 every type rewritten and verified, 1 otherwise (the result names the failures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from straxd.core.child import die_with_parent
from straxd.core.errors import StraxdError
from straxd.core.faults import fault_point
from straxd.core.memory import limit_heap_retention, peak_rss_mb
from straxd.core.recompress import recompress
from straxd.core.strax_files import write_atomic
from straxd.core.verify import deep_compare, quick_check


def rewrite_one(
    entry: dict[str, Any], work: Path, deep: bool, ignore_checks: bool
) -> dict[str, Any]:
    """Rewrite and verify one folder; the result entry (with ``error`` on failure)."""
    source = Path(entry["source"])
    started = time.monotonic()
    try:
        result = recompress(source, work, entry["compressor"], entry["target_mb"])
        fault_point("restrax_after_rechunk")
        if not ignore_checks:
            quick_check(source, result.folder)
            if deep:
                deep_compare(source, result.folder)
    except (StraxdError, OSError) as err:
        return {**entry, "error": f"{source.name}: {err}"}
    return {
        **entry,
        "folder": str(result.folder),
        "rows": result.rows,
        "chunks": result.chunks,
        "bytes_in": result.bytes_in,
        "bytes_out": result.bytes_out,
        "wall_s": round(time.monotonic() - started, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m straxd.daemons.restrax_worker PLAN RESULT``."""
    parser = argparse.ArgumentParser(prog="restrax_worker", description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path)
    parser.add_argument("result", type=Path)
    args = parser.parse_args(argv)
    die_with_parent()
    heap_limited = limit_heap_retention()
    plan = json.loads(args.plan.read_text())
    work = Path(plan["work"])
    work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, int(plan["max_threads"]))) as pool:
        results = list(
            pool.map(
                lambda e: rewrite_one(e, work, plan["deep_compare"], plan["ignore_checks"]),
                plan["entries"],
            )
        )
    peak_mb = peak_rss_mb()
    payload = {
        "entries": results,
        "peak_rss_mb": round(peak_mb, 1),
        # How this process's malloc ran, for whoever reads a peak above: set at its start.
        "malloc": {"tunables": os.environ.get("GLIBC_TUNABLES", ""), "heap_limited": heap_limited},
    }
    write_atomic(args.result, json.dumps(payload).encode())
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
