"""bootstrax's runtime config: the ``daq.bootstrax_config`` document, validated and hot-reloaded.

Every threshold bootstrax applies lives here, with the original script's value as default, so
DAQ experts tune a running bootstrax by editing one document. Identity (paths, host, database)
is in the process settings instead and needs a restart.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from straxd.core.resources import ORIGINAL_TABLE
from straxd.core.targets import REMOVE_TARGET_AFTER_FAILS, ModeDefinition, TargetRules

HOUR_S = 3600.0

# Keys of the original's config document with no meaning here: ignored with a warning.
LEGACY_KEYS: frozenset[str] = frozenset()
HostRole = Literal["process", "helper", "never"]


def provided_types() -> frozenset[str]:
    """Every data type straxd can make (imported late: the plugins are heavy)."""
    from straxd.core.context import PLUGIN_CLASSES

    return frozenset(t for cls in PLUGIN_CLASSES for t in cls.provides)


def check_targets(where: str, targets: Iterable[str]) -> None:
    """Refuse types straxd does not provide and types listed twice."""
    listed = list(targets)
    unknown = sorted(set(listed) - provided_types())
    if unknown:
        raise ValueError(f"{where}: {unknown} are not data types straxd provides")
    twice = sorted(t for t, n in Counter(listed).items() if n > 1)
    if twice:
        raise ValueError(f"{where}: {twice} listed twice")


class ModeTargets(BaseModel):
    """Targets of one named split of the AmBe work (``modes_definitions``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: tuple[str, ...] = Field(min_length=1)
    post_process: tuple[str, ...] = ()


class ResourceRow(BaseModel):
    """One rate of the resource table; ``timeout_s`` None is interpolated from its neighbours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_mbs: float = Field(ge=0)
    cores_new: int = Field(ge=1)
    cores_old: int = Field(ge=1)
    max_messages_new: int = Field(ge=1)
    max_messages_old: int = Field(ge=1)
    timeout_s: float | None = Field(default=None, gt=0)


def _original_rows() -> tuple[ResourceRow, ...]:
    names = ("rate_mbs", "cores_new", "cores_old", "max_messages_new", "max_messages_old")
    return tuple(
        ResourceRow(**dict(zip(names, row[:5], strict=True)), timeout_s=row[5])
        for row in ORIGINAL_TABLE
    )


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
    # ---- what to make (the original's infer_target)
    remove_target_after_fails: dict[str, int] = Field(
        default_factory=lambda: dict(REMOVE_TARGET_AFTER_FAILS),
        description="fnmatch pattern -> drop a target once n_failures exceeds the value",
    )
    ambe_modes: dict[str, str] = Field(
        default_factory=dict, description="short host name -> modes_definitions key or default"
    )
    modes_definitions: dict[str, ModeTargets] = Field(default_factory=dict)
    kr83m_extra_targets: tuple[str, ...] = Field(
        (), description="added to Kr83m runs that make event_info"
    )
    # ---- who processes (replaces the original's hard-coded eb names)
    host_roles: dict[str, HostRole] = Field(
        default_factory=dict,
        description="host -> process (new runs), helper (only with a queue), never; unnamed "
        "hosts process",
    )
    helper_min_queue: int = Field(3, ge=0, description="helpers take new runs above this queue")
    # ---- with what (the original's infer_mode)
    resource_table: tuple[ResourceRow, ...] = Field(default_factory=_original_rows, min_length=1)
    max_chunks_in_flight: int = Field(
        4, ge=1, description="cap of the table's max_messages (chunks in flight per type)"
    )
    rate_wait_min_s: float = Field(7.5, ge=0, description="read the rate once the run is this old")
    rate_wait_max_s: float = Field(60.0, ge=0, description="give up reading the rate after this")
    # ---- housekeeping
    cleanup_interval_s: float = Field(60.0, gt=0, description="database cleanup sweep period")
    presumed_dead_s: float = Field(300.0, gt=0, description="a silent host is marked dead after")
    abandon_window_s: float = Field(24 * HOUR_S, gt=0, description="abandon tags on done runs")
    disk_max_used_percent: float = Field(95.0, gt=0, le=100, description="wait above this")
    disk_min_free_gb: float | None = Field(None, ge=0, description="wait below this, if set")
    disk_check_interval_s: float = Field(10.0, gt=0)
    disk_max_wait_s: float = Field(10080 * 10.0, gt=0, description="then give up (dead_bootstrax)")

    @model_validator(mode="after")
    def _targets_known(self) -> BootstraxConfig:
        for name, mode in self.modes_definitions.items():
            check_targets(f"modes_definitions.{name}.targets", mode.targets)
            check_targets(f"modes_definitions.{name}.post_process", mode.post_process)
        check_targets("kr83m_extra_targets", self.kr83m_extra_targets)
        undefined = sorted(
            {m for m in self.ambe_modes.values() if m != "default"} - set(self.modes_definitions)
        )
        if undefined:
            raise ValueError(f"ambe_modes name {undefined}, which modes_definitions lacks")
        rates = [row.rate_mbs for row in self.resource_table]
        if rates != sorted(set(rates)):
            raise ValueError("resource_table rates must increase from row to row")
        return self

    def target_rules(self) -> TargetRules:
        """The target-selection part of the config."""
        return TargetRules(
            remove_after_fails=self.remove_target_after_fails,
            ambe_modes=self.ambe_modes,
            modes_definitions={
                k: ModeDefinition(v.targets, v.post_process)
                for k, v in self.modes_definitions.items()
            },
            kr83m_extra=self.kr83m_extra_targets,
        )

    def resource_rows(self) -> list[tuple[float, int, int, int, int, float | None]]:
        """The resource table as rows for ``core.resources``."""
        return [
            (r.rate_mbs, r.cores_new, r.cores_old, r.max_messages_new, r.max_messages_old,
             r.timeout_s)
            for r in self.resource_table
        ]  # fmt: skip

    def role_of(self, host: str) -> HostRole:
        """This host's role (by full or short name); unnamed hosts process."""
        return self.host_roles.get(host, self.host_roles.get(host.split(".", 1)[0], "process"))

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
