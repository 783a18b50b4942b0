"""The processing chain through the pipeline: chunked results equal whole-run results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.classification import PeakletClassification, classify
from straxd.core.dtypes import merged_s2s_dtype, peaks_dtype, record_dtype
from straxd.core.filestore import FileStore
from straxd.core.merged_s2s import MergedS2s, merge_s2s
from straxd.core.peak_basics import PeakBasics, Peaks, make_peak_basics, make_peaks
from straxd.core.peaklets_plugin import Peaklets
from straxd.core.pipeline import Pipeline
from straxd.core.pipeline_inputs import merge_chunks
from straxd.core.plugin import Option, Registry, RunInPool, SourcePlugin
from straxd.core.records import pulse_processing
from straxd.core.rows import sort_by_time
from straxd.core.storage_read import find
from straxd.core.synth import DetectorModel, Simulator
from tests.oracle import assert_struct_equal

RUN = "000003"
CHUNK_NS = 400_000_000
TO_PE = DetectorModel().to_pe().tolist()


def simulated_records(n_chunks: int) -> list[np.ndarray]:
    sim = Simulator(31, event_rate_hz=800)
    chunks = []
    for i in range(n_chunks):
        raw = sim.window(i, i * CHUNK_NS, (i + 1) * CHUNK_NS).records
        raw = sort_by_time(raw[(raw["channel"] < 494) & (raw["time"] >= i * CHUNK_NS)])
        raw = raw[raw["time"] + raw["length"] * 10 <= (i + 1) * CHUNK_NS]
        chunks.append(
            pulse_processing(
                raw,
                i * CHUNK_NS,
                (i + 1) * CHUNK_NS,
                hit_min_amplitude=np.full(494, 15.0),
                n_tpc_pmts=494,
            )["records"]
        )
    return chunks


class RecordsSource(SourcePlugin):
    provides = ("records",)
    options = (Option("n_chunks", 4, "chunks", track=False),)

    def infer_dtype(self) -> np.dtype[Any]:
        return record_dtype()

    async def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, Chunk]]:
        for i, data in enumerate(simulated_records(self.config["n_chunks"])):
            yield {
                "records": Chunk("records", "records", RUN, i * CHUNK_NS, (i + 1) * CHUNK_NS, data)
            }


async def test_chunked_merged_s2s_equal_whole_run(tmp_path: Path) -> None:
    """merged_s2s and peak_basics made chunk by chunk equal one computation on the whole run."""
    config = {"gain_model": TO_PE}
    plugins = [RecordsSource(), Peaklets(config), PeakletClassification(), MergedS2s(config)]
    registry = Registry([*plugins, Peaks(), PeakBasics()])
    store = FileStore(tmp_path, RUN, fsync=False)
    with ThreadPoolExecutor(2) as pool:
        await Pipeline(registry, store, RUN, ["merged_s2s", "peak_basics"], pool).run()

    def stored(name: str) -> np.ndarray:
        return find(tmp_path, RUN, name, registry.lineage_hash(name)).load_all()

    peaklets, lone_hits = stored("peaklets"), stored("lone_hits")
    types = classify(peaklets, PeakletClassification().config)
    whole = merge_chunks(
        [
            Chunk("peaklets", "peaklets", RUN, 0, 4 * CHUNK_NS, peaklets),
            Chunk("peaklet_classification", "peaklets", RUN, 0, 4 * CHUNK_NS, types),
        ]
    ).data
    expected = merge_s2s(
        whole, lone_hits, MergedS2s(config).config, np.asarray(TO_PE), merged_s2s_dtype()
    )
    chunked = stored("merged_s2s")
    assert len(expected) > 5
    assert_struct_equal(chunked, expected)
    whole_peaks = make_peaks(whole, expected, True, peaks_dtype())
    assert_struct_equal(stored("peak_basics"), make_peak_basics(whole_peaks, 253))
    assert not store.has("peaks", registry.lineage_hash("peaks"))  # EXPLICIT: not saved
    folder = find(tmp_path, RUN, "merged_s2s", registry.lineage_hash("merged_s2s"))
    assert folder.metadata["chunks"][0]["start"] == 0
    assert folder.metadata["chunks"][-1]["end"] == 4 * CHUNK_NS
