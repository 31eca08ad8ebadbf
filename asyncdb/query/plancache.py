"""Plans cached by the shape of the raw filter, before it is parsed.

A filter's *shape* is everything but its values: field names and operators in their order, the
length of each list, and for each value its kind. The values that are bound into a cached plan
(*slots*) are the operands of ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``,
``$nin``, ``$all`` and bare field values, when they are a non-empty ``str`` (``""`` is never a
key value, so planners branch on it), an ``int`` in the 64-bit range, a
finite ``float`` or a ``datetime`` (naive and aware are two kinds). Every other value (``bool``,
``None``, nested documents and arrays, ``Decimal``, bytes, regular expressions and their flags,
the operands of ``$exists``, ``$type``, ``$size``, ``$mod``, ``$regex``, ``$options``) is part of
the shape itself, written with its type (``1``, ``1.0`` and ``True`` are three shapes), so two
filters that share a key differ only in slot values of the same kind. A filter holding any other
type, or a mapping that is not a ``dict``, is not cached (it is parsed every time).

On a miss the filter is parsed and planned as usual, and the entry keeps the parsed filter with
the position of each slot in it. On a hit each new value is validated as the parser would
(text, range, datetime normalization) and put in its place, and the planner binds the values into
the statement it compiled for the shape (:meth:`StoreCollection.plan_binder`), without
compiling or rendering query text again. ``tests/query/test_plan_cache.py`` checks, for random
filters on every planner, that a cached plan equals a freshly built one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from asyncdb.query.ast import All, And, Cmp, ElemMatch, Eq, FieldNode, In, Node, Nor, Not, Or
from asyncdb.query.limits import check_text
from asyncdb.query.parse import FieldAnd, parse_filter
from asyncdb.query.values import INT64_MAX, INT64_MIN, normalize_datetime
from asyncdb.types import Plan

CACHE_SIZE = 512


class _Kind:
    """The kind of a slot in a shape key (compares by identity: no value equals one)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


STR, INT, FLOAT, NAIVE, AWARE = (_Kind(n) for n in ("str", "int", "float", "naive", "aware"))
_VALUE_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
_LIST_OPS = frozenset({"$in", "$nin", "$all"})
_LOGICAL = frozenset({"$and", "$or", "$nor"})
_PLAIN = frozenset({str, int, bool, type(None), bytes})


class _Uncached(Exception):
    """The filter holds something the shape does not describe: parse it every time."""


def _slot_kind(value: Any) -> _Kind | None:
    t = type(value)
    if t is str:
        return STR if value else None  # "" is no key value: planners branch on it
    if t is int:
        return INT if INT64_MIN <= value <= INT64_MAX else None
    if t is float:
        return FLOAT if value - value == 0.0 else None  # finite
    if t is datetime:
        return NAIVE if value.tzinfo is None else AWARE
    return None


def _frozen(value: Any) -> Any:
    """A hashable description of a value that is part of the shape, with its type."""
    t = type(value)
    if t in _PLAIN:
        return (t, value)
    if t is float or t is Decimal:
        return (t, repr(value))  # -0.0 and 0.0, Decimal("1.0") and Decimal("1") stay apart
    if t is datetime:
        return (t, value.isoformat())
    if t is dict:
        return (dict, tuple((_frozen(k), _frozen(v)) for k, v in value.items()))
    if t is list or t is tuple:
        return (t, tuple(_frozen(v) for v in value))
    if hasattr(value, "pattern") and hasattr(value, "flags") and hasattr(value, "match"):
        return ("re", _frozen(value.pattern), value.flags)
    raise _Uncached


_OPEN, _CLOSE, _OPS = _Kind("{"), _Kind("}"), _Kind("$")


