"""Codecs: byte for byte what strax 2.2.3 writes, streaming decompression, clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import strax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from straxd.core import compress
from straxd.core.compress import (
    CODECS,
    compress_array,
    decompress_file_bytes,
    decompress_file_into,
    decompress_file_rows,
    get_codec,
)
from straxd.core.errors import BadInput, DataCorrupted

NAMES = sorted(CODECS)
ROW = np.dtype([("time", "<i8"), ("channel", "<i2"), ("data", "<i2", (7,))])  # 24 bytes


def rows(n: int, seed: int, spread: int = 50) -> np.ndarray:
    """Compressible rows: small random values."""
    rng = np.random.default_rng(seed)
    data = np.zeros(n, ROW)
    data["time"] = np.cumsum(rng.integers(0, spread, n))
    data["channel"] = rng.integers(0, 10, n)
    data["data"] = rng.integers(0, spread, (n, 7))
    return data


class TestSameBytesAsStrax:
    @pytest.mark.parametrize("name", NAMES)
    @settings(max_examples=30, deadline=None)
    @given(n=st.integers(0, 3000), seed=st.integers(0, 2**16), spread=st.sampled_from([2, 1000]))
    def test_small_arrays(self, name: str, n: int, seed: int, spread: int) -> None:
        """Our file content equals strax's for the same array, and each side reads the other."""
        data = rows(n, seed, spread)
        ours = compress_array(name, data)
        assert ours == strax.io.COMPRESSORS[name]["compress"](data)
        back = strax.io._load_file(io.BytesIO(ours), name, ROW)
        assert back.tobytes() == data.tobytes()
        assert get_codec(name).decompress(ours) == data.tobytes()

    @pytest.mark.parametrize("name", ["zstd", "lz4", "blosc"])
    def test_large_array(self, name: str) -> None:
        """Above zstd's multithreading job size (a few MB) the bytes still equal strax's."""
        data = rows(1_000_000, 3)  # 24 MB
        assert compress_array(name, data) == strax.io.COMPRESSORS[name]["compress"](data)

    def test_magic_numbers(self) -> None:
        """zstd frames, lz4 frames, bz2 streams and blosc1 headers start as documented."""
        data = rows(1000, 1)
        assert compress_array("zstd", data)[:4] == b"\x28\xb5\x2f\xfd"
        assert compress_array("lz4", data)[:4] == b"\x04\x22\x4d\x18"
        assert compress_array("bz2", data)[:4] == b"BZh9"
        assert compress_array("blosc", data)[:4] == b"\x02\x01\x00\x08"


def rows_in_pieces(name: str, path: Path, n: int, buffer_rows: int) -> np.ndarray:
    """``decompress_file_rows`` through a buffer of ``buffer_rows``: every piece, joined."""
    buffer = np.empty(buffer_rows, ROW)
    pieces = [p.copy() for p in decompress_file_rows(name, path, n, buffer)]
    assert all(len(p) == buffer_rows for p in pieces[:-1]) and all(len(p) for p in pieces)
    return np.concatenate(pieces) if pieces else np.zeros(0, ROW)


class TestStreamingDecompression:
    @pytest.mark.parametrize("name", NAMES)
    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        n=st.integers(1, 2000),
        piece=st.integers(1, 700),
        out_piece=st.integers(1, 5000),
        buffer_rows=st.integers(1, 2500),
    )
    def test_small_pieces(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        name: str,
        n: int,
        piece: int,
        out_piece: int,
        buffer_rows: int,
    ) -> None:
        """Reading and decoding in tiny pieces gives the same rows as strax's loader."""
        monkeypatch.setattr(compress, "READ_PIECE_BYTES", piece)
        monkeypatch.setattr(compress, "OUTPUT_PIECE_BYTES", out_piece)
        data = rows(n, n)
        path = tmp_path / f"{name}-{n}"
        path.write_bytes(strax.io.COMPRESSORS[name]["compress"](data))
        out = np.empty(n, ROW)
        decompress_file_into(name, path, out)
        assert out.tobytes() == strax.io.load_file(str(path), name, ROW).tobytes()
        assert decompress_file_bytes(name, path.read_bytes(), str(path)) == data.tobytes()
        assert rows_in_pieces(name, path, n, buffer_rows).tobytes() == data.tobytes()

    @pytest.mark.parametrize("name", ["zstd", "lz4", "bz2"])
    def test_trailing_bytes_in_a_later_piece(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
    ) -> None:
        """Bytes after the end of the stream are refused even when they arrive in a later read."""
        packed = compress_array(name, rows(100, 7))
        monkeypatch.setattr(compress, "READ_PIECE_BYTES", len(packed))
        path = tmp_path / "chunk"
        path.write_bytes(packed + b"\x00" * 10)
        with pytest.raises(DataCorrupted, match=f"^{path}: .*unexpected bytes after the end"):
            decompress_file_into(name, path, np.empty(100, ROW))

    def test_output_must_be_contiguous_and_writable(self, tmp_path: Path) -> None:
        """The output buffer is checked before anything is read."""
        path = tmp_path / "x"
        path.write_bytes(compress_array("lz4", rows(10, 1)))
        with pytest.raises(ValueError, match="writable C-contiguous"):
            decompress_file_into("lz4", path, np.empty(20, ROW)[::2])


