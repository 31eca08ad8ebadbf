"""Filter AST -> SQLite SQL over JSON1, pure and cached per query shape.

Each node compiles to ``(sql, exact)``: ``sql`` always selects a superset of the matching rows,
and ``exact`` says it selects exactly them. Inexact top-level conjuncts are the residual that
``base.py`` re-checks with the reference evaluator. The visitor table ``_FIELD`` maps node types
to their SQL; what SQL cannot say exactly is over-approximated and marked, never guessed.

MongoDB rules the SQL keeps:

* values at a path: a scalar condition also matches any array element; dotted paths traverse
  arrays of documents (nested ``json_each``), so ``a.b`` sees ``{"a": [{"b": 1}]}``;
* type bracketing with ``json_type`` guards (``json_extract`` turns JSON true/false into 1/0);
* ``null`` matches missing (``json_type IS NULL``), negations match missing (``NOT IFNULL``);
* dates are tagged objects whose JSON text sorts chronologically (see ``codec``);
* a Decimal is a tagged object SQL cannot compare with numbers, so numeric conditions add
  ``OR (tagged >= 2 AND asyncdb_match(doc, ?))``: the few rows holding a Decimal are checked by
  the reference evaluator inside SQL, and the condition stays exact and index-friendly.

Values are always bound parameters. JSON paths appear in SQL text only when every part is made
of ``[A-Za-z0-9_-]`` (the characters index fields may use); other paths are bound, and parts SQLite
cannot address (quotes, backslashes, control characters, numeric array indexes) go to the residual.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = SQLitePlanner(CollectionSpec("t")).plan(Query(parse_filter({"id": "a1"})))
>>> plan.native["sql"], plan.native["params"], plan.access_path
('SELECT doc, tagged FROM "t" WHERE "k0" = ?1', ['a1'], 'key')
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from asyncdb.backends.base import conjoin
from asyncdb.backends.sqlite.codec import (
    DATE_END,
    DATE_PREFIX,
    HAS_DECIMAL,
    decode_key_sort,
    dumps,
    encode_key,
    escape_text,
    escape_values,
    tag_text,
)
from asyncdb.backends.sqlite.functions import MATCH, MOD, REGEXP, SORTKEY, sort_spec_json
from asyncdb.errors import ConfigurationError
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
    SortKey,
    Type,
)
from asyncdb.query.parse import FieldAnd
from asyncdb.query.plancache import rebound
from asyncdb.query.values import INT64_MAX, INT64_MIN
from asyncdb.types import CollectionSpec, Index, Plan, Query

Getter = Callable[[Sequence[Node], Query], Any]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_CACHE_LIMIT = 1024
_NUMBER_TYPES = "('integer','real')"
_CMP_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FLIP = {"$gt": "$lt", "$gte": "$lte", "$lt": "$gt", "$lte": "$gte"}
_INT32 = "-2147483648 AND 2147483647"


class _Sql(NamedTuple):
    """A compiled condition: ``sql`` selects a superset of the matches; ``exact`` says equal.

    ``dec`` qualifies that for rows holding a Decimal (``tagged >= 2``), which SQL cannot compare
    with numbers: 0 no exception, ``_MISSES`` the SQL may miss such rows (a numeric comparison),
    ``_UNSURE`` it may be wrong on them either way (a negated numeric comparison). The outermost
    field condition settles those rows with ``asyncdb_match`` (the reference evaluator).
    """

    sql: str
    exact: bool
    dec: int = 0


_MISSES = 1
_UNSURE = 2


_ALL = _Sql("1", True)
_NOTHING = _Sql("0", True)
_UNKNOWN = _Sql("1", False)


def _and(parts: Sequence[_Sql]) -> _Sql:
    exact = True
    dec = 0
    real: list[str] = []
    for sql, p_exact, p_dec in parts:  # one pass (this runs for every node compiled)
        if sql == "0" and p_exact and not p_dec:
            return _NOTHING  # one term matches nothing: neither do they together
        exact = exact and p_exact
        if p_dec > dec:
            dec = p_dec
        if sql != "1":
            real.append(sql)
    if not real:
        return _Sql("1", exact, dec)
    return _Sql(real[0] if len(real) == 1 else "(" + " AND ".join(real) + ")", exact, dec)


def _or(parts: Sequence[_Sql]) -> _Sql:
    exact = True
    dec = 0
    real: list[str] = []
    everything = False
    for sql, p_exact, p_dec in parts:
        if sql == "1":
            if p_exact and not p_dec:
                return _ALL  # one term matches everything: so do they together
            everything = True
        exact = exact and p_exact
        if p_dec > dec:
            dec = p_dec
        if not (sql == "0" and p_exact and not p_dec):
            real.append(sql)
    if not real:
        return _NOTHING
    if everything:
        return _Sql("1", exact, dec)
    return _Sql(real[0] if len(real) == 1 else "(" + " OR ".join(real) + ")", exact, dec)


def _negate(inner: _Sql) -> _Sql:
    if not inner.exact:
        return _UNKNOWN
    dec = _UNSURE if inner.dec else 0
    if inner.sql == "1":
        return _Sql("0", True, dec)
    if inner.sql == "0":
        return _Sql("1", True, dec)
    return _Sql(f"NOT IFNULL({inner.sql}, 0)", True, dec)


# --- value kinds (what of a value shapes the SQL) ----------------------------------------------

_SIMPLE = frozenset({type(None), bool, int, float, str, datetime, bytes})


def _has_number(value: Any) -> bool:
    t = type(value)
    if t is dict:
        return any(_has_number(v) for v in value.values())
    if t is list:
        return any(_has_number(v) for v in value)
    return t is int or t is float or t is Decimal


def _decimal_number(value: Decimal) -> int | float | None:
    """The int or float equal to a Decimal, if one exists (else no int/float equals it)."""
    if value == value.to_integral_value():
        as_int = int(value)
        if INT64_MIN <= as_int <= INT64_MAX:
            return as_int
    as_float = float(value)
    if math.isfinite(as_float) and Decimal(as_float) == value:
        return as_float
    return None


_INEXACT_DECIMAL = ("dec", None)


def _kind(value: Any) -> Any:
    """What of a value shapes its SQL: numbers are one kind (bound as they are, a Decimal as the
    int or float equal to it), a Decimal no int or float equals is another."""
    t = type(value)
    if t is float:
        return int
    if t in _SIMPLE:
        return t
    if t is Decimal:
        return int if _decimal_number(value) is not None else _INEXACT_DECIMAL
    if t is list or t is dict:
        return (t, _has_number(value))
    return t


def _number(value: Any) -> Any:
    """A query number as bound: Decimals become the equal int/float (callers checked one exists)."""
    if type(value) is Decimal:
        return _decimal_number(value)
    return value


def _outward(value: Decimal, op: str) -> float:
    """A float bound that keeps every number satisfying ``op value`` (a superset)."""
    approx = float(value)
    if op in ("$gt", "$gte"):
        return approx if Decimal(approx) <= value else math.nextafter(approx, -math.inf)
    return approx if Decimal(approx) >= value else math.nextafter(approx, math.inf)


def _is_num_kind(kind: Any) -> bool:
    return kind is int or kind == _INEXACT_DECIMAL


# --- the shape of a filter: everything but the values ------------------------------------------


def _shape(node: Node, out: list[Node]) -> Any:
    """A hashable description of ``node`` without its values; appends the nodes (whose values
    become parameters) to ``out`` in a fixed order. On every query: kept lean."""
    t = type(node)
    if t is Eq:
        out.append(node)
        return (Eq, node.path, _kind(node.value))  # type: ignore[attr-defined]
    if t is And or t is Or or t is Nor:
        return (t, *[_shape(c, out) for c in node.children])  # type: ignore[attr-defined]
    out.append(node)
    return _SHAPES[t](node, out)


def _shape_cmp(node: Any, out: list[Node]) -> Any:
    v = node.value
    return (Cmp, node.path, node.op, _kind(v), v if type(v) is bool else None)


def _shape_in(node: Any, out: list[Node]) -> Any:
    return (In, node.path, frozenset([_kind(v) for v in node.values]))


def _shape_all(node: Any, out: list[Node]) -> Any:
    return (All, node.path, *[_kind(v) for v in node.values])


def _shape_not(node: Any, out: list[Node]) -> Any:
    return (Not, node.path, _shape(node.child, out))


def _shape_field_and(node: Any, out: list[Node]) -> Any:
    return (FieldAnd, node.path, *[_shape(c, out) for c in node.children])


def _shape_elem_match(node: Any, out: list[Node]) -> Any:
    return (ElemMatch, node.path, node.scalar, _shape(node.cond, out))


def _value_nodes(node: Node, out: list[Node]) -> None:
    """The nodes ``_shape`` appends to ``out``, in its order, without the shape."""
    t = type(node)
    if t is And or t is Or or t is Nor:
        for child in node.children:  # type: ignore[attr-defined]
            _value_nodes(child, out)
        return
    out.append(node)
    if t is Not:
        _value_nodes(node.child, out)  # type: ignore[attr-defined]
    elif t is FieldAnd:
        for child in node.children:  # type: ignore[attr-defined]
            _value_nodes(child, out)
    elif t is ElemMatch:
        _value_nodes(node.cond, out)  # type: ignore[attr-defined]


_SHAPES: dict[type, Callable[[Any, list[Node]], Any]] = {
    Cmp: _shape_cmp,
    In: _shape_in,
    All: _shape_all,
    Not: _shape_not,
    FieldAnd: _shape_field_and,
    ElemMatch: _shape_elem_match,
    Exists: lambda node, out: (Exists, node.path, node.exists),
    Type: lambda node, out: (Type, node.path, node.types),
    MatchAll: lambda node, out: MatchAll,
    # everything else of these is a parameter
    Regex: lambda node, out: (Regex, node.path),
    Size: lambda node, out: (Size, node.path),
    Mod: lambda node, out: (Mod, node.path),
}


# --- JSON paths --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _part_text(part: str) -> tuple[str, bool] | None:
    """A path part as JSON path text and whether it may sit in SQL text (None: not addressable)."""
    if part.isdigit():
        return None  # an array index or a key: the reference evaluator decides
    if _IDENT.fullmatch(part):
        return "." + part, True
    if _SAFE.fullmatch(part):
        return '."' + part + '"', True
    if '"' in part or "\\" in part or any(ord(c) < 0x20 for c in part):
        return None
    return '."' + part + '"', False


def json_path(path: Path) -> str | None:
    """``("a", "b-c")`` -> ``$.a."b-c"`` if every part is safe in SQL text, else None."""
    text = "$"
    for part in path:
        got = _part_text(part)
        if got is None or not got[1]:
            return None
        text += got[0]
    return text


@dataclass(frozen=True, slots=True)
class _Ref:
    """A JSON path: ``base`` (an element's ``fullkey`` expression, None for the document root)
    followed by ``suffix`` (JSON path text); ``safe`` when the suffix may sit in SQL text."""

    base: str | None
    suffix: str
    safe: bool


class _Loc(NamedTuple):
    """A place holding one JSON value: SQL for its path, its SQL value and its JSON type."""

    path: str
    value: str
    type: str
    literal: str | None  # the JSON path text, when the place is a fixed path in SQL text


# --- the compiler --------------------------------------------------------------------------------


class _Pred(NamedTuple):
    """How a field condition applies to the values at its path."""

    test: Callable[[_Loc], _Sql]
    null_ok: bool  # a missing value matches (``{a: null}``)
    expand: bool  # elements of an array at the path are values too


_TOP = "top"  # the document root, outermost level (conditions here may use asyncdb_match)


class _Compiler:
    """Compiles one filter shape. Parameters are recorded as getters over the field nodes, so a
    cached compilation serves every filter of the same shape."""

    def __init__(self, spec: CollectionSpec, nodes: Sequence[Node]) -> None:
        self.spec = spec
        self.index_of = {id(n): i for i, n in enumerate(nodes)}
        self.getters: list[Getter] = []
        self.slots: dict[Any, str] = {}
        self.aliases = 0
        self.pinned: set[str] = set()
        self.key_prefix = False

    # parameters ---------------------------------------------------------------------------

    def bind(self, node: Node, key: Any, conv: Callable[[Any], Any]) -> str:
        """A placeholder for ``conv(node)`` (same node and key: same placeholder)."""
        i = self.index_of[id(node)]
        slot_key = (i, key)
        name = self.slots.get(slot_key)
        if name is None:
            name = self.slots[slot_key] = f"?{len(self.getters) + 1}"
            self.getters.append(_node_getter(i, conv))
        return name

    def const(self, value: Any) -> str:
        """A placeholder for a value fixed by the shape (a JSON path, a sort spec)."""
        slot_key = ("const", type(value), value)
        name = self.slots.get(slot_key)
        if name is None:
            name = self.slots[slot_key] = f"?{len(self.getters) + 1}"
            self.getters.append(_const_getter(value))
        return name

    def alias(self) -> str:
        self.aliases += 1
        return f"e{self.aliases}"

    # places -------------------------------------------------------------------------------

    def path_sql(self, ref: _Ref) -> str:
        if ref.base is None:
            return f"'{ref.suffix}'" if ref.safe else self.const(ref.suffix)
        if not ref.suffix:
            return ref.base
        tail = f"'{ref.suffix}'" if ref.safe else self.const(ref.suffix)
        return f"{ref.base} || {tail}"

    def loc(self, ref: _Ref) -> _Loc:
        p = self.path_sql(ref)
        literal = ref.suffix if ref.base is None and ref.safe else None
        return _Loc(p, f"json_extract(doc, {p})", f"json_type(doc, {p})", literal)

    @staticmethod
    def element(alias: str) -> _Loc:
        return _Loc(f"{alias}.fullkey", f"{alias}.value", f"{alias}.type", None)

    def tag_type(self, loc: _Loc, tag: str) -> str:
        """SQL that is non-NULL when the value at ``loc`` is a ``tag`` object (date, ...)."""
        if loc.literal is not None:
            return f"json_type(doc, '{loc.literal}.\"{tag}\"')"
        return f"json_type(doc, {loc.path} || '.\"{tag}\"')"

    # nodes --------------------------------------------------------------------------------

    def node(self, node: Node, ctx: Any) -> _Sql:
        """Compile ``node`` in ``ctx``: ``_TOP``, a ``_Ref`` (the root of an element document)
        or a ``_Loc`` (the element itself, for paths ``()`` in a scalar ``$elemMatch``)."""
        t = type(node)
        if t is And:
            assert isinstance(node, And)
            return _and([self.node(c, ctx) for c in node.children])
        if t is Or:
            assert isinstance(node, Or)
            return _or([self.node(c, ctx) for c in node.children])
        if t is Nor:
            assert isinstance(node, Nor)
            return _negate(_or([self.node(c, ctx) for c in node.children]))
        if t is MatchAll:
            return _ALL
        assert isinstance(node, FieldNode)
        if not isinstance(ctx, _Loc) and any(_part_text(p) is None for p in node.path):
            return _UNKNOWN  # a path SQLite cannot address: the residual decides
        out = self.field(node, ctx)
        if out.dec and ctx is _TOP:
            # Rows holding a Decimal: the reference evaluator decides, inside SQL.
            check = self.bind(node, "match", lambda n: dumps(n.to_mongo()))
            decided = f"(tagged >= {HAS_DECIMAL} AND {MATCH}(doc, {check}))"
            if out.dec == _MISSES:
                return _Sql(f"({out.sql} OR {decided})", out.exact)
            return _Sql(f"((tagged < {HAS_DECIMAL} AND {out.sql}) OR {decided})", out.exact)
        return out

    def field(self, node: FieldNode, ctx: Any) -> _Sql:
        t = type(node)
        if t is Not:
            assert isinstance(node, Not)
            return _negate(self.node(node.child, ctx))
        if t is FieldAnd:
            assert isinstance(node, FieldAnd)
            return _and([self.node(c, ctx) for c in node.children])
        if t is All:
            assert isinstance(node, All)
            if not node.values:
                return _NOTHING
            parts = []
            for i, value in enumerate(node.values):
                pred = self.eq_pred(node, ("all", i), _nth_value(i), _kind(value))
                parts.append(self.apply(node.path, pred, ctx))
            return _and(parts)
        build = _PREDICATES[t]
        out = self.apply(node.path, build(self, node), ctx)
        if t is Exists and not node.exists:  # type: ignore[attr-defined]
            return _negate(out)
        return out

    def apply(self, path: Path, pred: _Pred, ctx: Any) -> _Sql:
        if isinstance(ctx, _Loc):  # the element itself: one value, never missing
            return pred.test(ctx)
        first = _part_text(path[0])
        assert first is not None  # node() checked every part
        base = None if ctx is _TOP else ctx.base
        ref = _Ref(base, ("$" if base is None else "") + first[0], first[1])
        return self.reach(ref, path[1:], pred, budget=[8])

    def reach(self, ref: _Ref, rest: Path, pred: _Pred, budget: list[int]) -> _Sql:
        """Whether any value reached from ``ref`` through ``rest`` satisfies ``pred``
        (arrays met on the way contribute their document elements, as in ``resolve``)."""
        if not rest:
            return self.leaf(self.loc(ref), pred)
        part = _part_text(rest[0])
        assert part is not None
        here = self.loc(ref)
        direct = self.reach(
            _Ref(ref.base, ref.suffix + part[0], ref.safe and part[1]), rest[1:], pred, budget
        )
        budget[0] -= 1
        if budget[0] < 0:  # deeply nested array paths: over-approximate the array branch
            inner = _UNKNOWN
            alias = ""
        else:
            alias = self.alias()
            elem = _Ref(f"{alias}.fullkey", part[0], part[1])
            inner = self.reach(elem, rest[1:], pred, budget)
        if not inner.exact and inner.sql == "1":
            array = _Sql(f"{here.type} = 'array'", False)
        else:
            cond = f"{alias}.type = 'object' AND {inner.sql}"
            if pred.null_ok:  # an element that is not a document leaves the field missing
                cond = f"({cond}) OR {alias}.type != 'object'"
            exists = f"EXISTS (SELECT 1 FROM json_each(doc, {here.path}) AS {alias} WHERE {cond})"
            if pred.null_ok:  # so does an empty array
                exists = f"(json_array_length(doc, {here.path}) = 0 OR {exists})"
            array = _Sql(f"({here.type} = 'array' AND {exists})", inner.exact, inner.dec)
        if pred.null_ok:
            # A missing value counts, so the direct branch must not see through arrays.
            guarded = _and([_Sql(f"{here.type} IS NOT 'array'", True), direct])
            return _or([guarded, array])
        return _or([direct, array])

    def leaf(self, loc: _Loc, pred: _Pred) -> _Sql:
        parts = [pred.test(loc)]
        if pred.null_ok:
            parts.append(_Sql(f"{loc.type} IS NULL", True))
        if pred.expand:
            alias = self.alias()
            inner = pred.test(self.element(alias))
            if inner.sql != "0":
                exists = (
                    f"EXISTS (SELECT 1 FROM json_each(doc, {loc.path}) AS {alias} "
                    f"WHERE {inner.sql})"
                )
                parts.append(_Sql(f"({loc.type} = 'array' AND {exists})", inner.exact, inner.dec))
        return _or(parts)

    # predicates ---------------------------------------------------------------------------

    def eq_pred(self, node: Node, key: Any, get: Callable[[Any], Any], kind: Any) -> _Pred:
        """Equality with the value ``get(node)`` of kind ``kind``."""
        if kind is type(None):
            return _Pred(lambda loc: _Sql(f"{loc.type} = 'null'", True), True, True)
        if kind is bool:
            p = self.bind(node, key, lambda n: "true" if get(n) else "false")
            return _Pred(lambda loc: _Sql(f"{loc.type} = {p}", True), False, True)
        if _is_num_kind(kind):
            if kind == _INEXACT_DECIMAL:  # no int or float equals it; only Decimals can
                return _Pred(lambda loc: _Sql("0", True, _MISSES), False, True)
            p = self.bind(node, key, lambda n: _number(get(n)))
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} IN {_NUMBER_TYPES} AND {loc.value} = {p})", True, _MISSES
                ),
                False,
                True,
            )
        if kind is str:
            p = self.bind(node, key, get)
            return _Pred(
                lambda loc: _Sql(f"(+{loc.type} = 'text' AND {loc.value} = {p})", True),
                False,
                True,
            )
        if kind is datetime or kind is bytes:
            p = self.bind(node, key, lambda n: tag_text(get(n)))
            return _Pred(
                lambda loc: _Sql(f"(+{loc.type} = 'object' AND {loc.value} = {p})", True),
                False,
                True,
            )
        container, has_number = kind
        json_type = "array" if container is list else "object"
        if not has_number:
            # Without numbers, equal values have equal JSON text (both rendered by SQLite).
            p = self.bind(node, key, lambda n: dumps(escape_values(get(n))))
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} = '{json_type}' AND {loc.value} = json({p}))", True
                ),
                False,
                True,
            )
        if container is list:  # 1 == 1.0 inside arrays: same length is all SQL can tell
            p = self.bind(node, key, lambda n: len(get(n)))
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} = 'array' AND json_array_length(doc, {loc.path}) = {p})",
                    False,
                ),
                False,
                True,
            )
        return _Pred(lambda loc: _Sql(f"+{loc.type} = 'object'", False), False, True)

    def p_eq(self, node: Eq) -> _Pred:
        return self.eq_pred(node, "v", _value, _kind(node.value))

    def p_cmp(self, node: Cmp) -> _Pred:
        op, kind = node.op, _kind(node.value)
        sql_op = _CMP_SQL[op]
        if kind is type(None):
            if op in ("$gte", "$lte"):
                return self.eq_pred(node, "v", lambda n: None, kind)
            return _Pred(lambda loc: _NOTHING, False, False)
        if kind is bool:
            allowed = [
                name for name in ("false", "true") if _bool_cmp(name == "true", op, node.value)
            ]
            if not allowed:
                return _Pred(lambda loc: _NOTHING, False, False)
            names = ",".join(f"'{a}'" for a in allowed)
            return _Pred(lambda loc: _Sql(f"{loc.type} IN ({names})", True), False, True)
        if _is_num_kind(kind):
            exact = kind != _INEXACT_DECIMAL
            if exact:
                p = self.bind(node, "v", lambda n: _number(n.value))
            else:
                p = self.bind(node, "v", lambda n: _outward(n.value, n.op))
                sql_op = ">=" if op in ("$gt", "$gte") else "<="
            # Numbers sort before text in SQLite: the extra bound keeps an index range tight.
            upper = " AND {v} < ''" if op in ("$gt", "$gte") else ""
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} IN {_NUMBER_TYPES} AND {loc.value} {sql_op} {p}"
                    + upper.format(v=loc.value)
                    + ")",
                    exact,
                    _MISSES,
                ),
                False,
                True,
            )
        if kind is str:
            p = self.bind(node, "v", _value)
            lower = " AND {v} >= ''" if op in ("$lt", "$lte") else ""
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} = 'text' AND {loc.value} {sql_op} {p}"
                    + lower.format(v=loc.value)
                    + ")",
                    True,
                ),
                False,
                True,
            )
        if kind is datetime:
            p = self.bind(node, "v", lambda n: tag_text(n.value))
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} = 'object' AND {loc.value} {sql_op} {p} AND "
                    f"{loc.value} >= '{DATE_PREFIX}' AND {loc.value} < '{DATE_END}')",
                    True,
                ),
                False,
                True,
            )
        if kind is bytes:
            return _Pred(
                lambda loc: _Sql(
                    f"(+{loc.type} = 'object' AND {self.tag_type(loc, '$binary')} IS NOT NULL)",
                    False,
                ),
                False,
                True,
            )
        container = kind[0]
        json_type = "array" if container is list else "object"
        return _Pred(lambda loc: _Sql(f"+{loc.type} = '{json_type}'", False), False, True)

    def p_in(self, node: In) -> _Pred:
        groups = _in_groups(frozenset(_kind(v) for v in node.values))
        if not groups:
            return _Pred(lambda loc: _NOTHING, False, False)
        binds: dict[str, str] = {}
        for group in groups:
            if group in _IN_BOUND:
                binds[group] = self.bind(node, ("in", group), _in_group_param(group))

        def test(loc: _Loc) -> _Sql:
            parts: list[_Sql] = []
            for group in groups:
                if group == "num":
                    sub = f"SELECT value FROM json_each({binds[group]})"
                    parts.append(
                        _Sql(
                            f"(+{loc.type} IN {_NUMBER_TYPES} AND {loc.value} IN ({sub}))",
                            True,
                            _MISSES,
                        )
                    )
                elif group == "dec":
                    parts.append(_Sql("0", True, _MISSES))
                elif group == "str":
                    sub = f"SELECT value FROM json_each({binds[group]})"
                    parts.append(_Sql(f"(+{loc.type} = 'text' AND {loc.value} IN ({sub}))", True))
                elif group == "bool":
                    sub = f"SELECT value FROM json_each({binds[group]})"
                    parts.append(_Sql(f"{loc.type} IN ({sub})", True))
                elif group == "null":
                    parts.append(_Sql(f"{loc.type} = 'null'", True))
                elif group == "tag":
                    sub = f"SELECT value FROM json_each({binds[group]})"
                    parts.append(_Sql(f"(+{loc.type} = 'object' AND {loc.value} IN ({sub}))", True))
                elif group == "doc":
                    sub = f"SELECT value FROM json_each({binds[group]})"
                    parts.append(
                        _Sql(
                            f"(+{loc.type} IN ('array','object') AND {loc.value} IN ({sub}))", True
                        )
                    )
                elif group == "approx_list":
                    parts.append(_Sql(f"+{loc.type} = 'array'", False))
                else:  # approx_dict
                    parts.append(_Sql(f"+{loc.type} = 'object'", False))
            return _or(parts)

        return _Pred(test, "null" in groups, True)

    def p_exists(self, node: Exists) -> _Pred:
        # Only the "exists" form: field() negates it over the whole path for $exists: false.
        return _Pred(lambda loc: _Sql(f"{loc.type} IS NOT NULL", True), False, False)

    def p_type(self, node: Type) -> _Pred:
        def test(loc: _Loc) -> _Sql:
            parts = [_Sql(self.type_sql(loc, name), True) for name in node.types]
            return _or(parts)

        return _Pred(test, False, True)

    def type_sql(self, loc: _Loc, name: str) -> str:
        t, v = loc.type, loc.value
        if name == "double":
            return f"{t} = 'real'"
        if name == "int":
            return f"({t} = 'integer' AND {v} BETWEEN {_INT32})"
        if name == "long":
            return f"({t} = 'integer' AND {v} NOT BETWEEN {_INT32})"
        if name == "decimal":
            return f"{self.tag_type(loc, '$decimal')} IS NOT NULL"
        if name == "number":
            return f"({t} IN {_NUMBER_TYPES} OR {self.tag_type(loc, '$decimal')} IS NOT NULL)"
        if name == "string":
            return f"{t} = 'text'"
        if name == "bool":
            return f"{t} IN ('true','false')"
        if name == "null":
            return f"{t} = 'null'"
        if name == "array":
            return f"{t} = 'array'"
        if name == "object":
            tags = " AND ".join(
                f"{self.tag_type(loc, tag)} IS NULL" for tag in ("$date", "$binary", "$decimal")
            )
            return f"({t} = 'object' AND {tags})"
        if name == "binData":
            return f"{self.tag_type(loc, '$binary')} IS NOT NULL"
        if name == "date":
            return f"{self.tag_type(loc, '$date')} IS NOT NULL"
        return "0"  # pragma: no cover - the parser only yields the names above

    def p_regex(self, node: Regex) -> _Pred:
        pattern = self.bind(node, "pattern", lambda n: n.pattern)
        flags = self.bind(node, "flags", lambda n: n.flags)
        return _Pred(
            lambda loc: _Sql(
                f"(+{loc.type} = 'text' AND {REGEXP}({pattern}, {flags}, {loc.value}))", True
            ),
            False,
            True,
        )

    def p_size(self, node: Size) -> _Pred:
        size = self.bind(node, "v", lambda n: n.size)
        return _Pred(
            lambda loc: _Sql(
                f"(+{loc.type} = 'array' AND json_array_length(doc, {loc.path}) = {size})", True
            ),
            False,
            False,
        )

    def p_mod(self, node: Mod) -> _Pred:
        divisor = self.bind(node, "d", lambda n: _int_param(n.divisor))
        remainder = self.bind(node, "r", lambda n: _int_param(n.remainder))
        return _Pred(
            lambda loc: _Sql(
                f"(+{loc.type} IN {_NUMBER_TYPES} AND {MOD}({loc.value}, {divisor}, {remainder}))",
                True,
                _MISSES,
            ),
            False,
            True,
        )

    def p_elem_match(self, node: ElemMatch) -> _Pred:
        def test(loc: _Loc) -> _Sql:
            alias = self.alias()
            if node.scalar:
                inner = self.node(node.cond, self.element(alias))
            else:
                # A nested array is matched as the document {"0": ..., "1": ...}: every field
                # path without a numeric part is missing in it, as json_type says.
                # Dates, bytes and Decimals are tagged objects ('{"$date":...'), not documents.
                document = (
                    f"({alias}.type = 'array' OR ({alias}.type = 'object' AND "
                    f"substr({alias}.value, 1, 3) != '{{\"$'))"
                )
                inner = _and(
                    [
                        _Sql(document, True),
                        self.node(node.cond, _Ref(f"{alias}.fullkey", "", True)),
                    ]
                )
            if inner.sql == "0" and inner.exact:
                return _Sql("0", True, inner.dec)
            exists = (
                f"EXISTS (SELECT 1 FROM json_each(doc, {loc.path}) AS {alias} WHERE {inner.sql})"
            )
            return _Sql(f"(+{loc.type} = 'array' AND {exists})", inner.exact, inner.dec)

        return _Pred(test, False, False)

    # key columns --------------------------------------------------------------------------

    def key_condition(self, node: Node) -> _Sql | None:
        """Eq/Cmp/In on a key field, on its key column (keys are str, int or datetime)."""
        t = type(node)
        if t is not Eq and t is not Cmp and t is not In:
            return None
        assert isinstance(node, Eq | Cmp | In)
        if len(node.path) != 1 or node.path[0] not in self.spec.key:
            return None
        col = f'"k{self.spec.key.index(node.path[0])}"'
        if isinstance(node, Eq):
            kind = _kind(node.value)
            if kind is str or kind is int or kind is datetime:
                self.pinned.add(node.path[0])
                self.key_prefix |= col == '"k0"'
                p = self.bind(node, "key", lambda n: encode_key(_number(n.value)))
                return _Sql(f"{col} = {p}", True)
            return _NOTHING  # null, bool, arrays, documents, bytes: never a key
        if isinstance(node, In):
            kinds = {_kind(v) for v in node.values}
            if datetime in kinds:
                return None
            self.pinned.add(node.path[0])
            self.key_prefix |= col == '"k0"'
            p = self.bind(node, "key", lambda n: dumps(_key_values(n.values)))
            return _Sql(f"{col} IN (SELECT value FROM json_each({p}))", True)
        kind = _kind(node.value)
        if _is_num_kind(kind):
            sql_type = "integer"
        elif kind is str:
            sql_type = "text"
        elif kind is datetime:
            sql_type = "blob"
        else:
            return _NOTHING  # keys are never null, bool, arrays, documents or bytes
        self.key_prefix |= col == '"k0"'
        if kind == _INEXACT_DECIMAL:
            p = self.bind(node, "key", lambda n: _outward(n.value, n.op))
            sql_op = ">=" if node.op in ("$gt", "$gte") else "<="
            return _Sql(f"(typeof({col}) = '{sql_type}' AND {col} {sql_op} {p})", False)
        p = self.bind(node, "key", lambda n: encode_key(_number(n.value)))
        return _Sql(f"(typeof({col}) = '{sql_type}' AND {col} {_CMP_SQL[node.op]} {p})", True)


def _conjuncts(node: Node) -> list[Node]:
    """The top-level AND terms (``base.conjuncts``, without generators: this is on every query)."""
    if type(node) is not And:
        return [] if type(node) is MatchAll else [node]
    out: list[Node] = []
    for child in node.children:
        if type(child) is And or type(child) is MatchAll:
            out.extend(_conjuncts(child))
        else:
            out.append(child)
    return out


def _node_getter(i: int, conv: Callable[[Any], Any]) -> Getter:
    if conv is _value:
        return lambda nodes, query: _text(nodes[i].value)  # type: ignore[attr-defined]
    return lambda nodes, query: conv(nodes[i])


def _text(value: Any) -> Any:
    """A filter string as stored strings are (NUL-safe: codec.escape_text)."""
    return escape_text(value) if type(value) is str else value


def _value(node: Any) -> Any:
    return _text(node.value)


def _const_getter(value: Any) -> Getter:
    return lambda nodes, query: value


def _nth_value(i: int) -> Callable[[Any], Any]:
    return lambda node: _text(node.values[i])


def _in_group_param(group: str) -> Callable[[Any], Any]:
    return lambda node: dumps(_in_values(node.values, group))


def _bool_cmp(candidate: bool, op: str, target: bool) -> bool:
    a, b = int(candidate), int(target)
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _int_param(value: int) -> int | str:
    return value if INT64_MIN <= value <= INT64_MAX else str(value)


def _key_values(values: Sequence[Any]) -> list[Any]:
    out = []
    for v in values:
        t = type(v)
        if t is str or t is int:
            out.append(v)
        elif t is float or t is Decimal:
            n = _number(v) if t is Decimal else v
            if n is not None and n == int(n) and INT64_MIN <= int(n) <= INT64_MAX:
                out.append(int(n))
    return out


_IN_BOUND = frozenset({"num", "str", "bool", "tag", "doc"})
_GROUP_ORDER = ("num", "dec", "str", "bool", "null", "tag", "doc", "approx_list", "approx_dict")


def _group_of(kind: Any) -> str:
    if _is_num_kind(kind):
        return "dec" if kind == _INEXACT_DECIMAL else "num"
    if kind is str:
        return "str"
    if kind is bool:
        return "bool"
    if kind is type(None):
        return "null"
    if kind is datetime or kind is bytes:
        return "tag"
    container, has_number = kind
    if not has_number:
        return "doc"
    return "approx_list" if container is list else "approx_dict"


def _in_groups(kinds: frozenset[Any]) -> tuple[str, ...]:
    present = {_group_of(k) for k in kinds}
    return tuple(g for g in _GROUP_ORDER if g in present)


def _in_values(values: Sequence[Any], group: str) -> list[Any]:
    if group == "str":
        return [escape_text(v) for v in values if type(v) is str]
    if group == "bool":
        return ["true" if v else "false" for v in values if type(v) is bool]
    out: list[Any] = []
    for v in values:
        kind = _kind(v)
        if _group_of(kind) != group:
            continue
        if group == "num":
            out.append(_number(v))
        elif group == "tag":
            out.append(tag_text(v))
        else:
            out.append(escape_values(v))
    return out


_PREDICATES: dict[type, Callable[[_Compiler, Any], _Pred]] = {
    Eq: _Compiler.p_eq,
    Cmp: _Compiler.p_cmp,
    In: _Compiler.p_in,
    Exists: _Compiler.p_exists,
    Type: _Compiler.p_type,
    Regex: _Compiler.p_regex,
    Size: _Compiler.p_size,
    Mod: _Compiler.p_mod,
    ElemMatch: _Compiler.p_elem_match,
}


# --- statements ------------------------------------------------------------------------------


@dataclass(slots=True)
class Statement:
    """What ``rows`` runs: the SELECT, its parameters, and whether it reads by key."""

    sql: str
    params: list[Any]
    count_sql: str
    delete_sql: str
    by_key: bool
    bounded: int | None  # at most this many rows (a pushed LIMIT)
    _count_getters: tuple[Getter, ...]
    _nodes: Sequence[Node]
    _query: Query

    def count_params(self) -> list[Any]:
        """The parameters of ``count_sql`` and ``delete_sql`` (computed when asked)."""
        return [g(self._nodes, self._query) for g in self._count_getters]


@dataclass(frozen=True, slots=True)
class _Template:
    sql: str
    getters: tuple[Getter, ...]
    count_sql: str
    delete_sql: str
    count_getters: tuple[Getter, ...]
    exact: tuple[bool, ...]  # per top-level conjunct
    pushed: tuple[bool, ...]  # inexact but narrowed in SQL
    residual: bool
    access: str
    limit_pushed: bool
    by_key: bool


def _sort_columns(sort: Sort, spec: CollectionSpec) -> list[str] | None:
    """``ORDER BY`` on the key columns when the sort is on key fields only: SQLite orders
    int < text < blob, which is BSON's numbers < strings < dates for key values."""
    cols = []
    for k in sort:
        if len(k.path) != 1 or k.path[0] not in spec.key:
            return None
        cols.append((f'"k{spec.key.index(k.path[0])}"', k.direction))
    return [f"{c} {'ASC' if d == 1 else 'DESC'}" for c, d in cols]


class SQLitePlanner:
    """Plans queries of one collection; compiled SQL is cached per query shape."""

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.table = quote_ident(spec.name)
        self._cache: dict[Any, _Template] = {}

    def plan(self, query: Query, *, explain: bool = True) -> Plan:
        """The plan of ``query``. ``explain=False`` leaves out the filter parts rendered back to
        the query language (``exact``, ``approximate``, ``residual``): ``find`` needs only the
        statement and ``residual_node``, and rendering costs more than a cached compilation."""
        template, nodes = self._template(query)
        return self._bound(template, nodes, query, explain)

    def _template(self, query: Query) -> tuple[_Template, list[Node]]:
        """The statement compiled for the shape of ``query`` (cached), and its value nodes."""
        nodes: list[Node] = []
        shape = _shape(query.filter, nodes)
        key = (shape, query.sort, query.after is not None, query.limit is not None, query.skip > 0)
        template = self._cache.get(key)
        if template is None:
            template = self._compile(query, nodes)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = template
        return template, nodes

    def binder(self, query: Query) -> Callable[[Query], Plan]:
        """``plan(q, explain=False)`` for every ``q`` whose shape is that of ``query`` (the
        caller, :mod:`asyncdb.query.plancache`, keys on a finer shape): the statement compiled
        for the shape with the new values bound, without walking the shape again."""
        template, nodes = self._template(query)
        bound = self._bound
        flat = (
            len(nodes) > 1
            and type(query.filter) is And
            and len(query.filter.children) == len(nodes)
        )
        if template.residual:
            if flat:

                def bind_flat(q: Query) -> Plan:  # an AND of field conditions: the nodes
                    return bound(template, list(q.filter.children), q, False)  # type: ignore[attr-defined]

                return bind_flat

            def bind(q: Query) -> Plan:
                found: list[Node] = []
                _value_nodes(q.filter, found)
                return bound(template, found, q, False)

            return bind
        # Nothing re-checked in process: the plan of the shape with the statement rebound.
        first = bound(template, nodes, query, False)
        sql, getters, limit_pushed = template.sql, template.getters, template.limit_pushed
        count_sql, delete_sql = template.count_sql, template.delete_sql
        by_key, count_getters = template.by_key, template.count_getters

        def bind_exact(q: Query) -> Plan:
            if flat:
                found = list(q.filter.children)  # type: ignore[attr-defined]
            else:
                found = []
                _value_nodes(q.filter, found)
            params = [g(found, q) for g in getters]
            statement = Statement(
                sql,
                params,
                count_sql,
                delete_sql,
                by_key,
                q.limit if limit_pushed else None,
                count_getters,
                found,
                q,
            )
            return rebound(first, {"sql": sql, "params": params}, None, statement)

        return bind_exact

    def _bound(self, template: _Template, nodes: list[Node], query: Query, explain: bool) -> Plan:
        params = [g(nodes, query) for g in template.getters]
        residual: Node | None = None
        exact: dict[str, Any] | None = None
        approximate: dict[str, Any] | None = None
        if template.residual or explain:
            terms = _conjuncts(query.filter)
            if template.residual:
                residual = conjoin(
                    [t for t, ok in zip(terms, template.exact, strict=True) if not ok]
                )
            if explain:
                done = [t for t, ok in zip(terms, template.exact, strict=True) if ok]
                pushed = [t for t, ok in zip(terms, template.pushed, strict=True) if ok]
                exact = conjoin(done).to_mongo() if done else None
                approximate = conjoin(pushed).to_mongo() if pushed else None
        statement = Statement(
            template.sql,
            params,
            template.count_sql,
            template.delete_sql,
            template.by_key,
            query.limit if template.limit_pushed else None,
            template.count_getters,
            nodes,
            query,
        )
        return Plan(
            backend="sqlite",
            collection=self.spec.name,
            access_path=template.access,
            native={"sql": template.sql, "params": params},
            exact=exact,
            approximate=approximate,
            residual=residual.to_mongo() if explain and residual is not None else None,
            sort_pushed=bool(query.sort),
            limit_pushed=template.limit_pushed,
            client_sort=False,
            residual_node=residual,
            payload=statement,
        )

    def _compile(self, query: Query, nodes: Sequence[Node]) -> _Template:
        comp = _Compiler(self.spec, nodes)
        terms = _conjuncts(query.filter)
        compiled: list[_Sql] = []
        for term in terms:
            on_key = comp.key_condition(term)
            compiled.append(on_key if on_key is not None else comp.node(term, _TOP))
        where_parts = [c.sql for c in compiled if c.sql != "1"]
        if any(c.sql == "0" and c.exact for c in compiled):
            where_parts = ["0"]
        where = " AND ".join(where_parts)
        where_sql, count_getters = _renumber(f" WHERE {where}" if where else "", comp.getters)
        count_sql = f"SELECT COUNT(*) FROM {self.table}{where_sql}"
        delete_sql = f"DELETE FROM {self.table}{where_sql}"
        exact = tuple(c.exact for c in compiled)
        residual = not all(exact)

        order = ""
        if query.sort:
            columns = _sort_columns(query.sort, self.spec)
            if columns is not None:
                order = " ORDER BY " + ", ".join(columns)
                if query.after is not None:
                    where_parts.append(self._key_after(comp, query.sort))
            else:
                spec_param = comp.const(sort_spec_json(query.sort))
                order = f" ORDER BY {SORTKEY}(doc, {spec_param})"
                if query.after is not None:
                    after = _query_param(comp, "after")
                    where_parts.append(f"{SORTKEY}(doc, {spec_param}) > {after}")
        where = " AND ".join(where_parts)
        sql = f"SELECT doc, tagged FROM {self.table}" + (f" WHERE {where}" if where else "") + order
        limit_pushed = not residual and (query.limit is not None or query.skip > 0)
        if limit_pushed:
            lim = _query_param(comp, "limit")
            sql += f" LIMIT {lim}"
            if query.skip > 0:
                sql += f" OFFSET {_query_param(comp, 'skip')}"
        sql, getters = _renumber(sql, comp.getters)
        by_key = comp.pinned == set(self.spec.key)
        if by_key:
            access = "key"
        elif comp.key_prefix:
            access = "key-prefix"
        else:
            access = self._index_access(terms, compiled)
        return _Template(
            sql,
            getters,
            count_sql,
            delete_sql,
            count_getters,
            exact,
            tuple((not c.exact) and c.sql != "1" for c in compiled),
            residual,
            access,
            limit_pushed,
            by_key,
        )

    def _key_after(self, comp: _Compiler, sort: Sort) -> str:
        """Keyset condition on key columns: ``(k0 > a) OR (k0 = a AND k1 > b) ...``."""
        alts = []
        for i, k in enumerate(sort):
            parts = []
            for j, earlier in enumerate(sort[:i]):
                col = f'"k{self.spec.key.index(earlier.path[0])}"'
                parts.append(f"{col} = {_after_param(comp, j, len(sort))}")
            col = f'"k{self.spec.key.index(k.path[0])}"'
            op = ">" if k.direction == 1 else "<"
            parts.append(f"{col} {op} {_after_param(comp, i, len(sort))}")
            alts.append("(" + " AND ".join(parts) + ")")
        return "(" + " OR ".join(alts) + ")"

    def _index_access(self, terms: Sequence[Node], compiled: Sequence[_Sql]) -> str:
        for term in terms:
            name = self._served(term)
            if name is not None:
                return f"index:{name}"
        return "scan"

    def _served(self, node: Node) -> str | None:
        """The declared index whose expression a sargable condition of ``node`` uses."""
        if isinstance(node, Or):
            names = [self._served(c) for c in node.children]
            return names[0] if all(n is not None for n in names) else None
        if not isinstance(node, Eq | Cmp | In):
            return None
        if json_path(node.path) is None:
            return None
        kinds = [_kind(v) for v in node.values] if isinstance(node, In) else [_kind(node.value)]
        if any(type(k) is tuple and k[0] in (list, dict) and k[1] for k in kinds):
            return None  # over-approximated container equality is not an index lookup
        null_ok = any(k is type(None) for k in kinds)
        if null_ok and len(node.path) > 1:
            return None
        for index in self.spec.indexes:
            if index.paths[0] == node.path:
                return index.name
        return None


_PLACEHOLDER = re.compile(r"\?(\d+)")
_NUMBERS = [str(i) for i in range(1, 4097)]


def _renumber(sql: str, getters: Sequence[Getter]) -> tuple[str, tuple[Getter, ...]]:
    """Number the placeholders ``sql`` uses 1..n in order and keep only their getters (terms
    that folded away, like ``x OR 1``, may have bound values the SQL no longer needs)."""
    used = list(dict.fromkeys(_PLACEHOLDER.findall(sql)))  # first uses, in order
    if used == _NUMBERS[: len(used)] and len(used) <= len(getters):
        return sql, tuple(getters[: len(used)])  # numbered 1..n already: nothing to change
    order: dict[str, str] = {}
    kept: list[Getter] = []

    def sub(match: re.Match[str]) -> str:
        name = order.get(match.group(1))
        if name is None:
            kept.append(getters[int(match.group(1)) - 1])
            name = order[match.group(1)] = f"?{len(kept)}"
        return name

    return _PLACEHOLDER.sub(sub, sql), tuple(kept)


def _query_param(comp: _Compiler, name: str) -> str:
    slot_key = ("query", name)
    got = comp.slots.get(slot_key)
    if got is None:
        got = comp.slots[slot_key] = f"?{len(comp.getters) + 1}"
        if name == "after":
            comp.getters.append(lambda nodes, q: q.after)
        elif name == "limit":
            comp.getters.append(lambda nodes, q: -1 if q.limit is None else q.limit)
        else:
            comp.getters.append(lambda nodes, q: q.skip)
    return got


def _after_param(comp: _Compiler, i: int, n: int) -> str:
    slot_key = ("after", i)
    got = comp.slots.get(slot_key)
    if got is None:
        got = comp.slots[slot_key] = f"?{len(comp.getters) + 1}"
        comp.getters.append(lambda nodes, q: _decode_key_position(q.after, n)[i])
    return got


def _decode_key_position(after: bytes | None, n: int) -> list[Any]:
    assert after is not None
    return decode_key_sort(after, n)


# --- schema ----------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """Double-quote an identifier (names are validated ``[A-Za-z0-9_-]``; quotes are refused)."""
    if '"' in name or "\x00" in name:
        raise ConfigurationError(f"invalid identifier {name!r}")
    return f'"{name}"'


_INDEX_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _index_expr(path: Path) -> str:
    text = json_path(path)
    if text is None:
        raise ConfigurationError(f"index field {'.'.join(path)!r} cannot be indexed on SQLite")
    return f"json_extract(doc, '{text}')"


def schema(spec: CollectionSpec) -> list[str]:
    """The DDL of a collection: table, declared indexes (an expression index per index, plus a
    ``json_type`` index per path prefix of its first field so array branches stay indexable),
    the partial index of rows holding a Decimal, and the TTL index."""
    table = quote_ident(spec.name)
    keys = ", ".join(f'"k{i}"' for i in range(len(spec.key)))
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {table} ({keys}, doc TEXT NOT NULL, "
        f"tagged INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ({keys}))",
        f'CREATE INDEX IF NOT EXISTS "{spec.name}:decimal" ON {table}(tagged) '
        f"WHERE tagged >= {HAS_DECIMAL}",
    ]
    typed: set[Path] = set()
    for index in spec.indexes:
        stmts.extend(_index_statements(spec, index, typed))
    if spec.ttl is not None:
        path = tuple(spec.ttl.split("."))
        stmts.append(
            f'CREATE INDEX IF NOT EXISTS "{spec.name}:ttl" ON {table}({_index_expr(path)})'
        )
    return stmts


def _index_statements(spec: CollectionSpec, index: Index, typed: set[Path]) -> list[str]:
    if not _INDEX_NAME.fullmatch(index.name):
        raise ConfigurationError(f"invalid index name {index.name!r}: use [A-Za-z0-9_-]")
    table = quote_ident(spec.name)
    name = f"{spec.name}:{index.name}"
    exprs = ", ".join(_index_expr(p) for p in index.paths)
    stmts = []
    if index.unique:
        # BSON equality (1 == 1.0, true != 1, missing == null), as the memory backend checks.
        sort = tuple(SortKey(p, 1) for p in index.paths)
        spec_text = sort_spec_json(sort).replace("'", "''")
        stmts.append(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{name}" ON {table}'
            f"({SORTKEY}(doc, '{spec_text}'))"
        )
        stmts.append(f'CREATE INDEX IF NOT EXISTS "{name}:q" ON {table}({exprs})')
    else:
        stmts.append(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table}({exprs})')
    lead = index.paths[0]
    for n in range(1, len(lead) + 1):
        prefix = lead[:n]
        if prefix in typed:
            continue
        typed.add(prefix)
        text = json_path(prefix)
        stmts.append(
            f'CREATE INDEX IF NOT EXISTS "{spec.name}:type:{".".join(prefix)}" '
            f"ON {table}(json_type(doc, '{text}'))"
        )
    return stmts


__all__ = ["SQLitePlanner", "Statement", "json_path", "quote_ident", "schema"]
