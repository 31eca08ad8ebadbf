"""The ``GROUP BY`` statement of a pushable ``$group`` on PostgreSQL (see
asyncdb/query/grouping.py).

Each document's values are read once, in a subquery kept from being merged into the grouping
(``OFFSET 0``): per key field its jsonb text (``1`` and ``1.0`` stay apart: the codec writes every
float with a ``.`` or an exponent and jsonb keeps its scale; NULL for a missing field), per
summed field its ``jsonb_typeof`` and value. The groups add the numbers exactly as ``numeric``
and count the objects (a Decimal is a tagged object); a sum whose scale is above 0
held a float, which ``partial_rows`` reports as a non-integer value. Field names are checked
identifiers (``GroupShape``), so they may sit in the SQL text; values never do.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from asyncdb.query.grouping import GroupShape, json_key


def group_sql(shape: GroupShape, table: str, where: str) -> str:
    """``SELECT ... FROM (SELECT ... OFFSET 0) GROUP BY`` the key columns."""
    inner: list[str] = []
    outer: list[str] = []
    for i, (_, field) in enumerate(shape.keys):
        inner.append(f"(doc -> '{field}')::text AS g{i}")
        outer.append(f"g{i}")
    groups = ", ".join(str(i + 1) for i in range(len(outer)))
    outer.append("count(*)")
    for i, field in enumerate(shape.fields):
        inner.append(f"jsonb_typeof(doc -> '{field}') AS t{i}")
        inner.append(f"doc -> '{field}' AS j{i}")
        outer.append(f"sum(CASE WHEN t{i} = 'number' THEN j{i}::numeric END)")
        outer.append(f"count(CASE WHEN t{i} = 'number' THEN 1 END)")
        outer.append(f"count(CASE WHEN t{i} = 'object' THEN 1 END)")
    rows = f"SELECT {', '.join(inner) or '1'} FROM {table}{where} OFFSET 0"
    sql = f"SELECT {', '.join(outer)} FROM ({rows}) AS r"
    return f"{sql} GROUP BY {groups}" if groups else sql


def partial_rows(shape: GroupShape, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows as ``merge_partials`` takes them: each key as its JSON type and value, each sum
    as an integer, a sum with a fraction (a float was in it) counted as a non-integer value."""
    n = len(shape.keys)
    out = []
    for row in rows:
        fixed: list[Any] = []
        for text in row[:n]:
            fixed.extend(json_key(text))
        fixed.append(row[n])
        for i in range(len(shape.fields)):
            total, count, others = row[n + 1 + 3 * i : n + 4 + 3 * i]
            floats = isinstance(total, Decimal) and int(total.as_tuple().exponent) < 0
            fixed.extend([int(total or 0), count, others + int(floats)])
        out.append(fixed)
    return out


__all__ = ["group_sql", "partial_rows"]
