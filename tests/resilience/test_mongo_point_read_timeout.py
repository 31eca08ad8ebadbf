"""A MongoDB point read runs in its caller's task (``detach_point_reads`` is False): through a
loopback TCP proxy that stalls the real server's replies, each timed-out read still raises
OperationTimeout on time, and the pool is whole afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from servers.base import ThrowawayServer
from tcp_proxy import TcpProxy

import asyncdb
from asyncdb import OperationTimeout

EPSILON = 1.0  # scheduling slack on a loaded 2-core machine


@pytest.fixture
async def proxy_and_url(
    mongo_url: str, mongo_server: ThrowawayServer
) -> AsyncIterator[tuple[TcpProxy, str]]:
    proxy = await TcpProxy(mongo_server.port).start()
    direct = f"127.0.0.1:{mongo_server.port}"
    assert direct in mongo_url
    url = mongo_url.replace(direct, f"127.0.0.1:{proxy.port}")
    try:
        yield proxy, url
    finally:
        await proxy.stop()


async def test_timed_out_point_reads_are_on_time_and_leave_the_pool_whole(
    proxy_and_url: tuple[TcpProxy, str],
) -> None:
    proxy, url = proxy_and_url
    async with asyncdb.connect(url, timeout=0.5, breaker_threshold=100) as db:
        items = db.collection("slow_point_reads")
        await items.insert_one({"id": "a", "n": 1})
        assert not items._store.detach_point_reads
        proxy.latency = 3.0
        for concurrent in (1, 8):
            began = time.monotonic()
            results = await asyncio.gather(
                *(items.find_one({"id": "a"}) for _ in range(concurrent)),
                return_exceptions=True,
            )
            assert all(isinstance(r, OperationTimeout) for r in results), results
            assert time.monotonic() - began < 0.5 + EPSILON
        proxy.latency = 0.0
        reads = await asyncio.gather(*(items.find_one({"id": "a"}) for _ in range(16)))
        assert reads == [{"id": "a", "n": 1}] * 16
        task = asyncio.create_task(items.find_one({"id": "a"}))
        await asyncio.sleep(0)
        task.cancel()  # a caller's own cancellation is a cancellation, not a timeout
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
