"""Versions of straxd and of the libraries its results depend on (for logs and heartbeats)."""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata

LIBRARIES = ("numpy", "numba", "pymongo", "zstandard", "lz4", "pydantic", "structlog")


@cache
def straxd_version() -> str:
    """The installed straxd version."""
    try:
        return metadata.version("straxd")
    except metadata.PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    """straxd, Python and the key libraries, by name."""
    found = {"straxd": straxd_version(), "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
