"""Sources asyncdb did not write (no catalog entry)."""

from __future__ import annotations

from collections.abc import Sequence

from asyncdb.database import Database
from asyncdb.movement.sources import CollectionSource, Source


async def discover(db: Database, key: str | Sequence[str] | None) -> list[Source]:
    """The collections of a database without a catalog."""
    return []


async def source(db: Database, name: str, key: str | Sequence[str] | None) -> Source:
    """A collection the catalog does not know, read with ``key`` as its key."""
    return CollectionSource(db.collection(name, key=key or "id", allow_scan=True), db.backend)
