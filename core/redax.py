"""The redax live_data layout, written the way redax writes it.

``<live_dir>/<run_id>/`` holds, for each DAQ chunk i, ``<i:06d>/`` (the central part),
``<i:06d>_post/`` (the overlap after it) and ``<i+1:06d>_pre/`` (the same bytes again, for the next
chunk), and ``THE_END/`` once the readers are done. Each directory has one file per reader thread,
``<process_name>_<thread>``, empty when that thread saw nothing; files are the raw_records bytes
of the thread's fragments compressed as one unit (LZ4 frame or blosc) and are written in
``<dir>_temp/`` before the directory is renamed, so a reader never sees half a directory. A
fragment goes where its own start time falls: chunk ``t // (chunk + overlap)``, in the overlap if
it starts within the last ``overlap`` ns of that period.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import blosc
import lz4.frame
import numpy as np

from straxd.core.errors import BadInput

LZ4_BLOCK_SIZE = lz4.frame.BLOCKSIZE_MAX256KB


def compress_fragments(data: bytes, compressor: str) -> bytes:
    """One file's buffer compressed as redax does."""
    if compressor == "lz4":
        out: bytes = lz4.frame.compress(
            data,
            compression_level=0,
            block_size=LZ4_BLOCK_SIZE,
            block_linked=True,
            content_checksum=False,
        )
        return out
    if compressor == "blosc":
        out = blosc.compress(data, typesize=1, clevel=5, shuffle=blosc.SHUFFLE, cname="lz4")
        return out
    raise BadInput(f"redax compressor must be lz4 or blosc, not {compressor!r}")


@dataclass(frozen=True)
class ReaderLayout:
    """Reader processes and their threads, as in ``daq_config.processing_threads``."""

    processing_threads: Mapping[str, int]

    @property
    def files(self) -> list[str]:
        """Every ``<process>_<thread>`` file name one directory holds."""
        return [
            f"{name}_{t}" for name, n in sorted(self.processing_threads.items()) for t in range(n)
        ]

    def split(self, fragments: np.ndarray) -> dict[str, np.ndarray]:
        """Fragments per file: each thread reads a fixed subset of channels."""
        names = self.files
        owner = fragments["channel"].astype(np.int64) % len(names)
        return {name: fragments[owner == i] for i, name in enumerate(names)}


def part_of(times_ns: np.ndarray, chunk_ns: int, overlap_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """For each fragment start: its chunk number and whether it lies in that chunk's overlap."""
    full = chunk_ns + overlap_ns
    chunk = times_ns // full
    in_overlap = (chunk + 1) * full - times_ns <= overlap_ns
    return chunk, in_overlap


class LiveDataWriter:
    """Writes one run's live_data directory."""

    def __init__(
        self,
        run_dir: Path,
        layout: ReaderLayout,
        compressor: str = "lz4",
        *,
        chunk_ns: int = 5_000_000_000,
        overlap_ns: int = 500_000_000,
    ) -> None:
        compress_fragments(b"", compressor)  # refuse an unknown compressor now
        self.run_dir = run_dir
        self.layout = layout
        self.compressor = compressor
        self.chunk_ns = chunk_ns
        self.overlap_ns = overlap_ns
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def write_directory(self, name: str, fragments: np.ndarray) -> None:
        """One directory: a file per thread (empty ones too), via ``<name>_temp`` and a rename."""
        final = self.run_dir / name
        temp = self.run_dir / f"{name}_temp"
        temp.mkdir(parents=True, exist_ok=True)
        for filename, part in self.layout.split(fragments).items():
            # Readers deliver in their own order: within a file, by channel first.
            ordered = part[np.lexsort((part["time"], part["channel"]))] if len(part) else part
            payload = compress_fragments(ordered.tobytes(), self.compressor) if len(part) else b""
            with open(temp / filename, "wb") as handle:
                handle.write(payload)
        os.rename(temp, final)

    def write_chunk(self, chunk_i: int, fragments: np.ndarray) -> None:
        """Central part, post and the next chunk's pre for one DAQ chunk's fragments."""
        chunk, in_overlap = part_of(fragments["time"], self.chunk_ns, self.overlap_ns)
        if len(fragments) and not np.all(chunk == chunk_i):
            raise BadInput(f"fragments of other chunks handed to chunk {chunk_i}")
        self.write_directory(f"{chunk_i:06d}", fragments[~in_overlap])
        overlap = fragments[in_overlap]
        self.write_directory(f"{chunk_i:06d}_post", overlap)
        self.write_directory(f"{chunk_i + 1:06d}_pre", overlap)

    def finish(self) -> None:
        """``THE_END``: one small file per thread, as each reader thread writes when it stops."""
        end = self.run_dir / "THE_END"
        end.mkdir(exist_ok=True)
        for filename in self.layout.files:
            (end / filename).write_text("THE_END\n")
