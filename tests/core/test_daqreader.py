"""Reading live_data: straxen's DAQReader as the oracle, readiness, and every bad input."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import numpy as np
import pytest

from straxd.core.daqreader import (
    ARTIFICIAL_DEADTIME_CHANNEL,
    RAW_RECORDS_TYPES,
    LiveRun,
    LiveRunConfig,
)
from straxd.core.dtypes import raw_record_dtype
from straxd.core.errors import BadInput, DataCorrupted
from straxd.core.redax import LiveDataWriter, ReaderLayout, compress_fragments
from straxd.core.synth import Simulator
from tests.oracle import run_straxen_script

THREADS = {"reader0_reader_0": 2, "reader1_reader_0": 2}
CHUNK_NS, OVERLAP_NS = 1_000_000_000, 100_000_000
FULL_NS = CHUNK_NS + OVERLAP_NS
START_S = 1_700_000_000


def _config(run_dir: Path, **changes: object) -> LiveRunConfig:
    return LiveRunConfig(
        run_dir=run_dir,
        readout_threads=THREADS,
        run_start_s=START_S,
        chunk_ns=CHUNK_NS,
        overlap_ns=OVERLAP_NS,
        **changes,
    )  # type: ignore[arg-type]


def write_run(
    run_dir: Path, fragments: np.ndarray, n_chunks: int, finish: bool = True
) -> LiveDataWriter:
    """live_data of ``n_chunks`` DAQ chunks holding ``fragments`` (run-relative times)."""
    writer = LiveDataWriter(
        run_dir, ReaderLayout(THREADS), chunk_ns=CHUNK_NS, overlap_ns=OVERLAP_NS
    )
    chunk = fragments["time"] // FULL_NS
    for i in range(n_chunks):
        writer.write_chunk(i, fragments[chunk == i])
    if finish:
        writer.finish()
    return writer


def simulated(seconds: int, seed: int = 1) -> np.ndarray:
    sim = Simulator(seed, event_rate_hz=20)
    parts = [sim.window(i, i * 10**9, (i + 1) * 10**9).records for i in range(seconds)]
    parts.append(sim.flush().records)
    records = np.concatenate(parts)
    return records[records["time"] < seconds * 10**9]


def fragments(times: list[int], channels: list[int] | None = None, length: int = 110) -> np.ndarray:
    out = np.zeros(len(times), raw_record_dtype())
    out["time"] = times
    out["length"] = out["pulse_length"] = length
    out["dt"] = 10
    out["channel"] = channels if channels is not None else 1
    out["data"] = 16000
    return out


def read_all(
    config: LiveRunConfig,
) -> tuple[dict[str, np.ndarray], dict[str, list[list[int]]], LiveRun]:
    live = LiveRun(config)
    arrays: dict[str, list[np.ndarray]] = {t: [] for t in RAW_RECORDS_TYPES}
    bounds: dict[str, list[list[int]]] = {t: [] for t in RAW_RECORDS_TYPES}
    chunk_i = 0
    while live.is_ready(chunk_i):
        for name, chunk in live.load_chunk(chunk_i, "000001").items():
            arrays[name].append(chunk.data)
            bounds[name].append([chunk.start, chunk.end, len(chunk)])
        chunk_i += 1
    return {t: np.concatenate(a) for t, a in arrays.items()}, bounds, live


def straxen_read(
    config: LiveRunConfig, out: Path
) -> tuple[dict[str, np.ndarray], dict[str, list[list[int]]]]:
    """The same live_data through straxen 4.0.0's DAQReader (in its own environment)."""
    spec = out / "config.json"
    spec.write_text(
        json.dumps(
            {
                "run_id": "000001",
                "daq_input_dir": str(config.run_dir),
                "readout_threads": dict(config.readout_threads),
                "run_start_time": config.run_start_s,
                "daq_chunk_duration": config.chunk_ns,
                "daq_overlap_chunk_duration": config.overlap_ns,
                "daq_compressor": config.compressor,
                "record_length": config.record_length,
            }
        )
    )
    run_straxen_script("straxen_daqreader_dump.py", str(spec), str(out / "dump"))
    arrays = {t: np.load(out / "dump" / f"{t}.npy") for t in RAW_RECORDS_TYPES}
    bounds = {t: json.loads((out / "dump" / f"{t}.json").read_text()) for t in RAW_RECORDS_TYPES}
    return arrays, bounds


