"""``make demo``: the suite end to end on this machine, with a local database.

Starts a SecantusDB server (installed by ``make setup``) with its data under ``.demo/``, lets
fakedaq write a short run in real time as redax would, runs bootstrax in production mode while
the run is being taken (it claims the run, processes it live, registers the data and hands the
run on), then prints the run's final state, every data type with its row count, the event count
and where everything is. Every process is stopped on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo

DEMO_DIR = Path(".demo")
RUN_NUMBER = 1
RUNS_DB, DAQ_DB = "xenonnt", "daq"


@contextmanager
def local_database(data_dir: Path) -> Iterator[str]:
    """A SecantusDB server on a free loopback port, stopped when the block exits."""
    server = Path(sys.executable).with_name("secantusd-py")
    if not server.exists():
        raise SystemExit(f"{server} not found: run `make setup` first")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = data_dir.parent / "secantusd.toml"
    config.write_text("# demo: no settings\n")
    proc = subprocess.Popen(
        [str(server), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", str(data_dir.resolve()), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000).admin.command("ping")
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _daemon(
    module: str, args: Sequence[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"straxd.daemons.{module}", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for_run(
    runs: pymongo.collection.Collection[dict[str, Any]], writer: subprocess.Popen[bytes]
) -> None:
    """Until fakedaq has inserted the run document (or died trying)."""
    deadline = time.monotonic() + 120
    while runs.count_documents({"number": RUN_NUMBER}) == 0:
        if writer.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("fakedaq did not start the run; see .demo/logs/fakedaq.log")
        time.sleep(0.2)


def _summary(location: str) -> tuple[int, float, str]:
    """Rows, compression ratio and compressor of a stored folder (from its metadata)."""
    folder = Path(location)
    metadata = json.loads(next(folder.glob("*-metadata.json")).read_text())
    chunks = metadata["chunks"]
    raw = sum(int(c.get("nbytes", 0)) for c in chunks)
    packed = sum(int(c.get("filesize", 0)) for c in chunks)
    rows = sum(int(c.get("n", 0)) for c in chunks)
    return rows, raw / packed if packed else 0.0, metadata["compressor"]


def run_demo(uri: str, seconds: float, rate_mbs: float) -> dict[str, Any]:
    """fakedaq takes a realtime run, bootstrax processes it live, restrax rewrites it.

    Returns the run document after bootstrax (``before``) and after restrax (``after``).
    """
    env = {
        **os.environ,
        "STRAXD_MONGO_URI": uri,
        "STRAXD_RUNS_DB": RUNS_DB,
        "STRAXD_DAQ_DB": DAQ_DB,
        "STRAXD_LIVE_DIR": str((DEMO_DIR / "live_data").resolve()),
        "STRAXD_PRE_DIR": str((DEMO_DIR / "pre_processed").resolve()),
        "STRAXD_STATE_DIR": str((DEMO_DIR / "state").resolve()),
        "STRAXD_OUTPUT_DIR": str((DEMO_DIR / "xenonnt_processed").resolve()),
        "STRAXD_UNREGISTERED_DIR": str((DEMO_DIR / "unregistered").resolve()),
        "STRAXD_HOST": "demo-eb",
    }
    logs = DEMO_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, tz_aware=True)
    runs = client[RUNS_DB]["runs"]
    writer = _daemon(
        "fakedaq",
        ["--run", str(RUN_NUMBER), "--duration-s", str(seconds), "--rate-mbs", str(rate_mbs),
         "--realtime", "--seed", "7"],
        env,
        logs / "fakedaq.log",
    )  # fmt: skip
    bootstrax = None
    try:
        _wait_for_run(runs, writer)
        print(f"fakedaq is taking run {RUN_NUMBER:06d} ({seconds:.0f} s at {rate_mbs:.0f} MB/s)")
        bootstrax = _daemon(
            "bootstrax", ["--production", "--once", "--cores", "2"], env, logs / "bootstrax.log"
        )
        print("bootstrax is processing it live ...")
        writer_code, bootstrax_code = writer.wait(), bootstrax.wait()
        if writer_code or bootstrax_code:
            raise SystemExit(
                f"fakedaq exited {writer_code}, bootstrax {bootstrax_code}; see {logs.resolve()}"
            )
        before = runs.find_one({"number": RUN_NUMBER})
        assert before is not None
        # Read before restrax: it removes these folders once its copies are registered.
        live = {
            e["type"]: _summary(e["location"])
            for e in before.get("data", [])
            if e.get("type") != "live"
        }
        print("restrax is rechunking and recompressing it into the production folder ...")
        restrax = _daemon("restrax", ["--production", "--once"], env, logs / "restrax.log")
        if restrax.wait():
            raise SystemExit(f"restrax exited {restrax.returncode}; see {logs.resolve()}")
        after = runs.find_one({"number": RUN_NUMBER})
        assert after is not None
        return {"before": before, "after": after, "bootstrax_output": live}
    finally:
        for proc in (writer, bootstrax):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        client.close()


def report(
    before: dict[str, Any], after: dict[str, Any], live: dict[str, tuple[int, float, str]]
) -> None:
    """Final state, each type with rows and compression before/after restrax, the places."""
    bx, rx = before.get("bootstrax") or {}, after.get("restrax") or {}
    new = {e["type"]: e["location"] for e in after.get("data", []) if e.get("type") != "live"}
    print()
    print("straxd demo finished")
    print(f"  run {RUN_NUMBER:06d}: bootstrax.state={bx.get('state')} "
          f"restrax.state={rx.get('state')} status={after.get('status')}")  # fmt: skip
    print(f"  processed live by {bx.get('host')}; rewritten with peak memory "
          f"{(rx.get('memory_usage_mb') or {}).get('max', 0):.0f} MB")  # fmt: skip
    print(f"    {'data type':<24} {'rows':>9}  {'bootstrax':>16}  {'restrax':>16}")
    for data_type in sorted(new):
        rows, ratio_before, codec_before = live[data_type]
        _, ratio_after, codec_after = _summary(new[data_type])
        if not rows:
            print(f"    {data_type:<24} {rows:>9}  (no rows)")
            continue
        print(f"    {data_type:<24} {rows:>9}  {codec_before:>5} x{ratio_before:>6.2f}    "
              f"{codec_after:>5} x{ratio_after:>6.2f}")  # fmt: skip
    events = _summary(new["event_info"])[0] if "event_info" in new else 0
    print(f"  events: {events}")
    print(f"  production folder: {Path(next(iter(new.values()))).parent if new else 'none'}")
    if "event_info" in new:
        print(f'  load it:   {sys.executable} -c "import strax; '
              f"print(len(strax.io.dry_load_files('{new['event_info']}')))\"")  # fmt: skip
    print(f"  logs:      {(DEMO_DIR / 'logs').resolve()} (daemons), "
          f"{(DEMO_DIR / 'state' / 'runs').resolve()} (per-run child logs)")  # fmt: skip
    print(f"  database:  {(DEMO_DIR / 'mongo').resolve()} (runs, online_monitor, daq.log, "
          "daq.straxd_status, daq.eb_monitor)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make demo``."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="run length (default 20)")
    parser.add_argument("--rate-mbs", type=float, default=10.0, help="data rate (default 10)")
    args = parser.parse_args(argv)
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    (DEMO_DIR / "mongo").mkdir(parents=True)
    with local_database(DEMO_DIR / "mongo") as uri:
        result = run_demo(uri, args.seconds, args.rate_mbs)
    report(result["before"], result["after"], result["bootstrax_output"])
    return 0 if result["after"].get("status") == "eb_ready_to_upload" else 1


if __name__ == "__main__":
    sys.exit(main())
