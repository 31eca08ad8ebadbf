"""Pure planning for DynamoDB: filter AST -> GetItem / Query (table or GSI) / Scan request.

Access path, cheapest first: every key field pinned by equality -> ``GetItem``/``BatchGetItem``;
equality on the partition key of a composite key (plus one sort-key comparison) -> ``Query`` on
the table; an equality, ``$in`` or range on the leading field of a declared index -> ``Query`` on
its GSI; otherwise ``Scan`` (``ScanRequired`` unless scans are allowed).

Every GSI has string keys ``._h.<index>``/``._r.<index>`` that the store writes from the
document (see :func:`index_attributes`). A single-field index keys on the value's type tag (hash)
and its :func:`~asyncdb.backends.dynamodb.codec.sortable` form (range), so equality and ranges
within one type are key conditions, and type bracketing is exact. A compound index keys on the
leading field's sortable form (hash) and the second field's (range). A document whose indexed
field holds another type (array, map, bool, null, bytes, a very long string) goes to the
``OVERFLOW`` partition of the GSI, which every GSI query also reads (so arrays holding the
value are never missed); a document without the field is absent from the GSI (sparse), so a
GSI serves only conditions that imply the field exists (never ``null``, ``$exists: false``).

Every other top-level condition becomes part of a ``FilterExpression`` with ``#n``/``:v``
placeholders handed out by one :class:`Placeholders`. These pushed conditions are
over-approximations (each also accepts the ``OPAQUE`` shadow of values DynamoDB cannot hold),
so the whole filter stays in the residual and is re-checked in process; sort, skip and limit
are therefore never pushed down, and a sort runs in process within ``max_scan``.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> req = plan_request(Query(parse_filter({"id": "a"})), CollectionSpec("c"))
>>> req.operation, req.keys
('GetItem', ({'id': {'S': 'sa'}},))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncdb.backends.base import conjoin, conjuncts, is_key_value, key_lookup
from asyncdb.errors import QueryError
from asyncdb.query.ast import And, Cmp, Eq, Exists, In, MatchAll, Node, Not, Or, Path
from asyncdb.query.plancache import flat_terms, holds_slot, make_plan
from asyncdb.query.values import MISSING
from asyncdb.types import CollectionSpec, Index, Plan, Query

from .codec import DATE_TAG, OPAQUE, OVERFLOW, SORTABLE_STRING_MAX, native_value, sortable

# DynamoDB allows at most 100 operands in IN; one goes to OPAQUE.
MAX_IN = 99
# A GSI query per $in value: beyond this many, the index is not worth it.
MAX_INDEX_IN = 25
COMPOSITE_RANGE = "._sk"

_COMPARATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


# --- layout: which attributes hold the keys -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GsiLayout:
    """One declared index as a DynamoDB GSI with string hash and range keys."""

    index: Index

    @property
    def name(self) -> str:
        return self.index.name

    @property
    def hash_attr(self) -> str:
        return f"._h.{self.index.name}"

    @property
    def range_attr(self) -> str:
        return f"._r.{self.index.name}"

    @property
    def single(self) -> bool:
        return len(self.index.paths) == 1


@dataclass(frozen=True, slots=True)
class TableLayout:
    """The key attributes of a collection's table and its GSIs."""

    hash_attr: str
    range_attr: str | None
    gsis: tuple[GsiLayout, ...]

    @classmethod
    def of(cls, spec: CollectionSpec) -> TableLayout:
        if len(spec.key) == 1:
            range_attr = None
        elif len(spec.key) == 2:
            range_attr = spec.key[1]
        else:
            range_attr = COMPOSITE_RANGE
        return cls(spec.key[0], range_attr, tuple(GsiLayout(i) for i in spec.indexes))


def _key_part(value: Any) -> str:
    """The sortable form of a key value; a string beyond the key limit cannot be a stored key,
    so a filter naming one is a QueryError (never a request DynamoDB would refuse)."""
    part = sortable(value)
    if part is None:
        raise QueryError(
            f"key size limit: dynamodb holds key strings of at most {SORTABLE_STRING_MAX} bytes"
        )
    return part


