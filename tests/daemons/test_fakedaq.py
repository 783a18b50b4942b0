"""fakedaq as a process: redax layout, run document, rates, truth, determinism, bad usage."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import lz4.frame
import numpy as np
import pymongo
import pytest

from straxd.core.dtypes import raw_record_dtype
from tests.conftest import DbNames


def run_fakedaq(
    args: list[str], live_dir: Path, uri: str, names: DbNames
) -> subprocess.CompletedProcess[str]:
    """fakedaq in its own process, configured through the environment as in production."""
    env = {
        **os.environ,
        "STRAXD_MONGO_URI": uri,
        "STRAXD_RUNS_DB": names.runs_db,
        "STRAXD_DAQ_DB": names.daq_db,
        "STRAXD_LIVE_DIR": str(live_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "straxd.daemons.fakedaq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def load_dir(path: Path) -> np.ndarray:
    """All fragments of one live_data directory."""
    parts = [
        np.frombuffer(lz4.frame.decompress(f.read_bytes()), raw_record_dtype())
        for f in sorted(path.iterdir())
        if f.stat().st_size
    ]
    return np.concatenate(parts) if parts else np.zeros(0, raw_record_dtype())


@pytest.fixture
def db(mongo_uri: str, db_names: DbNames) -> pymongo.database.Database:  # type: ignore[type-arg]
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_uri, tz_aware=True)
    yield client[db_names.runs_db]
    client.drop_database(db_names.runs_db)
    client.drop_database(db_names.daq_db)
    client.close()


class TestFakedaq:
    def test_writes_redax_layout_and_run_document(
        self, tmp_path: Path, mongo_uri: str, db_names: DbNames, db: pymongo.database.Database
    ) -> None:
        """A 12 s run: every chunk directory with one file per thread, THE_END, run doc, truth."""
        done = run_fakedaq(
            ["--run", "5", "--duration-s", "12", "--rate-mbs", "6", "--seed", "3"],
            tmp_path,
            mongo_uri,
            db_names,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        run_dir = tmp_path / "000005"
        names = sorted(p.name for p in run_dir.iterdir())
        assert names == [
            "000000",
            "000000_post",
            "000001",
            "000001_post",
            "000001_pre",
            "000002",
            "000002_post",
            "000002_pre",
            "000003_pre",
            "THE_END",
        ]
        for directory in run_dir.iterdir():
            files = sorted(p.name for p in directory.iterdir())
            assert files == [f"reader{r}_reader_0_{t}" for r in range(2) for t in range(4)]
        assert (run_dir / "000001_post" / "reader0_reader_0_0").read_bytes() == (
            run_dir / "000002_pre" / "reader0_reader_0_0"
        ).read_bytes()
        doc = db.runs.find_one({"number": 5})
        assert doc["name"] == "000005" and doc["start"].microsecond == 0
        assert (doc["end"] - doc["start"]).total_seconds() == 12
        assert doc["daq_config"]["strax_fragment_payload_bytes"] == 220
        assert doc["daq_config"]["processing_threads"] == {
            "reader0_reader_0": 4,
            "reader1_reader_0": 4,
        }
        assert doc["data"] == [{"type": "live", "host": "daq", "location": str(tmp_path)}]
        assert 0.9 * 6 < doc["rate"]["tpc"]["avg"] < 1.1 * 6
        client = db.client
        assert client[db_names.daq_db].aggregate_status.count_documents({"number": 5}) == 24
        # every fragment exactly once: central + post of each chunk (pre duplicates post)
        total = sum(
            len(load_dir(run_dir / n)) for n in names if n[:6].isdigit() and not n.endswith("_pre")
        )
        assert total * 244 / 12 / 1e6 == pytest.approx(doc["rate"]["tpc"]["avg"], rel=0.02)
        truth = json.loads((tmp_path / "000005-truth.json").read_text())
        assert len(truth["to_pe"]) == 494
        s2s = [s for s in truth["signals"] if s["type"] == 2]
        assert s2s and all(s["time"] >= int(doc["start"].timestamp()) * 10**9 for s in s2s)

    def test_fragments_land_in_their_time_window(
        self, tmp_path: Path, mongo_uri: str, db_names: DbNames, db: pymongo.database.Database
    ) -> None:
        """Each fragment starts inside the window of the directory it is in."""
        assert (
            run_fakedaq(
                ["--run", "6", "--duration-s", "7", "--rate-mbs", "3"],
                tmp_path,
                mongo_uri,
                db_names,
            ).returncode
            == 0
        )
        full, overlap = 5_500_000_000, 500_000_000
        for i in range(2):
            central = load_dir(tmp_path / "000006" / f"{i:06d}")
            post = load_dir(tmp_path / "000006" / f"{i:06d}_post")
            assert np.all(
                (central["time"] >= i * full) & (central["time"] < (i + 1) * full - overlap)
            )
            assert np.all(
                (post["time"] >= (i + 1) * full - overlap) & (post["time"] < (i + 1) * full)
            )

    def test_same_seed_same_bytes(
        self, tmp_path: Path, mongo_uri: str, db_names: DbNames, db: pymongo.database.Database
    ) -> None:
        """Two runs with one seed write identical live_data."""
        digests = []
        for number in (7, 8):
            live = tmp_path / str(number)
            assert (
                run_fakedaq(
                    ["--run", str(number), "--duration-s", "3", "--rate-mbs", "3", "--seed", "11"],
                    live,
                    mongo_uri,
                    db_names,
                ).returncode
                == 0
            )
            run_dir = live / f"{number:06d}"
            digest = hashlib.sha256()
            for path in sorted(run_dir.rglob("*")):
                if path.is_file():
                    digest.update(path.relative_to(run_dir).as_posix().encode() + path.read_bytes())
            digests.append(digest.hexdigest())
        assert digests[0] == digests[1]

    def test_existing_run_refused_unless_overwrite(
        self, tmp_path: Path, mongo_uri: str, db_names: DbNames, db: pymongo.database.Database
    ) -> None:
        """Reusing a run number exits 2 and changes nothing; --overwrite replaces it."""
        args = ["--run", "9", "--duration-s", "1", "--rate-mbs", "2"]
        assert run_fakedaq(args, tmp_path, mongo_uri, db_names).returncode == 0
        before = db.runs.find_one({"number": 9})
        again = run_fakedaq(args, tmp_path, mongo_uri, db_names)
        assert again.returncode == 2
        assert "run_exists" in again.stdout
        assert db.runs.find_one({"number": 9}) == before
        assert run_fakedaq([*args, "--overwrite"], tmp_path, mongo_uri, db_names).returncode == 0
        assert db.runs.count_documents({"number": 9}) == 1

    @pytest.mark.parametrize(
        "bad",
        [
            ["--duration-s", "1"],
            ["--run", "1", "--duration-s", "-1"],
            ["--run", "1", "--duration-s", "1", "--detectors", "muon_veto"],
            ["--run", "1", "--duration-s", "1", "--chunk-overlap-s", "9"],
        ],
    )
    def test_bad_usage_exits_2(
        self, tmp_path: Path, mongo_uri: str, db_names: DbNames, bad: list[str]
    ) -> None:
        """Missing or wrong arguments exit 2 with a message and write nothing."""
        done = run_fakedaq(bad, tmp_path, mongo_uri, db_names)
        assert done.returncode == 2
        assert "fakedaq: error" in done.stderr
        assert not any(tmp_path.iterdir())


class TestRealtime:
    def test_chunks_appear_as_time_passes(
        self, tmp_path: Path, mongo_uri: str, db_names: DbNames, db: pymongo.database.Database
    ) -> None:
        """--realtime: chunk 0 is on disk while the run is still being taken (no THE_END yet)."""
        env = {
            **os.environ,
            "STRAXD_MONGO_URI": mongo_uri,
            "STRAXD_RUNS_DB": db_names.runs_db,
            "STRAXD_DAQ_DB": db_names.daq_db,
            "STRAXD_LIVE_DIR": str(tmp_path),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "straxd.daemons.fakedaq",
                "--run",
                "12",
                "--duration-s",
                "6",
                "--rate-mbs",
                "2",
                "--realtime",
                "--chunk-length-s",
                "1",
                "--chunk-overlap-s",
                "0.2",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first_chunk_line = next(line for line in proc.stdout if '"daq_chunk_written"' in line)
        assert json.loads(first_chunk_line)["chunk_i"] == 0
        run_dir = tmp_path / "000012"
        assert (run_dir / "000000").is_dir()
        assert not (run_dir / "THE_END").exists()
        assert db.runs.find_one({"number": 12}).get("end") is None  # still running
        proc.stdout.read()
        assert proc.wait(timeout=60) == 0
        assert (run_dir / "THE_END").is_dir()
        assert db.runs.find_one({"number": 12})["end"] is not None
