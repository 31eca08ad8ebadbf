"""PostgreSQL read replicas against a real streaming replica (``pg_basebackup -R``) on loopback:
reads outside transactions go to the replica, a task reads its own writes (replay paused on the
replica to make the lag certain), transactions stay on the primary, and the replica stopped
under load fails no read and no read-your-write is stale."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
import pytest
from servers.postgres_replica import PostgresReplica

import asyncdb
from asyncdb import Database
from asyncdb.errors import ConfigurationError, NotSupported

T = TypeVar("T")


def replica_reads(db: Database) -> int:
    stats: dict[str, Any] = db._store.replica_stats()  # type: ignore[attr-defined]
    return int(sum(r["reads"] for r in stats["replicas"]))


async def as_other_task(work: Awaitable[T]) -> T:
    """``work`` in a task that has written nothing (a fresh context)."""
    return await asyncio.create_task(work, context=contextvars.Context())  # type: ignore[arg-type]


async def replica_sees(replica_url: str, table: str, count: int) -> None:
    conn = await asyncpg.connect(replica_url)
    try:
        for _ in range(500):
            try:
                if await conn.fetchval(f'SELECT count(*) FROM "{table}"') == count:
                    return
            except asyncpg.UndefinedTableError:
                pass
            await asyncio.sleep(0.01)
        raise AssertionError(f"the replica never showed {count} rows of {table}")
    finally:
        await conn.close()


async def set_replay(replica_url: str, paused: bool) -> None:
    conn = await asyncpg.connect(replica_url)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
    finally:
        await conn.close()


async def test_reads_go_to_the_replica_and_a_task_reads_its_own_writes(
    postgres_url: str, postgres_replica_url: str
) -> None:
    async with asyncdb.connect(
        f"{postgres_url}?batch_size=2", replicas=[postgres_replica_url], replica_wait=0.2
    ) as db:
        items = db.collection("items", allow_scan=True)
        await items.insert_many([{"id": f"d{i}", "n": 0} for i in range(5)])
        await replica_sees(postgres_replica_url, "items", 5)

        async def reads() -> tuple[Any, ...]:
            return (
                await items.find_one({"id": "d1"}),
                await items.find({}, sort=[("id", 1)]).to_list(),  # streamed: batch_size=2
                await items.count_documents({"n": 0}),
            )

        before = replica_reads(db)
        one, listed, count = await as_other_task(reads())
        assert one == {"id": "d1", "n": 0} and len(listed) == 5 and count == 5
        assert replica_reads(db) >= before + 3  # all three from the replica

        await set_replay(postgres_replica_url, paused=True)
        try:
            # This task's reads after its own writes see them (the replica cannot: replay is
            # paused, so they go to the primary after replica_wait); another task's reads
            # still go to the replica and see what it replayed.
            for n in range(1, 4):
                await items.update_one({"id": "d1"}, {"$set": {"n": n}})
                assert await items.find_one({"id": "d1"}) == {"id": "d1", "n": n}
                assert await items.count_documents({"n": n}) == 1
            other = await as_other_task(items.find_one({"id": "d1"}))
            assert other == {"id": "d1", "n": 0}
        finally:
            await set_replay(postgres_replica_url, paused=False)
        await replica_sees(postgres_replica_url, "items", 5)
        for _ in range(200):  # once replayed, the writer's reads are the replica's again
            before = replica_reads(db)
            assert await items.find_one({"id": "d1"}) == {"id": "d1", "n": 3}
            if replica_reads(db) > before:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("read-your-writes reads never returned to the replica")


async def test_transactions_and_their_reads_stay_on_the_primary(
    postgres_url: str, postgres_replica_url: str
) -> None:
    async with asyncdb.connect(postgres_url, replicas=[postgres_replica_url]) as db:
        await db.collection("items").insert_one({"id": "a", "n": 1})
        async with db.transaction() as tx:
            items = tx.collection("items")
            await items.update_one({"id": "a"}, {"$set": {"n": 2}})
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 2}  # uncommitted
        assert await db.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 2}


async def test_replica_stopped_under_load_fails_no_read_and_reads_return_to_it(
    postgres_url: str, postgres_replica_url: str, postgres_replica: PostgresReplica
) -> None:
    db = await asyncdb.connect(
        postgres_url,
        replicas=[postgres_replica_url],
        replica_timeout=0.5,
        replica_cooldown=0.3,
        replica_wait=0.05,
    )
    items = db.collection("items", allow_scan=True)
    keys = [f"k{i}" for i in range(4)]
    await items.insert_many([{"id": k, "n": 0} for k in keys])
    await replica_sees(postgres_replica_url, "items", 4)
    failures: list[str] = []
    stale: list[str] = []
    reads = [0]
    stop = asyncio.Event()

    async def writer(key: str) -> None:  # writes, then reads its own write
        n = 0
        while not stop.is_set():
            n += 1
            try:
                await items.update_one({"id": key}, {"$set": {"n": n}})
                doc = await items.find_one({"id": key})
            except Exception as exc:
                failures.append(f"writer {key}: {exc!r}")
                return
            if doc != {"id": key, "n": n}:
                stale.append(f"{key}: {doc} after writing {n}")
            await asyncio.sleep(0.005)

    async def reader() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                await items.find_one({"id": keys[i % 4]})
                await items.count_documents({"n": {"$gte": 0}})
            except Exception as exc:
                failures.append(f"reader: {exc!r}")
                return
            reads[0] += 1
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(writer(k)) for k in keys]
    tasks += [asyncio.create_task(reader(), context=contextvars.Context()) for _ in range(4)]
    try:
        await asyncio.sleep(0.5)
        served_before = replica_reads(db)
        await asyncio.to_thread(postgres_replica.stop)
        await asyncio.sleep(1.0)
        reads_down = reads[0]
        served_down = replica_reads(db)
        await asyncio.to_thread(postgres_replica.start)
        await asyncio.sleep(1.5)
        reads_after = reads[0]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        if postgres_replica.process is None:
            postgres_replica.start()
    stats = db._store.replica_stats()  # type: ignore[attr-defined]
    await db.close()
    assert failures == []
    assert stale == []
    assert served_before > 0
    assert stats["replicas"][0]["failures"] >= 1
    assert reads_after > reads_down > 0
    assert replica_reads_after(stats) > served_down  # the replica serves again


def replica_reads_after(stats: dict[str, Any]) -> int:
    return int(sum(r["reads"] for r in stats["replicas"]))


async def test_replica_options_are_checked_before_any_io(postgres_url: str, tmp_path: Any) -> None:
    for bad in ("postgresql://x/y", ["mysql://x/y"], [1]):
        with pytest.raises(ConfigurationError):
            await asyncdb.connect(postgres_url, replicas=bad)
    with pytest.raises(ConfigurationError):
        await asyncdb.connect(postgres_url, replicas=[postgres_url], replica_wait="soon")
    with pytest.raises(NotSupported):
        await asyncdb.connect(f"sqlite:///{tmp_path / 'x.db'}", replicas=[postgres_url])
