"""Compile every numba kernel once so that its machine code is in the on-disk cache.

``make setup`` runs this, so a fresh straxer (and so bootstrax's per-run child) starts processing
within a second or two instead of compiling first.
"""

from __future__ import annotations

import time

import numpy as np

from straxd.core import chunk, daqreader, pulse
from straxd.core.dtypes import raw_record_dtype
from straxd.core.synth import Simulator


def warm_up() -> float:
    """Run each kernel on a little data; returns the seconds it took."""
    started = time.monotonic()
    raw = Simulator(seed=1, event_rate_hz=200).window(0, 0, 20_000_000).records
    raw = chunk.sort_by_time(raw[raw["channel"] < 494])
    result = pulse.pulse_processing(
        raw, 0, 20_000_000, hit_min_amplitude=np.full(494, 15.0), n_tpc_pmts=494
    )
    records = result["records"]
    chunk.split_array(records, int(records["time"][len(records) // 2]), allow_early_split=True)
    chunk.get_splits(records, records.itemsize * 10)
    ends = chunk.endtime(raw)
    daqreader._find_break(raw["time"], ends, 1000, 0)
    daqreader._which_detector(raw["channel"], np.array([[0, 493], [500, 752]], dtype=np.int64))
    pulse.baseline(pulse.raw_to_records(np.zeros(1, raw_record_dtype())))
    return time.monotonic() - started


def main() -> None:
    """Entry point of ``python -m straxd.core.warmup``."""
    print(f"numba kernels compiled and cached in {warm_up():.1f} s")


if __name__ == "__main__":
    main()
