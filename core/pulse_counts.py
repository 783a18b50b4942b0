"""straxen's pulse_counts: per chunk and channel, pulses, lone pulses, their areas, baselines."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.errors import BadInput

NO_PULSE_COUNTS = -9999
# No piece follows: the last record keeps the start it last looked at, as for a whole chunk.
NO_FOLLOWING = -1


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


class PulseCounter:
    """pulse_counts of one chunk, from its records given in time-ordered pieces.

    A pulse is lone when it starts after every earlier pulse has ended and ends before the next
    record starts. The running sums, the lone flags and the last end carry from one piece to the
    next, and a piece's last record looks at the next piece's first one (``following_time``), so
    the result is that of the whole chunk at once, whatever the pieces.
    """

    def __init__(self, n_channels: int) -> None:
        self.n_channels = n_channels
        # pulses, lone pulses, area, lone area; baseline and rms sums; lone flags; last end and
        # the next record's start.
        self._ints = np.zeros((4, n_channels), dtype=np.int64)
        self._sums = np.zeros((2, n_channels), dtype=np.float64)
        self._in_lone = np.zeros(n_channels, dtype=np.bool_)
        self._marks = np.zeros(2, dtype=np.int64)
        self._seen = False

    def add(self, records: np.ndarray, following_time: int = NO_FOLLOWING) -> None:
        """Count one piece; ``following_time`` is the start of the next piece's first record."""
        if not len(records):
            return
        if int(records["channel"].max()) >= self.n_channels:
            raise BadInput(f"channel {int(records['channel'].max())} beyond {self.n_channels}")
        _accumulate(records, self._ints, self._sums, self._in_lone, self._marks, following_time)
        self._seen = True

    def result(self, start: int, end: int) -> np.ndarray:
        """The row of the chunk [start, end) (none when there were no records)."""
        result = np.zeros(1 if self._seen else 0, dtype=pulse_count_dtype(self.n_channels))
        if self._seen:
            res = result[0]
            res["time"], res["endtime"] = start, end
            for i, name in enumerate(_INT_FIELDS):
                res[name][:] = self._ints[i]
            count = self._ints[0]
            with np.errstate(invalid="ignore", divide="ignore"):
                means = self._sums[0] / count
                rms = self._sums[1] / count
            means[np.isnan(means)] = NO_PULSE_COUNTS
            res["baseline_mean"][:] = means
            res["baseline_rms_mean"][:] = rms
        return result


_INT_FIELDS = ("pulse_count", "lone_pulse_count", "pulse_area", "lone_pulse_area")


@numba.njit(nogil=True, cache=True)
def _accumulate(
    records: np.ndarray,
    ints: np.ndarray,
    sums: np.ndarray,
    in_lone: np.ndarray,
    marks: np.ndarray,
    following_time: int,
) -> None:
    count, lone_count, area, lone_area = ints[0], ints[1], ints[2], ints[3]
    bl_sum, rms_sum = sums[0], sums[1]
    last_end, next_start = marks[0], marks[1]
    for i in range(len(records)):
        r = records[i]
        if i != len(records) - 1:
            next_start = records[i + 1]["time"]
        elif following_time != NO_FOLLOWING:
            next_start = following_time
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
    marks[0], marks[1] = last_end, next_start