def key_item(key: tuple[Any, ...]) -> tuple[str, str | None]:
    """The hash and range attribute values of a key tuple."""
    parts = [_key_part(v) for v in key]
    if len(parts) == 1:
        return parts[0] or "", None
    if len(parts) == 2:
        return parts[0] or "", parts[1]
    return parts[0] or "", "\x1f".join(p or "" for p in parts[1:])


def key_attributes(key: tuple[Any, ...], layout: TableLayout) -> dict[str, dict[str, str]]:
    """The DynamoDB ``Key`` of a key tuple."""
    hash_value, range_value = key_item(key)
    out = {layout.hash_attr: {"S": hash_value}}
    if layout.range_attr is not None and range_value is not None:
        out[layout.range_attr] = {"S": range_value}
    return out


def _path_value(doc: Any, path: Path) -> Any:
    """The value at a path without crossing arrays: MISSING if absent, OVERFLOW via an array."""
    value = doc
    for part in path:
        if type(value) is list:
            return OVERFLOW
        if type(value) is not dict or part not in value:
            return MISSING
        value = value[part]
    return value


def index_attributes(doc: dict[str, Any], layout: TableLayout) -> dict[str, dict[str, str]]:
    """The GSI key attributes of a document (none for an index whose leading field is missing)."""
    out: dict[str, dict[str, str]] = {}
    for gsi in layout.gsis:
        paths = gsi.index.paths
        lead = _path_value(doc, paths[0])
        if lead is MISSING:
            continue
        lead_sortable = None if lead is OVERFLOW else sortable(lead)
        if gsi.single:
            if lead_sortable is None:
                out[gsi.hash_attr] = {"S": OVERFLOW}
                out[gsi.range_attr] = {"S": OVERFLOW}
            else:
                out[gsi.hash_attr] = {"S": lead_sortable[0]}
                out[gsi.range_attr] = {"S": lead_sortable}
            continue
        out[gsi.hash_attr] = {"S": lead_sortable or OVERFLOW}
        second = _path_value(doc, paths[1])
        second_sortable = None if second is MISSING or second is OVERFLOW else sortable(second)
        out[gsi.range_attr] = {"S": second_sortable or OVERFLOW}
    return out


# --- placeholders ---------------------------------------------------------------------------------


@dataclass
class Placeholders:
    """Hands out ``#n<i>`` and ``:v<i>``, one per distinct attribute name or value."""

    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    _value_ids: dict[tuple[str, Any], str] = field(default_factory=dict)

    def name(self, attr: str) -> str:
        for placeholder, existing in self.names.items():
            if existing == attr:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attr
        return placeholder

    def value(self, attr_value: dict[str, Any]) -> str:
        ((kind, raw),) = attr_value.items()
        ident = (kind, raw)
        placeholder = self._value_ids.get(ident)
        if placeholder is None:
            placeholder = f":v{len(self.values)}"
            self._value_ids[ident] = placeholder
            self.values[placeholder] = attr_value
        return placeholder


# --- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DynamoRequest:
    """What the store sends: ``GetItem``/``BatchGetItem`` keys, or one ``Query`` per key
    condition (results concatenated; they never overlap) on the table or ``index``, or a
    ``Scan``; with one FilterExpression and its placeholders."""

    operation: str
    index: str | None = None
    keys: tuple[dict[str, dict[str, str]], ...] = ()
    key_conditions: tuple[str, ...] = ()
    filter: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The request as ``explain()`` shows it."""
        out: dict[str, Any] = {"operation": self.operation}
        if self.index is not None:
            out["IndexName"] = self.index
        if self.keys:
            out["Keys"] = list(self.keys)
        if self.key_conditions:
            out["KeyConditionExpression"] = list(self.key_conditions)
        if self.filter is not None:
            out["FilterExpression"] = self.filter
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


# --- filter expressions ---------------------------------------------------------------------------


def _names_a_key(node: Node, spec: CollectionSpec) -> bool:
    """Whether a condition mentions a key field anywhere (and/or/nor included)."""
    children: tuple[Node, ...] = getattr(node, "children", ())
    if children:
        return any(_names_a_key(c, spec) for c in children)
    path: Path = getattr(node, "path", ())
    return bool(path) and path[0] in spec.key


def _top_field(node: Node) -> str | None:
    path: Path = getattr(node, "path", ())
    return path[0] if len(path) == 1 else None


def compile_filter(node: Node, spec: CollectionSpec, ph: Placeholders) -> str | None:
    """A FilterExpression that holds for every document ``node`` matches (a superset), or None
    when nothing useful can be said in DynamoDB's terms."""
    compiled = _compile(node, spec, ph)
    return None if compiled is None else compiled[0]


