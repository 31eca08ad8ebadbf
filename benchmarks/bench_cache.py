"""The Redis read-through cache: a hit against a raw Redis GET + ``orjson.loads`` of the same
document, an in-process (L1) hit against a Redis hit, and 100 concurrent misses on one key.

One run, one throwaway Redis (tests/servers/redis.py), loopback. Raw is ``GET`` of the same
document's JSON under a plain key with redis-py's asyncio client (its own pool, like the cache)
plus ``orjson.loads``. The cache's hit is one atomic ``MGET`` (tokens + entry) plus decode, after
asyncdb's parse of the filter and digest of the query shape. Concurrency 1; rounds alternate the
contenders (the ``asyncdb bench`` harness); the median round counts.
Targets (DESIGN section 6): cache hit <= 1.15 x raw GET + decode; L1 hit >= 20 x faster than a
Redis hit; 100 concurrent misses -> 1 backend call.

    python benchmarks/bench_cache.py  # + results/bench_cache.json
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the throwaway server

import orjson
import redis.asyncio
from _report import markdown_table, print_table, save_results
from bench_sqlite_point_read import make_doc
from servers.redis import RedisServer

import asyncdb
from asyncdb.cli.bench import interleaved

SECONDS = 0.3  # per round and contender
ROUNDS = 7
HIT_TARGET = 1.15
L1_TARGET = 20.0


async def compare(contenders: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, float]:
    """Median microseconds per call of each contender: the ``asyncdb bench`` harness
    (``asyncdb.cli.bench.interleaved``), rounds of ``SECONDS`` each, order reversed every
    other round."""

    def call(read: Callable[[], Awaitable[Any]]) -> Callable[[int], Awaitable[None]]:
        async def one(n: int) -> None:
            if not await read():
                raise AssertionError("empty read")

        return one

    c = await interleaved(
        {name: call(read) for name, read in contenders.items()},
        concurrency=1,
        duration=SECONDS,
        rounds=ROUNDS,
    )
    assert not any(c.errors.values()), f"reads failed: {c.errors}"
    return {name: c.us_per_op(name) for name in contenders}


async def main() -> None:
    server = RedisServer()
    server.start()
    try:
        await run(server.url)
    finally:
        server.stop()


async def run(redis_url: str) -> None:
    rng = random.Random(7)
    doc = make_doc(1, rng)
    doc["company"] = "company-only"
    # A generous per-call timeout: on a loaded machine opening 100 connections at once can
    # take longer than the 50 ms default, and a fail-open read would count as a backend call.
    db = await asyncdb.connect("memory://", cache=redis_url, cache_timeout=5.0)
    l1_db = await asyncdb.connect("memory://", cache=redis_url, cache_timeout=5.0, cache_l1=1000)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        items = db.collection("items", allow_scan=True)
        l1_items = l1_db.collection("items", allow_scan=True)
        await items.insert_one(doc)
        await l1_items.insert_one(doc)
        await raw.set("raw:doc", orjson.dumps(doc))
        await raw.set("raw:list", orjson.dumps([doc]))
        key = {"id": doc["id"]}
        query = {"company": "company-only"}
        assert await items.find_one(key) == doc
        assert await items.find(query).to_list() == [doc]
        for _ in range(200):  # the L1 listener is subscribed before it is used
            if l1_db.cache and l1_db.cache.stats()["l1_listening"]:
                break
            await asyncio.sleep(0.01)
        assert await l1_items.find_one(key) == doc

        async def raw_doc() -> Any:
            return orjson.loads(await raw.get("raw:doc"))  # type: ignore[arg-type]

        async def raw_list() -> Any:
            return orjson.loads(await raw.get("raw:list"))  # type: ignore[arg-type]

        times = await compare(
            {
                "raw GET + decode (doc)": raw_doc,
                "cache hit find_one by key": lambda: items.find_one(key),
                "raw GET + decode (list)": raw_list,
                "cache hit find().to_list()": lambda: items.find(query).to_list(),
                "L1 hit find_one by key": lambda: l1_items.find_one(key),
            }
        )
        stats = db.cache.stats() if db.cache else {}
        assert stats["errors"] == 0

        # 100 concurrent misses on one key: one backend call (the store's get is slowed so the
        # callers really overlap, and counted).
        store = items._store
        original_get = store.get
        calls = [0]

        async def counted_get(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            await asyncio.sleep(0.02)
            return await original_get(*args, **kwargs)

        store.get = counted_get  # type: ignore[method-assign]
        await items.update_one(key, {"$set": {"priority": 1}})  # a fresh token: a cold entry
        results = await asyncio.gather(*(items.find_one(key) for _ in range(100)))
        assert all(r is not None and r["priority"] == 1 for r in results)
    finally:
        await raw.aclose()
        await db.close()
        await l1_db.close()

    hit_doc = times["cache hit find_one by key"] / times["raw GET + decode (doc)"]
    hit_query = times["cache hit find().to_list()"] / times["raw GET + decode (list)"]
    l1_speedup = times["cache hit find_one by key"] / times["L1 hit find_one by key"]
    headers = ["measure", "us/op", "ratio", "target", "met"]
    rows: list[list[Any]] = [
        ["raw GET + decode (doc)", times["raw GET + decode (doc)"], 1.0, "", ""],
        ["cache hit find_one by key", times["cache hit find_one by key"], hit_doc, "<= 1.15",
         str(hit_doc <= HIT_TARGET)],
        ["raw GET + decode (list)", times["raw GET + decode (list)"], 1.0, "", ""],
        ["cache hit find().to_list()", times["cache hit find().to_list()"], hit_query,
         "<= 1.15", str(hit_query <= HIT_TARGET)],
        ["L1 hit find_one by key", times["L1 hit find_one by key"], l1_speedup,
         ">= 20x faster", str(l1_speedup >= L1_TARGET)],
        ["100 concurrent misses: backend calls", float(calls[0]), float(calls[0]), "1",
         str(calls[0] == 1)],
    ]  # fmt: skip
    print_table(headers, rows)
    results = {
        "us_per_op": times,
        "cache_hit_find_one_ratio": hit_doc,
        "cache_hit_query_ratio": hit_query,
        "l1_speedup_vs_redis_hit": l1_speedup,
        "concurrent_misses": 100,
        "backend_calls_for_concurrent_misses": calls[0],
        "seconds_per_round": SECONDS,
        "rounds": ROUNDS,
        "doc_bytes": len(orjson.dumps(doc)),
    }
    saved = save_results("bench_cache", results)
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
