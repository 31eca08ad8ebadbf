"""``db.health()`` on live backends: each store's ``ping`` is one cheap round trip."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from tcp_proxy import TcpProxy

import asyncdb


async def check_ok(url: str) -> None:
    async with asyncdb.connect(url) as db:
        health = await db.health()
        assert health.ok, health.error
        assert health.latency_ms > 0 and health.breaker == "closed" and health.error is None


async def test_health_ok_on_mongo(mongo_url: str) -> None:
    await check_ok(mongo_url)


async def test_health_ok_on_postgres(postgres_url: str) -> None:
    await check_ok(postgres_url)


async def test_health_ok_on_sqlite() -> None:
    await check_ok("sqlite:///:memory:")


async def test_health_reports_the_cache(redis_url: str) -> None:
    async with asyncdb.connect("memory://", cache=redis_url) as db:
        health = await db.health()
        assert health.ok and health.cache is not None and health.cache["breaker"] == "closed"


async def test_health_on_dynamodb_is_a_round_trip_that_fails_when_the_service_is_gone(
    dynamodb_url: str,
) -> None:
    parts = urlsplit(dynamodb_url)
    proxy = await TcpProxy(parts.port or 0).start()
    url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
    try:
        async with asyncdb.connect(url, timeout=3) as db:
            assert (await db.health()).ok
            await proxy.stop()  # the service is gone: DynamoDB's ping used to be a no-op
            health = await db.health()
            assert not health.ok and health.error is not None
    finally:
        await proxy.stop()
