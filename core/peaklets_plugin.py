"""The peaklets plugin (straxen 4.0.0's Peaklets, online settings)."""

from __future__ import annotations

from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np

from straxd.core.dtypes import HIT_DTYPE, N_TOP_PMTS, N_TPC_PMTS, peak_dtype
from straxd.core.errors import BadInput, ConfigInvalid
from straxd.core.hits import find_hits
from straxd.core.peak_properties import compute_properties
from straxd.core.peak_splitting import DEFAULT_GOF_THRESHOLD, natural_breaks_threshold, split_peaks
from straxd.core.peak_waveform import sum_waveform
from straxd.core.peaklets import (
    SaturationBuffer,
    add_hit_features,
    hitlets_of,
    outside_regions,
    peak_saturation_correction,
    tight_coincidence,
    touching_windows,
)
from straxd.core.peaks import (
    clip_peak_times,
    find_hit_integration_bounds,
    find_peaks,
    fully_contained_in,
    integrate_lone_hits,
    interval_ends,
)
from straxd.core.plugin import Option, Plugin
from straxd.core.pulse import record_links
from straxd.core.records import per_channel
from straxd.core.rows import sort_by_time, stable_time_order, take_rows, take_rows_in_place


class Peaklets(Plugin):
    """records -> peaklets (split, saturation-corrected) and lone_hits."""

    provides = ("peaklets", "lone_hits")
    # Saturation correction rewrites records; unless records are saved or used elsewhere (the
    # usual case), the chunk is then corrected in place instead of copied (150 MB per chunk).
    scratch_inputs = ("records",)
    depends_on = ("records",)
    data_kind = MappingProxyType({"peaklets": "peaklets", "lone_hits": "lone_hits"})
    lineage_name = "StraxdPeaklets"
    version = "1.2.2"
    compressor = "zstd"
    chunk_target_size_mb = 2000
    options = (
        Option("peaklet_gap_threshold", 700, "no hits for this many ns starts a new peaklet"),
        Option("peak_left_extension", 30, "ns added before the first hit"),
        Option("peak_right_extension", 200, "ns added after the last hit"),
        Option("peak_min_pmts", 2, "minimum channels for a peaklet"),
        Option("peaklet_max_duration", int(10e6), "maximum peaklet duration in ns"),
        Option("peak_split_gof_threshold", DEFAULT_GOF_THRESHOLD, "natural breaks thresholds"),
        Option("peak_split_filter_wing_width", 70, "wing width of the split_low filter (ns)"),
        Option("peak_split_min_area", 40.0, "minimum area (PE) to attempt a split"),
        Option("peak_split_iterations", 20, "maximum number of recursive splits"),
        Option("gain_model", 0.005, "PE per ADC x sample: number, per-channel list or file"),
        Option("tight_coincidence_window_left", 50, "ns before the maximum"),
        Option("tight_coincidence_window_right", 50, "ns after the maximum"),
        Option("n_tpc_pmts", N_TPC_PMTS, "number of TPC PMTs"),
        Option("n_top_pmts", N_TOP_PMTS, "number of top PMTs"),
        Option("store_data_top", False, "store the top-array waveform"),
        Option("store_data_start", False, "store the first samples undownsampled"),
        Option("saturation_correction_on", True, "correct saturated channels"),
        Option("saturation_reference_length", 100, "max reference samples"),
        Option("saturation_min_reference_length", 20, "min reference samples"),
        Option("hit_min_amplitude", 15, "hit threshold in ADC: number, per-channel list or file"),
    )

    def setup(self) -> None:
        """Validate options (straxen's limits) and resolve per-channel values."""
        c = self.config
        if c["peak_min_pmts"] > 2:
            raise ConfigInvalid("peak_min_pmts above 2 is not supported")
        if c["peaklet_gap_threshold"] > 1000:
            raise ConfigInvalid("peaklet_gap_threshold must not exceed 1000 ns (chunk split gap)")
        self.to_pe = per_channel(c["gain_model"], c["n_tpc_pmts"], "gain_model")
        self.thresholds = per_channel(c["hit_min_amplitude"], c["n_tpc_pmts"], "hit_min_amplitude")

    def infer_dtype(self) -> dict[str, np.dtype[Any]]:
        """peaklets (online: no top/start waveforms) and hits for lone_hits."""
        c = self.config
        return {
            "peaklets": peak_dtype(
                c["n_tpc_pmts"],
                store_data_top=c["store_data_top"],
                store_data_start=c["store_data_start"],
            ),
            "lone_hits": HIT_DTYPE,
        }

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> Any:
        """One chunk of records."""
        return make_peaklets(
            inputs["records"],
            start,
            end,
            self.config,
            self.to_pe,
            self.thresholds,
            self.infer_dtype()["peaklets"],
            records_owned="records" in self.owned_inputs,
        )


