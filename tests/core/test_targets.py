"""Target selection: every mode override and detector combination of the original, as a table."""

from __future__ import annotations

import pytest

from straxd.core.targets import (
    REMOVE_TARGET_AFTER_FAILS,
    ModeDefinition,
    TargetRules,
    infer_targets,
    keep_target,
)

PROVIDED = {
    "raw_records", "records", "peaklets", "lone_hits", "peak_basics", "merged_s2s",
    "event_basics", "event_info", "online_peak_monitor", "events", "peaks",
}  # fmt: skip
TARGETS = ("event_info", "online_peak_monitor")
RULES = TargetRules(
    ambe_modes={"eb3": "peaklets_only", "eb4": "default", "eb5": "raw_only"},
    modes_definitions={
        "peaklets_only": ModeDefinition(("peaklets",), ("raw_records",)),
        "raw_only": ModeDefinition(("raw_records",), ()),
    },
    kr83m_extra=("peak_basics",),
)


Choice = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def choose(mode: str = "tpc_bkg", detectors: tuple[str, ...] = ("tpc",), n: int = 0,
           host: str = "eb3.xenon.local", targets: tuple[str, ...] = TARGETS,
           post: tuple[str, ...] = (), fixed: bool = False) -> Choice:  # fmt: skip
    choice = infer_targets(
        mode=mode, detectors=detectors, n_failures=n, host=host, targets=targets,
        post_process=post, rules=RULES, provided=PROVIDED, fixed=fixed,
    )  # fmt: skip
    return choice.targets, choice.post_process, choice.warnings


@pytest.mark.parametrize(
    ("kwargs", "targets", "post", "warned"),
    [
        ({}, TARGETS, (), False),
        # modes whose original targets straxd does not provide: raw data, with a warning
        ({"mode": "pmtgain_led"}, ("raw_records",), (), True),
        ({"mode": "tpc_pmtap"}, ("raw_records",), (), True),
        ({"mode": "nVeto_LASER_calibration"}, ("raw_records",), (), True),
        # raw-only modes
        *[({"mode": m}, ("raw_records",), (), False)
          for m in ("exttrig", "tpc_noise", "mv_diffuserballs", "mv_fibres", "mv_darkrate")],
        # Kr83m: the extra target only when event_info is asked for
        ({"mode": "tpc_kr83m"}, (*TARGETS, "peak_basics"), (), False),
        ({"mode": "tpc_kr83m", "targets": ("peaklets",)}, ("peaklets",), (), False),
        # AmBe: per-host split from the config
        ({"mode": "ambe_link", "host": "eb3.xenon.local"}, ("peaklets",), ("raw_records",), False),
        ({"mode": "ambe_link", "host": "eb4.xenon.local"}, TARGETS, (), False),
        ({"mode": "ambe_link", "host": "eb5"}, ("raw_records",), (), False),
        ({"mode": "ambe_link", "host": "eb9"}, TARGETS, (), False),
        # detectors: veto targets need their detector; veto-only runs keep veto targets only
        ({"targets": (*TARGETS, "events_nv", "events_mv"), "detectors": ("tpc",)},
         TARGETS, (), False),
        ({"targets": (*TARGETS, "events_nv"), "detectors": ("tpc", "neutron_veto")},
         (*TARGETS, "events_nv"), (), False),
        ({"targets": (*TARGETS, "events_nv", "events_mv"), "detectors": ("muon_veto",)},
         ("events_mv",), (), False),
        ({"detectors": ("neutron_veto",)}, ("raw_records",), (), False),
        # failures: event* goes after 2, online_peak* after 4, everything after 7
        ({"n": 2}, TARGETS, (), False),
        ({"n": 3}, ("online_peak_monitor",), (), False),
        ({"n": 5}, ("raw_records",), (), False),
        ({"n": 9, "targets": ("raw_records",)}, ("raw_records",), (), False),
        # --fix_target: as given, whatever the run
        ({"fixed": True, "mode": "pmtgain", "n": 9}, TARGETS, (), False),
    ],
)  # fmt: skip
def test_target_table(
    kwargs: dict[str, object], targets: tuple[str, ...], post: tuple[str, ...], warned: bool
) -> None:
    got_targets, got_post, warnings = choose(**kwargs)  # type: ignore[arg-type]
    assert (got_targets, got_post) == (targets, post)
    assert bool(warnings) == warned


@pytest.mark.parametrize(
    ("target", "n_failures", "kept"),
    [("event_info", 2, True), ("event_info", 3, False), ("peaklets", 6, True),
     ("peaklets", 7, False), ("lone_hits", 4, True), ("lone_hits", 5, False),
     ("raw_records", 7, True), ("raw_records", 8, False)],
)  # fmt: skip
def test_removal_thresholds(target: str, n_failures: int, kept: bool) -> None:
    """Any matching pattern whose threshold is exceeded removes the target (#1145)."""
    assert keep_target(target, n_failures, REMOVE_TARGET_AFTER_FAILS) is kept
