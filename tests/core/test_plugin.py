"""Plugins and the registry: lineage as strax computes it, dependency order, save rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import strax

from straxd.core.errors import ConfigInvalid
from straxd.core.plugin import Option, Plugin, Registry, SaveWhen

_TIME = [(("Start time", "time"), np.int64), (("End time", "endtime"), np.int64)]


class Pulses(Plugin):
    provides = ("pulses", "pulse_meta")
    version = "0.1.2"
    options = (
        Option("threshold", 15, "ADC"),
        Option("input_dir", "/live", "where data is", track=False),
        Option("gains", (1.0, 2.0), "PE/ADC"),
    )

    def infer_dtype(self) -> dict[str, np.dtype[Any]]:
        return {"pulses": np.dtype(_TIME), "pulse_meta": np.dtype(_TIME)}


class Peaks(Plugin):
    provides = ("peaks",)
    depends_on = ("pulses",)
    version = "3.0.0"
    options = (Option("gap_ns", 700, "ns"),)
    save_when = SaveWhen.EXPLICIT

    def infer_dtype(self) -> np.dtype[Any]:
        return np.dtype(_TIME)


class Events(Plugin):
    provides = ("events",)
    depends_on = ("peaks", "pulse_meta")
    lineage_name = "EventMaker"

    def infer_dtype(self) -> np.dtype[Any]:
        return np.dtype(_TIME)


def _strax_lineage(config: dict[str, Any], target: str) -> dict[str, Any]:
    """The lineage strax 2.2.3 computes for the same plugins."""

    @strax.takes_config(
        strax.Option("threshold", default=15),
        strax.Option("input_dir", default="/live", track=False),
        strax.Option("gains", default=(1.0, 2.0)),
    )
    class Pulses(strax.Plugin):
        provides = ("pulses", "pulse_meta")
        data_kind = {"pulses": "pulses", "pulse_meta": "pulse_meta"}
        depends_on: tuple[str, ...] = ()
        __version__ = "0.1.2"
        dtype = {"pulses": _TIME, "pulse_meta": _TIME}

    @strax.takes_config(strax.Option("gap_ns", default=700))
    class Peaks(strax.Plugin):
        provides = "peaks"
        depends_on = "pulses"
        __version__ = "3.0.0"
        dtype = _TIME

    class EventMaker(strax.Plugin):
        provides = "events"
        depends_on = ("peaks", "pulse_meta")
        __version__ = "0.0.0"
        dtype = _TIME

    st = strax.Context(register=[Pulses, Peaks, EventMaker], config=config, storage=[])
    return dict(st.key_for("000001", target).lineage)


def _normalise(lineage: dict[str, Any]) -> dict[str, Any]:
    return {k: [v[0], v[1], dict(v[2])] for k, v in lineage.items()}


class TestLineage:
    @pytest.mark.parametrize("target", ["pulses", "pulse_meta", "peaks", "events"])
    @pytest.mark.parametrize("config", [{}, {"threshold": 20, "gap_ns": 500, "input_dir": "/x"}])
    def test_lineage_equals_strax(self, target: str, config: dict[str, Any]) -> None:
        """Keys, names, versions and tracked options equal what strax records."""
        registry = Registry([Pulses(config), Peaks(config), Events(config)])
        ours = _normalise(registry.lineage(target))
        theirs = _normalise(_strax_lineage(config, target))
        assert ours == theirs

    def test_hash_equals_strax(self) -> None:
        """The folder hash of a derived type equals strax's."""
        registry = Registry([Pulses({"threshold": 3}), Peaks(), Events()])
        st_lineage = _strax_lineage({"threshold": 3}, "events")
        assert registry.lineage_hash("events") == strax.deterministic_hash(st_lineage)

    def test_untracked_option_does_not_change_hash(self) -> None:
        """Changing a track=False option keeps the folder name."""
        a = Registry([Pulses({"input_dir": "/a"})]).lineage_hash("pulses")
        b = Registry([Pulses({"input_dir": "/b"})]).lineage_hash("pulses")
        c = Registry([Pulses({"threshold": 1})]).lineage_hash("pulses")
        assert a == b != c


class TestRegistry:
    def test_closure_orders_dependencies_first(self) -> None:
        """Every type appears after all of its dependencies."""
        registry = Registry([Events(), Peaks(), Pulses()])
        order = registry.closure(["events"])
        assert set(order) == {"events", "peaks", "pulses", "pulse_meta"}
        assert order.index("pulses") < order.index("peaks") < order.index("events")
        assert order.index("pulse_meta") < order.index("events")

    def test_unknown_type_names_the_known_ones(self) -> None:
        """Asking for a type nobody provides lists what is available."""
        with pytest.raises(ConfigInvalid, match=r"known: .*peaks"):
            Registry([Peaks(), Pulses()]).provider("evnts")

    def test_two_providers_refused(self) -> None:
        """Two plugins providing one type is a configuration error."""
        with pytest.raises(ConfigInvalid, match="provided by both"):
            Registry([Peaks(), Peaks()])

    def test_cycle_detected(self) -> None:
        """A dependency cycle is reported instead of recursing forever."""

        class A(Plugin):
            provides = ("a",)
            depends_on = ("b",)

        class B(Plugin):
            provides = ("b",)
            depends_on = ("a",)

        with pytest.raises(ConfigInvalid, match="cycle"):
            Registry([A(), B()]).closure(["a"])

    def test_save_rules_and_kinds(self) -> None:
        """Per-type save rules, kinds and dtypes come from the class attributes."""
        pulses = Pulses()
        assert pulses.kind_of("pulse_meta") == "pulse_meta"
        assert Peaks().save_rule("peaks") is SaveWhen.EXPLICIT
        assert pulses.dtype_of("pulses").names == ("time", "endtime")
        assert pulses.tracked_config() == {"threshold": 15, "gains": (1.0, 2.0)}
