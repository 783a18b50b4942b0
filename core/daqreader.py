"""Reading redax live_data into the raw_records types, as straxen's DAQReader does.

DAQ chunk i covers [i*(C+O), i*(C+O)+C) in its central directory plus the overlaps on both
sides (``_pre``, ``_post``). The overlap is shared with the neighbouring chunk and split at a
quiet moment (a gap of ``safe_break_in_pulses``) so every fragment lands in exactly one chunk;
when the data is too dense for such a gap, an artificial-deadtime record on channel 799 marks
where data had to be dropped. Fragments are then split by channel range into the raw_records
types and shifted from run-relative time to unix time.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from straxd.core.chunk import Chunk, endtime
from straxd.core.dtypes import raw_record_dtype
from straxd.core.errors import BadInput
from straxd.core.live_files import Fragments, group_in_place, read_dirs
from straxd.core.rows import sort_by_time, take_rows

ARTIFICIAL_DEADTIME_CHANNEL = 799
DAQREADER_LINEAGE: dict[str, tuple[str, str, dict[str, Any]]] = {
    "raw_records_mv": ("DAQReader", "0.0.0", {})
}
RAW_RECORDS_TYPES = (
    "raw_records",
    "raw_records_he",
    "raw_records_aqmon",
    "raw_records_nv",
    "raw_records_aqmon_nv",
    "raw_records_aux_mv",
    "raw_records_mv",
)
# XENONnT's channel map (straxen.contexts): (first, last) channel per subdetector, ascending.
XENONNT_CHANNEL_MAP: Mapping[str, tuple[int, int]] = {
    "tpc": (0, 493),
    "he": (500, 752),
    "aqmon": (790, 807),
    "aqmon_nv": (808, 815),
    "tpc_blank": (999, 999),
    "mv": (1000, 1083),
    "aux_mv": (1084, 1087),
    "mv_blank": (1999, 1999),
    "nveto": (2000, 2119),
    "nveto_blank": (2999, 2999),
}


def output_name(subdetector: str) -> str | None:
    """raw_records type of a subdetector; None for the unconnected ``*blank`` ranges."""
    if subdetector.endswith("blank"):
        return None
    if subdetector == "tpc":
        return "raw_records"
    if subdetector.startswith("nveto"):
        return "raw_records_nv"
    return f"raw_records_{subdetector}"


@dataclass(frozen=True)
class LiveRunConfig:
    """What reading one run's live_data needs, validated."""

    run_dir: Path
    readout_threads: Mapping[str, int]
    run_start_s: int
    compressor: str = "lz4"
    record_length: int = 110
    chunk_ns: int = 5_000_000_000
    overlap_ns: int = 500_000_000
    safe_break_ns: int = 1000
    max_digitizer_dt_ns: int = 10
    channel_map: Mapping[str, tuple[int, int]] = field(default_factory=lambda: XENONNT_CHANNEL_MAP)

    def __post_init__(self) -> None:
        where = f"run {self.run_dir.name}"
        if not self.readout_threads or sum(self.readout_threads.values()) <= 0:
            raise BadInput(f"{where}: daq_config.processing_threads is empty")
        if self.safe_break_ns >= min(self.chunk_ns, self.overlap_ns):
            raise BadInput(
                f"{where}: safe_break_in_pulses must be shorter than both chunk durations"
            )
        ranges = list(self.channel_map.values())
        if any(a[1] >= b[0] for a, b in itertools.pairwise(ranges)):
            raise BadInput(f"{where}: channel map ranges must be ascending and disjoint")
        if len(ranges) > np.iinfo(np.int8).max:  # _which_detector's indices are int8
            raise BadInput(f"{where}: {len(ranges)} subdetectors in the channel map; at most 127")

    @classmethod
    def from_run_doc(
        cls, live_dir: Path, document: Mapping[str, Any], **overrides: Any
    ) -> LiveRunConfig:
        """From the run document's ``daq_config`` and ``start``; missing fields are BadInput."""
        number = document.get("number")
        if not isinstance(number, int):
            raise BadInput(f"run document has no valid number: {number!r}")
        daq = document.get("daq_config")
        if not isinstance(daq, Mapping):
            raise BadInput(f"run {number}: run document has no daq_config")
        missing = [
            k for k in ("processing_threads", "strax_fragment_payload_bytes") if k not in daq
        ]
        if missing or document.get("start") is None:
            raise BadInput(f"run {number}: daq_config lacks {missing or ['start']}")
        payload = daq["strax_fragment_payload_bytes"]
        if not isinstance(payload, int) or payload <= 0 or payload % 2:
            raise BadInput(
                f"run {number}: strax_fragment_payload_bytes={payload!r} is not a "
                "positive even number of bytes"
            )
        return cls(
            run_dir=Path(live_dir) / f"{number:06d}",
            readout_threads=dict(daq["processing_threads"]),
            run_start_s=int(document["start"].timestamp()),
            compressor=daq.get("compressor", "lz4"),
            record_length=payload // 2,
            chunk_ns=int(float(daq.get("strax_chunk_length", 5.0)) * 1e9),
            overlap_ns=int(float(daq.get("strax_chunk_overlap", 0.5)) * 1e9),
            **overrides,
        )

    @property
    def n_threads(self) -> int:
        """Files every complete directory holds."""
        return sum(self.readout_threads.values())

    @property
    def t0_ns(self) -> int:
        """Run start in whole seconds, as ns since the epoch."""
        return self.run_start_s * 1_000_000_000


