"""Filter AST -> Firestore query, pure (no driver objects: the store builds those).

A native filter is a small tree: ``("f", field, op, value)`` (one ``FieldFilter`` on a top-level
field), ``("or", parts)`` and ``("and", parts)``. Each top-level conjunct of the asyncdb filter
is compiled to a tree that selects exactly its matches, or not at all (residual):

* ``{f: v}`` with ``v`` a string, bool, bytes or datetime is ``f == v OR f array_contains v``
  (MongoDB matches a scalar or an array element; Firestore's equality on an array compares the
  whole array, so the element case needs array-contains);
* ``{f: n}`` with a number adds ``$n:f array_contains n``: the codec stores there the int/float
  equal to each Decimal at ``f`` (Firestore compares int64 and double exactly, like MongoDB);
* ``{f: {$in: [...]}}`` with such values is ``f in [...] OR f array_contains_any [...]`` (plus
  the Decimal twins) while the normal form stays within Firestore's 30 disjuncts (each value
  counts once per filter: up to 15 strings);
* a range on a number, string or date is over-approximated as ``f > v OR f >= [] OR
  $D:f == true`` (Firestore brackets ranges by type as MongoDB does, but compares an array as a
  whole, so every array is kept, and every document with a Decimal at ``f``): re-checked;
* anything else stays in the residual, evaluated in process: dotted paths (MongoDB follows them
  through arrays, Firestore does not), ranges on bytes (MongoDB orders them by length first),
  negations, ``null`` and ``$exists`` (they must match missing fields, which Firestore cannot
  select; ``!=``/``not-in`` never match them), regexes, maps (Firestore ignores field order).

Firestore allows one array-contains per disjunction, so one conjunct is pushed down; the others
are re-checked. Key equality (``{id: ...}``, ``$in`` on the key) reads documents by id.

Sort, skip and limit go to Firestore when nothing is left to re-check and every sort path is a
key or declared index field: the codec stores BSON sort keys of those paths in hidden fields
(``$a:p`` ascending, ``$d:p`` descending) on every document, so ``order_by`` on them keeps the
documents missing the field and orders arrays and mixed types as MongoDB does. A keyset page
starts after the previous page's sort key, cut into one value per field.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = FirestorePlanner(CollectionSpec("t")).plan(Query(parse_filter({"s": "x"})))
>>> plan.native["where"], plan.exact, plan.residual
("(s == 'x' OR s array_contains 'x')", {'s': {'$eq': 'x'}}, None)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from asyncdb.backends.base import conjoin, conjuncts, indexed_path, key_lookup
from asyncdb.backends.firestore.codec import (
    decimal_mark,
    decimal_twin,
    doc_id,
    field_name_ok,
    sort_field,
    twin_field,
)
from asyncdb.query.ast import Cmp, Eq, In, MatchAll, Node, Path
from asyncdb.query.plancache import fast_init, flat_terms, make_plan
from asyncdb.query.sort import split_sort_key
from asyncdb.types import CollectionSpec, Plan, Query

Tree = tuple[Any, ...]

MAX_IN = 30  # values in one `in` or `array-contains-any` filter
MAX_DISJUNCTS = 30  # disjunctions in a filter's normal form
# Firestore indexes the first 1500 bytes of a value and refuses larger query values: longer
# strings and bytes stay in the residual (a margin keeps clear of the truncation edge).
MAX_INDEXED_BYTES = 1400

_PLAIN = (str, bool, bytes, datetime)
_RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


@dataclass(frozen=True, slots=True)
class FirestoreQuery:
    """What the store runs: documents by id, or a query with a filter tree, an order (hidden
    sort-key fields, ascending), a keyset position on them, an offset and a limit."""

    ids: tuple[str, ...] | None = None
    where: Tree | None = None
    order_by: tuple[str, ...] = ()
    start_after: tuple[bytes, ...] | None = None
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class _Pushed:
    tree: Tree
    exact: bool
    arrays: int  # array-contains(-any) filters in the tree


make_query = fast_init(FirestoreQuery)


def _field(name: str, op: str, value: Any) -> Tree:
    return ("f", name, op, value)


def _is_plain(value: Any) -> bool:
    t = type(value)
    if t is str:
        return len(value.encode("utf-8", "surrogatepass")) < MAX_INDEXED_BYTES
    if t is bytes:
        return len(value) < MAX_INDEXED_BYTES
    return t in _PLAIN


def _number(value: Any) -> int | float | None:
    """A query number as Firestore compares it (a Decimal as its int/float twin), or None."""
    t = type(value)
    if t is int:
        return int(value)
    if t is float:
        return None if math.isnan(value) else float(value)
    if t is Decimal:
        twin = decimal_twin(value)
        return None if twin is None or (type(twin) is float and math.isnan(twin)) else twin
    return None


def _distinct(values: tuple[Any, ...]) -> list[Any]:
    """The values without repeats (Firestore rejects them), keeping True apart from 1."""
    seen: dict[tuple[str, Any], Any] = {}
    for value in values:
        kind = "number" if type(value) in (int, float) else type(value).__name__
        seen.setdefault((kind, value), value)
    return list(seen.values())


def _compile(term: Node) -> _Pushed | None:
    """The native form of one top-level conjunct, or None (residual)."""
    if isinstance(term, Eq) and len(term.path) == 1 and field_name_ok(term.path[0]):
        name, value = term.path[0], term.value
        if _is_plain(value):
            parts: tuple[Tree, ...] = (
                _field(name, "==", value),
                _field(name, "array_contains", value),
            )
            return _Pushed(("or", parts), True, 1)
        number = _number(value)
        if number is not None:
            parts = (
                _field(name, "==", number),
                _field(name, "array_contains", number),
                _field(twin_field(name), "array_contains", number),
            )
            return _Pushed(("or", parts), True, 1)
    if isinstance(term, Cmp) and len(term.path) == 1 and field_name_ok(term.path[0]):
        return _compile_range(term)
    if (
        isinstance(term, In)
        and len(term.path) == 1
        and field_name_ok(term.path[0])
        and 0 < len(term.values) <= MAX_IN
    ):
        name = term.path[0]
        if not all(_is_plain(v) or _number(v) is not None for v in term.values):
            return None
        values = _distinct(tuple(v if _is_plain(v) else _number(v) for v in term.values))
        numbers = [v for v in values if not _is_plain(v)]
        # Firestore counts each `in` / array-contains-any value as a disjunct of the filter's
        # normal form, which holds at most 30.
        if 2 * len(values) + len(numbers) > MAX_DISJUNCTS:
            return None
        if not numbers:
            parts = (
                _field(name, "in", values),
                _field(name, "array_contains_any", values),
            )
            return _Pushed(("or", parts), True, 1)
        parts = (
            _field(name, "in", values),
            _field(name, "array_contains_any", values),
            _field(twin_field(name), "array_contains_any", numbers),
        )
        return _Pushed(("or", parts), True, 1)
    return None


def sort_paths(spec: CollectionSpec) -> tuple[Path, ...]:
    """The paths whose sort keys every stored document carries: key fields, index fields."""
    paths: dict[Path, None] = {(k,): None for k in spec.key}
    for index in spec.indexes:
        for path in index.paths:
            paths[path] = None
    return tuple(paths)


def _disjuncts(tree: Tree | None) -> list[list[Tree]]:
    """The filter's disjunctive normal form: a list of conjunctions of field filters."""
    if tree is None:
        return [[]]
    if tree[0] == "f":
        return [[tree]]
    if tree[0] == "or":
        return [c for part in tree[1] for c in _disjuncts(part)]
    out: list[list[Tree]] = [[]]
    for part in tree[1]:
        out = [a + b for a in out for b in _disjuncts(part)]
    return out


