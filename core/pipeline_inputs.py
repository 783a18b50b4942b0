"""Input alignment and overlap windows for the pipeline's plugin tasks.

Inputs of one plugin may arrive in chunks with different boundaries (an overlap-window plugin
upstream shifts them). ``InputAligner`` hands out pieces of every input covering one common
[start, end): the slowest input sets the pace and the others are split there, early if a row
straddles the split, exactly as strax's ``Plugin.iter`` does. ``OverlapWindow`` gives a plugin
the context it needs around each chunk and holds back results that later data could change, as
strax's ``OverlapWindowPlugin``. Inputs of one data kind are then joined column-wise
(``merge_by_kind``), as strax's ``Chunk.merge``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from straxd.core.chunk import Chunk
from straxd.core.dtypes import merged_dtype
from straxd.core.errors import ChunkError

if TYPE_CHECKING:
    from straxd.core.plugin import Plugin, Registry

# Early splits can cascade between inputs; strax gives up after ten passes too.
_MAX_ALIGN_PASSES = 10


class InputAligner:
    """Pull chunks from several queues and yield time-aligned pieces of all of them.

    As strax's ``Plugin.iter``: the input whose first chunk ends first is the pacemaker for the
    whole stream; each step takes its next chunk, fetches the others until they reach its end,
    and splits everything there (earlier where rows straddle). Following strax step for step
    matters: overlap-window plugins such as events see the same inputs, so give the same results.
    """

    def __init__(self, queues: Mapping[str, asyncio.Queue[Chunk | None]]) -> None:
        self._queues = dict(queues)
        self._buffers: dict[str, Chunk | None] = dict.fromkeys(queues)
        self._pacemaker: str | None = None
        self._done = False

    async def _fetch(self, data_type: str) -> bool:
        """Append the next chunk of ``data_type`` to its buffer; False at end of stream."""
        chunk = await self._queues[data_type].get()
        if chunk is None:
            self._queues[data_type].put_nowait(None)  # stays ended for later calls
            return False
        buffered = self._buffers[data_type]
        self._buffers[data_type] = (
            chunk if buffered is None else Chunk.concatenate([buffered, chunk])
        )
        return True

    async def _start(self) -> bool:
        """Fetch one chunk of every input and choose the pacemaker; False if all are empty."""
        got = {d: await self._fetch(d) for d in self._queues}
        if not any(got.values()):
            return False
        if not all(got.values()):
            missing = sorted(d for d, ok in got.items() if not ok)
            raise ChunkError(f"inputs {missing} sent nothing while others sent data")
        self._pacemaker = min(self._queues, key=lambda d: self._buffer(d).end)
        return True

    async def next(self) -> dict[str, Chunk] | None:
        """The next aligned inputs, or None once the pacemaker has ended."""
        if self._done or not self._queues:
            return None
        if self._pacemaker is None:
            if not await self._start():
                self._done = True
                return None
        elif not await self._fetch(self._pacemaker_name):
            await self._finish()
            return None
        end = self._buffer(self._pacemaker_name).end
        for data_type in self._queues:
            while self._buffers[data_type] is None or self._buffer(data_type).end < end:
                if not await self._fetch(data_type):
                    raise ChunkError(f"{data_type} ended before {end}, where the others go on")
        return self._split_all(end)

    @property
    def _pacemaker_name(self) -> str:
        assert self._pacemaker is not None
        return self._pacemaker

    async def _finish(self) -> None:
        """The pacemaker ended: every other input must have ended too, nothing left over."""
        self._done = True
        for data_type in self._queues:
            if await self._fetch(data_type):
                raise ChunkError(f"{data_type} has data after the other inputs ended")
            left = self._buffers[data_type]
            if left is not None and len(left):
                raise ChunkError(f"{data_type} has {len(left)} rows left after its inputs ended")

    def _buffer(self, data_type: str) -> Chunk:
        buffered = self._buffers[data_type]
        assert buffered is not None
        return buffered

    def _split_all(self, end: int) -> dict[str, Chunk]:
        """Split every buffer at ``end``, moving ``end`` earlier until all pieces agree."""
        pieces: dict[str, Chunk] = {}
        for data_type in self._queues:
            pieces[data_type], self._buffers[data_type] = self._buffer(data_type).split(
                end, allow_early_split=True
            )
        for _ in range(_MAX_ALIGN_PASSES):
            ends = {piece.end for piece in pieces.values()}
            end = min([*ends, end])
            if len(ends) <= 1:
                return pieces
            for data_type, piece in pieces.items():
                pieces[data_type], back = piece.split(end, allow_early_split=True)
                self._buffers[data_type] = Chunk.concatenate([back, self._buffer(data_type)])
        raise ChunkError(
            f"could not align inputs {sorted(self._queues)} after {_MAX_ALIGN_PASSES} passes"
        )


Compute = Callable[["Plugin", int, Mapping[str, Chunk]], Awaitable[dict[str, Chunk]]]


class OverlapWindow:
    """Carry inputs and results across chunks for a plugin with a (left, right) window."""

    def __init__(self, plugin: Plugin) -> None:
        if plugin.window_ns is None:
            raise ValueError(f"{plugin.name} has no window")
        if len(plugin.provides) != 1:
            raise ValueError(f"{plugin.name}: overlap windows need a single output")
        self.plugin = plugin
        self.left_ns, self.right_ns = plugin.window_ns
        self.output = plugin.provides[0]
        self.cached_input: dict[str, Chunk] = {}
        self.cached_result: Chunk | None = None
        self.sent_until = 0

    async def step(
        self, inputs: Mapping[str, Chunk], compute: Compute, chunk_i: int
    ) -> dict[str, Chunk]:
        """Compute on cached + new inputs; return what no later input can change."""
        joined = {
            kind: Chunk.concatenate([self.cached_input[kind], chunk])
            if kind in self.cached_input
            else chunk
            for kind, chunk in inputs.items()
        }
        end = next(iter(joined.values())).end
        # One ns of margin on top of two windows, as strax, against off-by-one errors.
        invalid_beyond = int(end - 2 * self.right_ns - 1)
        result = (await compute(self.plugin, chunk_i, joined))[self.output]
        result = result.split(self.sent_until, allow_early_split=False)[1]
        ready, self.cached_result = result.split(invalid_beyond, allow_early_split=True)
        self.sent_until = self.cached_result.start
        self._cache_inputs(joined, int(self.sent_until - 2 * self.left_ns - 1))
        return {self.output: ready}

    def _cache_inputs(self, joined: Mapping[str, Chunk], t: int) -> None:
        """Keep the inputs from ``t`` on, all starting at one common (possibly earlier) time."""
        for _ in range(_MAX_ALIGN_PASSES):
            for kind, chunk in joined.items():
                self.cached_input[kind] = chunk.split(max(t, chunk.start), allow_early_split=True)[
                    1
                ]
                t = self.cached_input[kind].start
            if len({c.start for c in self.cached_input.values()}) == 1:
                return
        raise ChunkError(f"{self.plugin.name}: could not cache inputs at one common start")

    def flush(self) -> dict[str, Chunk] | None:
        """The results held back at the end of the stream."""
        if self.cached_result is None:
            return None
        tail, self.cached_result = self.cached_result, None
        return {self.output: tail}


def common_range(plugin: Plugin, by_kind: Mapping[str, Chunk]) -> tuple[int, int]:
    """The one [start, end) of a plugin's inputs, which must all share it."""
    ranges = {(c.start, c.end) for c in by_kind.values()}
    if len(ranges) != 1:
        raise ChunkError(f"{plugin.name} got inputs with different ranges: {sorted(ranges)}")
    (common,) = ranges
    return common


