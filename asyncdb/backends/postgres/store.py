"""``postgresql://user@host:port/db``: documents as ``jsonb`` in PostgreSQL, via asyncpg.

One asyncpg pool per database. URL query options: ``min_size``, ``max_size`` (pool size),
``max_inactive_connection_lifetime`` (seconds; ``recycle`` is an alias), ``statement_cache_size``
(asyncpg's prepared-statement cache per connection), ``command_timeout``, ``batch_size`` (rows
per cursor fetch) and ``health_check`` (``1``: a ``SELECT 1`` on checkout when the connection was
idle for more than ``health_check_idle`` seconds), ``exactly_once_native`` (``1``: a
one-statement ``$set``/``$unset`` runs in a write section too, so a lost reply to it is settled
as for every other write, at two more round trips). ``replicas`` (a list of URLs, a keyword of
``connect``), ``replica_wait``, ``replica_timeout`` and ``replica_cooldown`` send reads outside
transactions to read replicas (see :mod:`asyncdb.backends.postgres.replicas`).

Transactions: ``db.transaction()`` takes one connection from the pool and keeps it for its whole
life (REPEATABLE READ, PostgreSQL's snapshot isolation; a write conflict raises
``TransactionError`` so the caller retries). Every statement of a session goes through its lock,
so tasks sharing a transaction under ``asyncio.gather`` never use the connection at once. A write
section inside it is a SAVEPOINT (all or nothing, the transaction goes on). Any exception,
cancellation included, rolls back; the connection goes back to the pool reset.

Outside a transaction, a write section is its own READ COMMITTED transaction that reads with
``SELECT ... FOR UPDATE``: the rows it will rewrite are locked, and PostgreSQL re-checks the
pushed filter on the latest version after a wait (the residual is re-checked in process on the
locked version), so concurrent conditional updates are compare-and-set.

>>> # async with asyncdb.connect("postgresql://postgres@127.0.0.1:5432/app?max_size=20") as db:
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, suppress
from itertools import chain
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg
import orjson

from asyncdb.backends.base import (
    GC_PAUSE_MIN,
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    close_stream,
    gc_paused,
    key_of,
    native_params,
    sql_reads_only,
)
from asyncdb.backends.postgres.codec import decode_doc, encode_doc, encode_key
from asyncdb.backends.postgres.connections import HeldConnections, usable
from asyncdb.backends.postgres.grouping import (
    NOT_NUMERIC,
    fast_group_sql,
    fast_partial_rows,
    group_sql,
    partial_rows,
)
from asyncdb.backends.postgres.planner import (
    PostgresPlanner,
    Statement,
    check_identifiers,
    quote_ident,
    schema,
    sort_values,
)
from asyncdb.backends.postgres.replica_config import REPLICA_OPTIONS, check_replica_options
from asyncdb.errors import (
    BackendError,
    ConfigurationError,
    DuplicateKey,
    QueryError,
    TransactionError,
)
from asyncdb.query.ast import Node, Sort, Update
from asyncdb.query.grouping import GroupShape
from asyncdb.query.limits import StoreLimits
from asyncdb.resilience import (
    CONTENTION,
    MAYBE_APPLIED,
    NOT_APPLIED,
    Transient,
    classify_os_error,
    error_chain,
)
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query, UpdateResult

_OPTIONS: dict[str, Any] = {
    "min_size": 1,
    "max_size": 10,
    "max_inactive_connection_lifetime": 300.0,
    "statement_cache_size": 256,
    "command_timeout": None,
    "batch_size": 500,
    "health_check": 1,
    "health_check_idle": 30.0,
    # 1: a one-statement $set/$unset also runs in a write section (BEGIN, the statement,
    # COMMIT: two more round trips), so a lost reply to it is settled like any other write
    "exactly_once_native": 0,
}
_OPTIONS.update(REPLICA_OPTIONS)
_ALIASES = {"recycle": "max_inactive_connection_lifetime"}


def _pg_error(exc: Exception, what: str) -> Exception:
    """Map a driver error to the asyncdb hierarchy."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return DuplicateKey(f"{what}: {exc}")
    if isinstance(
        exc,
        asyncpg.SerializationError | asyncpg.DeadlockDetectedError | asyncpg.LockNotAvailableError,
    ):
        return TransactionError(f"{what}: a concurrent transaction conflicts ({exc}); retry")
    return BackendError(f"{what}: {exc}")


# The transaction id of the statement's transaction if it wrote anything (PostgreSQL 10+;
# evaluated after the statement's data-modifying CTEs have run), else NULL: no xid is taken
# for a section that writes nothing, whose COMMIT then writes no WAL
_XID = "txid_current_if_assigned()"
# End the session ``$1`` if it still runs the transaction whose 32-bit xid is ``$2``
_END_HOLDER = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE pid = $1 AND backend_xid::text::bigint = $2"
)


class _NotCommitted(BackendError):
    """A write section lost its connection before its COMMIT was sent: PostgreSQL rolls back a
    transaction whose connection is gone, so the write provably did not apply and may be sent
    again."""


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's ``reset=``: no reset query on release, one round trip saved per operation.

    asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL;`` on every release. asyncdb writes every statement its connections run, and none leaves
    session state behind, so there is nothing for it to undo:

    - advisory locks: only ``pg_advisory_xact_lock`` (DDL), released when its transaction ends;
    - ``SET``: none; isolation is given per ``BEGIN``, no session setting is ever changed;
    - listeners: no ``LISTEN`` and no ``add_listener`` (asyncpg drops client-side listeners on
      release in any case);
    - cursors: only inside a transaction (``stream``), and a cursor without HOLD closes with it;
    - cancelled calls: before calling this, the pool waits for the server to finish cancelling
      the statement, and asyncpg rolls back a transaction left open (it knows that client-side,
      so a ROLLBACK is sent only then).

    A statement asyncdb did not write (``db.native``) may leave any of these: ``native`` runs
    the full reset query (:func:`reset_session`) before its connection goes back. Code that
    ever adds session state must do the same.
    """


async def reset_session(conn: asyncpg.Connection) -> None:
    """asyncpg's full reset query (advisory locks, cursors, LISTEN, settings) on ``conn``."""
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


