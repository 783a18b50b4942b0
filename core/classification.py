"""peaklet_classification (straxen 4.0.0's PeakletClassificationVanilla): S1, S2 or unknown.

S1s are fast (small rise time) and coincident in at least two channels; large S1s have a fixed
rise-time ceiling, small ones a ceiling that depends on area and on area fraction top. Peaklets
seen by at least four PMTs that are not S1s are S2s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from straxd.core.dtypes import PEAKLET_CLASSIFICATION_DTYPE
from straxd.core.plugin import Option, Plugin


def rise_time_area_ceiling(area: np.ndarray, norm: float, const: float, tau: float) -> np.ndarray:
    """Upper S1 rise time (ns) for small peaks, by area."""
    result: np.ndarray = norm * np.exp(-area / tau) + const
    return result


def rise_time_aft_ceiling(
    aft: np.ndarray, slope: float, offset: float, aft_boundary: float, flat_ns: float
) -> np.ndarray:
    """Upper S1 rise time (ns) by area fraction top, flat above ``aft_boundary``."""
    result: np.ndarray = 10 ** (slope * aft + offset)
    result[aft >= aft_boundary] = flat_ns
    return result


class PeakletClassification(Plugin):
    """peaklets -> type (0 unknown, 1 S1, 2 S2) and ``merged=False``."""

    provides = ("peaklet_classification",)
    depends_on = ("peaklets",)
    data_kind = "peaklets"
    lineage_name = "StraxdPeakletClassification"
    version = "3.0.5"
    options = (
        Option("s1_risetime_area_parameters", (50, 80, 12), "norm, const, tau of the area ceiling"),
        Option("s1_risetime_aft_parameters", (-1, 2.6), "slope, offset of the AFT ceiling"),
        Option("s1_flatten_threshold_aft", (0.6, 100), "AFT above which the ceiling is flat"),
        Option("s1_max_rise_time_post100", 200, "maximum S1 rise time above 100 PE (ns)"),
        Option("s1_min_coincidence", 2, "minimum tight coincidence of an S1"),
        Option("s2_min_pmts", 4, "minimum PMTs of an S2"),
    )

    def infer_dtype(self) -> np.dtype[Any]:
        """peak interval fields, type and merged."""
        return PEAKLET_CLASSIFICATION_DTYPE

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """Classify one chunk of peaklets."""
        return classify(inputs["peaklets"], self.config)


def classify(peaklets: np.ndarray, c: dict[str, Any]) -> np.ndarray:
    """straxen's vanilla classification of peaklets."""
    rise_time = -peaklets["area_decile_from_midpoint"][:, 1]
    n_channels = (peaklets["area_per_channel"] > 0).sum(axis=1)
    coincident = peaklets["tight_coincidence"] >= c["s1_min_coincidence"]
    large_s1 = (peaklets["area"] >= 100) & (rise_time <= c["s1_max_rise_time_post100"]) & coincident
    small_s1 = peaklets["area"] < 100
    small_s1 &= rise_time < rise_time_area_ceiling(
        peaklets["area"], *c["s1_risetime_area_parameters"]
    )
    small_s1 &= rise_time < rise_time_aft_ceiling(
        peaklets["area_fraction_top"],
        *c["s1_risetime_aft_parameters"],
        *c["s1_flatten_threshold_aft"],
    )
    small_s1 &= coincident
    ptype = np.zeros(len(peaklets), dtype=np.int8)
    ptype[large_s1 | small_s1] = 1
    is_s2 = n_channels >= c["s2_min_pmts"]
    is_s2[large_s1 | small_s1] = False
    ptype[is_s2] = 2
    result = np.zeros(len(peaklets), dtype=PEAKLET_CLASSIFICATION_DTYPE)
    result["type"] = ptype
    result["time"] = peaklets["time"]
    result["dt"] = peaklets["dt"]
    result["length"] = peaklets["length"]
    result["channel"] = -1
    result["merged"] = False
    return result
