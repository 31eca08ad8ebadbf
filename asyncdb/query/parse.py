"""Parse the Mongo-style query language into the immutable AST of :mod:`asyncdb.query.ast`.

Everything outside the supported language is rejected here, before any I/O, with a
:class:`~asyncdb.errors.QueryError` that names the offending path.

>>> parse_filter({"priority": {"$gt": 50}, "status": "open"})
And(children=(Cmp(path=('priority',), op='$gt', value=50), Eq(path=('status',), value='open')))
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from asyncdb.errors import QueryError
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
    SortKey,
    Type,
    Update,
    UpdateOp,
)
from asyncdb.query.limits import (
    MAX_DEPTH,
    check_depth,
    check_in_size,
    check_path_parts,
    check_text,
    value_depth,
)
from asyncdb.query.regex import regex_bound
from asyncdb.query.values import (
    INT64_MAX,
    INT64_MIN,
    TYPE_CODES,
    TYPE_NAMES,
    is_number,
    normalize_value,
)

REGEX_FLAGS = frozenset("imsx")
_FORBIDDEN = {
    "$where": "$where runs JavaScript and is not supported",
    "$function": "$function runs JavaScript and is not supported",
    "$expr": "$expr is not supported",
    "$text": "$text needs a text index and is not supported",
    "$jsonSchema": "$jsonSchema is not supported",
    "$comment": "$comment is not supported",
}
_CMP_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


_PATHS: dict[str, Path] = {}


def parse_path(key: Any, where: str = "") -> Path:
    """Split a dotted field path and validate each part (valid paths are cached)."""
    if type(key) is str:
        cached = _PATHS.get(key)
        if cached is not None:
            return cached
    if not isinstance(key, str):
        raise QueryError("field paths must be strings", path=where or repr(key))
    if not key:
        raise QueryError("empty field path", path=where)
    full = _join(where, key)
    if "\x00" in key:
        raise QueryError("field path contains NUL", path=full)
    check_text(key, full)
    parts = tuple(key.split("."))
    check_path_parts(key, len(parts), full)
    for part in parts:
        if not part:
            raise QueryError("empty part in field path", path=full)
        if part[0] == "$":
            raise QueryError(f"unknown operator or field starting with '$': {part!r}", path=full)
    if len(_PATHS) > 4096:
        _PATHS.clear()
    _PATHS[key] = parts
    return parts


# --- filters ---------------------------------------------------------------------------------


def parse_filter(spec: Mapping[str, Any] | None) -> Node:
    """Parse a filter document. ``None`` and ``{}`` match every document."""
    if spec is None:
        return MatchAll()
    if type(spec) is not dict and not isinstance(spec, Mapping):
        raise QueryError(f"a filter must be a mapping, not {type(spec).__name__}")
    return _parse_document(spec, "", 0)


def _parse_document(spec: Mapping[str, Any], where: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise QueryError("filter nested deeper than 100 levels", path=where)
    nodes: list[Node] = []
    for key, value in spec.items():
        if type(key) is str and key[:1] == "$":
            nodes.append(_parse_logical(key, value, where, depth))
        else:
            path = parse_path(key, where)
            nodes.extend(_parse_field(path, value, _join(where, key), depth + 1))
    if not nodes:
        return MatchAll()
    if len(nodes) == 1:
        return nodes[0]
    return And(tuple(nodes))


def _parse_logical(key: str, value: Any, where: str, depth: int) -> Node:
    here = _join(where, key)
    if key in _FORBIDDEN:
        raise QueryError(_FORBIDDEN[key], path=here)
    if key not in ("$and", "$or", "$nor"):
        raise QueryError(f"unknown top-level operator {key!r}", path=here)
    if not isinstance(value, list | tuple) or not value:
        raise QueryError(f"{key} needs a non-empty list of filters", path=here)
    children = []
    for i, sub in enumerate(value):
        if not isinstance(sub, Mapping):
            raise QueryError(f"{key} entries must be filter documents", path=f"{here}.{i}")
        children.append(_parse_document(sub, f"{here}.{i}", depth + 1))
    if key == "$and":
        return children[0] if len(children) == 1 else And(tuple(children))
    if key == "$or":
        return children[0] if len(children) == 1 else Or(tuple(children))
    return Nor(tuple(children))


def _is_operator_doc(value: Any) -> bool:
    if type(value) is not dict and not isinstance(value, Mapping):
        return False
    if not value:
        return False
    first = next(iter(value))
    return isinstance(first, str) and first.startswith("$")


def _parse_field(path: Path, value: Any, where: str, depth: int) -> list[FieldNode]:
    if depth > MAX_DEPTH:
        raise QueryError("filter nested deeper than 100 levels", path=where)
    if type(value) in _SCALARS:
        if type(value) is str and not value.isascii():
            check_text(value, where)
        return [Eq(path, value)]
    if isinstance(value, re.Pattern):
        return [_regex_from_pattern(path, value, where)]
    if _is_operator_doc(value):
        return _parse_operators(path, value, where, depth)
    return [Eq(path, _literal(value, where))]


_SCALARS = frozenset({str, bool, type(None)})


def _literal(value: Any, where: str) -> Any:
    if type(value) in _SCALARS:
        if type(value) is str and not value.isascii():
            check_text(value, where)
        return value
    return normalize_value(value, where)


def _regex_from_pattern(path: Path, pattern: re.Pattern[Any], where: str) -> Regex:
    flags = ""
    for flag, letter in ((re.I, "i"), (re.M, "m"), (re.S, "s"), (re.X, "x")):
        if pattern.flags & flag:
            flags += letter
    if not isinstance(pattern.pattern, str):
        raise QueryError("regex patterns must be text", path=where)
    check_text(pattern.pattern, where)
    compile_regex(pattern.pattern, flags, where)
    return Regex(path, pattern.pattern, flags)


def _parse_operators(path: Path, ops: Mapping[str, Any], where: str, depth: int) -> list[FieldNode]:
    nodes: list[FieldNode] = []
    if "$options" in ops and "$regex" not in ops:
        raise QueryError("$options without $regex", path=_join(where, "$options"))
    for op, arg in ops.items():
        here = _join(where, str(op))
        if not isinstance(op, str) or not op.startswith("$"):
            raise QueryError("cannot mix operators and fields in one condition", path=here)
        if op in _FORBIDDEN:
            raise QueryError(_FORBIDDEN[op], path=here)
        if op == "$eq":
            nodes.append(Eq(path, _literal(arg, here)))
        elif op == "$ne":
            nodes.append(Not(path, Eq(path, _literal(arg, here))))
        elif op in _CMP_OPS:
            nodes.append(Cmp(path, op, _literal(arg, here)))  # type: ignore[arg-type]
        elif op in ("$in", "$nin"):
            node = In(path, _value_list(arg, here, allow_empty=True))
            nodes.append(node if op == "$in" else Not(path, node))
        elif op == "$exists":
            nodes.append(Exists(path, _boolish(arg, here)))
        elif op == "$type":
            nodes.append(Type(path, _types(arg, here)))
        elif op == "$regex":
            nodes.append(_parse_regex(path, arg, ops.get("$options"), here))
        elif op == "$options":
            continue
        elif op == "$all":
            values = _value_list(arg, here, allow_empty=True)
            for i, v in enumerate(values):
                if _is_operator_doc(v):
                    raise QueryError("operators inside $all are not supported", path=f"{here}.{i}")
            nodes.append(All(path, values))
        elif op == "$size":
            nodes.append(Size(path, _size(arg, here)))
        elif op == "$elemMatch":
            nodes.append(_parse_elem_match(path, arg, here, depth))
        elif op == "$mod":
            nodes.append(_parse_mod(path, arg, here))
        elif op == "$not":
            nodes.append(_parse_not(path, arg, here, depth))
        else:
            raise QueryError(f"unknown operator {op!r}", path=here)
    return nodes


def _value_list(arg: Any, where: str, *, allow_empty: bool) -> tuple[Any, ...]:
    if not isinstance(arg, list | tuple):
        raise QueryError("needs a list of values", path=where)
    if not arg and not allow_empty:
        raise QueryError("needs a non-empty list", path=where)
    check_in_size(len(arg), where)
    out = []
    for i, v in enumerate(arg):
        if isinstance(v, re.Pattern):
            raise QueryError("regular expressions inside a list are not supported", path=where)
        out.append(_literal(v, f"{where}.{i}"))
    return tuple(out)


def _boolish(arg: Any, where: str) -> bool:
    if isinstance(arg, bool):
        return arg
    if is_number(arg):
        return bool(arg)
    raise QueryError("$exists needs true or false", path=where)


def _types(arg: Any, where: str) -> tuple[str, ...]:
    items = arg if isinstance(arg, list | tuple) else [arg]
    if not items:
        raise QueryError("$type needs at least one type", path=where)
    names = []
    for item in items:
        if isinstance(item, bool):
            raise QueryError(f"unknown type {item!r}", path=where)
        if isinstance(item, int) and item in TYPE_CODES:
            names.append(TYPE_CODES[item])
        elif isinstance(item, str) and item in TYPE_NAMES:
            names.append(item)
        else:
            raise QueryError(f"unknown or unsupported type {item!r}", path=where)
    return tuple(dict.fromkeys(names))


def _parse_regex(path: Path, pattern: Any, options: Any, where: str) -> Regex:
    flags = ""
    if isinstance(pattern, re.Pattern):
        node = _regex_from_pattern(path, pattern, where)
        pattern, flags = node.pattern, node.flags
    if not isinstance(pattern, str):
        raise QueryError("$regex needs a string", path=where)
    check_text(pattern, where)
    if options is not None:
        if not isinstance(options, str):
            raise QueryError("$options needs a string", path=where.rsplit(".", 1)[0] + ".$options")
        bad = set(options) - REGEX_FLAGS
        if bad:
            raise QueryError(
                f"unknown regex flags {''.join(sorted(bad))!r} (supported: i, m, s, x)",
                path=where.rsplit(".", 1)[0] + ".$options",
            )
        flags = "".join(sorted(set(flags) | set(options)))
    compile_regex(pattern, flags, where)
    return Regex(path, pattern, flags)


def compile_regex(pattern: str, flags: str, where: str = "") -> re.Pattern[str]:
    """Compile with Python ``re`` semantics and flags i, m, s, x (cached); a pattern that could
    take exponential time is a QueryError (:func:`asyncdb.query.regex.regex_bound`)."""
    return regex_bound(pattern, flags, where or "$regex").compiled


def _size(arg: Any, where: str) -> int:
    if isinstance(arg, bool) or not is_number(arg):
        raise QueryError("$size needs a non-negative integer", path=where)
    if arg != int(arg) or arg < 0:
        raise QueryError("$size needs a non-negative integer", path=where)
    return int(arg)


def _parse_mod(path: Path, arg: Any, where: str) -> Mod:
    if not isinstance(arg, list | tuple) or len(arg) != 2:
        raise QueryError("$mod needs [divisor, remainder]", path=where)
    divisor, remainder = arg
    for v in arg:
        if not is_number(v):
            raise QueryError("$mod needs numbers", path=where)
        if isinstance(v, float | Decimal) and not math.isfinite(v):
            raise QueryError("$mod needs finite numbers", path=where)
    try:
        d, r = int(divisor), int(remainder)
    except (OverflowError, ValueError):
        raise QueryError("$mod needs finite numbers", path=where) from None
    if not (INT64_MIN <= d <= INT64_MAX and INT64_MIN <= r <= INT64_MAX):
        raise QueryError("$mod needs numbers that fit in a 64-bit integer", path=where)
    if d == 0:
        raise QueryError("$mod divisor must not be 0", path=where)
    return Mod(path, d, r)


def _parse_elem_match(path: Path, arg: Any, where: str, depth: int) -> ElemMatch:
    if not isinstance(arg, Mapping):
        raise QueryError("$elemMatch needs a document", path=where)
    if not arg:
        raise QueryError("$elemMatch needs at least one condition", path=where)
    if _is_operator_doc(arg) and not any(k in ("$and", "$or", "$nor") for k in arg):
        nodes = _parse_operators((), arg, where, depth + 1)
        cond: Node = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
        return ElemMatch(path, cond, scalar=True)
    return ElemMatch(path, _parse_document(arg, where, depth + 1), scalar=False)


def _parse_not(path: Path, arg: Any, where: str, depth: int) -> FieldNode:
    if isinstance(arg, re.Pattern):
        return Not(path, _regex_from_pattern(path, arg, where))
    if not _is_operator_doc(arg):
        raise QueryError("$not needs an operator document or a regular expression", path=where)
    nodes = _parse_operators(path, arg, where, depth + 1)
    if len(nodes) == 1:
        return Not(path, nodes[0])
    return Not(path, _FieldAnd(path, tuple(nodes)))


class _FieldAnd(FieldNode):
    """Several conditions on one path under ``$not`` (``{a: {$not: {$gt: 1, $lt: 5}}}``)."""

    __slots__ = ("children", "path")

    def __init__(self, path: Path, children: tuple[FieldNode, ...]) -> None:
        self.path = path
        self.children = children

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _FieldAnd) and (other.path, other.children) == (
            self.path,
            self.children,
        )

    def __hash__(self) -> int:
        return hash((self.path, self.children))

    def __repr__(self) -> str:
        return f"FieldAnd(path={self.path!r}, children={self.children!r})"

    def condition(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for child in self.children:
            merged.update(child.condition())
        return merged


FieldAnd = _FieldAnd


# --- updates ---------------------------------------------------------------------------------

UPDATE_OPERATORS = frozenset(
    {
        "$set",
        "$unset",
        "$inc",
        "$mul",
        "$min",
        "$max",
        "$rename",
        "$push",
        "$pull",
        "$addToSet",
        "$pop",
        "$setOnInsert",
        "$currentDate",
    }
)


def parse_update(spec: Mapping[str, Any]) -> Update:
    """Parse an update document of operators (``{"$set": {...}, "$inc": {...}}``).

    >>> parse_update({"$inc": {"n": 1}}).ops[0].op
    '$inc'
    """
    if not isinstance(spec, Mapping):
        raise QueryError(f"an update must be a mapping, not {type(spec).__name__}")
    if not spec:
        raise QueryError("an update needs at least one operator")
    ops: list[UpdateOp] = []
    for op, fields in spec.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise QueryError(
                "an update mixes operators and fields; use replace_one for a whole document",
                path=str(op),
            )
        if op not in UPDATE_OPERATORS:
            raise QueryError(f"unknown update operator {op!r}", path=op)
        # An empty operand ({"$set": {}}) is a no-op since MongoDB 5.0 (update/set).
        if not isinstance(fields, Mapping):
            raise QueryError(f"{op} needs a document of fields", path=op)
        for key, arg in fields.items():
            where = f"{op}.{key}"
            if isinstance(key, str) and "$" in key:  # positional operators
                if op == "$rename":
                    raise QueryError("$rename cannot move a positional path", path=where)
                path = parse_update_path(key, op)
            else:
                path = parse_path(key, op)
            parsed = _parse_update_op(op, path, arg, where)
            _check_update_depth(parsed, where)
            ops.append(parsed)
    _check_conflicts(ops)
    return Update(ops=tuple(ops))


# --- positional updates: $, $[] and $[<identifier>] with array_filters -------------------------

_IDENTIFIER = re.compile(r"[a-z][a-zA-Z0-9]*\Z")
_FILTERED = re.compile(r"\$\[([^\]]*)\]\Z")


def positional_identifier(part: str) -> str | None:
    """``"$[e]"`` -> ``"e"``; None for any other part (``"$[]"`` and ``"$"`` included)."""
    m = _FILTERED.match(part)
    return m.group(1) or None if m else None


def parse_update_path(key: str, where: str = "") -> Path:
    """An update path that may hold positional parts, validated by MongoDB's rules: at most one
    ``$``, none first, identifiers a lowercase letter then letters and digits."""
    full = f"{where}.{key}" if where else key
    if "\x00" in key:
        raise QueryError("field path contains NUL", path=full)
    check_text(key, full)
    parts = tuple(key.split("."))
    check_path_parts(key, len(parts), full)
    dollars = 0
    for i, part in enumerate(parts):
        if not part:
            raise QueryError("empty part in field path", path=full)
        if part[0] != "$":
            continue
        if part != "$" and _FILTERED.match(part) is None:
            raise QueryError(f"unknown operator or field starting with '$': {part!r}", path=full)
        if i == 0:
            raise QueryError(
                "a positional operator cannot be the first part of an update path", path=full
            )
        if part == "$":
            dollars += 1
            if dollars > 1:
                raise QueryError("too many positional ('$') elements in the path", path=full)
        name = positional_identifier(part)
        if name is not None and _IDENTIFIER.match(name) is None:
            raise QueryError(
                "an array filter identifier must be a lowercase letter followed by letters "
                f"and digits, found {name!r}",
                path=full,
            )
    return parts


def bind_update(update: Update, node: Node, array_filters: Any = None) -> Update:
    """``update`` made ready to apply: the query filter (for ``$``) and the parsed
    ``array_filters`` (for ``$[<identifier>]``). Every identifier needs exactly one filter
    and every filter an identifier that the update uses, as MongoDB requires.

    >>> u = bind_update(parse_update({"$set": {"a.$[x]": 0}}), MatchAll(), [{"x": {"$gt": 1}}])
    >>> u.array_filters[0][0]
    'x'
    """
    if array_filters is None and not update.positional:
        return update  # the usual update: nothing to bind
    used: dict[str, str] = {}
    for op in update.ops:
        for part in op.path:
            name = positional_identifier(part)
            if name is not None:
                used.setdefault(name, ".".join(op.path))
    filters: dict[str, Node] = {}
    if array_filters is not None:
        if update.replacement is not None or update.pipeline is not None:
            kind = "a replacement" if update.replacement is not None else "a pipeline update"
            raise QueryError(f"array_filters cannot be used with {kind}", path="array_filters")
        if not isinstance(array_filters, list | tuple):
            raise QueryError("array_filters must be a list of filters", path="array_filters")
        for i, spec in enumerate(array_filters):
            name, parsed = _array_filter(spec, f"array_filters.{i}")
            if name in filters:
                raise QueryError(
                    f"several array filters have the top-level field name {name!r}",
                    path=f"array_filters.{i}",
                )
            filters[name] = parsed
    for name, path in used.items():
        if name not in filters:
            raise QueryError(f"no array filter for the identifier {name!r}", path=path)
    for i, name in enumerate(filters):
        if name not in used:
            raise QueryError(
                f"the array filter for the identifier {name!r} is not used in the update",
                path=f"array_filters.{i}",
            )
    if not filters and not update.positional:
        return update
    return Update(update.ops, update.replacement, update.pipeline, tuple(filters.items()), node)


def _array_filter(spec: Any, where: str) -> tuple[str, Node]:
    if not isinstance(spec, Mapping) or not spec:
        raise QueryError("an array filter is a non-empty filter document", path=where)
    try:
        parsed = _parse_document(spec, "", 0)
    except QueryError as exc:
        raise QueryError(str(exc), path=f"{where}.{exc.path}" if exc.path else where) from None
    names = _top_fields(parsed)
    if len(names) != 1:
        shown = " and ".join(repr(n) for n in sorted(names)) or "none"
        raise QueryError(
            f"an array filter needs one top-level field name, found {shown}", path=where
        )
    (name,) = names
    if _IDENTIFIER.match(name) is None:
        raise QueryError(
            "an array filter's top-level field name must be a lowercase letter followed by "
            f"letters and digits, found {name!r}",
            path=where,
        )
    return name, parsed


def _top_fields(node: Node) -> set[str]:
    if isinstance(node, And | Or | Nor):
        return set().union(*(_top_fields(c) for c in node.children))
    if isinstance(node, FieldNode):
        return {node.path[0]}
    return set()


def _check_update_depth(op: UpdateOp, where: str) -> None:
    """An update builds no document deeper than an insert may be: the value it stores at a
    path of ``k`` parts reaches depth ``k`` plus its own nesting (an element one more)."""
    if op.op in ("$push", "$addToSet"):
        reach = len(op.path) + 1 + max(map(value_depth, op.value), default=0)
    elif op.op == "$rename":
        reach = len(op.value)
    elif op.op in ("$set", "$setOnInsert", "$min", "$max"):
        reach = len(op.path) + value_depth(op.value)
    else:
        reach = len(op.path)
    check_depth(reach, where, MAX_DEPTH)


def parse_replacement(doc: Mapping[str, Any]) -> Update:
    """A whole replacement document (``replace_one``): no operators allowed."""
    if not isinstance(doc, Mapping):
        raise QueryError(f"a replacement must be a mapping, not {type(doc).__name__}")
    for key in doc:
        if isinstance(key, str) and key.startswith("$"):
            raise QueryError("a replacement document must not contain operators", path=key)
    return Update(replacement=normalize_value(doc))


def _parse_update_op(op: str, path: Path, arg: Any, where: str) -> UpdateOp:
    if op in ("$set", "$setOnInsert"):
        return UpdateOp(op, path, normalize_value(arg, where))
    if op == "$unset":
        return UpdateOp(op, path)
    if op in ("$inc", "$mul"):
        if not is_number(arg):
            raise QueryError(f"{op} needs a number", path=where)
        return UpdateOp(op, path, normalize_value(arg, where))
    if op in ("$min", "$max"):
        return UpdateOp(op, path, normalize_value(arg, where))
    if op == "$rename":
        if not isinstance(arg, str):
            raise QueryError("$rename needs the new field name as a string", path=where)
        target = parse_path(arg, where)
        if target == path:
            raise QueryError("$rename source and target are the same", path=where)
        return UpdateOp(op, path, target)
    if op == "$push":
        return _parse_push(path, arg, where)
    if op == "$addToSet":
        if isinstance(arg, Mapping) and "$each" in arg:
            if set(arg) != {"$each"}:
                raise QueryError("$addToSet takes only $each", path=where)
            return UpdateOp(op, path, _each(arg["$each"], where), each=True)
        _reject_modifiers(arg, where)
        return UpdateOp(op, path, (normalize_value(arg, where),))
    if op == "$pop":
        if arg not in (1, -1) or isinstance(arg, bool):
            raise QueryError("$pop needs 1 or -1", path=where)
        return UpdateOp(op, path, int(arg))
    if op == "$pull":
        if _is_operator_doc(arg):
            nodes = _parse_operators((), arg, where, 1)
            cond: Node = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
            return UpdateOp(op, path, cond=ElemMatch((), cond, scalar=True))
        if isinstance(arg, Mapping):
            return UpdateOp(op, path, cond=ElemMatch((), _parse_document(arg, where, 1), False))
        if isinstance(arg, re.Pattern):
            regex = _regex_from_pattern((), arg, where)
            return UpdateOp(op, path, cond=ElemMatch((), regex, scalar=True))
        return UpdateOp(op, path, normalize_value(arg, where))
    if op == "$currentDate":
        if arg is True or (isinstance(arg, Mapping) and dict(arg) == {"$type": "date"}):
            return UpdateOp(op, path, "date")
        if isinstance(arg, Mapping) and dict(arg) == {"$type": "timestamp"}:
            raise QueryError("$currentDate with $type timestamp is not portable", path=where)
        raise QueryError('$currentDate needs true or {"$type": "date"}', path=where)
    raise QueryError(f"unknown update operator {op!r}", path=op)  # pragma: no cover


def _reject_modifiers(arg: Any, where: str) -> None:
    if isinstance(arg, Mapping):
        for k in arg:
            if isinstance(k, str) and k.startswith("$"):
                raise QueryError(f"unknown modifier {k!r}", path=f"{where}.{k}")


def _each(values: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(values, list | tuple):
        raise QueryError("$each needs a list", path=f"{where}.$each")
    return tuple(normalize_value(v, f"{where}.$each.{i}") for i, v in enumerate(values))


def _parse_push(path: Path, arg: Any, where: str) -> UpdateOp:
    if isinstance(arg, Mapping) and "$each" in arg:
        slice_: int | None = None
        position: int | None = None
        for key, value in arg.items():
            if key == "$each":
                continue
            if key in ("$slice", "$position"):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise QueryError(f"{key} needs an integer", path=f"{where}.{key}")
                if key == "$slice":
                    slice_ = value
                else:
                    position = value
            else:
                raise QueryError(f"unsupported $push modifier {key!r}", path=f"{where}.{key}")
        return UpdateOp(
            "$push", path, _each(arg["$each"], where), each=True, slice=slice_, position=position
        )
    _reject_modifiers(arg, where)
    return UpdateOp("$push", path, (normalize_value(arg, where),))


def _check_conflicts(ops: Sequence[UpdateOp]) -> None:
    seen: list[tuple[Path, str]] = []
    for op in ops:
        targets = [op.path]
        if op.op == "$rename":
            targets.append(op.value)
        for target in targets:
            for other, other_op in seen:
                shorter = min(len(other), len(target))
                if other[:shorter] == target[:shorter]:
                    raise QueryError(
                        f"{op.op} and {other_op} both update "
                        f"{'.'.join(target) if len(target) <= len(other) else '.'.join(other)}",
                        path=".".join(target),
                    )
            seen.append((target, op.op))


# --- sort and projection ---------------------------------------------------------------------


def parse_sort(spec: Any) -> Sort:
    """``[("ts", -1), ("id", 1)]`` or ``{"ts": -1}``; ``None`` is no sort."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        spec = [(spec, 1)]
    items = list(spec.items()) if isinstance(spec, Mapping) else list(spec)
    keys: list[SortKey] = []
    seen: set[Path] = set()
    for item in items:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise QueryError(f"sort entries are (field, 1 | -1) pairs, got {item!r}", path="sort")
        name, direction = item
        path = parse_path(name, "sort")
        if direction not in (1, -1) or isinstance(direction, bool):
            raise QueryError("sort direction must be 1 or -1", path=f"sort.{name}")
        if path in seen:
            raise QueryError("field sorted twice", path=f"sort.{name}")
        seen.add(path)
        keys.append(SortKey(path, 1 if direction == 1 else -1))
    return tuple(keys)


