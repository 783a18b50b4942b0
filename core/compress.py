"""Chunk codecs, each writing byte for byte what strax 2.2.3 writes and reading what it writes.

A chunk file is the compressor's output for the raw bytes of the whole array: no header, no
dtype, no length prefix (the metadata JSON carries all of that). Every codec releases the GIL
while it works, so callers run compression and decompression in a thread pool.

Decompression streams: the compressed file is read in pieces and the output goes straight into a
buffer of the size the metadata announces, so a 2 GB chunk needs 2 GB plus one piece, not three
copies. A stream that ends early, carries trailing bytes or decodes to a size other than the one
announced is ``DataCorrupted`` naming the file.
"""

from __future__ import annotations

import bz2
import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import blosc
import lz4.frame
import numpy as np
import zstandard

from straxd.core.errors import BadInput, DataCorrupted

Buffer = bytes | bytearray | memoryview

# As strax: one blosc thread per call (we parallelise over chunks) and the GIL released. blosc's
# output depends on its thread count, so this is also what keeps our files identical to strax's.
blosc.set_nthreads(1)
blosc.set_releasegil(True)

ZSTD_LEVEL = 3
BLOSC_MAX_BYTES: int = blosc.MAX_BUFFERSIZE
_BLOSC_HEADER_BYTES = 16
# Compressed bytes read per step, and most decompressed bytes produced per step where the codec
# can bound them. Pieces this small come from malloc's heap and stay in cache; pieces of
# megabytes were fresh mappings each time (a page fault per 4 kB): lz4 into a buffer ran at
# 510 MB/s with 16 MB reads and 8 MB outputs, at 900 MB/s with these.
READ_PIECE_BYTES = 128 * 2**10
OUTPUT_PIECE_BYTES = 64 * 2**10


def _zstd_compress(data: Buffer) -> bytes:
    # strax calls python-zstd's compress(data, 3, 1): level 3 with ONE worker thread. zstd's
    # multithreaded mode cuts large inputs into jobs, so a single-threaded encoder gives other
    # bytes above a few MB; threads=1 reproduces strax's files exactly.
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1).compress(data)


def _lz4_compress(data: Buffer) -> bytes:
    out: bytes = lz4.frame.compress(data)  # python-lz4 defaults, as strax
    return out


def _bz2_compress(data: Buffer) -> bytes:
    return bz2.compress(data, 9)


def _blosc_compress(data: Buffer) -> bytes:
    nbytes = memoryview(data).nbytes
    if nbytes >= BLOSC_MAX_BYTES:
        raise BadInput(
            f"blosc cannot compress {nbytes} bytes in one piece (limit {BLOSC_MAX_BYTES}); "
            "use a smaller chunk target or another compressor"
        )
    # python-blosc's defaults as strax uses them: typesize 8, clevel 9, blosclz, no shuffle.
    out: bytes = blosc.compress(data, shuffle=blosc.NOSHUFFLE)
    return out


class _Decoder(Protocol):
    """The common face of the streaming decompressors."""

    def feed(self, data: Buffer, max_bytes: int) -> bytes:
        """Output for ``data`` (b"" drains), at most ``max_bytes`` where the codec can bound it."""

    @property
    def pending(self) -> bool:
        """More output is ready without more input."""

    @property
    def eof(self) -> bool:
        """The end of the stream has been decoded."""

    @property
    def unused(self) -> bytes:
        """Input found after the end of the stream."""


class _BoundedDecoder:
    """bz2 and lz4 decompressors: both bound their output and keep unread input themselves."""

    def __init__(self, decompressor: Any) -> None:
        self._d = decompressor

    def feed(self, data: Buffer, max_bytes: int) -> bytes:
        out: bytes = self._d.decompress(data, max_bytes)
        return out

    @property
    def pending(self) -> bool:
        return not self._d.eof and not self._d.needs_input

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused(self) -> bytes:
        return bytes(self._d.unused_data or b"")


class _ZstdDecoder:
    """zstd frame decoder; it cannot bound its output per call, so each call returns it all."""

    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._unused = b""

    def feed(self, data: Buffer, max_bytes: int) -> bytes:
        out = self._d.decompress(data)
        self._unused = self._d.unused_data
        return out

    @property
    def pending(self) -> bool:
        return False

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused(self) -> bytes:
        return self._unused


class _SizeMismatch(Exception):
    """The stream decodes to a size other than the one announced."""

    def __init__(self, n_bytes: int, exact: bool) -> None:
        super().__init__(n_bytes)
        self.n_bytes = n_bytes
        self.exact = exact


