"""Filters to parameterized Cosmos DB SQL (pure: no I/O).

Every condition compiles to a :class:`Fragment`: SQL text that is always true or false (never
Cosmos' *undefined*, so ``NOT`` stays sound), and whether it is exact. Values travel as ``@pN``
parameters; field names enter the text only through ``c["v"]["name"]`` after validation.

Cosmos compares only same-typed values and leaves cross-type comparisons undefined, so every
comparison carries a type guard (``IS_STRING``, ``IS_NUMBER``, ``IS_DEFINED``, ``IS_ARRAY``).
What is exact:

- ``$eq``/``$in`` of strings, booleans and null on a top-level field (arrays via
  ``ARRAY_CONTAINS``), ``$exists``, ``$size``, ``$ne``/``$nin``/``$not``/``$nor`` of exact parts;
- ``$gt``/``$gte``/``$lt``/``$lte`` of a string whose characters are all below U+D800 (the server
  compares UTF-16 code units; for such literals that agrees with code point order).

Approximate (a superset, re-checked in process): numbers (``OR c.tn = true`` lets documents
holding a Decimal or an int beyond 2**53 through), string/number ranges on arrays
(``OR IS_ARRAY``). Everything else (dotted paths, dates, bytes, Decimals, documents and arrays
as values, ``$regex``, ``$type``, ``$all``, ``$elemMatch``, ``$mod``) is left to the residual.
Sort is never pushed (Cosmos' mixed-type order is not BSON order); a limit is pushed as
``TOP n`` only when nothing is re-checked.

>>> from asyncdb.query import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = plan_query(CollectionSpec("t", allow_scan=True), Query(parse_filter({"s": "x"})))
>>> print(plan.native["sql"])  # doctest: +NORMALIZE_WHITESPACE
SELECT c.id, c._etag, c.raw FROM c WHERE IS_DEFINED(c["v"]["s"]) AND c["v"]["s"] = @p0
    OR IS_ARRAY(c["v"]["s"]) AND ARRAY_CONTAINS(c["v"]["s"], @p0)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from asyncdb.backends.base import conjoin, conjuncts, indexed_path, is_key_value, key_lookup
from asyncdb.backends.cosmos.codec import (
    ID,
    PARTITION,
    QUERYABLE,
    RAW,
    TAGGED_NUMBER,
    encode_key,
    encode_key_part,
    is_plain,
)
from asyncdb.errors import QueryError
from asyncdb.query.ast import (
    And,
    Cmp,
    Eq,
    Exists,
    In,
    MatchAll,
    Node,
    Nor,
    Not,
    Or,
    Path,
    Size,
)
from asyncdb.query.plancache import fast_init, flat_terms, make_plan
from asyncdb.types import CollectionSpec, Plan, Query

BACKEND = "cosmos"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,254}")
_PLACEHOLDER = re.compile(r"@p[0-9]+")
_SQL_OP = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# Below the surrogates, UTF-16 code unit order equals code point order.
_SURROGATES = "\ud800"


# Precedence levels of rendered SQL: parentheses only where needed (see MAX_NESTING).
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4
# cosmosdb-server's parser backtracks exponentially in parenthesis nesting (each level doubles
# the time of a query: 30 ms flat, 130 ms at four levels); deeper conditions stay residual.
MAX_NESTING = 2


@dataclass(frozen=True, slots=True)
class Fragment:
    """A compiled condition: always-boolean SQL (never *undefined*), whether it is exact, its
    operator precedence and its parenthesis nesting."""

    sql: str
    exact: bool
    level: int = _ATOM
    nesting: int = 0


def _wrapped(part: Fragment, below: int) -> tuple[str, int]:
    if part.level < below:
        return f"({part.sql})", part.nesting + 1
    return part.sql, part.nesting


def sql_and(parts: list[Fragment], exact: bool | None = None) -> Fragment:
    if len(parts) == 1:
        only = parts[0]
        return only if exact is None else Fragment(only.sql, exact, only.level, only.nesting)
    rendered = [_wrapped(p, _AND + 1) for p in parts]
    return Fragment(
        " AND ".join(r for r, _ in rendered),
        all(p.exact for p in parts) if exact is None else exact,
        _AND,
        max(n for _, n in rendered),
    )


def sql_or(parts: list[Fragment]) -> Fragment:
    if len(parts) == 1:
        return parts[0]
    rendered = [_wrapped(p, _OR + 1) for p in parts]
    exact = all(p.exact for p in parts)
    return Fragment(" OR ".join(r for r, _ in rendered), exact, _OR, max(n for _, n in rendered))


def sql_not(part: Fragment) -> Fragment:
    # a comparison under NOT is parenthesized too (atoms are function calls and literals)
    text, nesting = _wrapped(part, _ATOM + 1) if part.level < _ATOM else (part.sql, part.nesting)
    return Fragment(f"NOT {text}", part.exact, _NOT, nesting)


def atom(sql: str, *, comparison: bool = False) -> Fragment:
    return Fragment(sql, True, _NOT if comparison else _ATOM)


@dataclass(frozen=True, slots=True)
class CosmosQuery:
    """What the store runs: point reads by item id, or SQL with parameters."""

    ids: tuple[tuple[str, str], ...] | None  # (item id, partition key) pairs
    sql: str
    parameters: tuple[tuple[str, Any], ...]

    def parameter_list(self) -> list[dict[str, Any]]:
        return [{"name": name, "value": value} for name, value in self.parameters]


make_query = fast_init(CosmosQuery)


class Parameters:
    """Hands out ``@pN`` placeholders, one per distinct value (by type and value)."""

    def __init__(self) -> None:
        self.values: dict[tuple[type, Any], str] = {}

    def add(self, value: Any) -> str:
        ident = (type(value), value)
        if ident not in self.values:
            self.values[ident] = f"@p{len(self.values)}"
        return self.values[ident]

    def used_in(self, sql: str) -> tuple[tuple[str, Any], ...]:
        """The parameters ``sql`` refers to (a node left to the residual may have taken one)."""
        names = set(_PLACEHOLDER.findall(sql))
        return tuple((name, value) for (_t, value), name in self.values.items() if name in names)


def field_expr(path: Path) -> str | None:
    """``c["v"]["name"]`` for a validated top-level field, else None (not pushed)."""
    if len(path) != 1 or not _NAME.fullmatch(path[0]):
        return None
    return f'c["{QUERYABLE}"]["{path[0]}"]'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _eq(x: str, value: Any, params: Parameters) -> Fragment | None:
    if value is None:
        p = params.add(None)
        parts = [
            sql_not(atom(f"IS_DEFINED({x})")),
            atom(f"IS_NULL({x})"),
            sql_and([atom(f"IS_ARRAY({x})"), atom(f"ARRAY_CONTAINS({x}, {p})")]),
        ]
        return sql_or(parts)
    if not is_plain(value):
        return None
    p = params.add(value)
    # IS_DEFINED first: a missing field makes "=" undefined, which NOT would not turn into true
    parts = [
        sql_and([atom(f"IS_DEFINED({x})"), atom(f"{x} = {p}", comparison=True)]),
        sql_and([atom(f"IS_ARRAY({x})"), atom(f"ARRAY_CONTAINS({x}, {p})")]),
    ]
    if _is_number(value):
        # a Decimal or a large int equal to it is stored tagged: let it through to the residual
        parts.append(atom(f"c.{TAGGED_NUMBER} = true", comparison=True))
        return _approximate(sql_or(parts))
    return sql_or(parts)


def _approximate(fragment: Fragment) -> Fragment:
    return Fragment(fragment.sql, False, fragment.level, fragment.nesting)


def _cmp(x: str, op: str, value: Any, params: Parameters) -> Fragment | None:
    sql_op = _SQL_OP[op]
    if isinstance(value, str) and max(value, default="") < _SURROGATES:
        guard = "IS_STRING"
    elif _is_number(value) and is_plain(value):
        guard = "IS_NUMBER"
    else:
        return None
    p = params.add(value)
    parts = [
        sql_and([atom(f"{guard}({x})"), atom(f"{x} {sql_op} {p}", comparison=True)]),
        # an array may hold a matching element: every array goes through to the residual
        atom(f"IS_ARRAY({x})"),
    ]
    if guard == "IS_NUMBER":
        parts.append(atom(f"c.{TAGGED_NUMBER} = true", comparison=True))
    return _approximate(sql_or(parts))


def compile_node(node: Node, params: Parameters) -> Fragment | None:
    """The SQL of one filter node, or None when it is not pushed (the residual checks it)."""
    fragment = _compile(node, params)
    if fragment is None or fragment.nesting > MAX_NESTING:
        return None
    return fragment


def _compile(node: Node, params: Parameters) -> Fragment | None:
    if isinstance(node, MatchAll):
        return atom("true")
    if isinstance(node, And | Or | Nor):
        parts = [compile_node(child, params) for child in node.children]
        pushed = [p for p in parts if p is not None]
        if isinstance(node, And):
            if not pushed:
                return None
            exact = len(pushed) == len(parts) and all(p.exact for p in pushed)
            return sql_and(pushed, exact)
        if len(pushed) != len(parts) or not pushed:
            return None
        if isinstance(node, Or):
            return sql_or(pushed)
        # the negation of a superset is a subset: only an exact $nor is pushed
        either = sql_or(pushed)
        return sql_not(either) if either.exact else None
    x = field_expr(node.path) if isinstance(node, Eq | Cmp | In | Exists | Not | Size) else None
    if x is None:
        return None
    if isinstance(node, Eq):
        return _eq(x, node.value, params)
    if isinstance(node, Cmp):
        return _cmp(x, node.op, node.value, params)
    if isinstance(node, In):
        if len(node.values) > IN_PUSHED_MAX:
            return None  # a query of that many parameters times out: the residual decides
        eqs = [_eq(x, value, params) for value in node.values]
        done = [e for e in eqs if e is not None]
        if not eqs or len(done) != len(eqs):
            return None
        return sql_or(done)
    if isinstance(node, Exists):
        defined = atom(f"IS_DEFINED({x})")
        return defined if node.exists else sql_not(defined)
    if isinstance(node, Size):
        p = params.add(node.size)
        return sql_and([atom(f"IS_ARRAY({x})"), atom(f"ARRAY_LENGTH({x}) = {p}", comparison=True)])
    assert isinstance(node, Not)
    inner = compile_node(node.child, params)
    if inner is None or not inner.exact:
        return None
    return sql_not(inner)


MAX_ID_LENGTH = 255  # characters of an item id (the key, encoded)
IN_PUSHED_MAX = 500  # $in values sent as parameters of one query


def plan_query(spec: CollectionSpec, query: Query, *, explain: bool = True) -> Plan:
    """Split ``query`` into Cosmos SQL (exact and approximate parts) and an in-process residual.
    ``explain=False`` leaves out the filter parts rendered back to the query language
    (``exact``, ``approximate``, ``residual``), which only ``explain()`` shows."""
    node = query.filter
    keys = key_lookup(node, spec)
    if keys is not None:
        ids = tuple((encode_key(k), encode_key_part(k[0])) for k in keys)
        if any(len(i) > MAX_ID_LENGTH for i, _ in ids):
            # no stored item has such an id (inserts refuse it); Cosmos would answer HTTP 431
            raise QueryError(
                f"key size limit: cosmos holds keys of at most {MAX_ID_LENGTH} characters (encoded)"
            )
        residual = None if isinstance(node, MatchAll) else node
        native_query = CosmosQuery(ids, "", ())
        return Plan(
            backend=BACKEND,
            collection=spec.name,
            access_path="key",
            native={"read_items": [i for i, _ in ids]},
            exact=None,
            approximate=None,
            residual=residual.to_mongo() if residual is not None else None,
            client_sort=bool(query.sort),
            residual_node=residual,
            payload=native_query,
        )
    params = Parameters()
    where: list[Fragment] = []
    exact: list[Node] = []
    approximate: list[Node] = []
    leftover: list[Node] = []
    prefix = _partition_prefix(node, spec)
    if prefix is not None:
        where.append(atom(f"c.{PARTITION} = {params.add(prefix)}", comparison=True))
    for term in conjuncts(node):
        fragment = compile_node(term, params)
        if fragment is None:
            leftover.append(term)
            continue
        where.append(fragment)
        (exact if fragment.exact else approximate).append(term)
    residual_terms = approximate + leftover
    residual = conjoin(residual_terms) if residual_terms else None
    limit_pushed = (
        residual is None
        and not query.sort
        and query.skip == 0
        and query.after is None
        and query.limit is not None
        and query.limit > 0
    )
    top = f"TOP {int(query.limit)} " if limit_pushed and query.limit is not None else ""
    sql = f"SELECT {top}c.{ID}, c._etag, c.{RAW} FROM c"
    if where:
        sql += " WHERE " + sql_and(where, True).sql
    index = indexed_path(node, spec)
    native_query = CosmosQuery(None, sql, params.used_in(sql))
    return Plan(
        backend=BACKEND,
        collection=spec.name,
        access_path=index if index is not None else "scan",
        native={"sql": sql, "parameters": dict(native_query.parameters)},
        exact=conjoin(exact).to_mongo() if explain and exact else None,
        approximate=conjoin(approximate).to_mongo() if explain and approximate else None,
        residual=residual.to_mongo() if explain and residual is not None else None,
        limit_pushed=limit_pushed,
        client_sort=bool(query.sort),
        residual_node=residual,
        payload=native_query,
    )


def _operands(term: Node) -> tuple[Any, ...] | None:
    """The values compiling ``term`` hands to ``Parameters.add``, in order, when its path can
    be pushed at all (None: a term this binder does not know)."""
    t = type(term)
    if t is Not:
        return _operands(term.child)  # type: ignore[attr-defined]
    if t is Eq or t is Cmp:
        return (term.value,)  # type: ignore[attr-defined]
    if t is In:
        return term.values  # type: ignore[attr-defined, no-any-return]
    if t is Size:
        return (term.size,)  # type: ignore[attr-defined]
    if t is Exists:
        return ()
    return None


def _is_range(term: Node) -> bool:
    while type(term) is Not:
        term = term.child
    return type(term) is Cmp


_SCALARS = frozenset({str, int, float, bool, type(None), datetime, Decimal, bytes})


def _value_class(value: Any) -> Any:
    """What of a value decides how it compiles: its type, an int within 2**53, a string below
    the surrogates (comparable as UTF-16 code units)."""
    t = type(value)
    if t is int:
        return is_plain(value)
    if t is str:
        return max(value, default="") < _SURROGATES
    return t


def binder(spec: CollectionSpec, query: Query) -> Callable[[Query], Plan] | None:
    """``plan_query(spec, q, explain=False)`` for every ``q`` of the raw shape of ``query``
    (see :mod:`asyncdb.query.plancache`), or None for the shapes it does not serve: an AND of
    field conditions not pinned to keys nor to a partition. The SQL text is the shape's; per
    call the parameters are the new values. Within a shape's kinds the text depends on the
    values through an int beyond 2**53 or a string above U+D7FF (they compile differently),
    on which values are equal (one parameter per distinct value) and on a pushed limit (``TOP
    n``): a call that differs in any of them is planned from its filter."""
    terms = flat_terms(query.filter)
    if (
        not terms
        or key_lookup(query.filter, spec) is not None
        or _partition_prefix(query.filter, spec) is not None
    ):
        return None
    sites: list[int] = []  # the terms whose operands are parameters, by position
    for i, term in enumerate(terms):
        ops = _operands(term)
        if ops is None:
            if _compile(term, Parameters()) is not None:
                return None  # a pushed term of another form: not served
            continue
        x = field_expr(term.path)  # type: ignore[attr-defined]
        if x is not None and ops:
            sites.append(i)

    def values_of(ts: Sequence[Node]) -> list[Any]:
        out: list[Any] = []
        for i in sites:
            out.extend(_operands(ts[i]))  # type: ignore[arg-type]
        return out

    values0 = values_of(terms)
    if any(type(v) not in _SCALARS for v in values0):
        return None  # a document or an array operand (never a parameter): not served
    first = plan_query(spec, query, explain=False)
    firsts: dict[tuple[type, Any], int] = {}
    pattern0 = [firsts.setdefault((type(v), v), len(firsts)) for v in values0]
    # the values whose class decides (see _value_class), by position, and their class: the
    # ints, and the strings of ranges (an equality takes any string)
    ranged = [_is_range(terms[i]) for i in sites for _v in _operands(terms[i]) or ()]
    checks = [
        (i, _value_class(v))
        for i, v in enumerate(values0)
        if type(v) is int or (type(v) is str and ranged[i])
    ]
    params0 = Parameters()
    for v in values0:
        params0.add(v)
    sql0 = first.payload.sql
    used = [n for n, _v in params0.used_in(sql0)]
    if [v for _n, v in first.payload.parameters] != [
        v for (_t, v), n in params0.values.items() if n in used
    ] or [n for n, _v in first.payload.parameters] != used:
        return None  # the parameters are not the operands in order: not served
    # the distinct values' positions (in first use order) of the parameters the SQL uses
    position = {n: k for k, n in enumerate(params0.values.values())}
    picks = [(n, position[n]) for n in used]
    pushed, positive = first.limit_pushed, (query.limit or 0) > 0
    tail = ""
    if pushed:
        head = f"SELECT TOP {int(query.limit or 0)} "
        assert sql0.startswith(head)
        tail = sql0[len(head) :]
    compiled = [compile_node(t, Parameters()) for t in terms]
    # the residual as plan_query orders it: the approximate terms, then those not pushed
    rest = [i for i, f in enumerate(compiled) if f is not None and not f.exact]
    rest += [i for i, f in enumerate(compiled) if f is None]

    def bind(q: Query) -> Plan:
        ts = flat_terms(q.filter)
        values = values_of(ts)
        distinct: dict[tuple[type, Any], int] = {}
        pattern = [distinct.setdefault((type(v), v), len(distinct)) for v in values]
        if (
            pattern != pattern0
            or ((q.limit or 0) > 0) != positive
            or any(_value_class(values[i]) != c for i, c in checks)
        ):
            return plan_query(spec, q, explain=False)
        firsts = [v for _t, v in distinct]  # the first of equal values, as Parameters keeps
        parameters = tuple((n, firsts[k]) for n, k in picks)
        sql = f"SELECT TOP {int(q.limit or 0)} {tail}" if pushed else sql0
        residual = conjoin([ts[i] for i in rest]) if rest else None
        return make_plan(
            BACKEND,
            spec.name,
            first.access_path,
            {"sql": sql, "parameters": dict(parameters)},
            None,
            None,
            None,
            False,
            pushed,
            first.client_sort,
            residual,
            make_query(None, sql, parameters),
            None,
        )

    return bind


def _partition_prefix(node: Node, spec: CollectionSpec) -> str | None:
    """The partition key value when the filter pins the first key field (compound keys)."""
    for term in conjuncts(node):
        if isinstance(term, Eq) and term.path == (spec.key[0],) and is_key_value(term.value):
            return encode_key_part(term.value)
    return None
