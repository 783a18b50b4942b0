"""Hypothesis strategies shared by the tests: sorted interval arrays of strax-like dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

TIME_DT_DTYPE = np.dtype(
    [
        (("Start time since unix epoch [ns]", "time"), np.int64),
        (("Length of the interval in samples", "length"), np.int32),
        (("Width of one sample [ns]", "dt"), np.int16),
        (("Channel/PMT number", "channel"), np.int16),
        (("Integral [ADC x samples]", "area"), np.float32),
    ]
)
TIME_END_DTYPE = np.dtype(
    [
        (("Start time since unix epoch [ns]", "time"), np.int64),
        (("Exclusive end time since unix epoch [ns]", "endtime"), np.int64),
        (("Some value", "value"), np.float64),
    ]
)


@st.composite
def interval_arrays(
    draw: st.DrawFn,
    dtype: np.dtype[Any] = TIME_DT_DTYPE,
    max_rows: int = 60,
    t0_ns: int = 1_000_000,
    max_gap_ns: int = 3000,
    max_length: int = 150,
    allow_overlap: bool = True,
) -> np.ndarray:
    """Rows sorted by time with random lengths and gaps (possibly overlapping, never zero-long).

    The dtype needs ``time`` and either ``endtime`` or ``length`` and ``dt``.
    """
    n = draw(st.integers(0, max_rows))
    data = np.zeros(n, dtype=dtype)
    names = dtype.names or ()
    has_dt = "dt" in names
    dt = draw(st.sampled_from([1, 2, 10])) if has_dt else 1
    t = t0_ns
    for i in range(n):
        step = draw(st.integers(-max_length * dt if allow_overlap else 0, max_gap_ns))
        t = max(t0_ns, t + step) if i else t
        length = draw(st.integers(1, max_length))
        data[i]["time"] = t
        if has_dt:
            data[i]["length"] = length
            data[i]["dt"] = dt
        else:
            data[i]["endtime"] = t + length
        if not allow_overlap:
            t += length * dt
    if "channel" in names:
        data["channel"] = (
            draw(st.lists(st.integers(0, 5), min_size=n, max_size=n).map(np.array))
            if n
            else data["channel"]
        )
    for name in names:
        if data.dtype[name].kind == "f":
            data[name] = np.arange(n, dtype=np.float64) * 0.5
    return np.sort(data, order="time", kind="stable") if n else data


@st.composite
def pulses_hitlets_peaks(
    draw: st.DrawFn, n_channels: int = 4, samples: int = 110
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records of multi-record pulses, hitlets spilling into neighbouring records, and peaks.

    Records are time-sorted with fractional baselines and bit shifts; some samples reach the
    baseline (saturation). Hitlets may run past their record, into a linked one or into
    nothing; peaks (dt 10, time-sorted, possibly long enough to downsample) cover them partly.
    """
    from straxd.core.dtypes import HIT_DTYPE, peak_dtype, record_dtype
    from straxd.core.rows import sort_by_time

    dt = 10
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        start = draw(st.integers(0, 300)) * 10 * dt
        pulse_length = draw(st.integers(1, 3 * samples))
        baseline = draw(st.floats(60, 300, width=32))
        shift = draw(st.sampled_from([0, 0, 1, 2]))
        channel = draw(st.integers(0, n_channels - 1))
        for record_i in range((pulse_length + samples - 1) // samples):
            r = np.zeros(1, dtype=record_dtype(samples))[0]
            r["time"] = start + record_i * samples * dt
            r["dt"], r["channel"], r["record_i"] = dt, channel, record_i
            r["pulse_length"], r["baseline"], r["amplitude_bit_shift"] = (
                pulse_length,
                baseline,
                shift,
            )
            r["length"] = min(samples, pulse_length - record_i * samples)
            seed = draw(st.integers(0, 2**16))
            noise = np.random.default_rng(seed).integers(-5, 160, r["length"])
            r["data"][: r["length"]] = noise
            rows.append(r)
    records = sort_by_time(np.array(rows))
    hits = []
    for _ in range(draw(st.integers(1, 30))):
        record_i = draw(st.integers(0, len(records) - 1))
        r = records[record_i]
        left = draw(st.integers(0, r["length"] - 1))
        right = draw(st.integers(left + 1, r["length"]))
        h = np.zeros(1, dtype=HIT_DTYPE)[0]
        h["left_integration"] = left - draw(st.integers(0, 40))
        h["right_integration"] = right + draw(st.integers(0, 40))
        h["dt"], h["channel"], h["record_i"], h["left"], h["right"] = (
            dt,
            r["channel"],
            record_i,
            left,
            right,
        )
        h["time"] = r["time"] + h["left_integration"] * dt
        h["length"] = h["right_integration"] - h["left_integration"]
        hits.append(h)
    hitlets = sort_by_time(np.array(hits))
    peaks = np.zeros(
        draw(st.integers(1, 6)),
        dtype=peak_dtype(n_channels, store_data_top=True, store_data_start=True),
    )
    t = -50 * dt
    for p in peaks:
        t += draw(st.integers(-30, 200)) * dt
        p["time"], p["dt"], p["length"] = t, dt, draw(st.integers(1, 700))
    return records, sort_by_time(hitlets), np.sort(peaks, order="time", kind="stable")