class _Sink:
    """Collects decompressed bytes into a buffer of the expected size, or a growing one."""

    def __init__(self, out: np.ndarray | None) -> None:
        self.out = out  # uint8, exactly the announced size
        self.view = out.data if out is not None else None
        self.grown = bytearray()
        self.n_bytes = 0

    @property
    def room(self) -> int:
        """Most bytes to ask for next: one more than still expected, so overflow shows at once."""
        if self.out is None:
            return OUTPUT_PIECE_BYTES
        return min(OUTPUT_PIECE_BYTES, len(self.out) - self.n_bytes) + 1

    def write(self, piece: bytes) -> None:
        if self.view is None:
            self.grown += piece
        elif self.n_bytes + len(piece) > len(self.view):
            raise _SizeMismatch(self.n_bytes + len(piece), exact=False)
        else:
            self.view[self.n_bytes : self.n_bytes + len(piece)] = piece
        self.n_bytes += len(piece)


def _decode_stream(decoder: _Decoder, pieces: Iterable[Buffer], sink: _Sink) -> None:
    """Feed compressed pieces through the decoder into the sink; check the stream is whole."""
    for out in _decoded(decoder, pieces, lambda: sink.room):
        sink.write(out)


def _decoded(
    decoder: _Decoder, pieces: Iterable[Buffer], room: Callable[[], int]
) -> Iterator[bytes]:
    """The decoder's outputs, each at most ``room()`` bytes where it can bound them."""
    for piece in pieces:
        if decoder.eof:
            # Decoders differ after the end (one raises, one ignores input): decide here.
            if len(piece):
                raise ValueError("unexpected bytes after the end of the stream")
            continue
        yield decoder.feed(piece, room())
        while decoder.pending:
            yield decoder.feed(b"", room())
    if not decoder.eof:
        raise ValueError("the compressed stream ends before it is complete (truncated?)")
    if decoder.unused:
        raise ValueError(f"{len(decoder.unused)} unexpected bytes after the end of the stream")


def _decode_blosc(pieces: Iterable[Buffer], sink: _Sink) -> None:
    """blosc has no streaming form: check the header against the file, then decode at once."""
    data = b"".join(pieces)
    if len(data) < _BLOSC_HEADER_BYTES:
        raise ValueError(f"{len(data)} bytes is shorter than a blosc header")
    # blosc trusts its header; one that disagrees with the file would make it read past the
    # buffer or write past the output, so both sizes are checked before decoding.
    n_bytes, c_bytes, _ = blosc.get_cbuffer_sizes(data)
    if c_bytes != len(data):
        raise ValueError(
            f"the blosc header announces {c_bytes} compressed bytes but the file has {len(data)}"
        )
    if sink.out is None:
        sink.write(blosc.decompress(data))
        return
    if n_bytes != len(sink.out):
        raise _SizeMismatch(n_bytes, exact=True)
    if n_bytes:
        written = blosc.decompress_ptr(data, sink.out.ctypes.data)
        if written != n_bytes:
            raise ValueError(f"blosc wrote {written} of {n_bytes} bytes")
    sink.n_bytes = n_bytes


_STREAM_DECODERS: dict[str, Callable[[], _Decoder]] = {
    "zstd": _ZstdDecoder,
    "lz4": lambda: _BoundedDecoder(lz4.frame.LZ4FrameDecompressor()),
    "bz2": lambda: _BoundedDecoder(bz2.BZ2Decompressor()),
}


@dataclass(frozen=True)
class Codec:
    """One compressor: ``compress`` is a pure bytes -> bytes function, safe in any thread."""

    name: str
    compress: Callable[[Buffer], bytes]

    def decompress(self, data: Buffer) -> bytearray:
        """The whole decompressed content of ``data``; bad input raises the library's error."""
        sink = _Sink(None)
        self._decode(_pieces_of(memoryview(data)), sink)
        return sink.grown

    def _decode(self, pieces: Iterable[Buffer], sink: _Sink) -> None:
        if self.name == "blosc":
            _decode_blosc(pieces, sink)
        else:
            _decode_stream(_STREAM_DECODERS[self.name](), pieces, sink)


CODECS: dict[str, Codec] = {
    "zstd": Codec("zstd", _zstd_compress),
    "lz4": Codec("lz4", _lz4_compress),
    "bz2": Codec("bz2", _bz2_compress),
    "blosc": Codec("blosc", _blosc_compress),
}