class TestErrors:
    def test_unknown_codec(self) -> None:
        """Unknown names list the known ones, and name the file when given."""
        with pytest.raises(
            BadInput, match="unknown compressor 'gzip'; known: blosc, bz2, lz4, zstd"
        ):
            get_codec("gzip")
        with pytest.raises(BadInput, match="^/data/x: unknown compressor 'gzip'"):
            decompress_file_bytes("gzip", b"", "/data/x")

    def test_blosc_size_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """blosc refuses inputs at or above its limit with a clear error (limit lowered here)."""
        monkeypatch.setattr(compress, "BLOSC_MAX_BYTES", 24 * 100)
        compress_array("blosc", rows(99, 1))
        with pytest.raises(BadInput, match="blosc cannot compress 2400 bytes in one piece"):
            compress_array("blosc", rows(100, 1))

    @pytest.mark.parametrize("name", NAMES)
    @pytest.mark.parametrize(
        ("damage", "match"),
        [
            (lambda b: b[: len(b) // 2], "cannot decompress"),
            (lambda b: b[:-1], "cannot decompress"),
            (lambda b: b + b"\x00\x01", "cannot decompress"),
            (lambda b: b"", "cannot decompress"),
        ],
        ids=["half", "last_byte", "trailing", "empty"],
    )
    def test_damaged_file(self, tmp_path: Path, name: str, damage, match: str) -> None:
        """Truncated, extended or empty files are DataCorrupted naming the file."""
        path = tmp_path / f"things-abc-{name}"
        path.write_bytes(damage(compress_array(name, rows(5000, 2))))
        with pytest.raises(DataCorrupted, match=f"^{path}: {match} as {name}"):
            decompress_file_into(name, path, np.empty(5000, ROW))
        with pytest.raises(DataCorrupted, match=f"^{path}: {match} as {name}"):
            decompress_file_bytes(name, path.read_bytes(), str(path))
        with pytest.raises(DataCorrupted, match=f"^{path}: {match} as {name}"):
            rows_in_pieces(name, path, 5000, 700)

    @pytest.mark.parametrize("name", NAMES)
    def test_garbage(self, tmp_path: Path, name: str) -> None:
        """Bytes that were never compressed are DataCorrupted naming the file."""
        path = tmp_path / "garbage"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        with pytest.raises(DataCorrupted, match=f"^{path}: "):
            decompress_file_into(name, path, np.empty(100, ROW))
        with pytest.raises(DataCorrupted, match=f"^{path}: "):
            rows_in_pieces(name, path, 100, 30)

    @pytest.mark.parametrize("name", NAMES)
    @pytest.mark.parametrize(
        ("n_out", "match"),
        [
            (99, r"decompresses to more than 2376 bytes \(99 rows\)"),
            (101, r"decompresses to 2400 bytes \(100 rows\) .* 2424 bytes \(101 rows\)"),
        ],
    )
    def test_size_mismatch(self, tmp_path: Path, name: str, n_out: int, match: str) -> None:
        """A file holding more or fewer rows than announced is DataCorrupted, sizes in rows."""
        path = tmp_path / "chunk"
        path.write_bytes(compress_array(name, rows(100, 4)))
        with pytest.raises(DataCorrupted, match=f"^{path}: {match}"):
            rows_in_pieces(name, path, n_out, 30)
        if name == "blosc" and n_out == 99:  # blosc's header states its exact size
            match = r"decompresses to 2400 bytes \(100 rows\)"
        with pytest.raises(DataCorrupted, match=f"^{path}: {match}"):
            decompress_file_into(name, path, np.empty(n_out, ROW))

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing chunk file is DataCorrupted naming it."""
        with pytest.raises(DataCorrupted, match=f"^{tmp_path / 'gone'}: chunk file is missing"):
            decompress_file_into("zstd", tmp_path / "gone", np.empty(1, ROW))
        with pytest.raises(DataCorrupted, match=f"^{tmp_path / 'gone'}: chunk file is missing"):
            rows_in_pieces("zstd", tmp_path / "gone", 1, 1)

    def test_blosc_header_disagrees_with_file(self, tmp_path: Path) -> None:
        """A blosc header announcing another compressed size is refused before decoding."""
        packed = bytearray(compress_array("blosc", rows(100, 5)))
        packed[12:16] = (len(packed) + 100).to_bytes(4, "little")
        path = tmp_path / "blosc"
        path.write_bytes(bytes(packed))
        with pytest.raises(DataCorrupted, match="header announces .* compressed bytes"):
            decompress_file_into("blosc", path, np.empty(100, ROW))