class TestAgainstStraxen:
    @pytest.mark.parametrize("case", ["simulated", "dense_overlap", "break_in_overlap"])
    def test_equal_row_for_row(self, tmp_path: Path, case: str) -> None:
        """Every raw_records type and every chunk boundary equals straxen's DAQReader output."""
        if case == "simulated":
            data = simulated(3)
        elif case == "dense_overlap":
            # Back-to-back fragments through the whole first overlap: no safe break exists.
            times = list(range(CHUNK_NS - 5_000, FULL_NS, 1100))
            data = np.concatenate([fragments([10_000, 2 * FULL_NS + 10]), fragments(times)])
        else:
            times = list(range(CHUNK_NS - 3_000, CHUNK_NS + 50_000, 1100)) + list(
                range(CHUNK_NS + 70_000, FULL_NS - 500, 1100)
            )
            data = fragments([*times, 2 * FULL_NS + 20])
        data = data[np.argsort(data["time"], kind="stable")]
        config = _config(tmp_path / "000001")
        write_run(config.run_dir, data, 3)
        ours, our_bounds, live = read_all(config)
        theirs, their_bounds = straxen_read(config, tmp_path)
        for name in RAW_RECORDS_TYPES:
            assert our_bounds[name] == their_bounds[name], name
            np.testing.assert_array_equal(ours[name], theirs[name].astype(ours[name].dtype))
        if case == "dense_overlap":
            assert (ours["raw_records_aqmon"]["channel"] == ARTIFICIAL_DEADTIME_CHANNEL).sum() == 2
            assert any("artificial deadtime" in w for w in live.warnings)
        if case == "simulated":
            assert len(ours["raw_records"]) + len(ours["raw_records_he"]) == len(data)


def _rewrite_files(run_dir: Path, recompress: Callable[[bytes], bytes]) -> None:
    """Every non-empty live_data file of a run, decoded and compressed again."""
    for path in run_dir.glob("*/*"):
        if path.parent.name != "THE_END" and path.stat().st_size:
            path.write_bytes(recompress(lz4.frame.decompress(path.read_bytes())))


class TestFileForms:
    """The reader takes the files of any redax build: sizes in the frame header or not."""

    @pytest.mark.parametrize("form", ["lz4_without_size", "blosc"])
    def test_same_rows_as_lz4_with_size(self, tmp_path: Path, form: str) -> None:
        """redax's C library leaves the size out of lz4 frames; blosc always has it."""
        data = simulated(2, seed=3)
        config = _config(tmp_path / "sized" / "000001")
        write_run(config.run_dir, data, 2)
        expected, expected_bounds, _ = read_all(config)
        other = _config(tmp_path / "other" / "000001", compressor=form.split("_")[0])
        shutil.copytree(config.run_dir, other.run_dir)
        if form == "blosc":
            _rewrite_files(other.run_dir, lambda b: compress_fragments(b, "blosc"))
        else:
            _rewrite_files(other.run_dir, lambda b: lz4.frame.compress(b, store_size=False))
            head = next(p for p in other.run_dir.glob("000000/*") if p.stat().st_size)
            assert lz4.frame.get_frame_info(head.read_bytes()[:32])["content_size"] == 0
        got, bounds, _ = read_all(other)
        assert bounds == expected_bounds
        for name in RAW_RECORDS_TYPES:
            assert got[name].tobytes() == expected[name].tobytes(), name

    @pytest.mark.parametrize("announced", [-244, 244, 10**9])
    def test_header_announcing_another_size(self, tmp_path: Path, announced: int) -> None:
        """A frame header whose size disagrees with its content: DataCorrupted naming the file."""
        config = _config(tmp_path / "000001")
        write_run(config.run_dir, fragments([100, 200, 300, 5000], [1, 2, 3, 1]), 1)
        path = next(p for p in sorted(config.run_dir.glob("000000/*")) if p.stat().st_size)
        payload = lz4.frame.decompress(path.read_bytes())
        n_bytes = len(payload) + announced
        path.write_bytes(_with_content_size(lz4.frame.compress(payload), n_bytes))
        with pytest.raises(DataCorrupted, match=path.name):
            LiveRun(config).load_chunk(0, "000001")


