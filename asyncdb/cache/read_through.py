"""The read-through Redis cache in front of ``find_one`` by key and of query results.

Correctness rests on tokens, not on deleting entries:

- A query entry lives under the collection's current *query token*; every write replaces the
  token, so the entries of the old one are never read again (they expire by TTL).
- A document entry is valid for the *doc epoch* token and its *key token* it was filled under;
  a write with known keys replaces those key tokens (and deletes the entries), a write with
  unknown keys replaces the doc epoch.
- A read is one round trip (a Lua script reads the token, creating it if missing, and the entry
  under it). A miss fills with a compare-and-set script: only if the token is still the one the
  reader saw, so a read that raced a write never plants the old value under the new token.
- Invalidation runs after the write committed and before the write call returns (after commit
  for a transaction), so no read that starts after a write returned sees the old value.

Fail-open: Redis errors and per-call timeouts never reach the caller; the read goes to the
backend, a circuit breaker stops calling Redis for a cool-down, and the invalidations of writes
made meanwhile are kept and replayed before this process serves any cached read again. Other
processes that did not see a lost invalidation may serve the old entry until its TTL runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import structlog

from asyncdb.backends.base import KeyTuple
from asyncdb.cache.breaker import CircuitBreaker
from asyncdb.cache.cluster import parse_target
from asyncdb.cache.keys import (
    TOKEN_CHARS,
    CollectionKeys,
    decode_value,
    encode_value,
    key_text,
    namespace_of,
    new_token,
)
from asyncdb.cache.local import LocalCache
from asyncdb.errors import ConfigurationError

log = structlog.get_logger("asyncdb.cache")

T = TypeVar("T")

# KEYS: doc epoch, key token, doc entry. ARGV: fresh epoch, fresh key token, token ttl.
_READ_DOC = """
local e = redis.call('GET', KEYS[1])
if not e then e = ARGV[1]; redis.call('SET', KEYS[1], e, 'EX', ARGV[3]) end
local k = redis.call('GET', KEYS[2])
if not k then k = ARGV[2]; redis.call('SET', KEYS[2], k, 'EX', ARGV[3]) end
local v = redis.call('GET', KEYS[3])
if v and string.sub(v, 1, 64) == e .. k then return {e, k, string.sub(v, 65)} end
return {e, k}
"""
# KEYS: doc epoch, key token, doc entry. ARGV: epoch seen, key token seen, payload, ttl.
_FILL_DOC = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[3], ARGV[1] .. ARGV[2] .. ARGV[3], 'EX', ARGV[4])
  return 1
end
return 0
"""
# KEYS: query token. ARGV: fresh token, digest, token ttl. The entry is "<token key>:<t>:<digest>".
_READ_QUERY = """
local t = redis.call('GET', KEYS[1])
if not t then t = ARGV[1]; redis.call('SET', KEYS[1], t, 'EX', ARGV[3]) end
local v = redis.call('GET', KEYS[1] .. ':' .. t .. ':' .. ARGV[2])
if v then return {t, v} end
return {t}
"""
# KEYS: query token. ARGV: token seen, digest, payload, ttl.
_FILL_QUERY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1] .. ':' .. ARGV[1] .. ':' .. ARGV[2], ARGV[3], 'EX', ARGV[4])
  return 1
end
return 0
"""

# Redis Cluster invalidation of one collection (its keys share one slot). KEYS: query token,
# doc epoch, then key token / doc entry pairs. ARGV: token ttl, "1" to replace the doc epoch,
# fresh query token, fresh epoch, then one fresh key token per pair.
_INVALIDATE = """
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])
if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[1]) end
for i = 3, #KEYS, 2 do
  redis.call('SET', KEYS[i], ARGV[4 + (i - 1) / 2], 'EX', ARGV[1])
  redis.call('DEL', KEYS[i + 1])
