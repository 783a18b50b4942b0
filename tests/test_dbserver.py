"""The stoppable SecantusDB process used for outage tests."""

from __future__ import annotations

import pymongo
import pytest

from tests.dbserver import MongoProcess


def _client(server: MongoProcess) -> pymongo.MongoClient[dict[str, object]]:
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=2000)


class TestMongoProcess:
    def test_data_survives_stop_and_restart_on_same_port(self, mongo_process: MongoProcess) -> None:
        """1. write; 2. SIGTERM; 3. calls fail; 4. restart on the same port; 5. data and index."""
        client = _client(mongo_process)
        client.xenonnt.runs.insert_one({"number": 7})
        client.xenonnt.runs.create_index("number", unique=True)
        port = mongo_process.port
        mongo_process.stop()
        assert not mongo_process.running
        with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
            client.xenonnt.runs.find_one({"number": 7})
        mongo_process.start()
        assert mongo_process.port == port
        assert client.xenonnt.runs.find_one({"number": 7})["number"] == 7
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            client.xenonnt.runs.insert_one({"number": 7})
        client.close()

    def test_restart_after_kill(self, mongo_process: MongoProcess) -> None:
        """After SIGKILL the server restarts on the same port and serves again.

        SecantusDB may lose writes not yet checkpointed when it is killed (even with
        --sync-on-commit), so only availability is checked here.
        """
        client = _client(mongo_process)
        client.xenonnt.runs.insert_one({"number": 1})
        mongo_process.kill()
        mongo_process.start()
        client.xenonnt.runs.insert_one({"number": 2})
        assert client.xenonnt.runs.find_one({"number": 2}) is not None
        client.close()
