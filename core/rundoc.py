"""Run documents: their typed shape, run ids, and the ``data[]`` / ``deleted_data[]`` entries.

Run documents belong to the DAQ and to people as much as to straxd, so the models keep every field
they do not know (``extra="allow"``) and straxd only ever changes them with field-level updates,
never by writing back a whole (possibly stale) copy.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from bson import json_util
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from straxd.core.db import Collection, as_utc, utcnow
from straxd.core.errors import BadInput, LeaseLost

FILE_PROTOCOL = "FileSytemBackend"  # strax's spelling; offline straxen looks for exactly this
_RUN_ID = re.compile(r"^\d{1,6}$")
_JSON_OPTIONS = json_util.JSONOptions(
    json_mode=json_util.JSONMode.CANONICAL, tz_aware=True, tzinfo=dt.UTC
)


def run_id_of(number: int) -> str:
    """The 6-digit run id of a run number."""
    if not 0 <= number <= 999_999:
        raise BadInput(f"run number {number} is outside 0..999999")
    return f"{number:06d}"


def parse_run(text: str | int) -> int:
    """A run number from ``11``, ``"11"`` or ``"000011"``."""
    if isinstance(text, int):
        run_id_of(text)
        return text
    if not _RUN_ID.match(text.strip()):
        raise BadInput(f"invalid run {text!r}: expected a run number such as 11 or 000011")
    return int(text)


class _Open(BaseModel):
    """A model that keeps unknown fields and validates assignments."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return as_utc(value) if isinstance(value, dt.datetime) else value


class DaqConfig(_Open):
    """The part of ``daq_config`` that reading live_data needs."""

    processing_threads: dict[str, int] = Field(default_factory=dict)
    compressor: str = "lz4"
    strax_fragment_payload_bytes: int = 220
    strax_chunk_length: float = 5.0
    strax_chunk_overlap: float = 0.5


class DataEntry(_Open):
    """One element of ``data[]``: where a copy of one data type lives."""

    type: str
    host: str
    location: str | None = None
    protocol: str | None = None
    status: str | None = None
    file_count: int | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class ProcessingState(_Open):
    """``bootstrax{}`` / ``restrax{}``: who processes the run, how far, and the lease."""

    state: str | None = None
    host: str | None = None
    time: dt.datetime | None = None
    epoch: int = 0
    lease_until: dt.datetime | None = None
    phase: str | None = None
    reason: str | None = None
    n_failures: int = 0
    next_retry: dt.datetime | None = None
    started_processing: dt.datetime | None = None


class RunDoc(_Open):
    """A run document, as the DAQ dispatcher writes it and the daemons extend it."""

    number: int
    name: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    mode: str | None = None
    detectors: list[str] = Field(default_factory=list)
    daq_config: DaqConfig | None = None
    rate: dict[str, Any] = Field(default_factory=dict)
    tags: list[dict[str, Any]] = Field(default_factory=list)
    status: str | None = None
    data: list[DataEntry] = Field(default_factory=list)
    deleted_data: list[dict[str, Any]] = Field(default_factory=list)
    bootstrax: ProcessingState = Field(default_factory=ProcessingState)
    restrax: ProcessingState = Field(default_factory=ProcessingState)

    @property
    def run_id(self) -> str:
        """The 6-digit run id."""
        return run_id_of(self.number)

    def has_tag(self, name: str) -> bool:
        """Whether a tag of that name is set (``abandon``, ``hold-processing``)."""
        return any(tag.get("name") == name for tag in self.tags)

    def to_mongo(self) -> dict[str, Any]:
        """The document as stored, unknown fields included (no ``None`` defaults added)."""
        return self.model_dump(exclude_unset=True, by_alias=True)


def parse_run_doc(document: dict[str, Any]) -> RunDoc:
    """Validate a run document read from the database; a malformed one is BadInput."""
    try:
        return RunDoc.model_validate(document)
    except ValidationError as err:
        number = document.get("number", "?")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise BadInput(f"run {number}: malformed run document: {problems}") from None


def write_run_doc(path: Path, document: dict[str, Any]) -> None:
    """Save a run document as extended JSON (datetimes and ObjectIds survive the trip)."""
    path.write_text(json_util.dumps(document, json_options=_JSON_OPTIONS))


def read_run_doc(path: Path) -> dict[str, Any]:
    """Read a run document saved by ``write_run_doc``; datetimes come back UTC-aware."""
    document = json_util.loads(path.read_text(), json_options=_JSON_OPTIONS)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


async def get_run(runs: Collection, number: int) -> RunDoc | None:
    """The run document of ``number``, or None."""
    document = await runs.find_one({"number": number})
    return None if document is None else parse_run_doc(document)


async def register_data(runs: Collection, number: int, entry: DataEntry) -> None:
    """Add or replace the entry for (type, host) in ``data[]``, field by field."""
    fields = entry.model_dump(exclude_none=True)
    updated = await runs.update_one(
        {"number": number, "data": {"$elemMatch": {"type": entry.type, "host": entry.host}}},
        {"$set": {f"data.$.{key}": value for key, value in fields.items()}},
    )
    if updated.matched_count:
        return
    pushed = await runs.update_one(
        {
            "number": number,
            "data": {"$not": {"$elemMatch": {"type": entry.type, "host": entry.host}}},
        },
        {"$push": {"data": fields}},
    )
    if not pushed.matched_count and await runs.count_documents({"number": number}) == 0:
        raise BadInput(f"run {number} does not exist; cannot register {entry.type}")


async def update_data(
    runs: Collection, number: int, data_type: str, host: str, fields: dict[str, Any]
) -> bool:
    """Set fields (``location``, ``meta.size_mb`` ...) of one entry; False if it is absent."""
    result = await runs.update_one(
        {"number": number, "data": {"$elemMatch": {"type": data_type, "host": host}}},
        {"$set": {f"data.$.{key}": value for key, value in fields.items()}},
    )
    return result.matched_count == 1


async def move_to_deleted(
    runs: Collection,
    number: int,
    data_type: str,
    host: str,
    by: str,
    reason: str,
    fence: dict[str, Any] | None = None,
) -> bool:
    """Record a deletion in ``deleted_data`` and drop the entry from ``data``.

    Two steps, ordered so that a crash between them is completed by running this again: the
    record is added only if not there yet, then the entry is pulled. ``fence`` (a lease's
    filter) makes both conditional on still holding the run; a write that then matches nothing
    raises LeaseLost. Returns False when there was nothing to move.
    """
    where = {"number": number, **(fence or {})}
    document = await runs.find_one(
        {"number": number}, {"data": {"$elemMatch": {"type": data_type, "host": host}}}
    )
    if document is None:
        raise BadInput(f"run {number} does not exist")
    entries = document.get("data") or []
    if entries:
        record = {k: v for k, v in entries[0].items() if k not in ("location", "meta", "protocol")}
        record.update(at=utcnow(), by=by, reason=reason)
        await runs.update_one(
            {
                **where,
                "deleted_data": {
                    "$not": {"$elemMatch": {"type": data_type, "host": host, "reason": reason}}
                },
            },
            {"$push": {"deleted_data": record}},
        )
    pulled = await runs.update_one(where, {"$pull": {"data": {"type": data_type, "host": host}}})
    if fence and not pulled.matched_count:
        raise LeaseLost(f"run {number}: lease lost while moving {data_type} to deleted_data")
    return bool(entries) and pulled.modified_count == 1
