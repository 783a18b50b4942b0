"""restrax's rewrite: throughput against plain zstandard, and memory per worker against its target.

Makes the raw_records of a fakedaq run (default 60 s at 25 MB/s) with straxer, then:

1. throughput: ``core.recompress`` rewriting that folder with zstd (level 3, one thread, as strax)
   into one target size, in MB/s of uncompressed data, against ``zstandard`` level 3 with one
   thread compressing the same bytes (the same arrays, concatenated) in the same process.
   Goal: at least 0.8 of the reference.
2. memory: restrax's worker process rewriting the folder with each target (default 200 and
   1000 MB); (its peak RSS minus the peak RSS of the same worker with nothing to do) divided by
   the target. Goal: under 1.2 (strax's rechunker needs about 2).
3. the daemons on a short run (default 20 s): fakedaq, ``bootstrax --production --once``, then
   ``restrax --production --once``: the compression ratio (uncompressed / stored) of every data
   type as bootstrax wrote it and as restrax rewrote it, and restrax's wall time for the run;
   then a second run with ``--bypass_mode`` (rename only) and its wall time.

Usage: .venv/bin/python bench/bench_restrax.py [--seconds 60] [--rate-mbs 25]
       [--targets-mb 200 1000] [--daemon-seconds 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pymongo
import zstandard
from common import BIN, bench_env, fakedaq, start_db

from straxd.core.recompress import recompress
from straxd.core.storage_read import open_data
from straxd.core.verify import deep_compare

PORT = 27183


def raw_folder(work: Path, env: dict[str, str], seconds: float, rate: float) -> Path:
    fakedaq(env, 1, seconds, rate)
    subprocess.run(
        [str(BIN / "straxer"), "1", "--target", "raw_records", "--output", str(work / "pre")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return next((work / "pre").glob("000001-raw_records-*"))


def reference_mbs(folder: Path) -> tuple[float, float, float]:
    """zstandard level 3, one thread, over the same arrays: (MB, MB/s, CPU s)."""
    stored = open_data(folder)
    arrays = [stored.load_chunk(i).data for i in range(stored.n_chunks)]
    data = np.concatenate(arrays).tobytes()
    started, cpu = time.perf_counter(), time.process_time()
    zstandard.ZstdCompressor(level=3, threads=1).compress(data)
    wall_s = time.perf_counter() - started
    return len(data) / 1e6, len(data) / 1e6 / wall_s, time.process_time() - cpu


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


def stored_sizes(entries: list[dict[str, Any]]) -> dict[str, tuple[float, float, str]]:
    """Per data type: uncompressed MB, stored MB, compressor."""
    sizes = {}
    for entry in entries:
        meta = open_data(Path(entry["location"])).metadata
        raw = sum(int(c.get("nbytes", 0)) for c in meta["chunks"]) / 1e6
        stored = sum(int(c.get("filesize", 0)) for c in meta["chunks"]) / 1e6
        sizes[entry["type"]] = (raw, stored, meta["compressor"])
    return sizes


def run_wall_s(stdout: str) -> float:
    """restrax's own wall time for the run (its ``run_done`` line)."""
    line = next(x for x in stdout.splitlines() if '"run_done"' in x)
    return float(json.loads(line)["wall_s"])


