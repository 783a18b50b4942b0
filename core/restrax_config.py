"""restrax's runtime config (``daq.restrax_config``) and its per-type rules.

Which entries are only moved, and with what compressor and target size the others are rewritten,
follow the original restrax, with its pattern lookup the right way round (the original passed
fnmatch its arguments reversed, so the ``peak*`` rules never matched).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from straxd.core.compress import get_codec
from straxd.core.errors import BadInput
from straxd.core.recompress import effective_target_mb

RAW_LIGHT = "_raw_record_compressor_light"
RAW_HEAVY = "_raw_record_compressor_heavy"
OTHER = "_other"
RAW = "_raw_records"
DEFAULT_RATE_MBS = 100.0  # per detector without a rate, as the original

# Keys of the original's document that mean nothing here (it tuned strax's threads).
LEGACY_KEYS = frozenset({"parallel", "max_workers", "process_per_run", "_saver_timeout"})


class RestraxConfig(BaseModel):
    """Tunables of restrax; sizes in MB, durations in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bypass_mode: bool = Field(False, description="only move, never recompress")
    exclude_modes: tuple[str, ...] = (
        "pmtgain", "pmtap", "exttrig", "noise", "nVeto_LASER_calibration",
        "mv_diffuserballs", "mv_fibres", "mv_darkrate",
    )  # fmt: skip
    skip_compression: tuple[str, ...] = Field(("*event*",), description="types only moved")
    recompress_min_chunks: int = Field(2, ge=0, description="non-raw types this small: moved")
    raw_record_types: tuple[str, ...] = (
        "raw_records", "raw_records_nv", "raw_records_mv", "raw_records_he", "records",
        "records_nv", "records_mv",
    )  # fmt: skip
    is_heavy_rate_mbs: float = Field(50.0, ge=0, description="raw data above: the fast codec")
    target_compressor: dict[str, str | None] = Field(
        default_factory=lambda: {"peak*": "zstd", RAW_LIGHT: "bz2", RAW_HEAVY: "zstd", OTHER: None}
    )
    target_size: dict[str, float] = Field(
        default_factory=lambda: {"peak*": 1500.0, OTHER: 1500.0, RAW: 5000.0}
    )
    max_tries: int = Field(5, ge=1, description="attempts before manual help is needed")
    retry_base_s: float = Field(60.0, gt=0)
    retry_factor: float = Field(5.0, ge=1)
    deep_compare: bool = Field(False, description="compare every field after rewriting")
    max_threads: int = Field(2, ge=1, description="data types rewritten at once")
    poll_interval_s: float = Field(60.0, gt=0, description="look for work at least this often")
    lease_s: float = Field(60.0, gt=0)
    heartbeat_interval_s: float = Field(15.0, gt=0)

    @model_validator(mode="after")
    def _tables_complete(self) -> RestraxConfig:
        for key in (RAW_LIGHT, RAW_HEAVY, OTHER):
            if key not in self.target_compressor:
                raise ValueError(f"target_compressor needs the key {key!r}")
        for key in (OTHER, RAW):
            if key not in self.target_size:
                raise ValueError(f"target_size needs the key {key!r}")
        for pattern, name in self.target_compressor.items():
            if name is not None:
                try:
                    get_codec(name)
                except BadInput as err:
                    raise ValueError(f"target_compressor[{pattern!r}]: {err}") from None
        if any(size <= 0 for size in self.target_size.values()):
            raise ValueError("target_size values must be positive")
        if self.heartbeat_interval_s * 2 > self.lease_s:
            raise ValueError("heartbeat_interval_s must be at most half of lease_s")
        return self

    def retry_delay_s(self, tries_before: int) -> float:
        """Backoff before the next attempt (with +-50 % jitter)."""
        return (
            self.retry_base_s * self.retry_factor ** min(tries_before, 3) * random.uniform(0.5, 1.5)
        )


def _lookup(table: Mapping[str, object], data_type: str, default_key: str) -> object:
    """The value of the first pattern matching the type (fnmatch(type, pattern)), else default."""
    for pattern, value in table.items():
        if not pattern.startswith("_") and fnmatch.fnmatch(data_type, pattern):
            return value
    return table[default_key]


def run_rate_mbs(rate: Mapping[str, object]) -> float:
    """The run's rate for restrax: the sum of ``rate.<detector>.avg`` (100 where missing)."""
    if not rate:
        return DEFAULT_RATE_MBS
    total = 0.0
    for value in rate.values():
        avg = value.get("avg") if isinstance(value, Mapping) else None
        total += float(avg) if isinstance(avg, int | float) else DEFAULT_RATE_MBS
    return total


def skip_reason(
    data_type: str, n_chunks: int, mode: str | None, config: RestraxConfig
) -> str | None:
    """Why an entry is only moved, or None when it is rewritten."""
    if config.bypass_mode:
        return "bypass mode"
    excluded = [m for m in config.exclude_modes if m in (mode or "")]
    if excluded:
        return f"mode {mode!r} is excluded ({excluded[0]})"
    matched = [p for p in config.skip_compression if fnmatch.fnmatch(data_type, p)]
    if matched:
        return f"skip_compression {matched[0]!r}"
    if data_type not in config.raw_record_types and n_chunks <= config.recompress_min_chunks:
        return f"{n_chunks} chunks (recompress_min_chunks {config.recompress_min_chunks})"
    return None


def compressor_and_size(
    data_type: str,
    source_compressor: str,
    rate_mbs: float,
    n_tries: int,
    config: RestraxConfig,
) -> tuple[str, float]:
    """Compressor and target size of one rewritten type (blosc capped below its 2 GB limit)."""
    if data_type in config.raw_record_types:
        fast = rate_mbs > config.is_heavy_rate_mbs or n_tries > config.max_tries // 2
        name = config.target_compressor[RAW_HEAVY if fast else RAW_LIGHT]
        size = float(config.target_size[RAW])
    else:
        name = _lookup(config.target_compressor, data_type, OTHER)  # type: ignore[assignment]
        size = float(_lookup(config.target_size, data_type, OTHER))  # type: ignore[arg-type]
    compressor = name or source_compressor
    return compressor, effective_target_mb(compressor, size)
