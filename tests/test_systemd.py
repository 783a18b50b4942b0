"""systemd units: every daemon unit belongs to straxd.target and starts an installed script."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_units_match_console_scripts() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    units = sorted((REPO / "systemd").glob("*.service"))
    assert units, "no service units"
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(unit)
        assert parser["Unit"]["PartOf"] == "straxd.target"
        assert parser["Install"]["WantedBy"] == "straxd.target"
        command = parser["Service"]["ExecStart"].split()
        assert Path(command[0]).name == unit.stem and unit.stem in scripts
        assert parser["Service"]["KillSignal"] == "SIGTERM"
