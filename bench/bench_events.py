"""live_data -> event_info: straxd's straxer against straxen 4.0.0's vanilla chain, same data.

Writes fakedaq runs of 10 s and 60 s (and 240 s with --long) at the default 25 MB/s, then, with
one process pinned to one CPU:

- straxd: ``straxer RUN --target event_info`` in a fresh process per run, after the live_data is
  flushed to disk and one unmeasured run has filled numba's on-disk cache (as on a set-up
  host). Steady-state
  throughput is (MB60 - MB10) / (wall60 - wall10); whole-process wall time of the 60 s run
  includes start-up; peak RSS per run, in MiB and in MB (10**6 bytes, as the throughput).
- straxen: one fresh process runs tests/straxen_chain.py (the test oracle) to make event_basics
  of the 60 s run (first pass: import, compile and process), then again into empty storage (warm
  pass) in the same process.
- floor: what the whole-process goal (10x straxen's first pass) leaves for processing once the
  codecs alone (bench/codec_floor.py: decompressing the 60 s run's live_data, compressing its
  raw_records, on the same CPU) and straxd's start-up (whole process minus pipeline) are paid.

Prints MB/s, the ratios straxd/straxen, peak RSS and the floor. straxen stops at event_basics
(its event_info needs calibration maps); straxd's event_info adds only a few columns.

Usage: .venv/bin/python bench/bench_events.py [--rate-mbs 25] [--cpu 0] [--long]
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
from typing import Any

from common import (
    BIN,
    REPO,
    STRAXEN_PYTHON,
    bench_env,
    daqreader_config,
    fakedaq,
    raw_mb,
    run_doc,
    start_db,
    timed,
)


def straxer(
    work: Path, env: dict[str, str], cpu: int, number: int, output: str = "straxd"
) -> dict[str, Any]:
    """One pinned straxer process to event_info; its summary plus the measured wall time."""
    gains = work / f"gains-{number}.json"
    truth = json.loads((work / "live" / f"{number:06d}-truth.json").read_text())
    gains.write_text(json.dumps(truth["to_pe"]))
    run = timed(
        [
            *("taskset", "-c", str(cpu), str(BIN / "straxer"), str(number)),
            *("--target", "event_info", "--output", str(work / output)),
            *("--config_kwargs", json.dumps({"gain_model": str(gains)})),
        ],
        env,
    )
    return {**run.summary(), "process_wall_s": run.wall_s, "mb": raw_mb(run.summary())}


def straxen_passes(work: Path, env: dict[str, str], cpu: int, number: int) -> dict[str, float]:
    """straxen's first pass (fresh process) and warm pass on one run."""
    doc = run_doc(env, number)
    truth = json.loads((work / "live" / f"{number:06d}-truth.json").read_text())
    spec = work / "straxen.json"
    spec.write_text(
        json.dumps(
            {
                **daqreader_config(work, doc),
                "run_id": f"{number:06d}",
                "to_pe": truth["to_pe"],
                "target_groups": [["event_basics"]],
                "also_load": [],
                "passes": 2,
            }
        )
    )
    spawned = time.monotonic()
    done = subprocess.run(
        [
            *("taskset", "-c", str(cpu), str(STRAXEN_PYTHON)),
            *(str(REPO / "tests" / "straxen_chain.py"), str(spec), str(work / "straxen")),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    first_done, warm_done = json.loads(done.stdout.strip().splitlines()[-1])["pass_done_monotonic"]
    return {"first_s": first_done - spawned, "warm_s": warm_done - first_done}


def codec_floor(work: Path, env: dict[str, str], cpu: int, number: int) -> dict[str, float]:
    """bench/codec_floor.py on straxd's output of one run, pinned to ``cpu``."""
    run_id = f"{number:06d}"
    script = REPO / "bench" / "codec_floor.py"
    done = subprocess.run(
        [
            *("taskset", "-c", str(cpu), str(BIN / "python"), str(script)),
            *(str(work / "live" / run_id), run_doc(env, number)["daq_config"]["compressor"]),
            *(str(work / "straxd"), run_id),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate-mbs", type=float, default=25)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--long", action="store_true", help="also a 240 s run (peak RSS)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="straxd-bench-"))
    port = 27400 + os.getpid() % 500
    db = start_db(port)
    try:
        env = bench_env(work, port)
        lengths = {10: 10.0, 60: 60.0, **({240: 240.0} if args.long else {})}
        for number, seconds in lengths.items():
            fakedaq(env, number, seconds, args.rate_mbs)
        # The runs' live_data (4 GB with --long) would otherwise still be written back to disk
        # while the first runs are timed: the 240 s run measured 65 s with it, 57 s without.
        os.sync()
        # An unmeasured run first fills numba's on-disk cache, as `make setup` and a deployed
        # host have it: otherwise the first measured run compiles every kernel changed since
        # the cache was last filled, which inflates the steady-state figure.
        straxer(work, env, args.cpu, 10, output="cache-fill")
        ours = {n: straxer(work, env, args.cpu, n) for n in lengths}
        theirs = straxen_passes(work, env, args.cpu, 60)
        report(ours, theirs, args.rate_mbs)
        report_floor(codec_floor(work, env, args.cpu, 60), ours[60], theirs["first_s"])
    finally:
        db.terminate()
        db.wait()
        shutil.rmtree(work, ignore_errors=True)


def report(ours: dict[int, dict[str, Any]], theirs: dict[str, float], rate_mbs: float) -> None:
    """Print the figures."""
    mb60, wall60 = ours[60]["mb"], ours[60]["process_wall_s"]
    steady = (mb60 - ours[10]["mb"]) / (wall60 - ours[10]["process_wall_s"])
    straxen_warm = mb60 / theirs["warm_s"]
    print(f"raw_records at {rate_mbs} MB/s; one CPU per process")
    for number, run in ours.items():
        print(
            f"straxd  {number:3d} s run: {run['mb']:7.0f} MB in {run['process_wall_s']:6.1f} s "
            f"(whole process), peak RSS {run['peak_rss_mb']:.0f} MiB "
            f"({run['peak_rss_mb'] * 2**20 / 1e6:.0f} MB)"
        )
    first_s, warm_s = theirs["first_s"], theirs["warm_s"]
    print(f"straxen  60 s run: first pass {first_s:6.1f} s, warm pass {warm_s:.1f} s")
    print(
        f"steady state: straxd {steady:.1f} MB/s vs straxen warm {straxen_warm:.1f} MB/s "
        f"-> {steady / straxen_warm:.1f}x"
    )
    print(
        f"whole process, 60 s run: straxd {wall60:.1f} s vs straxen first pass "
        f"{theirs['first_s']:.1f} s -> {theirs['first_s'] / wall60:.1f}x"
    )
    cpu_s = ours[60]["cpu_s"]  # most first
    top = ", ".join(f"{step} {seconds:.1f}" for step, seconds in list(cpu_s.items())[:6])
    print(f"straxd 60 s run, worker CPU s: {top} (all steps {sum(cpu_s.values()):.1f})")


def report_floor(floor: dict[str, float], run: dict[str, Any], straxen_first_s: float) -> None:
    """Print what a 10x whole-process goal leaves for processing after codecs and start-up."""
    start_up_s = run["process_wall_s"] - run["wall_s"]
    fixed_s = floor["live_decompress_s"] + floor["raw_compress_s"] + start_up_s
    goal_s = straxen_first_s / 10
    print(
        f"floor, 60 s run: live_data decompression {floor['live_decompress_s']:.2f} s "
        f"({floor['live_mb']:.0f} MB), raw_records compression {floor['raw_compress_s']:.2f} s "
        f"({floor['raw_mb']:.0f} MB), straxd start-up {start_up_s:.2f} s: {fixed_s:.1f} s"
    )
    left_s = goal_s - fixed_s
    need = f"{run['mb'] / left_s:.0f} MB/s" if left_s > 0 else "impossible"
    print(
        f"10x whole process = {goal_s:.1f} s; after the floor {left_s:.1f} s remain for all "
        f"processing of {run['mb']:.0f} MB -> {need} needed"
    )


if __name__ == "__main__":
    main()
