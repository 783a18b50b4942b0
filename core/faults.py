"""Named fault points: make a crash at one exact step reproducible.

``STRAXD_FAULT_AT=<step>`` makes the process SIGKILL itself when it reaches ``fault_point(step)``
(off by default). Crash tests use it to check that every multi-step change is completed, not
corrupted, by the next attempt.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "STRAXD_FAULT_AT"


def fault_point(step: str) -> None:
    """Die here, as by ``kill -9``, if ``STRAXD_FAULT_AT`` names this step."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
