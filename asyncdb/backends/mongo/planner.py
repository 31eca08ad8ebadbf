"""Filter AST -> a MongoDB ``find`` (filter, sort, skip, limit), pure.

MongoDB's semantics are asyncdb's specification, so most filters pass through natively and
exactly. The exceptions are the filter forms whose answers differ between MongoDB versions or on
MongoDB-wire servers that depart from MongoDB (SecantusDB, the test server; each form is pinned
in tests/conformance/test_mongo_wire_oracle.py). Those are never trusted to the server: they are
pushed only as a superset (or not at all) and re-checked in process by the reference evaluator.
:func:`server_dependent` lists them; every other node is exact.

The key maps to ``_id``: a single key is ``_id`` itself; a composite key is ``_id`` as a
sub-document of the key fields in key order (BSON compares sub-documents field by field, so key
equality and order are kept). The key fields also stay in the stored document (field order
survives); filters and sorts on a single key field address ``_id``, on a composite key the fields.

Numbers: SecantusDB compares a Decimal128 with a double after rounding the double to about 15
significant digits (``{v: 0.1}`` matches ``Decimal128("0.1")``; MongoDB's manual leaves the
rounding unspecified), so a comparison with a float whose exact value has more digits, or with
any Decimal, is pushed as a slightly widened range and re-checked.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = MongoPlanner(CollectionSpec("t")).plan(Query(parse_filter({"id": "a1"})))
>>> plan.native["filter"], plan.access_path
({'_id': {'$eq': 'a1'}}, 'key')
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from asyncdb.backends.base import (
    conjoin,
    conjuncts,
    field_heads,
    indexed_path,
    key_lookup,
    projected_fields,
)
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
    Projection,
    Regex,
    Size,
    Sort,
    Type,
    Update,
    path_str,
)
from asyncdb.query.parse import FieldAnd
from asyncdb.query.pipeline import (
    AddFields,
    Count,
    Expr,
    Facet,
    Match,
    Project,
    ProjectTree,
    SortStage,
    Stage,
    render_stage,
)
from asyncdb.query.plancache import flat_terms, holds_float, rebound
from asyncdb.query.regex import regex_bound
from asyncdb.query.sort import decode_key_values, unfloat
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
    projection: Native | None = None


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


_SHORT_DIGITS = 15
_WIDEN = Decimal("1e-12")


def inexact_number(value: Any) -> bool:
    """A Decimal, or a float whose exact decimal value has more than 15 significant digits: the
    server may compare it with the other decimal type after rounding."""
    if type(value) is Decimal:
        return value.is_finite() and value != 0
    if type(value) is float:
        return math.isfinite(value) and len(Decimal(value).as_tuple().digits) > _SHORT_DIGITS
    return False


def holds_inexact_number(value: Any) -> bool:
    """Whether ``value`` is, or nests in its arrays and documents, an inexact number."""
    if isinstance(value, list):
        return any(holds_inexact_number(v) for v in value)
    if isinstance(value, dict):
        return any(holds_inexact_number(v) for v in value.values())
    return inexact_number(value)


def _operands(node: FieldNode) -> tuple[Any, ...]:
    if isinstance(node, Eq | Cmp):
        return (node.value,)
    if isinstance(node, In | All):
        return node.values
    return ()


def widened(value: float | Decimal, direction: int) -> float | Decimal:
    """``value`` moved outwards by a relative 1e-12 (far more than a 15-digit rounding)."""
    exact = Decimal(value)
    bound = exact + direction * abs(exact) * _WIDEN
    return float(bound) if type(value) is float else bound


# Escapes that mean the same in Python's re and in PCRE (MongoDB): escaped punctuation and a few
# control characters. \d \w \s \b are Unicode-aware in Python and ASCII in MongoDB's PCRE; \Z,
# \v, \N, \u differ or do not exist in one of them; digits start backreferences or octals.
_PORTABLE_ESCAPES = frozenset("ntrf")


def regex_portable(pattern: str) -> bool:
    """Whether a pattern matches the same strings under Python's re and PCRE (a conservative
    ASCII subset: no Unicode-aware classes, no syntax only one of them has)."""
    if not pattern.isascii() or "{," in pattern or "[:" in pattern:
        return False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not nxt or (nxt.isalnum() and nxt not in _PORTABLE_ESCAPES):
                return False
            i += 2
            continue
        if (
            ch == "("
            and pattern[i + 1 : i + 2] == "?"
            and pattern[i + 2 : i + 3] not in (":", "=", "!")
        ):
            return False  # named groups, inline flags, lookbehind, comments
        i += 1
    return True


def has_regex(native: Any) -> bool:
    """Does a native filter hold a ``$regex`` (then the server gets a time limit)?"""
    if type(native) is dict:
        return "$regex" in native or any(has_regex(v) for v in native.values())
    if type(native) is list:
        return any(has_regex(v) for v in native)
    return False


def server_dependent(node: FieldNode) -> str | None:
    """Why a field condition cannot be trusted to the server (None: it can)."""
    if isinstance(node, Regex) and not regex_portable(node.pattern):
        return "a regular expression beyond the syntax Python's re and PCRE share"
    if isinstance(node, Regex) and regex_bound(node.pattern, node.flags).degree > 1:
        # the server would backtrack on it unbounded; in process it runs under its bound
        return "a regular expression whose backtracking grows faster than the string"
    if any(holds_inexact_number(v) for v in _operands(node)):
        return "a Decimal, or a float of more than 15 digits (rounded against the other type)"
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


# --- keyset positions -----------------------------------------------------------------------
# A page cursor holds the sort key bytes of asyncdb.query.sort. Over key fields only (str, int,
# datetime) they decode back to values, so the position becomes a native range on the key.

_NUMBER, _STRING, _DATE = 0x14, 0x1E, 0x5A


def decode_first_position(data: bytes) -> tuple[Any, bool] | None:
    """The first sort value a page cursor encodes, as ``(value, descending)``: a number (as the
    nearest float), a string or a date; None for anything else."""
    if not data:
        return None
    descending = data[0] not in (_NUMBER, _STRING, _DATE)
    flip = 0xFF if descending else 0
    tag = data[0] ^ flip
    try:
        if tag == _NUMBER:
            return unfloat(bytes(b ^ flip for b in data[1:9])), descending
        if tag in (_STRING, _DATE):
            end = 1
            if tag == _DATE:
                end = 9
            else:
                # a string runs to its 00 00 terminator (an embedded NUL is 00 01)
                while not (data[end] ^ flip == 0 and data[end + 1] ^ flip == 0):
                    end += 2 if data[end] ^ flip == 0 else 1
                end += 2
            values = decode_key_values(data[:end], 1)
            return (values[0], descending) if values else None
    except (IndexError, struct.error):
        return None
    return None


# --- compilation --------------------------------------------------------------------------------


_KEY_TYPES = ("number", "string", "date")  # in BSON order


def _key_type(value: Any) -> str:
    return "date" if type(value) is datetime else "string" if type(value) is str else "number"


def _beyond(path: str, direction: int, value: Any) -> Native:
    """Key values after ``value`` in BSON order (``$gt``/``$lt`` alone bracket by type)."""
    rank = _KEY_TYPES.index(_key_type(value))
    others = _KEY_TYPES[rank + 1 :] if direction == 1 else _KEY_TYPES[:rank]
    cond = {path: {"$gt" if direction == 1 else "$lt": value}}
    if not others:
        return cond
    return {"$or": [cond, {path: {"$type": list(others)}}]}


def native_projection(
    projection: Projection | None, spec: CollectionSpec, needed: set[str]
) -> Native | None:
    """A server projection that keeps at least what ``apply_projection`` (run again in
    process) and the in-process steps (``needed``: residual, sort, position) read: whole
    top-level fields only, the key fields and ``_id`` always kept. None: the whole document."""
    found = projected_fields(projection, spec, needed | {"_id"})
    if found is None:
        return None
    include, fields = found
    if include:
        return {f: 1 for f in fields if f != "_id"}
    return {f: 0 for f in fields}


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
        if isinstance(node, Cmp) and inexact_number(node.value):
            # a strict bound loosened to inclusive and moved outwards
            op = {"$gt": "$gte", "$lt": "$lte"}.get(node.op, node.op)
            return {path: {op: widened(node.value, -1 if op == "$gte" else 1)}}
        if isinstance(node, Eq | In) and any(holds_inexact_number(v) for v in _operands(node)):
            if any(isinstance(v, list | dict) for v in _operands(node)):
                return None  # a nested number: no cheap superset
            if any(v is None for v in _operands(node)) and len(node.path) > 1:
                return None
            exact = [v for v in _operands(node) if not inexact_number(v)]
            ranges: list[Native] = [
                {path: {"$gte": widened(v, -1), "$lte": widened(v, 1)}}
                for v in _operands(node)
                if inexact_number(v)
            ]
            if exact:
                ranges.append({path: {"$in": exact}})
            return ranges[0] if len(ranges) == 1 else {"$or": ranges}
        if isinstance(node, Mod):
            return {path: {"$type": "number"}}  # $mod matches numbers only
        if isinstance(node, Cmp) and isinstance(node.value, bytes):
            return {path: {"$type": "binData"}}  # type bracketing: binary values only
        if isinstance(node, ElemMatch):
            return {path: {"$exists": True}}  # needs an array at the path
        if isinstance(node, Regex):
            return {path: {"$type": "string"}}  # a regular expression matches strings only
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
            for term in conjuncts(node.cond):
                assert isinstance(term, FieldNode)
                inner.update(self.condition(term))
            return {"$elemMatch": inner}
        if isinstance(node, Exists | Type | Regex | All | Size | Mod):
            return node.condition()
        raise TypeError(f"no MongoDB form for {type(node).__name__}")

    def keyset_filter(self, query: Query) -> Native | None:
        """The position of ``query.after`` as a native range, when the sort is on key fields
        only: ``(k0 > a) OR (k0 = a AND k1 > b) ...``."""
        if query.after is None or not query.sort:
            return None
        if any(len(k.path) != 1 or k.path[0] not in self.spec.key for k in query.sort):
            return None
        values = decode_key_values(query.after, len(query.sort))
        if values is None:
            return None
        alternatives: list[Native] = []
        for i, k in enumerate(query.sort):
            terms: list[Native] = [
                {self.native_path(e.path): {"$eq": values[j]}} for j, e in enumerate(query.sort[:i])
            ]
            terms.append(_beyond(self.native_path(k.path), k.direction, values[i]))
            alternatives.append(terms[0] if len(terms) == 1 else {"$and": terms})
        return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}

    def keyset_superset(self, query: Query) -> Native | None:
        """A superset of the documents after ``query.after`` on a sort the server runs but
        whose position is not an exact native range (non-key fields: arrays sort by their
        least/greatest element, other types bracket apart): nothing before the position on the
        first sort field. No element below it (ascending) / above it (descending) keeps every
        document whose sort value is at or past it; the exact check stays in process."""
        if query.after is None or not query.sort:
            return None
        first = decode_first_position(query.after)
        if first is None:
            return None
        value, descending = first
        if type(value) is float:
            if not math.isfinite(value):
                return None
            value = widened(value, 1 if descending else -1)
        op = "$gt" if descending else "$lt"
        return {self.native_path(query.sort[0].path): {"$not": {op: value}}}

    # --- the plan ------------------------------------------------------------------------------

    def plan(self, query: Query, *, explain: bool = True) -> Plan:
        """Split ``query``: exact and approximate conjuncts go to the server, the rest is the
        residual; sort, skip and limit are pushed whenever nothing needs a re-check.
        ``explain=False`` leaves out the filter parts rendered back to the query language
        (``exact``, ``approximate``, ``residual``), which only ``explain()`` shows."""
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
        position = self.keyset_filter(query) if sort_native else None
        if position is not None:
            native_filter = {"$and": [native_filter, position]} if native_filter else position
        # A position that is not a native range is checked in process over the native order,
        # so such a plan does not count as a pushed sort (base.py then checks the position).
        if position is None and sort_native:
            superset = self.keyset_superset(query)
            if superset is not None:
                native_filter = {"$and": [native_filter, superset]} if native_filter else superset
        after_native = query.after is None or position is not None
        sort_pushed = bool(query.sort) and sort_native and after_native
        ordered = not query.sort or sort_pushed
        limit_pushed = residual is None and ordered and (query.limit is not None or query.skip > 0)
        native_sort = self.native_sort(query.sort) if sort_native else self.key_sort()
        if not query.sort and not limit_pushed:
            native_sort = []
        needed = field_heads(residual) | {k.path[0] for k in query.sort}
        projection = native_projection(query.projection, self.spec, needed)
        find = Find(
            native_filter,
            native_sort,
            query.skip if limit_pushed else 0,
            (query.limit or 0) if limit_pushed else 0,
            projection,
        )

        keys = key_lookup(query.filter, self.spec)
        access = "key" if keys is not None else indexed_path(query.filter, self.spec) or "scan"
        request: Native = {"filter": native_filter}
        if find.sort:
            request["sort"] = find.sort
        if find.skip:
            request["skip"] = find.skip
        if find.limit:
            request["limit"] = find.limit
        if find.projection:
            request["projection"] = find.projection
        return Plan(
            backend="mongo",
            collection=self.spec.name,
            access_path=access,
            native=request,
            exact=conjoin(exact_terms).to_mongo() if explain and exact_terms else None,
            approximate=conjoin(approx_terms).to_mongo() if explain and approx_terms else None,
            residual=residual.to_mongo() if explain and residual is not None else None,
            sort_pushed=sort_pushed,
            limit_pushed=limit_pushed,
            client_sort=client_sort,
            residual_node=residual,
            payload=find,
        )

    def binder(self, query: Query) -> Callable[[Query], Plan] | None:
        """``plan(q, explain=False)`` for every ``q`` of the raw shape of ``query`` (see
        :mod:`asyncdb.query.plancache`), or None for the shapes it does not serve. It serves an
        AND of field conditions that all go to the server exactly (no residual), not pinned
        to keys and without a keyset position: the request planned for the shape with the new
        values put in. What this planner decides from a value within a shape's kinds is
        whether a float has more than 15 digits (then its condition is approximate), so a
        shape with a float operand is not served."""
        terms = flat_terms(query.filter)
        if (
            not terms
            or query.after is not None
            or key_lookup(query.filter, self.spec) is not None
            or holds_float(terms)
        ):
            return None
        makers: list[Callable[[Any], Native]] = []
        for term in terms:
            native, exact = self.compile(term)
            if not exact or not native or not isinstance(term, FieldNode):
                return None
            maker = self._maker(term)
            if maker is None or maker(term) != native:
                return None
            makers.append(maker)
        first = self.plan(query, explain=False)
        if first.residual_node is not None or first.native["filter"] != _joined(
            [m(t) for m, t in zip(makers, terms, strict=True)]
        ):
            return None
        find: Find = first.payload
        sort, projection, pushed = find.sort, find.projection, first.limit_pushed

        def bind(q: Query) -> Plan:
            where = _joined([m(t) for m, t in zip(makers, flat_terms(q.filter), strict=True)])
            skip = q.skip if pushed else 0
            limit = (q.limit or 0) if pushed else 0
            request: Native = {"filter": where}  # in the order plan() writes it
            if sort:
                request["sort"] = list(sort)
            if skip:
                request["skip"] = skip
            if limit:
                request["limit"] = limit
            if projection:
                request["projection"] = dict(projection)
            made = Find(
                where,
                list(sort),
                skip,
                limit,
                None if projection is None else dict(projection),
            )
            return rebound(first, request, None, made)

        return bind

    def _maker(self, term: FieldNode) -> Callable[[Any], Native] | None:
        """``lambda t: {path: self.condition(t)}`` written for the term's type (a bound
        filter's term of the same shape has the same path and operator)."""
        path = self.native_path(term.path)
        t = type(term)
        if t is Eq:
            return lambda n: {path: {"$eq": n.value}}
        if t is Cmp:
            op = term.op  # type: ignore[attr-defined]
            return lambda n: {path: {op: n.value}}
        if t is In:
            return lambda n: {path: {"$in": list(n.values)}}
        if t is Not and type(term.child) is Eq:  # type: ignore[attr-defined]
            return lambda n: {path: {"$ne": n.child.value}}
        if t is Not and type(term.child) is In:  # type: ignore[attr-defined]
            return lambda n: {path: {"$nin": list(n.child.values)}}
        if not _has_slot(term):
            condition = self.condition
            return lambda n: {path: condition(n)}
        return None


