"""peak_positions (no position model: NaN) and peak_proximity (straxen's PeakProximity 0.6.0).

The proximity score of a peak sums, over earlier S2s within ``proximity_window`` with at least
``proximity_min_area_fraction`` of its area, (area ratio) x (time difference in ms)^-1 x a
half-Cauchy density of their xy distance. Without positions every distance is NaN, those
neighbours are skipped and the score is 0; the counts of competing peaks do not need positions.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from straxd.core.chunk import endtime
from straxd.core.dtypes import PEAK_PROXIMITY_DTYPE, POSREC_ALGORITHMS, TIME_FIELDS
from straxd.core.errors import ConfigInvalid
from straxd.core.peaklets import touching_windows
from straxd.core.plugin import Option, Plugin, SaveWhen


def peak_positions_dtype(algorithms: tuple[str, ...] = POSREC_ALGORITHMS) -> np.dtype[Any]:
    """Time fields, ``x_<alg>``/``y_<alg>`` per algorithm, then the default ``x``, ``y``."""
    fields: list[Any] = list(TIME_FIELDS)
    for alg in algorithms:
        fields += [
            ((f"Reconstructed {alg} S2 X position (cm), uncorrected", f"x_{alg}"), np.float32),
            ((f"Reconstructed {alg} S2 Y position (cm), uncorrected", f"y_{alg}"), np.float32),
        ]
    fields += [
        (("Reconstructed S2 X position (cm), uncorrected", "x"), np.float32),
        (("Reconstructed S2 Y position (cm), uncorrected", "y"), np.float32),
    ]
    return np.dtype(fields)


class PeakPositions(Plugin):
    """peaks -> peak_positions, all NaN: the DAQ has no position reconstruction model."""

    provides = ("peak_positions",)
    depends_on = ("peak_basics",)
    data_kind = "peaks"
    lineage_name = "StraxdPeakPositions"
    version = "0.0.1"
    save_when = SaveWhen.NEVER

    def infer_dtype(self) -> np.dtype[Any]:
        """One algorithm (``cnf``) so that the event dtypes are fixed."""
        return peak_positions_dtype()

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """NaN positions, one row per peak."""
        peaks = inputs["peaks"]
        result = np.zeros(len(peaks), dtype=self.infer_dtype())
        for name in result.dtype.names or ():
            if name not in ("time", "endtime"):
                result[name] = np.nan
        result["time"] = peaks["time"]
        result["endtime"] = endtime(peaks)
        return result


@numba.njit(nogil=True, cache=True)
def _half_cauchy_pdf(x: float, scale: float) -> float:
    if x < 0.0:
        return 0.0
    if scale <= 0.0:
        return np.nan
    return 2.0 / (np.pi * scale * (1 + (x / scale) ** 2))


@numba.njit(nogil=True, cache=True)
def proximity_scores(
    peaks: np.ndarray,
    neighbours: np.ndarray,
    windows: np.ndarray,
    exponents: np.ndarray,
    sigma: float,
    min_area_fraction: float,
) -> np.ndarray:
    """Score of every peak from the neighbours in its window (float32 sums, as straxen)."""
    result = np.zeros(len(peaks), np.float32)
    for i in range(len(peaks)):
        area = peaks[i]["area"]
        if area <= 0:
            continue
        for j in range(windows[i, 0], windows[i, 1]):
            other = neighbours[j]
            dt_ms = (peaks[i]["center_time"] - other["center_time"]) / 1e6
            if dt_ms <= 0 or other["area"] <= 0:
                continue
            if other["area"] < min_area_fraction * area:
                continue
            dr = np.sqrt((peaks[i]["x"] - other["x"]) ** 2 + (peaks[i]["y"] - other["y"]) ** 2)
            if np.isnan(dr):
                continue
            if dr == 0:
                result[i] = np.inf
                continue
            ratio = other["area"] / area
            scale = sigma * np.sqrt(1 / other["area"] + 1 / area)
            pdf = _half_cauchy_pdf(dr, scale)
            result[i] += ratio ** exponents[0] * dt_ms ** exponents[1] * pdf ** exponents[2]
    return result


@numba.njit(nogil=True, cache=True)
def count_competing(
    peaks: np.ndarray, neighbours: np.ndarray, windows: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours above ``fraction`` of each peak's area: left of it, and in all."""
    n_left = np.zeros(len(peaks), dtype=np.int32)
    n_all = np.zeros(len(peaks), dtype=np.int32)
    areas = neighbours["area"]
    # straxen searches the time-ordered neighbours by center time; kept for equal counts.
    split = np.searchsorted(neighbours["center_time"], peaks["center_time"])
    for i in range(len(peaks)):
        threshold = peaks[i]["area"] * fraction
        n_left[i] = np.sum(areas[windows[i, 0] : split[i]] > threshold)
        n_all[i] = n_left[i] + np.sum(areas[split[i] : windows[i, 1]] > threshold)
    return n_left, n_all


