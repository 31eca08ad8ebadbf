"""Where the cache's Redis is: one server (``redis://host:port/0``) or a Redis Cluster
(``redis+cluster://host:port,host:port`` or a list of node URLs ``["redis://h1:7000", ...]``).

The cluster's other nodes are discovered from the ones named; the cluster has database 0 only.
Parsing needs no I/O, so a bad target is a ConfigurationError before anything connects.

>>> parse_target("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").nodes
[('127.0.0.1', 7000), ('127.0.0.1', 7001)]
>>> parse_target("redis://127.0.0.1:6379/0").cluster
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from asyncdb.errors import ConfigurationError

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SINGLE_SCHEMES = ("redis", "rediss")


@dataclass(slots=True)
class RedisTarget:
    """A parsed ``cache=`` value: ``url`` for one server, ``nodes`` for a cluster."""

    cluster: bool
    url: str = ""
    nodes: list[tuple[str, int]] = field(default_factory=list)
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    def cluster_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ssl": self.ssl}
        if self.username is not None:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password
        return out


def parse_target(cache: object) -> RedisTarget:
    """The Redis the ``cache=`` option names; ConfigurationError for anything else."""
    if isinstance(cache, str):
        scheme = cache.partition("://")[0]
        if scheme in SINGLE_SCHEMES and "://" in cache:
            return RedisTarget(cluster=False, url=cache)
        if scheme in CLUSTER_SCHEMES and "://" in cache:
            return _parse_cluster_url(cache)
    elif isinstance(cache, list | tuple) and cache and all(isinstance(u, str) for u in cache):
        return _parse_node_list(list(cache))
    raise ConfigurationError(
        "cache must be a redis:// URL, a redis+cluster://host:port,host:port URL or a list of"
        f" Redis Cluster node URLs, not {cache!r}"
    )


def _parse_cluster_url(url: str) -> RedisTarget:
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    if query:
        raise ConfigurationError(f"cache URL {url!r}: no query options are read on a cluster URL")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    nodes = [_host_port(part, url) for part in netloc.split(",") if part]
    if not nodes:
        raise ConfigurationError(f"cache URL {url!r} names no cluster node")
    _check_database(path, url)
    return RedisTarget(
        cluster=True,
        nodes=nodes,
        username=username,
        password=password,
        ssl=scheme == "rediss+cluster",
    )


def _parse_node_list(urls: list[str]) -> RedisTarget:
    nodes: list[tuple[str, int]] = []
    first = None
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in SINGLE_SCHEMES:
            raise ConfigurationError(f"cache node {url!r} must be a redis:// or rediss:// URL")
        try:
            port = parts.port or 6379
        except ValueError as exc:
            raise ConfigurationError(f"cache node {url!r}: bad port") from exc
        if not parts.hostname:
            raise ConfigurationError(f"cache node {url!r} names no host")
        _check_database(parts.path.lstrip("/"), url)
        nodes.append((parts.hostname, port))
        first = first or parts
    assert first is not None
    return RedisTarget(
        cluster=True,
        nodes=nodes,
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password is not None else None,
        ssl=first.scheme == "rediss",
    )


def _host_port(part: str, url: str) -> tuple[str, int]:
    host, sep, port = part.rpartition(":")
    if not sep:
        host, port = part, "6379"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"cache URL {url!r}: {part!r} is not host:port")
    return host, int(port)


def _check_database(path: str, url: str) -> None:
    if path not in ("", "0"):
        raise ConfigurationError(f"cache URL {url!r}: Redis Cluster has database 0 only")


__all__ = ["RedisTarget", "parse_target"]