# Compiled parts carry their top operator ("atom", "and", "or"): DynamoDB rejects redundant
# parentheses, so a part is wrapped only where precedence needs it (an OR inside an AND).


def _join(parts: list[tuple[str, str]], op: str) -> tuple[str, str]:
    if len(parts) == 1:
        return parts[0]
    if op == "AND":
        texts = [f"({t})" if kind == "or" else t for t, kind in parts]
        return " AND ".join(texts), "and"
    return " OR ".join(t for t, _ in parts), "or"


def _compile(node: Node, spec: CollectionSpec, ph: Placeholders) -> tuple[str, str] | None:
    if isinstance(node, And):
        parts = [p for c in node.children if (p := _compile(c, spec, ph)) is not None]
        return _join(parts, "AND") if parts else None
    if isinstance(node, Or):
        parts = []
        for c in node.children:
            p = _compile(c, spec, ph)
            if p is None:
                return None
            parts.append(p)
        return _join(parts, "OR")
    name = _top_field(node)
    if name is None:
        return None
    if name in spec.key:
        text = _compile_key_field(node, name, ph)
        return None if text is None else (text, "atom")
    if isinstance(node, Exists):
        fn = "attribute_exists" if node.exists else "attribute_not_exists"
        return f"{fn}({ph.name(name)})", "atom"
    if isinstance(node, Not) and isinstance(node.child, Exists):
        fn = "attribute_not_exists" if node.child.exists else "attribute_exists"
        return f"{fn}({ph.name(name)})", "atom"
    if isinstance(node, Eq):
        value = native_value(node.value)
        if value is None:
            return None
        return f"{ph.name(name)} IN ({ph.value(value)}, {ph.value({'S': OPAQUE})})", "atom"
    if isinstance(node, In):
        encoded = [native_value(v) for v in node.values]
        if not encoded or len(encoded) > MAX_IN or any(e is None for e in encoded):
            return None
        operands = ", ".join(dict.fromkeys(ph.value(e) for e in encoded if e is not None))
        return f"{ph.name(name)} IN ({operands}, {ph.value({'S': OPAQUE})})", "atom"
    if isinstance(node, Cmp):
        value = native_value(node.value)
        if value is None or "BOOL" in value:
            return None
        n = ph.name(name)
        compare = f"{n} {_COMPARATORS[node.op]} {ph.value(value)}"
        if "S" in value and value["S"].startswith(DATE_TAG):
            compare = f"{compare} AND begins_with({n}, {ph.value({'S': DATE_TAG})})"
        return f"{compare} OR {n} = {ph.value({'S': OPAQUE})}", "or"
    return None


def _compile_key_field(node: Node, name: str, ph: Placeholders) -> str | None:
    if isinstance(node, Eq) and is_key_value(node.value):
        return f"{ph.name(name)} = {ph.value({'S': sortable(node.value)})}"
    if (
        isinstance(node, In)
        and 0 < len(node.values) <= MAX_IN + 1
        and all(is_key_value(v) for v in node.values)
    ):
        operands = ", ".join(dict.fromkeys(ph.value({"S": sortable(v)}) for v in node.values))
        return f"{ph.name(name)} IN ({operands})"
    if isinstance(node, Exists) and node.exists:
        return None  # every item has its key: nothing to say
    return None


# --- access path --------------------------------------------------------------------------------


def _usable(value: Any) -> str | None:
    """The sortable form of a value a GSI or key condition can use (non-null scalars)."""
    if value is None:
        return None
    return sortable(value)


