"""Shared fixtures: a real MongoDB-protocol server (SecantusDB) and a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from secantus import SecantusDBServer

from straxd.core.db import Databases, connect
from tests.dbserver import MongoProcess


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One in-process SecantusDB server for the whole session (never mocked, never skipped)."""
    storage = tmp_path_factory.mktemp("secantus")
    with SecantusDBServer(storage_path=str(storage)) as server:
        yield str(server.uri)


@dataclass
class DbNames:
    """Database names unique to one test."""

    runs_db: str
    daq_db: str


@pytest.fixture
def db_names() -> DbNames:
    """Fresh database names for this test."""
    tag = uuid.uuid4().hex[:10]
    return DbNames(runs_db=f"runs_{tag}", daq_db=f"daq_{tag}")


@pytest.fixture
async def dbs(mongo_uri: str, db_names: DbNames) -> AsyncIterator[Databases]:
    """The runs and daq databases of this test, dropped afterwards."""
    client: AsyncMongoClient[dict[str, object]] = connect(mongo_uri)
    databases = Databases(client, client, db_names.runs_db, db_names.daq_db)
    try:
        yield databases
    finally:
        await client.drop_database(db_names.runs_db)
        await client.drop_database(db_names.daq_db)
        await client.close()


@pytest.fixture
def mongo_process(tmp_path: Path) -> Iterator[MongoProcess]:
    """SecantusDB as its own process with on-disk storage; the test may stop/kill/restart it."""
    server = MongoProcess(tmp_path / "mongo-data")
    server.start()
    try:
        yield server
    finally:
        server.kill()
