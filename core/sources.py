"""Source plugins: where the pipeline's first chunks come from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.daqreader import RAW_RECORDS_TYPES, LiveRun, LiveRunConfig
from straxd.core.dtypes import raw_record_dtype
from straxd.core.errors import BadInput
from straxd.core.lifecycle import wait_for_stop
from straxd.core.plugin import Option, RunInPool, SaveWhen, SourcePlugin


class DAQReader(SourcePlugin):
    """redax live_data -> raw_records*, with straxen's DAQReader lineage (``rfzvpzj4mf``).

    Every option is untracked, as in straxen, so the folder names equal straxen's and offline
    straxen finds uploaded raw data.
    """

    provides = RAW_RECORDS_TYPES
    lineage_name = "DAQReader"
    version = "0.0.0"
    compressor = "lz4"
    chunk_target_size_mb = 500
    save_when = SaveWhen.ALWAYS
    rechunk_on_save: ClassVar[dict[str, bool]] = {
        t: t in ("raw_records_aqmon", "raw_records_aqmon_nv") for t in RAW_RECORDS_TYPES
    }
    options = (
        Option("live_run", None, "LiveRunConfig of the run to read", track=False),
        Option("live_run_error", "", "why the run's live_data cannot be read", track=False),
        Option("run_id", "000000", "run id of the output chunks", track=False),
        Option("poll_interval_s", 0.5, "how often to look for new live_data", track=False),
        Option(
            "input_timeout_s", 3600.0, "give up after this long without a new chunk", track=False
        ),
    )

    def setup(self) -> None:
        """Open the run's live_data (when configured: lineage needs no run)."""
        self.stop = asyncio.Event()
        config = self.config["live_run"]
        self.live = LiveRun(config) if isinstance(config, LiveRunConfig) else None

    def infer_dtype(self) -> dict[str, np.dtype[Any]]:
        """raw_records of the run's payload size for every output."""
        length = self.live.config.record_length if self.live else 110
        return dict.fromkeys(RAW_RECORDS_TYPES, raw_record_dtype(length))

    async def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, Chunk]]:
        """Chunks as they become ready, until the run has ended and all are read."""
        if self.live is None:
            raise BadInput(self.config["live_run_error"] or "DAQReader has no live_data to read")
        live, chunk_i = self.live, 0
        last_progress = time.monotonic()
        while True:
            if await run_in_pool(live.is_ready, chunk_i):
                yield await run_in_pool(live.load_chunk, chunk_i, self.config["run_id"])
                chunk_i += 1
                last_progress = time.monotonic()
                continue
            if await run_in_pool(live.finished) and not await run_in_pool(live.exists, chunk_i):
                return
            waited_s = time.monotonic() - last_progress
            if waited_s > self.config["input_timeout_s"]:
                raise BadInput(f"{live.config.run_dir}: no chunk {chunk_i} after {waited_s:.0f} s")
            if await wait_for_stop(self.stop, self.config["poll_interval_s"]):
                raise asyncio.CancelledError("stop requested while waiting for live_data")
