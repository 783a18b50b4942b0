"""The chunk model: a [start, end) slice of one data type of one run.

A chunk holds all and only the rows that lie inside [start, end); no row straddles a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from straxd.core.errors import ChunkError


@dataclass(frozen=True, eq=False)
class Chunk:
    """One chunk of one data type of one run, in ns since the unix epoch, end exclusive."""

    data_type: str
    data_kind: str
    run_id: str
    start: int
    end: int
    data: np.ndarray
    target_size_mb: int = 200
    subruns: dict[str, dict[str, int]] | None = field(default=None)

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ChunkError(
                f"{self.data_type} chunk of run {self.run_id}: need 0 <= start <= end, "
                f"got start={self.start} end={self.end}"
            )

    @property
    def nbytes(self) -> int:
        """Uncompressed size of the data in bytes."""
        return int(self.data.nbytes)

    def __len__(self) -> int:
        return len(self.data)