def _document(
    spec: Any, out: list[Any], values: list[Any], wheres: list[Any] | None, where: str
) -> None:
    """Append the shape of a filter document to ``out`` (a flat token list: field names are
    the only ``str`` tokens, every construct starts with a marker or is one token, so two
    shapes never flatten alike) and its slot values to ``values``. With ``wheres``, also each
    value site's path (the parser's, for its errors) or None for a fixed value."""
    if type(spec) is not dict:
        raise _Uncached
    add = out.append
    add(_OPEN)
    for key, value in spec.items():
        if type(key) is not str:
            raise _Uncached
        add(key)
        here = "" if wheres is None else (f"{where}.{key}" if where else key)
        if key[:1] == "$":
            if key not in _LOGICAL or type(value) is not list:
                raise _Uncached
            add(len(value))
            for i, sub in enumerate(value):
                _document(sub, out, values, wheres, f"{here}.{i}")
            continue
        t = type(value)
        if t is str and value:
            add(STR)
        elif t is dict and value:
            first = next(iter(value))
            if type(first) is str and first[:1] == "$":
                _operators(value, out, values, wheres, here)
                continue
            _site(value, out, values, wheres, here)
            continue
        elif hasattr(value, "pattern") and hasattr(value, "flags") and t is not dict:
            add(_frozen(value))  # a compiled regular expression: no value site
            continue
        else:
            _site(value, out, values, wheres, here)
            continue
        values.append(value)
        if wheres is not None:
            wheres.append(here)
    add(_CLOSE)


def _site(
    value: Any, out: list[Any], values: list[Any], wheres: list[Any] | None, where: str
) -> None:
    kind = _slot_kind(value)
    if kind is None:
        out.append(_frozen(value))
        if wheres is not None:
            wheres.append(None)
        return
    out.append(kind)
    values.append(value)
    if wheres is not None:
        wheres.append(where)


def _operators(
    ops: dict[str, Any], out: list[Any], values: list[Any], wheres: list[Any] | None, where: str
) -> None:
    add = out.append
    add(_OPS)
    for op, arg in ops.items():
        add(op if type(op) is str else _frozen(op))
        here = "" if wheres is None else f"{where}.{op}"
        if op in _VALUE_OPS:
            _site(arg, out, values, wheres, here)
        elif op in _LIST_OPS and type(arg) is list:
            add(len(arg))
            for i, v in enumerate(arg):
                _site(v, out, values, wheres, f"{here}.{i}" if wheres is not None else "")
        elif op == "$elemMatch" and type(arg) is dict and arg:
            first = next(iter(arg))
            if type(first) is str and first[:1] == "$" and not any(k in _LOGICAL for k in arg):
                _operators(arg, out, values, wheres, here)
            else:
                _document(arg, out, values, wheres, here)
        elif op == "$not" and type(arg) is dict and arg and str(next(iter(arg)))[:1] == "$":
            _operators(arg, out, values, wheres, here)
        else:
            add(_frozen(arg))  # $exists, $type, $size, $mod, $regex, $options, ...
    add(_CLOSE)


def filter_shape(spec: Mapping[str, Any] | None) -> tuple[Any, list[Any]] | None:
    """The shape key of a raw filter and its slot values in order, or None when not cached."""
    if spec is None:
        return (), []
    out: list[Any] = []
    values: list[Any] = []
    try:
        _document(spec, out, values, None, "")
    except (_Uncached, RecursionError):
        return None
    return tuple(out), values


def _sites(node: Node, out: list[Any]) -> None:
    """The values of ``node`` in the order the parser read them."""
    t = type(node)
    if t is Eq or t is Cmp:
        out.append(node.value)  # type: ignore[attr-defined]
    elif t is In or t is All:
        out.extend(node.values)  # type: ignore[attr-defined]
    elif t is Not:
        _sites(node.child, out)  # type: ignore[attr-defined]
    elif t is And or t is Or or t is Nor or t is FieldAnd:
        for child in node.children:  # type: ignore[attr-defined]
            _sites(child, out)
    elif t is ElemMatch:
        _sites(node.cond, out)  # type: ignore[attr-defined]


def _count(node: Node) -> int:
    found: list[Any] = []
    _sites(node, found)
    return len(found)


Builder = Callable[[list[Any]], Node]
Matcher = Callable[[dict[str, Any]], Node | None]


