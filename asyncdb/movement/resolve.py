"""Opening the two sides of a movement and finding what to move.

A side is a URL or an open :class:`~asyncdb.Database`. The collections to move are the source's
catalog (``list_collections()``) unless named; a named collection that the catalog does not know
is read as a foreign one (:mod:`asyncdb.movement.foreign`): another application's MongoDB
collection, an existing SQL table, a DynamoDB table of native items.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from asyncdb.database import Database, connect
from asyncdb.errors import ConfigurationError
from asyncdb.movement.sources import CollectionSource, Doc, Source
from asyncdb.types import CollectionSpec

Side = str | Database


@contextlib.asynccontextmanager
async def opened(side: Side) -> AsyncIterator[Database]:
    """The database of a side, closed afterwards only if it was opened here."""
    if isinstance(side, Database):
        yield side
        return
    if not isinstance(side, str):
        raise ConfigurationError(f"a source or destination is a URL or a Database, not {side!r}")
    async with connect(side) as db:
        yield db


def spec_collection(db: Database, spec: CollectionSpec) -> Any:
    """``db.collection`` with every part of ``spec`` (key, indexes, TTL, scan policy)."""
    return db.collection(
        spec.name,
        key=spec.key,
        indexes=spec.indexes,
        ttl=spec.ttl,
        allow_scan=spec.allow_scan,
        max_scan=spec.max_scan,
    )


async def sources(
    db: Database, collections: Sequence[str] | None, key: str | Sequence[str] | None = None
) -> list[Source]:
    """The sources of ``db``: its catalog, or the named collections (foreign when unknown)."""
    if isinstance(collections, str):
        collections = [collections]
    from asyncdb.movement import foreign

    catalog = {s.name: s for s in await db.list_collections()}
    if collections is None:
        if not catalog:
            return await foreign.discover(db, key)
        names = list(catalog)
    else:
        names = list(collections)
    out: list[Source] = []
    for name in names:
        spec = catalog.get(name)
        if spec is None:
            out.append(await foreign.source(db, name, key))
            continue
        if key is not None and ((key,) if isinstance(key, str) else tuple(key)) != spec.key:
            raise ConfigurationError(
                f"collection {name!r} has the key {spec.key} in the catalog; key= is for "
                "collections asyncdb did not write"
            )
        if db.backend == "dynamodb":
            out.append(await foreign.scan_source(db, spec))  # parallel scan segments
        else:
            out.append(CollectionSource(spec_collection(db, spec), db.backend))
    return out


def callable_of(value: Any, what: str) -> Callable[[Doc], Doc | None] | None:
    """A document -> document function from a callable, an object with ``apply``, or the
    text ``"module:function"``."""
    if value is None:
        return None
    if isinstance(value, str):
        module, _, name = value.partition(":")
        if not module or not name:
            raise ConfigurationError(f"{what} must be 'module:function', not {value!r}")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"{what} {value!r} cannot be loaded: {exc}") from None
    apply = getattr(value, "apply", None)
    fn = apply if callable(apply) else value
    if not callable(fn):
        raise ConfigurationError(f"{what} must map a document to a document, not {value!r}")
    return fn  # type: ignore[no-any-return]


def chain(*fns: Callable[[Doc], Doc | None] | None) -> Callable[[Doc], Doc | None] | None:
    """The composition of the given document functions (None: identity)."""
    present = [f for f in fns if f is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def composed(doc: Doc) -> Doc | None:
        out: Doc | None = doc
        for f in present:
            if out is None:
                return None
            out = f(out)
        return out

    return composed


__all__ = ["Side", "callable_of", "chain", "opened", "sources", "spec_collection"]
