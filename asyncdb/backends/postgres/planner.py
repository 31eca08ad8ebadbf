"""Filter AST -> PostgreSQL SQL over a ``jsonb`` document column (pure; compiled per call: no
per-shape cache yet, asyncpg caches the prepared statements).

A collection is a table: key columns ``k0..`` (``bytea``, the memcomparable BSON encoding of the
key value, so ``ORDER BY`` on them is BSON order and 1 and "1" stay apart), the document as
stored JSON text ``body`` (jsonb would reorder its fields), the same as ``jsonb`` in ``doc``
(generated from ``body``; the queries use it) and ``tagged`` (1 when the text holds a tag).

Each top-level conjunct compiles to SQL that selects exactly its matches, or a superset of them
(then it is also in the residual that ``base.py`` re-checks in process), or nothing (``TRUE``,
all residual). Values are always bound parameters (``$n``); a JSON path is SQL/JSON path text
whose variables (``$v``) come from a bound ``jsonb`` parameter, and the path text itself is a
bound ``jsonpath`` parameter when any part of it is not a plain identifier.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.types import CollectionSpec, Query
>>> plan = PostgresPlanner(CollectionSpec("t")).plan(Query(parse_filter({"id": "a1"})))
>>> plan.native["sql"], plan.access_path
('SELECT body, tagged FROM "t" WHERE "k0" = ANY($1::bytea[])', 'key')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncdb.backends.base import KeyTuple, conjoin, conjuncts, indexed_path, key_lookup
from asyncdb.backends.postgres.codec import encode_key
from asyncdb.backends.postgres.jsonpath import Compiled, compile_term
from asyncdb.errors import ConfigurationError
from asyncdb.query.ast import MatchAll, Node, Sort
from asyncdb.types import CollectionSpec, Index, Plan, Query


@dataclass(slots=True)
class Statement:
    """What ``rows`` runs: the SELECT and its parameters, the WHERE alone (for COUNT, DELETE and
    UPDATE), and whether it reads by key or a bounded number of rows."""

    sql: str
    params: list[Any]
    where: str
    where_params: list[Any]
    by_key: bool
    bounded: int | None


def quote_ident(name: str) -> str:
    """Double-quote an identifier (names are validated ``[A-Za-z0-9_-]``; quotes are refused)."""
    if '"' in name or "\x00" in name:
        raise ConfigurationError(f"invalid identifier {name!r}")
    return f'"{name}"'


class _Params:
    """Hands out placeholder tokens; ``render`` numbers the ones a SQL text uses ``$1..$n`` in
    order (a term compiled but then dropped, like a partial ``$in``, leaves unused values)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"\x00{len(self.values) - 1}\x00{cast}"

    def render(self, sql: str) -> tuple[str, list[Any]]:
        used: list[Any] = []
        numbers: dict[str, str] = {}

        def number(match: re.Match[str]) -> str:
            got = numbers.get(match.group(1))
            if got is None:
                used.append(self.values[int(match.group(1))])
                got = numbers[match.group(1)] = f"${len(used)}"
            return got

        return _TOKEN.sub(number, sql), used


_TOKEN = re.compile("\x00([0-9]+)\x00")


def _key_where(keys: list[KeyTuple], spec: CollectionSpec, params: _Params) -> str:
    if spec.single_key:
        return f'"k0" = ANY({params.add([encode_key(k[0]) for k in keys], "::bytea[]")})'
    alts = []
    for key in keys:
        parts = [f'"k{i}" = {params.add(encode_key(v))}' for i, v in enumerate(key)]
        alts.append("(" + " AND ".join(parts) + ")")
    return alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"


def _key_order(sort: Sort, spec: CollectionSpec) -> str | None:
    """``ORDER BY`` on key columns when the sort is on key fields only (bytea order is BSON
    order for key values)."""
    cols = []
    for k in sort:
        if len(k.path) != 1 or k.path[0] not in spec.key:
            return None
        cols.append(f'"k{spec.key.index(k.path[0])}" {"ASC" if k.direction == 1 else "DESC"}')
    return ", ".join(cols)


