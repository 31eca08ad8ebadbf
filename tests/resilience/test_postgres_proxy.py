"""Faults between asyncdb and a real PostgreSQL, made by a loopback TCP proxy in front of a
dedicated throwaway server: timeouts, cut connections (reads retried, a cut write not applied
twice), the circuit breaker, and ``db.health()``."""

from __future__ import annotations

import asyncio
import time

import pytest
from tcp_proxy import TcpProxy

import asyncdb
from asyncdb import BackendError, BackendUnavailable, OperationTimeout

EPSILON = 1.0  # scheduling slack on a loaded 2-core machine


def url_via(proxy: TcpProxy) -> str:
    # min_size=0: connections are made on demand, through the proxy's current mode.
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres?min_size=0&max_size=4"


async def test_timeout_fires_as_operation_timeout_within_the_deadline(proxy: TcpProxy) -> None:
    async with asyncdb.connect(url_via(proxy), timeout=0.5) as db:
        items = db.collection("slow_items")
        await items.insert_one({"id": "a", "n": 1})
        proxy.latency = 3.0
        began = time.monotonic()
        with pytest.raises(OperationTimeout):
            await items.find_one({"id": "a"})
        assert time.monotonic() - began < 0.5 + EPSILON
        assert isinstance(OperationTimeout("x"), asyncdb.AsyncDBError)
        proxy.latency = 0.0
        assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}


async def test_timed_out_reads_and_writes_are_on_time_and_give_their_connections_back(
    proxy: TcpProxy,
) -> None:
    # PostgreSQL calls run in the caller's task (Store.detach_calls is False): the error must
    # still come on time, and each cancelled call's connection must go back to the pool of 4.
    async with asyncdb.connect(url_via(proxy), timeout=0.5, breaker_threshold=100) as db:
        items = db.collection("slow_writes", allow_scan=True)
        await items.insert_one({"id": "a", "n": 0})
        proxy.latency = 3.0
        for i in range(6):
            began = time.monotonic()
            with pytest.raises(OperationTimeout):
                if i % 2:
                    await items.update_one({"id": "a"}, {"$inc": {"n": 1}})
                else:
                    await items.find_one({"n": {"$gte": 0}})
            assert time.monotonic() - began < 0.5 + EPSILON
        proxy.latency = 0.0
        await asyncio.sleep(3.5)  # the background rollbacks pass the slow proxy
        async with asyncdb.connect(url_via(proxy), timeout=5) as check:
            doc = await check.collection("slow_writes").find_one({"id": "a"})
        assert doc is not None and 0 <= doc["n"] <= 3  # a timed-out write may have applied
        reads = [items.find_one({"id": "a"}) for _ in range(8)]
        assert all(d == doc for d in await asyncio.gather(*reads))


async def test_a_stream_times_out_on_a_stalled_batch_but_not_on_a_slow_consumer(
    proxy: TcpProxy,
) -> None:
    async with asyncdb.connect(url_via(proxy) + "&batch_size=10", timeout=0.5) as db:
        items = db.collection("streamed", allow_scan=True)
        await items.insert_many([{"id": f"k{i:02d}", "n": i} for i in range(25)])
        got = []
        async for doc in items.find({}, sort=[("id", 1)]):
            got.append(doc["n"])
            if len(got) == 3:
                await asyncio.sleep(0.8)  # longer than the timeout: the consumer's own time
        assert got == list(range(25))
        stream = items.find({}, sort=[("id", 1)]).__aiter__()
        for _ in range(10):  # the first batch
            await anext(stream)
        proxy.latency = 3.0
        # The second batch does not come in time. The error follows asyncpg's cancellation of
        # the fetch (a cancel request and a rollback, through the slow proxy too), so unlike a
        # call's it can come late: only that it comes is asserted.
        with pytest.raises(OperationTimeout):
            await anext(stream)
        proxy.latency = 0.0
        await stream.aclose()


