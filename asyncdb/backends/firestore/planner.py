"""Filter AST -> Firestore query, pure (no driver objects: the store builds those).

A native filter is a small tree: ``("f", field, op, value)`` (one ``FieldFilter`` on a top-level
field), ``("or", parts)`` and ``("and", parts)``. Each top-level conjunct of the asyncdb filter
is compiled to a tree that selects exactly its matches, or a superset of them, or not at all:

* ``{f: v}`` with ``v`` a string, bool, bytes or datetime is exact as
  ``f == v OR f array-contains v`` (MongoDB matches a scalar or an array element; Firestore's
  equality on an array compares the whole array, so the element case needs array-contains);
* ``{f: {$in: [...]}}`` with such values is exact as ``f in [...] OR f array-contains-any [...]``
  (at most 30 values each);
* a number compares with a Decimal, which Firestore stores as a tagged map, so ``{f: 1}`` is
  pushed as ``f == 1 OR f array-contains 1 OR $hasdec == true``: a superset, re-checked;
* anything else (dotted paths, which MongoDB follows through arrays and Firestore does not,
  ranges, negations, ``null``/``$exists``, which must match missing fields that Firestore cannot
  select, ...) stays in the residual, evaluated in process.

Firestore allows one array-contains(-any) per disjunction, so at most one conjunct is pushed
down; the others are re-checked. Key equality (``{id: ...}``, ``$in`` on the key) reads the
documents by id instead of querying.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = FirestorePlanner(CollectionSpec("t")).plan(Query(parse_filter({"s": "x"})))
>>> plan.native["where"], plan.exact, plan.residual
("(s == 'x' OR s array-contains 'x')", {'s': {'$eq': 'x'}}, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncdb.backends.base import conjoin, conjuncts, indexed_path, key_lookup
from asyncdb.backends.firestore.codec import HAS_DECIMAL, doc_id, field_name_ok
from asyncdb.query.ast import Eq, In, MatchAll, Node
from asyncdb.types import CollectionSpec, Plan, Query

Tree = tuple[Any, ...]

MAX_IN = 30  # values in one `in` or `array-contains-any` filter
MAX_DISJUNCTS = 30  # disjunctions in a filter's normal form
# Firestore indexes the first 1500 bytes of a value and refuses larger query values: longer
# strings and bytes stay in the residual (a margin keeps clear of the truncation edge).
MAX_INDEXED_BYTES = 1400

_PLAIN = (str, bool, bytes, datetime)


@dataclass(frozen=True, slots=True)
class FirestoreQuery:
    """What the store runs: documents by id, or a query with a filter tree, order and limit."""

    ids: tuple[str, ...] | None = None
    where: Tree | None = None
    order_by: tuple[tuple[str, int], ...] = ()
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class _Pushed:
    tree: Tree
    exact: bool
    arrays: int  # array-contains(-any) filters in the tree


def _field(name: str, op: str, value: Any) -> Tree:
    return ("f", name, op, value)


def _is_plain(value: Any) -> bool:
    t = type(value)
    if t is str:
        return len(value.encode("utf-8", "surrogatepass")) < MAX_INDEXED_BYTES
    if t is bytes:
        return len(value) < MAX_INDEXED_BYTES
    return t in _PLAIN


def _is_number(value: Any) -> bool:
    t = type(value)
    return t is int or (t is float and not math.isnan(value))


def _distinct(values: tuple[Any, ...]) -> list[Any]:
    """The values without repeats (Firestore rejects them), keeping True apart from 1."""
    seen: dict[tuple[type, Any], Any] = {}
    for value in values:
        seen.setdefault((type(value), value), value)
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
        if _is_number(value):
            parts = (
                _field(name, "==", value),
                _field(name, "array_contains", value),
                _field(HAS_DECIMAL, "==", True),
            )
            return _Pushed(("or", parts), False, 1)
    if (
        isinstance(term, In)
        and len(term.path) == 1
        and field_name_ok(term.path[0])
        and 0 < len(term.values) <= MAX_IN
    ):
        name = term.path[0]
        if not all(_is_plain(v) or _is_number(v) for v in term.values):
            return None
        values = _distinct(term.values)
        if all(_is_plain(v) for v in values):
            parts = (
                _field(name, "in", values),
                _field(name, "array_contains_any", values),
            )
            return _Pushed(("or", parts), True, 1)
        parts = (
            _field(name, "in", values),
            _field(name, "array_contains_any", values),
            _field(HAS_DECIMAL, "==", True),
        )
        return _Pushed(("or", parts), False, 1)
    return None


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

    def plan(self, query: Query) -> Plan:
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
        access = indexed_path(node, spec) or "scan"
        native_query = FirestoreQuery(where=where)
        native = {"collection": spec.name, "where": render(where)}
        return self._plan(query, access, native_query, exact_node, approx_node, residual, native)

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


__all__ = ["MAX_DISJUNCTS", "MAX_IN", "FirestorePlanner", "FirestoreQuery", "Tree", "render"]
