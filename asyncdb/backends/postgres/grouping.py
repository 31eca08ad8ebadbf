"""The ``GROUP BY`` statement of a pushable ``$group`` on PostgreSQL (see
asyncdb/query/grouping.py).

Per key field its JSON type (a number split into integer and real by its text: the codec writes
every float with a ``.`` or an exponent, and jsonb keeps that) and text; per summed field the
exact ``numeric`` sum of its integer values, their count and the count of its other numbers and
objects (a Decimal is a tagged object). Field names are checked identifiers (``GroupShape``), so
they may sit in the SQL text; values never do.
"""

from __future__ import annotations

from asyncdb.query.grouping import GroupShape


def _kind(field: str) -> str:
    ref = f"(doc -> '{field}')"
    return (
        f"CASE jsonb_typeof({ref}) WHEN 'number' THEN "
        f"CASE WHEN (doc ->> '{field}') ~ '[.eE]' THEN 'real' ELSE 'integer' END "
        f"WHEN 'string' THEN 'text' WHEN 'boolean' THEN (doc ->> '{field}') "
        f"ELSE jsonb_typeof({ref}) END"
    )


def group_sql(shape: GroupShape, table: str, where: str) -> str:
    """``SELECT ... FROM table WHERE ... GROUP BY`` the key columns."""
    columns: list[str] = []
    for _, field in shape.keys:
        columns.append(_kind(field))
        columns.append(f"(doc ->> '{field}')")
    groups = ", ".join(str(i + 1) for i in range(len(columns)))
    columns.append("count(*)")
    for field in shape.fields:
        kind = _kind(field)
        value = f"CASE WHEN {kind} = 'integer' THEN (doc ->> '{field}')::numeric END"
        columns.append(f"sum({value})")
        columns.append(f"count({value})")
        columns.append(f"count(CASE WHEN {kind} IN ('real', 'object') THEN 1 END)")
    sql = f"SELECT {', '.join(columns)} FROM {table}{where}"
    return f"{sql} GROUP BY {groups}" if groups else sql


__all__ = ["group_sql"]
