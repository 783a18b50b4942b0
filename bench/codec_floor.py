"""What reading live_data and saving raw_records cost with no processing at all: the codecs alone.

For one run: decompress every live_data file of the run (whole files already in memory, no file
IO) with redax's compressor, and compress every stored raw_records* chunk (in memory, fed in
1 MB pieces as straxd's chunk writer does, the output dropped) with the compressor it is stored
with. Each is done twice and the faster pass counts, so the allocator is warm. Only the
libraries' own work is left, so an implementation that reads this live_data and saves
raw_records with the same compressor (lz4, as straxen) spends at least about this much CPU time
on them.

Prints one JSON line: ``{"live_mb", "live_decompress_s", "raw_mb", "raw_compress_s"}`` (MB
decompressed). bench_events runs it pinned to the straxd runs' CPU, after them.

Usage: python bench/codec_floor.py LIVE_RUN_DIR LIVE_COMPRESSOR STRAXD_OUTPUT_DIR RUN_ID
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import blosc
import lz4.frame
import numpy as np

from straxd.core.chunk_stream import ENCODE_PIECE_BYTES
from straxd.core.compress_stream import stream_encoder
from straxd.core.storage_read import open_data

PASSES = 2
# redax writes live_data with one of these; whole-buffer decompression, as the libraries offer it.
LIVE_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lz4.frame.decompress,
    "blosc": blosc.decompress,
}


def live_decompress(run_dir: Path, compressor: str) -> tuple[float, float]:
    """(MB, seconds) decompressing every non-empty live_data file of the run."""
    decompress = LIVE_DECOMPRESSORS[compressor]
    # Chunk folders are numbered (000012, 000012_pre, 000012_post); THE_END holds markers.
    files = [f for f in sorted(run_dir.glob("[0-9]*/*")) if f.is_file() and f.stat().st_size]
    blobs = [f.read_bytes() for f in files]
    n_bytes, seconds = 0, []
    for _ in range(PASSES):
        started = time.process_time()
        n_bytes = sum(len(decompress(b)) for b in blobs)
        seconds.append(time.process_time() - started)
    return n_bytes / 1e6, min(seconds)


def raw_compress(output: Path, run_id: str) -> tuple[float, float]:
    """(MB, seconds) compressing every stored raw_records* chunk with its own compressor."""
    n_bytes, seconds = 0, [0.0] * PASSES
    for folder in sorted(output.glob(f"{run_id}-raw_records*-*")):
        stored = open_data(folder)
        for chunk_i in range(stored.n_chunks):
            data = stored.load_chunk(chunk_i).data.view(np.uint8)
            n_bytes += data.nbytes
            for i in range(PASSES):
                started = time.process_time()
                encoder = stream_encoder(stored.compressor)
                for offset in range(0, len(data), ENCODE_PIECE_BYTES):
                    encoder.compress(data[offset : offset + ENCODE_PIECE_BYTES])
                encoder.flush()
                seconds[i] += time.process_time() - started
    return n_bytes / 1e6, min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("live_run_dir", type=Path)
    parser.add_argument("live_compressor", choices=sorted(LIVE_DECOMPRESSORS))
    parser.add_argument("output", type=Path, help="straxd output folder holding raw_records*")
    parser.add_argument("run_id")
    args = parser.parse_args()
    live_mb, live_s = live_decompress(args.live_run_dir, args.live_compressor)
    raw_mb, raw_s = raw_compress(args.output, args.run_id)
    floor = {"live_mb": live_mb, "live_decompress_s": live_s}
    print(json.dumps({**floor, "raw_mb": raw_mb, "raw_compress_s": raw_s}))


if __name__ == "__main__":
    main()
