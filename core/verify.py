"""Checks that a rewritten copy of a data type holds what its source holds.

The quick checks are the original restrax's (complete, no ``exception``, no empty file for a
chunk with rows, equal row counts). The deep comparison loads both copies chunk by chunk and
compares every field of every row (NaN equal to NaN), holding at most about one chunk of each in
memory, since their chunk boundaries differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from straxd.core.errors import BadInput, DataCorrupted, StraxdError
from straxd.core.storage_read import StoredData, open_data


class VerifyFailed(StraxdError):
    """The copy differs from its source, or is not readable as complete data."""


def quick_check(source: Path, copy: Path) -> int:
    """The original's checks; the row count, or VerifyFailed naming every problem."""
    problems: list[str] = []
    try:
        original, written = open_data(source), open_data(copy)
    except (DataCorrupted, BadInput, OSError) as err:
        raise VerifyFailed(f"{copy.name}: {err}") from None
    if "exception" in written.metadata:
        problems.append(f"{copy.name}: writing failed ({written.metadata['exception']})")
    if not written.complete:
        problems.append(f"{copy.name}: not complete")
    for info in written.metadata["chunks"]:
        if info.get("n") and not info.get("filesize", 1):
            problems.append(f"{copy.name}: chunk {info.get('chunk_i')} has rows but an empty file")
    n_source = sum(int(c.get("n", 0)) for c in original.metadata["chunks"])
    n_copy = sum(int(c.get("n", 0)) for c in written.metadata["chunks"])
    if n_source != n_copy:
        problems.append(f"{copy.name}: {n_copy} rows, the source has {n_source}")
    if problems:
        raise VerifyFailed("; ".join(problems))
    return n_copy


def _rows(stored: StoredData) -> Iterator[np.ndarray]:
    for chunk_i in range(stored.n_chunks):
        data = stored.load_chunk(chunk_i).data
        if len(data):
            yield data


def _equal(a: np.ndarray, b: np.ndarray) -> list[str]:
    differing = []
    for name in a.dtype.names or ():
        nan_ok = a.dtype[name].base.kind in "fc"  # subarray fields: the element kind
        if not np.array_equal(a[name], b[name], equal_nan=nan_ok):
            differing.append(name)
    return differing


def deep_compare(source: Path, copy: Path) -> None:
    """Every field of every row equal (NaN equal to NaN), streamed; VerifyFailed otherwise."""
    original, written = open_data(source), open_data(copy)
    if original.dtype != written.dtype:
        raise VerifyFailed(f"{copy.name}: dtype differs from the source")
    left, right = _rows(original), _rows(written)
    a = b = np.zeros(0, original.dtype)
    offset = 0
    while True:
        if not len(a):
            a = next(left, a)
        if not len(b):
            b = next(right, b)
        if not len(a) or not len(b):
            break
        n = min(len(a), len(b))
        if fields := _equal(a[:n], b[:n]):
            raise VerifyFailed(f"{copy.name}: rows {offset}..{offset + n} differ in {fields}")
        a, b, offset = a[n:], b[n:], offset + n
    if len(a) or len(b) or next(left, None) is not None or next(right, None) is not None:
        raise VerifyFailed(f"{copy.name}: the copies have different numbers of rows")