def _with_content_size(frame: bytes, n_bytes: int) -> bytes:
    """An lz4 frame whose header announces ``n_bytes`` (header checksum recomputed)."""
    assert frame[4] & 0x08, "the frame must carry a content size"
    assert _header_checksum(frame[4:14]) == frame[14], "checksum rule reproduced"
    descriptor = frame[4:6] + n_bytes.to_bytes(8, "little")
    return frame[:4] + descriptor + bytes([_header_checksum(descriptor)]) + frame[15:]


def _header_checksum(descriptor: bytes) -> int:
    """lz4 frame header checksum: second byte of xxHash32 (seed 0) of a descriptor < 16 bytes."""
    primes = (2654435761, 2246822519, 3266489917, 668265263, 374761393)
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = (primes[4] + len(descriptor)) & mask
    words = len(descriptor) // 4
    for i in range(words):
        word = int.from_bytes(descriptor[4 * i : 4 * i + 4], "little")
        h = rotl((h + word * primes[2]) & mask, 17) * primes[3] & mask
    for byte in descriptor[4 * words :]:
        h = rotl((h + byte * primes[4]) & mask, 11) * primes[0] & mask
    h = (h ^ (h >> 15)) * primes[1] & mask
    h = (h ^ (h >> 13)) * primes[2] & mask
    return ((h ^ (h >> 16)) >> 8) & 0xFF


class TestReadiness:
    def test_chunks_become_ready_as_parts_arrive(self, tmp_path: Path) -> None:
        """Chunk 0 needs its post; chunk 1 its pre and post, or the run's end."""
        config = _config(tmp_path / "000001")
        writer = LiveDataWriter(
            config.run_dir, ReaderLayout(THREADS), chunk_ns=CHUNK_NS, overlap_ns=OVERLAP_NS
        )
        live = LiveRun(config)
        assert not live.is_ready(0)
        writer.write_directory("000000", fragments([100]))
        assert not live.is_ready(0)
        writer.write_directory("000000_post", fragments([CHUNK_NS + 10]))
        writer.write_directory("000001_pre", fragments([CHUNK_NS + 10]))
        assert live.is_ready(0)
        writer.write_directory("000001", fragments([FULL_NS + 10]))
        assert not live.is_ready(1)
        writer.finish()
        assert live.finished()
        assert live.is_ready(1)
        assert not live.exists(2)

    def test_partial_directory_waits_then_fails_after_end(self, tmp_path: Path) -> None:
        """A thread file missing: not ready while running, a named error once the run ended."""
        config = _config(tmp_path / "000001")
        write_run(config.run_dir, fragments([100, CHUNK_NS + 10]), 1, finish=False)
        (config.run_dir / "000000" / "reader1_reader_0_1").unlink()
        live = LiveRun(config)
        assert not live.is_ready(0)
        LiveDataWriter(config.run_dir, ReaderLayout(THREADS)).finish()
        with pytest.raises(BadInput, match=r"missing: \['reader1_reader_0_1'\]"):
            live.is_ready(0)


