"""``sqlite:///path.db`` and ``sqlite:///:memory:``: documents as JSON in SQLite, via aiosqlite.

One writer connection, guarded by an asyncio lock held for a whole write section or user
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on any exception, cancellation
included); a write section inside an open transaction is a ``SAVEPOINT``, so it is all or nothing
too. Reads outside a transaction use separate reader connections (WAL mode): they see committed
data only and never wait for the writer. A streaming ``find`` holds one reader for its whole life
(its snapshot), while short reads (by key, pushed small limits, counts) use a reader that never
holds a statement open, so they always see the latest commit.

A point read by key outside a transaction (``find_one({"id": k})``) is one B-tree lookup of a
few microseconds, less than the hand-off to a driver thread and back costs: it runs on the
event loop's thread, on a connection of its own (``inline_reads``, on by default), with no busy
wait (``busy_timeout = 0``; a database locked beyond WAL's lock-free reads answers busy at
once, and the read goes to the reader thread instead) and in autocommit (the statement's read
transaction ends with it, so it sees the latest commit and never holds a snapshot). Every
``INLINE_YIELD``-th such read yields to the loop once, so a loop of point reads still lets other
tasks (and a cancellation) in; ``INLINE_SLOW_RUN`` lookups in a row that each took longer than
``INLINE_SLOW_S`` (storage that answers from a cold disk, not the page cache) send the point
reads to the reader thread for ``INLINE_PAUSE_S``. ``?inline_reads=0`` keeps every read on the
threads.

A small autocommitted insert (``insert_now``: the audit trail's events) runs on the loop's thread
too, on a write connection of its own, when nothing holds the writer (no write section, no
transaction) and commits do not sync (``synchronous`` NORMAL or OFF, WAL mode): a database locked
by another writer answers busy at once (``busy_timeout = 0``), nothing is written, and the caller
takes the general path. That connection never checkpoints on the loop's thread
(``wal_autocheckpoint = 0``): every ``INLINE_CHECKPOINT`` such inserts, a passive checkpoint runs
on the writer's thread. Slow runs pause it as they pause the point reads. ``?inline_writes=0``
turns it off.

``:memory:`` has a single connection: reads outside a transaction take the writer lock for each
batch they fetch, so they never see another task's uncommitted writes.

>>> import asyncio, asyncdb
>>> async def main():
...     async with asyncdb.connect("sqlite:///:memory:") as db:
...         alerts = db.collection("alerts", indexes=["status"])
...         await alerts.insert_many([{"id": "a", "status": "open"}, {"id": "b", "status": "done"}])
...         return [d["id"] async for d in alerts.find({"status": "open"})]
>>> asyncio.run(main())
['a']
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from time import perf_counter
from typing import Any, Self, cast
from urllib.parse import parse_qsl, urlsplit

import aiosqlite

from asyncdb.backends.base import (
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    current_operation,
    key_of,
    native_params,
    sql_reads_only,
)
from asyncdb.backends.sqlite.codec import ESCAPED, decode_doc, encode_doc, encode_key
from asyncdb.backends.sqlite.functions import function_error, sql_functions
from asyncdb.backends.sqlite.grouping import group_sql, partial_rows
from asyncdb.backends.sqlite.planner import SQLitePlanner, Statement, quote_ident, schema
from asyncdb.errors import (
    BackendError,
    ConfigurationError,
    DuplicateKey,
    NotSupported,
    TransactionError,
)
from asyncdb.query.ast import Node
from asyncdb.query.grouping import GroupShape
from asyncdb.query.limits import StoreLimits
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query

_OPTIONS = {
    "busy_timeout": 5000,
    "readers": 4,
    "batch_size": 256,
    "synchronous": "NORMAL",
    "inline_reads": True,
    "inline_writes": True,
}
_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS.update({"0": False, "false": False, "no": False, "off": False})
# Point reads on the loop's thread (the module docstring): a yield to the loop every this many,
# and the pause after a run of INLINE_SLOW_RUN in a row that each took this long.
INLINE_YIELD = 32
INLINE_SLOW_S = 0.002
INLINE_SLOW_RUN = 4
INLINE_PAUSE_S = 10.0
INLINE_CHECKPOINT = 1000  # inline inserts between two passive checkpoints on the writer's thread
_SYNC_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


def _sql_error(exc: sqlite3.Error, what: str) -> Exception:
    """Map a driver error to the asyncdb hierarchy."""
    raised = function_error(exc)  # a regex beyond its bound, inside SQLite
    if raised is not None:
        return raised
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return DuplicateKey(f"{what}: {exc}")
    text = str(exc)
    if "locked" in text or "busy" in text:
        return TransactionError(f"{what}: the database is locked by another writer ({exc})")
    return BackendError(f"{what}: {exc}")


# The table recording which collections hold only NUL-safe rows (_escape_older_rows).
FORMATS = '"_asyncdb_formats"'
NUL_SAFE_FORMAT = 1


class SQLiteSession(Session):
    """A write section or transaction on the writer connection."""

    def __init__(self, conn: aiosqlite.Connection, *, transaction: bool) -> None:
        self.conn = conn
        self.in_transaction = transaction
        self.depth = 0
        self.open = True

    def check(self) -> aiosqlite.Connection:
        if not self.open:
            raise TransactionError("this transaction has already finished")
        return self.conn


class SQLiteStore(Store):
    """The SQLite backend (see the module docstring)."""

    name = "sqlite"
    capabilities = Capabilities(
        transactions=True,
        conditional_writes=True,
        ttl=True,
        secondary_indexes=True,
        unique_indexes=True,
        server_side_sort=True,
        regex_pushdown=True,
        keyset_pagination=True,
        bulk_insert=True,
    )

    def __init__(self, path: str, options: Mapping[str, Any]) -> None:
        self.path = path
        self.memory = path == ":memory:" or path.startswith("file::memory:")
        self.busy_timeout = int(options["busy_timeout"])
        self.max_idle = int(options["readers"])
        self.batch_size = max(1, int(options["batch_size"]))
        self.synchronous = str(options["synchronous"]).upper()
        if self.synchronous not in _SYNC_MODES:
            raise ConfigurationError(f"synchronous must be one of {sorted(_SYNC_MODES)}")
        inline = options["inline_reads"]
        flag = inline if type(inline) is bool else _FLAGS.get(str(inline).lower())
        if flag is None:
            raise ConfigurationError("inline_reads must be 1 or 0 (true or false)")
        self.inline_reads = flag
        inline = options["inline_writes"]
        flag = inline if type(inline) is bool else _FLAGS.get(str(inline).lower())
        if flag is None:
            raise ConfigurationError("inline_writes must be 1 or 0 (true or false)")
        # an inline commit must not wait for a sync on the loop's thread
        self.inline_writes = flag and self.synchronous in ("NORMAL", "OFF")
        self._inline_writer: sqlite3.Connection | None = None  # insert_now's connection
        self._inline_writes = 0
        self._inline_write_slow = 0
        self._inline_write_paused_until = 0.0
        self._checkpoint: asyncio.Task[None] | None = None
        self._inline: sqlite3.Connection | None = None  # the point reads' own connection
        self._inline_count = 0
        self._inline_slow = 0  # slow point reads in a row
        self._inline_paused_until = 0.0  # perf_counter time
        self.lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._short: aiosqlite.Connection | None = None
        self._idle: list[aiosqlite.Connection] = []
        self._readers: set[aiosqlite.Connection] = set()
        self._owner: asyncio.Task[Any] | None = None
        self._tx_ddl: list[str] = []
        self._closed = False

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        parts = urlsplit(url)
        if parts.netloc:
            raise ConfigurationError(
                "a SQLite URL has no host: sqlite:///relative.db, sqlite:////abs/path.db "
                "or sqlite:///:memory:"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ConfigurationError("a SQLite URL needs a path: sqlite:///app.db")
        merged: dict[str, Any] = dict(_OPTIONS)
        for key, value in [*parse_qsl(parts.query), *options.items()]:
            if key not in _OPTIONS:
                raise ConfigurationError(
                    f"unknown SQLite option {key!r} (known: {', '.join(sorted(_OPTIONS))})"
                )
            merged[key] = value
        store = cls(path, merged)
        try:
            await store._start()
        except BaseException:
            await store.close()
            raise
        return store

    async def _connect(self, *, reader: bool) -> aiosqlite.Connection:
        pending = aiosqlite.connect(self.path, isolation_level=None)
        # aiosqlite's worker thread is not a daemon: a database never closed (an exception
        # before close()) would keep the interpreter from exiting. SQLite's journal makes an
        # abrupt exit safe, so let the thread be a daemon.
        worker = getattr(pending, "_thread", None)
        if worker is not None and not worker.is_alive():
            worker.daemon = True
        try:
            conn = await pending
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open SQLite database {self.path!r}: {exc}") from None
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {self.busy_timeout}")
            if not self.memory:
                await conn.execute_fetchall(f"PRAGMA synchronous = {self.synchronous}")
            if reader:
                await conn.execute_fetchall("PRAGMA query_only = 1")
            for name, nargs, fn in sql_functions():
                await conn.create_function(name, nargs, fn, deterministic=True)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _start(self) -> None:
        self._writer = await self._connect(reader=False)
        if not self.memory:
            try:
                await self._writer.execute_fetchall("PRAGMA journal_mode = WAL")
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"cannot open {self.path!r}") from None
            self._short = await self._connect(reader=True)
            if self.inline_reads:
                self._inline = self._connect_inline()

    def _connect_inline(self) -> sqlite3.Connection:
        """The point reads' connection (module docstring), used on the loop's thread only
        (``check_same_thread=False`` lets close() run from anywhere); opened after the writer
        set WAL mode."""
        conn = self._open_on_loop()
        try:
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_on_loop(self) -> sqlite3.Connection:
        """A connection for the loop's thread (``check_same_thread=False`` lets close() run from
        anywhere), autocommitting, that answers a locked database at once."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open SQLite database {self.path!r}: {exc}") from None
        try:
            conn.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_inline_writer(self) -> sqlite3.Connection:
        """``insert_now``'s connection (module docstring), on the loop's thread only."""
        conn = self._open_on_loop()
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            for name, nargs, fn in sql_functions():  # an index expression may call them
                conn.create_function(name, nargs, fn, deterministic=True)
        except BaseException:
            conn.close()
            raise
        return conn

    def insert_now(self, sql: str, params: Sequence[Any], what: str) -> bool:
        """One autocommitted statement on the loop's thread when nothing holds the writer
        (module docstring): True when it ran, False when it did not (nothing written);
        DuplicateKey when a key exists."""
        if self._owner is not None or self.lock.locked() or self._closed:
            return False
        conn = self._inline_writer
        if conn is None:  # opened at the first use (most databases never call this)
            if not self.inline_writes or self.memory or self._writer is None:
                return False
            try:
                conn = self._inline_writer = self._connect_inline_writer()
            except (ConfigurationError, sqlite3.Error):
                self.inline_writes = False  # the general path, from now on
                return False
        started = perf_counter()
        if started < self._inline_write_paused_until:
            return False
        try:
            conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise DuplicateKey(f"{what}: {exc}") from None
            return False  # the general path reports it
        except sqlite3.Error:
            return False  # busy (another process writes), or anything else: the general path
        if perf_counter() - started <= INLINE_SLOW_S:
            self._inline_write_slow = 0
        else:
            self._inline_write_slow += 1
            if self._inline_write_slow >= INLINE_SLOW_RUN:
                self._inline_write_slow = 0
                self._inline_write_paused_until = perf_counter() + INLINE_PAUSE_S
        self._inline_writes += 1
        if self._inline_writes % INLINE_CHECKPOINT == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = asyncio.get_running_loop().create_task(self._passive_checkpoint())
        return True

    async def _passive_checkpoint(self) -> None:
        """What the inline inserts' connection leaves undone: the WAL copied back into the
        database file, on the writer's thread, without waiting for readers."""
        async with self.lock:
            if self._closed:
                return
            with suppress(sqlite3.Error, ValueError):
                await self.writer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def close(self) -> None:
        if self._closed:
            return
        checkpoint = self._checkpoint
        if checkpoint is not None and not checkpoint.done():
            with suppress(Exception):
                await checkpoint
        self._closed = True
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()
        inline, self._inline_writer = self._inline_writer, None
        if inline is not None:
            inline.close()
        conns = [c for c in (self._short, *self._readers, self._writer) if c is not None]
        self._idle.clear()
        self._readers.clear()
        for conn in conns:
            with suppress(sqlite3.Error, ValueError):
                await conn.close()

    async def server_version(self) -> str | None:
        return f"SQLite {sqlite3.sqlite_version}"  # the library in this process is the server

    def collection(self, spec: CollectionSpec) -> SQLiteCollection:
        return SQLiteCollection(self, spec)

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None or self._closed:
            raise BackendError("the SQLite database is closed")
        return self._writer

    def check_not_owner(self) -> None:
        """Work outside the transaction this task holds would wait for it (or not see its
        writes): say what to do instead, as the memory backend does."""
        if self._owner is not None and self._owner is asyncio.current_task():
            raise TransactionError(
                "this task has a transaction open: use tx.collection(name) inside it"
            )

    # --- write sections --------------------------------------------------------------------

    @asynccontextmanager
    async def section(
        self, session: Session | None, *, transaction: bool
    ) -> AsyncIterator[SQLiteSession]:
        """A write section: its own transaction, or a savepoint inside ``session``."""
        if session is not None:
            assert isinstance(session, SQLiteSession)
            conn = session.check()
            session.depth += 1
            name = f"asyncdb_sp{session.depth}"
            await conn.execute(f"SAVEPOINT {name}")
            try:
                yield session
            except BaseException:
                await conn.execute(f"ROLLBACK TO {name}")
                await conn.execute(f"RELEASE {name}")
                raise
            else:
                await conn.execute(f"RELEASE {name}")
            finally:
                session.depth -= 1
            return
        self.check_not_owner()
        async with self.lock:
            conn = self.writer
            self._owner = asyncio.current_task()
            self._tx_ddl = []
            own = SQLiteSession(conn, transaction=transaction)
            try:
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise _sql_error(exc, "cannot begin a transaction") from None
                except BaseException:
                    # Cancelled while the BEGIN was queued: it still runs on the connection's
                    # thread, and the next autocommitted statement would join the transaction
                    # it opens (to be lost with it). The ROLLBACK is queued after it.
                    await self._rollback(conn)
                    raise
                try:
                    yield own
                except BaseException:
                    await self._rollback(conn)
                    raise
                try:
                    await conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    await self._rollback(conn)
                    raise _sql_error(exc, "commit failed") from None
            finally:
                own.open = False
                self._owner = None
                self._tx_ddl = []

    async def _rollback(self, conn: aiosqlite.Connection) -> None:
        # The ROLLBACK is queued on the connection's thread before any await, so it runs even
        # if this task is cancelled again while waiting for it.
        with suppress(sqlite3.Error):  # none open (BEGIN failed) or already rolled back
            await conn.execute("ROLLBACK")
        # Tables first used inside the transaction were created in it: create them again.
        for stmt in self._tx_ddl:
            with suppress(sqlite3.Error):
                await conn.execute(stmt)

    def transaction(self) -> Any:
        return self.section(None, transaction=True)

    # --- breadth: native statements ------------------------------------------------------------

    def native_writes(self, statement: Any) -> bool:
        return not sql_reads_only(statement, "SQL")

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        """One SQL statement on the writer connection, in a transaction of its own; a read
        runs under ``PRAGMA query_only`` (SQLite refuses any write it attempts)."""
        args = native_params(params, mapping=True)
        async with self.section(None, transaction=False) as s:
            conn = s.check()
            try:
                if not writes:
                    await conn.execute("PRAGMA query_only = 1")
                try:
                    cursor = await conn.execute(statement, args)
                    rows = await cursor.fetchall()
                    names = [d[0] for d in cursor.description or ()]
                    await cursor.close()
                finally:
                    if not writes:
                        await conn.execute("PRAGMA query_only = 0")
            except sqlite3.Error as exc:
                raise _sql_error(exc, "native statement") from None
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def run_ddl(self, stmts: Sequence[str], table: str, key_count: int) -> None:
        """Create a collection's table and indexes (idempotent)."""
        if self._owner is not None and self._owner is asyncio.current_task():
            # First use inside our own transaction: the DDL joins it (the lock is ours).
            await self._ddl(self.writer, stmts, table, key_count)
            self._tx_ddl.extend(stmts)
            return
        async with self.lock:
            await self._ddl(self.writer, stmts, table, key_count)

    async def _ddl(
        self, conn: aiosqlite.Connection, stmts: Sequence[str], table: str, key_count: int
    ) -> None:
        info = await conn.execute_fetchall(f"PRAGMA table_info({quote_ident(table)})")
        if info:
            keys = [row[1] for row in info if str(row[1]).startswith("k")]
            if len(keys) != key_count:
                raise ConfigurationError(
                    f"collection {table!r} is stored with {len(keys)} key field(s), not {key_count}"
                )
        for stmt in stmts:
            try:
                await conn.execute(stmt)
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"cannot create {table!r}") from None
        try:
            await self._escape_older_rows(conn, table)
        except sqlite3.Error as exc:
            raise _sql_error(exc, f"cannot bring {table!r} to the NUL-safe format") from None

    async def _escape_older_rows(self, conn: aiosqlite.Connection, table: str) -> None:
        """Rows an older asyncdb wrote hold NUL and U+0001 as they are, which SQLite's JSON
        functions cut strings at; this asyncdb stores them escaped and escapes filter strings
        alike (codec.escape_text), so such a row would compare wrongly, its flags having no
        ESCAPED. The first time this asyncdb ensures a table it rewrites those rows in the
        escaped form, once: ``_asyncdb_formats`` records that the table is done (a table of
        asyncdb's reserved prefix, so no collection can be named so; not ``user_version``,
        which the application may own). Migrating, rather than comparing both forms in every
        query, keeps queries and indexes as they are; the rewrite decodes each row as the
        older asyncdb did and encodes it as a new write would, so values are unchanged. It runs
        in one write transaction with the marker (a crash leaves the table as it was, to be
        done on the next open) and costs one lookup per table when done. A process of an older
        asyncdb still writing the file would write unescaped rows again: upgrade them all."""
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {FORMATS} "
            "(collection TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        own = not conn.in_transaction  # inside a user transaction the DDL joins it
        if own:
            await conn.execute("BEGIN IMMEDIATE")
        try:
            done = list(
                await conn.execute_fetchall(
                    f"SELECT version FROM {FORMATS} WHERE collection = ?", (table,)
                )
            )
            if not done or done[0][0] < NUL_SAFE_FORMAT:
                await self._rewrite_unescaped(conn, quote_ident(table))
                await conn.execute(
                    f"INSERT OR REPLACE INTO {FORMATS} VALUES (?, ?)", (table, NUL_SAFE_FORMAT)
                )
            if own:
                await conn.execute("COMMIT")
        except BaseException:
            if own:
                with suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
            raise

    @staticmethod
    async def _rewrite_unescaped(conn: aiosqlite.Connection, table: str) -> None:
        # '\u0000' is the JSON text of NUL (orjson writes control characters escaped); a row
        # that only holds that text (a backslash string) is rewritten to itself
        select = (
            f"SELECT rowid, doc, tagged FROM {table} WHERE rowid > ? AND (tagged & {ESCAPED}) = 0 "
            "AND (instr(doc, '\\u0000') > 0 OR instr(doc, '\\u0001') > 0) ORDER BY rowid LIMIT 500"
        )
        last = -(2**63)
        while rows := await conn.execute_fetchall(select, (last,)):
            updates = []
            for rowid, text, flags in rows:
                updates.append((*encode_doc(decode_doc(text, flags)), rowid))
                last = rowid
            await conn.executemany(
                f"UPDATE {table} SET doc = ?, tagged = ? WHERE rowid = ?", updates
            )

    # --- reads -----------------------------------------------------------------------------

    async def fetch_all(
        self, sql: str, params: Sequence[Any], session: Session | None
    ) -> Sequence[Any]:
        """Run a bounded query to completion in one round trip."""
        try:
            if session is not None:
                assert isinstance(session, SQLiteSession)
                rows = await session.check().execute_fetchall(sql, params)
            else:
                self.check_not_owner()
                if self.memory:
                    async with self.lock:
                        rows = await self.writer.execute_fetchall(sql, params)
                elif self._short is None or self._closed:
                    raise BackendError("the SQLite database is closed")
                else:
                    rows = await self._short.execute_fetchall(sql, params)
            return cast(Sequence[Any], rows)  # sqlite3 fetchall: a list
        except sqlite3.Error as exc:
            raise _sql_error(exc, "query failed") from None

    async def stream(
        self, sql: str, params: Sequence[Any], session: Session | None
    ) -> AsyncIterator[Sequence[Any]]:
        """Batches of rows, fetched as the consumer asks for them (constant memory)."""
        if session is not None:
            assert isinstance(session, SQLiteSession)
            async for batch in self._batches(session.check(), sql, params, None):
                yield batch
            return
        self.check_not_owner()
        if self.memory:
            async for batch in self._batches(self.writer, sql, params, self.lock):
                yield batch
        else:
            conn = await self._acquire_reader()
            try:
                async for batch in self._batches(conn, sql, params, None):
                    yield batch
            finally:
                await self._release_reader(conn)

    async def _batches(
        self,
        conn: aiosqlite.Connection,
        sql: str,
        params: Sequence[Any],
        lock: asyncio.Lock | None,
    ) -> AsyncIterator[Sequence[Any]]:
        cursor: aiosqlite.Cursor | None = None
        try:
            while True:
                try:
                    if lock is not None:
                        async with lock:
                            if cursor is None:
                                cursor = await conn.execute(sql, params)
                            rows = await cursor.fetchmany(self.batch_size)
                    else:
                        if cursor is None:
                            cursor = await conn.execute(sql, params)
                        rows = await cursor.fetchmany(self.batch_size)
                except sqlite3.Error as exc:
                    raise _sql_error(exc, "query failed") from None
                except ValueError:  # aiosqlite: the connection was closed under the stream
                    raise BackendError("the SQLite database was closed during the query") from None
                batch = cast(Sequence[Any], rows)  # sqlite3 fetchmany: a list
                if not batch:
                    return
                yield batch
                if len(batch) < self.batch_size:
                    return
        finally:
            if cursor is not None:
                with suppress(sqlite3.Error, ValueError):
                    await cursor.close()

    async def _acquire_reader(self) -> aiosqlite.Connection:
        if self._closed:
            raise BackendError("the SQLite database is closed")
        if self._idle:
            return self._idle.pop()
        conn = await self._connect(reader=True)
        self._readers.add(conn)
        return conn

    async def _release_reader(self, conn: aiosqlite.Connection) -> None:
        if self._closed:
            return  # close() closes every reader (aiosqlite must not close one twice)
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
            return
        self._readers.discard(conn)
        with suppress(sqlite3.Error, ValueError):
            await conn.close()