# A kept prepared statement that can no longer run: prepared again, and the read sent again
# (nothing ran). DEALLOCATE/DISCARD in a native statement, or the table altered or re-created.
_STATEMENT_GONE = (asyncpg.InvalidSQLStatementNameError, asyncpg.InvalidCachedStatementError)

_background: set[asyncio.Task[None]] = set()
ESTIMATE_ABOVE = 1_000_000  # rows: below, estimated_document_count runs count(*)


def _later(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` in a task of its own, kept referenced until it ends."""
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


class _SessionLock:
    """A lock a task may re-enter: a section holds it, and the statements inside it take it
    again without waiting for themselves."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        async with self._lock:
            self._owner, self._depth = task, 1
            try:
                yield
            finally:
                self._owner, self._depth = None, 0


class PostgresSession(Session):
    """One connection in a transaction. ``locking``: reads lock what they return (a write
    section)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        lock: _SessionLock,
        *,
        transaction: bool,
        locking: bool,
        root: PostgresSession | None = None,
    ) -> None:
        self.conn = conn
        self.lock = lock
        self.in_transaction = transaction
        self.locking = locking
        self.root = root or self
        self.open = True
        self.savepoints = 0
        # A write section's transaction id, from the reply of a write statement in it
        # (``xid_known``: a statement reported it; None then means nothing was written)
        self.xid: int | None = None
        self.xid_known = False

    def note_xid(self, xid: int | None) -> None:
        """Record the transaction id a write statement of this section reported."""
        root = self.root
        root.xid_known = True
        if xid is not None:
            root.xid = xid

    def check(self) -> asyncpg.Connection:
        if not self.root.open:
            raise TransactionError("this transaction has already finished")
        return self.conn


class PostgresStore(Store):
    """The PostgreSQL backend (see the module docstring)."""

    name = "postgres"
    network = True
    # A call cancelled at its deadline returns at once: the connection's rollback and its
    # return to the pool go on in a background task (``_later``), so no task per call is needed.
    detach_calls = False
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

    # A write section learns its transaction id in the reply of its write statement, so that a
    # COMMIT whose reply is lost is settled by asking the server (``_settle_commit``); False
    # sends the statements without it (benchmarks/bench_postgres_commit.py compares the two)
    prove_commits = True

    def __init__(self, pool: asyncpg.Pool, options: Mapping[str, Any]) -> None:
        self.pool = pool
        self.batch_size = max(1, int(options["batch_size"]))
        self.health_check = bool(int(options["health_check"]))
        self.health_check_idle = float(options["health_check_idle"])
        self.exactly_once_native = bool(int(options["exactly_once_native"]))
        self._owners: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._pool_waits = 0
        self._prepare_points = int(options["statement_cache_size"]) > 0
        self._held = HeldConnections(
            pool, pool.get_max_size(), float(options["max_inactive_connection_lifetime"])
        )

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        parts = urlsplit(url)
        merged: dict[str, Any] = dict(_OPTIONS)
        for key, value in [*parse_qsl(parts.query), *options.items()]:
            key = _ALIASES.get(key, key)
            if key not in _OPTIONS:
                raise ConfigurationError(
                    f"unknown PostgreSQL option {key!r} (known: {', '.join(sorted(_OPTIONS))})"
                )
            merged[key] = value
        dsn = urlunsplit(parts._replace(scheme="postgresql", query=""))
        replica_urls = check_replica_options(merged)
        try:
            min_size, max_size = int(merged["min_size"]), int(merged["max_size"])
            lifetime = float(merged["max_inactive_connection_lifetime"])
            cache = int(merged["statement_cache_size"])
            timeout = merged["command_timeout"]
            timeout = None if timeout in (None, "", "none") else float(timeout)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad PostgreSQL option: {exc}") from None
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ConfigurationError("PostgreSQL pool: need 0 <= min_size <= max_size, max_size>=1")
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                max_inactive_connection_lifetime=lifetime,
                statement_cache_size=cache,
                command_timeout=timeout,
                reset=keep_session,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}") from None
        assert pool is not None
        if replica_urls:
            from asyncdb.backends.postgres.replicas import open_replicated

            return await open_replicated(pool, merged, replica_urls)  # type: ignore[return-value]
        return cls(pool, merged)

    async def ping(self) -> None:
        """``SELECT 1`` on a pooled connection."""
        await self._fetchval("SELECT 1")

    async def server_version(self) -> str | None:
        return str(await self._fetchval("SHOW server_version"))

    async def _fetchval(self, sql: str) -> Any:
        """One value on a pooled connection. Left mid-call (cancelled by a deadline, timed
        out, cut), the connection goes back to asyncpg's pool, which waits for the call to
        end: handed to the next caller, it would refuse that caller's statement ("another
        operation is in progress")."""
        conn = await self.acquire()
        try:
            value = await conn.fetchval(sql)
        except asyncpg.PostgresError:  # the statement ended: the connection is clean
            await self.release(conn)
            raise
        except BaseException:
            self.release_later(conn)
            raise
        await self.release(conn)
        return value

    def pool_stats(self) -> dict[str, int] | None:
        held = self._held  # the connections asyncdb holds and hands from call to call
        size, idle = held.held, held.idle
        return {
            "size": size,
            "in_use": size - idle,
            "idle": idle,
            "max_size": held.max_size,
            "waits": self._pool_waits,
        }

    def classify_error(self, exc: BaseException) -> Transient | None:
        """Refused / "cannot connect now" / too many connections / a closed connection not yet
        used, and serialization failures (40001) and deadlocks (40P01), which the server rolled
        back: not applied. A connection lost mid-statement or an admin shutdown: maybe applied."""
        for err in error_chain(exc):
            if isinstance(err, _NotCommitted):
                return NOT_APPLIED
            if isinstance(err, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
                return CONTENTION
            if isinstance(err, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
                return NOT_APPLIED
            if isinstance(
                err,
                asyncpg.ConnectionDoesNotExistError
                | asyncpg.PostgresConnectionError
                | asyncpg.AdminShutdownError
                | asyncpg.CrashShutdownError,
            ):
                return MAYBE_APPLIED
            if isinstance(err, asyncpg.InternalClientError) and "in progress" in str(err):
                # A server shutting down sends an unsolicited FATAL error: the connection's
                # protocol is left mid-error when the next statement comes.
                return MAYBE_APPLIED
            if type(err) is asyncpg.InterfaceError and "connection is closed" in str(err):
                return NOT_APPLIED  # refused before sending anything
        return classify_os_error(exc)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with suppress(Exception):
            await asyncio.wait_for(self._held.close(), 10)
        with suppress(Exception):
            await asyncio.wait_for(self.pool.close(), 10)
        self.pool.terminate()

    def collection(self, spec: CollectionSpec) -> PostgresCollection:
        check_identifiers(spec)
        return PostgresCollection(self, spec)

    def check_not_owner(self) -> None:
        """Work outside the transaction this task holds would not see its writes (or wait for
        its locks): say what to do instead, as the memory backend does."""
        if asyncio.current_task() in self._owners:
            raise TransactionError(
                "this task has a transaction open: use tx.collection(name) inside it"
            )

    # --- connections -----------------------------------------------------------------------

    async def acquire(self) -> asyncpg.Connection:
        """A pooled connection, health-checked when it sat idle for a while."""
        if self._closed:
            raise BackendError("the PostgreSQL database is closed")
        got = self._held.take()  # the usual case: a held connection, used moments ago
        if (
            got is not None
            and usable(got[0])
            and (not self.health_check or time.monotonic() - got[1] < self.health_check_idle)
        ):
            return got[0]
        return await self._acquire(got)

    async def _acquire(self, got: tuple[asyncpg.Connection, float | None] | None) -> Any:
        """``acquire`` when no idle connection is fresh: wait for one, replace a connection
        the server ended, health-check one idle for long (``got``: one already taken)."""
        if got is None and self._held.must_wait():
            self._pool_waits += 1  # every connection is in use: this acquire waits for one
        for _attempt in range(3):
            try:
                conn, idle = got if got is not None else await self._held.get()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise BackendError(f"cannot get a PostgreSQL connection: {exc}") from None
            got = None
            if not usable(conn):  # the server ended it while it sat idle
                await self._held.give_back(conn)
                continue
            if not self.health_check:
                return conn
            if idle is None or time.monotonic() - idle < self.health_check_idle:
                return conn
            try:
                await conn.fetchval("SELECT 1")
                return conn
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
                await self._held.give_back(conn)
            except BaseException:  # cancelled: the connection still goes back
                self.release_later(conn)
                raise
        raise BackendError("no healthy PostgreSQL connection after 3 attempts")

    async def release(self, conn: asyncpg.Connection) -> None:
        """Hand ``conn`` to the next caller (no await, no reset: see ``keep_session``), or
        back to asyncpg's pool when it is not clean."""
        if not self._held.put(conn):
            await self._held.give_back(conn)

    def release_later(self, conn: asyncpg.Connection, *, rollback: bool = False) -> None:
        """Give ``conn`` back to the pool in the background (after a ROLLBACK with
        ``rollback``): what a cancelled call does, so that its error is not held up by the
        server it may be waiting on."""

        async def clean_up() -> None:
            if rollback:
                with suppress(Exception):
                    await conn.execute("ROLLBACK")
            with suppress(Exception):
                # asyncpg's pool: it waits for a cancelled statement to end before reuse.
                await self._held.give_back(conn)

        _later(clean_up())

    # --- sections ----------------------------------------------------------------------------

    @asynccontextmanager
    async def section(
        self, session: Session | None, *, transaction: bool
    ) -> AsyncIterator[PostgresSession]:
        """A write section (or a user transaction): its own transaction on a pooled
        connection, or a savepoint inside ``session``."""
        if session is not None:
            assert isinstance(session, PostgresSession)
            async with session.lock.hold():
                conn = session.check()
                root = session.root
                root.savepoints += 1
                name = f"asyncdb_sp{root.savepoints}"
                inner = PostgresSession(
                    conn, session.lock, transaction=True, locking=True, root=root
                )
                await self._run(conn, f"SAVEPOINT {name}")
                try:
                    yield inner
                except BaseException:
                    if root.open:
                        with suppress(Exception):
                            await conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                            await conn.execute(f"RELEASE SAVEPOINT {name}")
                    raise
                await self._run(conn, f"RELEASE SAVEPOINT {name}")
            return
        self.check_not_owner()
        task = asyncio.current_task()
        conn = await self.acquire()
        own = PostgresSession(
            conn, _SessionLock(), transaction=transaction, locking=not transaction
        )
        if transaction and task is not None:
            self._owners.add(task)
        released = False
        try:
            isolation = "REPEATABLE READ" if transaction else "READ COMMITTED"
            await self._run(conn, f"BEGIN ISOLATION LEVEL {isolation}")
            try:
                yield own
            except asyncio.CancelledError:
                own.open = False
                if transaction:  # a user transaction rolls back before the error goes on
                    with suppress(Exception):
                        await asyncio.shield(conn.execute("ROLLBACK"))
                    raise
                self.release_later(conn, rollback=True)  # a write section: in the background
                released = True
                raise
            except BaseException as exc:
                own.open = False
                # Shielded: a second cancellation must not leave the transaction open.
                with suppress(Exception):
                    await asyncio.shield(conn.execute("ROLLBACK"))
                if not transaction and isinstance(exc, Exception):
                    lost = self.classify_error(exc)
                    if lost is not None and lost.maybe_applied:
                        raise _NotCommitted(f"{exc} (before its COMMIT)") from exc
                raise
            own.open = False
            pid = conn.get_server_pid()
            try:
                await conn.execute("COMMIT")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                lost = self.classify_error(exc)
                if transaction or not own.xid_known or lost is None or not lost.maybe_applied:
                    with suppress(Exception):
                        await conn.execute("ROLLBACK")
                    raise _pg_error(exc, "commit failed") from None
                await self._settle_commit(own.xid, pid, exc)
        except asyncio.CancelledError:
            if not released and not transaction:  # cancelled in BEGIN or COMMIT
                self.release_later(conn, rollback=True)
                released = True
            raise
        finally:
            own.open = False
            if task is not None:
                self._owners.discard(task)
            if not released:
                await self.release(conn)

    async def _settle_commit(self, xid: int | None, pid: int, lost: Exception) -> None:
        """The reply to a write section's COMMIT was lost: ask the server what became of its
        transaction, on another connection. Committed: the section succeeded (its result
        stands, nothing is sent again). Rolled back: ``_NotCommitted``, so it is resent. Still
        in progress (the server has not yet seen the connection go): asked again every 50 ms,
        and after a second that session is ended (only if it still holds this transaction),
        which settles it either way. ``xid`` None: the section wrote nothing, nothing to lose.
        An answer that cannot be had is the BackendError of the lost reply (outcome unknown)."""
        if xid is None:
            return
        unknown = f"commit failed, its outcome unknown ({lost})"
        try:
            probe = await self.acquire()
        except BackendError:
            raise BackendError(unknown) from lost
        try:
            for attempt in range(200):
                status = await probe.fetchval("SELECT txid_status($1)", xid)
                if status == "committed":
                    return
                if status == "aborted":
                    raise _NotCommitted(f"{lost} (its COMMIT's reply was lost; rolled back)")
                if status != "in progress":
                    break
                if attempt == 20:
                    await probe.fetchval(_END_HOLDER, pid, xid % 2**32)
                await asyncio.sleep(0.05)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            raise BackendError(unknown) from lost
        finally:
            await self.release(probe)
        raise BackendError(unknown) from lost

    @staticmethod
    async def _run(conn: asyncpg.Connection, sql: str) -> None:
        try:
            await conn.execute(sql)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _pg_error(exc, sql.split()[0].lower()) from None

    def transaction(self) -> Any:
        return self.section(None, transaction=True)

    # --- statements --------------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any], session: Session | None) -> list[Any]:
        """Run a bounded query to completion in one round trip."""
        try:
            if session is not None:
                assert isinstance(session, PostgresSession)
                async with session.lock.hold():
                    rows: list[Any] = await session.check().fetch(sql, *params)
                    return rows
            self.check_not_owner()
            conn = await self.acquire()
            try:
                rows = await conn.fetch(sql, *params)
            except asyncio.CancelledError:
                self.release_later(conn)
                raise
            except BaseException:
                await self.release(conn)
                raise
            await self.release(conn)
            return rows
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _pg_error(exc, "query failed") from None

    async def point_row(self, sql: str, params: Sequence[Any]) -> Any:
        """The row of a key lookup outside a transaction (None: no such row), run on a
        statement prepared once per held connection and SQL text: no statement-cache lookup
        and none of ``fetch``'s layers per call (``statement_cache_size=0``, for poolers that
        forbid named statements: an unnamed one each time)."""
        if self._owners:
            self.check_not_owner()
        conn = await self.acquire()
        held = self._held
        try:
            if not self._prepare_points:
                row = await conn.fetchrow(sql, *params)
            else:
                stmt = held.statement(conn, sql)
                if stmt is None:
                    stmt = await held.prepare(conn, sql)
                try:
                    row = await stmt.fetchrow(*params)
                except _STATEMENT_GONE:  # deallocated, or the table's row type changed
                    held.forget(conn)
                    row = await (await held.prepare(conn, sql)).fetchrow(*params)
        except asyncio.CancelledError:
            self.release_later(conn)
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            held.forget(conn)  # prepared again next time (the table may have changed)
            await self.release(conn)
            raise _pg_error(exc, "query failed") from None
        except BaseException:
            await self.release(conn)
            raise
        if not held.put(conn, clean=True):
            await held.give_back(conn)
        return row

    async def execute(
        self, sql: str, params: Sequence[Any], session: Session | None, what: str
    ) -> str:
        """Run one UPDATE or DELETE; returns its status (``UPDATE 3``). In a write section the
        statement also reports the transaction id, in the same round trip (``note_xid``)."""
        async with self.section(session, transaction=False) as s, s.lock.hold():
            try:
                if s.root.in_transaction or not self.prove_commits:
                    status: str = await s.check().execute(sql, *params)
                    return status
                count, xid = await s.check().fetchrow(
                    f"WITH w AS ({sql} RETURNING 1) SELECT count(*), {_XID} FROM w", *params
                )
                s.note_xid(xid)
                return f"{sql.split(None, 1)[0]} {count}"
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise _pg_error(exc, what) from None

    async def write_fetch(
        self, sql: str, params: Sequence[Any], what: str, *, idempotent: bool = True
    ) -> list[Any]:
        """One write statement outside a transaction whose last column is ``_XID``. With
        ``exactly_once_native=1``, or when it is not ``idempotent`` (an ``$inc``: applied twice
        it would be wrong), in a write section of its own, so a lost reply to its COMMIT is
        settled (``_settle_commit``) instead of leaving the outcome unknown; else one
        autocommitted round trip, at most once (benchmarks/bench_postgres_commit.py: the
        section costs about 2.5x). Its rows."""
        if not (self.prove_commits and (self.exactly_once_native or not idempotent)):
            return await self.fetch(sql, params, None)
        async with self.section(None, transaction=False) as s:
            try:
                rows: list[Any] = await s.check().fetch(sql, *params)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise _pg_error(exc, what) from None
            s.note_xid(rows[0][-1] if rows else None)
            return rows

    async def stream(
        self, sql: str, params: Sequence[Any], session: Session | None
    ) -> AsyncIterator[list[Any]]:
        """Batches of rows from a server-side cursor (constant memory)."""
        if session is not None:
            assert isinstance(session, PostgresSession)
            async for batch in self._cursor(session.check(), session.lock, sql, params):
                yield batch
            return
        self.check_not_owner()
        conn = await self.acquire()
        try:
            # A cursor lives in a transaction: a read-only snapshot for the whole stream.
            await self._run(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            async for batch in self._cursor(conn, None, sql, params):
                yield batch
        except asyncio.CancelledError:
            self.release_later(conn, rollback=True)
            raise
        except BaseException:  # an error, or the consumer stopped early (GeneratorExit)
            with suppress(Exception):
                await asyncio.shield(conn.execute("ROLLBACK"))
            await self.release(conn)
            raise
        with suppress(Exception):
            await asyncio.shield(conn.execute("ROLLBACK"))
        await self.release(conn)

    async def _cursor(
        self,
        conn: asyncpg.Connection,
        lock: _SessionLock | None,
        sql: str,
        params: Sequence[Any],
    ) -> AsyncIterator[list[Any]]:
        cursor: Any = None
        while True:
            try:
                if lock is not None:
                    async with lock.hold():
                        if cursor is None:
                            cursor = await conn.cursor(sql, *params)
                        batch = await cursor.fetch(self.batch_size)
                else:
                    if cursor is None:
                        cursor = await conn.cursor(sql, *params)
                    batch = await cursor.fetch(self.batch_size)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise _pg_error(exc, "query failed") from None
            if not batch:
                return
            yield batch
            if len(batch) < self.batch_size:
                return

    # --- schema ------------------------------------------------------------------------------

    # --- breadth: native statements ------------------------------------------------------------

    def native_writes(self, statement: Any) -> bool:
        return not sql_reads_only(statement, "SQL")

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        """One SQL statement (``$1`` placeholders) in a transaction of its own; a read runs in
        a READ ONLY transaction (PostgreSQL refuses any write it attempts)."""
        args = native_params(params, mapping=False)
        conn = await self.acquire()
        try:
            async with conn.transaction(readonly=not writes):
                rows = await conn.fetch(statement, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _pg_error(exc, "native statement") from None
        finally:
            # A statement asyncdb did not write may SET, LISTEN or lock (see keep_session), or
            # DEALLOCATE the point reads' statements.
            self._held.forget(conn)
            try:
                await asyncio.shield(reset_session(conn))
            except BaseException as exc:
                conn.terminate()  # a broken or cancelled reset: the connection is not reused
                if not isinstance(exc, Exception):
                    raise
            finally:
                await self.release(conn)
        return [dict(row) for row in rows]

    async def run_ddl(
        self,
        stmts: Sequence[str],
        table: str,
        key_count: int,
        fill: Callable[[asyncpg.Connection, list[str]], Awaitable[None]] | None = None,
    ) -> None:
        """Create a collection's table and indexes (idempotent; concurrent creators serialised
        by an advisory lock, since CREATE ... IF NOT EXISTS races with itself). ``fill`` gets
        the sort-key columns the DDL added to an existing table, to compute them."""
        conn = await self.acquire()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", table)
                before = await self._column_names(conn, table)
                if before:
                    keys = [c for c in before if c.startswith("k")]
                    if len(keys) != key_count:
                        raise ConfigurationError(
                            f"collection {table!r} is stored with {len(keys)} key field(s), "
                            f"not {key_count}"
                        )
                for stmt in stmts:
                    await conn.execute(stmt)
                if before and fill is not None:
                    after = await self._column_names(conn, table)
                    await fill(conn, [c for c in after if c not in before])
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _pg_error(exc, f"cannot create {table!r}") from None
        finally:
            await self.release(conn)

    @staticmethod
    async def _column_names(conn: asyncpg.Connection, table: str) -> list[str]:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
        return [str(r[0]) for r in rows]


_KEY_BYTES = 2000  # PostgresCollection.limits.key_bytes
_KEY_QUICK = _KEY_BYTES // 12  # keys no longer than this fit unmeasured (StoreLimits.key_quick)
COPY_MIN = 64  # documents: a batch this large is inserted by COPY, a smaller by executemany
INDEXED_VALUE_BYTES = 2000  # a btree entry holds at most 2704 bytes, the key columns included


class PostgresCollection(StoreCollection):
    """One table: key columns ``k0..`` (bytea), ``body`` (the JSON text), ``doc`` (jsonb,
    generated from it) and ``tagged``."""

    store: PostgresStore
    locking_sections = True
    # A key's encoded columns are one btree primary-key entry (at most 2704 bytes).
    limits = StoreLimits(key_bytes=_KEY_BYTES)
    assert not limits.measured and limits.key_quick == _KEY_QUICK  # check_document inlines it
    # A large insert_many is one COPY fed while its documents are validated (insert_streamed).
    streamed_insert_min = 2048

    def check_document(self, doc: Doc, key: KeyTuple | None = None) -> None:
        """Also the btree entries of declared indexes: an indexed value's sort key (with the
        key) must fit one entry, else the insert would fail in the server. The base checks
        come down to the key's size (nothing is measured here), inlined: every insert runs
        this once per document."""
        if key is None:
            key = key_of(doc, self.spec)
        for value in key:
            if type(value) is str and len(value) > _KEY_QUICK:
                self._check_key_size(key, _KEY_BYTES)
                break
        if self._sort_columns:
            longest = max(map(len, sort_values(doc, self._sort_columns)))
            if longest > INDEXED_VALUE_BYTES:
                raise QueryError(
                    f"index entry limit: postgres indexes values of at most "
                    f"{INDEXED_VALUE_BYTES} bytes (as sort keys), this document has one of "
                    f"{longest}: do not index a field holding such values"
                )

    def __init__(self, store: PostgresStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec
        self.planner = PostgresPlanner(spec)
        table = quote_ident(spec.name)
        self._table = table
        n = len(spec.key)
        self._sort_columns = self.planner.sort_columns
        extra = [c for pair in self._sort_columns.values() for c in pair]
        self._columns = [f"k{i}" for i in range(n)] + ["body", "tagged", *extra]
        cols = ", ".join(quote_ident(c) for c in self._columns)
        self._insert_sql = (
            f"INSERT INTO {table} ({cols}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(self._columns)))})"
        )
        self._multi_row_sql: dict[int, str] = {}  # insert_autocommitted's, by rows
        keys = [f'"k{i}"' for i in range(n)]
        by_key0 = " AND ".join(f"{k} = ${i + 1}" for i, k in enumerate(keys))
        # Set-based writes: every row of a batch in one statement (one round trip), the rows
        # given as parallel arrays that unnest pairs up again.
        arrays = ", ".join(f"${i + 1}::bytea[]" for i in range(n))
        aliases = ", ".join(keys)
        joined = " AND ".join(f"{table}.{k} = u.{k}" for k in keys)
        sets = ["body = u.body", "tagged = u.tagged"]
        sets += [f"{quote_ident(c)} = u.{quote_ident(c)}" for c in extra]
        extra_arrays = "".join(f", ${n + 3 + i}::bytea[]" for i in range(len(extra)))
        extra_aliases = "".join(f", {quote_ident(c)}" for c in extra)
        self._update_sql = (
            f"UPDATE {table} SET {', '.join(sets)} "
            f"FROM unnest({arrays}, ${n + 1}::text[], ${n + 2}::smallint[]{extra_arrays}) "
            f"AS u({aliases}, body, tagged{extra_aliases}) WHERE {joined}"
        )
        if n == 1:
            self._delete_sql = f'DELETE FROM {table} WHERE "k0" = ANY($1::bytea[])'
        else:
            self._delete_sql = (
                f"DELETE FROM {table} USING unnest({arrays}) AS u({aliases}) WHERE {joined}"
            )
        self._get_sql = f"SELECT body, tagged FROM {table} WHERE {by_key0}"

    async def ensure(self) -> None:
        await self.store.run_ddl(
            schema(self.spec), self.spec.name, len(self.spec.key), self._fill_sort_columns
        )

    async def _fill_sort_columns(self, conn: asyncpg.Connection, added: list[str]) -> None:
        """Compute the sort keys of existing rows for sort-key columns just added to an existing
        table (an index declared after the documents were written), in batches."""
        if not added:
            return
        missing = " OR ".join(f"{quote_ident(c)} IS NULL" for c in added)
        select = f"SELECT body, tagged FROM {self._table} WHERE {missing} LIMIT 1000"
        while rows := await conn.fetch(select):
            docs = [decode_doc(text, flags) for text, flags in rows]
            await conn.execute(self._update_sql, *self._update_params(docs))

    async def drop(self) -> None:
        """``DROP TABLE``: the documents, the sort-key columns and every index."""
        conn = await self.store.acquire()
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {self._table}")
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _pg_error(exc, f"cannot drop {self.spec.name!r}") from None
        finally:
            await self.store.release(conn)

    async def estimated_count(self) -> int:
        """The planner's row estimate (``pg_class.reltuples``, as fresh as the last
        ANALYZE/autovacuum) when it says the table is large; below a million rows, where a
        ``count(*)`` is cheap, the exact count."""
        conn = await self.store.acquire()
        try:
            estimate = await conn.fetchval(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)", self._table
            )
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return int(estimate)
            return int(await conn.fetchval(f"SELECT count(*) FROM {self._table}"))
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _pg_error(exc, f"count on {self.spec.name!r} failed") from None
        finally:
            await self.store.release(conn)

    def plan(self, query: Query) -> Plan:
        return self.planner.plan(query)

    def execution_plan(self, query: Query) -> Plan:
        """The lean plan (no filter rendering, which only ``explain()`` needs)."""
        return self.planner.plan(query, explain=False)

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        return self.planner.binder(query)

    # --- aggregation: a leading $match + $group as one GROUP BY where exact -----------------

    def group_statement(self, shape: GroupShape, plan: Plan) -> tuple[str, list[Any]]:
        stmt: Statement = plan.payload
        return group_sql(shape, self._table, stmt.where), list(stmt.where_params)

    async def fetch_groups(
        self, shape: GroupShape, sql: str, params: list[Any], session: Session | None
    ) -> Sequence[Sequence[Any]]:
        """The fast statement first (outside a transaction, which a failed statement would
        abort): it casts each summed value to numeric, which fails on any value that is not a
        number; then the exact per-type statement ``sql``."""
        if session is None and shape.fields:
            fast = fast_group_sql(shape, sql)
            if fast is not None:
                try:
                    rows = await self.store.fetch(fast, params, None)
                except BackendError as exc:
                    if NOT_NUMERIC not in str(exc):
                        raise
                    # a string, bool, null or object among the summed values: exact form
                else:
                    return fast_partial_rows(shape, rows)
        return partial_rows(shape, await self.store.fetch(sql, params, session))

    def _locked(self, stmt: Statement, session: Session | None) -> str:
        if isinstance(session, PostgresSession) and session.locking:
            return stmt.sql + " FOR UPDATE"
        return stmt.sql

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        stmt: Statement = plan.payload
        sql = self._locked(stmt, session)
        if stmt.bounded is not None and stmt.bounded <= self.store.batch_size:
            for text, flags in await self.store.fetch(sql, stmt.params, session):
                yield decode_doc(text, flags)
            return
        batches = self.store.stream(sql, stmt.params, session)
        try:
            async for batch in batches:
                for text, flags in batch:
                    yield decode_doc(text, flags)
        finally:  # stopped early: the cursor's connection goes back now
            await close_stream(batches)

    def _key_params(self, doc: Doc) -> list[bytes]:
        return [encode_key(v) for v in key_of(doc, self.spec)]

    def _record_stream(self, docs: list[Doc]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``docs``, one at a time (COPY encodes and sends them as they come)."""
        columns = self._sort_columns
        if columns:
            for doc in docs:
                yield (*self._key_params(doc), *encode_doc(doc), *sort_values(doc, columns))
        elif self.spec.single_key:
            field = self.spec.key[0]
            for doc in docs:
                yield (encode_key(doc[field]), *encode_doc(doc))
        else:
            for doc in docs:
                yield (*self._key_params(doc), *encode_doc(doc))

    def _records(self, docs: list[Doc]) -> list[tuple[Any, ...]]:
        """The rows of ``docs`` (synchronous: the collector waits for a large batch)."""
        with gc_paused(len(docs) >= GC_PAUSE_MIN):
            return list(self._record_stream(docs))

    async def insert_autocommitted(self, docs: list[Doc]) -> bool:
        """One multi-row ``INSERT`` in autocommit, one round trip (not the write section's
        ``BEGIN`` / insert / ``COMMIT``)."""
        width = len(self._columns)
        if self.spec.ttl is not None or not docs or len(docs) * width > 32767:
            return False  # 32767: the protocol's bound-parameter limit
        sql = self._multi_row_sql.get(len(docs))
        if sql is None:
            head = self._insert_sql.split(" VALUES ", 1)[0]
            groups = (
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                for r in range(len(docs))
            )
            sql = self._multi_row_sql[len(docs)] = f"{head} VALUES " + ", ".join(groups)
        params = [value for row in self._records(docs) for value in row]
        await self.store.fetch(sql, params, None)
        return True

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        """A batch of at least ``COPY_MIN`` documents is one binary COPY in the write section
        (all or nothing; a duplicate key fails the COPY: DuplicateKey, nothing inserted). Its
        rows are encoded while COPY sends the earlier ones, so the server parses and indexes
        them meanwhile; a document only this encoding refuses (a U+0000 in a string, which
        jsonb cannot hold) then stops the COPY: the same QueryError, nothing written."""
        copy = len(docs) >= COPY_MIN
        records = self._record_stream(docs) if copy else self._records(docs)
        await self._insert_records(records, copy, session)

    async def insert_streamed(self, chunks: Iterator[list[Doc]]) -> None:
        """One binary COPY of every chunk's rows in one write section: a chunk is drawn (the
        caller validates it then) when COPY has sent the rows before it, so validating,
        encoding and the server's parsing and indexing overlap. An exception from ``chunks``
        aborts the COPY and rolls the section back: nothing written."""
        records = chain.from_iterable(map(self._record_stream, chunks))
        await self._insert_records(records, True, None)

    async def _insert_records(
        self, records: Iterable[tuple[Any, ...]], copy: bool, session: Session | None
    ) -> None:
        async with self.store.section(session, transaction=False) as s, s.lock.hold():
            conn = s.check()
            try:
                if copy:
                    await conn.copy_records_to_table(
                        self.spec.name, records=records, columns=self._columns
                    )
                else:
                    await conn.executemany(self._insert_sql, records)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise _pg_error(exc, f"insert into {self.spec.name!r}") from None
            if s.root.xid is None:  # it wrote, but no statement reported the transaction id
                s.root.xid_known = False

    def _key_columns(self, docs: list[Doc]) -> list[list[bytes]]:
        """The keys of ``docs`` as one array per key column (for ``unnest``)."""
        columns: list[list[bytes]] = [[] for _ in self.spec.key]
        for doc in docs:
            for column, value in zip(columns, self._key_params(doc), strict=True):
                column.append(value)
        return columns

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        """Rewrite every changed document in one ``UPDATE ... FROM unnest`` statement. ``body``
        stays the source of truth, so the new text is computed here: jsonb_set in SQL would
        reorder fields and turn -0.0 into 0, which the stored text must keep."""
        params = self._update_params([new for _old, new in pairs])
        await self.store.execute(self._update_sql, params, session, f"update of {self.spec.name!r}")

    def _update_params(self, docs: list[Doc]) -> list[Any]:
        """The parameters of ``_update_sql`` that rewrite the rows of ``docs`` (their keys,
        texts, flags and sort keys, one array per column)."""
        encoded = [encode_doc(doc) for doc in docs]
        params: list[Any] = [
            *self._key_columns(docs),
            [text for text, _flags in encoded],
            [flags for _text, flags in encoded],
        ]
        if self._sort_columns:
            values = [sort_values(doc, self._sort_columns) for doc in docs]
            params += [[v[i] for v in values] for i in range(len(values[0]))]
        return params

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        """Delete every document of ``docs`` in one statement."""
        await self.store.execute(
            self._delete_sql, self._key_columns(docs), session, f"delete from {self.spec.name!r}"
        )

    def atomic(self, session: Session | None) -> Any:
        return self.store.section(session, transaction=False)

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        """The point read: one primary-key lookup in one round trip (with a TTL the planned
        query, which adds the expiry condition)."""
        if self.spec.ttl is not None:
            return await super().get(key, session)
        params = [encode_key(key[0])] if len(key) == 1 else [encode_key(v) for v in key]
        if session is None:
            row = await self.store.point_row(self._get_sql, params)
            return None if row is None else decode_doc(row[0], row[1])
        rows = await self.store.fetch(self._get_sql, params, session)
        if not rows:
            return None
        text, flags = rows[0]
        doc: Doc = decode_doc(text, flags)
        return doc

    # --- native shortcuts: one statement when nothing is left to re-check --------------------

    def _native_update(
        self, update: Update
    ) -> tuple[list[str], list[str | None], list[int | None], list[str]] | None:
        """``(assigned fields, their JSON texts, their increments, unset fields)`` when
        ``update`` is only ``$set`` of top-level fields to strings, booleans, null or 64-bit
        ints, ``$inc`` of top-level fields by a 64-bit int and ``$unset`` of top-level fields,
        none of them a key, index or TTL field (their sort keys and expiry are computed in
        Python). An assigned field has a text (``$set``) or an increment (``$inc``). For those
        values the stored text of an equal value is the same text, so comparing texts in SQL
        says whether a document changes exactly as ``strict_equal``."""
        if update.replacement is not None or update.pipeline is not None:
            return None
        spec = self.spec
        blocked = set(spec.key) | {p[0] for index in spec.indexes for p in index.paths}
        if spec.ttl is not None:
            blocked.add(spec.ttl.split(".")[0])
        names: list[str] = []
        texts: list[str | None] = []
        incs: list[int | None] = []
        unsets: list[str] = []
        for op in update.ops:
            if len(op.path) != 1 or op.path[0] in blocked:
                return None
            if op.op == "$unset":
                unsets.append(op.path[0])
                continue
            value, t = op.value, type(op.value)
            if op.op == "$inc":
                if t is not int or not -(2**63) <= value < 2**63:
                    return None
                names.append(op.path[0])
                texts.append(None)
                incs.append(value)
                continue
            if op.op != "$set" or not (
                value is None
                or t is bool
                or (t is int and -(2**63) <= value < 2**63)
                or (t is str and "\x00" not in value)
            ):
                return None
            try:
                texts.append(orjson.dumps(value).decode())
            except orjson.JSONEncodeError:  # a lone surrogate: the general path says why
                return None
            names.append(op.path[0])
            incs.append(None)
        return names, texts, incs, unsets

    def _update_statement(self, where: str, first: int, multi: bool) -> str:
        """One statement that locks the matching rows, rewrites each stored text in SQL and
        returns how many rows matched, how many changed, and how many it could not rewrite.

        The new text is the one ``encode_doc`` writes for the updated document: the text is
        rebuilt field by field (``json_each`` over the text as ``json`` keeps every value's
        text, ``to_json`` renders a name as orjson does), kept fields keep their place, set
        and incremented fields change in place or are appended in the update's order, unset
        fields go. An ``$inc`` is done in SQL only on a stored integer (a JSON number of
        digits: orjson writes every float with a point or an exponent) whose sum stays in 64
        bits, or on a missing field (set to the increment); when any matched row holds
        anything else (a float, a Decimal, a string, null, a sum out of range), nothing is
        written and the third count says so: the caller then runs the general update, which
        gives that case's result or error."""
        keys = [f'"k{i}"' for i in range(len(self.spec.key))]
        a, v, d = f"${first}::text[]", f"${first + 1}::text[]", f"${first + 2}::numeric[]"
        c = f"${first + 3}::text[]"
        joined = " AND ".join(f"t.{k} = m.{k}" for k in keys)
        limit = "" if multi else " LIMIT 1"
        return (
            f"WITH m AS (SELECT {', '.join(keys)}, body FROM {self._table}{where}{limit} "
            "FOR UPDATE), "
            f"bad AS (SELECT 1 FROM m, unnest({a}, {d}) AS s(k, d) WHERE s.d IS NOT NULL "
            "AND (m.body::json -> s.k) IS NOT NULL AND NOT ("
            "json_typeof(m.body::json -> s.k) = 'number' "
            "AND (m.body::json ->> s.k) ~ '^-?[0-9]+$' "
            "AND (m.body::json ->> s.k)::numeric + s.d "
            "BETWEEN -9223372036854775808 AND 9223372036854775807) LIMIT 1), "
            f"u AS (UPDATE {self._table} AS t SET body = (SELECT '{{' || string_agg("
            "to_json(x.k)::text || ':' || x.v, ',' ORDER BY x.n) || '}' FROM ("
            "SELECT e.key AS k, CASE WHEN s.k IS NULL THEN e.value::text "
            "WHEN s.d IS NULL THEN s.v ELSE ((e.value::text)::numeric + s.d)::text END AS v, "
            "e.n FROM json_each(m.body::json) WITH ORDINALITY AS e(key, value, n) "
            f"LEFT JOIN unnest({a}, {v}, {d}) AS s(k, v, d) ON s.k = e.key "
            f"WHERE e.key <> ALL({c}) "
            "UNION ALL SELECT s.k, COALESCE(s.v, s.d::text), 4294967296 + s.i "
            f"FROM unnest({a}, {v}, {d}) WITH ORDINALITY AS s(k, v, d, i) "
            "WHERE (m.body::json -> s.k) IS NULL) AS x) "
            f"FROM m WHERE {joined} AND NOT EXISTS (SELECT 1 FROM bad) AND ("
            f"EXISTS (SELECT 1 FROM unnest({a}, {v}, {d}) AS s(k, v, d) WHERE "
            "CASE WHEN s.d IS NULL "
            "THEN (m.body::json -> s.k)::text IS DISTINCT FROM s.v "
            "ELSE (m.body::json -> s.k) IS NULL OR s.d <> 0 END) "
            f"OR EXISTS (SELECT 1 FROM unnest({c}) AS r(k) "
            "WHERE (m.body::json -> r.k) IS NOT NULL)) RETURNING 1) "
            "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM u), "
            f"(SELECT count(*) FROM bad), {_XID}"
        )

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
        """A ``$set``/``$inc``/``$unset`` of plain top-level values (``_native_update``) under
        an exact filter is one statement, atomic per row (its rows are locked, and PostgreSQL
        re-checks the filter on a row changed meanwhile); anything else is the shared
        read-modify-write under a row lock."""
        native = None
        if not upsert and return_document is None and not sort:
            native = self._native_update(update)
        if native is not None:
            query = Query(self.visible(node), limit=None if multi else 1)
            plan = self.execution_plan(query)
            if plan.residual_node is not None:
                native = None
        if native is None:
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
        self.check_scan(plan, query, allow_scan)
        stmt: Statement = plan.payload
        sql = self._update_statement(stmt.where, len(stmt.where_params) + 1, multi)
        params = [*stmt.where_params, *native]
        if isinstance(session, PostgresSession):
            async with session.lock.hold():
                try:
                    rows = await session.check().fetch(sql, *params)
                except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise _pg_error(exc, f"update of {self.spec.name!r}") from None
        else:
            rows = await self.store.write_fetch(
                sql,
                params,
                f"update of {self.spec.name!r}",
                idempotent=all(inc is None for inc in native[2]),
            )
        matched, modified, refused, _xid = rows[0]
        if refused:  # an $inc SQL cannot do exactly: nothing was written, the general path
            return await super().update(
                node, update, multi=multi, upsert=upsert, session=session, allow_scan=allow_scan
            )
        return UpdateResult(int(matched), int(modified)), None

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        query = Query(self.visible(node))
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        if plan.residual_node is not None:
            return await super().count(node, session, allow_scan=allow_scan)
        stmt: Statement = plan.payload
        sql = f"SELECT COUNT(*) FROM {self._table}{stmt.where}"
        rows = await self.store.fetch(sql, stmt.where_params, session)
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
        status = await self.store.execute(
            f"DELETE FROM {self._table}{stmt.where}",
            stmt.where_params,
            session,
            f"delete from {self.spec.name!r}",
        )
        return int(status.split()[-1])

    async def query_plan(self, plan: Plan, *, analyze: bool = False) -> list[str]:
        """PostgreSQL's ``EXPLAIN`` (``EXPLAIN ANALYZE`` with ``analyze``) of a plan, by line."""
        stmt: Statement = plan.payload
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        rows = await self.store.fetch(prefix + stmt.sql, stmt.params, None)
        return [str(row[0]) for row in rows]


__all__ = ["PostgresCollection", "PostgresSession", "PostgresStore"]
