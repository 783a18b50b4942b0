"""Input alignment and overlap windows for the pipeline's plugin tasks.

Inputs of one plugin may arrive in chunks with different boundaries (an overlap-window plugin
upstream shifts them). ``InputAligner`` hands out pieces of every input covering one common
[start, end): the slowest input sets the pace and the others are split there, early if a row
straddles the split, exactly as strax's ``Plugin.iter`` does. ``OverlapWindow`` gives a plugin
the context it needs around each chunk and holds back results that later data could change, as
strax's ``OverlapWindowPlugin``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from straxd.core.chunk import Chunk
from straxd.core.errors import ChunkError

if TYPE_CHECKING:
    from straxd.core.plugin import Plugin

# Early splits can cascade between inputs; strax gives up after ten passes too.
_MAX_ALIGN_PASSES = 10


class InputAligner:
    """Pull chunks from several queues and yield time-aligned pieces of all of them."""

    def __init__(self, queues: Mapping[str, asyncio.Queue[Chunk | None]]) -> None:
        self._queues = dict(queues)
        self._buffers: dict[str, Chunk | None] = dict.fromkeys(queues)
        self._exhausted: set[str] = set()

    async def _fetch(self, data_type: str) -> bool:
        """Append the next chunk of ``data_type`` to its buffer; False at end of stream."""
        if data_type in self._exhausted:
            return False
        chunk = await self._queues[data_type].get()
        if chunk is None:
            self._exhausted.add(data_type)
            return False
        buffered = self._buffers[data_type]
        self._buffers[data_type] = (
            chunk if buffered is None else Chunk.concatenate([buffered, chunk])
        )
        return True

    def _pending(self, data_type: str) -> bool:
        buffered = self._buffers[data_type]
        return buffered is not None and (buffered.end > buffered.start or len(buffered) > 0)

    async def next(self) -> dict[str, Chunk] | None:
        """The next aligned inputs, or None once every input has ended."""
        if not self._queues:
            return None
        for data_type in self._queues:
            while not self._pending(data_type) and await self._fetch(data_type):
                pass
        pending = [d for d in self._queues if self._pending(d)]
        if not pending:
            return None
        if len(pending) != len(self._queues):
            ended = sorted(set(self._queues) - set(pending))
            raise ChunkError(f"inputs {ended} ended while {pending} still had data")
        end = min(self._buffer(d).end for d in self._queues)
        return self._split_all(end)

    def _buffer(self, data_type: str) -> Chunk:
        buffered = self._buffers[data_type]
        assert buffered is not None
        return buffered

    def _split_all(self, end: int) -> dict[str, Chunk]:
        """Split every buffer at ``end``, moving ``end`` earlier until all pieces agree."""
        for _ in range(_MAX_ALIGN_PASSES):
            pieces: dict[str, Chunk] = {}
            for data_type in self._queues:
                left, right = self._buffer(data_type).split(end, allow_early_split=True)
                pieces[data_type] = left
                self._buffers[data_type] = right
            ends = {piece.end for piece in pieces.values()}
            if len(ends) == 1:
                return pieces
            end = min(ends)
            for data_type, piece in pieces.items():
                self._buffers[data_type] = Chunk.concatenate([piece, self._buffer(data_type)])
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
