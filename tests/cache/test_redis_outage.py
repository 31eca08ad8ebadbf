"""Redis dies under a read/write load and comes back on the same port: no read fails, no read
is stale, the breaker opens and closes, and cache hits resume. A dedicated throwaway Redis, so
the session's server stays up for the other tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.redis import RedisServer, answers_ping

import asyncdb


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def restart_on_same_port(server: RedisServer) -> None:
    assert server.workdir is not None
    process = server._launch(server.port, server.workdir)
    process.start()
    process.wait_ready(lambda: answers_ping(server.port), 30)
    server.process = process


async def test_redis_outage_fails_open_without_stale_reads_and_hits_resume(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    if own_redis.external:
        pytest.skip("needs a Redis this test can stop (ASYNCDB_TEST_REDIS_URL is set)")
    db = await asyncdb.connect(
        f"sqlite:///{tmp_path / 'outage.db'}",
        cache=own_redis.url,
        cache_timeout=0.2,
        cache_breaker_cooldown=0.3,
    )
    assert db.cache is not None
    items = db.collection("counters", allow_scan=True)
    keys = [f"c{i}" for i in range(4)]
    await items.insert_many([{"id": k, "n": 0} for k in keys])
    committed = dict.fromkeys(keys, 0)
    failures: list[str] = []
    stale: list[str] = []
    reads = [0]
    stop = asyncio.Event()

    async def writer(key: str) -> None:
        while not stop.is_set():
            try:
                after = await items.find_one_and_update({"id": key}, {"$inc": {"n": 1}})
            except Exception as exc:  # a write must not fail because the cache is down
                failures.append(f"write {key}: {exc!r}")
                return
            assert after is not None
            committed[key] = max(committed[key], after["n"])
            await asyncio.sleep(0.005)

    async def reader(offset: int) -> None:
        i = offset
        while not stop.is_set():
            key = keys[i % len(keys)]
            i += 1
            floor = committed[key]
            try:
                doc: Any = await items.find_one({"id": key})
                listed = await items.find({"id": key}).to_list()
            except Exception as exc:
                failures.append(f"read {key}: {exc!r}")
                return
            reads[0] += 1
            if doc is None or doc["n"] < floor or listed[0]["n"] < floor:
                stale.append(f"{key}: {doc} {listed} < {floor}")

    tasks = [asyncio.create_task(writer(k)) for k in keys]
    tasks += [asyncio.create_task(reader(j)) for j in range(4)]
    try:
        await asyncio.sleep(0.5)
        hits_before = db.cache.stats()["hits"]
        assert own_redis.process is not None
        own_redis.process.stop()  # Redis dies in the middle of the load
        await asyncio.sleep(1.5)
        during = db.cache.stats()
        reads_during = reads[0]
        restart_on_same_port(own_redis)
        await asyncio.sleep(1.5)
        reads_after = reads[0]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    after = db.cache.stats()
    await db.close()
    assert failures == []
    assert stale == []
    assert hits_before > 0
    assert during["breaker_opened"] >= 1 and during["fallbacks"] > 0
    assert reads_after > reads_during > 0
    assert after["breaker"] == "closed"
    assert after["hits"] > during["hits"]  # the cache is used again after the restart
