"""Runtime config documents: one per service in the daq database, validated, hot-reloaded.

The document ``{name: "<service>_config", ...}`` in ``daq.<service>_config`` is checked against a
frozen pydantic model. Bookkeeping keys are allowed, keys the original scripts used that mean
nothing here are ignored with a warning, and any other unknown key or a wrong type rejects the
whole document: the previous valid config stays in force (validate, then swap; never half-apply).
A missing document means the defaults. Changes arrive through a change stream, or by polling
where change streams are not available.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pymongo.errors import OperationFailure, PyMongoError

from straxd.core.db import Collection as MongoCollection
from straxd.core.errors import ConfigInvalid
from straxd.core.lifecycle import wait_for_stop

BOOKKEEPING_KEYS = frozenset({"_id", "name", "user", "last_modified"})
Model = TypeVar("Model", bound=BaseModel)


def config_hash(config: BaseModel) -> str:
    """A stable short hash of a config's values (key order does not matter)."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]


def config_diff(old: BaseModel, new: BaseModel) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for every value that changed."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    return {k: (before.get(k), after[k]) for k in after if before.get(k) != after[k]}


@dataclass(frozen=True)
class Loaded(Generic[Model]):
    """The result of one load: the config, and what the caller should log about it."""

    config: Model
    missing: bool = False
    ignored_keys: tuple[str, ...] = ()


def validate_document(
    document: Mapping[str, Any] | None,
    model: type[Model],
    legacy_keys: Collection[str] = (),
    source: str = "config document",
) -> Loaded[Model]:
    """Validate one document (None: defaults) or raise ConfigInvalid naming every problem."""
    if document is None:
        return Loaded(model(), missing=True)
    values = {k: v for k, v in document.items() if k not in BOOKKEEPING_KEYS}
    ignored = tuple(sorted(k for k in values if k in legacy_keys and k not in model.model_fields))
    for key in ignored:
        values.pop(key)
    unknown = sorted(k for k in values if k not in model.model_fields)
    if unknown:
        raise ConfigInvalid(
            f"{source}: unknown keys {unknown}; known: {sorted(model.model_fields)}"
        )
    try:
        config = model.model_validate(values)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigInvalid(f"{source}: {problems}") from None
    return Loaded(config, ignored_keys=ignored)


@dataclass
class ConfigSource(Generic[Model]):
    """The config document of one service."""

    collection: MongoCollection
    service: str
    model: type[Model]
    legacy_keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        """The ``name`` field of the document."""
        return f"{self.service}_config"

    async def load(self) -> Loaded[Model]:
        """Read and validate the current document."""
        document = await self.collection.find_one({"name": self.name})
        source = f"{self.collection.full_name} document {self.name!r}"
        return validate_document(document, self.model, self.legacy_keys, source)


@dataclass(frozen=True)
class ConfigEvent(Generic[Model]):
    """A change seen by the watcher: a new valid config, or why a document was rejected."""

    loaded: Loaded[Model] | None = None
    error: ConfigInvalid | None = None


async def watch_config(
    source: ConfigSource[Model],
    stop: asyncio.Event,
    *,
    poll_interval_s: float = 5.0,
    use_change_stream: bool = True,
) -> AsyncIterator[ConfigEvent[Model]]:
    """Yield an event whenever the document changes, until ``stop`` is set.

    Uses a change stream when the server offers one and falls back to polling every
    ``poll_interval_s`` otherwise. Only changes of content are reported.
    """
    last: str | None = None
    wake = _ChangeStreamWaker(source, stop) if use_change_stream else None
    try:
        while not stop.is_set():
            try:
                event, last = await _check(source, last)
            except PyMongoError:
                event = None  # the database is away: keep the config in force, look again later
            if event is not None:
                yield event
            if wake is None:
                await wait_for_stop(stop, poll_interval_s)
            else:
                await wake(poll_interval_s)
    finally:
        if wake is not None:
            await wake.close()


async def _check(
    source: ConfigSource[Model], last: str | None
) -> tuple[ConfigEvent[Model] | None, str | None]:
    """Load once; report only when the raw document differs from the last one seen."""
    document = await source.collection.find_one({"name": source.name})
    fingerprint = json.dumps(document, sort_keys=True, default=str)
    if fingerprint == last:
        return None, last
    try:
        return ConfigEvent(loaded=await source.load()), fingerprint
    except ConfigInvalid as err:
        return ConfigEvent(error=err), fingerprint


class _ChangeStreamWaker:
    """Wait for the next change of the document, or a timeout; polling if streams fail."""

    def __init__(self, source: ConfigSource[Any], stop: asyncio.Event) -> None:
        self.source = source
        self.stop = stop
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        try:
            pipeline = [
                {
                    "$match": {
                        "$or": [
                            {"fullDocument.name": self.source.name},
                            {"operationType": {"$in": ["delete", "drop", "rename", "invalidate"]}},
                        ]
                    }
                }
            ]
            async with await self.source.collection.watch(
                pipeline, full_document="updateLookup"
            ) as stream:
                async for _ in stream:
                    self.changed.set()
        except (OperationFailure, PyMongoError):
            return  # no change streams here: the caller's timeout turns this into polling

    async def __call__(self, timeout_s: float) -> None:
        waiters = [
            asyncio.ensure_future(self.changed.wait()),
            asyncio.ensure_future(self.stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.changed.clear()

    async def close(self) -> None:
        """Stop listening."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