def merge_by_kind(
    plugin: Plugin, inputs: Mapping[str, Chunk], registry: Registry
) -> dict[str, Chunk]:
    """Join the inputs of one data kind column-wise, as strax's ``Chunk.merge``."""
    kinds: dict[str, list[Chunk]] = {}
    for data_type in plugin.depends_on:
        kind = registry.provider(data_type).kind_of(data_type)
        kinds.setdefault(kind, []).append(inputs[data_type])
    return {kind: merge_chunks(chunks) for kind, chunks in kinds.items()}


def merge_chunks(chunks: Sequence[Chunk]) -> Chunk:
    """Column-wise union of same-kind chunks with identical ranges and lengths (last wins)."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]
    for other in chunks[1:]:
        if (other.start, other.end, len(other)) != (first.start, first.end, len(first)):
            raise ChunkError(
                f"cannot merge {first.data_type} and {other.data_type}: ranges or lengths differ"
            )
    # As strax's Chunk.merge: on a field-name clash the chunk later in depends_on wins; the
    # field order is that of the dtypes sorted by data type name.
    columns: dict[str, np.ndarray] = {}
    for chunk in chunks:
        for name in chunk.data.dtype.names or ():
            columns[name] = chunk.data[name]
    by_name = sorted(chunks, key=lambda c: c.data_type)
    merged = np.empty(len(first), dtype=merged_dtype([c.data.dtype for c in by_name]))
    for name, column in columns.items():
        merged[name] = column
    return Chunk(
        data_type="+".join(c.data_type for c in chunks),
        data_kind=first.data_kind,
        run_id=first.run_id,
        start=first.start,
        end=first.end,
        data=merged,
    )
