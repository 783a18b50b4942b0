"""Assembling the plugins for one run: the registry straxer and bootstrax's child use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from straxd.core.classification import PeakletClassification
from straxd.core.daqreader import LiveRunConfig
from straxd.core.errors import BadInput, ConfigInvalid
from straxd.core.event_basics import EventBasics
from straxd.core.event_info import EventInfo
from straxd.core.events import Events
from straxd.core.merged_s2s import MergedS2s
from straxd.core.online_monitor import OnlinePeakMonitor
from straxd.core.peak_basics import PeakBasics, Peaks
from straxd.core.peaklets_plugin import Peaklets
from straxd.core.plugin import Plugin, Registry
from straxd.core.proximity import PeakPositions, PeakProximity
from straxd.core.records import PulseProcessing
from straxd.core.sources import DAQReader
from straxd.core.storage_read import open_data

PLUGIN_CLASSES: tuple[type[Plugin], ...] = (
    DAQReader,
    PulseProcessing,
    Peaklets,
    PeakletClassification,
    MergedS2s,
    Peaks,
    PeakBasics,
    PeakPositions,
    PeakProximity,
    Events,
    EventBasics,
    EventInfo,
    OnlinePeakMonitor,
)
# Options of the DAQReader that come from the run, never from the user.
_RUN_OPTIONS = {"live_run", "live_run_error", "run_id"}


def known_options() -> set[str]:
    """Every option name some plugin takes (straxen's names)."""
    return {o.name for cls in PLUGIN_CLASSES for o in cls.options} - _RUN_OPTIONS


def build_registry(
    run_doc: Mapping[str, Any], live_dir: Path, config: Mapping[str, Any] | None = None
) -> Registry:
    """The plugins for one run, with user options applied (unknown names are refused)."""
    config = dict(config or {})
    unknown = sorted(set(config) - known_options())
    if unknown:
        raise ConfigInvalid(f"unknown options {unknown}; known: {sorted(known_options())}")
    live_run: LiveRunConfig | None
    live_run_error = ""
    try:
        live_run = LiveRunConfig.from_run_doc(live_dir, run_doc)
    except BadInput as err:
        # Stored raw_records can still be processed; reading live_data cannot.
        live_run, live_run_error = None, str(err)
    run_id = f"{int(run_doc['number']):06d}"
    plugins: list[Plugin] = [
        DAQReader(
            {**config, "live_run": live_run, "live_run_error": live_run_error, "run_id": run_id}
        ),
        *(cls(config) for cls in PLUGIN_CLASSES if cls is not DAQReader),
    ]
    return Registry(plugins)


def check_run_length(
    raw_records_folder: Path, run_doc: Mapping[str, Any], tolerance_s: float = 5
) -> str | None:
    """The original's check: stored raw_records data span the run's duration within 5 s.

    The span runs from the first row's time to the last row's end (not chunk boundaries: the last
    DAQ chunk runs on to its nominal end); for a run without rows, the chunks' span. Returns None
    when it holds, else the reason.
    """
    start, end = run_doc.get("start"), run_doc.get("end")
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return "run document has no start and end to compare with"
    metadata = open_data(raw_records_folder).metadata
    chunks = [c for c in metadata["chunks"] if c.get("n")]
    if chunks:
        first = min(int(c["first_time"]) for c in chunks)
        last = max(int(c["last_endtime"]) for c in chunks)
    else:  # a run without any data still spans its chunks
        first, last = int(metadata["start"]), int(metadata["end"])
    covered_s = (last - first) / 1e9
    expected_s = (end - start).total_seconds()
    if abs(covered_s - expected_s) > tolerance_s:
        return (
            f"raw_records cover {covered_s:.1f} s but the run lasted {expected_s:.1f} s "
            f"(tolerance {tolerance_s} s)"
        )
    return None
