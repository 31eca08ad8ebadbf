"""The Redis read-through cache: ``asyncdb.connect(url, cache="redis://host:6379/0")``, or a
Redis Cluster: ``cache="redis+cluster://host:7000,host:7001"``.

>>> # db = await asyncdb.connect("sqlite:///app.db", cache="redis://127.0.0.1:6379/0",
>>> #                            cache_ttl=60, cache_l1=10_000)
>>> # await db.collection("alerts").find_one({"id": "a1"})   # Redis, then the backend
>>> # await db.collection("alerts").find_one({"id": "a1"}, cache=False)   # straight through
>>> # db.cache.stats()["hits"]

What is cached: ``find_one`` by exact key (a point read), ``find(...)`` results (``to_list()``
and iteration), ``count_documents`` and ``find_page``, keyed on the collection (and its spec),
the parsed filter with type-exact values (1, 1.0 and True are three entries), projection, sort,
skip, limit, keyset cursor and ``allow_scan``. Not cached: reads inside ``db.transaction()``,
reads of TTL collections (an entry could outlive the document's expiry), calls with
``cache=False``, and results above ``cache_max_items`` documents (streamed from the backend).

Options (keywords of ``connect``): ``cache_ttl`` (s, 60), ``cache_timeout`` (s per Redis call,
0.05), ``cache_breaker_threshold`` (consecutive failures, 3), ``cache_breaker_cooldown`` (s, 1.0),
``cache_l1`` (in-process entries, 0 = off), ``cache_l1_ttl`` (s, 5), ``cache_max_items`` (1000),
``cache_namespace`` (default: derived from the database URL without its password and the
options that only tune the connection, so processes reaching one database with other pool sizes
or timeouts share invalidations).

Guarantees: a write invalidates after it committed and before it returns (a transaction's
writes after the commit, none on rollback), so no read that starts after a write returned sees
the old value, in any process using the same Redis. Concurrent misses on one entry make one
backend call. Redis being down or slow never raises: reads and writes go to the backend.

Limits: the in-process L1 is invalidated synchronously by this process's writes and
asynchronously (pub/sub latency) by other processes' writes; while its subscription is down it
is cleared and unused. A write whose invalidation failed is replayed by this process before it
serves any cached read again, but another process may serve the old entry until its TTL ends.

Redis Cluster: ``cache="redis+cluster://h1:7000,h2:7001"`` (or a list of node URLs,
``cache=["redis://h1:7000", "redis://h2:7001"]``; the other nodes are discovered). Each
collection's keys carry a hash tag (``adb:<ns>:{<collection>}:...``), so one collection's tokens
and entries sit in one slot: reads stay one script or MGET and a write's invalidation one script
per collection written, with the same guarantees. L1 messages use the cluster's (regular)
pub/sub. While a node is down, the collections in its slots fail open to the backend (and the
breaker may route every read there for its cool-down); the other nodes keep serving.

``db.cache.stats()``: see :class:`CacheStats` (hits, l1_hits, misses, backend_calls,
single_flight_waits, fills, fills_rejected, bypass, fallbacks, errors, invalidations,
invalidations_pending, replays, breaker state, breaker_opened, redis_mean_ms, redis_max_ms).
"""

from asyncdb.cache.keys import shape_digest
from asyncdb.cache.read_through import TOO_LARGE, CacheConfig, CacheStats, ReadCache

__all__ = ["TOO_LARGE", "CacheConfig", "CacheStats", "ReadCache", "shape_digest"]
