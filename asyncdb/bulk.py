"""``bulk_write``: the write operations (``InsertOne`` ... ``DeleteMany``), their result and
the progress a store records while it applies them.

The operations are plain values, as in PyMongo; ``Collection.bulk_write`` validates and parses
every one of them before any I/O (a bad filter is a ``QueryError`` naming the operation's
index), then the store applies them in order, each atomically per document.

>>> import asyncio, asyncdb
>>> async def main():
...     async with asyncdb.connect("memory://") as db:
...         alerts = db.collection("alerts")
...         res = await alerts.bulk_write([
...             asyncdb.InsertOne({"id": "a", "n": 1}),
...             asyncdb.UpdateOne({"id": "a"}, {"$inc": {"n": 1}}),
...             asyncdb.UpdateOne({"id": "b"}, {"$set": {"n": 5}}, upsert=True),
...             asyncdb.DeleteOne({"id": "a"}),
...         ])
...         return res.inserted_count, res.modified_count, res.upserted_ids, res.deleted_count
>>> asyncio.run(main())
(1, 1, {2: 'b'}, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal

from asyncdb.query.ast import Node, Update

if TYPE_CHECKING:  # a bare InsertOne/ReplaceOne carries a mapping; on a typed collection, a model
    from typing_extensions import TypeVar

    DocumentT = TypeVar("DocumentT", covariant=True, default=Mapping[str, Any])
else:
    from typing import TypeVar

    DocumentT = TypeVar("DocumentT", covariant=True)

# --- the public operations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsertOne(Generic[DocumentT]):
    """Insert ``document`` (an ``"id"`` is generated if the key field is ``id`` and missing):
    a mapping, or a model instance on a typed collection (``model=``)."""

    document: DocumentT


@dataclass(frozen=True, slots=True)
class UpdateOne:
    """Apply ``update`` to the first document matching ``filter`` (upsert when none does)."""

    filter: Mapping[str, Any] | None
    update: Mapping[str, Any]
    upsert: bool = False
    collation: Any = None
    array_filters: Any = None
    hint: Any = None


@dataclass(frozen=True, slots=True)
class UpdateMany:
    """Apply ``update`` to every document matching ``filter`` (each atomically)."""

    filter: Mapping[str, Any] | None
    update: Mapping[str, Any]
    upsert: bool = False
    collation: Any = None
    array_filters: Any = None
    hint: Any = None


@dataclass(frozen=True, slots=True)
class ReplaceOne(Generic[DocumentT]):
    """Replace the first document matching ``filter`` with ``replacement`` (its key stays): a
    mapping, or a model instance on a typed collection (``model=``)."""

    filter: Mapping[str, Any] | None
    replacement: DocumentT
    upsert: bool = False
    collation: Any = None
    hint: Any = None


@dataclass(frozen=True, slots=True)
class DeleteOne:
    """Delete the first document matching ``filter``."""

    filter: Mapping[str, Any] | None
    collation: Any = None
    hint: Any = None


@dataclass(frozen=True, slots=True)
class DeleteMany:
    """Delete every document matching ``filter``."""

    filter: Mapping[str, Any] | None
    collation: Any = None
    hint: Any = None


WriteModel = InsertOne | UpdateOne | UpdateMany | ReplaceOne | DeleteOne | DeleteMany


@dataclass(frozen=True, slots=True)
class BulkWriteResult:
    """What a ``bulk_write`` (or an unordered ``insert_many``) applied.

    ``upserted_ids`` maps the index of each operation that upserted to the key it inserted.
    """

    inserted_count: int = 0
    matched_count: int = 0
    modified_count: int = 0
    deleted_count: int = 0
    upserted_count: int = 0
    upserted_ids: dict[int, Any] = field(default_factory=dict)


# --- what a store receives ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One parsed operation: ``kind`` "insert" (``doc`` prepared, ``key`` its key), "update"
    (``node``, ``update``: an update or a replacement, ``multi``, ``upsert``) or "delete"
    (``node``, ``multi``)."""

    kind: Literal["insert", "update", "delete"]
    doc: dict[str, Any] | None = None
    key: tuple[Any, ...] | None = None
    node: Node | None = None
    update: Update | None = None
    multi: bool = False
    upsert: bool = False
    hint: Any = None


@dataclass(slots=True)
class BulkProgress:
    """How far a store got: operations ``[0, next)`` are done (applied, or failed and recorded
    in ``errors``). A retried call resumes at ``next``, so nothing is applied twice."""

    next: int = 0
    inserted: int = 0
    matched: int = 0
    modified: int = 0
    deleted: int = 0
    upserted: dict[int, Any] = field(default_factory=dict)
    errors: list[tuple[int, Exception]] = field(default_factory=list)

    def result(self) -> BulkWriteResult:
        return BulkWriteResult(
            inserted_count=self.inserted,
            matched_count=self.matched,
            modified_count=self.modified,
            deleted_count=self.deleted,
            upserted_count=len(self.upserted),
            upserted_ids=dict(self.upserted),
        )


__all__ = [
    "BulkProgress",
    "BulkWriteResult",
    "DeleteMany",
    "DeleteOne",
    "InsertOne",
    "ReplaceOne",
    "UpdateMany",
    "UpdateOne",
    "WriteModel",
    "WriteOp",
]
