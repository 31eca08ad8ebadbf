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

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from asyncdb._tagged_json import iso_date  # the text of postgres.codec.iso_date
from asyncdb.backends.base import (
    KeyTuple,
    conjoin,
    conjuncts,
    field_heads,
    indexed_path,
    key_lookup,
    projected_fields,
)
from asyncdb.backends.postgres.codec import encode_key
from asyncdb.backends.postgres.jsonpath import Compiled, compile_term, path_text, value_test
from asyncdb.errors import ConfigurationError, QueryError
from asyncdb.query.ast import (
    Cmp,
    Eq,
    FieldNode,
    In,
    MatchAll,
    Node,
    Not,
    Path,
    Sort,
    SortKey,
)
from asyncdb.query.plancache import flat_terms, holds_float, holds_slot, rebound
from asyncdb.query.sort import field_key, split_sort_key
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

    def render(self, sql: str) -> tuple[str, list[int]]:
        """``sql`` with its tokens numbered ``$1..$n`` and the indexes of the values they use."""
        used: list[int] = []
        numbers: dict[str, str] = {}

        def number(match: re.Match[str]) -> str:
            got = numbers.get(match.group(1))
            if got is None:
                used.append(int(match.group(1)))
                got = numbers[match.group(1)] = f"${len(used)}"
            return got

        return _TOKEN.sub(number, sql), used

    def pick(self, used: list[int]) -> list[Any]:
        values = self.values
        return [values[i] for i in used]


@dataclass(frozen=True, slots=True)
class _Template:
    """What a query shape compiles to, apart from its values: the SQL texts, which values
    they bind, the access path and what is pushed down."""

    sql: str
    sql_used: list[int]
    where: str
    where_used: list[int]
    access: str
    sort_pushed: bool
    limit_pushed: bool
    client_sort: bool


_CACHE_SIZE = 512


_TOKEN = re.compile("\x00([0-9]+)\x00")


def _key_where(keys: list[KeyTuple], spec: CollectionSpec, params: _Params) -> str:
    if spec.single_key:
        return f'"k0" = ANY({params.add([encode_key(k[0]) for k in keys], "::bytea[]")})'
    alts = []
    for key in keys:
        parts = [f'"k{i}" = {params.add(encode_key(v))}' for i, v in enumerate(key)]
        alts.append("(" + " AND ".join(parts) + ")")
    return alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"


def sort_columns(spec: CollectionSpec) -> dict[Path, tuple[str, str]]:
    """The hidden sort-key columns of a collection: for each declared index path that is not a
    key field, two ``bytea`` columns holding the document's BSON sort key on that path
    ascending and descending (``asyncdb.query.sort.field_key``, written with the document).
    ``bytea`` compares with ``memcmp``, so ``ORDER BY`` on them is MongoDB's order, arrays and
    mixed types included, and a unique index on the ascending ones is BSON equality."""
    out: dict[Path, tuple[str, str]] = {}
    for index in spec.indexes:
        for path in index.paths:
            if (len(path) == 1 and path[0] in spec.key) or path in out:
                continue
            dotted = ".".join(path)
            # Identifiers hold 63 bytes; a long path gets a digest (names are [A-Za-z0-9_.-]).
            base = dotted if len(dotted) <= 56 else hashlib.sha1(dotted.encode()).hexdigest()[:24]
            out[path] = (f"s:{base}:a", f"s:{base}:d")
    return out


def sort_values(doc: dict[str, Any], columns: dict[Path, tuple[str, str]]) -> list[bytes]:
    """The values of the sort-key columns for ``doc``, in ``columns`` order (asc, desc)."""
    out: list[bytes] = []
    for path in columns:
        out.append(field_key(doc, path, 1))
        out.append(field_key(doc, path, -1))
    return out


