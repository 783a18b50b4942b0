"""Run code in the straxen 4.0.0 reference environment (.venv-straxen) and get JSON back.

straxen cannot be imported next to straxd (its dependency utilix pins pydantic<2), so tests run
it in its own interpreter. The snippet must print one JSON document on its last stdout line.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STRAXEN_PYTHON = REPO / ".venv-straxen" / "bin" / "python"

# A straxen context with the online vanilla plugins and explicit values for everything straxen
# would otherwise fetch from its databases.
CONTEXT_PRELUDE = """
import json, warnings
warnings.filterwarnings("ignore")
import numpy as np, strax, straxen
_opts = dict(straxen.contexts.common_opts_vanilla)
_opts.pop("check_available", None)
st = strax.Context(storage=[], config=straxen.contexts.common_config_vanilla, **_opts)
st.set_config(dict(n_tpc_pmts=494, n_top_pmts=253, gain_model=1.0, hit_min_amplitude=15,
                   electron_drift_velocity=6.75e-5))
"""


def straxen_eval(code: str, timeout_s: float = 600) -> Any:
    """Run ``code`` with straxen available; return the JSON printed on its last line."""
    if not STRAXEN_PYTHON.exists():
        raise RuntimeError(f"{STRAXEN_PYTHON} is missing: run `make setup`")
    done = subprocess.run(
        [str(STRAXEN_PYTHON), "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"straxen oracle failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_struct_equal(ours: Any, theirs: Any) -> None:
    """Structured arrays equal field by field, NaN equal to NaN (as straxen leaves some)."""
    import numpy as np

    assert ours.dtype.names == theirs.dtype.names
    assert len(ours) == len(theirs)
    for name in ours.dtype.names:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def run_straxen_script(script: str, *args: str, timeout_s: float = 900) -> str:
    """Run one of the tests/straxen_*.py oracle scripts; fail with its stderr if it fails."""
    done = subprocess.run(
        [str(STRAXEN_PYTHON), str(REPO / "tests" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise AssertionError(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout
