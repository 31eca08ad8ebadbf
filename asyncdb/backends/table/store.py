"""Table mode, the I/O half: asyncdb's Collection API over an existing SQLAlchemy ``Table``.

A :class:`TableStore` owns one SQLAlchemy ``AsyncEngine`` (``sqlite+aiosqlite`` or
``postgresql+asyncpg``), created lazily from the database URL; each ``Table`` becomes a
:class:`TableCollection`. Table mode creates nothing: the table must exist.

>>> # async with asyncdb.connect("sqlite:///app.db") as db:
>>> #     users = db.table(users_table, allow_scan=True)
>>> #     await users.update_one({"id": 7}, {"$inc": {"logins": 1}})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from asyncdb.backends.base import (
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    check_key,
    key_lookup,
)
from asyncdb.backends.table.compiler import (
    ColumnFitError,
    Dialect,
    SelectPayload,
    TableSchema,
    changed_condition,
    compile_update,
    count_statement,
    doc_to_row,
    plan_query,
    row_to_doc,
    split_filter,
    to_column,
)
from asyncdb.errors import (
    BackendError,
    ConfigurationError,
    DuplicateKey,
    NotSupported,
    QueryError,
    TransactionError,
    UpdateError,
)
from asyncdb.query.ast import Node, Sort, Update
from asyncdb.query.sort import sort_key
from asyncdb.types import Capabilities, CollectionSpec, Index, Plan, Query, UpdateResult

_DRIVERS: dict[str, tuple[Dialect, str]] = {
    "sqlite": ("sqlite", "sqlite+aiosqlite"),
    "postgresql": ("postgresql", "postgresql+asyncpg"),
    "postgres": ("postgresql", "postgresql+asyncpg"),
}
# Rows per multi-VALUES INSERT statement: far below the bound-parameter limits of both.
_INSERT_PARAMS = 30_000


def sqlalchemy_url(url: str) -> tuple[Dialect, str]:
    """The dialect and SQLAlchemy async URL for an asyncdb URL (``sqlite:///x.db`` ->
    ``sqlite+aiosqlite:///x.db``); NotSupported for any other scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DRIVERS:
        raise NotSupported(
            f"table mode runs on sqlite:// and postgresql:// databases, not {scheme}://"
        )
    dialect, driver = _DRIVERS[scheme]
    # The query string holds asyncdb's own options (busy_timeout, ...), not the driver's.
    rest = url[len(parts.scheme) :].split("?", 1)[0]
    return dialect, driver + rest


class TableSession(Session):
    """A write section or user transaction: one SQLAlchemy connection inside BEGIN."""

    def __init__(self, conn: AsyncConnection, *, transaction: bool) -> None:
        self.conn = conn
        self.in_transaction = transaction
        self.open = True

    def check(self) -> AsyncConnection:
        if not self.open:
            raise TransactionError("this transaction has already finished")
        return self.conn


def _db_error(exc: sa_exc.DBAPIError, what: str) -> Exception:
    text = str(exc.orig if exc.orig is not None else exc)
    lowered = text.lower()
    if isinstance(exc, sa_exc.IntegrityError) and ("unique" in lowered or "duplicate" in lowered):
        return DuplicateKey(f"{what}: a row with this key already exists ({text})")
    if "serializ" in lowered or "deadlock" in lowered or "database is locked" in lowered:
        return TransactionError(f"{what}: {text}")
    return BackendError(f"{what}: {text}")


class TableStore(Store):
    """The tables of one SQL database, through one lazily created SQLAlchemy AsyncEngine.

    ``TableStore.for_url(url)`` picks the dialect's subclass. ``Database.table(t)`` keeps one
    per database (closed with it); ``asyncdb.connect(url, tables_only=True)`` makes it the
    database's own store, so ``db.transaction()`` is a table transaction.
    """

    name: ClassVar[str] = "table"
    dialect: ClassVar[Dialect]
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactions=True,
        server_side_sort=True,
        regex_pushdown=True,  # literal and ^-anchored literal patterns
        keyset_pagination=True,
        bulk_insert=True,
    )

    def __init__(self, url: str, engine_url: str) -> None:
        self.url = url
        self._engine_url = engine_url
        self._engine: AsyncEngine | None = None
        self._schemas: dict[int, TableSchema] = {}

    @classmethod
    def for_url(cls, url: str) -> TableStore:
        """The table store of a ``sqlite://`` or ``postgresql://`` URL (no I/O yet)."""
        dialect, engine_url = sqlalchemy_url(url)
        store_cls: type[TableStore] = SQLiteTables if dialect == "sqlite" else PostgresTables
        return store_cls(url, engine_url)

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        store = cls.for_url(url)
        if options:
            raise ConfigurationError(f"unknown table-mode options {sorted(options)}")
        if not isinstance(store, cls):
            raise ConfigurationError(f"{url!r} is not a {cls.name} URL")
        return store

    @property
    def engine(self) -> AsyncEngine:
        """The AsyncEngine, created on first use."""
        if self._engine is None:
            if self.dialect == "sqlite":
                in_memory = ":memory:" in self._engine_url or self._engine_url.endswith(":///")
                self._engine = create_async_engine(
                    self._engine_url,
                    connect_args={"timeout": 30},
                    **({"poolclass": StaticPool} if in_memory else {}),
                )
                _begin_explicitly(self._engine)
            else:
                self._engine = create_async_engine(self._engine_url)
        return self._engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def collection(self, spec: CollectionSpec) -> StoreCollection:
        raise NotSupported(
            "a tables-only database has no document collections: use db.table(sqlalchemy_table)"
        )

    def table(self, table: sa.Table, *, allow_scan: bool, max_scan: int) -> TableCollection:
        """The collection over ``table`` (its primary key is the key)."""
        if not isinstance(table, sa.Table):
            raise ConfigurationError(f"db.table() needs a sqlalchemy.Table, not {table!r}")
        if isinstance(max_scan, bool) or not isinstance(max_scan, int) or max_scan < 1:
            raise ConfigurationError("max_scan must be a positive integer")
        schema = self._schemas.get(id(table))
        if schema is None or schema.table is not table:
            schema = TableSchema.of(table, self.dialect)
            self._schemas[id(table)] = schema
        spec = CollectionSpec(
            table.name, schema.key, _indexes_of(table), None, bool(allow_scan), max_scan
        )
        return TableCollection(self, spec, schema)

    @asynccontextmanager
    async def _section(self, session: Session | None, *, transaction: bool) -> AsyncIterator[Any]:
        if isinstance(session, TableSession):
            session.check()
            yield session
            return
        if session is not None:
            raise TransactionError("a document transaction cannot carry table collections")
        try:
            async with self.engine.connect() as conn:
                await conn.execution_options(asyncdb_write=True)
                async with conn.begin():
                    s = TableSession(conn, transaction=transaction)
                    try:
                        yield s
                    finally:
                        s.open = False
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc, "transaction") from None

    def transaction(self) -> Any:
        """``async with store.transaction() as session``: BEGIN ... COMMIT on one connection
        (ROLLBACK if the block raises)."""
        return self._section(None, transaction=True)

    def atomic(self, session: Session | None) -> Any:
        return self._section(session, transaction=False)


def _begin_explicitly(engine: AsyncEngine) -> None:
    """SQLite: the driver's own BEGIN comes only before a write, so a read-modify-write would
    read outside its transaction. Take over BEGIN (SQLAlchemy's pysqlite recipe): a write
    section starts with BEGIN IMMEDIATE (writers queue on the lock instead of losing updates),
    a read with a deferred BEGIN."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("asyncdb_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class SQLiteTables(TableStore):
    """Table mode on SQLite (aiosqlite)."""

    name: ClassVar[str] = "sqlite-tables"
    dialect: ClassVar[Dialect] = "sqlite"


class PostgresTables(TableStore):
    """Table mode on PostgreSQL (asyncpg)."""

    name: ClassVar[str] = "postgresql-tables"
    dialect: ClassVar[Dialect] = "postgresql"


def _indexes_of(table: sa.Table) -> tuple[Index, ...]:
    """The table's declared indexes and unique constraints, for the scan policy."""
    out: list[Index] = []
    groups: list[tuple[list[str], bool, str]] = []
    for index in table.indexes:
        names = [c.name for c in index.columns]
        groups.append((names, bool(index.unique), str(index.name or "")))
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            groups.append(([c.name for c in constraint.columns], True, str(constraint.name or "")))
    for names, unique, name in groups:
        try:
            out.append(Index.of({"fields": names, "unique": unique, "name": name}))
        except Exception:  # a column name the query language cannot spell: not usable anyway
            continue
    return tuple(out)


class TableCollection(StoreCollection):
    """One existing table as a collection: documents are column name -> value, NULL columns
    are missing fields, the primary key is the key."""

    table_mode = True

    store: TableStore

    def __init__(self, store: TableStore, spec: CollectionSpec, schema: TableSchema) -> None:
        self.store = store
        self.spec = spec
        self.schema = schema
        self.table = schema.table
        cols = self.table.c
        self._get_stmt = sa.select(self.table).where(
            *(cols[k] == sa.bindparam(f"k{i}") for i, k in enumerate(spec.key))
        )

    async def ensure(self) -> None:
        """Nothing: table mode works over an existing table and creates nothing."""

    def plan(self, query: Query) -> Plan:
        plan = plan_query(self.schema, self.spec, query, self.store.name)
        return _with_sql(plan, self.store)

    def execution_plan(self, query: Query) -> Plan:
        return plan_query(self.schema, self.spec, query, self.store.name)

    def _key_where(self, doc: Mapping[str, Any]) -> Any:
        cols = self.table.c
        return sa.and_(*(cols[k] == doc[k] for k in self.spec.key))

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        payload: SelectPayload = plan.payload
        stmt = payload.stmt
        if (
            self.store.dialect == "postgresql"
            and isinstance(session, TableSession)
            and not session.in_transaction
        ):
            stmt = stmt.with_for_update()  # a write section's read-modify-write locks its rows
        after, sort = payload.after, payload.sort
        if isinstance(session, TableSession):
            result = await self._run_stream(session.check(), stmt)
            async for doc in self._docs(result, after, sort):
                yield doc
            return
        try:
            async with self.store.engine.connect() as conn:
                result = await self._run_stream(conn, stmt)
                async for doc in self._docs(result, after, sort):
                    yield doc
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc, f"read of {self.spec.name!r}") from None

    async def _run_stream(self, conn: AsyncConnection, stmt: sa.Select[Any]) -> Any:
        try:
            return await conn.stream(stmt)
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc, f"read of {self.spec.name!r}") from None

    async def _docs(self, result: Any, after: bytes | None, sort: Sort) -> AsyncIterator[Doc]:
        async for row in result.mappings():
            doc = row_to_doc(self.schema, row)
            if after is not None:
                if sort_key(doc, sort) <= after:
                    continue
                after = None  # rows arrive in sort order: the rest lie beyond the position
            yield doc

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        """``SELECT count(*)`` when SQL evaluates the whole filter."""
        query = Query(self.visible(node))
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        stmt = count_statement(plan)
        if stmt is None:
            return await super().count(node, session, allow_scan=allow_scan)
        async with self.store._section(session, transaction=False) as s:
            try:
                n = (await s.check().execute(stmt)).scalar_one()
            except sa_exc.DBAPIError as exc:
                raise _db_error(exc, f"count of {self.spec.name!r}") from None
        return int(n)

    def _rows_for(self, docs: list[Doc], *, insert: bool) -> list[dict[str, Any]]:
        return [doc_to_row(self.schema, doc, insert=insert) for doc in docs]

    def assigns_keys(self, docs: list[Doc]) -> bool:
        """Check the keys of documents about to be inserted (a QueryError before any I/O) and
        say whether the database assigns some: only an autoincrement key (see
        ``autoincrement_column``) may be left out (or None); no key is ever invented. An explicit
        key of a ``GENERATED ALWAYS`` identity is refused on both dialects (PostgreSQL would
        reject it; SQLite ignores Identity, but the table says the database owns the key)."""
        auto = self.schema.autoincrement
        assigned = False
        for doc in docs:
            if auto is not None:
                if doc.get(auto) is None:
                    assigned = True
                    continue
                if self.schema.identity_always:
                    raise QueryError(
                        f"column {auto!r} of table {self.spec.name!r} is GENERATED ALWAYS AS"
                        " IDENTITY: the database assigns it, leave it out of the document",
                        path=auto,
                    )
            for field in self.spec.key:
                if field not in doc:
                    raise QueryError(
                        f"the document lacks its key field: the primary key of table"
                        f" {self.spec.name!r} is not an autoincrement integer, so the database"
                        " does not assign it",
                        path=field,
                    )
            check_key(doc, self.spec)
        return assigned

    async def insert(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        """Insert all or nothing and return the keys in the documents' order. Keys the
        database assigns (an autoincrement key left out) come back from INSERT ... RETURNING."""
        if not self.assigns_keys(docs):
            return await super().insert(docs, session)
        auto = self.schema.autoincrement
        assert auto is not None
        given = [doc[auto] for doc in docs if doc.get(auto) is not None]
        if len(set(given)) != len(given):
            dup = next(k for k in given if given.count(k) > 1)
            raise DuplicateKey(f"the batch holds the key {(dup,)!r} twice", key=(dup,))
        rows = self._rows_for(docs, insert=True)  # every value checked before any write
        for row, doc in zip(rows, docs, strict=True):
            if doc.get(auto) is None:
                row.pop(auto, None)  # left out: the database assigns it
        column = self.table.c[auto]
        keys: list[KeyTuple] = []
        async with self.store._section(session, transaction=False) as s:
            conn = s.check()
            try:
                for batch in _returning_batches(rows):
                    if len(batch) == 1:
                        stmt = sa.insert(self.table).values(batch[0]).returning(column)
                        result = await conn.execute(stmt)
                    else:  # executemany; SQLAlchemy matches RETURNING rows to the parameters
                        stmt = sa.insert(self.table).returning(column, sort_by_parameter_order=True)
                        result = await conn.execute(stmt, batch)
                    keys.extend((value,) for value in result.scalars().all())
            except sa_exc.DBAPIError as exc:
                raise _db_error(exc, f"insert into {self.spec.name!r}") from None
        return keys

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        rows = self._rows_for(docs, insert=True)  # every value checked before any write
        async with self.store._section(session, transaction=False) as s:
            conn = s.check()
            try:
                for chunk in _chunks(rows):
                    if _uniform(chunk):
                        await conn.execute(sa.insert(self.table), chunk)  # executemany
                    else:
                        await conn.execute(sa.insert(self.table).values(chunk))
            except sa_exc.DBAPIError as exc:
                raise _db_error(exc, f"insert into {self.spec.name!r}") from None

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        try:
            rows = [doc_to_row(self.schema, new, insert=False) for _old, new in pairs]
        except ColumnFitError as exc:
            raise UpdateError(exc.reason, path=exc.path) from None
        conn = session.check() if isinstance(session, TableSession) else None
        assert conn is not None
        try:
            for (old, _new), row in zip(pairs, rows, strict=True):
                values = {k: v for k, v in row.items() if k not in self.spec.key}
                if values:
                    await conn.execute(
                        sa.update(self.table).where(self._key_where(old)).values(values)
                    )
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc, f"update of {self.spec.name!r}") from None

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        conn = session.check() if isinstance(session, TableSession) else None
        assert conn is not None
        cols = self.table.c
        try:
            for start in range(0, len(docs), 500):
                chunk = docs[start : start + 500]
                if self.spec.single_key:
                    k = self.spec.key[0]
                    cond: Any = cols[k].in_([d[k] for d in chunk])
                else:
                    cond = sa.or_(*(self._key_where(d) for d in chunk))
                await conn.execute(sa.delete(self.table).where(cond))
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc, f"delete from {self.spec.name!r}") from None

    def atomic(self, session: Session | None) -> Any:
        return self.store.atomic(session)

    async def update(
        self,
        node: Node,
        update: Update,
        *,
        multi: bool,
        upsert: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        sort: Sort = (),
        return_document: str | None = None,
    ) -> tuple[UpdateResult, Doc | None]:
        """One ``UPDATE ... SET`` when SQL evaluates the filter and the update exactly (see
        compile_update); otherwise read-modify-write in one transaction (rows locked on
        PostgreSQL). A value a column cannot hold is an UpdateError before anything is written."""
        if return_document is None and not sort:
            native = await self._native_update(node, update, multi, upsert, session, allow_scan)
            if native is not None:
                return native, None
        try:
            return await super().update(
                node,
                update,
                multi=multi,
                upsert=upsert,
                session=session,
                allow_scan=allow_scan,
                sort=sort,
                return_document=return_document,
            )
        except ColumnFitError as exc:  # from the upsert's insert
            raise UpdateError(exc.reason, path=exc.path) from None

    async def _native_update(
        self,
        node: Node,
        update: Update,
        multi: bool,
        upsert: bool,
        session: Session | None,
        allow_scan: bool | None,
    ) -> UpdateResult | None:
        values = compile_update(update, self.schema)
        if values is None or not values:
            return None
        if not multi:
            keys = key_lookup(node, self.spec)
            if keys is None or len(keys) != 1:
                return None  # UPDATE has no LIMIT: one row only when the key pins it
        query = Query(self.visible(node))
        plan = self.execution_plan(query)
        if plan.residual_node is not None:
            return None
        self.check_scan(plan, query, allow_scan)
        split = split_filter(query.filter, self.schema)
        where = split.where if split.where is not None else sa.true()
        count = sa.select(sa.func.count()).select_from(self.table).where(where)
        stmt = (
            sa.update(self.table)
            .where(where, changed_condition(self.schema, values))
            .values(values)
        )
        async with self.store.atomic(session) as s:
            conn = s.check()
            try:
                matched = int((await conn.execute(count)).scalar_one())
                if matched == 0 and upsert:
                    return None  # nothing to update: the shared path upserts
                modified = (await conn.execute(stmt)).rowcount if matched else 0
            except sa_exc.DBAPIError as exc:
                text = str(exc.orig if exc.orig is not None else exc).lower()
                if "out of range" in text or "overflow" in text:
                    raise UpdateError(f"the update does not fit a column: {text}") from None
                raise _db_error(exc, f"update of {self.spec.name!r}") from None
        return UpdateResult(matched, int(modified))

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        """The point read: one prepared ``SELECT ... WHERE pk = :k`` (SQLAlchemy caches its
        compiled form), the same answer as ``find_one`` on the key."""
        params: dict[str, Any] = {}
        for i, (field, value) in enumerate(zip(self.spec.key, key, strict=True)):
            try:
                params[f"k{i}"] = to_column(self.schema.columns[field], value)
            except ColumnFitError:
                return None  # a key of another type than the column's matches nothing
        try:
            if isinstance(session, TableSession):
                result = await session.check().execute(self._get_stmt, params)
            else:
                async with self.store.engine.connect() as conn:
                    result = await conn.execute(self._get_stmt, params)
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc, f"read of {self.spec.name!r}") from None
        row = result.mappings().first()
        return None if row is None else row_to_doc(self.schema, row)


