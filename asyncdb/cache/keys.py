"""Pure parts of the cache: Redis key names, query-shape digests and value envelopes.

Every key of one database lives under ``adb:<namespace>:<collection>:`` (on Redis Cluster
``adb:<namespace>:{<collection>}:``, a hash tag: one slot per collection):

- ``...:q`` the collection's query token; a query entry is ``...:q:<token>:<digest>``,
- ``...:d`` the collection's doc epoch token,
- ``...:k:<key>`` a document's key token, ``...:v:<key>`` its entry (prefixed with the epoch and
  key tokens it was filled under).

Tokens are random (not counters): after a Redis restart a fresh token can never equal an old one,
so a fill under an old token can never come back to life.

>>> decode_value(encode_value({"n": 1}))
{'n': 1}
"""

from __future__ import annotations

import hashlib
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from asyncdb._tagged_json import dumps, untag
from asyncdb.backends.base import KeyTuple

TOKEN_CHARS = 32  # os.urandom(16).hex()

_TAGGED = b"1"
_PLAIN = b"0"


def new_token() -> str:
    """A random 128-bit token as 32 hex characters."""
    return os.urandom(16).hex()


# URL options that tune the connection to a database without selecting other data
_TUNING = frozenset(
    {
        "min_size",
        "max_size",
        "max_inactive_connection_lifetime",
        "recycle",
        "statement_cache_size",
        "command_timeout",
        "batch_size",
        "health_check",
        "health_check_idle",
        "replicas",
        "replica_wait",
        "replica_timeout",
        "replica_cooldown",
        "busy_timeout",
        "readers",
        "synchronous",
    }
)


def namespace_of(database_url: str) -> str:
    """A short name for a database URL, so two databases can share one Redis. A private
    in-process store (``memory://``, ``sqlite:///:memory:``) is a new database on every connect,
    so its namespace is unique to the connection.

    >>> namespace_of("sqlite:///a.db") == namespace_of("sqlite:///a.db")
    True
    >>> namespace_of("memory://") == namespace_of("memory://")
    False

    The database is named by its URL without the password and without the options that only
    tune the connection (pool sizes, timeouts, health checks, batch sizes, readers, replicas),
    so processes that reach one database with other settings share one namespace and see each
    other's invalidations. Options that select data (a Firestore ``database``, a DynamoDB
    ``region`` or ``table_prefix``) stay in it.

    >>> a = namespace_of("postgresql://app:secret@db:5432/main?min_size=1")
    >>> a == namespace_of("postgresql://app@db:5432/main?max_size=16&command_timeout=5")
    True
    >>> a == namespace_of("postgresql://app@db:5432/other")
    False
    >>> namespace_of("firestore://p?database=a") == namespace_of("firestore://p?database=b")
    False
    """
    if database_url.startswith("memory:") or database_url.endswith(":memory:"):
        database_url += "#" + new_token()
    else:
        parts = urlsplit(database_url)
        user = f"{parts.username}@" if parts.username else ""
        hosts = parts.netloc.rpartition("@")[2]  # host:port, or several (host lists)
        kept = sorted(
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _TUNING
        )
        query = "?" + urlencode(kept) if kept else ""
        database_url = f"{parts.scheme}://{user}{hosts.lower()}{parts.path}{query}"
    return hashlib.blake2b(database_url.encode(), digest_size=6).hexdigest()


def shape_digest(*parts: Any) -> str:
    """A digest of a read's full shape. ``repr`` keeps types apart (1, 1.0 and True differ)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def key_text(key: KeyTuple) -> str:
    """The document key inside Redis key names (``repr`` keeps 1 and "1" apart)."""
    return repr(key)


class CollectionKeys:
    """The Redis key names of one collection."""

    __slots__ = ("doc_epoch", "prefix", "query_token")

    def __init__(self, namespace_prefix: str, collection: str, hash_tag: bool = False) -> None:
        # On Redis Cluster the collection is a hash tag (``adb:<ns>:{<collection>}:``): every key
        # of one collection hashes to one slot, so its scripts and invalidation stay one call.
        # The slot depends only on this prefix (the tag ends at the first "}" after the first
        # "{"), whatever braces the namespace or collection name hold.
        scope = f"{{{collection}}}" if hash_tag else collection
        self.prefix = f"{namespace_prefix}{scope}:"
        self.query_token = self.prefix + "q"
        self.doc_epoch = self.prefix + "d"

    def key_token(self, key: str) -> str:
        return f"{self.prefix}k:{key}"

    def doc_entry(self, key: str) -> str:
        return f"{self.prefix}v:{key}"


def encode_value(value: Any) -> bytes:
    """orjson text with the datetime/Decimal/bytes tags of ``asyncdb._tagged_json``, behind one flag
    byte that tells the decoder whether it must walk the value for tags."""
    raw = dumps(value).encode()
    return (_TAGGED if b'{"$' in raw else _PLAIN) + raw


def decode_value(payload: bytes) -> Any:
    """The value :func:`encode_value` stored (a fresh object on every call)."""
    value = orjson.loads(payload[1:])
    return untag(value) if payload[:1] == _TAGGED else value


__all__ = [
    "TOKEN_CHARS",
    "CollectionKeys",
    "decode_value",
    "encode_value",
    "key_text",
    "namespace_of",
    "new_token",
    "shape_digest",
]