class SQLiteCollection(StoreCollection):
    """One table: key columns ``k0..``, the document as JSON text, and its ``tagged`` flags."""

    store: SQLiteStore
    locking_sections = True

    def __init__(self, store: SQLiteStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec
        self.planner = SQLitePlanner(spec)
        table = quote_ident(spec.name)
        keys = [f'"k{i}"' for i in range(len(spec.key))]
        self._table = table
        self._insert_sql = (
            f"INSERT INTO {table} ({', '.join(keys)}, doc, tagged) "
            f"VALUES ({', '.join('?' for _ in range(len(keys) + 2))})"
        )
        by_key = " AND ".join(f"{k} = ?" for k in keys)
        self._get_sql = f"SELECT doc, tagged FROM {table} WHERE {by_key}"
        self._update_sql = f"UPDATE {table} SET doc = ?, tagged = ? WHERE {by_key}"
        self._delete_sql = f"DELETE FROM {table} WHERE {by_key}"
        self._single = spec.key[0] if spec.single_key else ""
        self._insert_now_sql: dict[int, str] = {}  # multi-row INSERTs by row count

    async def ensure(self) -> None:
        await self.store.run_ddl(schema(self.spec), self.spec.name, len(self.spec.key))

    def plan(self, query: Query) -> Plan:
        return self.planner.plan(query)

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        stmt: Statement = plan.payload
        if stmt.by_key or (stmt.bounded is not None and stmt.bounded <= self.store.batch_size):
            for text, flags in await self.store.fetch_all(stmt.sql, stmt.params, session):
                yield decode_doc(text, flags)
            return
        async for batch in self.store.stream(stmt.sql, stmt.params, session):
            for text, flags in batch:
                yield decode_doc(text, flags)

    async def row_list(self, plan: Plan, session: Session | None) -> list[Doc] | None:
        """A bounded statement's rows in one round trip, decoded in one pass."""
        stmt: Statement = plan.payload
        if not stmt.by_key and stmt.bounded is None:
            return None
        rows = await self.store.fetch_all(stmt.sql, stmt.params, session)
        return [decode_doc(text, flags) for text, flags in rows]

    def _key_params(self, doc: Doc) -> list[Any]:
        if self._single:
            return [encode_key(doc[self._single])]
        return [encode_key(v) for v in key_of(doc, self.spec)]

    async def _docs_by_keys(self, keys: list[KeyTuple], session: Session) -> list[Doc]:
        """Primary-key ``IN`` lookups of up to 500 keys (with a TTL, or several key fields, the
        planned query, which adds the expiry condition)."""
        if self.spec.ttl is not None or not self._single or not keys:
            return await super()._docs_by_keys(keys, session)
        docs: list[Doc] = []
        for at in range(0, len(keys), 500):  # below SQLite's oldest bound-parameter limit (999)
            chunk = keys[at : at + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f'SELECT doc, tagged FROM {self._table} WHERE "k0" IN ({marks})'
            rows = await self.store.fetch_all(sql, [encode_key(k[0]) for k in chunk], session)
            docs += [decode_doc(text, flags) for text, flags in rows]
        operation = current_operation.get()
        if operation is not None:
            operation.docs_read += len(docs)
        return docs

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        if self.spec.single_key:
            field = self.spec.key[0]
            rows = [(encode_key(doc[field]), *encode_doc(doc)) for doc in docs]
        else:
            rows = [(*self._key_params(doc), *encode_doc(doc)) for doc in docs]
        async with self.store.section(session, transaction=False) as s:
            try:
                await s.conn.executemany(self._insert_sql, rows)
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"insert into {self.spec.name!r}") from None

    def _multi_row_insert(self, docs: list[Doc]) -> tuple[str, list[Any]] | None:
        """One ``INSERT`` of every row of ``docs`` and its parameters (None: too many for one
        statement, or a TTL, whose insert purges expired keys first)."""
        width = len(self.spec.key) + 2
        if self.spec.ttl is not None or not docs or len(docs) * width > 999:
            return None  # 999: SQLite's oldest bound-parameter limit
        sql = self._insert_now_sql.get(len(docs))
        if sql is None:
            head = self._insert_sql.split(" VALUES ", 1)[0]
            row = "(" + ", ".join("?" * width) + ")"
            sql = self._insert_now_sql[len(docs)] = f"{head} VALUES " + ", ".join([row] * len(docs))
        params: list[Any] = []
        for doc in docs:
            params.extend(self._key_params(doc))
            params.extend(encode_doc(doc))
        return sql, params

    def insert_now(self, docs: list[Doc]) -> bool:
        """One multi-row ``INSERT`` on the loop's thread when the store can run it there now
        (``SQLiteStore.insert_now``)."""
        if not self.store.inline_writes or self.store.memory:
            return False
        statement = self._multi_row_insert(docs)
        if statement is None:
            return False
        return self.store.insert_now(*statement, f"insert into {self.spec.name!r}")

    async def insert_autocommitted(self, docs: list[Doc]) -> bool:
        """One multi-row ``INSERT`` on the writer connection, under its lock, in autocommit
        (not the write section's ``BEGIN`` / insert / ``COMMIT``: three hops to its thread)."""
        statement = self._multi_row_insert(docs)
        if statement is None:
            return False
        store = self.store
        store.check_not_owner()
        async with store.lock:
            try:
                await store.writer.execute(*statement)
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"insert into {self.spec.name!r}") from None
        return True

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        rows = [(*encode_doc(new), *self._key_params(new)) for _old, new in pairs]
        async with self.store.section(session, transaction=False) as s:
            try:
                await s.conn.executemany(self._update_sql, rows)
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"update of {self.spec.name!r}") from None

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        rows = [self._key_params(doc) for doc in docs]
        async with self.store.section(session, transaction=False) as s:
            try:
                await s.conn.executemany(self._delete_sql, rows)
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"delete from {self.spec.name!r}") from None

    async def drop(self) -> None:
        """``DROP TABLE``: the documents and the indexes."""
        async with self.store.section(None, transaction=False) as s:
            try:
                await s.check().execute(f"DROP TABLE IF EXISTS {quote_ident(self.spec.name)}")
                with suppress(sqlite3.OperationalError):  # no formats table: nothing to forget
                    await s.check().execute(
                        f"DELETE FROM {FORMATS} WHERE collection = ?", (self.spec.name,)
                    )
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"cannot drop {self.spec.name!r}") from None

    def atomic(self, session: Session | None) -> Any:
        return self.store.section(session, transaction=False)

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        """The point read: one primary-key lookup, on the loop's thread outside a transaction
        (the module docstring), else in one round trip to a connection's thread (with a TTL
        the planned query, which adds the expiry condition)."""
        if self.spec.ttl is not None:
            return await super().get(key, session)
        params = key if self._plain_keys(key) else tuple(encode_key(v) for v in key)
        store = self.store
        inline = store._inline
        if inline is not None and session is None and store._owner is None:
            started = perf_counter()
            if started >= store._inline_paused_until:
                try:
                    # fetchall steps the statement to its end: no read transaction stays open
                    hits = inline.execute(self._get_sql, params).fetchall()
                except sqlite3.Error:
                    pass  # busy, or anything else: the reader thread's answer (or error)
                else:
                    if perf_counter() - started <= INLINE_SLOW_S:
                        store._inline_slow = 0
                    else:  # a run of slow ones (one alone may be a GC pause or preemption)
                        store._inline_slow += 1
                        if store._inline_slow >= INLINE_SLOW_RUN:
                            store._inline_slow = 0
                            store._inline_paused_until = perf_counter() + INLINE_PAUSE_S
                    store._inline_count += 1
                    if store._inline_count % INLINE_YIELD == 0:
                        await asyncio.sleep(0)
                    if not hits:
                        return None
                    doc: Doc = decode_doc(*hits[0])
                    return doc
        short = store._short
        if session is None and short is not None and store._owner is None and not store._closed:
            # The common case, kept to one call: the committed state, on the short reader.
            try:
                rows = cast(Sequence[Any], await short.execute_fetchall(self._get_sql, params))
            except sqlite3.Error as exc:
                raise _sql_error(exc, "query failed") from None
        else:
            rows = await store.fetch_all(self._get_sql, params, session)
        if not rows:
            return None
        text, flags = rows[0]
        found: Doc = decode_doc(text, flags)
        return found

    @staticmethod
    def _plain_keys(key: KeyTuple) -> bool:
        return datetime not in map(type, key)

    # SQLite parses at most 1000 levels of expression (an OR of n terms is n deep)
    limits = StoreLimits(filter_terms=300)

    def execution_plan(self, query: Query) -> Plan:
        """The lean plan (no filter rendering, which only ``explain()`` needs)."""
        return self.bounded_plan(query, lambda q: self.planner.plan(q, explain=False))

    def plan_binder(self, query: Query) -> Callable[[Query], Plan]:
        return self.planner.binder(query)

    # --- aggregation: a leading $match + $group as one GROUP BY where exact -----------------

    def group_statement(self, shape: GroupShape, plan: Plan) -> tuple[str, list[Any]]:
        stmt: Statement = plan.payload
        head = f"SELECT COUNT(*) FROM {self._table}"
        assert stmt.count_sql.startswith(head)
        where = stmt.count_sql[len(head) :]
        return group_sql(shape, self._table, where), stmt.count_params()

    async def fetch_groups(
        self, shape: GroupShape, sql: str, params: list[Any], session: Session | None
    ) -> Sequence[Sequence[Any]]:
        return partial_rows(shape, await self.store.fetch_all(sql, params, session))

    # --- native shortcuts: what SQL does in one statement when nothing is left to re-check ----

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        query = Query(node)
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        if plan.residual_node is not None:
            return await super().count(node, session, allow_scan=allow_scan)
        stmt: Statement = plan.payload
        rows = await self.store.fetch_all(stmt.count_sql, stmt.count_params(), session)
        return int(rows[0][0])

    async def delete(
        self,
        node: Node,
        *,
        multi: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        raw: bool = False,
    ) -> int:
        if not multi:
            return await super().delete(
                node, multi=multi, session=session, allow_scan=allow_scan, raw=raw
            )
        query = Query(node if raw else self.visible(node))
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        if plan.residual_node is not None:
            return await super().delete(
                node, multi=multi, session=session, allow_scan=allow_scan, raw=raw
            )
        stmt: Statement = plan.payload
        async with self.store.section(session, transaction=False) as s:
            try:
                cursor = await s.conn.execute(stmt.delete_sql, stmt.count_params())
            except sqlite3.Error as exc:
                raise _sql_error(exc, f"delete from {self.spec.name!r}") from None
            return int(cursor.rowcount)

    async def query_plan(self, plan: Plan, *, analyze: bool = False) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` for a plan (the details column, in order)."""
        if analyze:
            raise NotSupported("SQLite has no EXPLAIN ANALYZE; use server_plan=True alone")
        stmt: Statement = plan.payload
        rows = await self.store.fetch_all(f"EXPLAIN QUERY PLAN {stmt.sql}", stmt.params, None)
        return [str(row[3]) for row in rows]


__all__ = ["SQLiteCollection", "SQLiteSession", "SQLiteStore"]
