"""What bootstrax makes of a run: the original's target rules, driven by the runtime config.

The order is the original's ``infer_target``: targets dropped after repeated failures, then the
overrides by run mode (calibration modes, the Kr83m extra target, the per-host AmBe split), then
filtering by the detectors in the run. Modes whose original targets straxd does not provide
fall back to the raw data with a warning, so such runs are still read and kept.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

RAW_FALLBACK = ("raw_records",)

# The original's overrides by mode substring: (targets, post-processing targets).
ORIGINAL_MODE_TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pmtgain": (("led_calibration",), ("raw_records",)),
    "pmtap": (("afterpulses",), ()),
    "nVeto_LASER_calibration": (("ref_mon_nv",), ()),
    "exttrig": (RAW_FALLBACK, ()),
    "noise": (RAW_FALLBACK, ()),
    "mv_diffuserballs": (RAW_FALLBACK, ()),
    "mv_fibres": (RAW_FALLBACK, ()),
    "mv_darkrate": (RAW_FALLBACK, ()),
}

# The original's removal thresholds (#1145): a target goes once n_failures exceeds the value of
# any pattern it matches. Order does not matter: every matching pattern is checked.
REMOVE_TARGET_AFTER_FAILS: dict[str, int] = {
    "event*": 2, "corrected_areas": 2, "energy_estimates": 2, "distinct_channels": 2,
    "*pos*": 3, "individual_peak*": 3, "online_monitor_*v": 3,
    "peak_*": 4, "online_peak*": 4, "*hit*": 4, "veto_*": 4, "*pulse*": 4, "led_*": 4,
    "ext_timings_nv": 4, "merged_s2s*": 5, "peak*": 6, "lone_*": 6, "detector_time_*": 6, "*": 7,
}  # fmt: skip


@dataclass(frozen=True)
class ModeDefinition:
    """Targets and post-processing targets of one named AmBe split."""

    targets: tuple[str, ...]
    post_process: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetRules:
    """The config's part of target selection."""

    remove_after_fails: Mapping[str, int] = field(default_factory=lambda: REMOVE_TARGET_AFTER_FAILS)
    ambe_modes: Mapping[str, str] = field(default_factory=dict)
    modes_definitions: Mapping[str, ModeDefinition] = field(default_factory=dict)
    kr83m_extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetChoice:
    """The targets for one run, and what the operators should be told about the choice."""

    targets: tuple[str, ...]
    post_process: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def keep_target(target: str, n_failures: int, thresholds: Mapping[str, int]) -> bool:
    """False once ``n_failures`` exceeds the threshold of any pattern matching ``target``."""
    return not any(
        fnmatch.fnmatch(target, pattern) and n_failures > limit
        for pattern, limit in thresholds.items()
    )


def host_key(host: str) -> str:
    """The short host name the AmBe table is keyed by (``eb3`` for ``eb3.xenon.local``)."""
    return host.split(".", 1)[0]


def _by_mode(
    mode: str,
    host: str,
    targets: tuple[str, ...],
    post: tuple[str, ...],
    rules: TargetRules,
    provided: Collection[str],
) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    warnings: list[str] = []
    for key, (mode_targets, mode_post) in ORIGINAL_MODE_TARGETS.items():
        if key in mode:
            missing = [t for t in (*mode_targets, *mode_post) if t not in provided]
            if missing:
                warnings.append(
                    f"mode {mode!r}: straxd does not provide {missing}; keeping raw_records only"
                )
                return RAW_FALLBACK, (), warnings
            return mode_targets, mode_post, warnings
    if "kr83m" in mode and "event_info" in (*targets, *post):
        targets = (*targets, *(t for t in rules.kr83m_extra if t not in targets))
    if "ambe" in mode:
        split = rules.ambe_modes.get(host_key(host), "default")
        if split != "default":
            definition = rules.modes_definitions[split]
            targets, post = definition.targets, definition.post_process
    return targets, post, warnings


def _by_detectors(targets: tuple[str, ...], detectors: Sequence[str]) -> tuple[str, ...]:
    has_nv, has_mv = "neutron_veto" in detectors, "muon_veto" in detectors
    if "tpc" not in detectors:
        return tuple(
            t for t in targets if (has_nv and t.endswith("_nv")) or (has_mv and t.endswith("_mv"))
        )
    return tuple(
        t
        for t in targets
        if not (t.endswith("_nv") and not has_nv) and not (t.endswith("_mv") and not has_mv)
    )


def infer_targets(
    *,
    mode: str | None,
    detectors: Sequence[str],
    n_failures: int,
    host: str,
    targets: Sequence[str],
    post_process: Sequence[str],
    rules: TargetRules,
    provided: Collection[str],
    fixed: bool = False,
) -> TargetChoice:
    """The original's target selection for one run (``fixed``: the lists as given)."""
    chosen, post = tuple(targets), tuple(post_process)
    if fixed:
        return TargetChoice(chosen, post)
    if n_failures > 0:
        chosen = tuple(t for t in chosen if keep_target(t, n_failures, rules.remove_after_fails))
        post = tuple(t for t in post if keep_target(t, n_failures, rules.remove_after_fails))
        chosen = chosen or RAW_FALLBACK
    chosen, post, warnings = _by_mode(mode or "", host, chosen, post, rules, provided)
    chosen = _by_detectors(chosen, detectors) or RAW_FALLBACK
    post = _by_detectors(post, detectors)
    return TargetChoice(chosen, post, tuple(warnings))
