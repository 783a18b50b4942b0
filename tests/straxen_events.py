"""straxen 4.0.0's PeakProximity, Events and EventBasicsVanilla on peaks from .npy files (oracle).

Usage: straxen_events.py INPUT_DIR OUT_DIR. INPUT_DIR holds peaks_<i>.npy (peak_basics fields plus
NaN positions) and bounds.json ([[start, end], ...]); for each input the plugins' compute is called
in a fresh plugin (events are numbered from 0) and peak_proximity_<i>.npy, events_<i>.npy and
event_basics_<i>.npy are written.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import strax
import straxen

warnings.filterwarnings("ignore")
source, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)


class NanPositions(strax.Plugin):
    __version__ = "0.0.0"
    depends_on = ("peak_basics",)
    provides = "peak_positions"
    data_kind = "peaks"
    dtype = [*strax.time_fields] + [
        (n, np.float32, f"{n} [cm]") for n in ("x_cnf", "y_cnf", "x", "y")
    ]


def plugin(name):
    st = strax.Context(
        storage=[],
        register=[
            # Upstream plugins only so that the dependencies resolve; none of them is run.
            straxen.DAQReader,
            straxen.PulseProcessing,
            straxen.Peaklets,
            straxen.PeakletClassificationVanilla,
            straxen.MergedS2sVanilla,
            straxen.PeaksVanilla,
            straxen.PeakBasicsVanilla,
            NanPositions,
            straxen.PeakProximity,
            straxen.Events,
            straxen.EventBasicsVanilla,
        ],
        config={
            **straxen.contexts.common_config_vanilla,
            "electron_drift_velocity": 6.75e-5,
            "n_tpc_pmts": 494,
            "n_top_pmts": 253,
            "gain_model": 1.0,
        },
    )
    p = st._get_plugins((name,), "000001")[name]
    p.setup()
    return p


bounds = json.loads((source / "bounds.json").read_text())
for i, (start, end) in enumerate(bounds):
    peaks = np.load(source / f"peaks_{i}.npy")
    proximity = plugin("peak_proximity").compute(peaks=peaks)
    np.save(out / f"peak_proximity_{i}.npy", proximity)
    for name in ("proximity_score", "n_competing", "n_competing_left"):
        peaks[name] = proximity[name]
    events = plugin("events").compute(peaks=peaks, start=start, end=end)
    np.save(out / f"events_{i}.npy", events)
    np.save(out / f"event_basics_{i}.npy", plugin("event_basics").compute(events, peaks))
print(json.dumps({"inputs": len(bounds)}))
