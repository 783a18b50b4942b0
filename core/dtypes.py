"""The numpy dtypes of every data type straxd writes, identical to strax's and straxen's.

Field names, order, types and titles (the per-field comments stored on disk) equal strax 2.2.3's
and straxen 4.0.0's online (vanilla) plugins; titles are part of the dtype descr in the metadata,
so they are copied word for word, including straxen's own wording slips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

DIGITAL_SUM_WAVEFORM_CHANNEL = -1
DEFAULT_RECORD_LENGTH = 110
N_TPC_PMTS = 494
N_TOP_PMTS = 253
# One position-reconstruction algorithm name, so the event dtypes are fixed.
POSREC_ALGORITHMS = ("cnf",)

FieldSpec = tuple[Any, ...]

TIME_FIELDS: list[FieldSpec] = [
    (("Start time since unix epoch [ns]", "time"), np.int64),
    (("Exclusive end time since unix epoch [ns]", "endtime"), np.int64),
]
TIME_DT_FIELDS: list[FieldSpec] = [
    (("Start time since unix epoch [ns]", "time"), np.int64),
    (("Length of the interval in samples", "length"), np.int32),
    (("Width of one sample [ns]", "dt"), np.int16),
]
INTERVAL_FIELDS: list[FieldSpec] = [*TIME_DT_FIELDS, (("Channel/PMT number", "channel"), np.int16)]
# Peaks can be downsampled to a large dt.
PEAK_INTERVAL_FIELDS: list[FieldSpec] = [
    INTERVAL_FIELDS[0],
    INTERVAL_FIELDS[1],
    (("Width of one sample [ns]", "dt"), np.int32),
    INTERVAL_FIELDS[3],
]
_PULSE_LENGTH = (
    ("Length of pulse to which the record belongs (without zero-padding)", "pulse_length"),
    np.int32,
)
_RECORD_I = (("Fragment number in the pulse", "record_i"), np.int16)


def commented_fields(specs: Iterable[tuple[str, Any, str]]) -> list[FieldSpec]:
    """straxen's ``(name, type, comment)`` triples as ``((comment, name), type)``."""
    return [((comment, name), kind) for name, kind, comment in specs]


def raw_record_dtype(samples_per_record: int = DEFAULT_RECORD_LENGTH) -> np.dtype[Any]:
    """One digitizer fragment, byte-identical to redax's 24-byte header plus payload."""
    return np.dtype(
        [
            *INTERVAL_FIELDS,
            _PULSE_LENGTH,
            _RECORD_I,
            (("Baseline determined by the digitizer (if this is supported)", "baseline"), np.int16),
            (("Waveform data in raw ADC counts", "data"), np.int16, samples_per_record),
        ]
    )


def record_dtype(samples_per_record: int = DEFAULT_RECORD_LENGTH) -> np.dtype[Any]:
    """A baselined, flipped fragment."""
    return np.dtype(
        [
            *INTERVAL_FIELDS,
            _PULSE_LENGTH,
            _RECORD_I,
            (("Integral in ADC counts x samples", "area"), np.int32),
            (
                ("Level of data reduction applied (strax.ReductionLevel enum)", "reduction_level"),
                np.uint8,
            ),
            (("Baseline in ADC counts. data = int(baseline) - data_orig", "baseline"), np.float32),
            (
                ("Baseline RMS in ADC counts. data = baseline - data_orig", "baseline_rms"),
                np.float32,
            ),
            (
                (
                    "Multiply data by 2**(this number). Baseline is unaffected.",
                    "amplitude_bit_shift",
                ),
                np.int16,
            ),
            (
                ("Waveform data in raw counts above integer part of baseline", "data"),
                np.int16,
                samples_per_record,
            ),
        ]
    )