def _index_choice(
    terms: tuple[Node, ...], layout: TableLayout
) -> tuple[GsiLayout, list[tuple[str, Any]]] | None:
    """The best GSI and its key conditions as (kind, operand) pairs, or None."""
    best: tuple[int, GsiLayout, list[tuple[str, Any]]] | None = None
    for gsi in layout.gsis:
        lead = gsi.index.paths[0]
        for term in terms:
            if not isinstance(term, Eq | In | Cmp) or term.path != lead:
                continue
            conditions: list[tuple[str, Any]] = []
            rank = 0
            if isinstance(term, Eq):
                s = _usable(term.value)
                if s is None:
                    continue
                conditions, rank = [("=", s)], 3
            elif isinstance(term, In):
                forms = [_usable(v) for v in term.values]
                if not forms or len(forms) > MAX_INDEX_IN or any(f is None for f in forms):
                    continue
                conditions, rank = [("=", f) for f in dict.fromkeys(forms)], 2
            elif gsi.single:
                s = _usable(term.value)
                if s is None:
                    continue
                conditions, rank = [(_COMPARATORS[term.op], s)], 1
            else:
                continue
            if best is None or rank > best[0]:
                best = (rank, gsi, conditions)
    return None if best is None else (best[1], best[2])


def _gsi_key_conditions(
    gsi: GsiLayout, conditions: list[tuple[str, Any]], ph: Placeholders
) -> tuple[str, ...]:
    h, r = ph.name(gsi.hash_attr), ph.name(gsi.range_attr)
    out: list[str] = []
    for op, s in conditions:
        if gsi.single:
            out.append(f"{h} = {ph.value({'S': s[0]})} AND {r} {op} {ph.value({'S': s})}")
        else:
            out.append(f"{h} = {ph.value({'S': s})}")
    out.append(f"{h} = {ph.value({'S': OVERFLOW})}")  # arrays etc. holding the value
    return tuple(out)


def _partition_query(
    terms: tuple[Node, ...], spec: CollectionSpec, layout: TableLayout, ph: Placeholders
) -> tuple[str, ...] | None:
    """Key conditions for equality on the partition key (composite keys only)."""
    if spec.single_key:
        return None
    pk = spec.key[0]
    pk_value = next(
        (t.value for t in terms if isinstance(t, Eq) and t.path == (pk,) and is_key_value(t.value)),
        None,
    )
    if pk_value is None:
        return None
    condition = f"{ph.name(pk)} = {ph.value({'S': _key_part(pk_value)})}"
    if layout.range_attr == spec.key[1]:
        sk = spec.key[1]
        for t in terms:
            if isinstance(t, Cmp) and t.path == (sk,) and is_key_value(t.value):
                s = sortable(t.value)
                if s is None:
                    continue  # beyond the key limit: the filter expression decides
                # bounded to the value's type: the range stays exact for key types
                if t.op in ("$gt", "$gte"):
                    low = ph.value({"S": s})
                    high = ph.value({"S": chr(ord(s[0]) + 1)})
                    condition += f" AND {ph.name(sk)} BETWEEN {low} AND {high}"
                else:
                    low = ph.value({"S": s[0]})
                    condition += f" AND {ph.name(sk)} BETWEEN {low} AND {ph.value({'S': s})}"
                break
    return (condition,)


