"""make demo's driver, run as a process: it ends cleanly and leaves data strax can load."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import strax


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """The demo exits 0, prints the data folder, strax loads it, and no server is left over."""
    done = subprocess.run(
        [sys.executable, "-m", "straxd.daemons.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    folder = Path(re.search(r"data:\s+(\S+)", done.stdout).group(1))
    rows = re.search(r"(\d+) raw_records rows", done.stdout).group(1)
    assert len(strax.io.dry_load_files(str(folder))) == int(rows)
    leftover = subprocess.run(["pgrep", "-f", f"{tmp_path}/.demo/mongo"], capture_output=True)
    assert leftover.returncode == 1  # no server process still running
