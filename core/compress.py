"""Chunk codecs, each writing exactly the on-disk format strax reads and reading what it writes.

A chunk file is the compressor's output for the raw bytes of the whole array: no header, no
dtype, no length prefix. Compression is CPU work that releases the GIL; callers run it in a
thread pool. Decompression checks that the stream is complete, so a truncated file is an error
naming the file instead of silently fewer rows.
"""

from __future__ import annotations

import bz2
from collections.abc import Callable
from dataclasses import dataclass

import blosc
import lz4.frame
import zstandard

from straxd.core.errors import BadInput, DataCorrupted

# strax's own settings: one blosc thread per call (we parallelise over chunks), GIL released.
blosc.set_nthreads(1)
blosc.set_releasegil(True)

ZSTD_LEVEL = 3  # strax: zstd.compress(data, 3, 1)
BLOSC_MAX_BYTES = blosc.MAX_BUFFERSIZE


def _zstd_compress(data: bytes | memoryview) -> bytes:
    # A content checksum (which strax does not write, but reads) turns silent corruption of a
    # chunk file into an error when it is read.
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0, write_checksum=True)
    return compressor.compress(data)


def _zstd_decompress(data: bytes | memoryview) -> bytes:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    out = decompressor.decompress(data)
    if not decompressor.eof:
        raise ValueError("zstd stream ends before its frame is complete")
    return out


def _lz4_decompress(data: bytes | memoryview) -> bytes:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    out: bytes = decompressor.decompress(data)
    if not decompressor.eof:
        raise ValueError("lz4 frame ends before it is complete")
    return out


def _bz2_decompress(data: bytes | memoryview) -> bytes:
    decompressor = bz2.BZ2Decompressor()
    out = decompressor.decompress(data)
    if not decompressor.eof:
        raise ValueError("bz2 stream ends before it is complete")
    return out


def _blosc_compress(data: bytes | memoryview) -> bytes:
    if len(data) >= BLOSC_MAX_BYTES:
        raise BadInput(
            f"blosc cannot compress {len(data)} bytes in one piece (limit {BLOSC_MAX_BYTES}); "
            "use a smaller chunk target or another compressor"
        )
    # python-blosc defaults as strax uses them: typesize 8, clevel 9, blosclz, no shuffle.
    out: bytes = blosc.compress(bytes(data), shuffle=blosc.NOSHUFFLE)
    return out


def _blosc_decompress(data: bytes | memoryview) -> bytes:
    out: bytes = blosc.decompress(bytes(data))
    return out


def _lz4_compress(data: bytes | memoryview) -> bytes:
    out: bytes = lz4.frame.compress(data)
    return out


@dataclass(frozen=True)
class Codec:
    """One compressor: bytes in, bytes out."""

    name: str
    compress: Callable[[bytes | memoryview], bytes]
    decompress: Callable[[bytes | memoryview], bytes]


CODECS: dict[str, Codec] = {
    "zstd": Codec("zstd", _zstd_compress, _zstd_decompress),
    "lz4": Codec("lz4", _lz4_compress, _lz4_decompress),
    "bz2": Codec("bz2", lambda data: bz2.compress(data, 9), _bz2_decompress),
    "blosc": Codec("blosc", _blosc_compress, _blosc_decompress),
}


def get_codec(name: str) -> Codec:
    """The codec called ``name``; an unknown name lists the known ones."""
    try:
        return CODECS[name]
    except KeyError:
        raise BadInput(f"unknown compressor {name!r}; known: {', '.join(sorted(CODECS))}") from None


def decompress_file_bytes(name: str, data: bytes | memoryview, source: str) -> bytes:
    """Decompress the content of one file, raising DataCorrupted that names ``source``."""
    codec = get_codec(name)
    try:
        return codec.decompress(data)
    except Exception as err:  # every codec has its own error types for bad input
        raise DataCorrupted(f"{source}: cannot decompress as {name}: {err}") from err
