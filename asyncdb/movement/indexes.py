"""The composite indexes a Firestore database needs for a catalog's collections.

Firestore answers a query that filters on one field and orders by others only with a composite
index, which its emulator neither needs nor manages, and which an application deploys itself
(``firebase deploy --only firestore:indexes`` reads ``firestore.indexes.json``;
``gcloud firestore indexes composite create`` takes the same fields). For every declared index
``(f1, ..., fn)`` this lists what the Firestore planner asks for to serve the queries that index
is for: equality on a prefix ``f1..fk`` ordered by the rest (and by the key, the tie-break of
every sorted read and page), in that file's format.

>>> from asyncdb.types import CollectionSpec, Index
>>> spec = CollectionSpec("alerts", indexes=(Index.of(["company", ("ts", -1)]),))
>>> first = firestore_indexes([spec])["indexes"][0]
>>> first["collectionGroup"], first["queryScope"], [f["fieldPath"] for f in first["fields"]]
('alerts', 'COLLECTION', ['`$a:company`', '`$d:ts`', '`$a:id`'])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asyncdb.errors import ConfigurationError
from asyncdb.movement.resolve import Side, opened
from asyncdb.types import CollectionSpec


def _queries(spec: CollectionSpec) -> list[tuple[dict[str, Any], list[tuple[str, int]]]]:
    """The filters and sorts the declared indexes of ``spec`` serve."""
    out: list[tuple[dict[str, Any], list[tuple[str, int]]]] = []
    for index in spec.indexes:
        fields = [(path, d) for path, d in index.fields]
        for k in range(len(fields) + 1):
            # the value only shapes the plan (a string: no numeric twin fields)
            where = {path: "x" for path, _ in fields[:k]}
            out.append((where, [*fields[k:], *((f, 1) for f in spec.key)]))
    return out


def firestore_indexes(specs: Iterable[CollectionSpec]) -> dict[str, Any]:
    """``firestore.indexes.json`` (``{"indexes": [...], "fieldOverrides": []}``) for the
    collections ``specs``: every composite index their declared indexes' queries need."""
    from asyncdb.backends.base import with_key_tiebreak
    from asyncdb.backends.firestore.planner import FirestorePlanner  # pure: no driver
    from asyncdb.query.parse import parse_filter, parse_sort
    from asyncdb.types import Query

    indexes: list[dict[str, Any]] = []
    for spec in specs:
        planner = FirestorePlanner(spec)
        for where, sort in _queries(spec):
            order = with_key_tiebreak(parse_sort(sort), spec)
            plan = planner.plan(Query(parse_filter(where), order))
            for index in plan.native.get("composite_indexes", ()):
                if index not in indexes:
                    indexes.append(index)
    return {"indexes": indexes, "fieldOverrides": []}


async def catalog_firestore_indexes(
    side: Side, collections: Sequence[str] | None = None
) -> dict[str, Any]:
    """:func:`firestore_indexes` of the collections in a database's catalog (all, or those
    named), whatever its backend: what a copy of it to Firestore needs deployed."""
    async with opened(side) as db:
        specs = await db.list_collections()
    if collections:
        unknown = sorted(set(collections) - {s.name for s in specs})
        if unknown:
            raise ConfigurationError(f"not in the catalog of {db.url}: {', '.join(unknown)}")
        specs = [s for s in specs if s.name in set(collections)]
    return firestore_indexes(specs)


__all__ = ["catalog_firestore_indexes", "firestore_indexes"]
