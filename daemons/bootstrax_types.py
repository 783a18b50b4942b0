"""The small types bootstrax's modules share: how a run ended, the options, the progress."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Outcome(enum.Enum):
    """How the work on one run ended."""

    DONE = "done"
    FAILED = "failed"
    HANDED_BACK = "handed_back"
    LOST = "lost"


@dataclass
class RunOptions:
    """What bootstrax was told to do with each run (from its command line)."""

    host: str
    pre_dir: Path
    state_dir: Path
    targets: tuple[str, ...]
    workers: int
    post_process: tuple[str, ...] = ()
    max_messages: int = 2
    fix_target: bool = False
    fix_resources: bool = False
    infer_mode: bool = False
    production: bool = True
    delete_live: bool = False
    ignore_checks: bool = False
    live_root: Path | None = None  # where live_data may be deleted (resolved paths only)


@dataclass
class Progress:
    """What the heartbeat reports about the run in hand."""

    run_id: str | None = None
    phase: str | None = None
    fraction: float | None = None
    raw_mb: float = 0.0
    child_pid: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def as_fields(self) -> dict[str, Any]:
        """Heartbeat fields."""
        return {
            "run_id": self.run_id,
            "phase": self.phase,
            "progress": self.fraction,
            "raw_mb": round(self.raw_mb, 1),
            "child_pid": self.child_pid,
            **self.fields,
        }
