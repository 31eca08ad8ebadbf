"""Filter AST -> a MongoDB ``find`` (filter, sort, skip, limit), pure.

MongoDB's semantics are asyncdb's specification, so most filters pass through natively and
exactly. The exceptions are the filter forms whose answers differ between MongoDB versions or on
MongoDB-wire servers that depart from MongoDB (SecantusDB, the test server; each form is pinned
in tests/conformance/test_mongo_wire_oracle.py). Those are never trusted to the server: they are
pushed only as a superset (or not at all) and re-checked in process by the reference evaluator.
:func:`server_dependent` lists them; every other node is exact.

The key field maps to ``_id``: a single key is ``_id`` itself; a composite key is ``_id`` as a
sub-document of the key fields in key order (BSON compares sub-documents field by field, so key
equality and order are kept), and the key fields also stay as top-level fields, where filters and
sorts address them.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = MongoPlanner(CollectionSpec("t")).plan(Query(parse_filter({"id": "a1"})))
>>> plan.native["filter"], plan.access_path
({'_id': {'$eq': 'a1'}}, 'key')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from asyncdb.backends.base import conjoin, conjuncts, indexed_path, key_lookup
from asyncdb.query.ast import (
    All,
    And,
    Cmp,
    ElemMatch,
    Eq,
    Exists,
    FieldNode,
    In,
    MatchAll,
    Mod,
    Node,
    Nor,
    Not,
    Or,
    Path,
    Regex,
    Size,
    Sort,
    Type,
    path_str,
)
from asyncdb.query.parse import FieldAnd
from asyncdb.types import CollectionSpec, Plan, Query

Native = dict[str, Any]
NativeSort = list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class Find:
    """The native request of a plan: what ``collection.find`` receives."""

    filter: Native
    sort: NativeSort
    skip: int
    limit: int


# --- the filter forms a MongoDB-wire server may answer differently ------------------------------
# Each predicate is a structural (data-independent) superset of the matching predicate of
# tests/conformance/test_mongo_wire_oracle.py, which looks at the data as well.


def _holds_null(node: FieldNode) -> bool:
    """Whether a condition compares with null (its answer depends on where a path is null)."""
    if isinstance(node, Eq):
        return node.value is None
    if isinstance(node, Cmp):
        return node.value is None and node.op in ("$gte", "$lte")
    if isinstance(node, In | All):
        return any(v is None for v in node.values)
    if isinstance(node, Not):
        return _holds_null(node.child)
    if isinstance(node, FieldAnd):
        return any(_holds_null(c) for c in node.children)
    return False


def null_on_dotted_path(node: FieldNode) -> bool:
    """``{"a.b": null}`` and kin: MongoDB 9.0 changed their answer through arrays of
    non-documents (SERVER-36681); earlier versions and SecantusDB keep the old rule."""
    return len(node.path) > 1 and _holds_null(node)


def server_dependent(node: FieldNode) -> str | None:
    """Why a field condition cannot be trusted to the server (None: it can)."""
    if isinstance(node, Mod):
        # $mod on an index-picked array and beyond 2**53 (SecantusDB goes through a float)
        return "$mod"
    if isinstance(node, All) and any(v is None or isinstance(v, list) for v in node.values):
        return "$all with null or an array operand"
    if isinstance(node, ElemMatch) and not node.scalar:
        # criteria of only $and/$or/$nor, and elements that are arrays themselves
        return "$elemMatch with document criteria"
    if isinstance(node, Cmp) and isinstance(node.value, bytes):
        return "range on binary data (length first in MongoDB)"
    if isinstance(node, In) and any(isinstance(v, re.Pattern) for v in node.values):
        return "$in with a regular expression (misread on indexed fields)"
    if null_on_dotted_path(node):
        return "null on a dotted path"
    return None


def sort_pushable(sort: Sort) -> bool:
    """A dotted sort path may cross array elements that lack the field, which SecantusDB sorts
    differently from MongoDB: those sorts run in process."""
    return all(len(k.path) == 1 for k in sort)


# --- compilation --------------------------------------------------------------------------------


class MongoPlanner:
    """Plans the queries of one collection (pure)."""

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.key_field = spec.key[0] if spec.single_key else None

    def native_path(self, path: Path) -> str:
        """The stored path of a filter path (the single key field is ``_id``)."""
        if self.key_field is not None and path and path[0] == self.key_field:
            return path_str(("_id", *path[1:]))
        return path_str(path)

    def native_sort(self, sort: Sort) -> NativeSort:
        return [(self.native_path(k.path), k.direction) for k in sort]

    def key_sort(self) -> NativeSort:
        if self.key_field is not None:
            return [("_id", 1)]
        return [(k, 1) for k in self.spec.key]

    def compile(self, node: Node) -> tuple[Native | None, bool]:
        """``(native, exact)``: ``native`` selects a superset of the matches (None: everything),
        exactly them when ``exact``."""
        if isinstance(node, MatchAll):
            return {}, True
        if isinstance(node, And):
            parts = [self.compile(c) for c in node.children]
            natives = [n for n, _ in parts if n]
            exact = all(e for _, e in parts)
            if not natives:
                return ({}, True) if exact else (None, False)
            return (natives[0] if len(natives) == 1 else {"$and": natives}), exact
        if isinstance(node, Or):
            parts = [self.compile(c) for c in node.children]
            if any(n is None for n, _ in parts):
                return None, False
            return {"$or": [n for n, _ in parts]}, all(e for _, e in parts)
        if isinstance(node, Nor):
            parts = [self.compile(c) for c in node.children]
            if not all(e and n is not None for n, e in parts):
                return None, False  # the negation of a superset is no superset
            return {"$nor": [n for n, _ in parts]}, True
        assert isinstance(node, FieldNode)
        path = self.native_path(node.path)
        if server_dependent(node) is None and self._exact_condition(node):
            return {path: self.condition(node)}, True
        return self._approximate(node, path), False

    def _exact_condition(self, node: FieldNode) -> bool:
        """Negations and scalar $elemMatch are exact when everything inside them is."""
        if isinstance(node, Not):
            inner = node.child
            return server_dependent(inner) is None and self._exact_condition(inner)
        if isinstance(node, FieldAnd):
            return all(
                server_dependent(c) is None and self._exact_condition(c) for c in node.children
            )
        if isinstance(node, ElemMatch):
            return all(
                isinstance(c, FieldNode)
                and server_dependent(c) is None
                and self._exact_condition(c)
                for c in conjuncts(node.cond)
            )
        return True

    @staticmethod
    def _approximate(node: FieldNode, path: str) -> Native | None:
        """A superset for a condition the server cannot be trusted with (None: none cheap)."""
        if isinstance(node, Mod):
            return {path: {"$type": "number"}}  # $mod matches numbers only
        if isinstance(node, Cmp) and isinstance(node.value, bytes):
            return {path: {"$type": "binData"}}  # type bracketing: binary values only
        if isinstance(node, ElemMatch):
            return {path: {"$exists": True}}  # needs an array at the path
        return None

    def condition(self, node: FieldNode) -> Any:
        """The operator document of a field condition, as MongoDB takes it."""
        if isinstance(node, Eq):
            return {"$eq": node.value}
        if isinstance(node, Cmp):
            return {node.op: node.value}
        if isinstance(node, In):
            return {"$in": list(node.values)}
        if isinstance(node, Not):
            child = node.child
            if isinstance(child, Eq):
                return {"$ne": child.value}
            if isinstance(child, In):
                return {"$nin": list(child.values)}
            return {"$not": self.condition(child)}
        if isinstance(node, FieldAnd):
            merged: Native = {}
            for c in node.children:
                merged.update(self.condition(c))
            return merged
        if isinstance(node, ElemMatch):
            assert node.scalar
            inner: Native = {}
            for c in conjuncts(node.cond):
                assert isinstance(c, FieldNode)
                inner.update(self.condition(c))
            return {"$elemMatch": inner}
        if isinstance(node, Exists | Type | Regex | All | Size | Mod):
            return node.condition()
        raise TypeError(f"no MongoDB form for {type(node).__name__}")

    # --- the plan ------------------------------------------------------------------------------

    def plan(self, query: Query) -> Plan:
        """Split ``query``: exact and approximate conjuncts go to the server, the rest is the
        residual; sort, skip and limit are pushed whenever nothing needs a re-check."""
        terms = conjuncts(query.filter)
        natives: list[Native] = []
        exact_terms: list[Node] = []
        approx_terms: list[Node] = []
        residual_terms: list[Node] = []
        for term in terms:
            native, exact = self.compile(term)
            if native:
                natives.append(native)
            if exact:
                exact_terms.append(term)
            else:
                residual_terms.append(term)
                if native:
                    approx_terms.append(term)
        residual = conjoin(residual_terms) if residual_terms else None
        native_filter: Native = (
            {} if not natives else natives[0] if len(natives) == 1 else {"$and": natives}
        )

        sort_native = sort_pushable(query.sort)
        client_sort = bool(query.sort) and not sort_native
        # A keyset position is applied in process (over the native order), so such a plan
        # does not count as a pushed sort: base.py then checks the position.
        sort_pushed = bool(query.sort) and sort_native and query.after is None
        ordered = not query.sort or sort_pushed
        limit_pushed = (
            residual is None
            and ordered
            and query.after is None
            and (query.limit is not None or query.skip > 0)
        )
        native_sort = self.native_sort(query.sort) if sort_native else self.key_sort()
        if not query.sort and not limit_pushed:
            native_sort = []
        find = Find(
            native_filter,
            native_sort,
            query.skip if limit_pushed else 0,
            (query.limit or 0) if limit_pushed else 0,
        )

        keys = key_lookup(query.filter, self.spec)
        if keys is not None:
            access = "key"
        else:
            access = indexed_path(query.filter, self.spec) or "scan"
        native: Native = {"filter": native_filter}
        if find.sort:
            native["sort"] = find.sort
        if find.skip:
            native["skip"] = find.skip
        if find.limit:
            native["limit"] = find.limit
        return Plan(
            backend="mongo",
            collection=self.spec.name,
            access_path=access,
            native=native,
            exact=conjoin(exact_terms).to_mongo() if exact_terms else None,
            approximate=conjoin(approx_terms).to_mongo() if approx_terms else None,
            residual=residual.to_mongo() if residual is not None else None,
            sort_pushed=sort_pushed,
            limit_pushed=limit_pushed,
            client_sort=client_sort,
            residual_node=residual,
            payload=find,
        )


__all__ = [
    "Find",
    "MongoPlanner",
    "null_on_dotted_path",
    "server_dependent",
    "sort_pushable",
]
