"""Resources from the data rate: the original's table, interpolation, degradation, compressor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from straxd.core.resources import ORIGINAL_TABLE, Resources, infer_resources, records_compressor


def infer(rate: float | None, n: int = 0, new: bool = True, **kwargs: object) -> Resources:
    options: dict[str, object] = {
        "rate_mbs": rate, "n_failures": n, "new_host": new, "infer": True, "degrade": True,
        "default_cores": 8, "default_max_messages": 10, "default_timeout_s": 1000.0,
        "available_cpus": 64, **kwargs,
    }  # fmt: skip
    return infer_resources(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("row", ORIGINAL_TABLE[1:])
def test_table_points(row: tuple[float, int, int, int, int, float | None]) -> None:
    """At each rate of the table: exactly the table's values."""
    rate, cores_new, cores_old, mm_new, mm_old, timeout = row
    new, old = infer(rate), infer(rate, new=False)
    assert (new.cores, new.max_messages, old.cores, old.max_messages) == (
        cores_new, mm_new, cores_old, mm_old,
    )  # fmt: skip
    if timeout is not None:
        assert new.timeout_s == timeout


@pytest.mark.parametrize(
    ("rate", "cores", "max_messages", "timeout_s"),
    [(80, 24, 47, 1225), (130, 21, 27, 1350), (310, 15, 25, 1800), (1000, 10, 12, 2400)],
)
def test_between_points_interpolated(
    rate: float, cores: int, max_messages: int, timeout_s: float
) -> None:
    """Linear between the neighbours (timeout between 70 and 550 MB/s), clamped beyond."""
    got = infer(rate)
    assert (got.cores, got.max_messages, got.timeout_s) == (cores, max_messages, timeout_s)


def test_failures_degrade_unless_fixed() -> None:
    """1.1 per failure: fewer cores and chunks in flight, a longer timeout, within limits."""
    fresh, twice = infer(80), infer(80, n=2)
    assert (twice.cores, twice.max_messages, twice.timeout_s) == (19, 39, 1482)
    assert infer(80, n=30).cores == 4 and infer(80, n=30).timeout_s == 3600
    assert infer(80, n=2, degrade=False) == fresh


def test_no_inference_uses_the_defaults_and_cpu_cap() -> None:
    assert infer(400, infer=False) == Resources(8, 10, 1000.0, "lz4")
    assert infer(None) == infer(0) == Resources(8, 10, 1000.0, "zstd")  # no rate known
    assert infer(300, available_cpus=2).cores == 2
    assert infer(20, ambe=True).cores == 10  # AmBe runs are taken as 550 MB/s


@pytest.mark.parametrize(
    ("n_failures", "rate", "compressor"),
    [(2, 10, "lz4"), (1, 500, "zstd"), (0, None, "zstd"), (0, 60, "zstd"), (0, 300, "zstd"),
     (0, 400, "lz4")],
)  # fmt: skip
def test_records_compressor(n_failures: int, rate: float | None, compressor: str) -> None:
    """zstd unless repeated failures or chunks over 1800 MB (5.5 s x rate)."""
    assert records_compressor(n_failures, rate, 5.0, 0.5) == compressor


@given(st.floats(0.01, 2000), st.integers(0, 12), st.booleans())
def test_always_within_bounds(rate: float, n: int, new: bool) -> None:
    got = infer(rate, n=n, new=new)
    assert 1 <= got.cores <= 40 and 4 <= got.max_messages <= 100
    assert 500 <= got.timeout_s <= 3600 or n == 0
