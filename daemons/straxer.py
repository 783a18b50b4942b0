"""straxer: process one run from live_data (or stored lower-level data) to the given targets.

It stores every type on the way (strax's save rules), shows progress (a bar on a terminal,
structured progress events otherwise), and ends with a summary. It is the code path of
bootstrax's per-run child. Exit codes: 0 done (or nothing to do), 1 processing failed,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from straxd.core.child import die_with_parent, stop_on_stdin_eof
from straxd.core.chunk import Chunk
from straxd.core.context import build_registry, check_run_length
from straxd.core.db import open_databases
from straxd.core.errors import ConfigInvalid, StraxdError
from straxd.core.filestore import FileStore
from straxd.core.lifecycle import EXIT_FAILED, EXIT_OK, EXIT_USAGE, serve
from straxd.core.logging import configure_logging, get_logger
from straxd.core.memory import limit_heap_retention, peak_rss_mb
from straxd.core.pipeline import QUEUE_DEPTH, Pipeline, PipelineReport
from straxd.core.rundoc import parse_run, read_run_doc, run_id_of
from straxd.core.settings import Settings, settings_for_cli

COMPRESSORS = ("zstd", "lz4", "blosc", "bz2")
# The types the original's records_compressor applied to (of those straxd makes).
RECORDS_TYPES = ("raw_records", "records")
# Flags of the original straxer that mean nothing here; accepted so old command lines work.
IGNORED_FLAGS = (
    "--package",
    "--context",
    "--context_kwargs",
    "--register_from_file",
    "--notlazy",
    "--multiprocess",
    "--shm",
    "--profile_to",
    "--profile_ram",
    "--diagnose_sorting",
    "--only_strax_data",
    "--add_folder",
    "--print_alive",
    "--multi_target",
    "--build_lowlevel",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``straxer --help``)."""
    parser = argparse.ArgumentParser(
        prog="straxer",
        description="Process one run to the target data types and store every type on the way. "
        "The run document comes from STRAXD_MONGO_URI, live_data from STRAXD_LIVE_DIR.",
    )
    parser.add_argument("run", help="run number, e.g. 11 or 000011")
    parser.add_argument("--target", nargs="+", default=["records"], help="data types to make")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("./strax_data"),
        help="strax data directory to read from and write to (default ./strax_data)",
    )
    parser.add_argument(
        "--config_kwargs",
        default="{}",
        help="JSON object of options by their straxen names, e.g. "
        "'{\"hit_min_amplitude\": 20}' (lists become tuples)",
    )
    parser.add_argument(
        "--from_scratch",
        action="store_true",
        help="recompute everything above raw_records, replacing what is stored",
    )
    parser.add_argument("--workers", type=int, default=2, help="threads for processing")
    parser.add_argument(
        "--max_messages",
        type=int,
        default=QUEUE_DEPTH,
        help=f"chunks in flight per data type and consumer (default {QUEUE_DEPTH})",
    )
    parser.add_argument(
        "--records_compressor",
        choices=COMPRESSORS,
        default=None,
        help="compressor of raw_records and records (default: each plugin's own)",
    )
    parser.add_argument(
        "--max_inflight_mb",
        type=float,
        default=0.0,
        help="read the next live_data chunk only when at most this many MB of large arrays of "
        "earlier chunks are still being processed (default 0: one chunk at a time, which keeps "
        "peak memory independent of the run length); negative: no limit",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up waiting for new live_data after this many seconds",
    )
    parser.add_argument("--debug", action="store_true", help="debug logging")
    parser.add_argument(
        "--run-doc",
        type=Path,
        default=None,
        help="read the run document from this extended-JSON file instead of the database "
        "(bootstrax hands its child a snapshot, so the child never needs the database)",
    )
    parser.add_argument(
        "--supervised",
        action="store_true",
        help="run as bootstrax's child: exit when the parent dies or closes stdin, and leave "
        "the run-length check to the parent",
    )
    parser.add_argument("--config", type=Path, default=None, help="straxd settings file (TOML)")
    for flag in IGNORED_FLAGS:
        parser.add_argument(flag, nargs="?", const=True, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.config_kwargs)
    except json.JSONDecodeError as err:
        parser.error(f"--config_kwargs is not JSON: {err}")
    if not isinstance(kwargs, dict):
        parser.error("--config_kwargs must be a JSON object")
    args.config_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.max_messages < 1:
        parser.error("--max_messages must be at least 1")
    args.ignored = [f for f in IGNORED_FLAGS if getattr(args, f.lstrip("-")) is not None]
    return args


class Progress:
    """Chunk progress: a bar on a terminal, events otherwise."""

    def __init__(self, run_start_ns: int, run_end_ns: int | None, tty: bool) -> None:
        self.start_ns, self.end_ns, self.tty = run_start_ns, run_end_ns, tty
        self.started = time.monotonic()
        self.raw_mb = 0.0

    def __call__(self, data_type: str, chunk: Chunk) -> None:
        if data_type != "raw_records":
            return
        self.raw_mb += chunk.nbytes / 1e6
        wall_s = time.monotonic() - self.started
        done = None
        if self.end_ns:
            done = min(1.0, (chunk.end - self.start_ns) / max(self.end_ns - self.start_ns, 1))
        if self.tty:
            bar = "#" * int(30 * (done or 0))
            sys.stderr.write(
                f"\r[{bar:<30}] {100 * (done or 0):5.1f}% {self.raw_mb:8.1f} MB "
                f"{self.raw_mb / max(wall_s, 1e-9):6.1f} MB/s"
            )
            sys.stderr.flush()
        else:
            get_logger().info(
                "progress",
                data_type=data_type,
                chunk_end=chunk.end,
                fraction=None if done is None else round(done, 3),
                raw_mb=round(self.raw_mb, 1),
                wall_s=round(wall_s, 1),
            )