HIT_DTYPE = np.dtype(
    [
        *INTERVAL_FIELDS,
        (("Integral [ADC x samples]", "area"), np.float32),
        (("Index of sample in record in which hit starts", "left"), np.int16),
        (("Index of first sample in record just beyond hit (exclusive bound)", "right"), np.int16),
        (
            (
                "For lone hits, index of sample in record where integration starts",
                "left_integration",
            ),
            np.int16,
        ),
        (
            ("For lone hits, index of first sample beyond integration region", "right_integration"),
            np.int16,
        ),
        (("Internal (temporary) index of fragment in which hit was found", "record_i"), np.int32),
        (("ADC threshold applied in order to find hits", "threshold"), np.float32),
        (("Maximum amplitude above baseline [ADC counts]", "height"), np.float32),
        (("Time when hit reach maximum amplitude [ns]", "max_time"), np.int64),
    ]
)


def peak_dtype(
    n_channels: int = N_TPC_PMTS,
    n_sum_wv_samples: int = 200,
    n_widths: int = 11,
    hits_timing: bool = True,
    store_data_top: bool = False,
    store_data_start: bool = False,
) -> np.dtype[Any]:
    """peaklets (and the peak part of merged_s2s/peaks); defaults are straxen's online ones."""
    if n_channels < 2:
        raise ValueError("a peak needs at least two channels")
    per_channel = (("Integral per channel [PE]", "area_per_channel"), np.float32, n_channels)
    fields: list[FieldSpec] = [
        *PEAK_INTERVAL_FIELDS,
        (("Classification of the peak(let)", "type"), np.int8),
        (("Integral across channels [PE]", "area"), np.float32),
        (("Fraction of area seen by the top array", "area_fraction_top"), np.float32),
        per_channel,
        (("Number of hits contributing at least one sample to the peak ", "n_hits"), np.int32),
        (("Waveform data in PE/sample (not PE/ns!)", "data"), np.float32, n_sum_wv_samples),
        (("Weighted average center time of the peak [ns]", "center_time"), np.int64),
        (("Weighted relative median time of the peak [ns]", "median_time"), np.float32),
        (("Peak widths in range of central area fraction [ns]", "width"), np.float32, n_widths),
        (
            ("Peak widths: time between nth and 5th area decile [ns]", "area_decile_from_midpoint"),
            np.float32,
            n_widths,
        ),
        (("Does the channel reach ADC saturation?", "saturated_channel"), np.int8, n_channels),
        (("Total number of saturated channels", "n_saturated_channels"), np.int16),
        (("Channel within tight range of mean", "tight_coincidence"), np.int16),
        (("Largest gap between hits inside peak [ns]", "max_gap"), np.int32),
        (("Maximum interior goodness of split", "max_goodness_of_split"), np.float32),
    ]
    if hits_timing:
        fields += _HITS_TIMING_FIELDS
    # strax inserts the optional waveforms at fixed positions, before `data`.
    if store_data_top:
        fields.insert(
            9,
            (
                ("Waveform data in PE/sample (not PE/ns!), top array", "data_top"),
                np.float32,
                n_sum_wv_samples,
            ),
        )
    if store_data_start:
        fields.insert(
            10,
            (
                (
                    "Waveform data in PE/sample (not PE/ns!), starting not downsampled samples",
                    "data_start",
                ),
                np.float32,
                n_sum_wv_samples,
            ),
        )
    return np.dtype(fields)


_HITS_TIMING_FIELDS: list[FieldSpec] = [
    (("Largest time difference between apexes of hits inside peak [ns]", "max_diff"), np.int32),
    (("Smallest time difference between apexes of hits inside peak [ns]", "min_diff"), np.int32),
    (
        ("First channel/PMT number inside peak (sorted by apexes of hits)", "first_channel"),
        np.int16,
    ),
    (("Last channel/PMT number inside peak (sorted by apexes of hits)", "last_channel"), np.int16),
]


def unpack_dtype(dtype: np.dtype[Any]) -> list[FieldSpec]:
    """The field specs of a structured dtype, titles kept: ``((title, name), type[, shape])``."""
    specs: list[FieldSpec] = []
    fields: dict[str, tuple[Any, ...]] = dict(dtype.fields or {})
    for name in dtype.names or ():
        spec = fields[name]
        title = spec[2] if len(spec) > 2 else None
        key: Any = (title, name) if title is not None else name
        base, shape = spec[0].base, spec[0].shape
        specs.append((key, base, shape) if shape else (key, base))
    return specs