end
return 1
"""

_FAILED: Any = object()  # a Redis call that failed or was not made (breaker open)
TOO_LARGE: Any = object()  # a loader's answer for a result above max_items: not cached
_ALL_KEYS = None  # pending invalidation of a whole collection's documents (doc epoch)
_MAX_PENDING_KEYS = 1000


@dataclass(slots=True)
class CacheConfig:
    """Options of ``asyncdb.connect(url, cache="redis://...", cache_<option>=...)``.

    ``ttl`` seconds an entry lives; ``timeout`` per Redis call (fail-open past it);
    ``breaker_threshold`` consecutive failures open the breaker for ``breaker_cooldown`` seconds;
    ``l1`` entries of the in-process cache (0: off) living ``l1_ttl`` seconds; ``max_items``
    documents at most in a cached query result (larger results are streamed, not cached);
    ``namespace`` separates databases sharing a Redis (default: derived from the database URL).
    """

    ttl: int = 60
    timeout: float = 0.05
    breaker_threshold: int = 3
    breaker_cooldown: float = 1.0
    l1: int = 0
    l1_ttl: float = 5.0
    max_items: int = 1000
    namespace: str | None = None
    token_ttl: int = 86_400

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> CacheConfig:
        """Pop every ``cache_<option>`` from ``options``; an unknown one is a ConfigurationError."""
        config = cls()
        for name in [k for k in options if k.startswith("cache_")]:
            attr = name[len("cache_") :]
            if attr not in cls.__dataclass_fields__:
                raise ConfigurationError(f"unknown cache option {name!r}")
            value = options.pop(name)
            if attr == "l1" and value is True:
                value = 10_000
            setattr(config, attr, int(value) if attr == "l1" else value)
        if not isinstance(config.ttl, int) or config.ttl < 1:
            raise ConfigurationError("cache_ttl must be a positive integer (seconds)")
        if config.timeout <= 0:
            raise ConfigurationError("cache_timeout must be positive (seconds)")
        return config


@dataclass(slots=True)
class CacheStats:
    """Counters of one :class:`ReadCache` (``db.cache.stats()`` returns them as a dict).

    hits/l1_hits: reads answered by Redis / by the in-process cache; misses: reads that went to
    the backend through the cache; backend_calls: loader calls (misses after single-flight plus
    fail-open reads); single_flight_waits: misses that waited for another caller's load; fills /
    fills_rejected: compare-and-set fills stored / refused because a write replaced the token;
    bypass: reads that skipped the cache (``cache=False``, transaction, TTL collection);
    fallbacks: reads served by the backend because Redis failed or the breaker was open; errors:
    failed Redis calls; invalidations / invalidations_pending: writes invalidated / kept for
    replay; replays: successful replays; breaker_opened: times the breaker opened.
    """

    hits: int = 0
    l1_hits: int = 0
    misses: int = 0
    backend_calls: int = 0
    single_flight_waits: int = 0
    fills: int = 0
    fills_rejected: int = 0
    bypass: int = 0
    fallbacks: int = 0
    errors: int = 0
    invalidations: int = 0
    invalidations_pending: int = 0
    replays: int = 0
    redis_calls: int = 0
    redis_seconds: float = 0.0
    redis_max_seconds: float = 0.0
    l1_remote_invalidations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ReadCache:
    """The read-through cache of one :class:`~asyncdb.Database` (``db.cache``)."""

    def __init__(self, redis_url: str | list[str], database_url: str, config: CacheConfig) -> None:
        target = parse_target(redis_url)  # before any import or I/O

        import redis.asyncio  # lazily: the core imports no driver
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.config = config
        # redis-py's asyncio connections leak transport internals when a peer closes a
        # connection under a command (``'NoneType' object has no attribute 'writelines'``, or
        # ``'NoneType' object is not callable``: redis/redis-py#4287); they are connection
        # failures like any other here, so the cache fails open on them too
        self._redis_errors: tuple[type[BaseException], ...] = (
            redis.RedisError,
            OSError,
            TimeoutError,
            AttributeError,
            TypeError,
        )
        timeouts: dict[str, Any] = {
            "socket_timeout": max(config.timeout, 0.05) * 4,
            "socket_connect_timeout": max(config.timeout, 0.05) * 4,
            "retry": Retry(NoBackoff(), 1),  # one reconnect for a connection a restart broke
        }
        self._cluster = target.cluster
        self._client: Any
        if target.cluster:
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            if config.l1 > 0 and not hasattr(RedisCluster, "pubsub"):
                raise ConfigurationError(
                    "cache_l1 on Redis Cluster needs redis-py 8 or later (asyncio cluster pub/sub)"
                )
            # require_full_coverage=False: while a node is down the others keep serving their
            # slots (the down node's collections fail open to the backend).
            self._client = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
                require_full_coverage=False,
                **target.cluster_kwargs(),
                **timeouts,
            )
            self._invalidate_script = self._client.register_script(_INVALIDATE)
        else:
            self._client = redis.asyncio.Redis.from_url(target.url, **timeouts)
        self._read_doc = self._client.register_script(_READ_DOC)
        self._fill_doc = self._client.register_script(_FILL_DOC)
        self._read_query = self._client.register_script(_READ_QUERY)
        self._fill_query = self._client.register_script(_FILL_QUERY)
        self._prefix = f"adb:{config.namespace or namespace_of(database_url)}:"
        self._channel = self._prefix + "invalidate"
        self._sender = new_token()
        self._keys: dict[str, CollectionKeys] = {}
        self._query_tokens: dict[str, str] = {}  # the query token each collection had last
        self._breaker = CircuitBreaker(config.breaker_threshold, config.breaker_cooldown)
        self._stats = CacheStats()
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._pending: dict[str, set[str] | None] = {}
        self._replay_lock = asyncio.Lock()
        self._l1 = LocalCache(config.l1, config.l1_ttl) if config.l1 > 0 else None
        self._l1_listening = False
        self._listener: asyncio.Task[None] | None = None
        if self._l1 is not None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    # --- public -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, breaker state and Redis latency.

        >>> # db.cache.stats()["hits"], db.cache.stats()["breaker"]
        """
        s = self._stats
        out = {name: getattr(s, name) for name in s.__dataclass_fields__ if name != "extra"}
        out["breaker"] = self._breaker.state
        out["breaker_opened"] = self._breaker.opened
        out["pending_collections"] = len(self._pending)
        out["redis_mean_ms"] = 1000 * s.redis_seconds / s.redis_calls if s.redis_calls else 0.0
        out["redis_max_ms"] = 1000 * s.redis_max_seconds
        out["l1_entries"] = len(self._l1) if self._l1 is not None else 0
        out["l1_listening"] = self._l1_listening
        return out

    def note_bypass(self) -> None:
        """Count a read that skipped the cache on purpose."""
        self._stats.bypass += 1

    async def close(self) -> None:
        """Stop the pub/sub listener and close the Redis pool."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self._client.aclose()

    # --- reads ------------------------------------------------------------------------------

    async def read_doc(
        self, collection: str, key: KeyTuple, loader: Callable[[], Awaitable[Any]]
    ) -> Any:
        """The document with ``key`` (or None), from L1, Redis or ``loader``."""
        keys = self._collection_keys(collection)
        kt = key_text(key)
        l1_name = "v" + kt
        l1_gen = self._l1.generation(collection) if self._l1 is not None else (0, 0)
        if not self._readable_at_once() and not await self._cache_readable():
            return await self._fallback(loader)
        if self._l1 is not None and self._l1_listening:
            payload = self._l1.get(collection, l1_name)
            if payload is not None:
                self._stats.l1_hits += 1
                return decode_value(payload)
        redis_keys = [keys.doc_epoch, keys.key_token(kt), keys.doc_entry(kt)]
        # One atomic MGET (cheaper for Redis than a script); the script only creates missing
        # tokens. The entry is valid when it starts with the epoch and key token read with it.
        got: Any = await self._call(lambda: self._client.mget(redis_keys))
        if got is _FAILED:
            return await self._fallback(loader)
        if got[0] is None or got[1] is None:
            ttl = self.config.token_ttl
            got = await self._call(
                lambda: self._read_doc(keys=redis_keys, args=[new_token(), new_token(), ttl])
            )
            if got is _FAILED:
                return await self._fallback(loader)
            got = [got[0], got[1], None if len(got) < 3 else got[0] + got[1] + got[2]]
        tokens = got[0] + got[1]
        entry = got[2]
        if entry is not None and entry[:64] == tokens:
            payload = entry[64:]
            self._stats.hits += 1
            self._l1_put(collection, l1_name, payload, l1_gen)
            return decode_value(payload)
        epoch, key_token = got[0].decode(), got[1].decode()

        async def fill(payload: bytes) -> None:
            args = [epoch, key_token, payload, self.config.ttl]
            stored = await self._call(lambda: self._fill_doc(keys=redis_keys, args=args))
            self._count_fill(stored)
            self._l1_put(collection, l1_name, payload, l1_gen)

        return await self._single_flight(redis_keys[2] + epoch + key_token, loader, fill)

    async def read_query(
        self, collection: str, digest: str, loader: Callable[[], Awaitable[Any]]
    ) -> Any:
        """A query's result by its shape digest, from L1, Redis or ``loader`` (which may
        answer :data:`TOO_LARGE`: passed on, not cached)."""
        keys = self._collection_keys(collection)
        l1_name = "q" + digest
        l1_gen = self._l1.generation(collection) if self._l1 is not None else (0, 0)
        if not self._readable_at_once() and not await self._cache_readable():
            return await self._fallback(loader)
        if self._l1 is not None and self._l1_listening:
            payload = self._l1.get(collection, l1_name)
            if payload is not None:
                self._stats.l1_hits += 1
                return decode_value(payload)
        token_key = keys.query_token
        got: Any = None
        remembered = self._query_tokens.get(collection)
        if remembered is not None:
            # One atomic MGET of the token and the entry under the token seen last: valid when
            # the token is unchanged. Otherwise the script reads the entry under the new one.
            entry_key = f"{token_key}:{remembered}:{digest}"
            got = await self._call(lambda: self._client.mget([token_key, entry_key]))
            if got is _FAILED:
                return await self._fallback(loader)
            got = [got[0], got[1]] if got[0] == remembered.encode() and got[1] else None
        if got is None:
            ttl = self.config.token_ttl
            got = await self._call(
                lambda: self._read_query(keys=[token_key], args=[new_token(), digest, ttl])
            )
            if got is _FAILED:
                return await self._fallback(loader)
        token = got[0].decode()
        self._query_tokens[collection] = token
        if len(got) == 2 and got[1] is not None:
            self._stats.hits += 1
            self._l1_put(collection, l1_name, got[1], l1_gen)
            return decode_value(got[1])

        async def fill(payload: bytes) -> None:
            args = [token, digest, payload, self.config.ttl]
            stored = await self._call(lambda: self._fill_query(keys=[token_key], args=args))
            self._count_fill(stored)
            self._l1_put(collection, l1_name, payload, l1_gen)

        return await self._single_flight(f"{token_key}:{token}:{digest}", loader, fill)

    # --- writes -----------------------------------------------------------------------------

    async def invalidate(self, writes: Iterable[tuple[str, list[KeyTuple] | None]]) -> None:
        """Invalidate after committed writes: ``(collection, keys)`` pairs, keys None when the
        write's documents are unknown. Never raises; a failure is kept and replayed."""
        batch: dict[str, set[str] | None] = {}
        for collection, keys in writes:
            if self._l1 is not None:
                self._l1.invalidate(collection)
            _merge(batch, collection, None if keys is None else {key_text(k) for k in keys})
        if not batch:
            return
        self._stats.invalidations += 1
        if not self._pending and not self._replay_lock.locked():
            if not await self._send(batch):
                # Recorded before the write returns: later reads replay it first.
                for collection, texts in batch.items():
                    _merge(self._pending, collection, texts)
                self._stats.invalidations_pending += 1
            return
        async with self._replay_lock:  # earlier invalidations are pending: send them along
            for collection, texts in self._pending.items():
                _merge(batch, collection, texts)
            self._pending = {}
            if not await self._send(batch):
                self._pending = batch
                self._stats.invalidations_pending += 1
            else:
                self._stats.replays += 1

    # --- internals --------------------------------------------------------------------------

    def _collection_keys(self, collection: str) -> CollectionKeys:
        keys = self._keys.get(collection)
        if keys is None:
            keys = self._keys[collection] = CollectionKeys(self._prefix, collection, self._cluster)
        return keys

    def _readable_at_once(self) -> bool:
        """Readable without awaiting ``_cache_readable``: no invalidation pending or being
        replayed, and the breaker not open."""
        return not (self._pending or self._replay_lock.locked() or self._breaker.state == "open")

    async def _cache_readable(self) -> bool:
        """False while invalidations are pending and cannot be replayed (or the breaker is
        open): then this process must not serve cached reads."""
        if not self._pending and not self._replay_lock.locked():
            return self._breaker.ready()
        async with self._replay_lock:
            if self._pending:
                if await self._send(self._pending):
                    self._pending = {}
                    self._stats.replays += 1
                    return True
                return False
        return self._breaker.ready()

    async def _send(self, batch: dict[str, set[str] | None]) -> bool:
        ttl = self.config.token_ttl
        if self._cluster:
            return await self._call(lambda: self._send_cluster(batch)) is not _FAILED

        async def run() -> Any:
            pipe = self._client.pipeline(transaction=True)
            for collection, texts in batch.items():
                keys = self._collection_keys(collection)
                pipe.set(keys.query_token, new_token(), ex=ttl)
                if texts is None:
                    pipe.set(keys.doc_epoch, new_token(), ex=ttl)
                else:
                    for kt in texts:
                        pipe.set(keys.key_token(kt), new_token(), ex=ttl)
                        pipe.delete(keys.doc_entry(kt))
            message = {"from": self._sender, "collections": list(batch)}
            pipe.publish(self._channel, orjson.dumps(message))
            return await pipe.execute()

        return await self._call(run) is not _FAILED

    async def _send_cluster(self, batch: dict[str, set[str] | None]) -> bool:
        """Redis Cluster: one script per collection, on the node of its slot (the hash tag
        keeps a collection's keys together), all at once; then the L1 message. A failure of
        any part fails the whole batch, which is then kept and replayed whole (re-replacing a
        token is harmless)."""
        ttl = self.config.token_ttl
        calls = []
        for collection, texts in batch.items():
            keys = self._collection_keys(collection)
            redis_keys = [keys.query_token, keys.doc_epoch]
            args: list[Any] = [ttl, "1" if texts is None else "0", new_token(), new_token()]
            for kt in texts or ():
                redis_keys += [keys.key_token(kt), keys.doc_entry(kt)]
                args.append(new_token())
            calls.append(self._invalidate_script(keys=redis_keys, args=args))
        await asyncio.gather(*calls)
        message = {"from": self._sender, "collections": list(batch)}
        await self._client.publish(self._channel, orjson.dumps(message))
        return True

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """One Redis call under the per-call timeout and the breaker; ``_FAILED`` on failure."""
        if not self._breaker.allow():
            return _FAILED  # type: ignore[no-any-return]
        started = time.perf_counter()
        try:
            # a timer of its own per call: a deadline that fires as a Redis call completes must
            # not cancel the caller's next await (a Redis Cluster connection cut mid-command by
            # such a late cancellation broke the fail-open guarantee under a node kill)
            async with asyncio.timeout(self.config.timeout):
                result = await operation()
        except self._redis_errors as exc:
            self._stats.errors += 1
            self._breaker.failure(exc)
            if self._l1 is not None and self._breaker.state == "open":
                self._l1.clear()  # cross-process invalidations may be lost meanwhile
            return _FAILED  # type: ignore[no-any-return]
        elapsed = time.perf_counter() - started
        s = self._stats
        s.redis_calls += 1
        s.redis_seconds += elapsed
        if elapsed > s.redis_max_seconds:
            s.redis_max_seconds = elapsed
        self._breaker.success()
        return result

    async def _fallback(self, loader: Callable[[], Awaitable[Any]]) -> Any:
        self._stats.fallbacks += 1
        self._stats.backend_calls += 1
        return await loader()

    async def _single_flight(
        self,
        flight: str,
        loader: Callable[[], Awaitable[Any]],
        fill: Callable[[bytes], Awaitable[None]],
    ) -> Any:
        """One backend call for concurrent misses on one entry key (token included)."""
        self._stats.misses += 1
        waiting = self._flights.get(flight)
        if waiting is not None:
            self._stats.single_flight_waits += 1
            await asyncio.wait([waiting])
            if waiting.cancelled():
                return await self._fallback(loader)
            result = waiting.result()
            return result if result is TOO_LARGE else decode_value(result)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._flights[flight] = future
        try:
            self._stats.backend_calls += 1
            value = await loader()
            if value is TOO_LARGE:
                future.set_result(TOO_LARGE)
                return value
            payload = encode_value(value)
            future.set_result(payload)
            await fill(payload)
            return value
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no warning when nobody waited
            raise
        finally:
            if not future.done():
                future.cancel()
            if self._flights.get(flight) is future:
                del self._flights[flight]

    def _count_fill(self, stored: Any) -> None:
        if stored is _FAILED:
            return
        if stored:
            self._stats.fills += 1
        else:
            self._stats.fills_rejected += 1

    def _l1_put(self, collection: str, name: str, payload: bytes, generation: Any) -> None:
        if self._l1 is not None and self._l1_listening:
            self._l1.put(collection, name, payload, generation)

    async def _listen(self) -> None:
        """Drop L1 entries of collections other processes wrote (asynchronous: bounded by
        pub/sub latency). While unsubscribed, L1 is cleared and not used."""
        assert self._l1 is not None
        while True:
            pubsub = self._client.pubsub()
            try:
                if self._cluster:
                    # The cluster pub/sub picks its node from the slot map, loaded here.
                    await self._client.initialize()
                await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        self._l1_listening = True
                        continue
                    if message.get("type") != "message":
                        continue
                    body = orjson.loads(message["data"])
                    if body.get("from") == self._sender:
                        continue
                    self._stats.l1_remote_invalidations += 1
                    for collection in body.get("collections", ()):
                        self._l1.invalidate(collection)
            except self._redis_errors as exc:
                if self._l1_listening:
                    log.warning("cache.l1_unsubscribed", error=repr(exc), detail="L1 off")
                self._l1_listening = False
                self._l1.clear()
                await asyncio.sleep(0.2)
            finally:
                self._l1_listening = False
                self._l1.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


def _merge(batch: dict[str, set[str] | None], collection: str, texts: set[str] | None) -> None:
    if collection in batch:
        current = batch[collection]
        if current is None or texts is None:
            batch[collection] = None
        else:
            current |= texts
            if len(current) > _MAX_PENDING_KEYS:
                batch[collection] = None
    else:
        batch[collection] = None if texts is None else set(texts)


assert TOKEN_CHARS * 2 == 64  # the doc entry's prefix length in _READ_DOC

__all__ = ["TOO_LARGE", "CacheConfig", "CacheStats", "ReadCache"]
