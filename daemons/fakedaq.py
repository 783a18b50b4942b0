"""fakedaq: plays redax and the DAQ dispatcher, so the suite runs without a detector.

It writes a run's live_data in redax's layout and format and keeps its run document as the
dispatcher does (inserted at start, ``end`` and ``rate`` at the end, ``daq.aggregate_status``
rates while running), plus a truth file listing every injected S1 and S2. With ``--realtime`` a
DAQ chunk appears only once its time has passed since the run start, like a live run; otherwise
as fast as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymongo.errors import PyMongoError

from straxd.core.db import Databases, open_databases, utcnow
from straxd.core.errors import StraxdError
from straxd.core.lifecycle import EXIT_OK, EXIT_USAGE, serve, wait_for_stop
from straxd.core.logging import configure_logging, get_logger
from straxd.core.redax import LiveDataWriter, ReaderLayout, part_of
from straxd.core.rundoc import run_id_of
from straxd.core.settings import Settings, settings_for_cli
from straxd.core.synth import TRUTH_DTYPE, DetectorModel, Simulator

DETECTORS = ("tpc", "neutron_veto", "muon_veto")
PAYLOAD_BYTES = 220
# Fragments of a pulse still open at a window's end arrive with the next window: a chunk is only
# written once the generator is this far past its end.
WRITE_MARGIN_NS = 5_000_000
WINDOW_NS = 500_000_000
END_UPDATE_TIMEOUT_S = 300.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``fakedaq --help`` explains every flag)."""
    parser = argparse.ArgumentParser(
        prog="fakedaq",
        description="Write a simulated run as redax would: live_data under STRAXD_LIVE_DIR and "
        "the run document in the runs database of STRAXD_MONGO_URI / STRAXD_RUNS_DB.",
    )
    parser.add_argument("--run", type=int, required=True, help="run number (0..999999)")
    parser.add_argument("--duration-s", type=float, required=True, help="run length in seconds")
    parser.add_argument(
        "--rate-mbs",
        type=float,
        default=25.0,
        help="uncompressed raw_records MB per second of run time (default 25)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="write each DAQ chunk only once its time has passed, like a live run",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    parser.add_argument(
        "--detectors",
        default="tpc",
        help=f"comma-separated subset of {','.join(DETECTORS)} (default tpc)",
    )
    parser.add_argument("--mode", default="fakedaq", help="run mode written to the run document")
    parser.add_argument("--chunk-length-s", type=float, default=5.0, help="DAQ chunk length")
    parser.add_argument("--chunk-overlap-s", type=float, default=0.5, help="DAQ chunk overlap")
    parser.add_argument("--compressor", choices=("lz4", "blosc"), default="lz4")
    parser.add_argument("--readers", type=int, default=2, help="reader processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per reader process")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run of this number (document and live_data)",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="truth file (default <live_dir>/<run_id>-truth.json)",
    )
    parser.add_argument("--config", type=Path, default=None, help="straxd settings file (TOML)")
    args = parser.parse_args(argv)
    detectors = tuple(d for d in args.detectors.split(",") if d)
    unknown = sorted(set(detectors) - set(DETECTORS))
    if unknown or "tpc" not in detectors:
        parser.error(f"--detectors must include tpc and be among {DETECTORS}; got {args.detectors}")
    if not 0 <= args.run <= 999_999:
        parser.error("--run must be in 0..999999")
    if args.duration_s <= 0 or args.rate_mbs <= 0:
        parser.error("--duration-s and --rate-mbs must be positive")
    if args.chunk_overlap_s <= 0 or args.chunk_length_s <= args.chunk_overlap_s:
        parser.error("need 0 < --chunk-overlap-s < --chunk-length-s")
    args.detectors = detectors
    return args


def calibrate_event_rate(rate_mbs: float, seed: int, detectors: tuple[str, ...]) -> float:
    """The event rate giving ``rate_mbs``, from fixed-seed trial windows.

    Event sizes have a long tail (large S2s), so the trial uses a few hundred events.
    """
    window_ns, trial_rate_hz = 2_000_000_000, 100.0
    sizes = []
    for rate_hz in (0.0, trial_rate_hz):
        sim = Simulator(seed + 7919, rate_hz, detectors=detectors)
        sizes.append(sim.window(0, 0, window_ns).records.nbytes / 1e6 / (window_ns / 1e9))
    base, per_event = sizes[0], (sizes[1] - sizes[0]) / trial_rate_hz
    if rate_mbs <= base:
        return 0.0
    return (rate_mbs - base) / max(per_event, 1e-3)