def plan_request(
    query: Query, spec: CollectionSpec, ph: Placeholders | None = None
) -> DynamoRequest:
    """The DynamoDB request for a query (pure); ``ph``: the placeholders to fill."""
    layout = TableLayout.of(spec)
    node = query.filter
    terms = conjuncts(node)
    ph = Placeholders() if ph is None else ph
    if query.hint is not None:  # hint=: a Query on that GSI, or a QueryError
        return _hinted_request(query.hint, node, terms, layout, spec, ph)
    keys = key_lookup(node, spec)
    if keys is not None:
        items = tuple(key_attributes(k, layout) for k in keys)
        return DynamoRequest("GetItem" if len(items) == 1 else "BatchGetItem", keys=items)
    partition = _partition_query(terms, spec, layout, ph)
    if partition is not None:
        # a table Query's FilterExpression may not name the primary key attributes
        rest = [t for t in terms if not _names_a_key(t, spec)]
        expr = compile_filter(conjoin(rest), spec, ph) if rest else None
        return DynamoRequest("Query", None, (), partition, expr, ph.names, ph.values)
    choice = _index_choice(terms, layout)
    if choice is not None:
        gsi, conditions = choice
        key_conditions = _gsi_key_conditions(gsi, conditions, ph)
        expr = compile_filter(node, spec, ph) if not isinstance(node, MatchAll) else None
        return DynamoRequest("Query", gsi.name, (), key_conditions, expr, ph.names, ph.values)
    expr = compile_filter(node, spec, ph) if not isinstance(node, MatchAll) else None
    return DynamoRequest("Scan", None, (), (), expr, ph.names, ph.values)


def _hinted_request(
    hint: Index,
    node: Node,
    terms: tuple[Node, ...],
    layout: TableLayout,
    spec: CollectionSpec,
    ph: Placeholders,
) -> DynamoRequest:
    gsis = tuple(g for g in layout.gsis if g.index.name == hint.name)
    choice = _index_choice(terms, dataclasses.replace(layout, gsis=gsis))
    if choice is None:
        raise QueryError(
            f"hint {hint.name!r} cannot be used on DynamoDB: its GSI is queried by an equality "
            f"or $in on {'.'.join(hint.paths[0])!r} (a range only on a one-field index)",
            path="hint",
        )
    gsi, conditions = choice
    key_conditions = _gsi_key_conditions(gsi, conditions, ph)
    expr = compile_filter(node, spec, ph) if not isinstance(node, MatchAll) else None
    return DynamoRequest("Query", gsi.name, (), key_conditions, expr, ph.names, ph.values)


def pushed_nodes(node: Node, spec: CollectionSpec) -> list[Node]:
    """The top-level conditions that reach DynamoDB in some form (shown as ``approximate``)."""
    out: list[Node] = []
    for term in conjuncts(node):
        if compile_filter(term, spec, Placeholders()) is not None or term in _key_terms(node, spec):
            out.append(term)
    return out


def _key_terms(node: Node, spec: CollectionSpec) -> list[Node]:
    return [t for t in conjuncts(node) if _top_field(t) == spec.key[0] and isinstance(t, Eq | In)]


def access_path(request: DynamoRequest, spec: CollectionSpec) -> str:
    """``key``, ``key-prefix``, ``index:<name>`` or ``scan``."""
    if request.operation in ("GetItem", "BatchGetItem"):
        return "key"
    if request.operation == "Query":
        return "key-prefix" if request.index is None else f"index:{request.index}"
    return "scan"


def build_plan(query: Query, spec: CollectionSpec, *, explain: bool = True) -> Plan:
    """The plan of a query: the request, its approximate part and the residual (the filter).
    ``explain=False`` leaves out the filter parts rendered back to the query language
    (``approximate``, ``residual``), which only ``explain()`` shows."""
    request = plan_request(query, spec)
    residual = None if isinstance(query.filter, MatchAll) else query.filter
    pushed = pushed_nodes(query.filter, spec) if explain and residual is not None else []
    approximate = conjoin(pushed).to_mongo() if pushed else None
    return Plan(
        backend="dynamodb",
        collection=spec.name,
        access_path=access_path(request, spec),
        native=request.describe(),
        exact=None,
        approximate=approximate,
        residual=residual.to_mongo() if explain and residual is not None else None,
        sort_pushed=False,
        limit_pushed=False,
        client_sort=bool(query.sort),
        residual_node=residual,
        payload=request,
    )


