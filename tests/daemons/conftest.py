"""Fixtures of the daemon tests: a pretend DAQ (database, live_data, bootstrax hosts) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DbNames
from tests.daemons.bootstrax_env import Daq


@pytest.fixture
def daq(tmp_path: Path, mongo_uri: str, db_names: DbNames) -> Iterator[Daq]:
    """Fresh databases and folders; every bootstrax started is stopped afterwards."""
    d = Daq(tmp_path, mongo_uri, db_names.runs_db, db_names.daq_db)
    yield d
    d.client.drop_database(db_names.runs_db)
    d.client.drop_database(db_names.daq_db)
    d.close()
