"""Resources for one run from its data rate: the original's benchmark table, mapped onto straxd.

The original interpolated cores, mailbox size and timeout linearly in the data rate (clamped at
the table's ends, gaps in a column interpolated from its neighbours) and degraded them by 1.1 per
earlier failure. In straxd, cores are the child's executor threads (capped at the CPUs the
process may use), max_messages the chunks in flight per data type, and the timeout the child's
wait for new live_data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# rate_mbs, cores (new eb), cores (old eb), max_messages (new), max_messages (old), timeout_s
ORIGINAL_TABLE: tuple[tuple[float, int, int, int, int, float | None], ...] = (
    (0, 24, 39, 60, 20, 1200), (70, 24, 35, 60, 20, 1200), (90, 24, 35, 35, 15, None),
    (110, 24, 30, 30, 15, None), (150, 18, 30, 25, 10, None), (220, 15, 20, 25, 10, None),
    (290, 15, 12, 25, 10, None), (360, 15, 12, 25, 10, None), (390, 15, 10, 20, 10, None),
    (420, 15, 10, 15, 10, None), (500, 15, 10, 12, 8, None), (550, 10, 8, 12, 6, 2400),
)  # fmt: skip
AMBE_RATE_MBS = 550.0
DEGRADE_FACTOR = 1.1
LZ4_CHUNK_MB = 1800.0
ZSTD_BELOW_MBS = 65.0


@dataclass(frozen=True)
class Resources:
    """What the child of one run gets."""

    cores: int
    max_messages: int
    timeout_s: float
    records_compressor: str


def interpolate(rates: Sequence[float], values: Sequence[float | None], rate: float) -> float:
    """``values`` at ``rate``: linear between known points, clamped at the ends."""
    known = [(r, v) for r, v in zip(rates, values, strict=True) if v is not None]
    if not known:
        raise ValueError("a resource column has no values")
    xs, ys = zip(*known, strict=True)
    return float(np.interp(rate, xs, ys))


def records_compressor(
    n_failures: int, rate_mbs: float | None, chunk_s: float, overlap_s: float
) -> str:
    """The original's compressor rule for records-level data (zstd unless chunks get huge)."""
    if n_failures > 1:
        return "lz4"
    if n_failures == 1 or rate_mbs is None or rate_mbs < ZSTD_BELOW_MBS:
        return "zstd"
    return "lz4" if rate_mbs * (chunk_s + overlap_s) > LZ4_CHUNK_MB else "zstd"


def infer_resources(
    *,
    rate_mbs: float | None,
    n_failures: int,
    new_host: bool,
    infer: bool,
    degrade: bool,
    default_cores: int,
    default_max_messages: int,
    default_timeout_s: float,
    available_cpus: int,
    chunk_s: float = 5.0,
    overlap_s: float = 0.5,
    ambe: bool = False,
    table: Sequence[tuple[float, int, int, int, int, float | None]] = ORIGINAL_TABLE,
) -> Resources:
    """Cores, chunks in flight and input timeout for one run, as the original chose them."""
    rate = AMBE_RATE_MBS if (ambe and infer and rate_mbs) else rate_mbs
    if infer and rate:
        rates = [row[0] for row in table]
        cores = interpolate(rates, [row[1 if new_host else 2] for row in table], rate)
        messages = interpolate(rates, [row[3 if new_host else 4] for row in table], rate)
        timeout_s = interpolate(rates, [row[5] for row in table], rate)
    else:
        cores, messages, timeout_s = default_cores, default_max_messages, default_timeout_s
    if degrade and n_failures > 0:
        factor = DEGRADE_FACTOR**n_failures
        cores = min(max(cores / factor, 4), 40)
        messages = min(max(messages / factor, 4), 100)
        timeout_s = min(max(timeout_s * factor, 500), 3600)
    return Resources(
        cores=max(1, min(int(cores), available_cpus)),
        max_messages=int(messages),
        timeout_s=float(math.floor(timeout_s)),
        records_compressor=records_compressor(
            n_failures if degrade else 0, rate_mbs, chunk_s, overlap_s
        ),
    )