class _Recorder(Placeholders):
    """Placeholders that also keep every value handed out, in order (repeats included)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def value(self, attr_value: dict[str, Any]) -> str:
        self.calls.append(attr_value)
        return super().value(attr_value)


def _recorded(query: Query, spec: CollectionSpec) -> tuple[DynamoRequest, list[dict[str, Any]]]:
    """``plan_request(query, spec)`` and the values it handed to its placeholders, in order."""
    ph = _Recorder()
    request = plan_request(query, spec, ph)
    return request, ph.calls


_ENCODERS: tuple[Callable[[Any], Any], ...] = (
    native_value,
    lambda v: {"S": sortable(v)},
    lambda v: {"S": (sortable(v) or " ")[0]},
)


def _operands(term: Node) -> tuple[Any, ...]:
    t = type(term)
    if t is Eq or t is Cmp:
        return (term.value,)  # type: ignore[attr-defined]
    if t is In:
        return term.values  # type: ignore[attr-defined, no-any-return]
    return ()


def _plain_operand(value: Any) -> bool:
    """A value whose encodings take the same branches as any other of its type: a string of
    at most 128 characters (native and sortable whatever its bytes) not starting with NUL
    (the tags' prefix), an int or a date."""
    t = type(value)
    if t is str:
        return len(value) <= 128 and value[:1] != "\x00"
    return t is int or t is datetime


def _probe(term: Node, k: int) -> Node:
    """``term`` with each operand replaced by another of its type, distinct from any other."""

    def other(v: Any, i: int) -> Any:
        if type(v) is str:
            return f"p{k}.{i}"
        if type(v) is int:
            return 7_000_003 + 1000 * k + i
        return datetime(2001, 2, 3, tzinfo=UTC) + timedelta(milliseconds=1000 * k + i + 1)

    if isinstance(term, Eq):
        return Eq(term.path, other(term.value, 0))
    if isinstance(term, Cmp):
        return Cmp(term.path, term.op, other(term.value, 0))
    assert isinstance(term, In)
    return In(term.path, tuple(other(v, i) for i, v in enumerate(term.values)))


def binder(spec: CollectionSpec, query: Query) -> Callable[[Query], Plan] | None:
    """``build_plan(q, spec, explain=False)`` for every ``q`` of the raw shape of ``query`` (see
    :mod:`asyncdb.query.plancache`), or None for the shapes it does not serve: an AND of
    ``$eq``/``$in``/range conditions on strings, ints and dates and of conditions without
    operands, none on a key field, not pinned to keys, without a hint.

    The request's expressions are the shape's; per call each placeholder value is written
    again from its source, found once by planning the shape with the first values and with
    values of the same types that are all distinct: a constant, or one encoding (native,
    sortable, its type tag) of one operand. The expressions depend on which of the values
    are equal (one placeholder per distinct value): a call that repeats them differently,
    or holds an operand that encodes otherwise (a string over 128 characters or starting
    with NUL), is planned from its filter."""
    terms = flat_terms(query.filter)
    if not terms or query.hint is not None or key_lookup(query.filter, spec) is not None:
        return None
    sites: list[tuple[int, int]] = []  # (term, operand) of every operand, in order
    for j, term in enumerate(terms):
        if _top_field(term) in spec.key:
            return None
        ops = _operands(term)
        if ops and not holds_slot(term):
            continue
        if not isinstance(term, Eq | Cmp | In):
            if holds_slot(term):
                return None
            continue
        if not all(_plain_operand(v) for v in ops):
            return None
        sites += [(j, m) for m in range(len(ops))]
    probe = Query(
        conjoin(
            [_probe(t, k) if _operands(t) and holds_slot(t) else t for k, t in enumerate(terms)]
        )
    )
    probed = flat_terms(probe.filter)
    if len(probed) != len(terms) or any(
        _operands(a)[m] == _operands(b)[m] for (j, m) in sites for a, b in [(terms[j], probed[j])]
    ):
        return None  # the probe must move every operand
    request0, calls0 = _recorded(query, spec)
    request1, calls1 = _recorded(probe, spec)
    if len(calls0) != len(calls1) or request0.key_conditions != request1.key_conditions:
        return None
    if request0.filter != request1.filter or request0.names != request1.names:
        return None

    def operand(ts: Sequence[Node], j: int, m: int) -> Any:
        return _operands(ts[j])[m]

    # per placeholder value: (encoding, operand position) or (None, the constant)
    sources: list[tuple[Callable[[Any], Any] | None, Any]] = []
    for a, b in zip(calls0, calls1, strict=True):
        found: tuple[Callable[[Any], Any] | None, Any] | None = None
        for at, (j, m) in enumerate(sites):  # an operand's encoding, else a constant
            for enc in _ENCODERS:
                if enc(operand(terms, j, m)) == a and enc(operand(probed, j, m)) == b:
                    found = (enc, at)
                    break
            if found is not None:
                break
        if found is None and a == b:
            found = (None, a)
        if found is None:
            return None
        sources.append(found)
    pattern0 = _pattern(calls0)
    first = build_plan(query, spec, explain=False)
    operation, index = request0.operation, request0.index
    key_conditions, expression, names = request0.key_conditions, request0.filter, request0.names

    variable = [i for i, (enc, _c) in enumerate(sources) if enc is not None]
    encoders = [sources[i] for i in variable]  # (encoding, operand) per variable position

    def operands(ts: Sequence[Node]) -> list[Any] | None:
        ops = [_operands(t) for t in ts]
        vals = [ops[j][m] for j, m in sites]
        for v in vals:
            t = type(v)
            if t is str:
                if len(v) > 128 or v[:1] == "\x00":
                    return None
            elif t is not int and t is not datetime:
                return None
        return vals

    def encoded(vals: list[Any]) -> list[dict[str, Any]]:
        made = iter([enc(vals[c]) for enc, c in encoders])  # type: ignore[misc]
        return [dict(c) if enc is None else next(made) for enc, c in sources]

    vals0 = operands(terms)
    if vals0 is None or encoded(vals0) != calls0:
        return None
    # When the first values are all distinct (from each other and the constants), the
    # pattern holds for any values that are: one set tells, instead of the whole pattern.
    constants = {_ident(calls0[i]) for i, (enc, _c) in enumerate(sources) if enc is None}
    generic = len({_ident(calls0[i]) for i in variable} | constants) == len(variable) + len(
        constants
    )
    # each placeholder: its name, and its value's variable position or its constant
    where = {pos: n for n, pos in enumerate(variable)}
    firsts: dict[int, int] = {}
    for pos, k in enumerate(pattern0):
        firsts.setdefault(k, pos)
    placeholders = [(f":v{k}", where.get(pos), calls0[pos]) for k, pos in firsts.items()]

    def bind(q: Query) -> Plan:
        vals = None if q.hint is not None else operands(flat_terms(q.filter))
        if vals is None:
            return build_plan(q, spec, explain=False)
        made = [enc(vals[c]) for enc, c in encoders]  # type: ignore[misc]
        if generic:
            idents = {_ident(m) for m in made}
            same = len(idents) == len(made) and not (idents & constants)
        else:
            same = _pattern(encoded(vals)) == pattern0
        if not same:
            return build_plan(q, spec, explain=False)
        values = {
            name: dict(constant) if at is None else made[at] for name, at, constant in placeholders
        }
        request = object.__new__(DynamoRequest)  # as its frozen __init__ fills __dict__
        request.__dict__.update(
            operation=operation,
            index=index,
            keys=(),
            key_conditions=key_conditions,
            filter=expression,
            names=dict(names),
            values=values,
        )
        return make_plan(
            "dynamodb",
            spec.name,
            first.access_path,
            request.describe(),
            None,
            None,
            None,
            False,
            False,
            first.client_sort,
            q.filter,
            request,
            None,
        )

    return bind


def _ident(attr_value: dict[str, Any]) -> tuple[str, Any]:
    ((kind, raw),) = attr_value.items()
    return kind, raw


def _pattern(calls: list[dict[str, Any]]) -> list[int]:
    """Which placeholder each value takes (one per distinct ``(type, raw)``, as handed out)."""
    ids: dict[tuple[str, Any], int] = {}
    out = []
    for c in calls:
        ((kind, raw),) = c.items()
        out.append(ids.setdefault((kind, raw), len(ids)))
    return out


__all__ = [
    "DynamoRequest",
    "GsiLayout",
    "Placeholders",
    "TableLayout",
    "access_path",
    "build_plan",
    "compile_filter",
    "index_attributes",
    "key_attributes",
    "key_item",
    "plan_request",
]
