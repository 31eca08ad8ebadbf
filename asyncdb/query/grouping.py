"""Exact ``$group`` pushdown to SQL ``GROUP BY``: which groups qualify, and how the partial rows a
store returns become MongoDB's results (or None: the data needs the in-process evaluator).

A ``$group`` right after the leading ``$match`` qualifies when its key is null, a top-level field
or a document of top-level fields, and its accumulators are ``$count``, ``$sum`` of an integer
constant, and ``$sum``/``$avg`` of a top-level field. SQL groups by each key field's JSON type
and value, and per summed field returns the sum and count of its integers and the count of its
values that are not (reals, objects that may hold a Decimal, ...). The answer is exact only where
the data is provably same-typed, which the partials show: any non-integer summed value, or two
SQL groups that are one group under BSON equality with different key values (1 and 1.0), or a
key that is a document or an array, and the caller runs the pipeline in process instead.

>>> from asyncdb.query.pipeline import parse_pipeline
>>> shape = group_shape(parse_pipeline([{"$group": {"_id": "$k", "n": {"$sum": "$v"}}}]))
>>> shape.keys, shape.fields
(((None, 'k'),), ('v',))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from asyncdb.query.aggregate import group_key
from asyncdb.query.pipeline import DocExpr, FieldRef, Group, Literal, Pipeline
from asyncdb.query.values import INT64_MAX, INT64_MIN, MISSING

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # a field name that may sit in SQL text


@dataclass(frozen=True, slots=True)
class GroupShape:
    """A pushable ``$group``: ``keys`` as (name in the ``_id`` document, or None for a plain
    key; field), ``accumulators`` as (output name, kind, argument) with kind ``"count"``
    (argument: the constant), ``"sum"`` or ``"avg"`` (argument: the field), ``fields`` the
    summed fields in order, ``rest`` the stages after the group."""

    keys: tuple[tuple[str | None, str], ...]
    accumulators: tuple[tuple[str, str, Any], ...]
    fields: tuple[str, ...]
    rest: Pipeline


def _field(expr: Any) -> str | None:
    if isinstance(expr, FieldRef) and len(expr.path) == 1 and _NAME.match(expr.path[0]):
        return expr.path[0]
    return None


def group_shape(pipeline: Pipeline) -> GroupShape | None:
    """The pushable shape of a pipeline that starts with a ``$group`` (the leading ``$match``
    already split off), else None."""
    if not pipeline or not isinstance(pipeline[0], Group):
        return None
    group = pipeline[0]
    keys: list[tuple[str | None, str]] = []
    if isinstance(group.key, DocExpr):
        for name, sub in group.key.fields:
            field = _field(sub)
            if field is None:
                return None
            keys.append((name, field))
        if not keys:
            return None
    elif not (isinstance(group.key, Literal) and group.key.value is None):
        field = _field(group.key)
        if field is None:
            return None
        keys.append((None, field))
    accumulators: list[tuple[str, str, Any]] = []
    fields: list[str] = []
    for name, acc in group.accumulators:
        if acc.op == "$sum" and isinstance(acc.expr, Literal):
            value = acc.expr.value
            if type(value) is not int:
                return None
            accumulators.append((name, "count", value))
            continue
        field = _field(acc.expr)
        if acc.op not in ("$sum", "$avg") or field is None:
            return None
        accumulators.append((name, "sum" if acc.op == "$sum" else "avg", field))
        if field not in fields:
            fields.append(field)
    return GroupShape(tuple(keys), tuple(accumulators), tuple(fields), pipeline[1:])


# the JSON type of a key value, as the SQL returns it
KEY_TYPES = frozenset({"integer", "real", "text", "true", "false", "null"})


_KINDS = {int: "integer", float: "real", str: "text", type(None): "null"}


def json_key(text: str | None) -> tuple[str | None, Any]:
    """A key read as its JSON text (NULL for a missing field) as ``merge_partials`` takes it:
    its JSON type and value (a document or an array is ``"object"``)."""
    if text is None:
        return None, None
    value = orjson.loads(text)
    if value is True or value is False:
        return ("true" if value else "false"), value
    return _KINDS.get(type(value), "object"), value


def _key_value(kind: str | None, raw: Any) -> Any:
    """A key value from its SQL type and value (MISSING for a missing field)."""
    if kind is None:
        return MISSING
    if kind == "integer":
        return int(raw)
    if kind == "real":
        return float(raw)
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind == "null":
        return None
    return str(raw)


def merge_partials(shape: GroupShape, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]] | None:
    """The ``$group`` results from SQL's partial rows, or None when they are not exact.

    A row is: per key field its JSON type and value, the row count, then per summed field the
    sum of its integer values, their count and the count of its non-integer values (an integer
    sum may come as several parts that add up, see the stores)."""
    n_keys = len(shape.keys)
    groups: dict[bytes, tuple[Any, list[int]]] = {}
    for row in rows:
        values: list[Any] = []
        for i in range(n_keys):
            kind = row[2 * i]
            if kind is not None and kind not in KEY_TYPES:
                return None  # a document or an array: BSON equality of those stays in process
            values.append(_key_value(kind, row[2 * i + 1]))
        if shape.keys and shape.keys[0][0] is not None:
            key: Any = {name: v for (name, _), v in zip(shape.keys, values, strict=True)}
            key = {k: v for k, v in key.items() if v is not MISSING}
        else:
            key = None if not values or values[0] is MISSING else values[0]
        counts = [int(v or 0) for v in row[2 * n_keys :]]
        ident = group_key(key)
        prior = groups.get(ident)
        if prior is None:
            groups[ident] = (key, counts)
            continue
        if not _identical(prior[0], key):
            return None  # 1 and 1.0: which one names the group depends on the input order
        prior[1][:] = [a + b for a, b in zip(prior[1], counts, strict=True)]
    out: list[dict[str, Any]] = []
    for key, counts in groups.values():
        doc: dict[str, Any] = {"_id": key}
        n = counts[0]
        for name, kind, arg in shape.accumulators:
            if kind == "count":
                doc[name] = arg * n
                continue
            j = 1 + 3 * shape.fields.index(arg)
            total, numbers, others = counts[j], counts[j + 1], counts[j + 2]
            if others:
                return None  # a double or a Decimal: MongoDB's rounding is done in process
            if kind == "sum":
                doc[name] = total if INT64_MIN <= total <= INT64_MAX else float(total)
            else:
                doc[name] = total / numbers if numbers else None
        out.append(doc)
    return out


def _identical(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(_identical(a[k], b[k]) for k in a)
    return bool(a == b)


__all__ = ["KEY_TYPES", "GroupShape", "group_shape", "json_key", "merge_partials"]