def _uniform(rows: list[dict[str, Any]]) -> bool:
    keys = rows[0].keys()
    return all(
        r.keys() == keys and not any(isinstance(v, sa.Null) for v in r.values()) for r in rows
    )


def _returning_batches(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive rows that one executemany can insert (the same columns, no SQL NULL
    expression), in order; any other row is a batch of its own (a single-row INSERT)."""
    batches: list[list[dict[str, Any]]] = []
    for row in rows:
        last = batches[-1] if batches else None
        if last is not None and _uniform([last[0], row]) and len(last) < _returning_size(row):
            last.append(row)
        else:
            batches.append([row])
    return batches


def _returning_size(row: dict[str, Any]) -> int:
    return max(1, _INSERT_PARAMS // max(1, len(row)))


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    width = max(1, len(rows[0]))
    size = max(1, _INSERT_PARAMS // width)
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _with_sql(plan: Plan, store: TableStore) -> Plan:
    """The plan with its SQL rendered for the store's dialect (explain() shows it)."""
    payload: SelectPayload = plan.payload
    dialect = store.engine.dialect
    compiled = payload.stmt.compile(dialect=dialect)
    native = {"sql": str(compiled), "params": dict(compiled.params)}
    return Plan(
        backend=plan.backend,
        collection=plan.collection,
        access_path=plan.access_path,
        native=native,
        exact=plan.exact,
        approximate=plan.approximate,
        residual=plan.residual,
        sort_pushed=plan.sort_pushed,
        limit_pushed=plan.limit_pushed,
        client_sort=plan.client_sort,
        residual_node=plan.residual_node,
        payload=plan.payload,
    )


__all__ = ["PostgresTables", "SQLiteTables", "TableCollection", "TableSession", "TableStore"]
