"""The ``GROUP BY`` statement of a pushable ``$group`` on SQLite (see asyncdb/query/grouping.py).

Per key field its ``json_type`` and ``json_extract`` value; per summed field the sum of its
integer values in two parts (the high and low 32 bits: neither can overflow SQLite's 64-bit
``SUM``, which raises instead of widening), their count, and the count of its reals and objects
(a Decimal is a tagged object). Field names are checked identifiers (``GroupShape``), so the
JSON paths may sit in the SQL text; values never do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncdb.query.grouping import GroupShape


def group_sql(shape: GroupShape, table: str, where: str) -> str:
    """``SELECT ... FROM table WHERE ... GROUP BY`` the key columns."""
    columns: list[str] = []
    for _, field in shape.keys:
        columns.append(f"json_type(doc, '$.{field}')")
        columns.append(f"json_extract(doc, '$.{field}')")
    groups = ", ".join(str(i + 1) for i in range(len(columns)))
    columns.append("count(*)")
    for field in shape.fields:
        kind = f"json_type(doc, '$.{field}')"
        value = f"CASE {kind} WHEN 'integer' THEN json_extract(doc, '$.{field}') END"
        columns.append(f"sum(({value}) >> 32)")
        columns.append(f"sum(({value}) & 4294967295)")
        columns.append(f"count({value})")
        columns.append(f"count(CASE WHEN {kind} IN ('real', 'object') THEN 1 END)")
    sql = f"SELECT {', '.join(columns)} FROM {table}{where}"
    return f"{sql} GROUP BY {groups}" if groups else sql


def partial_rows(shape: GroupShape, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows with each integer sum put back together from its two parts."""
    n = 2 * len(shape.keys) + 1
    out = []
    for row in rows:
        fixed = list(row[:n])
        for i in range(len(shape.fields)):
            high, low, count, others = row[n + 4 * i : n + 4 * i + 4]
            fixed.extend([((high or 0) << 32) + (low or 0), count, others])
        out.append(fixed)
    return out


__all__ = ["group_sql", "partial_rows"]
