"""bootstrax across database outages, and on a server without change streams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons.bootstrax_env import Daq
from tests.daemons.test_bootstrax import ONCE, check_consistent
from tests.dbserver import MongoProcess

OUTAGE_S = 20


@pytest.fixture
def outage_daq(tmp_path: Path, mongo_process: MongoProcess) -> Iterator[Daq]:
    d = Daq(tmp_path, mongo_process.uri, "xenonnt", "daq")
    yield d
    d.close()


class TestOutage:
    def test_server_down_20s_during_processing(
        self, outage_daq: Daq, mongo_process: MongoProcess
    ) -> None:
        """bootstrax rides out the outage, reopens its change stream and finishes both runs."""
        daq = outage_daq
        writer = daq.fakedaq_live(5, seconds=30, rate=4)
        host = daq.host("eb1")
        daq.wait_state(5, "busy", timeout_s=90)
        mongo_process.stop()
        mongo_process.wait_stopped()
        time.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
        assert host.proc.poll() is None, host.output()[-3000:]
        mongo_process.start()
        daq.fakedaq(6, seconds=2, rate=3)
        daq.wait_state(5, "done", timeout_s=300)
        daq.wait_state(6, "done", timeout_s=120)
        assert writer.wait(timeout=120) == 0
        check_consistent(daq, 5, "eb1")
        check_consistent(daq, 6, "eb1")
        output = host.output()
        assert output.count('"runs_watch_open"') >= 2, "change stream not reopened"
        assert '"heartbeat_failed"' in output
        assert daq.bx(5)["epoch"] == 1  # never lost, never taken over
        host.stop()
        assert host.proc.returncode == 0


class TestStandalone:
    def test_claims_by_polling_without_change_streams(self, tmp_path: Path) -> None:
        """On a standalone server (no change streams) runs are still claimed, by polling."""
        server = MongoProcess(tmp_path / "standalone-db", standalone=True)
        server.start()
        daq = Daq(tmp_path, server.uri, "xenonnt", "daq")
        try:
            host = daq.host("eb1")
            daq.fakedaq(7, seconds=2, rate=3)
            daq.wait_state(7, "done", timeout_s=120)
            check_consistent(daq, 7, "eb1")
            host.stop()
            assert '"runs_watch_unavailable"' in host.output()
            assert '"runs_watch_open"' not in host.output()
        finally:
            daq.close()
            server.kill()


def test_once_exits_0_when_there_is_nothing(tmp_path: Path, mongo_uri: str) -> None:
    """--once with no work exits 0 at once."""
    daq = Daq(tmp_path, mongo_uri, "runs_once_empty", "daq_once_empty")
    try:
        done = daq.bootstrax("eb1", *ONCE)
        assert done.returncode == 0, done.stdout[-2000:]
    finally:
        daq.client.drop_database("runs_once_empty")
        daq.client.drop_database("daq_once_empty")
        daq.close()
