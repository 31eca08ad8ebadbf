"""Query shapes: filters, updates and native queries with every literal replaced by ``?``.

What an audit event, a span, a metric label or one of asyncdb's log lines may say about a
query is its *shape*: field names and operators, never a value. Field names are kept (they
are the schema); every scalar, and every list that is not a list of sub-filters, becomes ``?``.

>>> query_shape({"email": "a@b.c", "age": {"$gt": 41}, "$or": [{"x": 1}, {"y": [2, 3]}]})
'{"email": ?, "age": {"$gt": ?}, "$or": [{"x": ?}, {"y": ?}]}'
>>> query_shape({"$set": {"name": "Zed"}, "$inc": {"n": 1}})
'{"$set": {"name": ?}, "$inc": {"n": ?}}'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from asyncdb.types import Plan

# Operators whose value is a list of sub-filters (kept as shapes, not collapsed to ``?``).
_FILTER_LISTS = frozenset({"$and", "$or", "$nor"})


def _shapes(items: Any, out: list[str]) -> None:
    out.append("[")
    for j, sub in enumerate(items):
        if j:
            out.append(", ")
        _shape(sub, out)
    out.append("]")


def _shape(value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        out.append("{")
        for i, (name, item) in enumerate(value.items()):
            if i:
                out.append(", ")
            out.append(json.dumps(str(name)))
            out.append(": ")
            if name in _FILTER_LISTS and isinstance(item, list | tuple):
                _shapes(item, out)
            else:
                _shape(item, out)
        out.append("}")
    elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
        _shapes(value, out)  # a pipeline update or a list of stages: each stage by its shape
    else:
        out.append("?")


# Shapes of flat filters (text field names, scalar values: ``{"id": k}``) by their names.
_FLAT: dict[tuple[str, ...], str] = {}
_FLAT_MAX = 1024
_SCALARS = frozenset({str, int, float, bool, type(None)})


def query_shape(spec: Any) -> str:
    """A filter, update or pipeline as text with every literal as ``?`` (``{}`` for None)."""
    if spec is None:
        return "{}"
    if type(spec) is dict and len(spec) <= 4:
        names = tuple(spec)
        known = _FLAT.get(names)
        if known is not None and all(type(v) in _SCALARS for v in spec.values()):
            return known
    out: list[str] = []
    _shape(spec, out)
    text = "".join(out)
    if (
        type(spec) is dict
        and len(spec) <= 4
        and len(_FLAT) < _FLAT_MAX
        and all(type(k) is str and not k.startswith("$") for k in spec)
        and all(type(v) in _SCALARS for v in spec.values())
    ):
        _FLAT[tuple(spec)] = text
    return text


def field_names(doc: Any) -> str:
    """A document's top-level field names, for a replacement's shape: ``{"a": ?, "b": ?}``."""
    if not isinstance(doc, Mapping):
        return "?"
    return "{" + ", ".join(f"{json.dumps(str(k))}: ?" for k in doc) + "}"


# Entries of a native query that hold values (parameters, key lists): always ``?``.
_VALUE_ENTRIES = frozenset(
    {
        "params",
        "parameters",
        "ExpressionAttributeValues",
        "Keys",
        "keys",
        "get",
        "read_items",
        "start_after",
    }
)
# Entries that are query text with placeholders, or names: kept as they are.
_TEXT_ENTRIES = frozenset(
    {
        "sql",
        "operation",
        "IndexName",
        "KeyConditionExpression",
        "FilterExpression",
        "ExpressionAttributeNames",
        "collection",
        "order_by",
        "sort",
        "projection",
        "scan",
        "composite_indexes",
    }
)


def native_query_text(plan: Plan) -> str:
    """The backend's native query of ``plan`` as ``db.query.text``: SQL as it is sent (values
    are bind parameters there), other stores' requests with every literal as ``?``.

    >>> from asyncdb.types import Plan
    >>> native_query_text(Plan("mongo", "c", "scan", {"filter": {"email": "x"}}, None, None, None))
    '{"filter": {"email": ?}}'
    """
    native = plan.native
    sql = native.get("sql")
    if isinstance(sql, str):
        return sql
    parts: list[str] = []
    for name, value in native.items():
        if name in _VALUE_ENTRIES:
            text = "?"
        elif name in _TEXT_ENTRIES:
            text = json.dumps(value, default=str)
        elif name == "where":  # Firestore's filter text carries values: its pushed-down shape
            pushed = [p for p in (plan.exact, plan.approximate) if p]
            text = query_shape(pushed[0] if len(pushed) == 1 else {"$and": pushed})
        else:
            text = query_shape(value)
        parts.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(parts) + "}"


__all__ = ["field_names", "native_query_text", "query_shape"]