def _order_columns(
    sort: Sort, spec: CollectionSpec, columns: dict[Path, tuple[str, str]]
) -> list[tuple[str, bool]] | None:
    """``(column, descending)`` per sort field when every field is a key field (its ``bytea``
    column is its BSON sort key; scalar, so DESC is the descending order) or has sort-key
    columns (always ascending: the descending column holds the inverted key); else None."""
    out: list[tuple[str, bool]] = []
    for k in sort:
        if len(k.path) == 1 and k.path[0] in spec.key:
            out.append((f'"k{spec.key.index(k.path[0])}"', k.direction == -1))
        elif k.path in columns:
            asc, desc = columns[k.path]
            out.append((quote_ident(asc if k.direction == 1 else desc), False))
        else:
            return None
    return out


def _after_condition(
    order: list[tuple[str, bool]], sort: Sort, after: bytes, params: _Params
) -> str:
    """Rows strictly after a keyset position (the ``sort_key`` of the previous page's last
    document), compared column by column in the columns' own order."""
    try:
        parts = split_sort_key(after, tuple(k.direction for k in sort))
    except (ValueError, IndexError):
        raise QueryError("the page cursor does not match this sort", path="cursor") from None
    values = [
        p.translate(_INVERT) if desc else p for (_c, desc), p in zip(order, parts, strict=True)
    ]
    if not any(desc for _c, desc in order):
        cols = ", ".join(c for c, _d in order)
        bound = ", ".join(params.add(v, "::bytea") for v in values)
        return f"({cols}) > ({bound})"
    alts = []
    for i, ((col, desc), value) in enumerate(zip(order, values, strict=True)):
        same = [
            f"{c} = {params.add(v, '::bytea')}"
            for (c, _d), v in zip(order[:i], values[:i], strict=True)
        ]
        step = f"{col} {'<' if desc else '>'} {params.add(value, '::bytea')}"
        alts.append("(" + " AND ".join([*same, step]) + ")")
    return "(" + " OR ".join(alts) + ")"


_INVERT = bytes(255 - i for i in range(256))


