"""bootstrax: claims runs as the DAQ writes them and processes them live into registered data.

One bootstrax runs on each event builder. It claims a run with a lease (newest first), processes
it in a spawned child running straxer's code path while the run is still being written, checks
the output, moves it into this host's pre-processed folder and registers it, all fenced by the
lease; failed runs are retried with backoff. A heartbeat renews the lease and reports status
whatever the run is doing. Without ``--production`` it writes nothing to the runs database (the
original's test mode). Exit codes (``--once``, ``--process``): 0 all done or nothing to do,
1 a run failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from straxd.core.bootstrax_config import provided_types
from straxd.core.daqlog_mirror import DaqLogMirror
from straxd.core.lifecycle import EXIT_USAGE, serve
from straxd.core.logging import configure_logging, get_logger
from straxd.core.settings import Settings, settings_for_cli
from straxd.daemons.bootstrax_loop import Bootstrax

CLOSE_TIMEOUT_S = 10.0
DEFAULT_TARGETS = ("event_info", "online_peak_monitor")
# The original's flags that have no effect in straxd (yet); accepted so its command lines work.
NO_EFFECT_FLAGS = ("--profile", "--processor")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``bootstrax --help``)."""
    parser = argparse.ArgumentParser(
        prog="bootstrax",
        description="Claim new runs from the runs database and process their live_data while "
        "they are taken, on several event builders at once. Without --production nothing is "
        "written to the runs database and output goes to --test_output.",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="claim runs, register data, write to STRAXD_PRE_DIR (default: test mode)",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=list(DEFAULT_TARGETS),
        help=f"data types to make (default: {' '.join(DEFAULT_TARGETS)})",
    )
    parser.add_argument(
        "--cores",
        type=int,
        default=8,
        help="processing threads of the child; -1 means every CPU this process may use",
    )
    parser.add_argument(
        "--post_process",
        nargs="*",
        default=[],
        help="more data types to make for each run (made with the targets, in the same child)",
    )
    parser.add_argument(
        "--fix_target",
        action="store_true",
        help="make exactly --targets and --post_process (no mode, detector or failure rules)",
    )
    parser.add_argument(
        "--infer_mode",
        action="store_true",
        help="choose cores, chunks in flight and input timeout from the run's data rate",
    )
    parser.add_argument(
        "--fix_resources",
        action="store_true",
        help="do not reduce resources (or switch compressor) after failures",
    )
    parser.add_argument(
        "--max_messages",
        type=int,
        default=2,
        help="chunks in flight per data type when not inferred (default 2)",
    )
    parser.add_argument(
        "--delete_live",
        action="store_true",
        help="delete live_data after success, once stored raw data holds all of it",
    )
    parser.add_argument("--ignore_checks", action="store_true", help="skip the output checks")
    parser.add_argument(
        "--undying",
        action="store_true",
        help="on an unexpected error, log it, wait 60 s and start over",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="process what can be claimed now (live runs until they end), then exit",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --process: process a done or leased run anyway"
    )
    parser.add_argument(
        "--test_output",
        type=Path,
        default=Path("./bootstrax"),
        help="output folder in test mode (default ./bootstrax)",
    )
    parser.add_argument("--debug", action="store_true", help="debug logging")
    parser.add_argument("--config", type=Path, default=None, help="straxd settings file (TOML)")
    manual = parser.add_mutually_exclusive_group()
    manual.add_argument("--process", type=int, metavar="N", help="process run N, then exit")
    manual.add_argument(
        "--fail",
        nargs="+",
        metavar=("N", "REASON"),
        help="mark run N failed (revokes any lease), then exit",
    )
    manual.add_argument(
        "--abandon",
        nargs="+",
        metavar=("N", "REASON"),
        help="abandon run N (with a reason: fail it first), then exit",
    )
    for flag in NO_EFFECT_FLAGS:
        parser.add_argument(flag, nargs="*", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("targets", "post_process"):
        listed = getattr(args, name)
        unknown = sorted(set(listed) - provided_types())
        if unknown:
            parser.error(
                f"--{name} {unknown} are not data types straxd provides; "
                f"choose from {sorted(provided_types())}"
            )
        if len(set(listed)) != len(listed):
            parser.error(f"--{name} lists a type twice: {listed}")
    if args.max_messages < 1:
        parser.error("--max_messages must be at least 1")
    for name in ("fail", "abandon"):
        value = getattr(args, name)
        if value is not None:
            if not value[0].isdigit():
                parser.error(f"--{name} needs a run number first, got {value[0]!r}")
            setattr(args, name, (int(value[0]), " ".join(value[1:]) or None))
    args.workers = _workers(args.cores)
    if args.workers is None:
        parser.error("--cores must be -1 or at least 1")
    args.no_effect = [f for f in NO_EFFECT_FLAGS if getattr(args, f.lstrip("-")) is not None]
    return args


def _workers(cores: int) -> int | None:
    available = len(os.sched_getaffinity(0))
    if cores == -1:
        return available
    return min(cores, available) if cores >= 1 else None


def main(argv: Sequence[str] | None = None) -> int:
    """``bootstrax`` console script."""
    args = parse_args(argv)
    settings = settings_for_cli("bootstrax", args.config)
    if settings is None:
        return EXIT_USAGE
    mirror = DaqLogMirror(f"bootstrax_{settings.host}") if args.production else None
    configure_logging(
        "bootstrax",
        settings.host,
        level="debug" if args.debug else "info",
        processors=[mirror] if mirror else [],
    )
    log = get_logger()
    if args.no_effect:
        log.warning("flags_without_effect", flags=args.no_effect)
    if args.production and not args.delete_live:
        log.warning("delete_live_off", hint="production without --delete_live keeps live_data")
    lock = settings.lock_path("bootstrax")
    return serve("bootstrax", lock, lambda stop: run(settings, stop, args, mirror))


async def run(
    settings: Settings,
    stop: asyncio.Event,
    args: argparse.Namespace,
    mirror: DaqLogMirror | None = None,
) -> int:
    """The service: manual action, one run, or the claim loop."""
    daemon = Bootstrax(settings, args, mirror)
    try:
        return await daemon.run(stop)
    finally:
        # Closing waits for in-flight operations; an unreachable server must not hold the exit.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(daemon.close(), CLOSE_TIMEOUT_S)


if __name__ == "__main__":
    sys.exit(main())
