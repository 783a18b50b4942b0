"""Packaging: the layout installs as straxd.core/straxd.daemons without the test-only oracles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("strax", "straxen", "secantus")

# Imports every straxd module, then reports which forbidden top-level packages got imported.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
FORBIDDEN = ("strax", "straxen", "secantus")
import straxd.core, straxd.daemons
names = []
for pkg in (straxd.core, straxd.daemons):
    names.append(pkg.__name__)
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(FORBIDDEN))
print(json.dumps({"modules": names, "forbidden": loaded}))
"""


def _import_all(python: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [python, "-c", _IMPORT_ALL],
        cwd="/",  # so the repository's core/ can never be picked up as a bare package
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return result


class TestImports:
    def test_no_module_imports_oracles(self) -> None:
        """Importing every straxd module pulls in neither strax, straxen nor SecantusDB."""
        result = _import_all(sys.executable)
        assert "straxd.core.settings" in result["modules"]
        assert result["forbidden"] == []

    def test_no_bare_core_imports(self) -> None:
        """Product code imports its own modules as straxd.core/straxd.daemons, never bare core."""
        offenders = []
        for path in [*REPO.joinpath("core").rglob("*.py"), *REPO.joinpath("daemons").rglob("*.py")]:
            for lineno, line in enumerate(path.read_text().splitlines(), start=1):
                stripped = line.strip()
                if stripped.startswith(
                    ("from core", "import core", "from daemons", "import daemons")
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{lineno}")
        assert offenders == []


class TestPlainInstall:
    def test_pip_install_without_extras_imports_everything(self, tmp_path: Path) -> None:
        """A plain `pip install .` into a fresh environment imports every module, oracles absent."""
        env_dir = tmp_path / "venv"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = _import_all(python)
        assert result["forbidden"] == []
        assert "straxd.core.settings" in result["modules"]
        probe = subprocess.run(
            [python, "-c", "import importlib.util as u; print(u.find_spec('strax') is None)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.strip() == "True"