def get_codec(name: str, source: str | None = None) -> Codec:
    """The codec called ``name``; an unknown name lists the known ones (and names ``source``)."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        where = f"{source}: " if source else ""
        raise BadInput(
            f"{where}unknown compressor {name!r}; known: {', '.join(sorted(CODECS))}"
        ) from None


def compress_array(name: str, data: np.ndarray) -> bytes:
    """The file content for one chunk array: its packed bytes, compressed (a pure function)."""
    packed = np.ascontiguousarray(data).reshape(-1)
    return get_codec(name).compress(packed.view(np.uint8).data)


def _pieces_of(data: memoryview) -> Iterator[memoryview]:
    data = data.cast("B")
    # An empty input is still one (empty) piece, so the decoder sees it and reports truncation.
    for offset in range(0, max(len(data), 1), READ_PIECE_BYTES):
        yield data[offset : offset + READ_PIECE_BYTES]


def _file_pieces(path: Path) -> Iterator[bytes]:
    """The file in pieces; an unreadable file is told apart from undecodable content here."""
    try:
        with path.open("rb") as handle:
            yield handle.read(READ_PIECE_BYTES)
            while piece := handle.read(READ_PIECE_BYTES):
                yield piece
    except FileNotFoundError:
        raise DataCorrupted(f"{path}: chunk file is missing") from None
    except OSError as err:
        raise DataCorrupted(f"{path}: cannot read chunk file: {err.strerror or err}") from None


def decompress_file_bytes(name: str, data: Buffer, source: str) -> bytearray:
    """Decompress the content of one file, raising DataCorrupted that names ``source``."""
    codec = get_codec(name, source)
    try:
        return codec.decompress(data)
    except Exception as err:  # every library has its own error types for bad input
        raise DataCorrupted(f"{source}: cannot decompress as {name}: {err}") from err


def decompress_file_into(name: str, path: Path | str, out: np.ndarray) -> None:
    """Decompress the file at ``path`` into ``out``, which it must fill exactly.

    ``out`` is a writable C-contiguous array (any dtype) of the size the metadata announces; the
    file is read in pieces. A file that is missing, does not decode, or decodes to any other size
    is DataCorrupted naming the file.
    """
    path = Path(path)
    codec = get_codec(name, str(path))
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("decompress_file_into needs a writable C-contiguous output array")
    sink = _Sink(out.reshape(-1).view(np.uint8))
    with _as_corrupted(name, path, out.nbytes, out.itemsize):
        codec._decode(_file_pieces(path), sink)
        if sink.n_bytes != out.nbytes:
            raise _SizeMismatch(sink.n_bytes, exact=True)


@contextlib.contextmanager
def _as_corrupted(name: str, path: Path, announced_bytes: int, row_bytes: int) -> Iterator[None]:
    """Turn any failure to decode ``path`` into DataCorrupted naming it (sizes in rows)."""
    announced = _size(announced_bytes, row_bytes)
    try:
        yield
    except DataCorrupted:
        raise
    except _SizeMismatch as err:
        got = _size(err.n_bytes, row_bytes) if err.exact else f"more than {announced}"
        raise DataCorrupted(
            f"{path}: decompresses to {got} but the metadata announces {announced}"
        ) from None
    except Exception as err:  # every library has its own error types for bad input
        raise DataCorrupted(f"{path}: cannot decompress as {name}: {err}") from err


def _size(n_bytes: int, row_bytes: int) -> str:
    """A byte count, and in rows when that makes sense, for error messages."""
    if row_bytes <= 1:
        return f"{n_bytes} bytes"
    if n_bytes % row_bytes:
        return f"{n_bytes} bytes (not a whole number of {row_bytes}-byte rows)"
    return f"{n_bytes} bytes ({n_bytes // row_bytes} rows)"


def decompress_file_rows(
    name: str, path: Path | str, n_rows: int, buffer: np.ndarray
) -> Iterator[np.ndarray]:
    """The ``n_rows`` rows of the file at ``path``, decoded piece by piece into ``buffer``.

    Each piece is a view of the front of ``buffer`` (whose dtype gives the rows), full except
    the last, valid until the next piece is asked for: a chunk of any size is read with the
    memory of the buffer (blosc, which has no streaming form, needs the whole chunk once). Bad
    content or another number of rows is DataCorrupted naming the file.
    """
    path = Path(path)
    codec, row_bytes = get_codec(name, str(path)), buffer.itemsize
    capacity = len(buffer) * row_bytes
    raw = buffer.reshape(-1).view(np.uint8)
    filled = total = 0
    with _as_corrupted(name, path, n_rows * row_bytes, row_bytes):
        for out in _file_decoded(codec, path):
            view = memoryview(out).cast("B")
            while len(view):
                take = min(capacity - filled, len(view))
                if total + take > n_rows * row_bytes:
                    raise _SizeMismatch(total + take, exact=False)
                raw[filled : filled + take] = view[:take]
                view, filled, total = view[take:], filled + take, total + take
                if filled == capacity:
                    yield buffer
                    filled = 0
        if total != n_rows * row_bytes:
            raise _SizeMismatch(total, exact=True)
    if filled:
        yield buffer[: filled // row_bytes]


def _file_decoded(codec: Codec, path: Path) -> Iterator[Buffer]:
    """Decoded bytes of a file in pieces (zstd's cannot be bounded: small reads keep them small)."""
    if codec.name == "blosc":
        sink = _Sink(None)
        _decode_blosc(_file_pieces(path), sink)
        yield sink.grown
        return
    pieces = _file_pieces(path)
    yield from _decoded(_STREAM_DECODERS[codec.name](), pieces, lambda: OUTPUT_PIECE_BYTES)