class TestBadInput:
    def _run(self, tmp_path: Path, data: np.ndarray | None = None) -> LiveRunConfig:
        config = _config(tmp_path / "000001")
        write_run(config.run_dir, fragments([100, 5000], [1, 2]) if data is None else data, 1)
        return config

    def _first_file(self, config: LiveRunConfig) -> Path:
        return next(p for p in sorted((config.run_dir / "000000").iterdir()) if p.stat().st_size)

    def test_corrupted_lz4(self, tmp_path: Path) -> None:
        """Garbage in a file: DataCorrupted naming the file."""
        config = self._run(tmp_path)
        path = self._first_file(config)
        path.write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 40)
        with pytest.raises(DataCorrupted, match=path.name):
            LiveRun(config).load_chunk(0, "000001")

    def test_truncated_lz4(self, tmp_path: Path) -> None:
        """A file cut short: DataCorrupted naming the file."""
        config = self._run(tmp_path)
        path = self._first_file(config)
        path.write_bytes(path.read_bytes()[:30])
        with pytest.raises(DataCorrupted, match=path.name):
            LiveRun(config).load_chunk(0, "000001")

    def test_fragment_outside_its_chunk(self, tmp_path: Path) -> None:
        """A fragment whose time is outside the directory's window names file and time."""
        config = _config(tmp_path / "000001")
        writer = LiveDataWriter(
            config.run_dir, ReaderLayout(THREADS), chunk_ns=CHUNK_NS, overlap_ns=OVERLAP_NS
        )
        writer.write_directory("000000", fragments([100, 3 * FULL_NS]))
        writer.write_directory("000000_post", fragments([]))
        writer.finish()
        with pytest.raises(BadInput, match=f"starting at {3 * FULL_NS} ns lies outside"):
            LiveRun(config).load_chunk(0, "000001")

    def test_unknown_channel(self, tmp_path: Path) -> None:
        """Data in a channel of no subdetector (a gap in the map) is named."""
        config = self._run(tmp_path, fragments([100, 200], [1, 900]))
        with pytest.raises(BadInput, match="unknown channel 900"):
            LiveRun(config).load_chunk(0, "000001")

    def test_wrong_payload_size(self, tmp_path: Path) -> None:
        """A run document claiming another payload size than the files have."""
        config = self._run(tmp_path, fragments([100, 200, 300]))
        wrong = _config(config.run_dir, record_length=100)
        with pytest.raises(BadInput, match="whole number of 224-byte fragments"):
            LiveRun(wrong).load_chunk(0, "000001")

    @pytest.mark.parametrize(
        ("doc", "match"),
        [
            ({"number": 1, "start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "no daq_config"),
            (
                {
                    "number": 1,
                    "start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    "daq_config": {
                        "processing_threads": THREADS,
                        "strax_fragment_payload_bytes": 221,
                    },
                },
                "not a positive even number",
            ),
            (
                {
                    "number": 1,
                    "start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    "daq_config": {"strax_fragment_payload_bytes": 220},
                },
                "lacks",
            ),
            (
                {
                    "number": 1,
                    "start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    "daq_config": {"processing_threads": {}, "strax_fragment_payload_bytes": 220},
                },
                "empty",
            ),
        ],
    )
    def test_bad_daq_config(self, tmp_path: Path, doc: dict[str, object], match: str) -> None:
        """A run document without a usable daq_config is refused with the field named."""
        with pytest.raises(BadInput, match=match):
            LiveRunConfig.from_run_doc(tmp_path, doc)

    @pytest.mark.parametrize(
        ("channel_map", "match"),
        [
            ({"tpc": (0, 493), "he": (400, 752)}, "ascending and disjoint"),
            ({f"d{i}": (i, i) for i in range(128)}, "128 subdetectors"),
        ],
    )
    def test_bad_channel_map(
        self, tmp_path: Path, channel_map: dict[str, tuple[int, int]], match: str
    ) -> None:
        """Overlapping ranges, and more subdetectors than the reader indexes, are refused."""
        with pytest.raises(BadInput, match=match):
            _config(tmp_path, channel_map=channel_map)
        _config(tmp_path, channel_map={f"d{i}": (i, i) for i in range(127)})  # the most allowed

    def test_run_without_data(self, tmp_path: Path) -> None:
        """A run with only empty files reads as empty chunks spanning the run."""
        config = self._run(tmp_path, fragments([]))
        arrays, bounds, _ = read_all(config)
        assert all(len(a) == 0 for a in arrays.values())
        # An empty post overlap breaks safe_break before its end, as straxen does.
        assert bounds["raw_records"] == [[START_S * 10**9, START_S * 10**9 + FULL_NS - 1000, 0]]
