"""``make demo``: the end-to-end slice that exists so far, on a local database.

Starts a SecantusDB server (installed by ``make setup``) with its data under ``.demo/``, inserts a
run document as the DAQ dispatcher would, streams a short synthetic run of raw_records through
the pipeline into the strax file format, registers the data in the run document, reads it back,
and prints where everything is. The server is stopped on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pymongo

from straxd.core.chunk import Chunk
from straxd.core.daqlog import heartbeat, log_to_daq
from straxd.core.db import Databases, ensure_indexes, open_databases
from straxd.core.dtypes import raw_record_dtype
from straxd.core.filestore import FileStore
from straxd.core.logging import configure_logging, get_logger
from straxd.core.pipeline import Pipeline
from straxd.core.plugin import Option, Registry, RunInPool, SourcePlugin
from straxd.core.rundoc import FILE_PROTOCOL, DataEntry, register_data, run_id_of
from straxd.core.storage_read import open_data

DEMO_DIR = Path(".demo")
RUN_NUMBER = 1
CHUNK_NS = 1_000_000_000


class DemoPulses(SourcePlugin):
    """Synthetic digitizer fragments: random single-fragment pulses in 494 channels."""

    provides = ("raw_records",)
    compressor = "lz4"
    rechunk_on_save = False
    options = (
        Option("run_start_ns", 0, "run start", track=False),
        Option("n_chunks", 5, "chunks of 1 s", track=False),
        Option("pulses_per_chunk", 20_000, "fragments per chunk", track=False),
    )

    def infer_dtype(self) -> np.dtype[Any]:
        return raw_record_dtype()

    def _make(self, chunk_i: int) -> np.ndarray:
        rng = np.random.default_rng(chunk_i)
        n = self.config["pulses_per_chunk"]
        start = self.config["run_start_ns"] + chunk_i * CHUNK_NS
        data = np.zeros(n, raw_record_dtype())
        data["time"] = np.sort(rng.integers(start, start + CHUNK_NS - 2000, n)) // 10 * 10
        data["length"] = data["pulse_length"] = 110
        data["dt"] = 10
        data["channel"] = rng.integers(0, 494, n)
        data["data"] = rng.normal(16000, 3, (n, 110)).astype(np.int16)
        return data

    async def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, Chunk]]:
        """One chunk per second of run time, generated in the pool."""
        for chunk_i in range(self.config["n_chunks"]):
            data = await run_in_pool(self._make, chunk_i)
            start = self.config["run_start_ns"] + chunk_i * CHUNK_NS
            yield {
                "raw_records": Chunk(
                    "raw_records",
                    "raw_records",
                    run_id_of(RUN_NUMBER),
                    start,
                    start + CHUNK_NS,
                    data,
                )
            }


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
        [
            str(server),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data_dir.resolve()),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


async def run_demo(uri: str, pre_dir: Path) -> dict[str, Any]:
    """Insert a run, process it, register it, read it back; return a summary."""
    log = get_logger()
    dbs: Databases = open_databases(uri, uri, "xenonnt", "daq")
    await ensure_indexes(dbs)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await dbs.runs.insert_one(
        {
            "number": RUN_NUMBER,
            "name": run_id_of(RUN_NUMBER),
            "mode": "demo",
            "detectors": ["tpc"],
            "start": start,
            "end": start + dt.timedelta(seconds=5),
            "data": [],
            "bootstrax": {},
        }
    )
    await heartbeat(dbs, "demo", "localhost", "busy", config_hash="none")
    source = DemoPulses({"run_start_ns": int(start.timestamp()) * 10**9})
    registry = Registry([source])
    store = FileStore(pre_dir, run_id_of(RUN_NUMBER))
    with ThreadPoolExecutor(2) as pool:
        report = await Pipeline(registry, store, run_id_of(RUN_NUMBER), ["raw_records"], pool).run()
    folder = store.folder("raw_records", registry.lineage_hash("raw_records"))
    stored = await asyncio.to_thread(open_data, folder)
    rows = len(await asyncio.to_thread(stored.load_all))
    await register_data(
        dbs.runs,
        RUN_NUMBER,
        DataEntry(
            type="raw_records",
            host="localhost",
            location=str(folder.resolve()),
            protocol=FILE_PROTOCOL,
            meta={
                "lineage_hash": stored.metadata["lineage_hash"],
                "lineage": stored.metadata["lineage"],
            },
        ),
    )
    await log_to_daq(
        dbs, f"demo run {RUN_NUMBER} processed", level="info", user="demo", run_number=RUN_NUMBER
    )
    await heartbeat(dbs, "demo", "localhost", "idle", config_hash="none")
    log.info("demo_done", rows=rows, wall_s=round(report.wall_s, 2))
    await dbs.close()
    return {
        "folder": folder.resolve(),
        "rows": rows,
        "chunks": stored.n_chunks,
        "mb": report.types["raw_records"].nbytes / 1e6,
        "wall_s": report.wall_s,
    }


def main() -> int:
    """Entry point of ``make demo``."""
    configure_logging("demo", "localhost")
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    (DEMO_DIR / "mongo").mkdir(parents=True)
    pre_dir = DEMO_DIR / "pre_processed"
    with local_database(DEMO_DIR / "mongo") as uri:
        summary = asyncio.run(run_demo(uri, pre_dir))
    print()
    print("straxd demo finished")
    print(
        f"  run 000001: {summary['rows']} raw_records rows ({summary['mb']:.0f} MB) in "
        f"{summary['chunks']} chunks, written in {summary['wall_s']:.1f} s"
    )
    print(f"  data:      {summary['folder']}")
    print(
        f'  load it:   {sys.executable} -c "import strax; print(len(strax.io.dry_load_files('
        f"'{summary['folder']}')))\""
    )
    print(
        f"  database:  {DEMO_DIR.resolve() / 'mongo'} (run document with its data entry, "
        "daq.log, daq.straxd_status)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
