"""A sliding-window rate limiter on Redis: per user and endpoint, at most ``limit`` requests in
any ``window`` seconds (extra ``redis``).

One Lua script per request keeps it atomic across processes and machines: it drops the entries
older than the window from a sorted set, counts the rest, and adds this request only if there is
room; the clock is Redis's own (``TIME``), so the app servers' clocks do not matter. Like the
read cache, it fails open: when Redis does not answer within ``timeout`` (or its circuit breaker
is open after repeated failures) the request is allowed and counted in ``stats()``.

>>> # limiter = RateLimiter("redis://127.0.0.1:6379/0", limit=20, window=60)
>>> # decision = await limiter.hit("u42", "POST /alerts")
>>> # decision.allowed, decision.remaining, decision.retry_after
>>> # FastAPI: @app.post("/alerts", dependencies=[Depends(limiter.dependency("alerts"))])
"""

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from asyncdb.cache.breaker import CircuitBreaker
from asyncdb.errors import ConfigurationError

log = structlog.get_logger("asyncdb.ratelimit")

# KEYS[1] the window's sorted set; ARGV: window (µs), limit, a unique member suffix.
# Returns {allowed (0/1), remaining, retry_after (µs)}.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request: allowed or not, how many more fit in the window now, and
    the seconds until the next one would fit (0 when allowed). ``failed_open``: Redis did not
    answer, so the request was allowed without being counted."""

    allowed: bool
    remaining: int
    retry_after: float
    failed_open: bool = False


class RateLimiter:
    """``limit`` requests per ``window`` seconds for each (user, endpoint)."""

    def __init__(
        self,
        redis_url: str,
        *,
        limit: int,
        window: float,
        prefix: str = "rate_limit",
        timeout: float = 0.25,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 1.0,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError("limit must be a positive integer")
        if not window > 0:
            raise ConfigurationError("window must be a positive number of seconds")
        self.limit = limit
        self.window = float(window)
        self.prefix = prefix
        self.timeout = timeout
        self._client = redis.asyncio.Redis.from_url(
            redis_url,
            socket_timeout=timeout * 4,
            socket_connect_timeout=timeout * 4,
            retry=Retry(NoBackoff(), 1),
        )
        self._script = self._client.register_script(_SLIDING_WINDOW)
        self._breaker = CircuitBreaker(breaker_threshold, breaker_cooldown)
        self._counts = {"allowed": 0, "limited": 0, "failed_open": 0}

    def key(self, user: str, endpoint: str) -> str:
        """The Redis key of one (user, endpoint): ``rate_limit:{user}:{endpoint}``."""
        return f"{self.prefix}:{user}:{endpoint}"

    async def hit(self, user: str, endpoint: str) -> Decision:
        """Count one request of ``user`` on ``endpoint`` if it fits; never raises for Redis."""
        if not self._breaker.allow():
            return self._fail_open()
        try:
            async with asyncio.timeout(self.timeout):
                allowed, remaining, retry_us = await self._script(
                    keys=[self.key(user, endpoint)],
                    args=[int(self.window * 1_000_000), self.limit, secrets.token_hex(6)],
                )
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._breaker.failure(exc)
            log.warning("ratelimit.redis_unavailable", error=type(exc).__name__)
            return self._fail_open()
        self._breaker.success()
        decision = Decision(bool(allowed), int(remaining), max(0, int(retry_us)) / 1_000_000)
        self._counts["allowed" if decision.allowed else "limited"] += 1
        return decision

    def _fail_open(self) -> Decision:
        self._counts["failed_open"] += 1
        return Decision(True, self.limit, 0.0, failed_open=True)

    def stats(self) -> dict[str, Any]:
        """Allowed, limited and failed-open counts, and the breaker's state."""
        return {**self._counts, "breaker": self._breaker.state}

    def dependency(
        self, endpoint: str, user: Callable[[Any], Awaitable[str] | str] | None = None
    ) -> Callable[[Any], Awaitable[None]]:
        """A FastAPI dependency that answers 429 (with ``Retry-After``) past the limit.
        ``user(request)`` names the caller (default: the client's address).

        >>> # @app.get("/x", dependencies=[Depends(limiter.dependency("x", user=by_session))])
        """
        from fastapi import HTTPException, Request

        # (No ``from __future__ import annotations`` in this module: FastAPI reads this
        # signature at runtime and must see the Request class, not the string "Request".)
        async def limit_requests(request: Request) -> None:
            who = await _user_of(request, user)
            decision = await self.hit(who, endpoint)
            if not decision.allowed:
                raise HTTPException(
                    status_code=429,
                    detail="rate limit exceeded",
                    headers={"Retry-After": str(max(1, round(decision.retry_after + 0.5)))},
                )

        return limit_requests

    async def check_aiohttp(self, request: Any, endpoint: str, user: str | None = None) -> None:
        """In an aiohttp handler: raise ``HTTPTooManyRequests`` (429, ``Retry-After``) past
        the limit; ``user`` defaults to the client's address."""
        from aiohttp import web

        decision = await self.hit(user or request.remote or "unknown", endpoint)
        if not decision.allowed:
            raise web.HTTPTooManyRequests(
                headers={"Retry-After": str(max(1, round(decision.retry_after + 0.5)))}
            )

    async def close(self) -> None:
        await self._client.aclose()


async def _user_of(request: Any, user: Callable[[Any], Awaitable[str] | str] | None) -> str:
    if user is None:
        client = request.client
        return client.host if client is not None else "unknown"
    who = user(request)
    return await who if isinstance(who, Awaitable) else who


__all__ = ["Decision", "RateLimiter"]