def make_peaklets(
    records: np.ndarray,
    start: int,
    end: int,
    c: dict[str, Any],
    to_pe: np.ndarray,
    thresholds: np.ndarray,
    out_dtype: np.dtype[Any],
    records_owned: bool = False,
    saturation: SaturationBuffer | None = None,
    hits: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """straxen's Peaklets.compute; ``records`` are changed only when ``records_owned``.

    ``saturation`` sets or reports the saturation buffer (see ``SaturationBuffer``). ``hits``
    are the records' hits at ``thresholds`` in record order, if already found.
    """
    ext = (c["peak_left_extension"], c["peak_right_extension"])
    if hits is None:
        hits = find_hits(records, min_amplitude=thresholds)
    hits = sort_by_time(hits, where=to_pe[hits["channel"]] != 0)
    full = peak_dtype(c["n_tpc_pmts"], store_data_top=True, store_data_start=True)
    peaklets = find_peaks(
        hits,
        to_pe,
        c["peaklet_gap_threshold"],
        ext[0],
        ext[1],
        0,
        c["peak_min_pmts"],
        c["peaklet_max_duration"],
        full,
    )
    clip_peak_times(peaklets, start, end)
    is_lone = fully_contained_in(hits, peaklets) == -1
    lone_hits = take_rows(hits, is_lone)
    integrate_lone_hits(lone_hits, records, peaklets, ext, len(to_pe))
    if np.any(lone_hits["right_integration"] - lone_hits["left_integration"] <= 0):
        raise BadInput("a lone hit has a non-positive integration window")
    hits = take_rows_in_place(hits, ~is_lone)  # the sorted hits are not needed any more
    find_hit_integration_bounds(
        hits,
        outside_regions(peaklets, start, end),
        records,
        ext,
        len(to_pe),
        allow_bounds_beyond_records=True,
    )
    hitlets = hitlets_of(hits, copy=False)  # the non-lone hits are not needed as they are
    clip_peak_times(hitlets, start, end)
    links = record_links(records)
    n_top, top, first = c["n_top_pmts"], c["store_data_top"], c["store_data_start"]
    sum_waveform(peaklets, hitlets, records, links, to_pe, n_top, top, first)
    compute_properties(peaklets, n_top)
    peaklets = split_peaks(
        peaklets,
        hitlets,
        records,
        links,
        to_pe,
        partial(natural_breaks_threshold, gof_threshold=c["peak_split_gof_threshold"]),
        min_area=c["peak_split_min_area"],
        iterations=c["peak_split_iterations"],
        filter_wing_width=c["peak_split_filter_wing_width"],
        n_top_channels=n_top,
        store_data_top=top,
        store_data_start=first,
    )
    if c["saturation_correction_on"]:
        if not records_owned and (peaklets["n_saturated_channels"] > 0).any():
            records = records.copy()  # the correction rewrites records; others share this chunk
        corrected = peak_saturation_correction(
            records,
            links,
            peaklets,
            hitlets,
            to_pe,
            c["saturation_reference_length"],
            c["saturation_min_reference_length"],
            n_top,
            top,
            first,
            saturation,
        )
        compute_properties(peaklets, n_top, select=corrected)
    order = stable_time_order(hitlets["max_time"])
    peak_max_times = peaklets["time"] + np.argmax(peaklets["data"], axis=1) * peaklets["dt"]
    peaklets["tight_coincidence"] = tight_coincidence(
        hitlets["max_time"][order],
        hitlets["channel"][order],
        peak_max_times,
        c["tight_coincidence_window_left"],
        c["tight_coincidence_window_right"],
        0,
        c["n_tpc_pmts"] - 1,
    )
    add_hit_features(hitlets, peaklets, order)
    counts = touching_windows(
        hitlets["time"], interval_ends(hitlets), peaklets["time"], interval_ends(peaklets)
    )
    peaklets["n_hits"] = np.diff(counts, axis=1).flatten()
    result = np.zeros(len(peaklets), dtype=out_dtype)
    for name in out_dtype.names or ():
        result[name] = peaklets[name]
    return {"peaklets": result, "lone_hits": lone_hits}
