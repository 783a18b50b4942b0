"""event_basics (straxen's EventBasicsVanilla 1.3.7): the main and alternate S1 and S2 of events.

Per event, among the peaks fully inside it: the main S2 is the largest S2 (the later one on a
tie); S1 candidates are S1s before the main S2 with enough tight coincidence, the largest two
being main and alternate; the alternate S2 is the largest other S2 within 1.01 maximum drift
times after the main S1. The selection runs in one numba pass over all events; the properties of
the chosen peaks are then copied column by column.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.event_dtypes import EVENT_PEAK_PROPERTIES, event_basics_dtype
from straxd.core.events import DRIFT_OPTIONS, max_drift_time_ns
from straxd.core.peaks import fully_contained_in
from straxd.core.plugin import Option, Plugin

# Columns of the per-event selection: peak index (into the chunk's peaks) of each role.
ROLES = ("s1", "alt_s1", "s2", "alt_s2")
_S1_EXTRA = ("max_diff", "min_diff", "first_channel", "last_channel")
# (name, dtype) of the per-event quantities the selection kernel computes.
_EVENT_FIELDS = (
    ("drift_time", np.float32),
    ("alt_s1_interaction_drift_time", np.float32),
    ("alt_s1_delay", np.int32),
    ("alt_s2_interaction_drift_time", np.float32),
    ("alt_s2_delay", np.int32),
    ("area_before_main_s2", np.float32),
    ("large_s2_before_main_s2_area", np.float32),
    ("large_s2_before_main_s2_index", np.int32),
    ("large_s2_before_main_s2_center_time", np.int64),
    ("large_s2_after_main_s2_area", np.float32),
    ("large_s2_after_main_s2_index", np.int32),
    ("large_s2_after_main_s2_center_time", np.int64),
)
_EVENT_DTYPE = np.dtype(list(_EVENT_FIELDS))


def set_nan_defaults(buffer: np.ndarray) -> None:
    """-1 in integer fields, NaN elsewhere (bools become True), as strax."""
    for name in buffer.dtype.names or ():
        if np.issubdtype(buffer.dtype[name].base, np.integer):
            buffer[name] = -1
        else:
            buffer[name] = np.nan


@numba.njit(nogil=True, cache=True)
def _largest_first(candidates: np.ndarray, areas: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` largest (all if 0) by area, largest first, the later one winning ties."""
    order = np.argsort(areas[candidates], kind="mergesort")
    if n > 0:
        order = order[-n:]
    return candidates[order[::-1]]


@numba.njit(nogil=True, cache=True)
def _choose(
    members: np.ndarray, peaks: np.ndarray, s1_min_coincidence: int, options: np.ndarray
) -> np.ndarray:
    """Local indices (in ``members``) of main S1, alt S1, main S2, alt S2, or -1."""
    allow_posts2_s1s, force_alt_s2 = options[0] != 0, options[1] != 0
    main_before_alt, drift_max = options[2] != 0, options[3]
    local = np.arange(len(members))
    types, areas = peaks["type"][members], peaks["area"][members]
    s2s = _largest_first(local[types == 2], areas, 0)
    # An integer bound: as a float, ns times since the epoch lose their last ~8 bits.
    latest = np.iinfo(np.int64).max
    if not allow_posts2_s1s and len(s2s):
        latest = peaks["time"][members[s2s[0]]]
    s1_ok = (types == 1) & (peaks["time"][members] < latest)
    s1_ok &= peaks["tight_coincidence"][members] >= s1_min_coincidence
    s1s = _largest_first(local[s1_ok], areas, 2)
    if force_alt_s2 and len(s1s) > 0 and len(s2s) > 1:
        ct = peaks["center_time"][members[s2s]]
        ct_s1 = peaks["center_time"][members[s1s[0]]]
        keep = (ct > ct_s1) & ((ct - ct_s1) < 1.01 * drift_max)
        keep[0] = True
        s2s = s2s[keep]
    s2s = s2s[:2]
    times = peaks["time"]
    if main_before_alt and len(s2s) == 2 and times[members[s2s[1]]] < times[members[s2s[0]]]:
        s2s = s2s[::-1].copy()
    chosen = np.full(4, -1, dtype=np.int64)
    for i in range(len(s1s)):
        chosen[i] = s1s[i]
    for i in range(len(s2s)):
        chosen[2 + i] = s2s[i]
    return chosen


@numba.njit(nogil=True, cache=True)
def _largest_masked(areas: np.ndarray, mask: np.ndarray) -> int:
    """Index of the first largest area where ``mask`` holds, or -1."""
    if not np.any(mask):
        return -1
    return int(np.arange(len(areas))[mask][np.argmax(areas[mask])])


