"""A collection read by one reader (an asyncdb MongoDB collection: ``CollectionSource``
``one_reader``) is copied as one part whose ``workers`` batches are written at once; the part's
position advances only past batches written in read order, so a resumed copy finds every key
up to its position already in the destination, even when a later batch finished first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import asyncdb
import asyncdb.movement.copier as copier
from asyncdb.movement.checkpoint import Checkpoint
from asyncdb.movement.sources import CollectionSource

N = 230  # 23 batches of 10


class Recorded:
    """What the copy did: writes in flight at once (most), the batches in write-start order,
    the positions the checkpoint advanced to, and the plans it stored."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, slow_first: bool) -> None:
        self.in_flight = self.most = 0
        self.started: list[list[str]] = []
        self.advanced: list[tuple[int, Any, bool]] = []
        self.plans: list[list[dict[str, Any]]] = []
        real_write, real_advance, real_plan = (
            copier.write_batch,
            Checkpoint.advance,
            Checkpoint.set_plan,
        )

        async def write_batch(coll: Any, docs: list[Any], **kw: Any) -> Any:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.started.append([d["id"] for d in docs])
            try:
                if slow_first and len(self.started) == 1:
                    await asyncio.sleep(0.3)  # the first batch is acknowledged last
                return await real_write(coll, docs, **kw)
            finally:
                self.in_flight -= 1

        async def advance(cp: Any, name: str, index: int, position: Any, *, done: bool) -> None:
            self.advanced.append((index, position, done))
            await real_advance(cp, name, index, position, done=done)

        async def set_plan(cp: Any, name: str, parts: list[dict[str, Any]]) -> None:
            self.plans.append(parts)
            await real_plan(cp, name, parts)

        monkeypatch.setattr(copier, "write_batch", write_batch)
        monkeypatch.setattr(Checkpoint, "advance", advance)
        monkeypatch.setattr(Checkpoint, "set_plan", set_plan)


async def _source(url: str) -> list[dict[str, Any]]:
    docs = [{"id": f"w{i:04d}", "n": i, "tags": [i % 3]} for i in range(N)]
    async with asyncdb.connect(url) as db:
        runs = db.collection("runs")
        await runs.drop()
        await runs.insert_many(docs)
    return docs


async def test_one_reader_writes_workers_batches_at_once_and_advances_in_order(
    mongo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    docs = await _source(mongo_url)
    seen = Recorded(monkeypatch, slow_first=True)
    dst = f"sqlite:///{tmp_path / 'dst.db'}"
    report = await asyncdb.copy(mongo_url, dst, workers=4, batch_size=10, verify=True)
    assert report.read == report.written == N and report.verify is not None
    assert report.verify.equal
    assert seen.plans == [[{"lo": None, "hi": None, "plain": False}]]  # one part, one reader
    assert seen.most == 4  # yet the workers' 4 writes at once
    # batches start in key order; the checkpoint advances past each in that order only,
    # although the first batch was acknowledged after the next three
    assert [ids for ids in seen.started] == [
        [d["id"] for d in docs[i : i + 10]] for i in range(0, N, 10)
    ]
    positions = [p for _, p, done in seen.advanced if not done]
    assert positions == [[docs[min(i + 9, N - 1)]["id"]] for i in range(0, N, 10)]
    async with asyncdb.connect(dst) as db:
        got = await db.collection("runs").find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert got == docs


async def test_a_copy_stopped_with_batches_in_flight_resumes_without_gaps(
    mongo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that stops while writes are in flight (a later one failing, ``on_error="stop"``)
    left its checkpoint at a position whose every key is in the destination; the resumed copy
    ends equal, each key once."""
    monkeypatch.chdir(tmp_path)
    docs = await _source(mongo_url)
    checkpoint = tmp_path / "cp.json"
    dst = f"sqlite:///{tmp_path / 'dst.db'}"
    seen = Recorded(monkeypatch, slow_first=True)
    real = copier.write_batch

    async def failing(coll: Any, batch: list[Any], **kw: Any) -> Any:
        if batch[0]["id"] == "w0100":  # the 11th batch: the service fails
            raise asyncdb.BackendUnavailable("down")
        return await real(coll, batch, **kw)

    monkeypatch.setattr(copier, "write_batch", failing)
    with pytest.raises(asyncdb.BackendUnavailable):
        await asyncdb.copy(
            mongo_url, dst, workers=4, batch_size=10, checkpoint=checkpoint, checkpoint_every=0
        )
    positions = [p for _, p, done in seen.advanced if not done]
    assert positions and positions[-1][0] < "w0100"
    async with asyncdb.connect(dst) as db:
        stored = {d["id"] for d in await db.collection("runs").find({}, allow_scan=True).to_list()}
    assert {d["id"] for d in docs if d["id"] <= positions[-1][0]} <= stored
    monkeypatch.setattr(copier, "write_batch", real)
    report = await asyncdb.copy(
        mongo_url, dst, workers=4, batch_size=10, checkpoint=checkpoint, resume=True
    )
    assert report.verify is not None and report.verify.equal
    async with asyncdb.connect(dst) as db:
        got = await db.collection("runs").find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert got == docs


async def test_one_part_resumes_after_its_position_across_key_types(mongo_url: str) -> None:
    """A single part is planned without the end reads that decide ``plain``: its resumed
    reads compare across key types, so a position among numbers still reads every string and
    date key after it, in key order."""
    from datetime import UTC, datetime, timedelta

    when = datetime(2025, 3, 14, tzinfo=UTC)
    keys: list[Any] = [*range(12), *(f"s{i:02d}" for i in range(12))]
    keys += [when + timedelta(seconds=i) for i in range(12)]
    async with asyncdb.connect(mongo_url) as db:
        coll = db.collection("mixed")
        await coll.drop()
        await coll.insert_many([{"id": k, "n": i} for i, k in enumerate(keys)])
        source = CollectionSource(coll, "mongo")
        assert source.one_reader
        (part,) = await source.parts(1)
        read = [
            d["id"] for docs, _ in [b async for b in source.batches(part, None, 5)] for d in docs
        ]
        assert read == keys
        resumed = [b async for b in source.batches(part, [7], 5)]
        assert [d["id"] for docs, _ in resumed for d in docs] == keys[8:]
        assert resumed[-1][1] == [keys[-1]]
