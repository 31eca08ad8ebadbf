"""The catalog: the specs of the collections asyncdb created in a database.

It is itself an asyncdb collection, ``_asyncdb_catalog`` (key ``name``), so every backend keeps
it in its own native form (a table, a collection, a DynamoDB table, a container) and the shared
code reads and writes it through the store's primitives. Names starting with ``_asyncdb`` are
reserved: a user collection cannot collide with it.

A catalog document holds the name, key fields, indexes and TTL field, plus two fields for the
capabilities above ``Collection``: ``encrypted`` (field -> mode as the security layer's
``EncryptionSpec.describe()`` gives it, None for a plain collection; read back as
``CollectionSpec.encrypted``, so a copy creates the same on its destination) and ``model``
(``module.QualName`` of the model the collection was opened with when the database first used
it, or None).

>>> from asyncdb.types import CollectionSpec, Index
>>> spec = CollectionSpec("alerts", ("id",), (Index.of(["company", ("ts", -1)]),), "expires")
>>> spec_from_document(spec_document(spec)) == spec
True
>>> spec_from_document(spec_document(spec, encrypted={"a.zip": "equality"})).encrypted
{'a.zip': 'equality'}
"""

from __future__ import annotations

from typing import Any

from asyncdb.types import CollectionSpec, Index

RESERVED_PREFIX = "_asyncdb"
CATALOG_NAME = "_asyncdb_catalog"
CATALOG_SPEC = CollectionSpec(CATALOG_NAME, key=("name",), allow_scan=True)
FORMAT = 1


def spec_document(
    spec: CollectionSpec, *, model: str | None = None, encrypted: Any = None
) -> dict[str, Any]:
    """The catalog document of ``spec`` (``model``: the name of its model, if any;
    ``encrypted``: what the security layer seals, else ``spec.encrypted``)."""
    return {
        "name": spec.name,
        "format": FORMAT,
        "key": list(spec.key),
        "indexes": [
            {
                "fields": [[f, d] for f, d in index.fields],
                "unique": index.unique,
                "name": index.name,
            }
            for index in spec.indexes
        ],
        "ttl": spec.ttl,
        "allow_scan": spec.allow_scan,
        "max_scan": spec.max_scan,
        "encrypted": _pairs(spec.encrypted if encrypted is None else encrypted),
        "model": model,
    }


def spec_from_document(doc: dict[str, Any]) -> CollectionSpec:
    """The :class:`CollectionSpec` a catalog document describes."""
    indexes = tuple(
        Index(
            tuple((str(f), int(d)) for f, d in index["fields"]),
            bool(index.get("unique", False)),
            str(index.get("name", "")),
        )
        for index in doc.get("indexes") or ()
    )
    return CollectionSpec(
        name=str(doc["name"]),
        key=tuple(str(k) for k in doc.get("key") or ("id",)),
        indexes=indexes,
        ttl=doc.get("ttl"),
        allow_scan=bool(doc.get("allow_scan", False)),
        max_scan=int(doc.get("max_scan", 10_000)),
        encrypted=_mapping(doc.get("encrypted")),
    )


def _pairs(encrypted: Any) -> list[list[Any]] | None:
    """``{path: mode}`` as ``[[path, mode], ...]``: a path may be dotted, a field name not."""
    return None if not encrypted else [[str(p), m] for p, m in dict(encrypted).items()]


def _mapping(stored: Any) -> dict[str, Any] | None:
    if not stored:
        return None
    return dict(stored.items() if isinstance(stored, dict) else ((p, m) for p, m in stored))


__all__ = ["CATALOG_NAME", "CATALOG_SPEC", "RESERVED_PREFIX", "spec_document", "spec_from_document"]
