"""Compressors fed in pieces, for chunk files written as their rows arrive (``chunk_stream``).

Each writes one stream of its codec; strax, and ``core.compress``, decode such files as any
other (the zstd and lz4 frames just do not announce their size in the header).
"""

from __future__ import annotations

import bz2
from collections.abc import Callable
from typing import Protocol

import lz4.frame
import zstandard

from straxd.core.compress import ZSTD_LEVEL, Buffer, get_codec


class StreamEncoder(Protocol):
    """A compressor fed in pieces: the concatenated outputs are one file of the codec."""

    def compress(self, data: Buffer) -> bytes:
        """Output ready after ``data`` (possibly b"")."""

    def flush(self) -> bytes:
        """The rest of the output; the encoder is finished afterwards."""


class _Lz4Encoder:
    """An lz4 frame with python-lz4's defaults, like ``lz4.frame.compress``, without the size."""

    def __init__(self) -> None:
        self._c = lz4.frame.LZ4FrameCompressor()
        self._head: bytes = self._c.begin()

    def compress(self, data: Buffer) -> bytes:
        out: bytes = self._head + self._c.compress(data)
        self._head = b""
        return out

    def flush(self) -> bytes:
        out: bytes = self._head + self._c.flush()
        return out


class _BloscEncoder:
    """blosc has no streaming form: the pieces are kept and compressed together at the end."""

    def __init__(self) -> None:
        self._pieces = bytearray()

    def compress(self, data: Buffer) -> bytes:
        self._pieces += data
        return b""

    def flush(self) -> bytes:
        out, self._pieces = get_codec("blosc").compress(self._pieces), bytearray()
        return out


_STREAM_ENCODERS: dict[str, Callable[[], StreamEncoder]] = {
    # threads=1 as in _zstd_compress: zstd compresses in its own thread while the caller
    # produces the next piece. The frame has no content size; strax and we decode it streaming.
    "zstd": lambda: zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1).compressobj(),
    "lz4": _Lz4Encoder,
    "bz2": lambda: bz2.BZ2Compressor(9),
    "blosc": _BloscEncoder,
}


def stream_encoder(name: str) -> StreamEncoder:
    """A fresh encoder for one file of compressor ``name`` (decoded by strax as any other)."""
    return _STREAM_ENCODERS[get_codec(name).name]()