def daemons(work: Path, env: dict[str, str], seconds: float, rate: float) -> None:
    """bootstrax then restrax on one run; then a bypass run: ratios per type and wall times."""
    env = {**env, "STRAXD_HOST": "eb1", "STRAXD_PRE_DIR": str(work / "pre-eb1"),
           "STRAXD_OUTPUT_DIR": str(work / "processed"), "STRAXD_STATE_DIR": str(work / "state"),
           "STRAXD_UNREGISTERED_DIR": str(work / "unregistered")}  # fmt: skip
    runs = pymongo.MongoClient(env["STRAXD_MONGO_URI"], tz_aware=True).xenonnt.runs

    def entries(number: int) -> list[dict[str, Any]]:
        doc = runs.find_one({"number": number}) or {}
        return [e for e in doc.get("data", []) if e.get("host") == "eb1" and e["type"] != "live"]

    def step(*cmd: str) -> str:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{cmd[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    for number in (2, 3):
        fakedaq(env, number, seconds, rate)
        step(str(BIN / "bootstrax"), "--production", "--once", "--process", str(number))
    before = stored_sizes(entries(2))
    wall_s = run_wall_s(step(str(BIN / "restrax"), "--production", "--process", "2"))
    after = stored_sizes(entries(2))
    print(f"run of {seconds:.0f} s at {rate:.0f} MB/s: restrax {wall_s:.1f} s; compression "
          "(uncompressed / stored) per type, bootstrax -> restrax:")  # fmt: skip
    for name in sorted(before, key=lambda n: -before[n][0]):
        raw, pre, pre_c = before[name]
        _, post, post_c = after[name]
        if not pre:
            print(f"  {name:24s} empty")
            continue
        print(f"  {name:24s} {raw:9.1f} MB  {pre_c:5s} {raw / pre:6.2f}x -> "
              f"{post_c:5s} {raw / max(post, 1e-9):6.2f}x")  # fmt: skip
    bypass_s = run_wall_s(step(str(BIN / "restrax"), "--production", "--process", "3",
                               "--bypass_mode"))  # fmt: skip
    print(f"bypass run ({len(entries(3))} types, rename only): {bypass_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate-mbs", type=float, default=25.0)
    parser.add_argument("--targets-mb", type=float, nargs="+", default=[200.0, 1000.0])
    parser.add_argument("--daemon-seconds", type=float, default=20.0)
    args = parser.parse_args()
    db = start_db(PORT)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-restrax-") as tmp:
            work = Path(tmp)
            folder = raw_folder(work, bench_env(work, PORT), args.seconds, args.rate_mbs)
            mb, ref_mbs, ref_cpu_s = reference_mbs(folder)
            started, cpu = time.perf_counter(), time.process_time()
            done = recompress(folder, work / "out", "zstd", 100_000, fsync=False)
            ours_mbs, ours_cpu_s = mb / (time.perf_counter() - started), time.process_time() - cpu
            deep_compare(folder, done.folder)  # untimed: the figure is for a correct copy
            print(
                f"rewrite {mb:.0f} MB raw_records with zstd: {ours_mbs:.0f} MB/s; plain zstandard "
                f"(level 3, 1 thread) on the same bytes {ref_mbs:.0f} MB/s -> "
                f"{ours_mbs / ref_mbs:.2f} of the reference (goal >= 0.8); "
                f"{done.bytes_in / max(done.bytes_out, 1):.2f}x compression; "
                f"{done.chunks} chunks, every field equal to the source; CPU time "
                f"{ours_cpu_s:.1f} s (reading, decoding, cutting, compressing, writing) against "
                f"{ref_cpu_s:.1f} s (compressing)"
            )
            idle = worker_peak_mb(work, [], "idle")
            for target_mb in args.targets_mb:
                entry = {"type": "raw_records", "source": str(folder), "compressor": "zstd",
                         "target_mb": target_mb}  # fmt: skip
                busy = worker_peak_mb(work, [entry], f"busy-{target_mb:.0f}")
                grown_mb = (busy - idle) * 2**20 / 1e6  # RSS is in MiB, the target in MB
                print(
                    f"worker peak RSS {busy:.0f} MiB, idle {idle:.0f} MiB: "
                    f"{grown_mb:.0f} MB / {target_mb:.0f} MB target = "
                    f"{grown_mb / target_mb:.2f} (goal < 1.2; strax's rechunker about 2)"
                )
            daemons(work, bench_env(work, PORT), args.daemon_seconds, args.rate_mbs)
    finally:
        db.terminate()
        db.wait()


if __name__ == "__main__":
    main()
