"""restrax's rewrite: throughput against plain zstandard, and memory per worker against its target.

Makes the raw_records of a fakedaq run (default 60 s at 25 MB/s) with straxer, then:

1. throughput: ``core.recompress`` rewriting that folder with zstd (level 3, one thread, as strax)
   into one target size, in MB/s of uncompressed data, against ``zstandard`` level 3 with one
   thread compressing the same bytes (the same arrays, concatenated) in the same process.
   Goal: at least 0.8 of the reference.
2. memory: restrax's worker process rewriting the folder with a given target;
   (its peak RSS minus the peak RSS of the same worker with nothing to do) divided by the target
   (default 1000 MB: the raw target is 5000 MB, and a live DAQ chunk of about 140 MB is held
   beside the target buffer, so small targets read high).
   Goal: near 1 (strax's rechunker needs about 2).

Usage: .venv/bin/python bench/bench_restrax.py [--seconds 60] [--rate-mbs 25] [--target-mb 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zstandard
from common import BIN, bench_env, fakedaq, start_db

from straxd.core.recompress import recompress
from straxd.core.storage_read import open_data

PORT = 27183


def raw_folder(work: Path, env: dict[str, str], seconds: float, rate: float) -> Path:
    fakedaq(env, 1, seconds, rate)
    subprocess.run(
        [str(BIN / "straxer"), "1", "--target", "raw_records", "--output", str(work / "pre")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return next((work / "pre").glob("000001-raw_records-*"))


def reference_mbs(folder: Path) -> tuple[float, float]:
    """zstandard level 3, one thread, over the same arrays: (MB, MB/s)."""
    stored = open_data(folder)
    arrays = [stored.load_chunk(i).data for i in range(stored.n_chunks)]
    data = np.concatenate(arrays).tobytes()
    started = time.perf_counter()
    zstandard.ZstdCompressor(level=3, threads=1).compress(data)
    return len(data) / 1e6, len(data) / 1e6 / (time.perf_counter() - started)


def worker_peak_mb(work: Path, entries: list[dict[str, object]], name: str) -> float:
    plan, result = work / f"{name}-plan.json", work / f"{name}-result.json"
    plan.write_text(json.dumps({
        "work": str(work / name), "max_threads": 1, "deep_compare": False,
        "ignore_checks": False, "entries": entries,
    }))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "straxd.daemons.restrax_worker", str(plan), str(result)],
        check=True,
    )
    return float(json.loads(result.read_text())["peak_rss_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate-mbs", type=float, default=25.0)
    parser.add_argument("--target-mb", type=float, default=1000.0)
    args = parser.parse_args()
    db = start_db(PORT)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-restrax-") as tmp:
            work = Path(tmp)
            folder = raw_folder(work, bench_env(work, PORT), args.seconds, args.rate_mbs)
            mb, ref_mbs = reference_mbs(folder)
            started = time.perf_counter()
            done = recompress(folder, work / "out", "zstd", 100_000, fsync=False)
            ours_mbs = mb / (time.perf_counter() - started)
            print(
                f"rewrite {mb:.0f} MB raw_records with zstd: {ours_mbs:.0f} MB/s; plain zstandard "
                f"(level 3, 1 thread) on the same bytes {ref_mbs:.0f} MB/s -> "
                f"{ours_mbs / ref_mbs:.2f} of the reference (goal >= 0.8); "
                f"{done.bytes_in / max(done.bytes_out, 1):.2f}x compression"
            )
            idle = worker_peak_mb(work, [], "idle")
            entry = {"type": "raw_records", "source": str(folder), "compressor": "zstd",
                     "target_mb": args.target_mb}  # fmt: skip
            busy = worker_peak_mb(work, [entry], "busy")
            print(
                f"worker peak RSS {busy:.0f} MB, idle {idle:.0f} MB: "
                f"({busy:.0f} - {idle:.0f}) / {args.target_mb:.0f} MB target = "
                f"{(busy - idle) / args.target_mb:.2f} (goal near 1; strax's rechunker about 2)"
            )
    finally:
        db.terminate()
        db.wait()


if __name__ == "__main__":
    main()
