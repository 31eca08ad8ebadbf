"""The MongoDB call options ``hint=`` and ``comment=``: validated before any I/O, then carried
to the store for the duration of one call.

``hint`` names one of the collection's declared indexes (by name, ``"ix_company"``, or by key
pattern, ``[("company", 1)]`` / ``{"company": 1}``) or the key (``"_id_"``, ``{"_id": 1}`` or
the key fields). Anything else is a :class:`~asyncdb.errors.QueryError` naming ``hint``.
A hinted secondary index must serve a top-level condition of the filter (an equality, ``$in``
or range on its first field, non-null), on every backend, else ``QueryError`` before any I/O.
What a store then does with it: MongoDB sends it to the server; DynamoDB queries that GSI
(where a compound index needs an equality or ``$in``); PostgreSQL, SQLite, Cosmos DB,
Firestore and the memory store have no way to force one index that keeps asyncdb's answers
exact, so there it is advisory: validated, then left to the store's planner (see the README).
A hint of the key is advisory everywhere but MongoDB (every store reads by key when it can).

``comment`` is sent to MongoDB (the server's profiler and ``currentOp`` show it) and goes into
asyncdb's own observability elsewhere too: the audit event's ``comment`` field and the span's
``asyncdb.comment`` attribute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asyncdb.errors import QueryError
from asyncdb.query.ast import And, Cmp, Eq, In, MatchAll, Node
from asyncdb.query.values import normalize_value
from asyncdb.types import CollectionSpec, Index, Query

KEY_INDEX = "_id_"  # MongoDB's name of the key index; asyncdb's name of a hint of the key


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The validated options of one call: ``hint`` (an :class:`Index`, or one named
    ``"_id_"`` for the key) and ``comment`` (a portable value)."""

    hint: Index | None = None
    comment: Any = None

    @property
    def forced(self) -> Index | None:
        """The hinted secondary index (None for no hint or a hint of the key)."""
        hint = self.hint
        return None if hint is None or hint.name == KEY_INDEX else hint


# The options of the call running in this context (set by Collection around the store call;
# read by the stores that act on them).
call_options: ContextVar[CallOptions | None] = ContextVar("asyncdb_call_options", default=None)


def current_options() -> CallOptions | None:
    return call_options.get()


def with_hint(hint: Index) -> CallOptions:
    """The current options with ``hint`` instead of the call's own (a bulk operation's)."""
    options = call_options.get()
    return CallOptions(hint, None if options is None else options.comment)


def hinted(query: Query) -> Query:
    """``query`` with the secondary index the current call's ``hint=`` forces (for the stores
    that can force one: their planners read ``Query.hint``)."""
    options = call_options.get()
    if options is None or query.hint is not None:
        return query
    forced = options.forced
    return query if forced is None else dataclasses.replace(query, hint=forced)


def _pattern(hint: Any) -> tuple[tuple[str, int], ...]:
    items = list(hint.items()) if isinstance(hint, Mapping) else list(hint)
    out: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            out.append((item, 1))
            continue
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise QueryError(f"bad hint key {item!r}: use (field, 1 or -1)", path="hint")
        field, direction = item
        if not isinstance(field, str) or type(direction) is not int or direction not in (1, -1):
            raise QueryError(f"bad hint key {item!r}: use (field, 1 or -1)", path="hint")
        out.append((field, direction))
    if not out:
        raise QueryError("a hint key pattern needs at least one field", path="hint")
    return tuple(out)


def resolve_hint(hint: Any, spec: CollectionSpec) -> Index | None:
    """The declared index (or the key) ``hint`` names; a QueryError before any I/O if none."""
    if hint is None:
        return None
    key = Index(tuple((k, 1) for k in spec.key), True, KEY_INDEX)
    declared = ", ".join(repr(i.name) for i in spec.indexes) or "none"
    if isinstance(hint, str):
        if hint == KEY_INDEX:
            return key
        for index in spec.indexes:
            if index.name == hint:
                return index
        raise QueryError(
            f"hint {hint!r} names no index of {spec.name!r} (declared: {declared})", path="hint"
        )
    if not isinstance(hint, Mapping | list | tuple):
        raise QueryError(
            f"hint must be an index name or a key pattern, not {type(hint).__name__}", path="hint"
        )
    pattern = _pattern(hint)
    if pattern == (("_id", 1),) or pattern == key.fields:
        return key
    for index in spec.indexes:
        if index.fields == pattern:
            return index
    raise QueryError(
        f"hint {dict(pattern)!r} matches no index of {spec.name!r} (declared: {declared})",
        path="hint",
    )


def _terms(node: Node) -> tuple[Node, ...]:
    if isinstance(node, MatchAll):
        return ()
    if isinstance(node, And):
        return tuple(t for c in node.children for t in _terms(c))
    return (node,)


def check_hint(index: Index | None, node: Node | None) -> None:
    """A hinted secondary index must serve a top-level condition of the filter: an equality,
    ``$in`` or range on its first field with non-null values (a document without the field is
    absent from a sparse index, such as a DynamoDB GSI, so only such conditions can use one);
    else a QueryError before any I/O. A hint of the key always fits."""
    if index is None or index.name == KEY_INDEX or node is None:
        return
    lead = index.paths[0]
    for term in _terms(node):
        if not isinstance(term, Eq | In | Cmp) or term.path != lead:
            continue
        values = term.values if isinstance(term, In) else (term.value,)
        if values and all(v is not None for v in values):
            return
    raise QueryError(
        f"hint {index.name!r} cannot be used: the filter has no equality, $in or range "
        f"condition on {'.'.join(lead)!r}, the index's first field",
        path="hint",
    )


def call_options_of(
    hint: Any, comment: Any, spec: CollectionSpec, node: Node | None = None
) -> CallOptions | None:
    """The validated options of a call whose filter is ``node``, or None when neither option
    is given (the common, free case)."""
    if hint is None and comment is None:
        return None
    if comment is not None:
        comment = normalize_value(comment, "comment")
    index = resolve_hint(hint, spec)
    check_hint(index, node)
    return CallOptions(index, comment)


def comment_text(comment: Any) -> str | None:
    """A comment as observability shows it (text as is, other values as their repr)."""
    if comment is None:
        return None
    return comment if isinstance(comment, str) else repr(comment)


__all__ = [
    "KEY_INDEX",
    "CallOptions",
    "call_options",
    "call_options_of",
    "check_hint",
    "comment_text",
    "current_options",
    "hinted",
    "resolve_hint",
    "with_hint",
]
