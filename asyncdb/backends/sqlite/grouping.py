"""The ``GROUP BY`` statement of a pushable ``$group`` on SQLite (see asyncdb/query/grouping.py).

SQLite evaluates every occurrence of a JSON function again (no common subexpressions), so each
document's values are read once into a materialized CTE: per key field its JSON text (``->``: it
tells 1 from 1.0, true and "1" apart, and is NULL for a missing field), per summed field its
``json_type`` and value. The groups then add up the integers of each summed field in two parts
(the high and low 32 bits, neither can overflow SQLite's 64-bit ``SUM``, which raises instead of
widening), count them, and count the reals and objects (a Decimal is a tagged object). Field
names are checked identifiers (``GroupShape``), so the JSON paths may sit in the SQL text;
values never do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from asyncdb.query.grouping import GroupShape, json_key

# MATERIALIZED (SQLite 3.35+) keeps the CTE from being inlined; older versions get the same
# answer, only slower.
_MATERIALIZED = "MATERIALIZED " if sqlite3.sqlite_version_info >= (3, 35, 0) else ""


def group_sql(shape: GroupShape, table: str, where: str) -> str:
    """``WITH r AS MATERIALIZED (...) SELECT ... FROM r GROUP BY`` the key columns."""
    inner: list[str] = []
    outer: list[str] = []
    for i, (_, field) in enumerate(shape.keys):
        inner.append(f"doc -> '$.{field}' AS k{i}")
        outer.append(f"k{i}")
    groups = ", ".join(str(i + 1) for i in range(len(outer)))
    outer.append("count(*)")
    for i, field in enumerate(shape.fields):
        inner.append(f"json_type(doc, '$.{field}') AS t{i}")
        inner.append(f"json_extract(doc, '$.{field}') AS v{i}")
        value = f"CASE t{i} WHEN 'integer' THEN v{i} END"
        outer.append(f"sum(({value}) >> 32)")
        outer.append(f"sum(({value}) & 4294967295)")
        outer.append(f"count({value})")
        outer.append(f"count(CASE WHEN t{i} IN ('real', 'object') THEN 1 END)")
    rows = f"SELECT {', '.join(inner) or '1'} FROM {table}{where}"
    sql = f"WITH r AS {_MATERIALIZED}({rows}) SELECT {', '.join(outer)} FROM r"
    return f"{sql} GROUP BY {groups}" if groups else sql


def partial_rows(shape: GroupShape, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows as ``merge_partials`` takes them: each key as its type and value, each integer
    sum put back together from its two parts."""
    n = len(shape.keys)
    out = []
    for row in rows:
        fixed: list[Any] = []
        for text in row[:n]:
            fixed.extend(json_key(text))
        fixed.append(row[n])
        for i in range(len(shape.fields)):
            high, low, count, others = row[n + 1 + 4 * i : n + 5 + 4 * i]
            fixed.extend([((high or 0) << 32) + (low or 0), count, others])
        out.append(fixed)
    return out


__all__ = ["group_sql", "partial_rows"]
