"""Apply parsed updates and projections to documents, with MongoDB's semantics.

>>> from asyncdb.query.parse import parse_update
>>> apply_update(parse_update({"$inc": {"n": 2}, "$push": {"tags": "x"}}), {"n": 1})
{'n': 3, 'tags': ['x']}
"""

from __future__ import annotations

import copy
import dataclasses
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asyncdb.errors import UpdateError
from asyncdb.query.aggregate import apply_pipeline_update
from asyncdb.query.ast import (
    And,
    ElemMatch,
    Eq,
    FieldNode,
    Node,
    Not,
    Path,
    Projection,
    Update,
    UpdateOp,
    path_str,
)
from asyncdb.query.evaluate import matches
from asyncdb.query.values import (
    INT64_MAX,
    INT64_MIN,
    compare,
    equal,
    is_number,
    normalize_datetime,
    type_name,
)

_NOTHING: Any = object()


def apply_update(
    update: Update,
    doc: dict[str, Any],
    *,
    is_insert: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return a new document: ``doc`` with ``update`` applied (``doc`` itself is not changed).

    Raises :class:`~asyncdb.errors.UpdateError` when an operator does not fit the stored value.
    """
    if update.replacement is not None:
        return copy.deepcopy(update.replacement)
    if update.pipeline is not None:
        return apply_pipeline_update(update.pipeline, doc)
    out = copy.deepcopy(doc)
    for op in update.ops:
        if any(part[:1] == "$" for part in op.path):
            for path in _Positions(update, doc, is_insert).expand(out, op):
                _APPLY[op.op](out, dataclasses.replace(op, path=path), is_insert, now)
        else:
            _APPLY[op.op](out, op, is_insert, now)
    return out


# --- positional paths ---------------------------------------------------------------------------

_NO_MATCH = "the positional operator did not find the match needed from the query"


class _Positions:
    """Expands a positional path into the concrete paths it updates in one document: ``$`` is
    the first element of that array the query filter matched (in the document as it was before
    the update), ``$[]`` every element, ``$[<identifier>]`` the elements its array filter
    matches."""

    def __init__(self, update: Update, before: dict[str, Any], is_insert: bool) -> None:
        self.update = update
        self.before = before
        self.is_insert = is_insert
        self.filters = dict(update.array_filters)

    def expand(self, doc: dict[str, Any], op: UpdateOp) -> list[Path]:
        out: list[Path] = []
        self._walk(doc, op, 0, (), out)
        return out

    def _walk(self, value: Any, op: UpdateOp, i: int, prefix: Path, out: list[Path]) -> None:
        path = op.path
        if i == len(path):
            out.append(prefix)
            return
        part = path[i]
        if part[0] != "$":
            self._walk(
                _get(value, part) if value is not _NOTHING else _NOTHING,
                op,
                i + 1,
                (*prefix, part),
                out,
            )
            return
        if part == "$":
            index = self._matched(prefix)
            if type(value) is not list or index >= len(value):
                raise UpdateError(_NO_MATCH, path=path_str(path))
            self._walk(value[index], op, i + 1, (*prefix, str(index)), out)
            return
        if value is _NOTHING:
            raise UpdateError(
                f"the path {path_str(prefix)!r} must exist in the document to apply array updates",
                path=path_str(path),
            )
        if type(value) is not list:
            raise UpdateError(
                f"cannot apply array updates to a {type_name(value)} value at {path_str(prefix)!r}",
                path=path_str(path),
            )
        name = part[2:-1]
        node = self.filters.get(name) if name else None
        if name and node is None:  # an update not bound to its array_filters (bind_update)
            raise UpdateError(f"no array filter for the identifier {name!r}", path=path_str(path))
        for j, element in enumerate(value):
            if node is None or matches(node, {name: element}):
                self._walk(element, op, i + 1, (*prefix, str(j)), out)

    def _matched(self, prefix: Path) -> int:
        """The position ``$`` stands for: the first element of the array at ``prefix`` that
        meets every condition of the query on that array (negations record none, as in
        MongoDB); when no element meets all of them, the first that meets the last one."""
        node = self.update.match
        array: Any = self.before
        for part in prefix:
            array = _get(array, part) if array is not _NOTHING else _NOTHING
        if self.is_insert or node is None or type(array) is not list:
            raise UpdateError(_NO_MATCH, path=path_str(prefix))
        terms = [
            t
            for t in _conjuncts(node)
            if isinstance(t, FieldNode)
            and not isinstance(t, Not)
            and t.path[: len(prefix)] == prefix
        ]
        if not terms:
            raise UpdateError(_NO_MATCH, path=path_str(prefix))
        for wanted in (terms, terms[-1:]):
            for j, element in enumerate(array):
                probe = _nested(prefix, [element])
                if all(matches(t, probe) for t in wanted):
                    return j
        raise UpdateError(_NO_MATCH, path=path_str(prefix))


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, And):
        return [t for c in node.children for t in _conjuncts(c)]
    return [node]


def _nested(path: Path, value: Any) -> dict[str, Any]:
    """``("a", "b")``, v -> ``{"a": {"b": v}}``: one array element alone in its place."""
    for part in reversed(path[1:]):
        value = {part: value}
    return {path[0]: value}


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that also tells types apart (``1`` vs ``1.0``) and a Decimal's exponent
    (``1.0`` vs ``1.00``): did an update modify a value?"""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is Decimal:  # Decimal("1.0") -> Decimal("1.00") is stored: a modification
        return bool(a.as_tuple() == b.as_tuple())
    return bool(a == b)


def _where(op: UpdateOp) -> str:
    return path_str(op.path)


def _parent(doc: dict[str, Any], path: Path, op: UpdateOp, *, create: bool) -> Any:
    """The container that holds the last part of ``path``, created if asked; None if absent."""
    node: Any = doc
    for i, part in enumerate(path[:-1]):
        if type(node) is dict:
            if part not in node:
                if not create:
                    return None
                node[part] = {}
            node = node[part]
        elif type(node) is list:
            if not part.isdigit():
                if not create:  # $unset of a path that cannot exist is a no-op
                    return None
                raise UpdateError(
                    f"cannot use the part {part!r} to traverse an array", path=_where(op)
                )
            index = int(part)
            if index >= len(node):
                if not create:
                    return None
                node.extend([None] * (index + 1 - len(node)))
                node[index] = {}
            # an existing null element is a value, not a place to create fields in
            node = node[index]
        else:
            if not create:
                return None
            raise UpdateError(
                f"cannot create field {part!r} in a {type_name(node)} value",
                path=path_str(path[: i + 1]),
            )
    if type(node) not in (dict, list):
        if not create:
            return None
        raise UpdateError(
            f"cannot create field {path[-1]!r} in a {type_name(node)} value", path=_where(op)
        )
    return node


def _get(container: Any, part: str) -> Any:
    if type(container) is dict:
        return container.get(part, _NOTHING)
    if type(container) is list and part.isdigit() and int(part) < len(container):
        return container[int(part)]
    return _NOTHING


def _put(container: Any, part: str, value: Any, op: UpdateOp) -> None:
    if type(container) is dict:
        container[part] = value
        return
    if not part.isdigit():
        raise UpdateError(f"cannot use the part {part!r} to traverse an array", path=_where(op))
    index = int(part)
    if index >= len(container):
        container.extend([None] * (index + 1 - len(container)))
    container[index] = value


def _current(doc: dict[str, Any], op: UpdateOp) -> tuple[Any, Any]:
    parent = _parent(doc, op.path, op, create=False)
    if parent is None:
        return None, _NOTHING
    return parent, _get(parent, op.path[-1])


def _set(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: datetime | None) -> None:
    parent = _parent(doc, op.path, op, create=True)
    _put(parent, op.path[-1], copy.deepcopy(op.value), op)


def _set_on_insert(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    if is_insert:
        _set(doc, op, is_insert, now)


def _unset(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    parent, current = _current(doc, op)
    if current is _NOTHING:
        return
    if type(parent) is dict:
        del parent[op.path[-1]]
    else:  # MongoDB keeps array positions: an unset element becomes null
        parent[int(op.path[-1])] = None


def _add(a: Any, b: Any, op: UpdateOp) -> Any:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        result: Any = _dec(a) + _dec(b) if op.op == "$inc" else _dec(a) * _dec(b)
        return result
    result = a + b if op.op == "$inc" else a * b
    if type(result) is int and not INT64_MIN <= result <= INT64_MAX:
        raise UpdateError(f"{op.op} overflows a 64-bit integer", path=_where(op))
    if type(result) is float and not math.isfinite(result):
        raise UpdateError(f"{op.op} overflows a double", path=_where(op))
    return result


def _dec(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def _arith(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    parent, current = _current(doc, op)
    if current is _NOTHING:
        if op.op == "$inc":
            value = op.value
        else:
            value = op.value * 0 if not isinstance(op.value, float) else 0.0
        parent = _parent(doc, op.path, op, create=True)
        _put(parent, op.path[-1], value, op)
        return
    if not is_number(current):
        raise UpdateError(
            f"{op.op} needs a number, the field holds {type_name(current)}", path=_where(op)
        )
    _put(parent, op.path[-1], _add(current, op.value, op), op)


def _minmax(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    _, current = _current(doc, op)
    if current is not _NOTHING:
        c = compare(op.value, current)
        if (op.op == "$min" and c >= 0) or (op.op == "$max" and c <= 0):
            return
    _set(doc, op, is_insert, now)


def _rename(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    parent, current = _current(doc, op)
    if current is _NOTHING:
        return
    if type(parent) is list:
        raise UpdateError("$rename cannot move a field out of an array", path=_where(op))
    del parent[op.path[-1]]
    target = UpdateOp("$set", op.value, current)
    target_parent = _parent(doc, op.value, target, create=True)
    if type(target_parent) is list:
        raise UpdateError("$rename cannot move a field into an array", path=path_str(op.value))
    target_parent[op.value[-1]] = current


def _array(doc: dict[str, Any], op: UpdateOp, *, create: bool) -> list[Any] | None:
    parent, current = _current(doc, op)
    if current is _NOTHING:
        if not create:
            return None
        parent = _parent(doc, op.path, op, create=True)
        new: list[Any] = []
        _put(parent, op.path[-1], new, op)
        return new
    if type(current) is not list:
        raise UpdateError(
            f"{op.op} needs an array, the field holds {type_name(current)}", path=_where(op)
        )
    return current


def _push(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    array = _array(doc, op, create=True)
    assert array is not None
    values = copy.deepcopy(list(op.value))
    if op.position is None:
        array.extend(values)
    else:
        pos = op.position if op.position >= 0 else max(len(array) + op.position, 0)
        array[pos:pos] = values
    if op.slice is not None:
        if op.slice >= 0:
            del array[op.slice :]
        else:
            del array[: max(len(array) + op.slice, 0)]


def _add_to_set(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    array = _array(doc, op, create=True)
    assert array is not None
    for value in op.value:
        if not any(equal(value, existing) for existing in array):
            array.append(copy.deepcopy(value))


def _pop(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    array = _array(doc, op, create=False)
    if array:
        array.pop(0 if op.value == -1 else -1)


def _pull_matches(op: UpdateOp, element: Any) -> bool:
    if op.cond is None:
        return equal(element, op.value)
    cond = op.cond
    assert isinstance(cond, ElemMatch)
    if cond.scalar:
        return matches(cond.cond, element)
    return type(element) is dict and matches(cond.cond, element)


def _pull(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    array = _array(doc, op, create=False)
    if array:
        array[:] = [e for e in array if not _pull_matches(op, e)]


def _current_date(doc: dict[str, Any], op: UpdateOp, is_insert: bool, now: Any) -> None:
    stamp = normalize_datetime(now or datetime.now(UTC))
    _set(doc, UpdateOp("$set", op.path, stamp), is_insert, now)


_APPLY: dict[str, Any] = {
    "$set": _set,
    "$setOnInsert": _set_on_insert,
    "$unset": _unset,
    "$inc": _arith,
    "$mul": _arith,
    "$min": _minmax,
    "$max": _minmax,
    "$rename": _rename,
    "$push": _push,
    "$addToSet": _add_to_set,
    "$pop": _pop,
    "$pull": _pull,
    "$currentDate": _current_date,
}


def upsert_seed(node: Node) -> dict[str, Any]:
    """The document an upsert starts from: the filter's equality conditions, like MongoDB."""
    seed: dict[str, Any] = {}
    nodes = node.children if isinstance(node, And) else (node,)
    for child in nodes:
        if isinstance(child, And):
            for k, v in upsert_seed(child).items():
                seed.setdefault(k, v)
        elif isinstance(child, Eq) and all(not p.isdigit() for p in child.path):
            op = UpdateOp("$set", child.path, child.value)
            _set(seed, op, True, None)
    return seed


# --- projection ------------------------------------------------------------------------------


def apply_projection(
    projection: Projection | None, doc: dict[str, Any], key_fields: tuple[str, ...]
) -> dict[str, Any]:
    """The projected copy of ``doc``; key fields stay unless excluded explicitly."""
    if projection is None:
        return doc
    if projection.include:
        out: dict[str, Any] = {}
        for k in key_fields:
            if k in doc and k not in projection.excluded_keys:
                out[k] = doc[k]
        for path in projection.paths:
            _include(doc, out, path)
        return _in_order(out, doc)
    out = copy.deepcopy(doc)
    for path in projection.paths:
        _exclude(out, path)
    for k in projection.excluded_keys:
        out.pop(k, None)
    return out


def _include(src: Any, dst: dict[str, Any], path: Path) -> None:
    head, rest = path[0], path[1:]
    if type(src) is not dict or head not in src:
        return
    value = src[head]
    if not rest:
        dst[head] = copy.deepcopy(value)
    elif type(value) is dict:
        # a document without the field stays as {} (MongoDB: {"a.b": 1} projects {a: {}})
        sub = dst.get(head)
        sub = sub if type(sub) is dict else {}
        _include(value, sub, rest)
        dst[head] = _in_order(sub, value)
    elif type(value) is list:
        dst[head] = _include_array(value, dst.get(head), rest)


def _include_array(src: list[Any], prior: Any, path: Path) -> list[Any]:
    """Inclusion through an array: documents keep the included fields (maybe none), nested
    arrays keep their shape, other elements are dropped. ``prior`` is an earlier path's result."""
    kept: list[Any] = [e for e in src if type(e) is dict or type(e) is list]
    before = prior if type(prior) is list and len(prior) == len(kept) else [None] * len(kept)
    out: list[Any] = []
    for element, earlier in zip(kept, before, strict=True):
        if type(element) is dict:
            sub = earlier if type(earlier) is dict else {}
            _include(element, sub, path)
            out.append(_in_order(sub, element))
        else:
            out.append(_include_array(element, earlier, path))
    return out


def _in_order(projected: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """``projected`` with the fields in ``src``'s order, as MongoDB returns them."""
    return {k: projected[k] for k in src if k in projected}


def _exclude(doc: Any, path: Path) -> None:
    head, rest = path[0], path[1:]
    if type(doc) is list:
        for element in doc:
            _exclude(element, path)
        return
    if type(doc) is not dict or head not in doc:
        return
    if not rest:
        del doc[head]
    else:
        _exclude(doc[head], rest)
