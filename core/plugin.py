"""Data types as plugins: what each provides, what it needs, its options and its lineage.

A plugin's ``compute`` is pure: it receives numpy arrays (one per input data kind) and the chunk's
[start, end), returns arrays, and never does IO. The pipeline runs it in a thread pool. The lineage
of a data type, and so the name of its folder, is computed exactly as strax computes it: the
providing plugin's ``(name, version, tracked options)`` under the key of its *last* provided type,
updated with the lineage of every dependency, recursively.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.errors import ConfigInvalid
from straxd.core.lineage import deterministic_hash

Lineage = dict[str, tuple[str, str, dict[str, Any]]]


class SaveWhen(enum.IntEnum):
    """When a data type is written to disk (strax's ``SaveWhen``)."""

    NEVER = 0
    EXPLICIT = 1  # only when it is itself a target
    TARGET = 2  # when it is a target
    ALWAYS = 3  # whenever it is computed


@dataclass(frozen=True)
class Option:
    """One configuration option of a plugin, named as in straxen."""

    name: str
    default: Any
    help: str
    track: bool = True

    def check(self, value: Any) -> Any:
        """Return the value to use; subclasses or plugins validate further in ``setup``."""
        return value


class Plugin:
    """Base class of every processing step.

    Subclasses set the class attributes and implement ``compute`` (and ``infer_dtype`` when the
    dtype depends on options).
    """

    provides: ClassVar[tuple[str, ...]] = ()
    depends_on: ClassVar[tuple[str, ...]] = ()
    # One kind for every provided type, or a mapping data_type -> kind; default: its own name.
    data_kind: ClassVar[str | Mapping[str, str] | None] = None
    lineage_name: ClassVar[str | None] = None  # defaults to the class name
    version: ClassVar[str] = "0.0.0"
    options: ClassVar[tuple[Option, ...]] = ()
    compressor: ClassVar[str] = "blosc"
    save_when: ClassVar[SaveWhen | Mapping[str, SaveWhen]] = SaveWhen.ALWAYS
    rechunk_on_save: ClassVar[bool | Mapping[str, bool]] = True
    chunk_target_size_mb: ClassVar[int] = 200
    # Window (left, right) in ns for plugins that need context around each chunk (set in
    # ``setup`` from the options), else None.
    window_ns: tuple[int, int] | None = None
    # Input data types that compute may use as scratch space, changing their arrays in place,
    # when the pipeline has granted it in ``owned_inputs`` (it is their only consumer and they
    # are not saved). Elsewhere, as when compute is called directly, it must copy first.
    scratch_inputs: ClassVar[tuple[str, ...]] = ()
    owned_inputs: frozenset[str] = frozenset()

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        given = dict(config or {})
        self.config: dict[str, Any] = {}
        for option in self.options:
            self.config[option.name] = option.check(given.get(option.name, option.default))
        self.setup()

    # ----------------------------------------------------------------- hooks for subclasses
    def setup(self) -> None:
        """Validate options and precompute what ``compute`` needs (called once)."""

    def infer_dtype(self) -> np.dtype[Any] | Mapping[str, np.dtype[Any]]:
        """The dtype of the single provided type, or a mapping for several."""
        raise NotImplementedError(f"{type(self).__name__} must implement infer_dtype")

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> Any:
        """Compute one chunk: arrays per input data kind in, array or dict of arrays out."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute")

    # ----------------------------------------------------------------- derived properties
    @property
    def name(self) -> str:
        """The plugin name recorded in the lineage."""
        return self.lineage_name or type(self).__name__

    def kind_of(self, data_type: str) -> str:
        """The data kind of one provided type."""
        if isinstance(self.data_kind, str):
            return self.data_kind
        if isinstance(self.data_kind, Mapping):
            return self.data_kind[data_type]
        return data_type

    def dtype_of(self, data_type: str) -> np.dtype[Any]:
        """The dtype of one provided type."""
        dtypes = self.infer_dtype()
        if isinstance(dtypes, Mapping):
            return np.dtype(dtypes[data_type])
        return np.dtype(dtypes)

    def save_rule(self, data_type: str) -> SaveWhen:
        """When ``data_type`` is saved."""
        rule = self.save_when
        return SaveWhen(rule[data_type] if isinstance(rule, Mapping) else rule)

    def rechunks(self, data_type: str) -> bool:
        """Whether the saver may rechunk ``data_type`` to its target size."""
        rule = self.rechunk_on_save
        return bool(rule[data_type] if isinstance(rule, Mapping) else rule)

    def target_mb_of(self, data_type: str) -> int:
        """The chunk size (MB) the saver aims for with ``data_type``."""
        return self.chunk_target_size_mb

    def tracked_config(self) -> dict[str, Any]:
        """The options that enter the lineage, with their values."""
        return {o.name: self.config[o.name] for o in self.options if o.track}


RunInPool = Callable[..., Awaitable[Any]]


class SourcePlugin(Plugin):
    """A plugin whose chunks come from outside (live_data), not from other data types."""

    def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, Chunk]]:
        """Yield, chunk by chunk, one Chunk per provided type (blocking work via run_in_pool)."""
        raise NotImplementedError(f"{type(self).__name__} must implement stream")


class Registry:
    """The plugins available to one pipeline, by the data types they provide."""

    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self._by_type: dict[str, Plugin] = {}
        for plugin in plugins:
            for data_type in plugin.provides:
                if data_type in self._by_type:
                    raise ConfigInvalid(
                        f"{data_type} is provided by both {self._by_type[data_type].name} "
                        f"and {plugin.name}"
                    )
                self._by_type[data_type] = plugin
        self._lineages: dict[str, Lineage] = {}

    def __contains__(self, data_type: object) -> bool:
        return data_type in self._by_type

    def provider(self, data_type: str) -> Plugin:
        """The plugin providing ``data_type``."""
        try:
            return self._by_type[data_type]
        except KeyError:
            known = ", ".join(sorted(self._by_type))
            raise ConfigInvalid(f"no plugin provides {data_type!r}; known: {known}") from None

    def data_types(self) -> list[str]:
        """Every data type some plugin provides."""
        return sorted(self._by_type)

    def lineage(self, data_type: str) -> Lineage:
        """strax's lineage of ``data_type`` (the same for every type of one plugin)."""
        plugin = self.provider(data_type)
        key = plugin.provides[-1]
        if key not in self._lineages:
            lineage: Lineage = {key: (plugin.name, plugin.version, plugin.tracked_config())}
            for dependency in plugin.depends_on:
                lineage.update(self.lineage(dependency))
            self._lineages[key] = lineage
        return self._lineages[key]

    def lineage_hash(self, data_type: str) -> str:
        """The 10-character hash naming the folder of ``data_type``."""
        return deterministic_hash(self.lineage(data_type))

    def closure(self, targets: Iterable[str]) -> list[str]:
        """Every data type needed for ``targets``, dependencies before dependants."""
        ordered: list[str] = []
        visiting: set[str] = set()

        def visit(data_type: str) -> None:
            if data_type in ordered:
                return
            if data_type in visiting:
                raise ConfigInvalid(f"dependency cycle through {data_type}")
            visiting.add(data_type)
            for dependency in self.provider(data_type).depends_on:
                visit(dependency)
            visiting.discard(data_type)
            ordered.append(data_type)

        for target in targets:
            visit(target)
        return ordered
