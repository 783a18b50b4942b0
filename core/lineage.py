"""strax's lineage hash and data keys.

The hash names every stored folder (``<run_id>-<data_type>-<hash>``); it must equal strax's bit for
bit or offline straxen will not find uploaded data. strax turns the lineage into nested tuples
(mappings become key-sorted ``(key, value)`` pairs), serialises that with the standard JSON
encoder (numpy numbers as Python numbers), and takes the first ten base32 characters of its SHA-1.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from straxd.core.errors import BadInput


def hashablize(obj: Any) -> Any:
    """Turn a container hierarchy into nested tuples, as strax does before hashing."""
    if isinstance(obj, Mapping):
        obj = dict(obj)
    try:
        hash(obj)
    except TypeError:
        if isinstance(obj, dict):
            return tuple((k, hashablize(v)) for k, v in sorted(obj.items()))
        if isinstance(obj, np.ndarray):
            return tuple(obj.tolist())
        if hasattr(obj, "__iter__"):
            return tuple(hashablize(o) for o in obj)
        raise TypeError(f"cannot hash an object of type {type(obj).__name__}") from None
    return obj


class _NumpyEncoder(json.JSONEncoder):
    """JSON for numpy scalars and arrays, as strax's NumpyJSONEncoder."""

    def default(self, o: Any) -> Any:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        return super().default(o)


def deterministic_hash(thing: Any, length: int = 10) -> str:
    """strax's ``deterministic_hash``: base32 of the SHA-1 of the hashablized JSON, lower case."""
    serialised = json.dumps(hashablize(thing), cls=_NumpyEncoder)
    digest = hashlib.sha1(serialised.encode("ascii")).digest()
    return base64.b32encode(digest)[:length].decode("ascii").lower()


def check_run_id(run_id: str) -> str:
    """Refuse run ids strax cannot name a folder with (``-``) and superruns (``_`` prefix)."""
    if not run_id or "-" in run_id or run_id.startswith("_") or "/" in run_id:
        raise BadInput(
            f"invalid run id {run_id!r}: it must be non-empty, contain no '-' or '/', "
            "and not start with '_' (superruns are not written by straxd)"
        )
    return run_id


@dataclass(frozen=True)
class DataKey:
    """Names one stored data type of one run: ``<run_id>-<data_type>-<lineage_hash>``."""

    run_id: str
    data_type: str
    lineage: Mapping[str, Any]

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        if not self.data_type or "-" in self.data_type:
            raise BadInput(f"invalid data type {self.data_type!r}")

    @property
    def lineage_hash(self) -> str:
        """The 10-character hash of the lineage."""
        return deterministic_hash(self.lineage)

    def __str__(self) -> str:
        return f"{self.run_id}-{self.data_type}-{self.lineage_hash}"
