"""Run documents: round trips that lose nothing, data entries, deletions, daq.log, heartbeats."""

from __future__ import annotations

import datetime as dt

import pytest

from straxd.core.daqlog import current_status, heartbeat, log_to_daq, priority_of
from straxd.core.db import Databases, ensure_indexes, redact_uri
from straxd.core.errors import BadInput
from straxd.core.rundoc import (
    FILE_PROTOCOL,
    DataEntry,
    get_run,
    move_to_deleted,
    parse_run,
    parse_run_doc,
    register_data,
    run_id_of,
    update_data,
)

RUN_DOC = {
    "number": 51234,
    "name": "051234",
    "mode": "tpc_bkg",
    "detectors": ["tpc", "neutron_veto"],
    "start": dt.datetime(2026, 1, 1, 12, 0, 0),  # naive: the DAQ writes UTC
    "daq_config": {
        "processing_threads": {"reader0_reader_0": 8},
        "compressor": "lz4",
        "strax_fragment_payload_bytes": 220,
        "strax_chunk_length": 5.0,
        "strax_chunk_overlap": 0.5,
        "board_list": [{"link": 0, "crate": 1}],
    },
    "data": [{"type": "live", "host": "daq", "location": "/live_data/xenonnt"}],
    "shifter_comment": {"text": "flaky PMT 12", "nested": {"deep": [1, 2]}},
    "tags": [{"name": "hold-processing", "user": "x"}],
}


class TestRunIds:
    @pytest.mark.parametrize(
        ("given", "number"), [("11", 11), ("000011", 11), (11, 11), (" 7 ", 7)]
    )
    def test_parse(self, given: str | int, number: int) -> None:
        """Run numbers parse from plain and zero-padded forms."""
        assert parse_run(given) == number
        assert run_id_of(number) == f"{number:06d}"

    @pytest.mark.parametrize("bad", ["11a", "-1", "1234567", "", "_11"])
    def test_bad_run_refused(self, bad: str) -> None:
        """Anything else is refused with the value shown."""
        with pytest.raises(BadInput, match="invalid run"):
            parse_run(bad)


class TestRunDocModel:
    def test_round_trip_keeps_unknown_fields(self) -> None:
        """Fields straxd does not know, nested ones too, survive a round trip."""
        doc = parse_run_doc(RUN_DOC)
        back = doc.to_mongo()
        assert back["shifter_comment"] == RUN_DOC["shifter_comment"]
        assert back["daq_config"]["board_list"] == [{"link": 0, "crate": 1}]
        assert doc.start is not None
        assert doc.start.tzinfo == dt.UTC
        assert doc.has_tag("hold-processing")
        assert not doc.has_tag("abandon")
        assert doc.run_id == "051234"

    def test_malformed_document_is_bad_input(self) -> None:
        """A wrong type names the run and the field."""
        with pytest.raises(BadInput, match="run 5: malformed run document: detectors"):
            parse_run_doc({"number": 5, "detectors": "tpc"})

    async def test_stored_and_read_back(self, dbs: Databases) -> None:
        """Written and read through the database, with tz-aware UTC datetimes."""
        await dbs.runs.insert_one(dict(RUN_DOC))
        doc = await get_run(dbs.runs, 51234)
        assert doc is not None
        assert doc.start == dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
        assert doc.model_extra is not None
        assert doc.model_extra["shifter_comment"]["text"] == "flaky PMT 12"
        assert await get_run(dbs.runs, 1) is None