def composite_indexes(collection: str, query: FirestoreQuery) -> list[dict[str, Any]]:
    """The composite indexes real Firestore needs for this query (the emulator needs none), in
    ``firestore.indexes.json`` form: one per disjunct that touches more than one field."""
    out: list[dict[str, Any]] = []
    for conj in _disjuncts(query.where):
        fields: list[dict[str, str]] = []
        for _, name, op, _value in conj:
            path = _quoted(name)
            if op.startswith("array_contains"):
                fields.append({"fieldPath": path, "arrayConfig": "CONTAINS"})
            else:
                fields.append({"fieldPath": path, "order": "ASCENDING"})
        fields.extend({"fieldPath": _quoted(f), "order": "ASCENDING"} for f in query.order_by)
        names = {f["fieldPath"] for f in fields}
        if len(names) > 1:
            index = {"collectionGroup": collection, "queryScope": "COLLECTION", "fields": fields}
            if index not in out:
                out.append(index)
    return out


_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _quoted(name: str) -> str:
    """A field name as a Firestore field path (backquoted unless a simple identifier)."""
    if _SIMPLE_NAME.fullmatch(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def export_indexes(plans: Iterable[Plan]) -> str:
    """``firestore.indexes.json`` text with the composite indexes these plans need (deduplicated),
    for ``firebase deploy --only firestore:indexes``.

    >>> from asyncdb.query.parse import parse_filter, parse_sort
    >>> from asyncdb.types import CollectionSpec, Index, Query
    >>> planner = FirestorePlanner(CollectionSpec("t", indexes=(Index.of("n"),)))
    >>> plan = planner.plan(Query(parse_filter({"g": "x"}), parse_sort([("n", -1)])))
    >>> json.loads(export_indexes([plan]))["indexes"][0]["fields"][-1]
    {'fieldPath': '`$d:n`', 'order': 'ASCENDING'}
    """
    indexes: list[dict[str, Any]] = []
    for plan in plans:
        for index in plan.native.get("composite_indexes", ()):
            if index not in indexes:
                indexes.append(index)
    return json.dumps({"indexes": indexes, "fieldOverrides": []}, indent=2)


def _compile_range(term: Cmp) -> _Pushed | None:
    """A range as a superset: Firestore brackets ranges by type like MongoDB, but compares an
    array as a whole (MongoDB: any element), so every array is kept (``f >= []``, arrays only),
    and every document with a Decimal at ``f`` (``$D:f``). Bytes stay residual: MongoDB orders
    them by length first, Firestore does not."""
    name, value = term.path[0], term.value
    op = _RANGE_OPS[term.op]
    every_array = _field(name, ">=", [])
    if type(value) is datetime or (type(value) is str and _is_plain(value)):
        return _Pushed(("or", (_field(name, op, value), every_array)), False, 0)
    number = _number(value)
    if number is None:
        return None
    parts = (_field(name, op, number), every_array, _field(decimal_mark(name), "==", True))
    return _Pushed(("or", parts), False, 0)


def render(tree: Tree | None) -> str | None:
    """The filter tree as text, for ``explain()``."""
    if tree is None:
        return None
    if tree[0] == "f":
        _, name, op, value = tree
        return f"{name} {op} {value!r}"
    joiner = " OR " if tree[0] == "or" else " AND "
    return "(" + joiner.join(str(render(p)) for p in tree[1]) + ")"


class FirestorePlanner:
    """Plans queries of one collection (see the module docstring)."""

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.sort_paths = sort_paths(spec)

    def plan(self, query: Query, *, explain: bool = True) -> Plan:
        """The plan of ``query``. ``explain=False`` leaves out the residual rendered back to
        the query language, which only ``explain()`` shows (the pushed part stays: it is the
        native filter's shape in traces)."""
        node = query.filter
        spec = self.spec
        keys = key_lookup(node, spec)
        if keys is not None:
            ids = tuple(dict.fromkeys(doc_id(k) for k in keys))
            residual = None if isinstance(node, MatchAll) else node
            return self._plan(
                query, "key", FirestoreQuery(ids=ids), None, None, residual, {"get": list(ids)}
            )
        chosen: _Pushed | None = None
        chosen_term: Node | None = None
        rest: list[Node] = []
        for term in conjuncts(node):
            pushed = _compile(term)
            better = pushed is not None and (chosen is None or (pushed.exact and not chosen.exact))
            if better:
                if chosen_term is not None:
                    rest.append(chosen_term)
                chosen, chosen_term = pushed, term
            else:
                rest.append(term)
        exact_node = chosen_term if chosen is not None and chosen.exact else None
        approx_node = chosen_term if chosen is not None and not chosen.exact else None
        if approx_node is not None:
            rest.insert(0, approx_node)
        residual = conjoin(rest) if rest else None
        where = chosen.tree if chosen is not None else None
        sort = query.sort
        # Order and limit go to Firestore only when nothing is left to re-check, and the order
        # only on hidden sort-key fields (every document has them: nothing is dropped).
        sort_pushed = residual is None and all(k.path in self.sort_paths for k in sort)
        if not sort and query.after is not None:
            sort_pushed = False
        order_by = tuple(sort_field(k.path, k.direction) for k in sort) if sort_pushed else ()
        start_after = None
        if sort_pushed and sort and query.after is not None:
            start_after = split_sort_key(query.after, tuple(k.direction for k in sort))
        limit_pushed = sort_pushed
        native_query = FirestoreQuery(
            where=where,
            order_by=order_by,
            start_after=start_after,
            offset=query.skip if limit_pushed else 0,
            limit=query.limit if limit_pushed else None,
        )
        indexes = composite_indexes(spec.name, native_query)
        native: dict[str, Any] = {"collection": spec.name, "where": render(where)}
        if order_by:
            native["order_by"] = list(order_by)
        if start_after is not None:
            native["start_after"] = [v.hex() for v in start_after]
        if native_query.offset:
            native["offset"] = native_query.offset
        if native_query.limit is not None:
            native["limit"] = native_query.limit
        if indexes:
            native["composite_indexes"] = indexes
        access = indexed_path(node, spec) or "scan"
        return Plan(
            backend="firestore",
            collection=spec.name,
            access_path=access,
            native=native,
            exact=exact_node.to_mongo() if exact_node is not None else None,
            approximate=approx_node.to_mongo() if approx_node is not None else None,
            residual=residual.to_mongo() if explain and residual is not None else None,
            sort_pushed=sort_pushed and bool(sort),
            limit_pushed=limit_pushed,
            client_sort=bool(sort) and not sort_pushed,
            residual_node=residual,
            payload=native_query,
        )

    def binder(self, query: Query) -> Callable[[Query], Plan] | None:
        """``plan(q, explain=False)`` for every ``q`` of the raw shape of ``query`` (see
        :mod:`asyncdb.query.plancache`), or None for the shapes it does not serve: an AND of
        field conditions not pinned to keys, without a keyset position. Which term goes to
        Firestore is decided once for the shape; per call that term is compiled and the others
        form the residual. Within a shape's kinds this planner decides from a value only
        whether a string is too long to index and how many distinct values an ``$in`` has
        (its normal form holds at most 30 disjuncts): shapes with an ``$in`` of more than 10
        values are not served, and a call with a string of 350 characters or more (up to 1400
        bytes) is planned from its filter."""
        terms = flat_terms(query.filter)
        if (
            not terms
            or query.after is not None
            or key_lookup(query.filter, self.spec) is not None
            or not _short_texts(terms)
            or any(isinstance(t, In) and len(t.values) > 10 for t in terms)
        ):
            return None
        chosen: _Pushed | None = None
        at: int | None = None
        rest: list[int] = []
        for i, term in enumerate(terms):  # the choice plan() makes, by position
            pushed = _compile(term)
            if pushed is not None and (chosen is None or (pushed.exact and not chosen.exact)):
                if at is not None:
                    rest.append(at)
                chosen, at = pushed, i
            else:
                rest.append(i)
        exact = chosen is not None and chosen.exact
        if chosen is not None and not exact:
            assert at is not None
            rest.insert(0, at)
        first = self.plan(query, explain=False)
        plan = self.plan
        name = self.spec.name
        residual_set = bool(rest)
        # the terms that hold strings (the kinds are the shape's), and the composite indexes
        # (they follow from the fields and operators of the filter tree, fixed for the shape)
        texts = [i for i, t in enumerate(terms) if _has_text(t)]
        indexes = first.native.get("composite_indexes")
        order_by = first.payload.order_by
        tree_of = None if at is None else _eq_tree(terms[at], first.payload.where)

        def bind(q: Query) -> Plan:
            ts = flat_terms(q.filter)
            if texts and not _short_texts([ts[i] for i in texts]):
                return plan(q, explain=False)
            term = None if at is None else ts[at]
            where: Tree | None
            text: str | None
            if tree_of is not None:
                where, text = tree_of(term)
            else:
                compiled = None if term is None else _compile(term)
                where = None if compiled is None else compiled.tree
                text = render(where)
            residual = conjoin([ts[i] for i in rest]) if residual_set else None
            pushed = first.limit_pushed
            native_query = make_query(
                None,
                where,
                order_by,
                None,
                q.skip if pushed else 0,
                q.limit if pushed else None,
            )
            native: dict[str, Any] = {"collection": name, "where": text}
            if native_query.order_by:
                native["order_by"] = list(native_query.order_by)
            if native_query.offset:
                native["offset"] = native_query.offset
            if native_query.limit is not None:
                native["limit"] = native_query.limit
            if indexes:
                native["composite_indexes"] = [
                    {**index, "fields": [dict(f) for f in index["fields"]]} for index in indexes
                ]
            rendered = None if term is None else term.to_mongo()
            made: Plan = make_plan(
                first.backend,
                first.collection,
                first.access_path,
                native,
                rendered if exact else None,
                None if exact else rendered,
                None,
                first.sort_pushed,
                pushed,
                first.client_sort,
                residual,
                native_query,
                None,
            )
            return made

        return bind

    def _plan(
        self,
        query: Query,
        access: str,
        native_query: FirestoreQuery,
        exact: Node | None,
        approx: Node | None,
        residual: Node | None,
        native: dict[str, Any],
    ) -> Plan:
        return Plan(
            backend="firestore",
            collection=self.spec.name,
            access_path=access,
            native=native,
            exact=exact.to_mongo() if exact is not None else None,
            approximate=approx.to_mongo() if approx is not None else None,
            residual=residual.to_mongo() if residual is not None else None,
            sort_pushed=False,
            limit_pushed=False,
            client_sort=bool(query.sort),
            residual_node=residual,
            payload=native_query,
        )


def _eq_tree(term: Node, tree: Tree | None) -> Callable[[Any], tuple[Tree, str]] | None:
    """For an ``$eq`` of a string, date, int or float: the function of a term of its shape
    giving the filter tree ``_compile`` gives and its text (``render``), with the operand put
    in each part (as is: ``_number`` of an int or a float is itself). None for other terms."""
    if type(term) is not Eq or type(term.value) not in (str, datetime, int, float):
        return None
    if tree is None or tree[0] != "or" or any(p[0] != "f" for p in tree[1]):
        return None
    pairs = [(p[1], p[2]) for p in tree[1]]

    def made(t: Any) -> tuple[Tree, str]:
        v = t.value
        r = repr(v)
        parts = tuple([("f", n, op, v) for n, op in pairs])
        return ("or", parts), "(" + " OR ".join([f"{n} {op} {r}" for n, op in pairs]) + ")"

    if made(term) != (tree, render(tree)):
        return None
    return made


def _has_text(term: Node) -> bool:
    if isinstance(term, Eq | Cmp):
        return type(term.value) is str
    return isinstance(term, In) and any(type(v) is str for v in term.values)


def _short_texts(terms: Sequence[Node]) -> bool:
    """Whether every string operand of these terms is short enough to be indexed whatever it
    holds (under 350 characters: at most 1400 bytes of UTF-8)."""
    for term in terms:
        if isinstance(term, Eq | Cmp):
            if type(term.value) is str and len(term.value) >= MAX_INDEXED_BYTES // 4:
                return False
        elif isinstance(term, In):
            for v in term.values:
                if type(v) is str and len(v) >= MAX_INDEXED_BYTES // 4:
                    return False
    return True


__all__ = [
    "MAX_DISJUNCTS",
    "MAX_IN",
    "FirestorePlanner",
    "FirestoreQuery",
    "Tree",
    "composite_indexes",
    "export_indexes",
    "render",
    "sort_paths",
]