class PostgresPlanner:
    """Plans the queries of one collection (see the module docstring)."""

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.table = quote_ident(spec.name)
        self.sort_columns = sort_columns(spec)
        self._templates: dict[Any, _Template] = {}

    def plan(self, query: Query, *, explain: bool = True) -> Plan:
        """The plan of ``query``: SQL, parameters, exact/approximate/residual split, access.

        Each conjunct is compiled (its jsonpath parameters hold its values); the SQL around
        them is cached per shape. The shape is what compiling produced without the values:
        each conjunct's type, path and SQL text with placeholder tokens (or residual), the key
        lookup, the sort and which of skip, limit and a keyset position are set. Values that
        compile differently (an inexact float, a partial ``$in``) give different SQL text, so
        a cached entry is only ever reused for SQL it would have built again."""
        return self._planned(query, explain)[0]

    def _planned(self, query: Query, explain: bool) -> tuple[Plan, _Template, int]:
        """The plan, its template and how many values the filter's terms bound."""
        params = _Params()
        where: list[str] = []
        exact_terms: list[Node] = []
        approx_terms: list[Node] = []
        residual_terms: list[Node] = []
        shape: list[Any] = []
        keys = key_lookup(query.filter, self.spec)
        key_fields = set(self.spec.key) if keys is not None else set()
        if keys is not None:
            key_sql = _key_where(keys, self.spec, params)
            where.append(key_sql)
            shape.append(key_sql)
        for term in conjuncts(query.filter):
            path = getattr(term, "path", None)
            if keys is not None and _is_key_term(term, key_fields):
                exact_terms.append(term)
                shape.append((type(term), path, True))
                continue
            compiled: Compiled | None = compile_term(term, params.add)
            shape.append((type(term), path, compiled))
            if compiled is None:
                residual_terms.append(term)
                continue
            bound = _key_column_bound(term, self.spec, params)
            if bound is not None:
                where.append(bound)
                shape.append(bound)
            where.append(compiled.sql)
            if compiled.exact:
                exact_terms.append(term)
            else:
                approx_terms.append(term)
                residual_terms.append(term)
        residual = conjoin(residual_terms) if residual_terms else None
        fields = None
        if query.projection is not None:
            needed = field_heads(residual) | {k.path[0] for k in query.sort}
            fields = projected_fields(query.projection, self.spec, needed)
        cache_key = (
            tuple(shape),
            len(params.values),  # a dropped compilation (a partial $in) leaves values bound
            query.sort,
            query.after is not None,
            query.limit is not None,
            query.skip > 0,
            None if fields is None else fields[0],
        )
        template = self._templates.get(cache_key)
        if template is None:
            template = self._template(
                query,
                where,
                params,
                residual,
                keys is not None,
                None if fields is None else fields[0],
            )
            if len(self._templates) >= _CACHE_SIZE:
                self._templates.clear()
            self._templates[cache_key] = template
        elif template.sort_pushed and query.after is not None:
            order = _order_columns(query.sort, self.spec, self.sort_columns)
            assert order is not None
            _after_condition(order, query.sort, query.after, params)
        bound_by_terms = len(params.values)
        if template.limit_pushed:
            if query.limit is not None:
                params.add(query.limit)
            if query.skip:
                params.add(query.skip)
        if fields is not None:
            params.add(list(fields[1]))
        sql_params = params.pick(template.sql_used)
        statement = Statement(
            template.sql,
            sql_params,
            template.where,
            params.pick(template.where_used),
            keys is not None,
            query.limit if template.limit_pushed else (len(keys) if keys is not None else None),
        )
        plan = Plan(
            backend="postgres",
            collection=self.spec.name,
            access_path=template.access,
            native={"sql": template.sql, "params": sql_params},
            exact=conjoin(exact_terms).to_mongo() if explain and exact_terms else None,
            approximate=conjoin(approx_terms).to_mongo() if explain and approx_terms else None,
            residual=residual.to_mongo() if explain and residual is not None else None,
            sort_pushed=template.sort_pushed,
            limit_pushed=template.limit_pushed,
            client_sort=template.client_sort,
            residual_node=residual,
            payload=statement,
        )
        return plan, template, bound_by_terms

    def binder(self, query: Query) -> Callable[[Query], Plan] | None:
        """``plan(q, explain=False)`` for every ``q`` of the raw shape of ``query`` (see
        :mod:`asyncdb.query.plancache`), or None for the shapes it does not serve: an AND of
        field conditions that all compile exactly, none on a key field, not pinned to keys,
        without a keyset position or a float operand (whether a float's shortest text is
        its exact value decides its SQL). The SQL is the shape's; per call each term's
        jsonpath parameters are written from its new values (``jsonpath._value_test``, the
        text compiling writes) and picked as the shape's statement uses them."""
        terms = flat_terms(query.filter)
        if (
            not terms
            or query.after is not None
            or key_lookup(query.filter, self.spec) is not None
            or holds_float(terms)
        ):
            return None
        makers: list[Callable[[Any], list[Any]]] = []
        for term in terms:
            path = getattr(term, "path", ())
            if path and path[0] in self.spec.key:
                return None  # a key column bound may go beside it
            recorded = _Params()
            compiled = compile_term(term, recorded.add)
            if compiled is None or not compiled.exact:
                return None
            maker = _param_maker(term)
            if maker is None or maker(term) != recorded.values:
                return None
            makers.append(maker)
        first, template, count = self._planned(query, False)
        if first.residual_node is not None or count != sum(
            len(m(t)) for m, t in zip(makers, terms, strict=True)
        ):
            return None
        sql_used, where_used = template.sql_used, template.where_used
        sql, where, pushed = template.sql, template.where, template.limit_pushed
        heads = {k.path[0] for k in query.sort}
        found = projected_fields(query.projection, self.spec, heads)
        fields = None if found is None else found[1]
        by_key = first.payload.by_key

        def bind(q: Query) -> Plan:
            values: list[Any] = []
            for m, t in zip(makers, flat_terms(q.filter), strict=True):
                values += m(t)
            if pushed:
                if q.limit is not None:
                    values.append(q.limit)
                if q.skip:
                    values.append(q.skip)
            if fields is not None:
                values.append(list(fields))
            sql_params = [values[i] for i in sql_used]
            statement = Statement(
                sql,
                sql_params,
                where,
                [values[i] for i in where_used],
                by_key,
                q.limit if pushed else None,
            )
            return rebound(first, {"sql": sql, "params": sql_params}, None, statement)

        return bind

    def _template(
        self,
        query: Query,
        where: list[str],
        params: _Params,
        residual: Node | None,
        by_key: bool,
        include: bool | None,
    ) -> _Template:
        """Build the SQL of a new shape. Binds what follows the conjuncts (the keyset bound,
        then limit, skip and the projected fields) in the order ``plan`` binds them on a cached
        shape. ``include``: a projection keeps (True) or drops (False) whole top-level fields,
        as ``projected_fields`` says, or there is none (None)."""
        where_sql = " WHERE " + " AND ".join(where) if where else ""
        select_where = list(where)
        sort_pushed = False
        client_sort = False
        order = _order_columns(query.sort, self.spec, self.sort_columns) if query.sort else None
        if order is not None:
            sort_pushed = True
            if query.after is not None:
                select_where.append(_after_condition(order, query.sort, query.after, params))
        elif query.sort:
            client_sort = True
        sql = "SELECT {body}, tagged FROM " + self.table
        if select_where:
            sql += " WHERE " + " AND ".join(select_where)
        if order is not None:
            sql += " ORDER BY " + ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in order)
        limit_pushed = (
            residual is None
            and not client_sort
            and (query.after is None or sort_pushed)
            and (query.limit is not None or query.skip > 0)
        )
        # The limit and skip tokens come after every other value's, as on a cached shape.
        count = len(params.values)
        if limit_pushed:
            if query.limit is not None:
                sql += f" LIMIT \x00{count}\x00"
                count += 1
            if query.skip:
                sql += f" OFFSET \x00{count}\x00"
                count += 1
        sql = sql.replace("{body}", "body" if include is None else _projected_body(include, count))
        sql, sql_used = params.render(sql)
        where_sql, where_used = params.render(where_sql)
        if by_key:
            access = "key"
        else:
            found = indexed_path(query.filter, self.spec)
            access = found if found is not None else "scan"
        return _Template(
            sql, sql_used, where_sql, where_used, access, sort_pushed, limit_pushed, client_sort
        )