@numba.njit(nogil=True, cache=True)
def _event_properties(members: np.ndarray, peaks: np.ndarray, c: np.ndarray, out: Any) -> None:
    """Drift times, delays and the largest S2s around the main S2 (straxen's order of ops)."""
    ct = peaks["center_time"][members]
    if c[0] >= 0 and c[2] >= 0:
        out["drift_time"] = ct[c[2]] - ct[c[0]]
        if c[1] >= 0:
            out["alt_s1_interaction_drift_time"] = ct[c[2]] - ct[c[1]]
            out["alt_s1_delay"] = ct[c[1]] - ct[c[0]]
        if c[3] >= 0:
            out["alt_s2_interaction_drift_time"] = ct[c[3]] - ct[c[0]]
            out["alt_s2_delay"] = ct[c[3]] - ct[c[2]]
    if c[2] < 0:
        return
    areas = peaks["area"][members]
    s2 = (~np.isnan(areas)) & (peaks["type"][members] == 2)
    after = _largest_masked(areas, s2 & (ct > ct[c[2]]))
    if after >= 0:
        out["large_s2_after_main_s2_area"] = areas[after]
        out["large_s2_after_main_s2_index"] = after
        out["large_s2_after_main_s2_center_time"] = ct[after]
    before = _largest_masked(areas, s2 & (ct < ct[c[2]]))
    if before >= 0:
        out["large_s2_before_main_s2_area"] = areas[before]
        out["large_s2_before_main_s2_index"] = before
        out["large_s2_before_main_s2_center_time"] = ct[before]
    out["area_before_main_s2"] = np.sum(areas[s2 & (ct < ct[c[2]])])


@numba.njit(nogil=True, cache=True)
def select_main_alt(
    container: np.ndarray,
    n_events: int,
    peaks: np.ndarray,
    s1_min_coincidence: int,
    options: np.ndarray,
    event_out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event: number of peaks, local and chunk indices of the four roles."""
    n_peaks = np.zeros(n_events, dtype=np.int32)
    for e in container:
        if e >= 0:
            n_peaks[e] += 1
    offsets = np.zeros(n_events + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(n_peaks)
    members = np.zeros(offsets[-1], dtype=np.int64)
    fill = offsets[:-1].copy()
    for p in range(len(container)):
        if container[p] >= 0:
            members[fill[container[p]]] = p
            fill[container[p]] += 1
    local = np.full((n_events, 4), -1, dtype=np.int64)
    global_ = np.full((n_events, 4), -1, dtype=np.int64)
    for e in range(n_events):
        mine = members[offsets[e] : offsets[e + 1]]
        if not len(mine):
            continue
        chosen = _choose(mine, peaks, s1_min_coincidence, options)
        _event_properties(mine, peaks, chosen, event_out[e])
        for r in range(4):
            if chosen[r] >= 0:
                local[e, r] = chosen[r]
                global_[e, r] = mine[chosen[r]]
    return n_peaks, local, global_


def _copied_fields(role: str, peak_fields: tuple[str, ...]) -> list[str]:
    names = [name for name, _, _ in EVENT_PEAK_PROPERTIES]
    if role.endswith("s1"):
        names += list(_S1_EXTRA)
    else:
        names += ["x", "y", *(f for f in peak_fields if f[:2] in ("x_", "y_"))]
    return names


def event_basics(events: np.ndarray, peaks: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """straxen's EventBasicsVanilla.compute for events and their peaks (basics, positions,
    proximity)."""
    result = np.zeros(len(events), dtype=event_basics_dtype())
    set_nan_defaults(result)
    for name in ("time", "endtime", "event_number"):
        result[name] = events[name]
    if not len(events):
        return result
    options = np.array(
        [
            config["allow_posts2_s1s"],
            config["force_alt_s2_in_max_drift_time"],
            config["force_main_before_alt"],
            max_drift_time_ns(config),
        ],
        dtype=np.float64,
    )
    per_event = np.zeros(len(events), dtype=_EVENT_DTYPE)
    set_nan_defaults(per_event)
    container = fully_contained_in(peaks, events)
    n_peaks, local, chosen = select_main_alt(
        container, len(events), peaks, int(config["event_s1_min_coincidence"]), options, per_event
    )
    result["n_peaks"] = n_peaks
    for name, _ in _EVENT_FIELDS:
        result[name] = per_event[name]
    peak_fields = peaks.dtype.names or ()
    for column, role in enumerate(ROLES):
        exists = chosen[:, column] >= 0
        result[f"{role}_index"][exists] = local[exists, column]
        rows = chosen[exists, column]
        for name in _copied_fields(role, peak_fields):
            result[f"{role}_{name}"][exists] = peaks[name][rows]
    return result


class EventBasics(Plugin):
    """events + peak_basics, peak_positions, peak_proximity -> event_basics."""

    provides = ("event_basics",)
    depends_on = ("events", "peak_basics", "peak_positions", "peak_proximity")
    data_kind = "events"
    lineage_name = "StraxdEventBasics"
    version = "1.3.7"
    options = (
        *DRIFT_OPTIONS,
        Option("allow_posts2_s1s", False, "S1s after the main S2 may become main S1"),
        Option("force_main_before_alt", False, "order main and alternate S2 by time"),
        Option("force_alt_s2_in_max_drift_time", True, "alt S2 within a max drift of the S1"),
        Option("event_s1_min_coincidence", 2, "tight coincidence of an event's S1"),
    )

    def infer_dtype(self) -> np.dtype[Any]:
        """straxen's field order, positions of the ``cnf`` algorithm."""
        return event_basics_dtype()

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """One chunk of events."""
        return event_basics(inputs["events"], inputs["peaks"], self.config)
