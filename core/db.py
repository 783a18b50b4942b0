"""MongoDB access: clients, the runs and daq databases, time.

All datetimes straxd writes or reads are timezone-aware UTC: the clients are created with
``tz_aware=True`` and naive datetimes handed to straxd are taken to be UTC (``as_utc``), which is
what the DAQ dispatcher and the original scripts write. Credentials are never logged: use
``redact_uri`` for anything that shows a URI.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Collection = AsyncCollection[Document]

# Generous but finite: an outage makes calls fail within seconds instead of hanging a daemon.
SERVER_SELECTION_TIMEOUT_MS = 10_000

_CREDENTIALS = re.compile(r"(?P<scheme>mongodb(?:\+srv)?://)[^@/]*@")


def redact_uri(uri: str) -> str:
    """The URI with any ``user:password@`` replaced, safe for logs."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", uri)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC, truncated to milliseconds as MongoDB stores it."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A timezone-aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def connect(uri: str, **options: Any) -> Client:
    """An async client that returns timezone-aware UTC datetimes."""
    settings: dict[str, Any] = {
        "tz_aware": True,
        "tzinfo": dt.UTC,
        "serverSelectionTimeoutMS": SERVER_SELECTION_TIMEOUT_MS,
        **options,
    }
    return AsyncMongoClient(uri, **settings)


@dataclass
class Databases:
    """The two databases straxd talks to, as the original scripts' ``DataBases``."""

    runs_client: Client
    daq_client: Client
    runs_db_name: str = "xenonnt"
    daq_db_name: str = "daq"

    @property
    def runs_db(self) -> AsyncDatabase[Document]:
        """The runs database."""
        return self.runs_client[self.runs_db_name]

    @property
    def daq_db(self) -> AsyncDatabase[Document]:
        """The daq database."""
        return self.daq_client[self.daq_db_name]

    @property
    def runs(self) -> Collection:
        """``runs``: one document per run."""
        return self.runs_db["runs"]

    @property
    def online_monitor(self) -> Collection:
        """``online_monitor`` in the runs database (strax MongoSaver documents)."""
        return self.runs_db["online_monitor"]

    @property
    def log(self) -> Collection:
        """``daq.log``: messages for operators, in redax's shape."""
        return self.daq_db["log"]

    @property
    def eb_monitor(self) -> Collection:
        """``daq.eb_monitor``: insert-only heartbeat history."""
        return self.daq_db["eb_monitor"]

    @property
    def status(self) -> Collection:
        """``daq.straxd_status``: current status, one document per (service, host)."""
        return self.daq_db["straxd_status"]

    @property
    def aggregate_status(self) -> Collection:
        """``daq.aggregate_status``: DAQ rates written by the dispatcher."""
        return self.daq_db["aggregate_status"]

    def config_collection(self, service: str) -> Collection:
        """``daq.<service>_config``: the runtime config document of one service."""
        return self.daq_db[f"{service}_config"]

    async def close(self) -> None:
        """Close the clients (once each)."""
        await self.runs_client.close()
        if self.daq_client is not self.runs_client:
            await self.daq_client.close()


def open_databases(
    runs_uri: str, daq_uri: str, runs_db: str = "xenonnt", daq_db: str = "daq"
) -> Databases:
    """Clients for the runs and daq databases (one client when the URIs are equal)."""
    runs_client = connect(runs_uri)
    daq_client = runs_client if daq_uri == runs_uri else connect(daq_uri)
    return Databases(runs_client, daq_client, runs_db, daq_db)


async def ensure_indexes(dbs: Databases) -> None:
    """Indexes on straxd-owned collections only; the runs collection is never touched."""
    await dbs.status.create_index([("service", 1), ("host", 1)], unique=True)