def summary(report: PipelineReport) -> dict[str, Any]:
    """Rows, MB and rate per type, wall time, peak memory, and CPU seconds per step (most
    first)."""
    raw_mb = sum(t.nbytes for n, t in report.types.items() if n.startswith("raw_records")) / 1e6
    return {
        "run_id": report.run_id,
        "wall_s": round(report.wall_s, 2),
        "raw_mbs": round(raw_mb / max(report.wall_s, 1e-9), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpu_s": {
            step: round(cpu_s, 2)
            for step, cpu_s in sorted(report.cpu_s.items(), key=lambda item: -item[1])
        },
        "types": {
            n: {
                "rows": t.rows,
                "mb": round(t.nbytes / 1e6, 2),
                "origin": t.origin,
                "saved": t.saved,
            }
            for n, t in sorted(report.types.items())
        },
    }


async def process(args: argparse.Namespace, settings: Settings) -> int:
    """Process the run; returns the exit code."""
    number = parse_run(args.run)
    log = get_logger(run_id=run_id_of(number))
    document = await _run_document(args, settings, number)
    if document is None:
        log.error("run_not_found", runs_db=settings.runs_db)
        return EXIT_USAGE
    config = dict(args.config_kwargs)
    if args.timeout is not None:
        config["input_timeout_s"] = args.timeout
    registry = build_registry(document, settings.live_dir, config)
    compressors = (
        dict.fromkeys(RECORDS_TYPES, args.records_compressor) if args.records_compressor else {}
    )
    store = FileStore(
        args.output,
        run_id_of(number),
        overwrite="always" if args.from_scratch else "if_broken",
        compressors=compressors,
    )
    with ThreadPoolExecutor(args.workers) as pool:
        pipeline = Pipeline(
            registry,
            store,
            run_id_of(number),
            args.target,
            pool,
            queue_depth=args.max_messages,
            on_chunk=Progress(
                int(document["start"].timestamp()) * 10**9, _end_ns(document), sys.stderr.isatty()
            ),
            inflight_limit_mb=args.max_inflight_mb if args.max_inflight_mb >= 0 else None,
        )
        if pipeline.nothing_to_do and not args.from_scratch:
            log.info("already_stored", targets=args.target, output=str(args.output))
            return EXIT_OK
        report = await pipeline.run()
    result = summary(report)
    rows = sum(t["rows"] for t in result["types"].values())
    log.info("processing_done", **result, note="the run holds no data" if rows == 0 else None)
    raw = registry.lineage_hash("raw_records")
    if args.supervised:
        return EXIT_OK  # the parent checks the run length against the final run document
    if store.has("raw_records", raw) and (
        reason := check_run_length(store.folder("raw_records", raw), document)
    ):
        log.error("run_length_check_failed", reason=reason)
        return EXIT_FAILED
    return EXIT_OK


async def _run_document(
    args: argparse.Namespace, settings: Settings, number: int
) -> dict[str, Any] | None:
    """The run document: from ``--run-doc`` if given, else from the runs database."""
    if args.run_doc is not None:
        try:
            document = read_run_doc(args.run_doc)
        except (OSError, ValueError) as err:
            raise ConfigInvalid(f"--run-doc {args.run_doc}: {err}") from None
        if document.get("number") != number:
            raise ConfigInvalid(f"--run-doc {args.run_doc} holds run {document.get('number')}")
        return document
    dbs = open_databases(settings.runs_uri(), settings.daq_uri(), settings.runs_db, settings.daq_db)
    try:
        return await dbs.runs.find_one({"number": number})
    finally:
        await dbs.close()


def _end_ns(document: dict[str, Any]) -> int | None:
    end = document.get("end")
    return int(end.timestamp() * 1e9) if end is not None else None


def _flatten(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [e for sub in err.exceptions for e in _flatten(sub)]
    return [err]


def _report_failure(err: Exception) -> int:
    """Log the domain errors of a failed run; anything else is a bug and propagates."""
    errors = _flatten(err)
    if not all(isinstance(e, StraxdError) for e in errors):
        raise err
    for error in errors:
        get_logger().error("processing_failed", error=str(error), kind=type(error).__name__)
    return EXIT_USAGE if all(isinstance(e, ConfigInvalid) for e in errors) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """``straxer`` console script."""
    args = parse_args(argv)
    settings = settings_for_cli("straxer", args.config)
    if settings is None:
        return EXIT_USAGE
    configure_logging("straxer", settings.host, level="debug" if args.debug else "info")
    limit_heap_retention()
    if args.ignored:
        get_logger().warning("flags_ignored", flags=args.ignored)

    if args.supervised:
        die_with_parent()

    async def _run(stop: asyncio.Event) -> int:
        if args.supervised:
            await stop_on_stdin_eof(stop)
        task = asyncio.ensure_future(process(args, settings))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not task.done():
            task.cancel()  # outputs are closed as broken, never half-final
            await asyncio.wait([task])
            get_logger().warning("interrupted")
            return EXIT_FAILED
        try:
            return task.result()
        except Exception as err:
            return _report_failure(err)

    return serve("straxer", None, _run)


if __name__ == "__main__":
    sys.exit(main())
