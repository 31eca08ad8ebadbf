"""The read-through cache on a real 3-node Redis Cluster on loopback (the ``redis_cluster``
fixture): one slot per collection, the same no-stale-read guarantee as on one Redis, L1
invalidation through the cluster's pub/sub, and a node SIGKILLed under load: no read or write
fails, no read is stale, and the cache serves hits again after the node is back."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from servers.redis_cluster import RedisClusterBed

import asyncdb
from asyncdb import Database
from asyncdb.errors import ConfigurationError

TIMEOUT = 5.0  # per Redis call: generous on a loaded machine, except in the fault test


def stats(db: Database) -> dict[str, Any]:
    assert db.cache is not None
    return db.cache.stats()


async def cluster_keys(bed: RedisClusterBed) -> dict[int, list[bytes]]:
    """Every key in the cluster, by the port of the node holding it."""
    out: dict[int, list[bytes]] = {}
    for port in bed.ports:
        client = redis.asyncio.Redis(host="127.0.0.1", port=port)
        try:
            out[port] = [k async for k in client.scan_iter(match="adb:*")]
        finally:
            await client.aclose()
    return out


async def test_each_collection_lives_in_one_slot_and_reads_hit_after_the_first(
    tmp_path: Path, redis_cluster: RedisClusterBed, redis_cluster_url: str
) -> None:
    async with asyncdb.connect(
        f"sqlite:///{tmp_path / 'c.db'}", cache=redis_cluster_url, cache_timeout=TIMEOUT
    ) as db:
        names = [f"coll{i}" for i in range(12)]
        for name in names:
            items = db.collection(name, allow_scan=True)
            await items.insert_many([{"id": "a", "n": 1}, {"id": "b", "n": 2}])
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
            assert await items.find({"n": {"$gte": 1}}).to_list() == [
                {"id": "a", "n": 1},
                {"id": "b", "n": 2},
            ]
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
            assert await items.count_documents({}) == 2
            assert await items.count_documents({}) == 2
            await items.update_one({"id": "a"}, {"$set": {"n": 5}})
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 5}
            assert await items.count_documents({"n": 5}) == 1
        s = stats(db)
        assert s["hits"] >= 2 * len(names) and s["errors"] == 0
        by_port = await cluster_keys(redis_cluster)
    holders: dict[str, set[int]] = {}
    for port, keys in by_port.items():
        for key in keys:
            collection = key.split(b"{", 1)[1].split(b"}", 1)[0].decode()
            holders.setdefault(collection, set()).add(port)
    assert set(holders) == set(names)
    assert all(len(ports) == 1 for ports in holders.values())  # one node per collection
    assert len({p for ports in holders.values() for p in ports}) > 1  # spread over the nodes


async def test_no_read_that_starts_after_a_write_returned_sees_the_old_value(
    tmp_path: Path, redis_cluster_url: str
) -> None:
    """Two connections (two processes' worth of state, the second with L1 on) share the
    database and the cluster; every read that starts after a write returned sees it."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    one = await asyncdb.connect(url, cache=redis_cluster_url, cache_timeout=TIMEOUT)
    two = await asyncdb.connect(url, cache=redis_cluster_url, cache_timeout=TIMEOUT, cache_l1=100)
    try:
        writers = [one.collection("counters", allow_scan=True)]
        readers = [one.collection("counters", allow_scan=True)]
        readers.append(two.collection("counters", allow_scan=True))
        keys = [f"c{i}" for i in range(4)]
        await writers[0].insert_many([{"id": k, "n": 0} for k in keys])
        committed = dict.fromkeys(keys, 0)
        stale: list[str] = []
        rng = random.Random(11)

        async def writer(key: str) -> None:
            items = writers[0]
            for _ in range(30):
                if rng.random() < 0.5:
                    after = await items.find_one_and_update({"id": key}, {"$inc": {"n": 1}})
                else:  # no key pinned: invalidates through the doc epoch
                    await items.update_many(
                        {"n": {"$gte": 0}, "id": {"$gte": key, "$lte": key}}, {"$inc": {"n": 1}}
                    )
                    after = await items.find_one({"id": key}, cache=False)
                assert after is not None
                committed[key] = max(committed[key], after["n"])
                await asyncio.sleep(0)

        async def reader(items: asyncdb.Collection) -> None:
            for i in range(100):
                key = keys[i % len(keys)]
                floor = committed[key]
                doc = await items.find_one({"id": key})
                if doc is None or doc["n"] < floor:
                    stale.append(f"find_one {key}: {doc} < {floor}")
                floor = committed[key]
                listed = await items.find({"id": key}).to_list()
                if listed[0]["n"] < floor:
                    stale.append(f"find {key}: {listed} < {floor}")

        # Only the writer's own connection promises read-after-write synchronously; the L1 of
        # the second is invalidated by pub/sub, so it reads with L1 only after the load.
        await asyncio.gather(*(writer(k) for k in keys), *(reader(readers[0]) for _ in range(4)))
        assert stale == []
        assert stats(one)["hits"] > 0
        # The second connection's L1 learns of the first one's writes through pub/sub.
        for _ in range(100):
            if stats(two)["l1_listening"]:
                break
            await asyncio.sleep(0.02)
        assert stats(two)["l1_listening"]
        items2 = readers[1]
        assert await items2.find_one({"id": "c0"}) == {"id": "c0", "n": committed["c0"]}
        assert await items2.find_one({"id": "c0"}) == {"id": "c0", "n": committed["c0"]}
        assert stats(two)["l1_hits"] >= 1
        await writers[0].update_one({"id": "c0"}, {"$set": {"n": -1}})
        seen = None
        for _ in range(200):
            seen = await items2.find_one({"id": "c0"})
            if seen == {"id": "c0", "n": -1}:
                break
            await asyncio.sleep(0.01)
        assert seen == {"id": "c0", "n": -1}
        assert stats(two)["l1_remote_invalidations"] >= 1
    finally:
        await one.close()
        await two.close()


async def test_a_node_killed_under_load_fails_open_and_no_read_is_stale_after_it_returns(
    tmp_path: Path, redis_cluster: RedisClusterBed, redis_cluster_url: str
) -> None:
    db = await asyncdb.connect(
        f"sqlite:///{tmp_path / 'c.db'}",
        cache=redis_cluster_url,
        cache_timeout=0.2,
        cache_breaker_cooldown=0.3,
    )
    names = [f"coll{i}" for i in range(6)]  # spread over the three nodes
    colls = [db.collection(n, allow_scan=True) for n in names]
    keys = [f"k{i}" for i in range(3)]
    for items in colls:
        await items.insert_many([{"id": k, "n": 0} for k in keys])
    committed = {(n, k): 0 for n in names for k in keys}
    failures: list[str] = []
    stale: list[str] = []
    reads = [0]
    stop = asyncio.Event()

    async def writer(c: int, key: str) -> None:
        while not stop.is_set():
            try:
                after = await colls[c].find_one_and_update({"id": key}, {"$inc": {"n": 1}})
            except Exception as exc:  # a write must not fail because a cache node is down
                failures.append(f"write {names[c]}/{key}: {exc!r}")
                return
            assert after is not None
            slot = (names[c], key)
            committed[slot] = max(committed[slot], after["n"])
            await asyncio.sleep(0.01)

    async def reader(offset: int) -> None:
        i = offset
        while not stop.is_set():
            c, key = i % len(names), keys[(i // len(names)) % len(keys)]
            i += 1
            floor = committed[(names[c], key)]
            try:
                doc: Any = await colls[c].find_one({"id": key})
                listed = await colls[c].find({"id": key}).to_list()
            except Exception as exc:
                failures.append(f"read {names[c]}/{key}: {exc!r}")
                return
            reads[0] += 1
            if doc is None or doc["n"] < floor or listed[0]["n"] < floor:
                stale.append(f"{names[c]}/{key}: {doc} {listed} < {floor}")

    tasks = [asyncio.create_task(writer(c, k)) for c in range(len(names)) for k in keys[:1]]
    tasks += [asyncio.create_task(reader(j)) for j in range(4)]
    try:
        await asyncio.sleep(0.5)
        hits_before = stats(db)["hits"]
        await asyncio.to_thread(redis_cluster.kill_node, 0)
        await asyncio.sleep(1.5)
        during = stats(db)
        reads_during = reads[0]
        await asyncio.to_thread(redis_cluster.restart_node, 0)
        await asyncio.sleep(1.5)
        reads_after = reads[0]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        if redis_cluster.processes[0] is None:
            redis_cluster.restart_node(0)
    after = stats(db)
    # After recovery, every key reads its committed value through the cache (twice: a hit).
    for c, items in enumerate(colls):
        for key in keys:
            for _ in range(2):
                doc = await items.find_one({"id": key})
                assert doc == {"id": key, "n": committed[(names[c], key)]}
    final = stats(db)
    await db.close()
    assert failures == []
    assert stale == []
    assert hits_before > 0
    assert during["errors"] > 0 and during["fallbacks"] > 0
    assert reads_after > reads_during > 0
    assert final["hits"] > after["hits"]  # the cache is used again after the node returned


async def test_cluster_targets_are_checked_before_any_io(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    for bad in (
        "redis+cluster://",
        "redis+cluster://127.0.0.1:notaport",
        "redis+cluster://127.0.0.1:7000/3",
        "redis+cluster://127.0.0.1:7000?x=1",
        ["redis://127.0.0.1:7000", "memcached://127.0.0.1:1"],
        ["redis://127.0.0.1:7000/2"],
        [],
    ):
        with pytest.raises(ConfigurationError):
            await asyncdb.connect(url, cache=bad)
