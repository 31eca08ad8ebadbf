"""The reference evaluator: MongoDB's matching semantics over plain Python documents.

It is the oracle of the differential tests, the residual filter of every backend, and the
``memory://`` backend itself.

>>> from asyncdb.query.parse import parse_filter
>>> matches(parse_filter({"tags": "red"}), {"tags": ["red", "blue"]})
True
>>> matches(parse_filter({"a": {"$ne": 1}}), {})
True
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

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
    Type,
    path_str,
)
from asyncdb.query.parse import FieldAnd
from asyncdb.query.regex import regex_bound
from asyncdb.query.values import (
    INT64_MAX,
    INT64_MIN,
    MISSING,
    RANK_NULL,
    compare,
    equal,
    is_number,
    rank,
    type_name,
)


def resolve(doc: Any, path: Path, *, expand_leaf: bool = True) -> list[Any]:
    """The values a path reaches, by MongoDB's rules (``MISSING`` where it reaches nothing).

    Arrays met on the way are traversed one level (their document elements are followed, any
    other element is ``MISSING``); a numeric part indexes into an array. With ``expand_leaf``,
    an array at the end of the path is returned both whole and element by element.

    >>> resolve({"a": [{"b": 1}, {"b": [2, 3]}]}, ("a", "b"))
    [1, [2, 3], 2, 3]
    """
    out: list[Any] = []
    _resolve(doc, path, 0, expand_leaf, out)
    return out


def _resolve(value: Any, path: Path, i: int, expand_leaf: bool, out: list[Any]) -> None:
    if i == len(path):
        out.append(value)
        if expand_leaf and type(value) is list:
            out.extend(value)
        return
    part = path[i]
    if type(value) is dict:
        if part in value:
            _resolve(value[part], path, i + 1, expand_leaf, out)
        else:
            out.append(MISSING)
    elif type(value) is list:
        if part.isdigit():
            index = int(part)
            if index < len(value):
                # The element an index picks is one value: an array there is not traversed
                # (match_numeric_components.js: {"a.0": 42} does not match {a: [[42]]}).
                _resolve(value[index], path, i + 1, expand_leaf and i + 1 < len(path), out)
            else:
                out.append(MISSING)
            # The part also names a field of the array's documents, missing where absent
            # (match_numeric_components.js: {"a.0": 42} matches {a: [{"0": 42}]}).
            for element in value:
                if type(element) is dict:
                    if part in element:
                        _resolve(element[part], path, i + 1, expand_leaf, out)
                    else:
                        out.append(MISSING)
            return
        # An element that is not a document, or an empty array, leaves the field missing, so
        # {"a.b": null} matches {a: [1]} and {a: []} (MongoDB 9.0, SERVER-36681).
        if not value:
            out.append(MISSING)
        for element in value:
            if type(element) is dict and part in element:
                _resolve(element[part], path, i + 1, expand_leaf, out)
            else:
                out.append(MISSING)
    else:
        out.append(MISSING)


def matches(node: Node, doc: Any) -> bool:
    """Whether ``doc`` matches the parsed filter ``node``."""
    result: bool = _MATCHERS[type(node)](node, doc)
    return result


def _match_all(node: Any, doc: Any) -> bool:
    return True


def _and(node: And, doc: Any) -> bool:
    return all(matches(c, doc) for c in node.children)


def _or(node: Or, doc: Any) -> bool:
    return any(matches(c, doc) for c in node.children)


def _nor(node: Nor, doc: Any) -> bool:
    return not any(matches(c, doc) for c in node.children)


def _values(node: FieldNode, doc: Any, expand_leaf: bool = True) -> list[Any]:
    if not node.path:  # the element itself, inside a scalar $elemMatch
        return [doc]
    return resolve(doc, node.path, expand_leaf=expand_leaf)


def _not(node: Not, doc: Any) -> bool:
    return not matches(node.child, doc)


def _field_and(node: FieldAnd, doc: Any) -> bool:
    return all(matches(c, doc) for c in node.children)


def _eq(node: Eq, doc: Any) -> bool:
    target = node.value
    values = _values(node, doc)
    if target is None:
        return any(v is None or v is MISSING for v in values)
    return any(v is not MISSING and equal(v, target) for v in values)


def _cmp(node: Cmp, doc: Any) -> bool:
    target = node.value
    op = node.op
    target_rank = rank(target)
    for v in _values(node, doc):
        if rank(v) != target_rank:
            continue
        c = compare(v, target)
        if (
            (op == "$gt" and c > 0)
            or (op == "$gte" and c >= 0)
            or (op == "$lt" and c < 0)
            or (op == "$lte" and c <= 0)
        ):
            return True
    return False


# Large $in lists: their strings as a set (a string equals only an equal string), the other
# targets as they are; per node, for the few nodes in use (a 100k-value $in is not a scan).
_LARGE_IN = 32
_IN_SETS: dict[int, tuple[In, frozenset[str], tuple[Any, ...]]] = {}


def _in_sets(node: In) -> tuple[frozenset[str], tuple[Any, ...]]:
    hit = _IN_SETS.get(id(node))
    if hit is None or hit[0] is not node:
        strings = frozenset(t for t in node.values if type(t) is str)
        others = tuple(t for t in node.values if type(t) is not str)
        if len(_IN_SETS) > 64:
            _IN_SETS.clear()
        hit = _IN_SETS[id(node)] = (node, strings, others)
    return hit[1], hit[2]


def _in(node: In, doc: Any) -> bool:
    values = _values(node, doc)
    targets: tuple[Any, ...] = node.values
    if len(targets) > _LARGE_IN:
        strings, targets = _in_sets(node)
        if any(type(v) is str and v in strings for v in values):
            return True
    for target in targets:
        if target is None:
            if any(v is None or v is MISSING for v in values):
                return True
        elif any(v is not MISSING and equal(v, target) for v in values):
            return True
    return False


def _exists(node: Exists, doc: Any) -> bool:
    found = any(v is not MISSING for v in _values(node, doc, expand_leaf=False))
    return found is node.exists


def _type(node: Type, doc: Any) -> bool:
    wanted = node.types
    for v in _values(node, doc):
        if v is MISSING:
            continue
        name = type_name(v)
        if name in wanted or ("number" in wanted and is_number(v)):
            return True
    return False


def _regex(node: Regex, doc: Any) -> bool:
    bound = regex_bound(node.pattern, node.flags)
    return any(type(v) is str and bound.search(v, path_str(node.path)) for v in _values(node, doc))


def _all(node: All, doc: Any) -> bool:
    if not node.values:
        return False
    values = _values(node, doc)
    for target in node.values:
        if target is None:
            if not any(v is None or v is MISSING for v in values):
                return False
        elif not any(v is not MISSING and equal(v, target) for v in values):
            return False
    return True


def _size(node: Size, doc: Any) -> bool:
    return any(type(v) is list and len(v) == node.size for v in _values(node, doc, False))


def _elem_match(node: ElemMatch, doc: Any) -> bool:
    for v in _values(node, doc, expand_leaf=False):
        if type(v) is not list:
            continue
        for element in v:
            if not node.scalar:
                # A nested array is matched as the document {"0": ..., "1": ...} (MongoDB's
                # isABSONObj; null_query_semantics.js: {$elemMatch: {b: null}} matches [[]]).
                if type(element) is list:
                    element = _as_document(element)
                elif type(element) is not dict:
                    continue
            if matches(node.cond, element):
                return True
    return False


def _as_document(array: list[Any]) -> dict[str, Any]:
    return {str(i): e for i, e in enumerate(array)}


def mod_matches(value: Any, divisor: int, remainder: int) -> bool:
    """MongoDB's ``$mod``: the value truncated toward zero, remainder with the dividend's sign."""
    if not is_number(value):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    n = int(value) if not isinstance(value, Decimal) else int(value.to_integral_value("ROUND_DOWN"))
    if not INT64_MIN <= n <= INT64_MAX:
        return False  # ModMatchExpression: a dividend beyond 64 bits matches nothing
    r = abs(n) % abs(divisor)
    if n < 0:
        r = -r
    return r == remainder


def _mod(node: Mod, doc: Any) -> bool:
    return any(mod_matches(v, node.divisor, node.remainder) for v in _values(node, doc))


_MATCHERS: dict[type, Any] = {
    MatchAll: _match_all,
    And: _and,
    Or: _or,
    Nor: _nor,
    Not: _not,
    FieldAnd: _field_and,
    Eq: _eq,
    Cmp: _cmp,
    In: _in,
    Exists: _exists,
    Type: _type,
    Regex: _regex,
    All: _all,
    Size: _size,
    ElemMatch: _elem_match,
    Mod: _mod,
}


__all__ = ["MISSING", "RANK_NULL", "matches", "mod_matches", "resolve"]
