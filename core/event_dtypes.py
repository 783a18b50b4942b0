"""The dtype of event_basics (straxen's EventBasicsVanilla): main and alternate S1 and S2 with
their properties, S1 timing, S2 positions, the largest S2s around the main one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from straxd.core.dtypes import POSREC_ALGORITHMS, TIME_FIELDS, commented_fields

# Properties copied from the main and alternate S1 and S2 into event_basics, with the comment
# that follows "Main S1 " / "Alternate S2 " in the title.
EVENT_PEAK_PROPERTIES: tuple[tuple[str, Any, str], ...] = (
    ("time", np.int64, "start time since unix epoch [ns]"),
    ("center_time", np.int64, "weighted average center time since unix epoch [ns]"),
    ("median_time", np.float32, "weighted relative median time of the peak [ns]"),
    ("endtime", np.int64, "end time since unix epoch [ns]"),
    ("area", np.float32, "area, uncorrected [PE]"),
    ("n_channels", np.int16, "count of contributing PMTs"),
    ("top_n_channels", np.int16, "count of contributing top PMTs"),
    ("n_hits", np.int32, "count of hits contributing at least one sample to the peak"),
    ("proximity_score", np.float32, "proximity score in (time, space)"),
    ("n_competing_left", np.int32, "number of competing peaks left of the main peak"),
    ("n_competing", np.int32, "number of competing peaks"),
    ("max_pmt", np.int16, "PMT number which contributes the most PE"),
    ("max_pmt_area", np.float32, "area in the largest-contributing PMT (PE)"),
    ("range_50p_area", np.float32, "width, 50% area [ns]"),
    ("range_90p_area", np.float32, "width, 90% area [ns]"),
    ("rise_time", np.float32, "time between 10% and 50% area quantiles [ns]"),
    ("area_fraction_top", np.float32, "fraction of area seen by the top PMT array"),
    ("tight_coincidence", np.int16, "channel within tight range of mean"),
    ("n_saturated_channels", np.int16, "total number of saturated channels"),
    ("merged", np.bool_, "is merged from peaklets"),
)


def _main_alt_fields() -> list[tuple[str, Any, str]]:
    specs: list[tuple[str, Any, str]] = []
    for s in (1, 2):
        specs += [
            (f"s{s}_index", np.int32, f"Main S{s} peak index in event"),
            (f"alt_s{s}_index", np.int32, f"Alternate S{s} peak index in event"),
        ]
        for name, kind, comment in EVENT_PEAK_PROPERTIES:
            specs += [
                (f"s{s}_{name}", kind, f"Main S{s} {comment}"),
                (f"alt_s{s}_{name}", kind, f"Alternate S{s} {comment}"),
            ]
        specs += [
            (
                f"alt_s{s}_interaction_drift_time",
                np.float32,
                f"Drift time using alternate S{s} [ns]",
            ),
            (f"alt_s{s}_delay", np.int32, f"Time between main and alternate S{s} [ns]"),
        ]
    return specs


def _s1_timing_and_position_fields() -> list[tuple[str, Any, str]]:
    specs: list[tuple[str, Any, str]] = []
    for name, kind, what in (
        ("max_diff", np.int32, "largest time difference between apexes of hits [ns]"),
        ("min_diff", np.int32, "smallest time difference between apexes of hits [ns]"),
        ("first_channel", np.int16, "first channel/PMT number (sorted by apexes of hits)"),
        ("last_channel", np.int16, "last channel/PMT number (sorted by apexes of hits)"),
    ):
        alt_title = f"Alternate S1 {what}"
        if name == "last_channel":
            alt_title = f"Alternate {what}"  # straxen's title lacks "S1" here
        specs += [(f"s1_{name}", kind, f"Main S1 {what}"), (f"alt_s1_{name}", kind, alt_title)]
    for who, title in (("s2", "Main S2"), ("alt_s2", "Alternate S2")):
        specs += [
            (f"{who}_x", np.float32, f"{title} reconstructed X position, uncorrected [cm]"),
            (f"{who}_y", np.float32, f"{title} reconstructed Y position, uncorrected [cm]"),
        ]
    specs.append(("area_before_main_s2", np.float32, "Sum of areas before Main S2 [PE]"))
    for where in ("before", "after"):
        specs += [
            (
                f"large_s2_{where}_main_s2_area",
                np.float32,
                f"The largest S2 {where} the Main S2 [PE]",
            ),
            (
                f"large_s2_{where}_main_s2_index",
                np.int32,
                f"Index of the largest S2 {where} the Main S2",
            ),
            (
                f"large_s2_{where}_main_s2_center_time",
                np.int64,
                f"Center time of the largest S2 {where} the Main S2 [ns]",
            ),
        ]
    return specs


def event_basics_dtype(posrec_algorithms: Sequence[str] = POSREC_ALGORITHMS) -> np.dtype[Any]:
    """event_basics as straxen's EventBasicsVanilla, one S2 position per algorithm."""
    specs: list[tuple[str, Any, str]] = [
        ("n_peaks", np.int32, "Number of peaks in the event"),
        ("drift_time", np.float32, "Drift time between main S1 and S2 in ns"),
        ("event_number", np.int64, "Event number in this dataset"),
        *_main_alt_fields(),
        *_s1_timing_and_position_fields(),
    ]
    for alg in sorted(posrec_algorithms):
        for who, title in (("s2", "Main S2"), ("alt_s2", "Alternate S2")):
            specs += [
                (
                    f"{who}_x_{alg}",
                    np.float32,
                    f"{title} {alg}-reconstructed X position, uncorrected [cm]",
                ),
                (
                    f"{who}_y_{alg}",
                    np.float32,
                    f"{title} {alg}-reconstructed Y position, uncorrected [cm]",
                ),
            ]
    return np.dtype([*TIME_FIELDS, *commented_fields(specs)])
