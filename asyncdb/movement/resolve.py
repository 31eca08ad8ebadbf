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
    # The movement's own connections: no per-operation metrics nobody reads, and no
    # slow-operation warnings for the part streams that are long by design.
    async with connect(side, metrics=False, slow_ms=None) as db:
        yield db


def spec_collection(db: Database, spec: CollectionSpec, *, sealed: bool = False) -> Any:
    """``db.collection`` with every part of ``spec`` (key, indexes, TTL, scan policy).

    An encrypted spec (``spec.encrypted``) opens, with ``sealed``, through the security layer
    (the database's key ring: reads open, writes seal); without, the plain collection of the
    sealed documents (ciphertext moves as is), its encryption recorded in ``db``'s catalog."""
    indexes: Sequence[Any] = spec.indexes
    options: dict[str, Any] = {}
    if spec.encrypted and sealed:
        from asyncdb.security.spec import is_reserved

        # the blind indexes are declared by the security layer itself
        indexes = [i for i in spec.indexes if not any(is_reserved(p[0]) for p in i.paths)]
        options = {"encrypted": spec.encrypted}
    elif spec.encrypted:
        db._encryption[spec.name] = dict(spec.encrypted)
    return db.collection(
        spec.name,
        key=spec.key,
        indexes=indexes,
        ttl=spec.ttl,
        allow_scan=spec.allow_scan,
        max_scan=spec.max_scan,
        **options,
    )


def same_keys(a: Database, b: Database) -> bool:
    """Whether ciphertext sealed with ``a``'s key ring opens with ``b``'s: true when either
    has none (nothing to re-seal with) or ``b`` holds every enabled key of ``a`` unchanged."""
    ring_a, ring_b = a.keyring, b.keyring
    if ring_a is None or ring_b is None:
        return True
    probe = b"asyncdb copy: same key?"
    return all(
        ring_b.is_enabled(k) and ring_a.derive(k, probe) == ring_b.derive(k, probe)
        for k in ring_a.enabled_ids
    )


async def sources(
    db: Database,
    collections: Sequence[str] | None,
    key: str | Sequence[str] | None = None,
    *,
    sealed: bool = False,
) -> list[Source]:
    """The sources of ``db``: its catalog, or the named collections (foreign when unknown).
    ``sealed``: encrypted collections are read opened (decrypted) through ``db``'s key ring."""
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
        if db.backend == "dynamodb" and not (sealed and spec.encrypted):
            out.append(await foreign.scan_source(db, spec))  # parallel scan segments
        else:
            coll = spec_collection(db, spec, sealed=sealed)
            out.append(CollectionSource(coll, db.backend, spec.encrypted))
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


__all__ = ["Side", "callable_of", "chain", "opened", "same_keys", "sources", "spec_collection"]