def merged_dtype(dtypes: Sequence[np.dtype[Any]], align: bool = False) -> np.dtype[Any]:
    """Fields of all dtypes in order, the first occurrence of a name winning (as strax)."""
    seen: dict[str, FieldSpec] = {}
    for dtype in dtypes:
        for spec in unpack_dtype(np.dtype(dtype)):
            name = spec[0][1] if isinstance(spec[0], tuple) else spec[0]
            seen.setdefault(name, spec)
    return np.dtype(list(seen.values()), align=align)


def remove_titles(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The same dtype without field titles (strax compares dtypes this way)."""
    return np.dtype(
        [
            (spec[0][1] if isinstance(spec[0], tuple) else spec[0], *spec[1:])
            for spec in unpack_dtype(dtype)
        ]
    )


PEAKLET_CLASSIFICATION_DTYPE = np.dtype(
    [
        *PEAK_INTERVAL_FIELDS,
        (("Classification of the peak(let)", "type"), np.int8),
        (("Peaklet is merging input or peak is merged from peaklets", "merged"), np.bool_),
    ]
)
MERGED_INDICATOR_DTYPE = np.dtype(
    [(("Peaklet is merging input or peak is merged from peaklets", "merged"), np.bool_)]
)


def merged_s2s_dtype(n_channels: int = N_TPC_PMTS) -> np.dtype[Any]:
    """merged_s2s: classification fields first, then the peaklet fields (straxen's order)."""
    return merged_dtype(
        [PEAKLET_CLASSIFICATION_DTYPE, peak_dtype(n_channels), MERGED_INDICATOR_DTYPE]
    )


def peaks_dtype(n_channels: int = N_TPC_PMTS) -> np.dtype[Any]:
    """peaks: peaklet fields plus ``merged``, aligned as straxen builds it."""
    return merged_dtype([peak_dtype(n_channels), PEAKLET_CLASSIFICATION_DTYPE], align=True)


PEAK_BASICS_DTYPE = np.dtype(
    [
        *TIME_FIELDS,
        (("Weighted average center time of the peak [ns]", "center_time"), np.int64),
        (("Peak integral in PE", "area"), np.float32),
        (("Number of hits contributing at least one sample to the peak", "n_hits"), np.int32),
        (("Number of PMTs contributing to the peak", "n_channels"), np.int16),
        (("Number of top PMTs contributing to the peak", "top_n_channels"), np.int16),
        (("PMT number which contributes the most PE", "max_pmt"), np.int16),
        (("Area of signal in the largest-contributing PMT (PE)", "max_pmt_area"), np.float32),
        (("Total number of saturated channels", "n_saturated_channels"), np.int16),
        (("Width (in ns) of the central 50% area of the peak", "range_50p_area"), np.float32),
        (("Width (in ns) of the central 90% area of the peak", "range_90p_area"), np.float32),
        (("Fraction of area seen by the top array", "area_fraction_top"), np.float32),
        (("Length of the peak waveform in samples", "length"), np.int32),
        (("Time resolution of the peak waveform in ns", "dt"), np.int16),
        (("Weighted relative median time of the peak [ns]", "median_time"), np.float32),
        (("Time between 10% and 50% area quantiles [ns]", "rise_time"), np.float32),
        (("Number of PMTs with hits within tight range of mean", "tight_coincidence"), np.int16),
        (("Classification of the peak(let)", "type"), np.int8),
        (("Peak is merged from peaklets", "merged"), np.bool_),
        *_HITS_TIMING_FIELDS,
    ]
)
PEAK_PROXIMITY_DTYPE = np.dtype(
    [
        (("Strength of proximity peaks in (time, space)", "proximity_score"), np.float32),
        (
            (
                "Number of larger or slightly smaller peaks left of the main peak",
                "n_competing_left",
            ),
            np.int32,
        ),
        (("Number of nearby larger or slightly smaller peaks", "n_competing"), np.int32),
        *TIME_FIELDS,
    ]
)
EVENTS_DTYPE = np.dtype(
    [
        (("Event number in this dataset", "event_number"), np.int64),
        (("Event start time in ns since the unix epoch", "time"), np.int64),
        (("Event end time in ns since the unix epoch", "endtime"), np.int64),
    ]
)
