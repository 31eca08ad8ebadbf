"""The sliding-window rate limiter against a real Redis: the window slides, concurrent hits
from two processes' worth of clients never exceed the limit, users and endpoints are counted
apart, and a Redis that does not answer lets requests through (fail open) without waiting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from servers.redis import RedisServer, answers_ping

from asyncdb.errors import ConfigurationError
from asyncdb.integrations.ratelimit import RateLimiter


async def test_the_window_slides(redis_url: str) -> None:
    limiter = RateLimiter(redis_url, limit=3, window=0.6)
    try:
        decisions = [await limiter.hit("u1", "POST /alerts") for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]
        assert 0 < decisions[-1].retry_after <= 0.6
        assert (await limiter.hit("u2", "POST /alerts")).allowed  # another user
        assert (await limiter.hit("u1", "GET /alerts")).allowed  # another endpoint
        await asyncio.sleep(decisions[-1].retry_after + 0.05)
        assert (await limiter.hit("u1", "POST /alerts")).allowed  # the oldest left the window
        assert limiter.stats()["limited"] == 1
    finally:
        await limiter.close()


async def test_concurrent_hits_from_two_clients_never_exceed_the_limit(redis_url: str) -> None:
    a = RateLimiter(redis_url, limit=7, window=30, timeout=5)  # a loaded machine: no fail-open
    b = RateLimiter(redis_url, limit=7, window=30, timeout=5)  # as another process would
    try:
        decisions = await asyncio.gather(
            *[(a if i % 2 else b).hit("u1", "login") for i in range(40)]
        )
        assert not any(d.failed_open for d in decisions)
        assert sum(d.allowed for d in decisions) == 7
    finally:
        await a.close()
        await b.close()


async def test_redis_down_fails_open_fast_and_the_breaker_skips_it() -> None:
    limiter = RateLimiter(
        "redis://127.0.0.1:9/0", limit=1, window=60, timeout=0.2, breaker_threshold=2
    )
    try:
        began = time.perf_counter()
        decisions = [await limiter.hit("u1", "x") for _ in range(5)]
        assert all(d.allowed and d.failed_open for d in decisions)
        assert time.perf_counter() - began < 3
        stats = limiter.stats()
        assert stats["failed_open"] == 5 and stats["breaker"] == "open"
    finally:
        await limiter.close()


async def test_a_redis_that_stops_fails_open_and_counting_resumes_when_it_is_back() -> None:
    server = RedisServer()
    server.start()
    try:
        if server.external:
            pytest.skip("needs a Redis this test can stop (ASYNCDB_TEST_REDIS_URL is set)")
        limiter = RateLimiter(server.url, limit=2, window=60, timeout=0.2, breaker_cooldown=0.2)
        assert [(await limiter.hit("u", "e")).allowed for _ in range(3)] == [True, True, False]
        assert server.process is not None and server.workdir is not None
        server.process.stop()
        down = [await limiter.hit("u", "e") for _ in range(3)]
        assert all(d.allowed and d.failed_open for d in down)
        process = server._launch(server.port, server.workdir)  # back, empty, on the same port
        process.start()
        process.wait_ready(lambda: answers_ping(server.port), 30)
        server.process = process
        await asyncio.sleep(0.25)  # the breaker's cool-down
        back = [await limiter.hit("u", "e") for _ in range(3)]
        assert [d.allowed for d in back] == [True, True, False]
        assert not any(d.failed_open for d in back)
        await limiter.close()
    finally:
        server.stop()


def test_bad_limits_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter("redis://127.0.0.1:9/0", limit=0, window=1)
    with pytest.raises(ConfigurationError):
        RateLimiter("redis://127.0.0.1:9/0", limit=1, window=0)


def test_the_fastapi_dependency_answers_429_with_retry_after(redis_url: str) -> None:
    from typing import Annotated

    from fastapi import Depends, FastAPI, Header
    from fastapi.testclient import TestClient

    def by_user(request: Any) -> str:
        return str(request.headers.get("x-user", "anonymous"))

    app = FastAPI()
    with TestClient(app) as client:  # the limiter's client connects on the app's loop
        limiter = RateLimiter(redis_url, limit=2, window=60)

        @app.post("/alerts", dependencies=[Depends(limiter.dependency("alerts", user=by_user))])
        async def create(x_user: Annotated[str | None, Header()] = None) -> dict[str, str]:
            return {"ok": "yes"}

        statuses = [client.post("/alerts", headers={"x-user": "u1"}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.post("/alerts", headers={"x-user": "u1"})
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        assert client.post("/alerts", headers={"x-user": "u2"}).status_code == 200
        client.portal.call(limiter.close)  # type: ignore[union-attr]
