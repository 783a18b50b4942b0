"""Runtime config documents: validation, defaults, hashing, and hot reload."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, ConfigDict

from straxd.core.config_docs import (
    ConfigEvent,
    ConfigSource,
    config_diff,
    config_hash,
    validate_document,
    watch_config,
)
from straxd.core.db import Databases
from straxd.core.errors import ConfigInvalid


class RestraxLike(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_workers: int = 4
    target_mb: int = 1500
    compressor: str = "zstd"


LEGACY = frozenset({"process_mode"})


def _source(dbs: Databases) -> ConfigSource[RestraxLike]:
    return ConfigSource(dbs.config_collection("restrax"), "restrax", RestraxLike, LEGACY)


class TestValidate:
    def test_missing_document_means_defaults(self) -> None:
        """No document: the defaults, flagged as missing so the caller logs it once."""
        loaded = validate_document(None, RestraxLike)
        assert loaded.missing
        assert loaded.config == RestraxLike()

    def test_bookkeeping_keys_allowed(self) -> None:
        """_id, name, user, last_modified are not config keys and are accepted."""
        doc = {
            "_id": 1,
            "name": "restrax_config",
            "user": "daq",
            "last_modified": 0,
            "target_mb": 10,
        }
        assert validate_document(doc, RestraxLike).config.target_mb == 10

    def test_legacy_key_ignored_and_reported(self) -> None:
        """A key the original scripts used is ignored, and reported for a warning."""
        loaded = validate_document({"process_mode": "x", "max_workers": 2}, RestraxLike, LEGACY)
        assert loaded.ignored_keys == ("process_mode",)
        assert loaded.config.max_workers == 2

    def test_unknown_key_rejects_whole_document(self) -> None:
        """A typo rejects the document and names the key."""
        with pytest.raises(ConfigInvalid, match="unknown keys \\['max_wrokers'\\]"):
            validate_document({"max_wrokers": 2, "target_mb": 5}, RestraxLike)

    def test_wrong_type_rejected(self) -> None:
        """A wrong type names the field."""
        with pytest.raises(ConfigInvalid, match="target_mb"):
            validate_document({"target_mb": "big"}, RestraxLike)

    def test_hash_ignores_key_order_and_diff_lists_changes(self) -> None:
        """Equal values give equal hashes; the diff lists exactly the changed keys."""
        a = RestraxLike.model_validate({"max_workers": 2, "target_mb": 9})
        b = RestraxLike.model_validate({"target_mb": 9, "max_workers": 2})
        assert config_hash(a) == config_hash(b) != config_hash(RestraxLike())
        assert config_diff(RestraxLike(), a) == {"max_workers": (4, 2), "target_mb": (1500, 9)}


async def _next(events: object, timeout_s: float = 20) -> ConfigEvent[RestraxLike]:
    return await asyncio.wait_for(anext(events), timeout_s)  # type: ignore[arg-type]


class TestWatch:
    @pytest.mark.parametrize("use_change_stream", [True, False])
    async def test_change_picked_up_and_invalid_rejected(
        self, dbs: Databases, use_change_stream: bool
    ) -> None:
        """1. defaults; 2. a valid change arrives; 3. an invalid one is reported, old stays."""
        stop = asyncio.Event()
        events = watch_config(
            _source(dbs),
            stop,
            poll_interval_s=0.2 if not use_change_stream else 30,
            use_change_stream=use_change_stream,
        )
        first = await _next(events)
        assert first.loaded is not None
        assert first.loaded.missing
        coll = dbs.config_collection("restrax")
        await coll.insert_one({"name": "restrax_config", "max_workers": 7})
        second = await _next(events)
        assert second.loaded is not None
        assert second.loaded.config.max_workers == 7
        await coll.update_one({"name": "restrax_config"}, {"$set": {"max_workers": "many"}})
        third = await _next(events)
        assert third.error is not None
        assert "max_workers" in str(third.error)
        assert third.loaded is None
        stop.set()
        await events.aclose()