def _has_slot(term: Node) -> bool:
    """Whether a term holds a value the plan cache binds (a condition with an operand)."""
    return type(term) in (Eq, Cmp, In, All, Not, ElemMatch, FieldAnd)


def _joined(natives: list[Native]) -> Native:
    return natives[0] if len(natives) == 1 else {"$and": natives}


# --- native updates -----------------------------------------------------------------------------
# An update runs on the server only where the server's result, its "modified" count and its
# failures cannot differ from asyncdb's applier (asyncdb/query/update.py): $set, $unset and
# $setOnInsert of top-level non-key fields (they cannot fail on any document), with values whose
# stored form is exact (no float: -0.0/NaN; no Decimal: exponents; no datetime: milliseconds, the
# server calls such changes modified where the applier does not), in lexicographic path order
# (MongoDB 5.0+ applies the paths in that order, the applier in the update's). Everything else
# is read, applied in process and written back in a transaction.

_NATIVE_UPDATE_OPS = frozenset({"$set", "$unset", "$setOnInsert"})


def plain_value(value: Any) -> bool:
    """A value whose stored form compares exactly like the applier's ``strict_equal``."""
    if type(value) in (str, bool) or value is None:
        return True
    if type(value) is int:
        return -(2**63) <= value < 2**63
    if type(value) is list:
        return all(plain_value(v) for v in value)
    if type(value) is dict:
        return all(plain_value(v) for v in value.values())
    return False


