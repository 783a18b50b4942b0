"""straxen's pulse_counts: per chunk and channel, pulses, lone pulses, their areas, baselines."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.errors import BadInput

NO_PULSE_COUNTS = -9999


def pulse_count_dtype(n_channels: int) -> np.dtype[Any]:
    """straxen's pulse_counts: one row per chunk with per-channel counts and areas."""
    return np.dtype(
        [
            (("Start time of the chunk", "time"), np.int64),
            (("End time of the chunk", "endtime"), np.int64),
            (("Number of pulses", "pulse_count"), (np.int64, n_channels)),
            (("Number of lone pulses", "lone_pulse_count"), (np.int64, n_channels)),
            (
                ("Integral of all pulses in ADC_count x samples", "pulse_area"),
                (np.int64, n_channels),
            ),
            (
                ("Integral of lone pulses in ADC_count x samples", "lone_pulse_area"),
                (np.int64, n_channels),
            ),
            (("Average baseline", "baseline_mean"), (np.int16, n_channels)),
            (("Average baseline rms", "baseline_rms_mean"), (np.float32, n_channels)),
        ]
    )


def count_pulses(records: np.ndarray, n_channels: int) -> np.ndarray:
    """straxen's pulse_counts of one chunk (no row when there are no records)."""
    result = np.zeros(1 if len(records) else 0, dtype=pulse_count_dtype(n_channels))
    if len(records):
        if int(records["channel"].max()) >= n_channels:
            raise BadInput(f"channel {int(records['channel'].max())} beyond {n_channels}")
        _count_pulses(records, n_channels, result)
    return result


@numba.njit(nogil=True, cache=True)
def _count_pulses(records: np.ndarray, n_channels: int, result: np.ndarray) -> None:
    count = np.zeros(n_channels, dtype=np.int64)
    lone_count = np.zeros(n_channels, dtype=np.int64)
    area = np.zeros(n_channels, dtype=np.int64)
    lone_area = np.zeros(n_channels, dtype=np.int64)
    in_lone = np.zeros(n_channels, dtype=np.bool_)
    bl_sum = np.zeros(n_channels, dtype=np.float64)
    rms_sum = np.zeros(n_channels, dtype=np.float64)
    last_end = 0
    next_start = 0
    for i in range(len(records)):
        r = records[i]
        if i != len(records) - 1:
            next_start = records[i + 1]["time"]
        ch = r["channel"]
        area[ch] += r["area"]
        if r["record_i"] == 0:
            count[ch] += 1
            bl_sum[ch] += r["baseline"]
            rms_sum[ch] += r["baseline_rms"]
            pulse_end = r["time"] + r["pulse_length"] * r["dt"]
            if r["time"] > last_end and pulse_end < next_start:
                lone_count[ch] += 1
                in_lone[ch] = True
                lone_area[ch] += r["area"]
            else:
                in_lone[ch] = False
            last_end = max(last_end, pulse_end)
        elif in_lone[ch]:
            lone_area[ch] += r["area"]
    res = result[0]
    res["pulse_count"][:] = count
    res["lone_pulse_count"][:] = lone_count
    res["pulse_area"][:] = area
    res["lone_pulse_area"][:] = lone_area
    means = bl_sum / count
    means[np.isnan(means)] = NO_PULSE_COUNTS
    res["baseline_mean"][:] = means
    res["baseline_rms_mean"][:] = rms_sum / count