@dataclass
class RunState:
    """Book-keeping of one fakedaq run."""

    number: int
    start: dt.datetime
    chunk_ns: int
    overlap_ns: int
    pending: list[np.ndarray] = field(default_factory=list)
    next_chunk: int = 0
    truth: list[np.ndarray] = field(default_factory=list)
    window_mb: list[float] = field(default_factory=list)

    @property
    def full_ns(self) -> int:
        """A DAQ chunk plus its overlap."""
        return self.chunk_ns + self.overlap_ns


async def _write_ready(state: RunState, writer: LiveDataWriter, upto_ns: int) -> None:
    """Write every DAQ chunk that ends before ``upto_ns``."""
    if not state.pending:
        return
    fragments = np.concatenate(state.pending)
    chunk, _ = part_of(fragments["time"], state.chunk_ns, state.overlap_ns)
    if len(chunk) and chunk.min() < state.next_chunk:
        raise StraxdError("a fragment arrived for a chunk already written (generator bug)")
    while (state.next_chunk + 1) * state.full_ns <= upto_ns:
        mine = chunk == state.next_chunk
        await asyncio.to_thread(writer.write_chunk, state.next_chunk, fragments[mine])
        get_logger().info("daq_chunk_written", chunk_i=state.next_chunk, fragments=int(mine.sum()))
        fragments, chunk = fragments[~mine], chunk[~mine]
        state.next_chunk += 1
    state.pending = [fragments]


