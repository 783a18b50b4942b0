"""Run straxen 4.0.0's vanilla chain on live_data, from DAQReader to event_basics (oracle).

Usage: straxen_chain.py CONFIG_JSON OUT_DIR. CONFIG_JSON holds the DAQReader options (as for
straxen_daqreader_dump.py), ``to_pe`` (gains, one per TPC channel), ``hit_min_amplitude`` and
``target_groups`` (lists of targets of one data kind). Each group is made from live_data in a fresh
context; ``also_load`` lists types the first group stores on its way. Every target's rows are
saved as OUT_DIR/<type>.npy. With ``passes`` > 1 everything is made again, in the same process
and fresh storage (warm passes, for benchmarks). The last stdout line is a JSON summary: rows per
target, wall time in seconds, and the ``time.monotonic()`` at the end of each pass.
"""

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import strax
import straxen

warnings.filterwarnings("ignore")

config = json.loads(Path(sys.argv[1]).read_text())
out = Path(sys.argv[2])
run_id = config.pop("run_id")
target_groups = config.pop("target_groups")
also_load = config.pop("also_load")
passes = config.pop("passes", 1)
to_pe = np.asarray(config.pop("to_pe"), dtype=np.float64)


class GivenGains:
    """straxen resolves gains from its database; the test gives them instead."""

    def setup(self):
        super().setup()
        self.to_pe = to_pe


class Peaklets(GivenGains, straxen.Peaklets):
    pass


class MergedS2s(GivenGains, straxen.MergedS2sVanilla):
    pass


class NanPositions(strax.Plugin):
    """No position model: NaN positions under one algorithm name, as straxd does."""

    __version__ = "0.0.0"
    depends_on = ("peak_basics",)
    provides = "peak_positions"
    data_kind = "peaks"
    save_when = strax.SaveWhen.NEVER
    dtype = [
        *strax.time_fields,
        ("x_cnf", np.float32, "cnf x [cm]"),
        ("y_cnf", np.float32, "cnf y [cm]"),
        ("x", np.float32, "x [cm]"),
        ("y", np.float32, "y [cm]"),
    ]

    def compute(self, peaks):
        result = np.full(len(peaks), np.nan, dtype=self.dtype)
        result["time"] = peaks["time"]
        result["endtime"] = strax.endtime(peaks)
        return result


def context(storage: Path) -> strax.Context:
    """A fresh context with its own storage: nothing made by another group is reused."""
    return strax.Context(
        storage=[strax.DataDirectory(str(storage))],
        register=[
            straxen.DAQReader,
            straxen.PulseProcessing,
            Peaklets,
            straxen.PeakletClassificationVanilla,
            MergedS2s,
            straxen.PeaksVanilla,
            straxen.PeakBasicsVanilla,
            NanPositions,
            straxen.PeakProximity,
            straxen.Events,
            straxen.EventBasicsVanilla,
            straxen.OnlinePeakMonitor,
        ],
        config={
            **straxen.contexts.common_config_vanilla,
            "n_tpc_pmts": 494,
            "n_top_pmts": 253,
            "gain_model": 1.0,
            "electron_drift_velocity": 6.75e-5,
            **config,
        },
        use_per_run_defaults=False,
    )


def save_group(st: strax.Context, targets: list) -> None:
    """Rows of each target as OUT_DIR/<type>.npy."""
    for target in targets:
        if target == "events" and not st.is_stored(run_id, target):
            # straxen does not store events (SaveWhen.EXPLICIT) when made with event_basics, and
            # get_array would recompute them from the stored peaks in one chunk, numbering them
            # differently; the streamed events are event_basics' first columns.
            basics = st.get_array(run_id, "event_basics")
            data = np.zeros(len(basics), dtype=st.get_single_plugin(run_id, "events").dtype)
            for name in data.dtype.names:
                data[name] = basics[name]
        else:
            data = st.get_array(run_id, target)
        rows[target] = len(data)
        np.save(out / f"{target}.npy", data)


started = time.monotonic()
rows = {}
pass_done = []
for pass_i in range(passes):
    for group_i, group in enumerate(target_groups):
        # One make per group: the chain streams chunk by chunk from live_data, as in live
        # processing (strax makes several targets at once only if they are of one data kind).
        st = context(out / f"pass_{pass_i}" / f"group_{group_i}")
        st.make(run_id, group)
        if pass_i == 0:
            # The first group's make also stored the types on its way: load those from there.
            save_group(st, group + (also_load if group_i == 0 else []))
    pass_done.append(time.monotonic())
wall_s = time.monotonic() - started
print(json.dumps({"rows": rows, "wall_s": wall_s, "pass_done_monotonic": pass_done}))
