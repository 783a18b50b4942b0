"""Streaming chunks through the plugin DAG with bounded memory.

Every producer (a source, a stored data type being loaded, a plugin) is one asyncio task that
publishes chunks to bounded queues, one per consumer (a plugin or a saver). A full queue makes the
producer wait, so at most ``QUEUE_DEPTH`` chunks per edge are in flight. Plugin computations and
chunk compression run in a thread pool (numba kernels release the GIL); the event loop only moves
chunks. A ``TaskGroup`` supervises the tasks: one failure cancels the rest, and every saver that
did not finish closes its output as broken (it stays in ``_temp`` with ``exception`` set).
With ``inflight_limit_mb`` set, a source reads its next chunk only once the large arrays of the
previous ones are freed (``core/inflight.py``), so peak memory is that of one chunk's processing.
Where records are only Peaklets' input, PulseProcessing and Peaklets run as one step over pieces
of each chunk, so that a chunk's records never exist at once (``core/fusion.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.errors import BadInput, ConfigInvalid
from straxd.core.fusion import fuse
from straxd.core.inflight import InflightBytes
from straxd.core.pipeline_inputs import InputAligner, OverlapWindow, common_range, merge_by_kind
from straxd.core.plugin import Plugin, Registry, SaveWhen, SourcePlugin

QUEUE_DEPTH = 2
_T = TypeVar("_T")


class ChunkSink(Protocol):
    """Where a saver puts the chunks of one data type (the storage writer)."""

    def write(self, chunk: Chunk) -> None:
        """Compress and store one chunk (called in a worker thread)."""

    def close(self, exception: BaseException | None = None) -> None:
        """Finish: on success make the output final, else mark it broken."""


class Store(Protocol):
    """The storage the pipeline reads stored types from and writes new ones to."""

    def has(self, data_type: str, lineage_hash: str) -> bool:
        """Whether complete data of this type and lineage is stored."""

    def load(self, data_type: str, lineage_hash: str) -> AsyncIterator[Chunk]:
        """Stream the stored chunks of a type."""

    def open_sink(self, plugin: Plugin, data_type: str, registry: Registry) -> ChunkSink:
        """Open the output of one computed data type."""


ProgressCallback = Callable[[str, Chunk], None]


@dataclass
class TypeReport:
    """What happened to one data type during a pipeline run."""

    data_type: str
    origin: str  # "computed" or "loaded"
    saved: bool
    chunks: int = 0
    rows: int = 0
    nbytes: int = 0


@dataclass
class PipelineReport:
    """Summary of one pipeline run."""

    run_id: str
    targets: tuple[str, ...]
    types: dict[str, TypeReport] = field(default_factory=dict)
    wall_s: float = 0.0
    # CPU seconds the worker threads spent per step: a plugin's name for its computing (a
    # source's: reading), "save <data_type>" for compressing and writing that type.
    cpu_s: dict[str, float] = field(default_factory=dict)


@dataclass
class _Plan:
    load: list[str]
    compute: list[Plugin]
    save: list[tuple[Plugin, str]]
    consumers: dict[str, int]


class Pipeline:
    """Process one run to ``targets``, loading what is stored and computing the rest."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        run_id: str,
        targets: Sequence[str],
        executor: Executor,
        *,
        on_chunk: ProgressCallback | None = None,
        queue_depth: int = QUEUE_DEPTH,
        inflight_limit_mb: float | None = None,
    ) -> None:
        if not targets:
            raise ConfigInvalid("no targets given")
        self.registry = registry
        self.store = store
        self.run_id = run_id
        self.targets = tuple(targets)
        self.executor = executor
        self.on_chunk = on_chunk
        self.queue_depth = max(1, queue_depth)
        self.inflight_limit_mb = inflight_limit_mb
        self._inflight = InflightBytes()
        self._pool_calls = 0
        self._queues: dict[str, list[asyncio.Queue[Chunk | None]]] = {}
        self.report = PipelineReport(run_id=run_id, targets=self.targets)
        self.plan = self._make_plan()

    # ------------------------------------------------------------------------- planning
    def _stored(self, data_type: str) -> bool:
        return self.store.has(data_type, self.registry.lineage_hash(data_type))

    def _make_plan(self) -> _Plan:
        """Decide what to load, what to compute and what to save (strax's save rules)."""
        load: list[str] = []
        compute: list[Plugin] = []
        needed = list(self.targets)
        seen: set[str] = set()
        while needed:
            data_type = needed.pop()
            if data_type in seen:
                continue
            seen.add(data_type)
            plugin = self.registry.provider(data_type)
            if self._stored(data_type):
                load.append(data_type)
            elif plugin not in compute:
                compute.append(plugin)
                needed.extend(plugin.depends_on)
        order = {t: i for i, t in enumerate(self.registry.closure(self.targets))}
        compute.sort(key=lambda p: min(order.get(t, len(order)) for t in p.provides))
        save = [
            (plugin, data_type)
            for plugin in compute
            for data_type in plugin.provides
            if self._should_save(plugin, data_type)
        ]
        consumers: dict[str, int] = {}
        for plugin in compute:
            for dependency in plugin.depends_on:
                consumers[dependency] = consumers.get(dependency, 0) + 1
        for _, data_type in save:
            consumers[data_type] = consumers.get(data_type, 0) + 1
        fused = fuse(compute, consumers, self.targets)
        if len(fused) < len(compute):  # records, read by Peaklets alone, are made no more
            compute = fused
            del consumers["records"]
        for plugin in compute:
            # A windowed plugin sees rows again with the next chunk, so it never owns them.
            plugin.owned_inputs = frozenset(
                d
                for d in plugin.scratch_inputs
                if consumers.get(d) == 1 and plugin.window_ns is None
            )
        return _Plan(load=load, compute=compute, save=save, consumers=consumers)

    def _should_save(self, plugin: Plugin, data_type: str) -> bool:
        if self._stored(data_type):
            return False
        rule = plugin.save_rule(data_type)
        if data_type in self.targets:
            return rule >= SaveWhen.EXPLICIT
        return rule == SaveWhen.ALWAYS

    @property
    def nothing_to_do(self) -> bool:
        """True when every target is already stored."""
        return not self.plan.compute

    # ------------------------------------------------------------------------- running
    async def run(self) -> PipelineReport:
        """Run every task to completion; the first failure cancels the rest and propagates."""
        started = time.monotonic()
        for data_type, count in self.plan.consumers.items():
            self._queues[data_type] = [asyncio.Queue(self.queue_depth) for _ in range(count)]
        self._claimed: dict[str, int] = {}
        # Open every output first, so that whatever fails later, each one gets closed.
        sinks: dict[str, ChunkSink] = {}
        try:
            for plugin, data_type in self.plan.save:
                sinks[data_type] = await self.run_in_pool(
                    self.store.open_sink, plugin, data_type, self.registry
                )
        except BaseException as err:
            for sink in sinks.values():
                await asyncio.shield(self.run_in_pool(sink.close, err))
            raise
        async with asyncio.TaskGroup() as group:
            for data_type in self.plan.load:
                group.create_task(self._load(data_type), name=f"load:{data_type}")
            for data_type, sink in sinks.items():
                queue = self._subscribe(data_type)
                group.create_task(self._save(sink, queue), name=f"save:{data_type}")
            for plugin in self.plan.compute:
                group.create_task(self._compute(plugin), name=f"compute:{plugin.name}")
        self.report.wall_s = time.monotonic() - started
        return self.report

    def _subscribe(self, data_type: str) -> asyncio.Queue[Chunk | None]:
        index = self._claimed.get(data_type, 0)
        self._claimed[data_type] = index + 1
        return self._queues[data_type][index]

    async def _publish(self, data_type: str, chunk: Chunk | None) -> None:
        if chunk is not None:
            entry = self.report.types[data_type]
            entry.chunks += 1
            entry.rows += len(chunk)
            entry.nbytes += chunk.nbytes
            if self.on_chunk is not None:
                self.on_chunk(data_type, chunk)
            self._inflight.follow(chunk)
        for queue in self._queues.get(data_type, []):
            await queue.put(chunk)

    async def run_in_pool(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run ``func`` in the executor, keeping the caller's log context (run_id...)."""
        return await self._run_step(None, func, *args, **kwargs)

    async def _run_step(
        self, step: str | None, func: Callable[..., _T], *args: Any, **kwargs: Any
    ) -> _T:
        """``run_in_pool``, adding the thread's CPU time to ``report.cpu_s[step]`` if named."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, _with_thread_cpu, func, *args, **kwargs)
        self._pool_calls += 1
        try:
            done: tuple[_T, float] = await asyncio.get_running_loop().run_in_executor(
                self.executor, call
            )
        finally:
            self._pool_calls -= 1
        result, cpu_s = done
        if step is not None:
            self.report.cpu_s[step] = self.report.cpu_s.get(step, 0.0) + cpu_s
        return result

    async def _wait_for_room(self) -> None:
        """Hold a source back while earlier chunks' large arrays are still in flight."""
        if self.inflight_limit_mb is None:
            return
        limit_bytes = int(self.inflight_limit_mb * 1e6)
        await self._inflight.wait_below(limit_bytes, lambda: self._pool_calls == 0)

    async def _load(self, data_type: str) -> None:
        self.report.types[data_type] = TypeReport(data_type, "loaded", saved=False)
        async for chunk in self.store.load(data_type, self.registry.lineage_hash(data_type)):
            await self._publish(data_type, chunk)
        await self._publish(data_type, None)

    async def _save(self, sink: ChunkSink, queue: asyncio.Queue[Chunk | None]) -> None:
        try:
            while (chunk := await queue.get()) is not None:
                step = f"save {chunk.data_type}"
                write = asyncio.ensure_future(self._run_step(step, sink.write, chunk))
                # Hold no reference while waiting for the next chunk (see _wait_for_room).
                del chunk
                try:
                    await asyncio.shield(write)
                except asyncio.CancelledError:
                    # The thread keeps writing; let it finish before the sink is closed.
                    await asyncio.wait([write])
                    raise
                del write
        except BaseException as err:
            await asyncio.shield(self.run_in_pool(sink.close, err))
            raise
        await asyncio.shield(self.run_in_pool(sink.close, None))

    async def _compute(self, plugin: Plugin) -> None:
        for data_type in plugin.provides:
            saved = any(t == data_type for _, t in self.plan.save)
            self.report.types[data_type] = TypeReport(data_type, "computed", saved=saved)
        stream = self._outputs(plugin)
        async for outputs in stream:
            for data_type in plugin.provides:
                await self._publish(data_type, outputs[data_type])
            del outputs  # a local reference would keep the chunk alive until the next one
            if isinstance(plugin, SourcePlugin):
                await self._wait_for_room()
        for data_type in plugin.provides:
            await self._publish(data_type, None)

    def _outputs(self, plugin: Plugin) -> AsyncIterator[dict[str, Chunk]]:
        if isinstance(plugin, SourcePlugin):
            return plugin.stream(functools.partial(self._run_step, plugin.name))
        return self._computed(plugin)

    async def _computed(self, plugin: Plugin) -> AsyncIterator[dict[str, Chunk]]:
        aligner = InputAligner({d: self._subscribe(d) for d in plugin.depends_on})
        window = OverlapWindow(plugin) if plugin.window_ns is not None else None
        chunk_i = 0
        while (inputs := await aligner.next()) is not None:
            by_kind = merge_by_kind(plugin, inputs, self.registry)
            del inputs
            if window is not None:
                result = await window.step(by_kind, self._call_compute, chunk_i)
            else:
                result = await self._call_compute(plugin, chunk_i, by_kind)
            # Drop the inputs before waiting for the next ones (see _wait_for_room).
            del by_kind
            if result is not None:
                yield result
            del result
            chunk_i += 1
        if window is not None and (tail := window.flush()) is not None:
            yield tail

    async def _call_compute(
        self, plugin: Plugin, chunk_i: int, by_kind: Mapping[str, Chunk]
    ) -> dict[str, Chunk]:
        start, end = common_range(plugin, by_kind)
        arrays = {kind: chunk.data for kind, chunk in by_kind.items()}
        raw = await self._run_step(plugin.name, plugin.compute, chunk_i, start, end, **arrays)
        return self._wrap(plugin, raw, start, end)

    def _wrap(self, plugin: Plugin, raw: Any, start: int, end: int) -> dict[str, Chunk]:
        """Turn compute's arrays into chunks spanning exactly the inputs' range."""
        if not isinstance(raw, Mapping):
            if len(plugin.provides) != 1:
                raise BadInput(f"{plugin.name} returned one array but provides {plugin.provides}")
            raw = {plugin.provides[0]: raw}
        chunks = {}
        for data_type in plugin.provides:
            data = np.asarray(raw[data_type])
            expected = plugin.dtype_of(data_type)
            if data.dtype != expected:
                data = _cast(plugin, data_type, data, expected)
            chunks[data_type] = Chunk(
                data_type=data_type,
                data_kind=plugin.kind_of(data_type),
                run_id=self.run_id,
                start=start,
                end=end,
                data=data,
                target_size_mb=plugin.target_mb_of(data_type),
            )
            # Followed before the inputs are dropped, so the source never sees a gap.
            self._inflight.follow(chunks[data_type])
        return chunks


def _with_thread_cpu(func: Callable[..., _T], *args: Any, **kwargs: Any) -> tuple[_T, float]:
    """``func``'s result and the CPU seconds this thread spent in it."""
    started = time.thread_time()
    return func(*args, **kwargs), time.thread_time() - started


def _cast(plugin: Plugin, data_type: str, data: np.ndarray, expected: np.dtype[Any]) -> np.ndarray:
    """Accept a result whose fields match the declared dtype up to titles."""
    if data.dtype.names != expected.names:
        raise BadInput(
            f"{plugin.name} returned {data_type} with fields {data.dtype.names}, "
            f"declared {expected.names}"
        )
    return data.astype(expected)
