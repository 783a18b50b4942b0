"""bootstrax's runtime config: the ``daq.bootstrax_config`` document, validated and hot-reloaded.

Every threshold bootstrax applies lives here, with the original script's value as default, so
DAQ experts tune a running bootstrax by editing one document. Identity (paths, host, database)
is in the process settings instead and needs a restart.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HOUR_S = 3600.0

# Keys of the original's config document that part 1 does not use yet; ignored with a warning.
LEGACY_KEYS = frozenset({"ambe_modes", "modes_definitions"})


class BootstraxConfig(BaseModel):
    """Tunables of bootstrax; all durations in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_order: Literal["newest_first", "oldest_first"] = Field(
        "newest_first", description="which waiting run to take first (the original: newest)"
    )
    poll_interval_s: float = Field(
        5.0,
        gt=0,
        description="look for claimable runs at least this often (change streams wake sooner)",
    )
    lease_s: float = Field(30.0, gt=0, description="a claim lasts this long unless renewed")
    heartbeat_interval_s: float = Field(
        10.0, gt=0, description="lease renewal and status heartbeat period"
    )
    history_interval_s: float = Field(
        60.0, gt=0, description="at most one eb_monitor history document per this period"
    )
    max_processing_time_s: float = Field(72 * HOUR_S, gt=0, description="kill a run after this")
    max_processing_time_after_end_s: float = Field(
        13 * HOUR_S, gt=0, description="kill a run this long after it ended (and started)"
    )
    max_no_write_time_s: float = Field(
        1800.0, gt=0, description="kill a run that wrote no file for this long"
    )
    input_timeout_s: float = Field(
        3600.0, gt=0, description="the child gives up waiting for new live_data after this"
    )
    kill_grace_s: float = Field(30.0, gt=0, description="SIGTERM to SIGKILL of a child")
    run_length_tolerance_s: float = Field(
        5.0, ge=0, description="allowed difference of data coverage and run duration"
    )
    retry_base_s: float = Field(60.0, gt=0, description="first retry after about this long")
    retry_factor: float = Field(5.0, ge=1, description="each retry waits this much longer")
    retry_max_exponent: int = Field(3, ge=0, description="the wait stops growing after this")
    retry_jitter: float = Field(0.5, ge=0, lt=1, description="relative random spread of waits")
    max_failures: int = Field(10, ge=1, description="no automatic retry after this many")
    max_takeovers: int = Field(
        3, ge=1, description="fail a run after this many hosts stopped renewing its lease"
    )

    @model_validator(mode="after")
    def _heartbeat_renews_in_time(self) -> BootstraxConfig:
        if self.heartbeat_interval_s * 2 > self.lease_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be at most half of "
                f"lease_s ({self.lease_s}) or leases expire between renewals"
            )
        return self

    def retry_delay_s(self, failures_before: int, rng: random.Random | None = None) -> float:
        """The wait before the next retry: base x factor^min(n, cap), with jitter."""
        spread = (rng or random).uniform(1 - self.retry_jitter, 1 + self.retry_jitter)
        exponent = min(max(failures_before, 0), self.retry_max_exponent)
        return self.retry_base_s * self.retry_factor**exponent * spread
