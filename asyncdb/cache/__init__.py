"""The Redis read-through cache: ``asyncdb.connect(url, cache="redis://host:6379/0")``.

>>> # db = await asyncdb.connect("sqlite:///app.db", cache="redis://127.0.0.1:6379/0",
>>> #                            cache_ttl=60, cache_l1=10_000)
>>> # await db.collection("alerts").find_one({"id": "a1"})   # Redis, then the backend
>>> # db.cache.stats()["hits"]

See :mod:`asyncdb.cache.read_through` for the invalidation design and its limits.
"""

from asyncdb.cache.keys import shape_digest
from asyncdb.cache.read_through import TOO_LARGE, CacheConfig, CacheStats, ReadCache

__all__ = ["TOO_LARGE", "CacheConfig", "CacheStats", "ReadCache", "shape_digest"]
