"""AsyncDBSaver beyond the conformance suite: large states, retention, key-only reads, the
delta-channel walk and the sync twins, on every backend."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBSaver


async def _put(
    saver: AsyncDBSaver,
    thread_id: str,
    parent: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    config = generate_config(thread_id)
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    checkpoint = generate_checkpoint(channel_values=values or {})
    checkpoint["channel_versions"] = {k: 1 for k in values or {}}
    md = generate_metadata(**metadata)
    stored: dict[str, Any] = await saver.aput(config, checkpoint, md, {k: 1 for k in values or {}})
    return stored


async def test_10mb_checkpoint_round_trips_and_readers_never_see_half(
    db: asyncdb.Database,
) -> None:
    saver = AsyncDBSaver(db)
    tid = str(uuid4())
    first = await _put(saver, tid, values={"small": "v1"})
    big = os.urandom(10 * 1024 * 1024)
    seen: list[Any] = []

    async def read_while_writing() -> None:
        for _ in range(200):
            tup = await saver.aget_tuple(generate_config(tid))
            assert tup is not None
            seen.append(tup.checkpoint["channel_values"])
            if "blob" in tup.checkpoint["channel_values"]:
                return

    async def write() -> dict[str, Any]:
        return await _put(saver, tid, first, values={"blob": big})

    stored, _ = await asyncio.gather(write(), read_while_writing())
    await saver.aput_writes(stored, [("payload", big[: 1024 * 1024])], "task-1")
    tup = await saver.aget_tuple(stored)
    assert tup is not None
    assert tup.checkpoint["channel_values"]["blob"] == big
    assert tup.pending_writes == [("task-1", "payload", big[: 1024 * 1024])]
    assert all(v == {"small": "v1"} or v["blob"] == big for v in seen)
    doc = await saver.checkpoints.find_one(
        {"thread_id": tid, "ck": "|" + stored["configurable"]["checkpoint_id"]}
    )
    assert doc is not None and ("cn" in doc) == (len(big) > saver.chunks.limit)
    await saver.adelete_thread(tid)
    assert await saver.chunks.coll.count_documents({"thread_id": tid}) == 0


async def test_a_chunked_checkpoint_saved_again_keeps_only_its_new_chunks(
    db: asyncdb.Database,
) -> None:
    """Saving a checkpoint again (same id) replaces it; the chunks of the replaced version are
    deleted, and a reader that still held that version reads the new one instead of failing."""
    saver = AsyncDBSaver(db)
    saver.chunks.limit = 64 * 1024  # as on DynamoDB: blobs beyond it are split into chunks
    tid = str(uuid4())
    config = generate_config(tid)
    checkpoint = generate_checkpoint(channel_values={"blob": os.urandom(200_000)})
    stored = await saver.aput(config, checkpoint, generate_metadata(step=1), {})
    key = {"thread_id": tid, "ck": "|" + stored["configurable"]["checkpoint_id"]}
    first = await saver.checkpoints.find_one(key)
    assert first is not None and first["cn"] > 1
    one_version = await saver.chunks.coll.count_documents({"thread_id": tid})
    assert one_version == first["cn"]

    again = {**checkpoint, "channel_values": {"blob": os.urandom(200_000)}}
    await saver.aput(config, again, generate_metadata(step=2), {})
    assert await saver.chunks.coll.count_documents({"thread_id": tid}) == one_version
    tup = await saver.aget_tuple(stored)
    assert tup is not None
    assert tup.checkpoint["channel_values"]["blob"] == again["channel_values"]["blob"]
    assert tup.metadata["step"] == 2
    # a reader that listed the first version before the second was saved: its chunks are gone
    late = await saver._tuple(first, [])
    assert late.checkpoint["channel_values"]["blob"] == again["channel_values"]["blob"]
    await saver.adelete_thread(tid)


async def test_expire_threads_keeps_a_checkpoint_saved_while_it_runs(
    db: asyncdb.Database,
) -> None:
    """A thread resumed while it is being expired keeps the new checkpoint, whole."""
    saver = AsyncDBSaver(db)
    saver.chunks.limit = 64 * 1024
    tid = str(uuid4())
    p = await _put(saver, tid, step=0)
    await saver.aput_writes(p, [("ch", "old")], "t")
    await asyncio.sleep(0.6)
    real_find_one = saver.checkpoints.find_one
    resumed: list[dict[str, Any]] = []

    async def resume_after_the_check(*args: Any, **kwargs: Any) -> Any:
        found = await real_find_one(*args, **kwargs)
        if not resumed and "saved_at" in (args[0] if args else kwargs["filter"]):
            # the thread looked idle; it is resumed before expiry deletes anything
            resumed.append(await _put(saver, tid, p, values={"blob": os.urandom(150_000)}))
        return found

    saver.checkpoints.find_one = resume_after_the_check  # type: ignore[method-assign]
    try:
        assert await saver.aexpire_threads(older_than=timedelta(seconds=0.5)) == 0
    finally:
        del saver.checkpoints.find_one
    assert resumed
    tup = await saver.aget_tuple(generate_config(tid))
    assert tup is not None
    assert (
        tup.config["configurable"]["checkpoint_id"] == (resumed[0]["configurable"]["checkpoint_id"])
    )
    assert len(tup.checkpoint["channel_values"]["blob"]) == 150_000
    assert await saver.aget_tuple(p) is None  # the idle part went, with its writes
    assert await saver.writes.count_documents({"thread_id": tid}) == 0
    await saver.adelete_thread(tid)


async def test_newest_checkpoint_is_found_by_key_beyond_max_scan(db: asyncdb.Database) -> None:
    """A thread longer than the collections' max_scan: the newest checkpoint is still found
    (a key read or a pushed-down sort, never a client sort that would raise ScanRequired)."""
    saver = AsyncDBSaver(db, max_scan=3)
    tid = str(uuid4())
    parent = None
    for step in range(6):
        parent = await _put(saver, tid, parent, step=step)
    tup = await saver.aget_tuple(generate_config(tid))
    assert tup is not None and tup.metadata["step"] == 5
    plan = await saver.checkpoints.explain({"thread_id": tid, "ck": {"$gte": "|", "$lt": "}"}})
    assert not plan.scan


async def test_expire_threads_removes_whole_idle_threads_only(db: asyncdb.Database) -> None:
    saver = AsyncDBSaver(db)
    idle, active = str(uuid4()), str(uuid4())
    p = await _put(saver, idle, step=0)
    p = await _put(saver, idle, p, step=1)
    await saver.aput_writes(p, [("ch", "v")], "t")
    old = await _put(saver, active, step=0)
    await asyncio.sleep(0.6)
    await _put(saver, active, old, step=1)
    assert await saver.aexpire_threads(older_than=timedelta(seconds=0.5)) == 1
    assert await saver.aget_tuple(generate_config(idle)) is None
    assert await saver.writes.count_documents({"thread_id": idle}) == 0
    kept = [t.metadata["step"] async for t in saver.alist(generate_config(active))]
    assert kept == [1, 0]  # the active thread keeps its old checkpoint too


async def test_delta_channel_history_matches_the_base_class_walk(db: asyncdb.Database) -> None:
    saver = AsyncDBSaver(db)
    tid = str(uuid4())
    c0 = await _put(saver, tid, values={"log": ["seed"]})
    await saver.aput_writes(c0, [("log", "a"), ("other", 1)], "t0", "p0")
    c1 = await _put(saver, tid, c0)
    await saver.aput_writes(c1, [("log", "b")], "t1", "p1")
    await saver.aput_writes(c1, [("log", "c")], "t0", "p0")
    c2 = await _put(saver, tid, c1)
    ours = await saver.aget_delta_channel_history(config=c2, channels=["log", "other", "none"])
    base = await BaseCheckpointSaver.aget_delta_channel_history(
        saver, config=c2, channels=["log", "other", "none"]
    )
    assert ours == base
    assert [w[2] for w in ours["log"]["writes"]] == ["a", "c", "b"]
    assert ours["log"]["seed"] == ["seed"]


async def test_keep_latest_refuses_delta_channel_threads(db: asyncdb.Database) -> None:
    saver = AsyncDBSaver(db)
    tid = str(uuid4())
    p = await _put(saver, tid, counters_since_delta_snapshot={"log": [1, 1]})
    await _put(saver, tid, p)
    with pytest.raises(NotImplementedError):
        await saver.aprune([tid], strategy="keep_latest")
    assert len([t async for t in saver.alist(generate_config(tid))]) == 2
    with pytest.raises(ValueError):
        await saver.aprune([tid], strategy="newest")


async def test_sync_twins_run_from_another_thread_and_refuse_the_loop_thread(
    db: asyncdb.Database,
) -> None:
    saver = AsyncDBSaver(db)
    stored = await _put(saver, str(uuid4()), step=7)
    tup = await asyncio.to_thread(saver.get_tuple, stored)
    assert tup is not None and tup.metadata["step"] == 7
    listed = await asyncio.to_thread(lambda: list(saver.list(stored)))
    assert [t.metadata["step"] for t in listed] == [7]
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(stored)