async def test_a_read_whose_connection_is_cut_in_flight_is_retried(proxy: TcpProxy) -> None:
    async with asyncdb.connect(url_via(proxy), timeout=10) as db:
        items = db.collection("cut_reads")
        await items.insert_many([{"id": str(i), "n": i} for i in range(20)])
        proxy.latency = 0.5

        async def cut_soon() -> None:
            await asyncio.sleep(0.2)
            proxy.latency = 0.0
            proxy.cut()

        cutter = asyncio.create_task(cut_soon())
        docs = await items.find({}, allow_scan=True).to_list()
        await cutter
        assert sorted(d["n"] for d in docs) == list(range(20))
        assert await items.count_documents({}, allow_scan=True) == 20


async def test_an_insert_cut_after_commit_is_confirmed_not_duplicated(proxy: TcpProxy) -> None:
    async with asyncdb.connect(url_via(proxy), timeout=10) as db:
        items = db.collection("cut_inserts")
        await items.insert_one({"id": "warm"})  # table exists: the next COMMIT is the insert's
        proxy.cut_after = b"COMMIT\x00"
        # The server commits, the reply is dropped; the retry meets DuplicateKey on its own
        # key, reads the document back, finds it as sent: success, one document.
        assert await items.insert_one({"id": "x", "payload": {"b": 1, "a": [1, 2]}}) == "x"
        assert proxy.cuts_done == 1
        assert await items.count_documents({}, allow_scan=True) == 2
        assert await items.find_one({"id": "x"}) == {"id": "x", "payload": {"b": 1, "a": [1, 2]}}
        # A genuine duplicate (a different document under the key) is still a DuplicateKey.
        proxy.cut_after = b"COMMIT\x00"
        await items.insert_one({"id": "y", "v": 1})
        with pytest.raises(asyncdb.DuplicateKey):
            await items.insert_one({"id": "y", "v": 2})


async def test_an_update_cut_after_commit_is_not_applied_twice(proxy: TcpProxy) -> None:
    async with asyncdb.connect(url_via(proxy), timeout=10) as db:
        items = db.collection("cut_updates")
        await items.insert_one({"id": "c", "n": 0})
        proxy.cut_after = b"COMMIT\x00"
        # Committed, the reply lost ($inc twice would be wrong): the server says the
        # transaction committed, so the update is reported as applied and not sent again.
        result = await items.update_one({"id": "c"}, {"$inc": {"n": 1}})
        assert (result.matched_count, result.modified_count) == (1, 1)
        assert proxy.cuts_done == 1
        assert (await items.find_one({"id": "c"}) or {})["n"] == 1


async def test_breaker_opens_after_failures_fails_fast_and_closes_when_back(
    proxy: TcpProxy,
) -> None:
    async with asyncdb.connect(
        url_via(proxy), timeout=5, retries=1, breaker_threshold=3, breaker_cooldown=0.5
    ) as db:
        items = db.collection("breaker_items")
        await items.insert_one({"id": "b", "n": 1})
        proxy.refusing = True
        proxy.cut()
        for _ in range(3):
            with pytest.raises(BackendError):
                await items.find_one({"id": "b"})
        assert db._resilience.breaker.state == "open"
        began = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await items.find_one({"id": "b"})
        assert time.monotonic() - began < 0.1  # fails fast, no I/O
        health = await db.health()
        assert health.breaker == "open" and not health.ok
        proxy.refusing = False
        await asyncio.sleep(0.6)  # the cool-down: the next call is the half-open probe
        assert await items.find_one({"id": "b"}) == {"id": "b", "n": 1}
        assert db._resilience.breaker.state == "closed"


async def test_health_ok_on_a_live_backend_and_not_ok_when_blackholed(proxy: TcpProxy) -> None:
    async with asyncdb.connect(url_via(proxy), timeout=0.5) as db:
        health = await db.health()
        assert health.ok and health.backend == "postgres" and health.error is None
        assert 0 < health.latency_ms < 500 and health.breaker == "closed"
        assert health.cache is None
        proxy.blackhole = True
        proxy.cut()
        await asyncio.sleep(0.2)  # the pool sees its connections closed: the ping reconnects
        began = time.monotonic()
        health = await db.health()
        assert not health.ok and health.error is not None and "timeout" in health.error
        assert time.monotonic() - began < 0.5 + EPSILON
        proxy.blackhole = False
        assert (await db.health()).ok