def native_update(update: Update, spec: CollectionSpec) -> Native | None:
    """The server form of ``update`` when the server applies it exactly as asyncdb (None: it
    runs in process)."""
    if update.replacement is not None or not update.ops:
        return None
    paths: list[str] = []
    for op in update.ops:
        if op.op not in _NATIVE_UPDATE_OPS or len(op.path) != 1:
            return None
        if op.path[0] in spec.key or op.path[0] == "_id":
            return None
        if op.op != "$unset" and not plain_value(op.value):
            return None
        paths.append(op.path[0])
    if paths != sorted(paths):
        return None
    return update.to_mongo()


def native_positional(
    update: Update, spec: CollectionSpec, planner: MongoPlanner
) -> tuple[Native, list[Native], Native] | None:
    """A positional update the server applies exactly as asyncdb: the update, its array
    filters and the guard to add to the filter; None: it runs in process.

    SecantusDB applies ``$[]`` and ``$[<identifier>]`` as MongoDB does wherever MongoDB
    succeeds, and silently skips what MongoDB fails (pinned in the aggregation wire oracle
    test): a positional path on a missing, null, scalar or object field, a field below
    ``$[]`` in an element that is not a document, ``$`` when the query matched no array
    element. So only ``$set``/``$unset`` of ``<field>.$[]``/``<field>.$[<id>]`` (a top-level
    field, the element itself: nothing below it to fail) go out, with ``{<field>: {$type:
    "array"}}`` added to the filter: a document whose field is not an array does not match, and
    the caller then runs the update in process, where it fails as in MongoDB."""
    if update.replacement is not None or update.pipeline is not None or not update.positional:
        return None
    guard: Native = {}
    paths: list[str] = []
    for op in update.ops:
        if op.op not in ("$set", "$unset") or op.path[0] in spec.key or op.path[0] == "_id":
            return None
        if op.op == "$set" and not plain_value(op.value):
            return None
        if len(op.path) == 2 and (op.path[1] == "$[]" or op.path[1].startswith("$[")):
            guard[op.path[0]] = {"$type": "array"}
        elif len(op.path) != 1 or op.path[0].startswith("$"):
            return None  # "$", or a path below a positional part
        paths.append(path_str(op.path))
    if paths != sorted(paths):
        return None
    filters: list[Native] = []
    for ident, node in update.array_filters:
        if ident in spec.key or ident == "_id":
            return None
        plan = planner.plan(Query(node))
        if plan.residual_node is not None:
            return None
        filters.append(plan.payload.filter)
    return update.to_mongo(), filters, guard