def parse_projection(spec: Any, key_fields: Sequence[str] = ("id",)) -> Projection | None:
    """``{"a": 1, "b.c": 1}`` (include), ``{"a": 0}`` (exclude) or a list of fields to include.

    Key fields stay in included output unless excluded explicitly, like MongoDB's ``_id``.
    """
    if spec is None:
        return None
    if isinstance(spec, list | tuple):
        spec = dict.fromkeys(spec, 1)
    if not isinstance(spec, Mapping):
        raise QueryError("a projection is a mapping of field to 0/1 or a list of fields")
    if not spec:
        return None
    include: bool | None = None
    paths: list[Path] = []
    excluded_keys: list[str] = []
    for name, flag in spec.items():
        path = parse_path(name, "projection")
        # "Non-zero integers are also treated as true" (db.collection.find, projection).
        if not (isinstance(flag, bool) or is_number(flag)):
            raise QueryError("projection values are 0/1 or True/False", path=f"projection.{name}")
        on = bool(flag)
        if len(path) == 1 and path[0] in key_fields and not on:
            excluded_keys.append(path[0])
            continue
        if include is None:
            include = on
        elif include != on:
            raise QueryError(
                "a projection cannot mix inclusion and exclusion", path=f"projection.{name}"
            )
        paths.append(path)
    for i, p in enumerate(paths):
        for q in paths[i + 1 :]:
            n = min(len(p), len(q))
            if p[:n] == q[:n]:
                raise QueryError("projection paths collide", path=f"projection.{'.'.join(q)}")
    if include is None:  # only key fields excluded
        return Projection(
            include=False, paths=(), key_excluded=True, excluded_keys=tuple(excluded_keys)
        )
    return Projection(
        include=include,
        paths=tuple(paths),
        key_excluded=bool(excluded_keys),
        excluded_keys=tuple(excluded_keys),
    )
