"""make demo's driver, run as a process: a live run through bootstrax, data strax can load."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import strax


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """The demo exits 0, the run is done, event_info loads with its printed count, no leftovers."""
    done = subprocess.run(
        [sys.executable, "-m", "straxd.daemons.demo", "--seconds", "8", "--rate-mbs", "6"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bootstrax.state=done restrax.state=done status=eb_ready_to_upload" in done.stdout
    events = int(re.search(r"events: (\d+)", done.stdout).group(1))
    folder = re.search(r"dry_load_files\('(\S+)'\)", done.stdout).group(1)
    assert len(strax.io.dry_load_files(folder)) == events > 0
    rows = dict(re.findall(r"^\s+(\w+)\s+(\d+)\s+\w+ x", done.stdout, re.MULTILINE))
    assert int(rows["event_info"]) == events and int(rows["raw_records"]) > 0
    assert "xenonnt_processed" in folder
    leftover = subprocess.run(["pgrep", "-f", f"{tmp_path}/.demo"], capture_output=True)
    assert leftover.returncode == 1  # no server or daemon still running