def upsert_filter(node: Node, spec: CollectionSpec) -> Native | None:
    """The server filter of a native upsert: ``_id`` first, then the filter's equalities in
    order, so the server's new document (``_id`` + the equalities + the update) is the stored
    form of asyncdb's (the filter's equalities + the update). None unless the filter is only
    top-level equalities on distinct fields with string/int/bool values, the single key among
    them, in lexicographic order (SecantusDB builds the new document from the equalities in
    that order, whatever the filter's: tests/backends/test_mongo_store.py pins it)."""
    if not spec.single_key:
        return None
    terms = conjuncts(node)
    out: Native = {}
    for term in terms:
        if not isinstance(term, Eq) or len(term.path) != 1 or term.path[0] == "_id":
            return None
        if type(term.value) not in (str, int, bool) or not plain_value(term.value):
            return None
        if term.path[0] in out:
            return None
        out[term.path[0]] = term.value
    key = spec.key[0]
    if list(out) != sorted(out) or key not in out or type(out[key]) is bool:
        return None
    return {"_id": out[key], **out}


# --- aggregation -------------------------------------------------------------------------------
# A pipeline after its leading $match runs on the server unless it holds something SecantusDB
# answers differently from MongoDB's documented rule (each pinned in the aggregation wire oracle
# test): a dotted field path in an expression or $unwind (it does not map a path over an array's
# elements: "$n.x" on {n: [{x: 1}]} is missing, not [1]), a $sort the planner would not push
# (the find rules), $addFields/$set of a dotted path (array elements that are not documents stay
# as they are; {"a": {"b": ...}} replaces an embedded document instead of merging into it), a
# computed field inside a nested $project, and a later $match whose filter the planner re-checks.


