"""A fakedaq run processed by straxer and by straxen's vanilla chain: the shared test bed.

Used by the end-to-end comparison tests and the truth tests; ``process_run`` does the work once
per (seed, chunk length) and returns where everything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pymongo
import strax

from straxd.core.daqreader import LiveRunConfig
from tests.oracle import run_straxen_script

# Every type straxd and straxen's vanilla chain both make, peaklets to event_basics.
COMPARED_TYPES = (
    "peaklets",
    "lone_hits",
    "peaklet_classification",
    "merged_s2s",
    "peak_basics",
    "peak_proximity",
    "events",
    "event_basics",
    "online_peak_monitor",
)
# straxen makes several targets in one go only if they share a data kind; the events group
# computes (and saves) every peak-level type on the way.
STRAXEN_TARGET_GROUPS = [["events", "event_basics"], ["online_peak_monitor"]]
STRAXEN_ALSO_LOAD = [
    "peaklets",
    "peaklet_classification",
    "lone_hits",
    "merged_s2s",
    "peak_basics",
    "peak_proximity",
]
STRAXER_TARGETS = ("event_info", "events", "online_peak_monitor")
HIT_MIN_AMPLITUDE = 15


@dataclass
class ProcessedRun:
    """Where one processed run's data and truth are."""

    run_id: str
    live_dir: Path
    ours: Path
    theirs: Path | None
    truth: dict[str, Any]
    straxer_stdout: str

    def load(self, data_type: str, straxen: bool = False) -> np.ndarray:
        """All rows of one type: straxd's loaded with strax, straxen's as it saved them."""
        if straxen:
            assert self.theirs is not None
            return np.load(self.theirs / f"{data_type}.npy")
        return strax.io.dry_load_files(str(self.folder(data_type)))

    def folder(self, data_type: str) -> Path:
        """The folder of one type straxd stored."""
        (folder,) = self.ours.glob(f"{self.run_id}-{data_type}-*")
        return folder

    def chunk_bounds(self, data_type: str) -> list[tuple[int, int]]:
        """(start, end) of every chunk straxd stored."""
        meta = json.loads(next(self.folder(data_type).glob("*-metadata.json")).read_text())
        return [(c["start"], c["end"]) for c in meta["chunks"]]


def _run(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", f"straxd.daemons.{module}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{module} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def process_run(
    root: Path,
    mongo_uri: str,
    number: int,
    *,
    seed: int,
    duration_s: float,
    rate_mbs: float,
    chunk_length_s: float = 5.0,
    with_straxen: bool = True,
) -> ProcessedRun:
    """fakedaq writes the run, straxer processes it, straxen (optionally) processes it too."""
    names = {"runs_db": f"runs_chain_{number}_{os.getpid()}", "daq_db": f"daq_chain_{number}"}
    live, ours = root / "live", root / "straxd"
    env = {
        **os.environ,
        "STRAXD_MONGO_URI": mongo_uri,
        "STRAXD_RUNS_DB": names["runs_db"],
        "STRAXD_DAQ_DB": names["daq_db"],
        "STRAXD_LIVE_DIR": str(live),
    }
    run_id = f"{number:06d}"
    _run(
        "fakedaq",
        env,
        *("--run", str(number), "--duration-s", str(duration_s), "--rate-mbs", str(rate_mbs)),
        *("--seed", str(seed), "--chunk-length-s", str(chunk_length_s)),
    )
    truth = json.loads((live / f"{run_id}-truth.json").read_text())
    gains = root / "gains.json"
    gains.write_text(json.dumps(truth["to_pe"]))
    kwargs = {"gain_model": str(gains), "hit_min_amplitude": HIT_MIN_AMPLITUDE}
    done = _run(
        "straxer",
        env,
        *(run_id, "--output", str(ours), "--target", *STRAXER_TARGETS),
        *("--config_kwargs", json.dumps(kwargs)),
    )
    with pymongo.MongoClient(mongo_uri, tz_aware=True) as client:
        doc = client[names["runs_db"]]["runs"].find_one({"number": number})
        assert doc is not None
        live_config = LiveRunConfig.from_run_doc(live, doc)
        client.drop_database(names["runs_db"])
        client.drop_database(names["daq_db"])
    theirs = None
    if with_straxen:
        theirs = root / "straxen"
        spec = root / "straxen.json"
        spec.write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "daq_input_dir": str(live_config.run_dir),
                    "readout_threads": dict(live_config.readout_threads),
                    "run_start_time": live_config.run_start_s,
                    "daq_chunk_duration": live_config.chunk_ns,
                    "daq_overlap_chunk_duration": live_config.overlap_ns,
                    "daq_compressor": live_config.compressor,
                    "record_length": live_config.record_length,
                    "hit_min_amplitude": HIT_MIN_AMPLITUDE,
                    "to_pe": truth["to_pe"],
                    "target_groups": STRAXEN_TARGET_GROUPS,
                    "also_load": STRAXEN_ALSO_LOAD,
                }
            )
        )
        run_straxen_script("straxen_chain.py", str(spec), str(theirs), timeout_s=1500)
    return ProcessedRun(run_id, live, ours, theirs, truth, done.stdout)
