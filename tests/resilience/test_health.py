"""``db.health()`` on live backends: each store's ``ping`` is one cheap round trip."""

from __future__ import annotations

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
