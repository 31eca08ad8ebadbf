"""The read cache behind a TCP proxy that adds latency to Redis: reads stay correct, answered
by the backend once the cache's own timeout passes, and the cache's breaker opens."""

from __future__ import annotations

import time

from servers.base import ThrowawayServer
from tcp_proxy import TcpProxy

import asyncdb


async def test_slow_redis_falls_back_to_the_backend_within_the_cache_timeout(
    redis_server: ThrowawayServer,
) -> None:
    proxy = await TcpProxy(redis_server.port).start()
    try:
        cache = f"redis://127.0.0.1:{proxy.port}/0"
        async with asyncdb.connect(
            "memory://", cache=cache, cache_timeout=0.2, cache_breaker_threshold=2
        ) as db:
            items = db.collection("cached")
            await items.insert_one({"id": "a", "n": 1})
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
            proxy.latency = 2.0
            for _ in range(3):
                began = time.monotonic()
                assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
                assert time.monotonic() - began < 0.2 + 1.0
            health = await db.health()
            assert health.ok and health.cache is not None and health.cache["breaker"] == "open"
            proxy.latency = 0.0
    finally:
        await proxy.stop()
