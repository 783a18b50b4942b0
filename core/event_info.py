"""event_info: event_basics plus energies from plain-number corrections (no calibration maps).

``cs1`` is the main S1 area; ``cs2`` the main S2 area corrected for the electron lifetime over the
drift time; ``e_light = W cs1 / g1``, ``e_charge = W cs2 / g2`` and ``e_ces`` their sum, with
W = 13.7 eV. Events without a main S1 (no drift time) get NaN energies from the charge side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from straxd.core.dtypes import unpack_dtype
from straxd.core.errors import ConfigInvalid
from straxd.core.event_dtypes import event_basics_dtype
from straxd.core.plugin import Option, Plugin

W_KEV = 13.7e-3  # mean energy per quantum (photon or electron) in liquid xenon
ENERGY_FIELDS = (
    ("cs1", "Corrected area of main S1 [PE]"),
    ("cs2", "Corrected area of main S2, electron lifetime only [PE]"),
    ("e_light", "Energy in light signal [keVee]"),
    ("e_charge", "Energy in charge signal [keVee]"),
    ("e_ces", "Energy estimate [keVee]"),
)


def event_info_dtype() -> np.dtype[Any]:
    """event_basics followed by the energy fields."""
    basics = event_basics_dtype()
    extra = [((title, name), np.float32) for name, title in ENERGY_FIELDS]
    return np.dtype([*unpack_dtype(basics), *extra])


def event_info(basics: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """event_basics plus cs1, cs2 (lifetime-corrected) and the combined energy scale."""
    result = np.zeros(len(basics), dtype=event_info_dtype())
    for name in basics.dtype.names or ():
        result[name] = basics[name]
    cs1 = basics["s1_area"].astype(np.float64)
    cs2 = basics["s2_area"] * np.exp(basics["drift_time"] / float(config["electron_lifetime"]))
    e_light = W_KEV * cs1 / float(config["g1"])
    e_charge = W_KEV * cs2 / float(config["g2"])
    result["cs1"], result["cs2"] = cs1, cs2
    result["e_light"], result["e_charge"] = e_light, e_charge
    result["e_ces"] = e_light + e_charge
    return result


class EventInfo(Plugin):
    """event_basics -> event_info, with plain-number corrections (no calibration maps)."""

    provides = ("event_info",)
    depends_on = ("event_basics",)
    data_kind = "events"
    lineage_name = "StraxdEventInfo"
    version = "0.1.0"
    options = (
        Option("g1", 0.151, "PE per emitted photon"),
        Option("g2", 16.45, "PE per electron extracted into the gas"),
        Option("electron_lifetime", 15e6, "electron lifetime in ns"),
    )

    def setup(self) -> None:
        """Refuse values that would divide by zero or flip signs."""
        for name in ("g1", "g2", "electron_lifetime"):
            value = self.config[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigInvalid(f"{name} must be a positive number, got {value!r}")

    def infer_dtype(self) -> np.dtype[Any]:
        """event_basics plus cs1, cs2, e_light, e_charge, e_ces."""
        return event_info_dtype()

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        """One chunk of events."""
        return event_info(inputs["events"], self.config)