def _param_maker(term: Node) -> Callable[[Any], list[Any]] | None:
    """The jsonpath parameters ``compile_term`` binds for a term of ``term``'s shape, as a
    function of the term: an ``$eq``, ``$in`` or range on a string, an int or a date, also
    under ``$ne``/``$nin``; a term with no operand binds what it bound (constants)."""
    t = type(term)
    if not holds_slot(term):
        recorded = _Params()
        compile_term(term, recorded.add)
        fixed = recorded.values
        return lambda n: list(fixed)
    if t is Not:
        inner = _param_maker(term.child)  # type: ignore[attr-defined]
        return None if inner is None else (lambda n: inner(n.child))
    path = path_text(term.path) if isinstance(term, FieldNode) else None
    if path is None:
        return None
    if t is Eq or t is Cmp:
        value = term.value  # type: ignore[attr-defined]
        if type(value) not in _TEXTS:
            return None
        op = "==" if t is Eq else _SQL_OPS[term.op]  # type: ignore[attr-defined]
        test = _test_of(path, type(value), op)
        return lambda n: [test(n.value)]
    if t is In:
        kinds = {type(v) for v in term.values}  # type: ignore[attr-defined]
        if not kinds <= set(_TEXTS):
            return None
        if len(kinds) == 1:
            one = _test_of(path, kinds.pop(), "==")
            return lambda n: [one(v) for v in n.values]
        return lambda n: [f"{path} ? ({value_test(v, '==')})" for v in n.values]
    return None


