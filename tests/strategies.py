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
