"""Shared pieces of the bench scripts: a throw-away database, fakedaq runs, timed processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STRAXEN_PYTHON = REPO / ".venv-straxen" / "bin" / "python"


def start_db(port: int) -> subprocess.Popen[bytes]:
    """A SecantusDB server in memory on ``port``, answering pings."""
    proc = subprocess.Popen(
        [
            str(BIN / "secantusd-py"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--storage-path", ":memory:", "--log-level", "WARNING"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=30000
    ).admin.command("ping")
    return proc


def bench_env(work: Path, port: int) -> dict[str, str]:
    """Environment for straxd commands against the bench database and live folder."""
    return {
        **os.environ,
        "STRAXD_MONGO_URI": f"mongodb://127.0.0.1:{port}/",
        "STRAXD_LIVE_DIR": str(work / "live"),
    }


def fakedaq(env: dict[str, str], number: int, duration_s: float, rate_mbs: float) -> None:
    """Write one run (seeded by its number)."""
    subprocess.run(
        [
            str(BIN / "fakedaq"),
            *("--run", str(number), "--duration-s", str(duration_s)),
            *("--rate-mbs", str(rate_mbs), "--seed", str(number)),
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def run_doc(env: dict[str, str], number: int) -> dict[str, Any]:
    """The run document fakedaq wrote."""
    doc = pymongo.MongoClient(env["STRAXD_MONGO_URI"]).xenonnt.runs.find_one({"number": number})
    assert doc is not None
    return doc


def daqreader_config(work: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """straxen DAQReader options for a fakedaq run."""
    return {
        "daq_input_dir": str(work / "live" / f"{doc['number']:06d}"),
        "readout_threads": doc["daq_config"]["processing_threads"],
        "run_start_time": int(doc["start"].timestamp()),
        "daq_compressor": doc["daq_config"]["compressor"],
        "daq_chunk_duration": int(doc["daq_config"]["strax_chunk_length"] * 1e9),
        "daq_overlap_chunk_duration": int(doc["daq_config"]["strax_chunk_overlap"] * 1e9),
        "n_tpc_pmts": 494,
        "hit_min_amplitude": 15,
    }


@dataclass
class Timed:
    """A finished process: wall time, time to its first progress line, stdout."""

    wall_s: float
    first_progress_s: float | None
    stdout: str

    def summary(self) -> dict[str, Any]:
        """straxer's final ``processing_done`` line."""
        line = next(x for x in self.stdout.splitlines() if '"processing_done"' in x)
        return dict(json.loads(line))


def timed(cmd: list[str], env: dict[str, str]) -> Timed:
    """Run ``cmd`` to the end, timing it from spawn."""
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
    return Timed(time.monotonic() - started, first, "".join(lines))


def raw_mb(summary: dict[str, Any]) -> float:
    """Uncompressed raw_records MB a straxer run read."""
    return float(sum(t["mb"] for n, t in summary["types"].items() if n.startswith("raw_records")))