class LiveRun:
    """Readiness checks and chunk loading for one run's live_data."""

    def __init__(self, config: LiveRunConfig) -> None:
        self.config = config
        self.dtype = raw_record_dtype(config.record_length)
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ readiness
    def _count_files(self, directory: Path) -> int:
        counts = Counter("_".join(name.split("_")[:-1]) for name in os.listdir(directory))
        for thread, n in counts.items():
            expected = self.config.readout_threads.get(thread)
            if expected is None:
                raise BadInput(f"{directory}: file from unknown reader {thread!r}")
            if n > expected:
                raise BadInput(f"{directory}: {thread} wrote {n} files, expected {expected}")
        return sum(counts.values())

    def finished(self) -> bool:
        """Whether every reader thread wrote its THE_END file."""
        end = self.config.run_dir / "THE_END"
        return end.is_dir() and self._count_files(end) >= self.config.n_threads

    def _part(self, path: Path, ended: bool) -> Path | None:
        """The directory if it exists and is complete (or the run ended), else None."""
        if not path.is_dir():
            return None
        if self._count_files(path) >= self.config.n_threads:
            return path
        if ended:
            present = set(os.listdir(path))
            missing = sorted(
                f"{thread}_{t}"
                for thread, n in self.config.readout_threads.items()
                for t in range(n)
                if f"{thread}_{t}" not in present
            )
            raise BadInput(f"{path}: run ended but reader files are missing: {missing}")
        return None

    def parts(self, chunk_i: int) -> tuple[Path | None, Path | None, Path | None]:
        """(pre, central, post) directories of a chunk, each None if not (yet) usable."""
        ended = self.finished()
        base = self.config.run_dir / f"{chunk_i:06d}"
        return (
            self._part(base.with_name(base.name + "_pre"), ended),
            self._part(base, ended),
            self._part(base.with_name(base.name + "_post"), ended),
        )

    def is_ready(self, chunk_i: int) -> bool:
        """straxen's rule: central part, and both overlaps (or the run has ended)."""
        ended = self.finished()
        pre, central, post = self.parts(chunk_i)
        next_ahead = (self.config.run_dir / f"{chunk_i + 1:06d}").exists()
        return central is not None and (
            (pre is not None and post is not None)
            or (chunk_i == 0 and post is not None)
            or (ended and pre is not None and not next_ahead)
        )

    def exists(self, chunk_i: int) -> bool:
        """Whether the central directory of a chunk exists at all."""
        return (self.config.run_dir / f"{chunk_i:06d}").exists()

    # ------------------------------------------------------------------ loading
    def _last_end(self, records: Fragments) -> int:
        # straxen looks back one record length per channel of the map: kept for equal results.
        n_channels = sum(b - a + 1 for a, b in self.config.channel_map.values())
        tail = records.select(slice(-self.config.record_length * n_channels, None))
        return int(tail.sorted_endtime().max())

    def _overlap(
        self, records: Fragments, path: Path, start: int, end: int, kind: str
    ) -> tuple[Fragments, int]:
        """Records of an overlap part (``path``, decoded) this chunk keeps, and the break time."""
        min_gap = self.config.safe_break_ns
        if not len(records) or self._last_end(records) + min_gap < end:
            return (records if kind == "post" else records.select(slice(0))), end - min_gap
        not_before = start + self.config.record_length * self.config.max_digitizer_dt_ns
        time = records.sorted_time()
        index = (
            _find_break(time, records.sorted_endtime(), min_gap, not_before)
            if len(records) > 1
            else -1
        )
        if index >= 0:
            break_time = int(time[index])
            part = slice(None, index) if kind == "post" else slice(index, None)
            return records.select(part), break_time
        break_time = end - min_gap
        dead_start = break_time - self.config.record_length * self.config.max_digitizer_dt_ns
        self.warnings.append(
            f"{path}: no {min_gap} ns break; artificial deadtime "
            f"[{dead_start}, {end}) inserted, data there dropped"
        )
        if kind == "pre":
            return Fragments.of_sorted(self._deadtime(break_time, end)), break_time
        ordered = records.sorted_rows()
        kept = ordered[endtime(ordered) <= break_time]
        return Fragments.of_sorted(
            sort_by_time(np.concatenate([kept, self._deadtime(dead_start, break_time)]))
        ), break_time

    def _deadtime(self, start: int, end: int) -> np.ndarray:
        record = np.zeros(1, self.dtype)
        dt = self.config.max_digitizer_dt_ns
        record["time"], record["length"], record["dt"] = start, (end - start) // dt, dt
        record["channel"] = ARTIFICIAL_DEADTIME_CHANNEL
        return record

    def load_chunk(self, chunk_i: int, run_id: str) -> dict[str, Chunk]:
        """Every raw_records type of one DAQ chunk (call from a worker thread)."""
        c = self.config
        t_start = chunk_i * (c.chunk_ns + c.overlap_ns)
        t_end = t_start + c.chunk_ns
        pre, central, post = self.parts(chunk_i)
        if central is None:
            raise BadInput(f"{c.run_dir / f'{chunk_i:06d}'}: chunk is not available")
        if pre is not None and chunk_i == 0:
            self.warnings.append(f"{pre}: a _pre directory for chunk 0 is ignored")
            pre = None
        windows = [(central, t_start, t_end)]
        if pre is not None:
            windows.insert(0, (pre, t_start - c.overlap_ns, t_start))
        if post is not None:
            windows.append((post, t_end, t_end + c.overlap_ns))
        decoded = read_dirs(windows, self.dtype, c.compressor)
        pieces, break_pre, break_post = [], t_start, t_end
        if pre is not None:
            kept, break_pre = self._overlap(decoded.pop(0), *windows[0], "pre")
            pieces.append(kept)
        pieces.append(decoded.pop(0))
        if post is not None:
            kept, break_post = self._overlap(decoded.pop(0), *windows[-1], "post")
            pieces.append(kept)
        return self._split(pieces, chunk_i, run_id, c.t0_ns + break_pre, c.t0_ns + break_post)

    def _split(
        self, pieces: list[Fragments], chunk_i: int, run_id: str, start: int, end: int
    ) -> dict[str, Chunk]:
        """One chunk per raw_records type: its subdetector's rows of the pieces, in order.

        Each type's rows become one slice of the array the files were decoded into, rearranged
        in place (``live_files.group_in_place``); only where artificial deadtime rows were added
        are they gathered into an array of their own.
        """
        ranges = np.array(list(self.config.channel_map.values()), dtype=np.int64)
        which = []
        for piece in pieces:
            channels = piece.rows["channel"][piece.order]
            piece_which, bad = _which_detector(channels, ranges)
            if bad >= 0:
                raise BadInput(
                    f"{self.config.run_dir / f'{chunk_i:06d}'}: data in unknown channel "
                    f"{int(channels[bad])}"
                )
            which.append(piece_which)
        named = [
            (i, name)
            for i, subdetector in enumerate(self.config.channel_map)
            if (name := output_name(subdetector)) is not None
        ]
        arrays = _group(pieces, which, [i for i, _ in named])
        chunks: dict[str, Chunk] = {}
        for (_, name), data in zip(named, arrays, strict=True):
            if len(data):
                dt = int(data["dt"][0])
                data["time"] += dt * (self.config.t0_ns // dt)
            chunks[name] = Chunk(name, name, run_id, start, end, data, target_size_mb=500)
        for name in RAW_RECORDS_TYPES:
            chunks.setdefault(name, Chunk(name, name, run_id, start, end, np.zeros(0, self.dtype)))
        return chunks


def _group(pieces: list[Fragments], which: list[np.ndarray], wanted: list[int]) -> list[np.ndarray]:
    """Per wanted subdetector, its rows of the pieces, piece after piece, in order.

    Pieces decoded together are rearranged within their one array, each type a slice of it:
    no second copy of a chunk is ever held. Otherwise (artificial deadtime rows were added) each
    type's rows are gathered into a new array.
    """
    sizes = np.cumsum([0, *(len(p) for p in pieces)])
    groups = [
        np.concatenate([np.flatnonzero(w == i) + sizes[k] for k, w in enumerate(which)])
        for i in wanted
    ]
    grouped = group_in_place(pieces, groups)
    if grouped is not None:
        return grouped
    out = []
    for i in wanted:
        parts = [(p.rows, p.order[w == i]) for p, w in zip(pieces, which, strict=True)]
        data = np.empty(sum(len(index) for _, index in parts), dtype=pieces[0].rows.dtype)
        offset = 0
        for rows, index in parts:
            take_rows(rows, index, data[offset : offset + len(index)])
            offset += len(index)
        out.append(data)
    return out


@numba.njit(nogil=True, cache=True)
def _find_break(time: np.ndarray, end: np.ndarray, min_gap: int, not_before: int) -> int:
    """First index starting at least ``min_gap`` after everything before it ended; -1 if none."""
    latest = max(not_before, end[0])
    for i in range(1, len(time)):
        if time[i] >= latest + min_gap:
            return i
        latest = max(latest, end[i])
    return -1


@numba.njit(nogil=True, cache=True)
def _which_detector(channels: np.ndarray, ranges: np.ndarray) -> tuple[np.ndarray, int]:
    """Subdetector index of each fragment; the index of the first unknown channel, or -1.

    int8: one per row of a chunk, held while the chunk is rearranged (a channel map has a few
    subdetectors).
    """
    which = np.zeros(len(channels), np.int8)
    for i in range(len(channels)):
        found = False
        for d in range(len(ranges)):
            if ranges[d, 0] <= channels[i] <= ranges[d, 1]:
                which[i] = d
                found = True
                break
        if not found:
            return which, i
    return which, -1
