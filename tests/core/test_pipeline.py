"""The streaming pipeline: plugins in a DAG, stored as strax data, loaded back by strax."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strax

from straxd.core.chunk import Chunk
from straxd.core.errors import ChunkError
from straxd.core.filestore import FileStore
from straxd.core.pipeline import Pipeline
from straxd.core.plugin import Option, Plugin, Registry, RunInPool, SaveWhen, SourcePlugin
from straxd.core.storage_read import Status, open_data, status_of

RUN = "000007"
PULSE = np.dtype(
    [(("Start", "time"), np.int64), (("End", "endtime"), np.int64), (("Area", "area"), np.float64)]
)
AREA = np.dtype(
    [
        (("Start", "time"), np.int64),
        (("End", "endtime"), np.int64),
        (("Doubled", "double"), np.float64),
    ]
)
GROUP = np.dtype(
    [(("Start", "time"), np.int64), (("End", "endtime"), np.int64), (("N pulses", "n"), np.int32)]
)
CHUNK_NS = 10_000


def make_pulses(n_chunks: int, seed: int = 0) -> list[np.ndarray]:
    """Non-overlapping pulses, some in clusters, per 10 us chunk."""
    rng = np.random.default_rng(seed)
    chunks = []
    for i in range(n_chunks):
        times = np.sort(
            rng.choice(np.arange(i * CHUNK_NS, (i + 1) * CHUNK_NS - 50, 50), 40, replace=False)
        )
        data = np.zeros(len(times), PULSE)
        data["time"], data["endtime"] = times, times + 20
        data["area"] = rng.uniform(1, 10, len(times))
        chunks.append(data)
    return chunks


class Pulses(SourcePlugin):
    provides = ("pulses",)
    compressor = "lz4"
    rechunk_on_save = False
    options = (Option("n_chunks", 5, "chunks", track=False), Option("fail_at", -1, "", track=False))

    def infer_dtype(self) -> np.dtype[Any]:
        return PULSE

    async def stream(self, run_in_pool: RunInPool) -> AsyncIterator[dict[str, Chunk]]:
        # Made in the pool, as real sources read their data there.
        for i, data in enumerate(await run_in_pool(make_pulses, self.config["n_chunks"])):
            if i == self.config["fail_at"]:
                raise ChunkError(f"bad chunk {i}")
            yield {"pulses": Chunk("pulses", "pulses", RUN, i * CHUNK_NS, (i + 1) * CHUNK_NS, data)}


class Doubled(Plugin):
    provides = ("doubled",)
    depends_on = ("pulses",)
    data_kind = "pulses"
    version = "0.0.1"
    compressor = "zstd"
    options = (Option("factor", 2.0, "multiplier"),)

    def infer_dtype(self) -> np.dtype[Any]:
        return AREA

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        pulses = inputs["pulses"]
        out = np.zeros(len(pulses), AREA)
        out["time"], out["endtime"] = pulses["time"], pulses["endtime"]
        out["double"] = pulses["area"] * self.config["factor"]
        return out


class Groups(Plugin):
    """Groups pulses closer than 120 ns: needs context across chunk boundaries."""

    provides = ("groups",)
    depends_on = ("pulses", "doubled")
    window_ns = (500, 500)
    save_when = SaveWhen.EXPLICIT

    def infer_dtype(self) -> np.dtype[Any]:
        return GROUP

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        pulses = inputs["pulses"]
        assert "double" in pulses.dtype.names  # same-kind inputs arrive merged
        return group_pulses(pulses)


def group_pulses(pulses: np.ndarray) -> np.ndarray:
    """The reference answer: consecutive pulses less than 120 ns apart form one group."""
    if not len(pulses):
        return np.zeros(0, GROUP)
    breaks = np.flatnonzero(pulses["time"][1:] - pulses["endtime"][:-1] >= 120) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(pulses)]])
    out = np.zeros(len(starts), GROUP)
    out["time"] = pulses["time"][starts]
    out["endtime"] = pulses["endtime"][ends - 1]
    out["n"] = ends - starts
    return out


class GroupsAgain(Plugin):
    """Gives its groups input back unchanged, as ``groups_again``."""

    provides = ("groups_again",)
    depends_on: tuple[str, ...] = ("groups",)

    def infer_dtype(self) -> np.dtype[Any]:
        return GROUP

    def compute(self, chunk_i: int, start: int, end: int, **inputs: np.ndarray) -> np.ndarray:
        return inputs["groups"]


def _registry(**config: Any) -> Registry:
    return Registry([Pulses(config), Doubled(config), Groups(config)])


async def _run(tmp_path: Path, targets: list[str], **config: Any) -> tuple[Pipeline, FileStore]:
    registry = _registry(**config)
    store = FileStore(tmp_path, RUN, fsync=False)
    with ThreadPoolExecutor(2) as pool:
        pipeline = Pipeline(registry, store, RUN, targets, pool)
        await pipeline.run()
    return pipeline, store


class TestPipeline:
    async def test_outputs_stored_and_strax_loads_them(self, tmp_path: Path) -> None:
        """Every saved type is complete, contiguous, equal to the reference, loadable by strax."""
        pipeline, store = await _run(tmp_path, ["groups"])
        registry = pipeline.registry
        pulses = np.concatenate(make_pulses(5))
        doubled = strax.io.dry_load_files(
            str(store.folder("doubled", registry.lineage_hash("doubled")))
        )
        np.testing.assert_array_equal(doubled["double"], pulses["area"] * 2)
        groups = open_data(store.folder("groups", registry.lineage_hash("groups"))).load_all()
        np.testing.assert_array_equal(groups, group_pulses(pulses))
        stored = open_data(store.folder("pulses", registry.lineage_hash("pulses")))
        assert [(c.start, c.end) for c in stored.iter_chunks()] == [
            (i * CHUNK_NS, (i + 1) * CHUNK_NS) for i in range(5)
        ]
        report = pipeline.report.types
        assert report["pulses"].rows == len(pulses)
        assert report["groups"].saved and report["groups"].rows == len(groups)
        # CPU seconds for every plugin that ran and every type saved, none more than the wall
        # time of the two worker threads.
        cpu_s = pipeline.report.cpu_s
        saves = {f"save {data_type}" for data_type in ("pulses", "doubled", "groups")}
        assert set(cpu_s) == {p.name for p in pipeline.plan.compute} | saves
        assert all(v >= 0 for v in cpu_s.values())
        assert sum(cpu_s.values()) <= 2 * pipeline.report.wall_s

    async def test_explicit_type_not_saved_unless_target(self, tmp_path: Path) -> None:
        """An EXPLICIT type computed on the way is not written."""
        registry = Registry([Pulses(), Doubled(), Groups(), GroupsAgain()])
        store = FileStore(tmp_path, RUN, fsync=False)
        with ThreadPoolExecutor(2) as pool:
            pipeline = Pipeline(registry, store, RUN, ["groups_again"], pool)
            await pipeline.run()
        assert not store.has("groups", registry.lineage_hash("groups"))
        assert store.has("groups_again", registry.lineage_hash("groups_again"))

    def test_scratch_inputs_owned_only_by_their_sole_consumer(self, tmp_path: Path) -> None:
        """A plugin may change an input in place only when nothing else reads or saves it."""

        class Scratch(GroupsAgain):
            provides = ("scratch",)
            depends_on = ("groups", "pulses")
            scratch_inputs = ("groups", "pulses")

        def owned(targets: list[str]) -> frozenset[str]:
            scratch = Scratch()
            registry = Registry([Pulses(), Doubled(), Groups(), scratch])
            with ThreadPoolExecutor(1) as pool:
                Pipeline(registry, FileStore(tmp_path, RUN, fsync=False), RUN, targets, pool)
            return scratch.owned_inputs

        assert Scratch().owned_inputs == frozenset()  # called directly: never owned
        assert owned(["scratch"]) == {"groups"}  # pulses are saved and read by Doubled too
        assert owned(["scratch", "groups"]) == frozenset()  # groups saved as a target

    async def test_stored_types_are_loaded_not_recomputed(self, tmp_path: Path) -> None:
        """A second run loads what is stored; with everything stored there is nothing to do."""
        await _run(tmp_path, ["doubled"])
        second, store = await _run(tmp_path, ["groups"])
        assert second.report.types["doubled"].origin == "loaded"
        assert second.report.types["pulses"].origin == "loaded"
        assert second.report.types["groups"].origin == "computed"
        assert set(second.report.cpu_s) == {Groups().name, "save groups"}
        registry = _registry()
        with ThreadPoolExecutor(1) as pool:
            assert Pipeline(registry, store, RUN, ["groups"], pool).nothing_to_do

    async def test_option_change_gives_new_folder(self, tmp_path: Path) -> None:
        """A tracked option changes the lineage and so the folder; the old data stays."""
        await _run(tmp_path, ["doubled"])
        await _run(tmp_path, ["doubled"], factor=3.0)
        folders = sorted(p.name for p in tmp_path.iterdir() if "-doubled-" in p.name)
        assert len(folders) == 2

    async def test_failure_leaves_broken_temp_outputs(self, tmp_path: Path) -> None:
        """A failing source cancels everything; outputs stay _temp with the exception recorded."""
        registry = _registry(fail_at=3)
        store = FileStore(tmp_path, RUN, fsync=False)
        with ThreadPoolExecutor(2) as pool, pytest.raises(ExceptionGroup) as info:
            await Pipeline(registry, store, RUN, ["groups"], pool).run()
        assert info.group_contains(ChunkError, match="bad chunk 3")
        for data_type in ("pulses", "doubled", "groups"):
            final = store.folder(data_type, registry.lineage_hash(data_type))
            assert status_of(final) is None
            assert status_of(final.with_name(final.name + "_temp")) is Status.BROKEN

    async def test_progress_callback_sees_every_chunk(self, tmp_path: Path) -> None:
        """on_chunk is called once per produced chunk, in order per type."""
        seen: list[tuple[str, int]] = []
        registry = _registry()
        store = FileStore(tmp_path, RUN, fsync=False)
        with ThreadPoolExecutor(2) as pool:
            pipeline = Pipeline(
                registry,
                store,
                RUN,
                ["doubled"],
                pool,
                on_chunk=lambda t, c: seen.append((t, c.start)),
            )
            await asyncio.wait_for(pipeline.run(), 60)
        assert [s for t, s in seen if t == "pulses"] == [i * CHUNK_NS for i in range(5)]
        assert [s for t, s in seen if t == "doubled"] == [i * CHUNK_NS for i in range(5)]


class TestInflightLimit:
    async def test_source_waits_for_earlier_chunks(self, tmp_path: Path) -> None:
        """With a limit of 0 MB the source reads a chunk only once the previous one is gone."""
        events: list[str] = []
        registry = _registry()
        store = FileStore(tmp_path, RUN, fsync=False)
        with ThreadPoolExecutor(2) as pool:
            pipeline = Pipeline(
                registry,
                store,
                RUN,
                ["groups"],
                pool,
                on_chunk=lambda t, c: events.append(t),
                inflight_limit_mb=0,
            )
            pipeline._inflight.min_tracked_bytes = 1  # follow even these small chunks
            await asyncio.wait_for(pipeline.run(), 60)
        # Every pulses chunk is followed by its doubled chunk before the next pulses chunk.
        order = [t for t in events if t in ("pulses", "doubled")]
        assert order == ["pulses", "doubled"] * 5
        groups = open_data(store.folder("groups", registry.lineage_hash("groups"))).load_all()
        np.testing.assert_array_equal(groups, group_pulses(np.concatenate(make_pulses(5))))


class TestMerge:
    def test_merge_follows_strax_rules(self) -> None:
        """Later inputs (depends_on order) win a clash; field order follows type names."""
        from straxd.core.pipeline_inputs import merge_chunks

        a = np.zeros(
            2, [("time", np.int64), ("endtime", np.int64), ("type", np.int8), ("x", np.float32)]
        )
        b = np.zeros(
            2, [("time", np.int64), ("endtime", np.int64), ("type", np.int8), ("y", np.float32)]
        )
        a["endtime"] = b["endtime"] = 5
        a["type"], b["type"] = 1, 2
        ca = Chunk("zeta", "k", RUN, 0, 10, a)
        cb = Chunk("alpha", "k", RUN, 0, 10, b)
        merged = merge_chunks([ca, cb]).data
        assert merged.dtype.names == ("time", "endtime", "type", "y", "x")
        assert merged["type"].tolist() == [2, 2]
        merged = merge_chunks([cb, ca]).data
        assert merged["type"].tolist() == [1, 1]
        theirs = strax.Chunk.merge([_as_strax(ca), _as_strax(cb)]).data
        assert theirs.dtype.names == merged.dtype.names
        assert theirs["type"].tolist() == [2, 2]


def _as_strax(chunk: Chunk) -> strax.Chunk:
    return strax.Chunk(
        data_type=chunk.data_type,
        data_kind=chunk.data_kind,
        dtype=chunk.data.dtype,
        run_id=chunk.run_id,
        start=chunk.start,
        end=chunk.end,
        data=chunk.data,
    )


class TestInputAligner:
    async def test_rows_straddling_every_split_wait_for_the_next_step(self) -> None:
        """A long row across the pacemaker's first boundary: an empty first step (as strax),
        then everything, then the end; no endless empty steps."""
        from straxd.core.pipeline_inputs import InputAligner

        long = np.zeros(1, PULSE)
        long["time"], long["endtime"] = 0, 150  # spans the first boundary of the other input
        short = np.zeros(2, PULSE)
        short["time"], short["endtime"] = [10, 160], [20, 170]
        queues: dict[str, asyncio.Queue[Chunk | None]] = {
            "a": asyncio.Queue(),
            "b": asyncio.Queue(),
        }
        for chunk in (
            Chunk("a", "a", RUN, 0, 100, short[:1]),
            Chunk("a", "a", RUN, 100, 200, short[1:]),
        ):
            queues["a"].put_nowait(chunk)
        queues["a"].put_nowait(None)
        queues["b"].put_nowait(Chunk("b", "b", RUN, 0, 200, long))
        queues["b"].put_nowait(None)
        aligner = InputAligner(queues)
        pieces = await aligner.next()
        assert pieces is not None
        assert {(p.start, p.end, len(p)) for p in pieces.values()} == {(0, 0, 0)}
        pieces = await aligner.next()
        assert pieces is not None
        assert {(p.start, p.end) for p in pieces.values()} == {(0, 200)}
        assert len(pieces["a"]) == 2 and len(pieces["b"]) == 1
        assert await aligner.next() is None

    async def test_inputs_that_can_never_align_are_an_error(self) -> None:
        from straxd.core.pipeline_inputs import InputAligner

        long = np.zeros(1, PULSE)
        long["time"], long["endtime"] = 0, 150
        queues: dict[str, asyncio.Queue[Chunk | None]] = {
            "a": asyncio.Queue(),
            "b": asyncio.Queue(),
        }
        queues["a"].put_nowait(Chunk("a", "a", RUN, 0, 100, np.zeros(0, PULSE)))
        queues["a"].put_nowait(None)
        queues["b"].put_nowait(Chunk("b", "b", RUN, 0, 200, long))
        queues["b"].put_nowait(None)
        aligner = InputAligner(queues)
        await aligner.next()
        with pytest.raises(ChunkError, match="rows left"):
            await aligner.next()
