"""events (straxen's Events 0.1.1): windows around triggering S2s.

A trigger is an S2 above ``trigger_min_area`` PE whose proximity score is at most
``trigger_max_proximity``. Each trigger opens a window from one maximum drift time plus
``left_event_extension`` before it to ``right_event_extension`` after it; windows that would touch
are joined, windows are clipped to the chunk, and (by default) windows holding an S3 are dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from straxd.core.chunk import endtime
from straxd.core.dtypes import EVENTS_DTYPE, HIT_DTYPE
from straxd.core.errors import ChunkError, ConfigInvalid
from straxd.core.peaks import find_peaks, fully_contained_in
from straxd.core.plugin import Option, Plugin, SaveWhen

TPC_DRIFT_LENGTH_CM = 148.6515  # bottom of the gate to the top of the cathode wires
ELECTRON_DRIFT_VELOCITY_CM_PER_NS = 6.75e-5  # XENONnT SR0, 0.675 mm/us
S3_TYPE = 3
# What find_peaks fills for a group: no waveform needed.
_GROUP_DTYPE = np.dtype(
    [
        ("time", np.int64),
        ("length", np.int32),
        ("dt", np.int32),
        ("channel", np.int16),
        ("area", np.float32),
        ("area_per_channel", np.float32, (1,)),
        ("n_hits", np.int32),
        ("max_gap", np.int32),
    ]
)


def find_peak_groups(
    peaks: np.ndarray,
    gap_threshold: int,
    left_extension: int = 0,
    right_extension: int = 0,
    max_duration: int = int(1e9),
) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of groups of peaks less than ``gap_threshold`` apart, extended (as strax)."""
    hits = np.zeros(len(peaks), dtype=HIT_DTYPE)
    hits["dt"] = 1
    hits["area"] = 1
    hits["time"] = peaks["time"]
    hits["length"] = endtime(peaks) - peaks["time"]
    if np.any(hits["length"] <= 0):
        raise ChunkError("peaks of zero or negative duration cannot be grouped")
    groups = find_peaks(
        hits,
        np.ones(1),
        gap_threshold=gap_threshold,
        left_extension=left_extension,
        right_extension=right_extension,
        min_channels=1,
        min_area=0,
        max_duration=max_duration,
        result_dtype=_GROUP_DTYPE,
    )
    return groups["time"], endtime(groups)


def max_drift_time_ns(config: dict[str, Any]) -> int:
    """Longest drift: TPC length over the electron drift velocity (truncated to ns)."""
    return int(config["max_drift_length"] / config["electron_drift_velocity"])


DRIFT_OPTIONS = (
    Option(
        "electron_drift_velocity",
        ELECTRON_DRIFT_VELOCITY_CM_PER_NS,
        "vertical electron drift velocity in cm/ns",
    ),
    Option("max_drift_length", TPC_DRIFT_LENGTH_CM, "TPC length, gate to cathode wires (cm)"),
)


class Events(Plugin):
    """peak_basics + peak_proximity -> events (not saved unless asked for, as in straxen)."""

    provides = ("events",)
    depends_on = ("peak_basics", "peak_proximity")
    data_kind = "events"
    lineage_name = "StraxdEvents"
    version = "0.1.1"
    save_when = SaveWhen.EXPLICIT
    options = (
        *DRIFT_OPTIONS,
        Option("trigger_min_area", 120, "peaks need more area (PE) than this to trigger"),
        Option("trigger_feature", "proximity_score", "peak field compared with the maximum"),
        Option("trigger_max_proximity", 1.5e-3, "triggers need at most this proximity score"),
        Option("left_event_extension", int(0.25e6), "ns before a trigger, plus the max drift"),
        Option("right_event_extension", int(0.25e6), "ns after a trigger"),
        Option("event_s1_min_coincidence", 2, "tight coincidence of an event's S1"),
        Option("s1_min_coincidence", 2, "tight coincidence of an S1 peaklet"),
        Option("event_exclude_s3", True, "drop windows holding an S3 (type 3)"),
        Option("diagnose_overlapping", True, "check that events are disjoint", track=False),
    )

    def setup(self) -> None:
        """Extensions and the overlap window from the drift time."""
        c = self.config
        if c["s1_min_coincidence"] > c["event_s1_min_coincidence"]:
            raise ConfigInvalid(
                "s1_min_coincidence must not exceed event_s1_min_coincidence "
                f"({c['s1_min_coincidence']} > {c['event_s1_min_coincidence']})"
            )
        if not c["electron_drift_velocity"] > 0:
            raise ConfigInvalid("electron_drift_velocity must be positive (cm/ns)")
        drift_ns = max_drift_time_ns(c)
        self.left_ns = int(c["left_event_extension"]) + drift_ns
        self.right_ns = int(c["right_event_extension"])
        window = 10 * (self.left_ns + self.right_ns)
        self.window_ns = (window, window)
        self.events_seen = 0

    def infer_dtype(self) -> np.dtype[Any]:
        """event_number, time, endtime."""
        return EVENTS_DTYPE

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """Event windows of one (overlap-extended) chunk of peaks."""
        peaks, c = inputs["peaks"], self.config
        if c["trigger_feature"] not in (peaks.dtype.names or ()):
            raise ConfigInvalid(f"trigger_feature {c['trigger_feature']!r} is not a peak field")
        triggering = (peaks["area"] > c["trigger_min_area"]) & (peaks["type"] == 2)
        triggering &= peaks[c["trigger_feature"]] <= c["trigger_max_proximity"]
        t0, t1 = find_peak_groups(
            peaks[triggering],
            gap_threshold=self.left_ns + self.right_ns + 1,
            left_extension=self.left_ns,
            right_extension=self.right_ns,
        )
        result = np.zeros(len(t0), dtype=EVENTS_DTYPE)
        # Clipping makes events depend on chunking, which the lineage does not track (as strax).
        result["time"] = np.clip(t0, start, end)
        result["endtime"] = np.clip(t1, start, end)
        if c["event_exclude_s3"] and len(result):
            s3s = peaks[peaks["type"] == S3_TYPE]
            holding = fully_contained_in(s3s, result)
            result = result[~np.isin(np.arange(len(result)), holding)]
        # Numbers run on across chunks; with the overlap window some are never sent (as straxen).
        result["event_number"] = np.arange(len(result)) + self.events_seen
        self.events_seen += len(result)
        if c["diagnose_overlapping"] and np.any(result["endtime"][:-1] > result["time"][1:]):
            raise ChunkError(f"overlapping events in chunk {chunk_i}")
        return result