def server_agrees(pipeline: Sequence[Stage], planner: MongoPlanner) -> bool:
    """Whether the server runs these stages exactly as the reference evaluator."""
    if any(dotted_reference(spec) for spec in server_stages(pipeline)):
        return False
    for stage in pipeline:
        if isinstance(stage, SortStage) and not sort_pushable(stage.sort):
            return False
        if isinstance(stage, AddFields) and any(len(p) > 1 for p, _ in stage.fields):
            return False
        if isinstance(stage, Project) and _nested_computed(stage.tree):
            return False
        if isinstance(stage, Match) and planner.plan(Query(stage.filter)).residual_node is not None:
            return False
        if isinstance(stage, Facet) and not all(
            server_agrees(sub, planner) for _, sub in stage.facets
        ):
            return False
    return True


def server_stages(pipeline: Sequence[Stage]) -> list[dict[str, Any]]:
    """The stages as sent: ``$count`` as its documented equivalent, a ``$group`` on null and a
    ``$project`` dropping ``_id`` (SecantusDB's ``$count`` outputs ``{n: 0}`` for no input,
    where MongoDB outputs nothing)."""
    out: list[dict[str, Any]] = []
    for stage in pipeline:
        if isinstance(stage, Count):
            out.append({"$group": {"_id": None, stage.field: {"$sum": 1}}})
            out.append({"$project": {"_id": 0}})
        elif isinstance(stage, Facet):
            out.append({"$facet": {name: server_stages(sub) for name, sub in stage.facets}})
        else:
            out.append(render_stage(stage))
    return out


def dotted_reference(spec: Any) -> bool:
    """Whether a rendered stage holds a dotted field path (``"$a.b"``) as a value."""
    if isinstance(spec, str):
        return spec.startswith("$") and not spec.startswith("$$") and "." in spec
    if isinstance(spec, dict):
        return any(dotted_reference(v) for k, v in spec.items() if k != "$literal")
    if isinstance(spec, list):
        return any(dotted_reference(v) for v in spec)
    return False


def _nested_computed(tree: ProjectTree) -> bool:
    return any(isinstance(leaf, ProjectTree) and _has_expr(leaf) for _, leaf in tree.fields)


def _has_expr(tree: ProjectTree) -> bool:
    return any(
        isinstance(leaf, Expr) or (isinstance(leaf, ProjectTree) and _has_expr(leaf))
        for _, leaf in tree.fields
    )


__all__ = [
    "Find",
    "MongoPlanner",
    "decode_first_position",
    "dotted_reference",
    "holds_inexact_number",
    "inexact_number",
    "native_positional",
    "native_projection",
    "native_update",
    "null_on_dotted_path",
    "plain_value",
    "regex_portable",
    "server_agrees",
    "server_dependent",
    "server_stages",
    "sort_pushable",
    "upsert_filter",
    "widened",
]