class _Source:
    """The source of a builder: one expression that rebuilds the parsed filter from the slot
    values ``a0, a1, ...``, with everything fixed (paths, operators, subtrees without a slot)
    bound as constants. Generated code, as ``dataclasses`` does: one call per hit instead of a
    walk over the tree."""

    def __init__(self, slots: list[int | None]) -> None:
        self.slots = slots
        self.names: dict[str, Any] = {}
        self.stmts: list[str] = []  # the nodes made before the returned expression

    def make(self, t: type, args: list[str]) -> str:
        """A new node of class ``t`` from the expressions ``args`` (its fields in order). A
        frozen dataclass node is made as its ``__init__`` makes it, with each field's slot
        set directly (without the generic ``object.__setattr__`` per field)."""
        fields = getattr(t, "__dataclass_fields__", None)
        if fields is None or hasattr(t, "__post_init__") or len(fields) != len(args):
            return f"{self.const(t)}({', '.join(args)})"
        var = f"n{len(self.stmts)}"
        self.stmts.append(f"    {var} = new({self.const(t)})")
        for name, arg in zip(fields, args, strict=True):
            setter = self.const(getattr(t, name).__set__)
            self.stmts.append(f"    {setter}({var}, {arg})")
        return var

    def const(self, value: Any) -> str:
        name = f"c{len(self.names)}"
        self.names[name] = value
        return name

    def value(self, at: int, fixed: Any) -> str:
        slot = self.slots[at]
        return self.const(fixed) if slot is None else f"a{slot}"

    def expr(self, node: Node, at: int) -> tuple[str, int]:
        """The expression of ``node`` whose first value site is ``at``, and the next site."""
        t = type(node)
        n = _count(node)
        if all(s is None for s in self.slots[at : at + n]):
            return self.const(node), at + n
        make = self.make
        if t is Eq:
            return make(t, [self.const(node.path), self.value(at, node.value)]), at + 1  # type: ignore[attr-defined]
        if t is Cmp:
            path, op = self.const(node.path), self.const(node.op)  # type: ignore[attr-defined]
            return make(t, [path, op, self.value(at, node.value)]), at + 1  # type: ignore[attr-defined]
        if t is In or t is All:
            items = [self.value(at + i, v) for i, v in enumerate(node.values)]  # type: ignore[attr-defined]
            return make(t, [self.const(node.path), f"({', '.join(items)},)"]), at + n  # type: ignore[attr-defined]
        if t is Not:
            inner, after = self.expr(node.child, at)  # type: ignore[attr-defined]
            return make(t, [self.const(node.path), inner]), after  # type: ignore[attr-defined]
        if t is ElemMatch:
            inner, after = self.expr(node.cond, at)  # type: ignore[attr-defined]
            path, scalar = self.const(node.path), self.const(node.scalar)  # type: ignore[attr-defined]
            return make(t, [path, inner, scalar]), after
        assert t is And or t is Or or t is Nor or t is FieldAnd
        parts = []
        for child in node.children:  # type: ignore[attr-defined]
            part, at = self.expr(child, at)
            parts.append(part)
        children = f"({', '.join(parts)},)"
        if t is FieldAnd:
            return make(t, [self.const(node.path), children]), at  # type: ignore[attr-defined]
        return make(t, [children]), at


def _checks(kinds: list[_Kind], wheres: list[str], source: _Source) -> list[str]:
    """The lines that check the slot values ``a0, a1, ...`` as the parser does."""
    lines = []
    for i, kind in enumerate(kinds):
        where = source.const(wheres[i])
        if kind is STR:
            lines.append(f"    if not a{i}.isascii(): check_text(a{i}, {where})")
        elif kind is NAIVE or kind is AWARE:
            lines.append(f"    a{i} = normalize_datetime(a{i}, {where})")
    return lines


def _builder(
    node: Node,
    slots: list[int | None],
    kinds: list[_Kind],
    wheres: list[str],
    spec: Mapping[str, Any] | None,
) -> tuple[Builder, Matcher | None]:
    """The generated function of the slot values (raw, as the caller passed them) that checks
    them as the parser does and returns the filter rebuilt with them; and the matcher of the
    shape (see :class:`_Match`), or None for a shape too large to write one for."""
    source = _Source(slots)
    expr, _ = source.expr(node, 0)
    checks = _checks(kinds, wheres, source)
    lines = ["def build(v):"]
    lines += [f"    a{i} = v[{i}]" for i in range(len(kinds))]
    lines += checks
    lines += source.stmts
    lines.append(f"    return {expr}")
    match = _Match(source)
    if spec is not None and match.document(spec, "s") and len(match.lines) <= _MATCH_LINES:
        lines.append("def match(s):")
        lines += match.lines
        lines += checks
        lines += source.stmts
        lines.append(f"    return {expr}")
    else:
        match.lines = []
    scope: dict[str, Any] = {
        **source.names,
        "check_text": check_text,
        "normalize_datetime": normalize_datetime,
        "same_fixed": _same_fixed,
        "new": object.__new__,
        "datetime": datetime,
        "dict": dict,
        "list": list,
        "str": str,
        "int": int,
        "float": float,
        "type": type,
        "len": len,
        "tuple": tuple,
        "map": map,
    }
    exec("\n".join(lines), scope)  # generated from the parsed tree: no user text
    build: Builder = scope["build"]
    matcher: Matcher | None = scope.get("match") if match.lines else None
    return build, matcher


