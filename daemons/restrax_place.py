"""Putting one data type in the production folder: rename, adopt, quarantine, copy across disks.

Each placement is idempotent: run again after a crash it finds the folder already in place and
adopts it. Something else at the destination (a foreign or incomplete folder) is moved to the
unregistered folder with a warning, never deleted.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from straxd.core.errors import BadInput, DataCorrupted, StraxdError
from straxd.core.finish import remove_tree
from straxd.core.storage_read import open_data
from straxd.core.verify import quick_check


class PlaceFailed(StraxdError):
    """A folder could not be put in place."""


@dataclass
class Item:
    """One data entry of the run and what restrax does with it."""

    data_type: str
    source: Path
    target: Path
    action: str  # rewrite | move | adopt | registered
    compressor: str | None = None
    target_mb: float | None = None
    rewritten: Path | None = field(default=None)

    def plan_entry(self) -> dict[str, Any]:
        """The worker's instructions for a rewrite."""
        return {
            "type": self.data_type,
            "source": str(self.source),
            "compressor": self.compressor,
            "target_mb": self.target_mb,
        }


def _rows(folder: Path) -> int:
    return sum(int(c.get("n", 0)) for c in open_data(folder).metadata["chunks"])


def _same_data(existing: Path, reference: Path) -> bool:
    """Whether ``existing`` is complete data of the same lineage and rows as ``reference``."""
    try:
        have, want = open_data(existing), open_data(reference)
    except (DataCorrupted, BadInput, OSError):
        return False
    return (
        have.complete
        and have.metadata["lineage_hash"] == want.metadata["lineage_hash"]
        and _rows(existing) == _rows(reference)
    )


def quarantine(path: Path, unregistered: Path, log: Any) -> Path:
    """Move ``path`` into the unregistered folder (a unique name), with a warning."""
    unregistered.mkdir(parents=True, exist_ok=True)
    aside = unregistered / f"{path.name}.{int(time.time() * 1000)}"
    _move(path, aside)
    log.warning("destination_quarantined", path=str(path), moved_to=str(aside))
    return aside


def _move(source: Path, target: Path) -> None:
    """Rename; across filesystems copy, verify, then delete the source."""
    try:
        os.rename(source, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        # Same name in a hidden folder beside the target: strax's metadata file name follows
        # the folder name, and a "_temp" name would read as incomplete.
        temp = target.parent / ".restrax-copy" / target.name
        remove_tree(temp)
        temp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, temp)
        quick_check(source, temp)
        os.rename(temp, target)
        remove_tree(source)


def place(item: Item, unregistered: Path, log: Any) -> None:
    """Put one item's folder at its target (see the module docstring)."""
    if item.action in ("registered", "adopt"):
        if not item.target.is_dir():
            raise PlaceFailed(f"{item.target} is registered but missing")
        return
    new = item.rewritten if item.action == "rewrite" else item.source
    if new is None or not new.is_dir():
        if item.target.is_dir() and _same_data(item.target, item.target):
            return  # placed by an earlier attempt
        raise PlaceFailed(f"nothing to place for {item.data_type}: {new} is missing")
    item.target.parent.mkdir(parents=True, exist_ok=True)
    if item.target.exists():
        if _same_data(item.target, new):
            log.info("destination_adopted", path=str(item.target))
            if item.action == "rewrite":
                remove_tree(new)
            return
        quarantine(item.target, unregistered, log)
    _move(new, item.target)