def _test_of(path: str, kind: type, op: str) -> Callable[[Any], str]:
    """``lambda v: f"{path} ? ({value_test(v, op)})"`` for values of type ``kind`` (a str, an
    int or a datetime), with the text around the literal written once."""
    if kind is str:
        head = f'{path} ? (@.type() == "string" && @ {op} '
        return lambda v: head + orjson.dumps(v).decode() + ")"
    if kind is int:
        a = f'{path} ? ((@.type() == "number" && @ {op} '
        b = f') || (@.type() == "object" && @."$n" {op} '
        return lambda v: a + str(v) + b + str(v) + "))"
    assert kind is datetime
    head = f'{path} ? (@.type() == "object" && @."$date" {op} '
    return lambda v: head + orjson.dumps(iso_date(v)).decode() + ")"


_TEXTS = (str, int, datetime)
_SQL_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _projected_body(include: bool, token: int) -> str:
    """The stored text cut down to some top-level fields in SQL: ``json_each`` over the text as
    ``json`` (not ``jsonb``) keeps each value's text as written and the fields' order, so the
    result decodes to exactly what the stored document holds for them. The field names are the
    bound ``text[]`` value number ``token``."""
    test = "= ANY" if include else "<> ALL"
    return (
        "COALESCE((SELECT json_object_agg(e.key, e.value ORDER BY e.n) "
        "FROM json_each(body::json) WITH ORDINALITY AS e(key, value, n) "
        f"WHERE e.key {test}(\x00{token}\x00::text[])), '{{}}'::json)::text"
    )


_BOUND_OPS = {"$gt": ">=", "$gte": ">=", "$lt": "<=", "$lte": "<="}
_INT64 = range(-(2**63), 2**63)


def _key_column_bound(term: Node, spec: CollectionSpec, params: _Params) -> str | None:
    """A condition on a key column implied by ``term`` (an equality or a range on a key
    field), so PostgreSQL can use the primary key instead of scanning the JSON documents; the
    term's own JSON condition stays beside it and decides exactly.

    Why it never drops a matching row: a key field always holds a string, a 64-bit integer or
    a datetime, and its column is the memcomparable BSON encoding of that value (BSON order,
    types in BSON's bracket order). The bound is taken only for a string or 64-bit integer
    value (encoded exactly as a key of that type is), ranges use the inclusive comparison (a
    superset whatever the encoding's ties), and rows of other types the bound lets through are
    refused by the JSON condition. Datetime values are left to the JSON condition alone."""
    if not isinstance(term, Eq | Cmp):
        return None
    path = term.path
    if len(path) != 1 or path[0] not in spec.key:
        return None
    value = term.value
    t = type(value)
    if not (t is str or (t is int and value in _INT64)):
        return None
    column = f'"k{spec.key.index(path[0])}"'
    op = "=" if isinstance(term, Eq) else _BOUND_OPS[term.op]
    return f"{column} {op} {params.add(encode_key(value), '::bytea')}"


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
    """The DDL of a collection (idempotent): the table, its sort-key columns (added to a table
    created before an index was declared; ``ensure`` fills them), a GIN ``jsonb_path_ops``
    index on the document when indexes are declared (it serves the ``@?`` conditions), and a
    btree index per declared index on its sort-key columns, then the key columns (it serves
    ``ORDER BY ... LIMIT`` and keyset pages); a unique index is UNIQUE on the ascending sort
    keys alone: BSON equality, as on every backend (1 == 1.0, true != 1, missing == null)."""
    table = quote_ident(spec.name)
    keys = ", ".join(f'"k{i}"' for i in range(len(spec.key)))
    key_cols = ", ".join(f'"k{i}" bytea NOT NULL' for i in range(len(spec.key)))
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {table} ({key_cols}, body text NOT NULL, "
        "doc jsonb GENERATED ALWAYS AS (body::jsonb) STORED, "
        f"tagged smallint NOT NULL DEFAULT 0, PRIMARY KEY ({keys}))"
    ]
    columns = sort_columns(spec)
    for asc, desc in columns.values():
        stmts.append(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote_ident(asc)} bytea, "
            f"ADD COLUMN IF NOT EXISTS {quote_ident(desc)} bytea"
        )
    if spec.indexes or spec.ttl is not None:
        stmts.append(
            f'CREATE INDEX IF NOT EXISTS "{spec.name}:gin" ON {table} '
            "USING gin (doc jsonb_path_ops)"
        )
    for index in spec.indexes:
        stmts += _index_statements(spec, index, columns)
    return stmts


