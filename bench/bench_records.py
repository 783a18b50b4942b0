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
import tempfile
import time
from pathlib import Path

from common import (
    BIN,
    STRAXEN_PYTHON,
    bench_env,
    daqreader_config,
    fakedaq,
    raw_mb,
    run_doc,
    start_db,
    timed,
)

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
        env = bench_env(work, port)
        fakedaq(env, 1, args.duration_s, args.rate_mbs)
        pin = ["taskset", "-c", str(args.cpu)]
        ours = timed(
            [
                *pin,
                str(BIN / "straxer"),
                *("1", "--target", "records", "--output", str(work / "straxd"), "--workers", "1"),
            ],
            env,
        )
        done = ours.summary()
        wall, first, mb = ours.wall_s, ours.first_progress_s, raw_mb(done)
        cfg = {"output": str(work / "straxen"), **daqreader_config(work, run_doc(env, 1))}
        started = time.monotonic()
        subprocess.run(
            [*pin, str(STRAXEN_PYTHON), "-c", STRAXEN_SCRIPT, json.dumps(cfg), "000001"],
            check=True,
            capture_output=True,
        )
        straxen_wall = time.monotonic() - started
        print(
            f"raw_records: {mb:.0f} MB ({args.duration_s:.0f} s at {args.rate_mbs} MB/s), one CPU"
        )
        print(
            f"straxd  straxer -> records: {wall:6.1f} s  {mb / wall:7.1f} MB/s "
            f"(peak RSS {done['peak_rss_mb']:.0f} MiB)"
        )
        print(
            f"straxen DAQReader+PulseProcessing: {straxen_wall:6.1f} s  "
            f"{mb / straxen_wall:7.1f} MB/s"
        )
        print(f"ratio straxd/straxen: {straxen_wall / wall:.1f}x")
        print(f"fresh straxer: first chunk processed {first:.2f} s after spawn")
    finally:
        db.terminate()
        db.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