class PostgresPlanner:
    """Plans the queries of one collection (see the module docstring)."""

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.table = quote_ident(spec.name)

    def plan(self, query: Query, *, explain: bool = True) -> Plan:
        """The plan of ``query``: SQL, parameters, exact/approximate/residual split, access."""
        params = _Params()
        where: list[str] = []
        exact_terms: list[Node] = []
        approx_terms: list[Node] = []
        residual_terms: list[Node] = []
        keys = key_lookup(query.filter, self.spec)
        key_fields = set(self.spec.key) if keys is not None else set()
        if keys is not None:
            where.append(_key_where(keys, self.spec, params))
        for term in conjuncts(query.filter):
            if keys is not None and _is_key_term(term, key_fields):
                exact_terms.append(term)
                continue
            compiled: Compiled | None = compile_term(term, params.add)
            if compiled is None:
                residual_terms.append(term)
                continue
            where.append(compiled.sql)
            if compiled.exact:
                exact_terms.append(term)
            else:
                approx_terms.append(term)
                residual_terms.append(term)
        residual = conjoin(residual_terms) if residual_terms else None
        where_sql = " WHERE " + " AND ".join(where) if where else ""
        sql = f"SELECT body, tagged FROM {self.table}{where_sql}"
        sort_pushed = False
        client_sort = False
        if query.sort:
            order = _key_order(query.sort, self.spec) if query.after is None else None
            if order is not None:
                sql += f" ORDER BY {order}"
                sort_pushed = True
            else:
                client_sort = True
        limit_pushed = (
            residual is None
            and not client_sort
            and query.after is None
            and (query.limit is not None or query.skip > 0)
        )
        if limit_pushed:
            if query.limit is not None:
                sql += f" LIMIT {params.add(query.limit)}"
            if query.skip:
                sql += f" OFFSET {params.add(query.skip)}"
        sql, sql_params = params.render(sql)
        where_sql, where_params = params.render(where_sql)
        if keys is not None:
            access = "key"
        else:
            found = indexed_path(query.filter, self.spec)
            access = found if found is not None else "scan"
        statement = Statement(
            sql,
            sql_params,
            where_sql,
            where_params,
            keys is not None,
            query.limit if limit_pushed else (len(keys) if keys is not None else None),
        )
        return Plan(
            backend="postgres",
            collection=self.spec.name,
            access_path=access,
            native={"sql": sql, "params": sql_params},
            exact=conjoin(exact_terms).to_mongo() if explain and exact_terms else None,
            approximate=conjoin(approx_terms).to_mongo() if explain and approx_terms else None,
            residual=residual.to_mongo() if explain and residual is not None else None,
            sort_pushed=sort_pushed,
            limit_pushed=limit_pushed,
            client_sort=client_sort,
            residual_node=residual,
            payload=statement,
        )


def _is_key_term(term: Node, key_fields: set[str]) -> bool:
    path = getattr(term, "path", None)
    return (
        not isinstance(term, MatchAll)
        and path is not None
        and len(path) == 1
        and path[0] in key_fields
        and type(term).__name__ in ("Eq", "In")
    )


_INDEX_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def schema(spec: CollectionSpec) -> list[str]:
    """The DDL of a collection (idempotent): the table, a GIN ``jsonb_path_ops`` index on the
    document when indexes are declared (it serves the ``@?`` equality paths), and a btree
    expression index per declared index (the values at its paths)."""
    table = quote_ident(spec.name)
    keys = ", ".join(f'"k{i}"' for i in range(len(spec.key)))
    key_cols = ", ".join(f'"k{i}" bytea NOT NULL' for i in range(len(spec.key)))
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {table} ({key_cols}, body text NOT NULL, "
        "doc jsonb GENERATED ALWAYS AS (body::jsonb) STORED, "
        f"tagged smallint NOT NULL DEFAULT 0, PRIMARY KEY ({keys}))"
    ]
    if spec.indexes or spec.ttl is not None:
        stmts.append(
            f'CREATE INDEX IF NOT EXISTS "{spec.name}:gin" ON {table} '
            "USING gin (doc jsonb_path_ops)"
        )
    for index in spec.indexes:
        stmts.append(_index_statement(spec, index))
    return stmts


def _index_statement(spec: CollectionSpec, index: Index) -> str:
    if not _INDEX_NAME.fullmatch(index.name):
        raise ConfigurationError(f"invalid index name {index.name!r}: use [A-Za-z0-9_-]")
    exprs = ", ".join(_path_expr(p) for p in index.paths)
    return (
        f'CREATE INDEX IF NOT EXISTS "{spec.name}:{index.name}" ON {quote_ident(spec.name)} '
        f"({exprs})"
    )


def _path_expr(path: Sequence[str]) -> str:
    # Index field names are validated [A-Za-z0-9_-]: safe inside a quoted text[] literal.
    return "(doc #> '{" + ",".join(f'"{p}"' for p in path) + "}')"


__all__ = ["PostgresPlanner", "Statement", "quote_ident", "schema"]