def peak_proximity(peaks: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """straxen's PeakProximity.compute on peaks with basics and positions."""
    order = np.argsort(peaks["center_time"], kind="mergesort")
    by_center = peaks[order]
    neighbours = peaks[np.isin(peaks["type"], np.atleast_1d(config["proximity_type"]))]
    window_ns = int(config["proximity_window"])
    ends = endtime(neighbours)
    centre = by_center["center_time"]
    left = touching_windows(neighbours["time"], ends, centre - window_ns, centre)
    both = touching_windows(neighbours["time"], ends, centre - window_ns, centre + window_ns)
    fraction = float(config["proximity_min_area_fraction"])
    sorted_result = np.zeros(len(peaks), dtype=PEAK_PROXIMITY_DTYPE)
    sorted_result["time"] = by_center["time"]
    sorted_result["endtime"] = endtime(by_center)
    sorted_result["proximity_score"] = proximity_scores(
        by_center,
        neighbours,
        left,
        np.asarray(config["proximity_exponents"], dtype=np.float64),
        float(config["proximity_sigma"]),
        fraction,
    )
    n_left, n_all = count_competing(by_center, neighbours, both, fraction)
    sorted_result["n_competing_left"], sorted_result["n_competing"] = n_left, n_all
    result = np.zeros(len(peaks), dtype=PEAK_PROXIMITY_DTYPE)
    result[order] = sorted_result
    return result


class PeakProximity(Plugin):
    """peak_basics + peak_positions -> peak_proximity (needs 10 windows of context each side)."""

    provides = ("peak_proximity",)
    depends_on = ("peak_basics", "peak_positions")
    data_kind = "peaks"
    lineage_name = "StraxdPeakProximity"
    version = "0.6.0"
    options = (
        Option("proximity_type", 2, "(list of) peak type(s) that count as neighbours"),
        Option("proximity_min_area_fraction", 0.2, "neighbours need this fraction of the area"),
        Option("proximity_window", int(1e7), "neighbours start within this many ns either side"),
        Option("proximity_exponents", (1.0, -1.0, 1.0), "exponents of (area ratio, dt, dr pdf)"),
        Option("proximity_sigma", 20.0, "half-Cauchy scale factor (times sqrt(1/A1 + 1/A2))"),
    )

    def setup(self) -> None:
        """Check the options once."""
        c = self.config
        if len(c["proximity_exponents"]) != 3:
            raise ConfigInvalid("proximity_exponents needs three numbers")
        if int(c["proximity_window"]) <= 0:
            raise ConfigInvalid("proximity_window must be positive (ns)")
        window = 10 * int(c["proximity_window"])
        self.window_ns = (window, window)

    def infer_dtype(self) -> np.dtype[Any]:
        """Score, counts, time fields."""
        return PEAK_PROXIMITY_DTYPE

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """One window of peaks."""
        return peak_proximity(inputs["peaks"], self.config)
