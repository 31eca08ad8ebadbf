"""The Redis read-through cache on a real Redis (the ``redis_url`` fixture, flushed per test) in
front of the ``memory://`` and ``sqlite:///`` backends. Nothing is mocked: backend calls are
counted by wrapping the store collection's methods, and slow or dead Redis is a real server that
is blocked by a busy Lua script or stopped."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

import asyncdb
from asyncdb import Database
from asyncdb.errors import ConfigurationError

# Blocks the whole server for ARGV[1] microseconds: a real slow Redis for timeout tests.
BUSY_SCRIPT = """
local t0 = redis.call('TIME')
repeat local t = redis.call('TIME')
until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > tonumber(ARGV[1])
return 1
"""

TEST_TIMEOUT = 1.0  # per Redis call: generous on a loaded 2-core machine, except in fault tests


def count_calls(
    coll: asyncdb.Collection, method: str, hold: Callable[[], Awaitable[None]] | None = None
) -> list[int]:
    """Wrap ``coll``'s store collection method to count backend calls (optionally held until
    ``hold`` returns, so concurrent callers really overlap)."""
    store = coll._store
    original = getattr(store, method)
    calls = [0]

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if hold is not None:
            await hold()
        return await original(*args, **kwargs)

    setattr(store, method, counted)
    return calls


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


@pytest.fixture
async def db(sqlite_url: str, redis_url: str) -> AsyncIterator[Database]:
    database = await asyncdb.connect(sqlite_url, cache=redis_url, cache_timeout=TEST_TIMEOUT)
    try:
        yield database
    finally:
        await database.close()


def stats(db: Database) -> dict[str, Any]:
    assert db.cache is not None
    return db.cache.stats()


async def test_find_one_by_key_is_served_by_redis_after_the_first_read(db: Database) -> None:
    alerts = db.collection("alerts")
    when = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    doc = {"id": "a1", "n": 1, "ts": when, "price": Decimal("1.10"), "raw": b"\x00\xff"}
    await alerts.insert_one(doc)
    gets = count_calls(alerts, "get")
    assert await alerts.find_one({"id": "a1"}) == doc
    assert await alerts.find_one({"id": "a1"}) == doc  # datetime, Decimal, bytes round-trip
    assert gets[0] == 1
    s = stats(db)
    assert (s["hits"], s["misses"], s["fills"]) == (1, 1, 1)


async def test_a_cached_document_is_a_fresh_object_on_every_hit(db: Database) -> None:
    alerts = db.collection("alerts")
    await alerts.insert_one({"id": "a1", "tags": ["x"]})
    first = await alerts.find_one({"id": "a1"})
    assert first is not None
    first["tags"].append("mutated")
    assert await alerts.find_one({"id": "a1"}) == {"id": "a1", "tags": ["x"]}


async def test_missing_document_is_cached_and_an_insert_invalidates_it(db: Database) -> None:
    alerts = db.collection("alerts")
    await alerts.insert_one({"id": "other"})
    assert await alerts.find_one({"id": "a1"}) is None
    assert await alerts.find_one({"id": "a1"}) is None
    assert stats(db)["hits"] == 1
    await alerts.insert_one({"id": "a1", "n": 1})
    assert await alerts.find_one({"id": "a1"}) == {"id": "a1", "n": 1}


async def test_query_results_count_and_pages_are_cached(db: Database) -> None:
    items = db.collection("items", allow_scan=True)
    await items.insert_many([{"id": f"i{i}", "n": i} for i in range(10)])
    finds = count_calls(items, "find")
    counts = count_calls(items, "count")
    for _ in range(3):
        assert [
            d["id"] for d in await items.find({"n": {"$gte": 5}}, sort=[("n", 1)]).to_list()
        ] == [
            "i5",
            "i6",
            "i7",
            "i8",
            "i9",
        ]
        assert [d["n"] async for d in items.find({"n": {"$lt": 2}}, sort=[("n", -1)])] == [1, 0]
        assert await items.count_documents({"n": {"$gte": 3}}) == 7
        page = await items.find_page({}, sort=[("n", 1)], limit=4)
        assert [d["n"] for d in page.items] == [0, 1, 2, 3]
        assert page.next_cursor is not None
        more = await items.find_page({}, sort=[("n", 1)], limit=4, cursor=page.next_cursor)
        assert [d["n"] for d in more.items] == [4, 5, 6, 7]
    assert finds[0] == 4  # two finds and two pages, each loaded once
    assert counts[0] == 1
    assert stats(db)["hits"] == 10


async def test_query_key_is_type_exact_one_and_true_differ(db: Database) -> None:
    items = db.collection("items", allow_scan=True)
    await items.insert_many([{"id": "int", "a": 1}, {"id": "bool", "a": True}])
    for _ in range(2):
        assert [d["id"] for d in await items.find({"a": 1}).to_list()] == ["int"]
        assert [d["id"] for d in await items.find({"a": True}).to_list()] == ["bool"]
        assert [d["id"] for d in await items.find({"a": 1.0}).to_list()] == ["int"]
        assert await items.count_documents({"a": True}) == 1
    assert stats(db)["misses"] == 4  # 1, True, 1.0 and the count: four entries


async def test_projection_skip_limit_and_sort_are_part_of_the_key(db: Database) -> None:
    items = db.collection("items", allow_scan=True)
    await items.insert_many([{"id": f"i{i}", "n": i, "x": "y"} for i in range(5)])
    a = await items.find({}, sort=[("n", 1)], limit=2).to_list()
    b = await items.find({}, sort=[("n", -1)], limit=2).to_list()
    c = await items.find({}, sort=[("n", 1)], skip=1, limit=2).to_list()
    d = await items.find({}, projection={"n": 1}, sort=[("n", 1)], limit=2).to_list()
    assert [x["n"] for x in a] == [0, 1] and [x["n"] for x in b] == [4, 3]
    assert [x["n"] for x in c] == [1, 2] and d[0] == {"id": "i0", "n": 0}
    assert stats(db)["hits"] == 0


async def test_every_write_kind_invalidates_what_it_changed(db: Database) -> None:
    items = db.collection("items", allow_scan=True)
    await items.insert_many([{"id": "a", "n": 1, "g": "x"}, {"id": "b", "n": 2, "g": "x"}])

    async def snapshot() -> tuple[Any, ...]:
        return (
            await items.find_one({"id": "a"}),
            await items.find_one({"id": "b"}),
            await items.find({}, sort=[("id", 1)]).to_list(),
            await items.count_documents({"g": "x"}),
        )

    async def fresh() -> tuple[Any, ...]:
        return (
            await items.find_one({"id": "a"}, cache=False),
            await items.find_one({"id": "b"}, cache=False),
            await items.find({}, sort=[("id", 1)], cache=False).to_list(),
            await items.count_documents({"g": "x"}, cache=False),
        )

    writes: list[Callable[[], Awaitable[Any]]] = [
        lambda: items.update_one({"id": "a"}, {"$inc": {"n": 1}}),
        lambda: items.update_many({"g": "x"}, {"$inc": {"n": 10}}),  # keys unknown: doc epoch
        lambda: items.replace_one({"n": 12}, {"n": 0, "g": "y"}),  # by filter
        lambda: items.find_one_and_update({"id": "b"}, {"$set": {"g": "z"}}),
        lambda: items.update_one({"id": "c"}, {"$set": {"g": "x"}}, upsert=True),
        lambda: items.replace_one({"g": "nope"}, {"id": "d", "g": "x"}, upsert=True),
        lambda: items.delete_one({"id": "c"}),
        lambda: items.delete_many({"g": "x"}),
        lambda: items.insert_one({"id": "a2", "g": "x"}),
    ]
    for write in writes:
        await snapshot()
        await snapshot()  # the second is served from the cache
        await write()
        assert await snapshot() == await fresh()


async def test_cache_false_and_ttl_collections_bypass_the_cache(db: Database) -> None:
    items = db.collection("items")
    await items.insert_one({"id": "a"})
    gets = count_calls(items, "get")
    await items.find_one({"id": "a"}, cache=False)
    await items.find_one({"id": "a"}, cache=False)
    assert gets[0] == 2
    timed = db.collection("timed", ttl="expires_at")
    await timed.insert_one({"id": "t", "expires_at": datetime(2999, 1, 1, tzinfo=UTC)})
    await timed.find_one({"id": "t"})
    assert stats(db)["bypass"] == 3 and stats(db)["hits"] == 0


async def test_transaction_reads_bypass_and_invalidation_waits_for_commit(db: Database) -> None:
    items = db.collection("items")
    await items.insert_one({"id": "a", "n": 1})
    await items.find_one({"id": "a"})
    before = stats(db)["invalidations"]
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.collection("items").update_one({"id": "a"}, {"$set": {"n": 99}})
            raise RuntimeError("roll back")
    assert stats(db)["invalidations"] == before  # nothing on rollback
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
    async with db.transaction() as tx:
        t_items = tx.collection("items")
        await t_items.update_one({"id": "a"}, {"$set": {"n": 2}})
        assert await t_items.find_one({"id": "a"}) == {"id": "a", "n": 2}  # bypasses
        assert stats(db)["invalidations"] == before  # not before the commit
    assert stats(db)["invalidations"] == before + 1
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 2}


async def test_100_concurrent_misses_make_one_backend_call(sqlite_url: str, redis_url: str) -> None:
    # A generous timeout: 100 new connections at once on a loaded machine must not time out
    # (a fail-open read is a backend call of its own, which is not what this test is about).
    async with asyncdb.connect(sqlite_url, cache=redis_url, cache_timeout=10.0) as db:
        await _concurrent_misses(db)


async def _concurrent_misses(db: Database) -> None:
    items = db.collection("items", allow_scan=True)
    await items.insert_one({"id": "hot", "n": 1})
    waits_wanted = [99]

    async def until_all_arrived() -> None:
        # The backend call is held until the other 99 misses have joined its flight (or 10 s
        # passed): on a loaded machine 100 new Redis connections spread their first reads over
        # more than any fixed delay, and a miss that arrives after the flight ended is a new
        # flight (and a second call) by design, not a concurrent miss.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while stats(db)["single_flight_waits"] < waits_wanted[0] and loop.time() < deadline:  # noqa: ASYNC110 (stats have no event)
            await asyncio.sleep(0.005)

    gets = count_calls(items, "get", hold=until_all_arrived)
    finds = count_calls(items, "find", hold=until_all_arrived)
    docs = await asyncio.gather(*(items.find_one({"id": "hot"}) for _ in range(100)))
    assert all(d == {"id": "hot", "n": 1} for d in docs)
    assert gets[0] == 1
    assert stats(db)["single_flight_waits"] == 99
    waits_wanted[0] = 198
    lists = await asyncio.gather(*(items.find({"n": 1}).to_list() for _ in range(100)))
    assert all(x == [{"id": "hot", "n": 1}] for x in lists)
    assert finds[0] == 1
    assert stats(db)["single_flight_waits"] == 198


async def test_no_read_that_starts_after_a_write_returned_sees_the_old_value(
    db: Database,
) -> None:
    """Writers bump counters and publish each value after the write returns; every read that
    starts later must see at least that value (find_one by key, a query and a count)."""
    items = db.collection("counters", allow_scan=True)
    keys = [f"c{i}" for i in range(4)]
    await items.insert_many([{"id": k, "n": 0} for k in keys])
    committed = dict.fromkeys(keys, 0)
    stale: list[str] = []
    rng = random.Random(7)

    async def writer(key: str) -> None:
        for _ in range(40):
            if rng.random() < 0.5:
                after = await items.find_one_and_update({"id": key}, {"$inc": {"n": 1}})
            else:  # a filter that pins no key: invalidates through the doc epoch
                await items.update_many(
                    {"n": {"$gte": 0}, "id": {"$gte": key, "$lte": key}}, {"$inc": {"n": 1}}
                )
                after = await items.find_one({"id": key}, cache=False)
            assert after is not None
            committed[key] = max(committed[key], after["n"])
            await asyncio.sleep(0)

    async def reader() -> None:
        for i in range(150):
            key = keys[i % len(keys)]
            floor = committed[key]
            doc = await items.find_one({"id": key})
            if doc is None or doc["n"] < floor:
                stale.append(f"find_one {key}: {doc} < {floor}")
            floor = committed[key]
            listed = await items.find({"id": key}).to_list()
            if listed[0]["n"] < floor:
                stale.append(f"find {key}: {listed} < {floor}")
            floor = committed[key]
            if await items.count_documents({"id": key, "n": {"$gte": floor}}) != 1:
                stale.append(f"count {key} < {floor}")

    await asyncio.gather(*(writer(k) for k in keys), *(reader() for _ in range(6)))
    assert stale == []
    s = stats(db)
    assert s["hits"] > 0  # the cache served reads (a load-induced timeout only falls back)


async def test_l1_serves_hits_and_is_invalidated_across_processes(
    sqlite_url: str, redis_url: str
) -> None:
    one = await asyncdb.connect(
        sqlite_url, cache=redis_url, cache_l1=1000, cache_timeout=TEST_TIMEOUT
    )
    two = await asyncdb.connect(
        sqlite_url, cache=redis_url, cache_l1=1000, cache_timeout=TEST_TIMEOUT
    )
    try:
        for database in (one, two):  # the pub/sub listeners are subscribed
            for _ in range(100):
                if stats(database)["l1_listening"]:
                    break
                await asyncio.sleep(0.02)
        a, b = one.collection("items"), two.collection("items")
        await a.insert_one({"id": "x", "n": 1})
        assert await a.find_one({"id": "x"}) == {"id": "x", "n": 1}  # miss: fills L1
        assert await a.find_one({"id": "x"}) == {"id": "x", "n": 1}
        assert stats(one)["l1_hits"] == 1
        await a.update_one({"id": "x"}, {"$set": {"n": 2}})  # own write: L1 dropped at once
        assert await a.find_one({"id": "x"}) == {"id": "x", "n": 2}
        await a.find_one({"id": "x"})
        await b.update_one({"id": "x"}, {"$set": {"n": 3}})  # another process's write
        # Cross-process L1 invalidation is asynchronous, bounded by pub/sub latency.
        seen = None
        for _ in range(200):
            seen = await a.find_one({"id": "x"})
            if seen == {"id": "x", "n": 3}:
                break
            await asyncio.sleep(0.01)
        assert seen == {"id": "x", "n": 3}
        assert stats(one)["l1_remote_invalidations"] >= 1
    finally:
        await one.close()
        await two.close()


async def test_slow_redis_times_out_fails_open_and_replays_the_lost_invalidation(
    db: Database, redis_url: str
) -> None:
    """A busy Lua script blocks the real server: the write's invalidation times out, the write
    still returns, and the next cached read replays it before serving (no stale hit)."""
    assert db.cache is not None
    db.cache.config.timeout = 0.05
    items = db.collection("items")
    await items.insert_one({"id": "a", "n": 1})
    await items.find_one({"id": "a"})
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}  # a hit: the entry exists
    blocker = redis.asyncio.from_url(redis_url)
    try:
        busy = asyncio.create_task(blocker.eval(BUSY_SCRIPT, 0, 400_000))
        await asyncio.sleep(0.05)
        await items.update_one({"id": "a"}, {"$set": {"n": 2}})  # invalidation times out
        assert stats(db)["invalidations_pending"] == 1
        await busy
        # Redis answers again and still holds the old entry under the old token.
        assert await items.find_one({"id": "a"}) == {"id": "a", "n": 2}
        assert stats(db)["replays"] >= 1 and stats(db)["pending_collections"] == 0
    finally:
        await blocker.aclose()


async def test_cache_url_and_options_are_checked(sqlite_url: str) -> None:
    with pytest.raises(ConfigurationError):
        await asyncdb.connect(sqlite_url, cache="memcached://x")
    with pytest.raises(ConfigurationError):
        await asyncdb.connect(sqlite_url, cache="redis://127.0.0.1:1/0", cache_bogus=1)


def test_the_core_imports_no_redis_without_a_cache() -> None:
    code = (
        "import asyncio, sys, asyncdb\n"
        "async def main():\n"
        "    db = await asyncdb.connect('memory://')\n"
        "    await db.collection('a').insert_one({'id': 'x'})\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


async def test_results_above_max_items_are_streamed_and_not_cached(
    sqlite_url: str, redis_url: str
) -> None:
    db = await asyncdb.connect(sqlite_url, cache=redis_url, cache_max_items=3)
    try:
        items = db.collection("items", allow_scan=True)
        await items.insert_many([{"id": f"i{i}", "n": i} for i in range(5)])
        for _ in range(2):
            assert [d["n"] async for d in items.find({}, sort=[("n", 1)])] == [0, 1, 2, 3, 4]
        assert [d["n"] for d in await items.find({}, sort=[("n", 1)], limit=3).to_list()] == [
            0,
            1,
            2,
        ]
        assert await items.find({}, sort=[("n", 1)], limit=3).to_list() != []
        s = stats(db)
        assert s["hits"] == 1 and s["fills"] == 1  # only the limited query was cached
    finally:
        await db.close()


async def test_two_memory_databases_never_share_cache_entries(redis_url: str) -> None:
    one = await asyncdb.connect("memory://", cache=redis_url)
    two = await asyncdb.connect("memory://", cache=redis_url)
    try:
        await one.collection("items").insert_one({"id": "a", "n": 1})
        await two.collection("items").insert_one({"id": "a", "n": 2})
        for _ in range(2):
            assert await one.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 1}
            assert await two.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 2}
    finally:
        await one.close()
        await two.close()


async def test_connections_with_other_options_share_invalidations(
    sqlite_url: str, redis_url: str
) -> None:
    """Processes reaching one database with different connection options (pool sizes,
    timeouts) share its cache: a write through one invalidates what the other cached."""
    writer = await asyncdb.connect(sqlite_url, cache=redis_url, cache_timeout=TEST_TIMEOUT)
    reader = await asyncdb.connect(
        f"{sqlite_url}?busy_timeout=2000", cache=redis_url, cache_timeout=TEST_TIMEOUT
    )
    try:
        await writer.collection("items").insert_one({"id": "a", "n": 1})
        items = reader.collection("items")
        assert (await items.find_one({"id": "a"}))["n"] == 1  # type: ignore[index]
        assert (await items.find_one({"id": "a"}))["n"] == 1  # type: ignore[index]  # cached
        await writer.collection("items").update_one({"id": "a"}, {"$set": {"n": 2}})
        assert (await items.find_one({"id": "a"}))["n"] == 2  # type: ignore[index]
    finally:
        await reader.close()
        await writer.close()