async def _simulate(
    args: argparse.Namespace,
    state: RunState,
    writer: LiveDataWriter,
    dbs: Databases,
    stop: asyncio.Event,
) -> None:
    event_rate = calibrate_event_rate(args.rate_mbs, args.seed, args.detectors)
    sim = Simulator(args.seed, event_rate, DetectorModel(), detectors=args.detectors)
    duration_ns = int(args.duration_s * 1e9)
    started = time.monotonic()
    window_i = 0
    while window_i * WINDOW_NS < duration_ns and not stop.is_set():
        start, end = window_i * WINDOW_NS, min((window_i + 1) * WINDOW_NS, duration_ns)
        if args.realtime:
            await wait_for_stop(stop, started + end / 1e9 - time.monotonic())
        out = await asyncio.to_thread(sim.window, window_i, start, end)
        state.pending.append(out.records)
        state.truth.append(out.truth)
        state.window_mb.append(out.records.nbytes / 1e6 / ((end - start) / 1e9))
        await _report_rate(dbs, state, args.mode)
        await _write_ready(state, writer, end - WRITE_MARGIN_NS)
        window_i += 1
    state.pending.append((await asyncio.to_thread(sim.flush)).records)
    # The last DAQ chunk is the one the run's end falls in (pulses open at the end included).
    last_chunk = max(duration_ns - 1, 0) // state.full_ns
    leftover = np.concatenate(state.pending)
    if len(leftover):
        last_chunk = max(last_chunk, int(leftover["time"].max()) // state.full_ns)
    await _write_ready(state, writer, (last_chunk + 1) * state.full_ns)


async def _report_rate(dbs: Databases, state: RunState, mode: str) -> None:
    """One ``aggregate_status`` sample; a database outage skips it (the readers keep going)."""
    try:
        await dbs.aggregate_status.insert_one(
            {
                "number": state.number,
                "detector": "tpc",
                "rate": state.window_mb[-1],
                "time": utcnow(),
                "mode": mode,
            }
        )
    except PyMongoError as err:
        get_logger().warning("rate_not_reported", error=str(err)[:200])


async def _set_end(
    dbs: Databases, number: int, fields: dict[str, Any], stop: asyncio.Event
) -> None:
    """Set ``end`` and ``rate``, waiting out a database outage as the dispatcher would."""
    deadline = time.monotonic() + END_UPDATE_TIMEOUT_S
    while True:
        try:
            await dbs.runs.update_one({"number": number}, {"$set": fields})
            return
        except PyMongoError as err:
            if time.monotonic() > deadline:
                raise StraxdError(f"could not set the end of run {number}: {err}") from None
            get_logger().warning("end_not_set_yet", error=str(err)[:200])
            await wait_for_stop(stop, 1.0)


def _run_document(
    args: argparse.Namespace, start: dt.datetime, layout: ReaderLayout, live_dir: Path
) -> dict[str, Any]:
    return {
        "number": args.run,
        "name": run_id_of(args.run),
        "start": start,
        "mode": args.mode,
        "detectors": list(args.detectors),
        "daq_config": {
            "processing_threads": dict(layout.processing_threads),
            "compressor": args.compressor,
            "strax_fragment_payload_bytes": PAYLOAD_BYTES,
            "strax_chunk_length": args.chunk_length_s,
            "strax_chunk_overlap": args.chunk_overlap_s,
        },
        "data": [{"type": "live", "host": "daq", "location": str(live_dir)}],
        "tags": [],
        "status": None,
        "bootstrax": {},
    }


def _write_truth(path: Path, state: RunState, start_ns: int) -> None:
    truth = np.concatenate(state.truth) if state.truth else np.zeros(0, TRUTH_DTYPE)
    rows = [
        {
            name: int(row[name]) + (start_ns if name in ("time", "center_time", "endtime") else 0)
            for name in TRUTH_DTYPE.names or ()
        }
        for row in truth
    ]
    payload = {"run": state.number, "to_pe": DetectorModel().to_pe().tolist(), "signals": rows}
    path.write_text(json.dumps(payload))


async def run(args: argparse.Namespace, settings: Settings, stop: asyncio.Event) -> int:
    """Write one run; exit code 0, or 2 when the run exists already."""
    log = get_logger(run_id=run_id_of(args.run))
    dbs = open_databases(settings.runs_uri(), settings.daq_uri(), settings.runs_db, settings.daq_db)
    run_dir = settings.live_dir / run_id_of(args.run)
    try:
        if await dbs.runs.count_documents({"number": args.run}) or run_dir.exists():
            if not args.overwrite:
                log.error("run_exists", hint="pass --overwrite to replace it")
                return EXIT_USAGE
            await dbs.runs.delete_one({"number": args.run})
            shutil.rmtree(run_dir, ignore_errors=True)
        layout = ReaderLayout({f"reader{r}_reader_0": args.threads for r in range(args.readers)})
        start = utcnow().replace(microsecond=0)
        await dbs.runs.insert_one(_run_document(args, start, layout, settings.live_dir))
        state = RunState(
            args.run, start, int(args.chunk_length_s * 1e9), int(args.chunk_overlap_s * 1e9)
        )
        writer = LiveDataWriter(
            run_dir, layout, args.compressor, chunk_ns=state.chunk_ns, overlap_ns=state.overlap_ns
        )
        log.info("run_started", live_dir=str(run_dir), rate_mbs=args.rate_mbs)
        await _simulate(args, state, writer, dbs, stop)
        await asyncio.to_thread(writer.finish)
        truth = args.truth or settings.live_dir / f"{run_id_of(args.run)}-truth.json"
        await asyncio.to_thread(_write_truth, truth, state, int(start.timestamp()) * 10**9)
        rate = {"avg": float(np.mean(state.window_mb)), "max": float(np.max(state.window_mb))}
        end = start + dt.timedelta(seconds=args.duration_s)
        await _set_end(dbs, args.run, {"end": end, "rate": {"tpc": rate}}, stop)
        log.info(
            "run_finished", chunks=state.next_chunk, avg_mbs=round(rate["avg"], 1), truth=str(truth)
        )
        return EXIT_OK
    finally:
        await dbs.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``fakedaq`` console script."""
    args = parse_args(argv)
    settings = settings_for_cli("fakedaq", args.config)
    if settings is None:
        return EXIT_USAGE
    configure_logging("fakedaq", settings.host)
    return serve("fakedaq", None, lambda stop: run(args, settings, stop))


if __name__ == "__main__":
    sys.exit(main())
