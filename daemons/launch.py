"""Console-script entry points that set up the process before the heavy imports.

glibc reads its tunables only when a process starts, so ``straxer`` re-executes itself once
with the malloc tunables in its environment (same PID, same arguments) before numpy
and numba are imported. ``python -m straxd.daemons.straxer`` runs as it is: bootstrax sets the
environment of the children it starts itself.
"""

from __future__ import annotations

import os
import sys

from straxd.core.memory import with_malloc_tunables


def straxer() -> int:
    """``straxer``: straxd.daemons.straxer.main in a process with the malloc tunables."""
    env = with_malloc_tunables(os.environ)
    if env != dict(os.environ):  # the re-executed process has the tunable: no second exec
        argv = [sys.executable, "-m", "straxd.daemons.straxer", *sys.argv[1:]]
        os.execve(sys.executable, argv, env)  # does not return
    from straxd.daemons.straxer import main

    return main()