class TestDataEntries:
    async def test_register_update_and_replace(self, dbs: Databases) -> None:
        """Register adds once per (type, host); update changes fields of that entry only."""
        await dbs.runs.insert_one(dict(RUN_DOC))
        entry = DataEntry(
            type="raw_records",
            host="eb3",
            location="/data/pre/051234-raw_records-rfzvpzj4mf",
            protocol=FILE_PROTOCOL,
            meta={"lineage_hash": "rfzvpzj4mf"},
        )
        await register_data(dbs.runs, 51234, entry)
        await register_data(dbs.runs, 51234, entry)  # idempotent
        assert await update_data(dbs.runs, 51234, "raw_records", "eb3", {"meta.size_mb": 12.5})
        assert not await update_data(dbs.runs, 51234, "raw_records", "eb9", {"location": "x"})
        doc = await dbs.runs.find_one({"number": 51234})
        assert [d["type"] for d in doc["data"]] == ["live", "raw_records"]
        assert doc["data"][1]["meta"] == {"lineage_hash": "rfzvpzj4mf", "size_mb": 12.5}
        assert doc["data"][1]["protocol"] == "FileSytemBackend"

    async def test_register_on_missing_run(self, dbs: Databases) -> None:
        """Registering on a run that does not exist is an error naming the run."""
        with pytest.raises(BadInput, match="run 3 does not exist"):
            await register_data(dbs.runs, 3, DataEntry(type="records", host="eb3"))

    async def test_move_to_deleted_is_idempotent_after_crash(self, dbs: Databases) -> None:
        """A crash after recording the deletion is completed by a rerun, with one record."""
        await dbs.runs.insert_one(dict(RUN_DOC))
        # Simulate the first step done and the second lost: record present, entry still there.
        record = {"type": "live", "host": "daq", "by": "eb3", "reason": "processed", "at": 0}
        await dbs.runs.update_one({"number": 51234}, {"$push": {"deleted_data": record}})
        assert await move_to_deleted(dbs.runs, 51234, "live", "daq", by="eb3", reason="processed")
        doc = await dbs.runs.find_one({"number": 51234})
        assert doc["data"] == []
        assert len(doc["deleted_data"]) == 1
        assert not await move_to_deleted(
            dbs.runs, 51234, "live", "daq", by="eb3", reason="processed"
        )

    async def test_move_to_deleted_records_who_and_why(self, dbs: Databases) -> None:
        """The record drops location/meta/protocol and adds at, by, reason."""
        await dbs.runs.insert_one(dict(RUN_DOC))
        assert await move_to_deleted(dbs.runs, 51234, "live", "daq", by="eb3", reason="processed")
        (record,) = (await dbs.runs.find_one({"number": 51234}))["deleted_data"]
        assert (record["type"], record["host"], record["by"], record["reason"]) == (
            "live",
            "daq",
            "eb3",
            "processed",
        )
        assert "location" not in record
        assert record["at"].tzinfo is not None


class TestDaqLog:
    async def test_log_shape(self, dbs: Databases) -> None:
        """daq.log documents have redax's fields and priorities."""
        await log_to_daq(dbs, "run failed", level="error", user="bootstrax_eb3", run_number=42)
        await log_to_daq(dbs, "hello", level="chatty", user="ajax_eb0")
        docs = await dbs.log.find({}, {"_id": 0, "time": 0}).to_list()
        assert docs == [
            {"message": "run failed", "user": "bootstrax_eb3", "priority": 3, "runid": 42},
            {"message": "hello", "user": "ajax_eb0", "priority": 3},
        ]
        assert [priority_of(x) for x in ("debug", "info", "warning", "error", "fatal")] == [
            0,
            1,
            2,
            3,
            4,
        ]

    async def test_heartbeat_upserts_status_and_appends_history(self, dbs: Databases) -> None:
        """One status document per (service, host); history only when asked."""
        await ensure_indexes(dbs)
        await heartbeat(dbs, "bootstrax", "eb3", "idle", config_hash="abc")
        await heartbeat(
            dbs,
            "bootstrax",
            "eb3",
            "busy",
            config_hash="abc",
            fields={"run_id": "000001"},
            history=False,
        )
        status = await current_status(dbs, "bootstrax", "eb3")
        assert status is not None
        assert (status["state"], status["config_hash"], status["run_id"]) == (
            "busy",
            "abc",
            "000001",
        )
        assert await dbs.status.count_documents({}) == 1
        assert await dbs.eb_monitor.count_documents({"service": "bootstrax"}) == 1


def test_redact_uri() -> None:
    """Credentials never reach a log line."""
    assert redact_uri("mongodb://daq:s3cret@db1:27017/xenonnt") == "mongodb://***@db1:27017/xenonnt"
    assert redact_uri("mongodb://db1:27017/") == "mongodb://db1:27017/"
