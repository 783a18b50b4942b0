"""live_data -> records throughput: straxd's straxer against straxen 4.0.0, same data, same run.

Writes a fakedaq run (default 60 s at the default 25 MB/s), then processes it to records with
one process pinned to one CPU, first with straxer and then with straxen's DAQReader +
PulseProcessing (from .venv-straxen), and prints raw MB/s (raw MB / whole-process wall time) and
the ratio, plus the start-up time of a fresh straxer (spawn to its first processed chunk).

Usage: .venv/bin/python bench/bench_records.py [--duration-s 60] [--rate-mbs 25] [--cpu 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STRAXEN_PYTHON = REPO / ".venv-straxen" / "bin" / "python"

STRAXEN_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import strax, straxen
cfg = json.loads(sys.argv[1])
st = strax.Context(storage=[strax.DataDirectory(cfg.pop("output"))],
                   register=[straxen.DAQReader, straxen.PulseProcessing],
                   config={**cfg, "channel_map": straxen.contexts.common_config["channel_map"]})
st.make(sys.argv[2], "records")
print("done")
"""


def start_db(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            str(BIN / "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=30000
    ).admin.command("ping")
    return proc


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float | None, str]:
    """Whole-process wall time, time to the first progress line, and stdout."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = None
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if first is None and '"progress"' in line:
            first = time.monotonic() - started
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.read() if proc.stderr else ''}")
    return time.monotonic() - started, first, "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=60)
    parser.add_argument("--rate-mbs", type=float, default=25)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="straxd-bench-"))
    port = 27400 + os.getpid() % 500
    db = start_db(port)
    try:
        env = {
            **os.environ,
            "STRAXD_MONGO_URI": f"mongodb://127.0.0.1:{port}/",
            "STRAXD_LIVE_DIR": str(work / "live"),
        }
        subprocess.run(
            [
                str(BIN / "fakedaq"),
                "--run",
                "1",
                "--duration-s",
                str(args.duration_s),
                "--rate-mbs",
                str(args.rate_mbs),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        doc = pymongo.MongoClient(env["STRAXD_MONGO_URI"]).xenonnt.runs.find_one({"number": 1})
        pin = ["taskset", "-c", str(args.cpu)]
        wall, first, out = timed(
            [
                *pin,
                str(BIN / "straxer"),
                "1",
                "--target",
                "records",
                "--output",
                str(work / "straxd"),
                "--workers",
                "1",
            ],
            env,
        )
        done = json.loads(next(line for line in out.splitlines() if '"processing_done"' in line))
        raw_mb = sum(t["mb"] for n, t in done["types"].items() if n.startswith("raw_records"))
        cfg = {
            "output": str(work / "straxen"),
            "daq_input_dir": str(work / "live" / "000001"),
            "readout_threads": doc["daq_config"]["processing_threads"],
            "run_start_time": int(doc["start"].timestamp()),
            "daq_compressor": "lz4",
            "n_tpc_pmts": 494,
            "hit_min_amplitude": 15,
        }
        started = time.monotonic()
        subprocess.run(
            [*pin, str(STRAXEN_PYTHON), "-c", STRAXEN_SCRIPT, json.dumps(cfg), "000001"],
            check=True,
            capture_output=True,
        )
        straxen_wall = time.monotonic() - started
        print(
            f"raw_records: {raw_mb:.0f} MB "
            f"({args.duration_s:.0f} s at {args.rate_mbs} MB/s), one CPU"
        )
        print(
            f"straxd  straxer -> records: {wall:6.1f} s  {raw_mb / wall:7.1f} MB/s "
            f"(peak RSS {done['peak_rss_mb']:.0f} MB)"
        )
        print(
            f"straxen DAQReader+PulseProcessing: {straxen_wall:6.1f} s  "
            f"{raw_mb / straxen_wall:7.1f} MB/s"
        )
        print(f"ratio straxd/straxen: {straxen_wall / wall:.1f}x")
        print(f"fresh straxer: first chunk processed {first:.2f} s after spawn")
    finally:
        db.terminate()
        db.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
