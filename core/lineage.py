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
from dataclasses import dataclass, field
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
    """JSON for what hashablize leaves unserialisable, as strax's NumpyJSONEncoder.

    Only called for objects the standard encoder refuses: numpy scalars, and hashable iterables
    such as frozensets, which become lists of their (numpy) items.
    """

    def default(self, o: Any) -> Any:
        if isinstance(o, str | bytes):
            # strax would recurse into the characters forever; refuse clearly instead.
            return super().default(o)
        try:
            items = iter(o)
        except TypeError:
            pass
        else:
            return [self.default(item) for item in items]
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
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
    """Names one stored data type of one run: ``<run_id>-<data_type>-<lineage_hash>``.

    The lineage is hashed once, at construction (as strax does when the lineage is set).
    """

    run_id: str
    data_type: str
    lineage: Mapping[str, Any]
    lineage_hash: str = field(init=False)

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        # strax derives file names by deleting "_temp" anywhere in the folder name, so a data type
        # containing it could be written but never read back.
        bad = [part for part in ("-", "/", "_temp") if part in self.data_type]
        if not self.data_type or bad:
            raise BadInput(
                f"invalid data type {self.data_type!r} for run {self.run_id}: it must be "
                "non-empty and contain no '-', '/' or '_temp'"
            )
        object.__setattr__(self, "lineage_hash", deterministic_hash(self.lineage))

    def __str__(self) -> str:
        return f"{self.run_id}-{self.data_type}-{self.lineage_hash}"
