"""The replica options of ``asyncdb.connect(url, replicas=[...])`` on PostgreSQL, checked
before any I/O (see :mod:`asyncdb.backends.postgres.replicas`).

>>> lsn_int("16/B374D848")
97500059720
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from asyncdb.errors import ConfigurationError

REPLICA_OPTIONS: dict[str, Any] = {
    "replicas": None,
    "replica_wait": 0.1,
    "replica_timeout": 1.0,
    "replica_cooldown": 1.0,
}


def lsn_int(text: str) -> int:
    """A ``pg_lsn`` text (``XXX/YYY``, hex) as an integer that orders like the LSN."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def check_replica_options(merged: Mapping[str, Any]) -> list[str]:
    """The replica URLs (validated: PostgreSQL URLs), before any I/O; ConfigurationError."""
    replicas = merged["replicas"]
    if replicas is None:
        return []
    if isinstance(replicas, str) or not isinstance(replicas, list | tuple):
        raise ConfigurationError("replicas must be a list of postgresql:// URLs")
    urls: list[str] = []
    for url in replicas:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("postgresql", "postgres"):
            raise ConfigurationError(f"replica {url!r} is not a postgresql:// URL")
        urls.append(urlunsplit(urlsplit(url)._replace(scheme="postgresql")))
    for name in ("replica_wait", "replica_timeout", "replica_cooldown"):
        value = merged[name]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigurationError(f"{name} must be a number of seconds")
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds") from None
        if seconds < 0 or (name == "replica_timeout" and seconds == 0):
            raise ConfigurationError(f"{name} must be a positive number of seconds")
    return urls


__all__ = ["REPLICA_OPTIONS", "check_replica_options", "lsn_int"]
