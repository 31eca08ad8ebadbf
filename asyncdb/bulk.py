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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal

from asyncdb.errors import QueryError
from asyncdb.query.ast import Eq, Node, Path, Update, UpdateOp
from asyncdb.query.limits import check_text
from asyncdb.query.parse import parse_update
from asyncdb.query.values import INT64_MAX, INT64_MIN

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


@dataclass(slots=True)
class WriteOp:
    """One parsed operation: ``kind`` "insert" (``doc`` prepared, ``key`` its key), "update"
    (``node``, ``update``: an update or a replacement, ``multi``, ``upsert``) or "delete"
    (``node``, ``multi``). Stores treat it as read-only (it is not frozen only because a
    frozen dataclass takes several times longer to build, once per operation).

    ``pinned`` (when ``pinned_known``): the keys the filter pins down (``key_lookup``), None
    when it pins none. ``by_key``: the filter is exactly one equality per key field, so the
    document stored under the pinned key is the one it matches. ``flat``: the update is only
    ``$set`` of scalars and ``$unset`` of top-level fields that are not key fields."""

    kind: Literal["insert", "update", "delete"]
    doc: dict[str, Any] | None = None
    key: tuple[Any, ...] | None = None
    node: Node | None = None
    update: Update | None = None
    multi: bool = False
    upsert: bool = False
    hint: Any = None
    pinned: list[tuple[Any, ...]] | None = None
    pinned_known: bool = False
    by_key: bool = False
    flat: bool = False


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


# --- the common shapes, parsed without the general parser -------------------------------------
# A bulk write repeats a few shapes (a filter on the key, ``{"$set": {"status": ...}}``) with
# other values. These helpers give exactly what parse_filter / parse_update_spec give for them,
# the checks that depend only on the shape done once per shape; anything else is None and goes
# through the general parser (which raises its own errors).

# (key fields, operator, field names, ...) -> ((operator, path, where), ...), or None when the
# shape is not one of those below
_UPDATE_SHAPES: dict[tuple[Any, ...], tuple[tuple[str, Path, str], ...] | None] = {}
_UPDATE_SHAPES_MAX = 1024
_FAST_OPERATORS = frozenset({"$set", "$unset", "$inc"})
_NO_SHAPE: Any = object()


def key_filter(spec_filter: Any, key: tuple[str, ...]) -> tuple[Node, tuple[Any, ...]] | None:
    """``(node, key)`` for a filter that is one equality on a single key field to a non-empty
    ASCII string or a 64-bit int (``parse_filter`` gives the same ``Eq``); else None."""
    if type(spec_filter) is not dict or len(spec_filter) != 1 or len(key) != 1:
        return None
    value = spec_filter.get(key[0], _NO_SHAPE)
    t = type(value)
    if t is str:
        if not value or not value.isascii():
            return None
    elif t is not int or not INT64_MIN <= value <= INT64_MAX:
        return None
    return Eq(key, value), (value,)


def _update_template(update: dict[str, Any], key: tuple[str, ...]) -> Any:
    """The operators and paths of a shape, validated by the general parser on stand-in values
    (so paths, operators and conflicts raise nothing later), or None when the shape is not
    ``$set``/``$unset``/``$inc`` of plain paths outside the key."""
    if any(op not in _FAST_OPERATORS for op in update):
        return None
    stand_in = {op: dict.fromkeys(fields, 0) for op, fields in update.items()}
    try:
        parsed = parse_update(stand_in)
    except QueryError:
        return None
    if any(part[:1] == "$" for op in parsed.ops for part in op.path):
        return None  # positional: bound to the filter and array filters
    if any(op.path[0] in key for op in parsed.ops):
        return None  # the key checks (KeyChanged, upsert seeds) of the general path
    wheres = [f"{op}.{name}" for op, fields in update.items() for name in fields]
    return tuple((op.op, op.path, where) for op, where in zip(parsed.ops, wheres, strict=True))


def simple_update(update: Any, key: tuple[str, ...]) -> tuple[Update, bool] | None:
    """``(parsed, flat)`` for an update document of ``$set``/``$unset``/``$inc`` of scalar
    values (strings, booleans, null, 64-bit ints, finite floats) on non-key, non-positional
    paths: the Update ``parse_update_spec`` gives it (no array filters), and whether it is
    ``flat`` (only ``$set``/``$unset`` of top-level fields). None for anything else."""
    if type(update) is not dict or not update:
        return None
    values: Any
    if len(update) == 1:  # the usual update: one operator
        ((op, fields),) = update.items()
        if type(fields) is not dict or not fields:
            return None
        shape: tuple[Any, ...] = (key, op, tuple(fields))
        values = fields.values()
    else:
        parts: list[Any] = [key]
        values = []
        for op, fields in update.items():
            if type(fields) is not dict or not fields:
                return None
            parts.append(op)
            parts.append(tuple(fields))
            values.extend(fields.values())
        shape = tuple(parts)
    template = _UPDATE_SHAPES.get(shape, _NO_SHAPE)
    if template is _NO_SHAPE:
        try:
            template = _update_template(update, key)
        except TypeError:  # an unhashable or odd field name: the general parser says why
            template = None
        if len(_UPDATE_SHAPES) >= _UPDATE_SHAPES_MAX:
            _UPDATE_SHAPES.clear()
        _UPDATE_SHAPES[shape] = template
    if template is None:
        return None
    ops: list[UpdateOp] = []
    flat = True
    for (name, path, where), value in zip(template, values, strict=True):
        if name == "$unset":
            ops.append(UpdateOp(name, path))
            flat = flat and len(path) == 1
            continue
        t = type(value)
        if t is str:
            if name == "$inc":
                return None
            if not value.isascii():
                check_text(value, where)  # normalize_value's check, with its path
        elif t is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return None
        elif t is float:
            if not math.isfinite(value):
                return None
        elif t is bool or value is None:
            if name == "$inc":
                return None
        else:
            return None
        ops.append(UpdateOp(name, path, value))
        flat = flat and name == "$set" and len(path) == 1
    return Update(ops=tuple(ops)), flat


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
    "key_filter",
    "simple_update",
]
