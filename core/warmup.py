"""Compile every numba kernel once so that its machine code is in the on-disk cache.

``make setup`` runs this, so a fresh straxer (and so bootstrax's per-run child) starts processing
within a second or two instead of compiling first.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from straxd.core import chunk, daqreader, live_files, row_order, rows
from straxd.core.context import PLUGIN_CLASSES
from straxd.core.dtypes import raw_record_dtype
from straxd.core.filestore import FileStore
from straxd.core.pipeline import Pipeline
from straxd.core.plugin import Registry, RunInPool, SourcePlugin
from straxd.core.records import pulse_processing
from straxd.core.sources import DAQReader
from straxd.core.synth import DetectorModel, Simulator

_RUN = "000000"
_CHUNK_NS = 200_000_000


class _SimulatedRaw(SourcePlugin):
    """Two short chunks of simulated TPC raw_records (enough for every kernel to run)."""

    provides = ("raw_records",)
    data_kind = "raw_records"

    def infer_dtype(self) -> np.dtype[Any]:
        return raw_record_dtype()

    async def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, chunk.Chunk]]:
        sim = Simulator(seed=2, event_rate_hz=300)
        for i in range(2):
            start, end = i * _CHUNK_NS, (i + 1) * _CHUNK_NS
            raw = sim.window(i, start, end).records
            raw = raw[(raw["channel"] < 494) & (raw["time"] >= start)]
            raw = rows.sort_by_time(raw[chunk.endtime(raw) <= end])
            yield {"raw_records": chunk.Chunk("raw_records", "raw_records", _RUN, start, end, raw)}


def _warm_chain() -> None:
    """The whole chain, raw_records to event_info, through the pipeline into a scratch folder."""
    config = {"gain_model": DetectorModel().to_pe().tolist()}
    plugins = [cls(config) for cls in PLUGIN_CLASSES if cls is not DAQReader]
    registry = Registry([_SimulatedRaw(), *plugins])
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(2) as pool:
        store = FileStore(Path(scratch), _RUN, fsync=False)
        targets = ["event_info", "online_peak_monitor"]
        asyncio.run(Pipeline(registry, store, _RUN, targets, pool).run())


def warm_up() -> float:
    """Run each kernel on a little data; returns the seconds it took."""
    started = time.monotonic()
    raw = Simulator(seed=1, event_rate_hz=200).window(0, 0, 20_000_000).records
    raw = rows.sort_by_time(raw[raw["channel"] < 494])
    result = pulse_processing(
        raw, 0, 20_000_000, hit_min_amplitude=np.full(494, 15.0), n_tpc_pmts=494
    )
    records = result["records"]
    chunk.split_array(records, int(records["time"][len(records) // 2]), allow_early_split=True)
    chunk.get_splits(records, records.itemsize * 10)
    ends = chunk.endtime(raw)
    daqreader._find_break(raw["time"], ends, 1000, 0)
    daqreader._which_detector(raw["channel"], np.array([[0, 493], [500, 752]], dtype=np.int64))
    fragments = live_files.Fragments.of_sorted(raw)
    fragments.sorted_rows()
    live_files._window_key(raw["time"], raw["channel"], 0, 20_000_000)
    row_order.permute_rows_in_place(raw.copy(), np.arange(len(raw))[::-1])
    _warm_chain()
    return time.monotonic() - started


def main() -> None:
    """Entry point of ``python -m straxd.core.warmup``."""
    print(f"numba kernels compiled and cached in {warm_up():.1f} s")


if __name__ == "__main__":
    main()