_MATCH_LINES = 400


def _same_fixed(value: Any, frozen: Any) -> bool:
    """Whether ``value`` is a value that is part of a shape, written as ``frozen``."""
    try:
        return bool(_frozen(value) == frozen)
    except (_Uncached, RecursionError):
        return False


class _Match:
    """The source of a shape's matcher: ``match(s)`` returns the filter of the raw filter ``s``
    rebuilt (as ``build`` does) when ``filter_shape(s)`` is this shape's key, else None. It reads
    the slot values straight into ``a0, a1, ...`` with one check per construct, written out for
    the shape, in the order ``_document`` walks it, so a hit costs no walk over the tree and no
    shape key. Field names and operators are compared as one tuple per document (their order
    is part of the shape), with their types (a ``str`` subclass is not cached)."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.lines: list[str] = []
        self.slot = 0
        self.var = 0

    def fresh(self) -> str:
        self.var += 1
        return f"x{self.var}"

    def fail_unless(self, cond: str) -> None:
        self.lines.append(f"    if not ({cond}): return None")

    def keys(self, var: str, keys: tuple[Any, ...]) -> None:
        self.fail_unless(f"type({var}) is dict")
        self.fail_unless(f"tuple({var}) == {self.source.const(keys)}")
        self.fail_unless(f"tuple(map(type, {var})) == {self.source.const((str,) * len(keys))}")

    def document(self, spec: Any, var: str) -> bool:
        """Lines matching the filter document ``spec`` held in ``var``; False when ``spec`` is
        not one ``_document`` caches."""
        if type(spec) is not dict or any(type(k) is not str for k in spec):
            return False
        self.keys(var, tuple(spec))
        for key, value in spec.items():
            sub = self.fresh()
            self.lines.append(f"    {sub} = {var}[{self.source.const(key)}]")
            if key[:1] == "$":
                if key not in _LOGICAL or type(value) is not list:
                    return False
                self.fail_unless(f"type({sub}) is list and len({sub}) == {len(value)}")
                for i, part in enumerate(value):
                    item = self.fresh()
                    self.lines.append(f"    {item} = {sub}[{i}]")
                    if not self.document(part, item):
                        return False
                continue
            t = type(value)
            if t is str and value:
                self.site(value, sub)
            elif t is dict and value:
                first = next(iter(value))
                if type(first) is str and first[:1] == "$":
                    if not self.operators(value, sub):
                        return False
                else:
                    self.site(value, sub)
            elif hasattr(value, "pattern") and hasattr(value, "flags") and t is not dict:
                self.fixed(value, sub)
            else:
                self.site(value, sub)
        return True

    def fixed(self, value: Any, var: str) -> None:
        self.fail_unless(f"same_fixed({var}, {self.source.const(_frozen(value))})")

    def site(self, value: Any, var: str) -> None:
        kind = _slot_kind(value)
        if kind is None:
            self.fixed(value, var)
            return
        a = f"a{self.slot}"
        self.slot += 1
        self.lines.append(f"    {a} = {var}")
        if kind is STR:
            self.fail_unless(f"type({a}) is str and {a}")
        elif kind is INT:
            self.fail_unless(f"type({a}) is int and {INT64_MIN} <= {a} <= {INT64_MAX}")
        elif kind is FLOAT:
            self.fail_unless(f"type({a}) is float and {a} - {a} == 0.0")
        elif kind is NAIVE:
            self.fail_unless(f"type({a}) is datetime and {a}.tzinfo is None")
        else:
            self.fail_unless(f"type({a}) is datetime and {a}.tzinfo is not None")

    def operators(self, ops: dict[Any, Any], var: str) -> bool:
        if any(type(op) is not str for op in ops):
            return False
        self.keys(var, tuple(ops))
        for op, arg in ops.items():
            sub = self.fresh()
            self.lines.append(f"    {sub} = {var}[{self.source.const(op)}]")
            if op in _VALUE_OPS:
                self.site(arg, sub)
            elif op in _LIST_OPS and type(arg) is list:
                self.fail_unless(f"type({sub}) is list and len({sub}) == {len(arg)}")
                for i, v in enumerate(arg):
                    item = self.fresh()
                    self.lines.append(f"    {item} = {sub}[{i}]")
                    self.site(v, item)
            elif op == "$elemMatch" and type(arg) is dict and arg:
                first = next(iter(arg))
                if type(first) is str and first[:1] == "$" and not any(k in _LOGICAL for k in arg):
                    if not self.operators(arg, sub):
                        return False
                elif not self.document(arg, sub):
                    return False
            elif op == "$not" and type(arg) is dict and arg and str(next(iter(arg)))[:1] == "$":
                if not self.operators(arg, sub):
                    return False
            else:
                self.fixed(arg, sub)
        return True


def _normalize(value: Any, where: str) -> Any:
    """A slot value as the parser stores it (the same checks, the same errors)."""
    t = type(value)
    if t is str:
        if not value.isascii():
            check_text(value, where)
        return value
    if t is datetime:
        return normalize_datetime(value, where)
    return value  # an int in range or a finite float: the parser keeps it


class ShapeEntry:
    """One cached shape: how to rebuild the parsed filter from new values, and the planners'
    binders (None: the planner plans the rebuilt filter; parsing is still saved)."""

    __slots__ = ("binders", "build", "match", "node")

    def __init__(self, node: Node, build: Builder | None, match: Matcher | None = None) -> None:
        self.node = node
        self.build = build
        self.match = match  # the raw filter rebuilt when it has this shape, else None
        # per (sort, skip > 0, limit set, projection, keyset position set): the planner's
        # binder, or None; filled by StoreCollection.shaped_plan
        self.binders: dict[Any, Any] = {}

    def rebuild(self, values: list[Any]) -> Node:
        return self.node if self.build is None else self.build(values)


def _entry(spec: Mapping[str, Any] | None, node: Node, raw: list[Any]) -> ShapeEntry | None:
    """The entry of a shape first parsed into ``node`` from the slot values ``raw``; ``spec`` is
    a filter of that shape (its field names give the paths of the parser's errors). None when
    the value sites do not line up with the parsed filter's (then the shape is not cached)."""
    wheres: list[str | None] = []
    try:
        _document(spec if spec is not None else {}, [], [], wheres, "")
    except (_Uncached, RecursionError):
        return None
    parsed: list[Any] = []
    _sites(node, parsed)
    if len(parsed) != len(wheres):
        return None
    slots: list[int | None] = []
    slot_wheres: list[str] = []
    values = iter(raw)
    for where, got in zip(wheres, parsed, strict=True):
        if where is None:
            slots.append(None)
            continue
        expected = _normalize(next(values), where)
        if type(expected) is not type(got) or expected != got:
            return None
        slots.append(len(slot_wheres))
        slot_wheres.append(where)
    if not slot_wheres:
        return ShapeEntry(node, None)
    kinds = [k for k in (_slot_kind(v) for v in raw) if k is not None]
    build, match = _builder(node, slots, kinds, slot_wheres, spec)
    return ShapeEntry(node, build, match)


class PlanCache:
    """Parsed filters (and, through the planner's binder, plans) of recently seen shapes,
    least recently used dropped first. One per store collection; not shared across loops."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Any, ShapeEntry | _Seen | None] = OrderedDict()
        # by the field names of a filter (its top-level keys in order): the entry whose
        # matcher is tried first, before the shape key is computed (at most ``size``)
        self._matchers: dict[tuple[Any, ...], ShapeEntry] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def parse(self, spec: Mapping[str, Any] | None) -> tuple[Node, ShapeEntry | None]:
        """The parsed filter (equal to ``parse_filter(spec)``) and its shape's entry."""
        if type(spec) is dict:
            names = tuple(spec)
            known = self._matchers.get(names)
            if known is not None:
                node = known.match(spec)  # type: ignore[misc]
                if node is not None:  # (an entry stays exact after the LRU dropped it)
                    self.hits += 1
                    return node, known
            found = self._parse(spec)
            entry = found[1]
            if entry is not None and entry.match is not None and entry is not known:
                if len(self._matchers) >= self.size:
                    self._matchers.clear()
                self._matchers[names] = entry
            return found
        return self._parse(spec)

    def _parse(self, spec: Mapping[str, Any] | None) -> tuple[Node, ShapeEntry | None]:
        shape = filter_shape(spec)
        if shape is None:
            return parse_filter(spec), None
        key, values = shape
        entries = self._entries
        entry = entries.get(key, self)
        if entry is self:
            self.misses += 1
            node = parse_filter(spec)  # a QueryError leaves nothing cached
            entries[key] = _Seen(node, values)
            if len(entries) > self.size:
                entries.popitem(last=False)
            return node, None
        self.hits += 1
        entries.move_to_end(key)
        if type(entry) is _Seen:  # the second filter of this shape: its entry is made now
            entry = entries[key] = _entry(spec, entry.node, entry.values)
        if entry is None:  # a shape whose values do not line up: parsed every time
            return parse_filter(spec), None
        assert isinstance(entry, ShapeEntry)
        return entry.rebuild(values), entry


class _Seen:
    """A shape seen once: its parsed filter and slot values, made into an entry when it comes
    back (a shape seen only once costs no more than parsing it)."""

    __slots__ = ("node", "values")

    def __init__(self, node: Node, values: list[Any]) -> None:
        self.node = node
        self.values = values


def _rebinder() -> Callable[[Plan, dict[str, Any], Node | None, Any], Plan]:
    """``rebound(plan, native, residual_node, payload)``: ``plan`` with those three fields
    replaced, made field by field as the dataclass ``__init__`` makes it (a binder makes one
    per call; the generic frozen-dataclass ``__init__`` costs more than the binding)."""
    fields = list(Plan.__dataclass_fields__)
    scope: dict[str, Any] = {"new": object.__new__, "Plan": Plan}
    lines = ["def rebound(plan, native, residual_node, payload):", "    p = new(Plan)"]
    for name in fields:
        scope[f"set_{name}"] = getattr(Plan, name).__set__
        source = name if name in ("native", "residual_node", "payload") else f"plan.{name}"
        lines.append(f"    set_{name}(p, {source})")
    lines.append("    return p")
    exec("\n".join(lines), scope)  # fixed text: the field names of Plan
    made: Callable[[Plan, dict[str, Any], Node | None, Any], Plan] = scope["rebound"]
    return made


rebound = _rebinder()


# --- helpers of the planners' binders ----------------------------------------------------


def flat_terms(node: Node) -> tuple[Node, ...]:
    """The terms of an AND of field conditions (or of one condition), else ()."""
    if type(node) is And:
        children: tuple[Node, ...] = node.children
        for child in children:
            if not isinstance(child, FieldNode):
                return ()
        return children
    return (node,) if isinstance(node, FieldNode) else ()


def holds_float(terms: Sequence[Node]) -> bool:
    """Whether a value of an ``$eq``, range, ``$in``, ``$ne`` or ``$nin`` is a float."""
    for term in terms:
        t = type(term)
        if t is Not:
            term = term.child  # type: ignore[attr-defined]
            t = type(term)
        if isinstance(term, Eq | Cmp):
            if type(term.value) is float:
                return True
        elif isinstance(term, In | All):
            for v in term.values:
                if type(v) is float:
                    return True
    return False


def fast_init(cls: type) -> Callable[..., Any]:
    """``cls(*fields)`` for a frozen slotted dataclass, every field given in order, made as its
    ``__init__`` makes it with each slot set directly (binders make a plan per call; the
    generic frozen ``__init__`` goes through ``object.__setattr__`` per field)."""
    fields = list(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    assert not hasattr(cls, "__post_init__")
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    lines = [f"def make({', '.join(fields)}):", "    p = new(cls)"]
    for name in fields:
        scope[f"set_{name}"] = getattr(cls, name).__set__
        lines.append(f"    set_{name}(p, {name})")
    lines.append("    return p")
    exec("\n".join(lines), scope)  # fixed text: the field names of a dataclass
    made: Callable[..., Any] = scope["make"]
    return made


make_plan: Callable[..., Plan] = fast_init(Plan)


def holds_slot(term: Node) -> bool:
    """Whether a filter node holds a value the plan cache binds (a slot of its shape)."""
    found: list[Any] = []
    _sites(term, found)
    return any(_slot_kind(v) is not None for v in found)