IDENTIFIER_BYTES = 63  # PostgreSQL truncates longer identifiers (NAMEDATALEN - 1)


def check_identifiers(spec: CollectionSpec) -> None:
    """The table and index names of a collection must fit PostgreSQL's identifiers: a longer
    one would be truncated, and two truncated index names would collide (``IF NOT EXISTS``
    then skips the second, a unique index among them). A ConfigurationError before any I/O."""
    names = [spec.name, f"{spec.name}:gin"]
    for index in spec.indexes:
        names += [f"{spec.name}:{index.name}", f"{spec.name}:{index.name}:r"]
    for name in names:
        if len(name.encode()) > IDENTIFIER_BYTES:
            raise ConfigurationError(
                f"identifier limit: PostgreSQL names hold {IDENTIFIER_BYTES} bytes, and "
                f"collection {spec.name!r} needs {name!r}: use a shorter collection or index name"
            )


def _index_statements(
    spec: CollectionSpec, index: Index, columns: dict[Path, tuple[str, str]]
) -> list[str]:
    """A unique index: UNIQUE on the ascending sort keys. Otherwise two btree indexes, on the
    sort-key columns of the declared directions and of their reverse (then the key columns),
    so that, as in MongoDB, an index serves its sort and the reversed sort; the descending
    column of an array holds its largest element, so one index cannot serve both."""
    if not _INDEX_NAME.fullmatch(index.name):
        raise ConfigurationError(f"invalid index name {index.name!r}: use [A-Za-z0-9_-]")
    table = quote_ident(spec.name)
    if index.unique:
        order = _order_columns(tuple(SortKey(p, 1) for p in index.paths), spec, columns)
        assert order is not None  # every index path has a key or sort-key column
        cols = ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in order)
        return [f'CREATE UNIQUE INDEX IF NOT EXISTS "{spec.name}:{index.name}" ON {table} ({cols})']
    stmts = []
    for flip, suffix in ((1, ""), (-1, ":r")):
        sort = tuple(
            SortKey(path, 1 if d * flip == 1 else -1)
            for path, (_f, d) in zip(index.paths, index.fields, strict=True)
        )
        order = _order_columns(sort, spec, columns)
        assert order is not None
        used = {c for c, _d in order}
        keys = [f'"k{i}"' for i in range(len(spec.key)) if f'"k{i}"' not in used]
        cols = ", ".join([*(f"{c} {'DESC' if d else 'ASC'}" for c, d in order), *keys])
        stmts.append(
            f'CREATE INDEX IF NOT EXISTS "{spec.name}:{index.name}{suffix}" ON {table} ({cols})'
        )
    return stmts


__all__ = [
    "IDENTIFIER_BYTES",
    "PostgresPlanner",
    "Statement",
    "check_identifiers",
    "quote_ident",
    "schema",
    "sort_columns",
    "sort_values",
]
