"""PostgreSQL read replicas: ``asyncdb.connect(url, replicas=["postgresql://...", ...])``.

Reads outside a transaction (point reads, queries, counts, grouped reads) go to a healthy
replica, in turn; writes, transactions and write sections stay on the primary.

Read-your-writes: after a task writes (a write section, a one-statement update, a native write,
DDL), its later reads, and those of tasks it starts afterwards (a context variable), need a
replica that has replayed the write. On its first read after the write the task asks the
primary for ``pg_current_wal_insert_lsn()`` (not ``pg_current_wal_lsn()``: with asynchronous
commit the commit record may still be in the WAL buffers, past the written position; the insert
position is at or after the end of every record already inserted, the commit included). A read
goes to a replica whose ``pg_last_wal_replay_lsn()`` is at or past it; it waits up to
``replica_wait`` seconds (0.1) for one, polling (one poll per replica at a time, shared by the
waiting reads), else reads the primary. Reads of other tasks may see a replica's lag.

Health: a replica call that fails or takes longer than ``replica_timeout`` (1.0 s) marks it
down for ``replica_cooldown`` seconds (1.0) and the read is run again on the primary (reads
are idempotent), so a replica stopping never fails a read. After the cool-down the next read
tries it again. A query error on a replica (a table it has not replayed yet, a conflict with
recovery) is also retried on the primary, whose answer (or error) is the one returned.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import structlog

from asyncdb.backends.base import Session, sql_reads_only
from asyncdb.backends.postgres.replica_config import lsn_int
from asyncdb.backends.postgres.store import PostgresSession, PostgresStore, keep_session

log = structlog.get_logger("asyncdb.postgres")

T = TypeVar("T")

_PENDING = -1  # the task wrote; its LSN is asked for on its next read
_POLL_EVERY = 0.002  # seconds between replay-position polls while a read waits


@dataclass(slots=True, eq=False)
class Replica:
    """One replica: its pool, health and the last replay position seen."""

    where: str  # host:port/db, for messages (no credentials)
    pool: asyncpg.Pool
    down_until: float = 0.0
    lagging_until: float = 0.0  # it missed a read-your-writes bound: not waited for meanwhile
    replayed: int = 0
    reads: int = 0
    failures: int = 0
    poll: asyncio.Future[None] | None = field(default=None)

    def healthy(self, now: float) -> bool:
        return now >= self.down_until


class ReplicatedPostgresStore(PostgresStore):
    """:class:`PostgresStore` with reads outside transactions sent to replicas (see the module
    docstring). Everything else is the primary's store, unchanged."""

    def __init__(self, pool: asyncpg.Pool, options: Mapping[str, Any]) -> None:
        super().__init__(pool, options)
        self.replicas: list[Replica] = []
        self.replica_wait = float(options["replica_wait"])
        self.replica_timeout = float(options["replica_timeout"])
        self.replica_cooldown = float(options["replica_cooldown"])
        self.primary_reads = 0
        self._turn = itertools.count()
        self._reads_only: dict[str, bool] = {}
        # The LSN this task (and the tasks it starts) must see: None (no write), _PENDING.
        self._written: contextvars.ContextVar[int | None] = contextvars.ContextVar(
            f"asyncdb_pg_written_{id(self)}", default=None
        )

    async def open_replicas(self, urls: list[str], options: Mapping[str, Any]) -> None:
        """A pool per replica. ``min_size=0``: nothing connects here, so a replica that is down
        when the database opens is only marked down on first use."""
        timeout = options["command_timeout"]
        for url in urls:
            parts = urlsplit(url)
            pool = await asyncpg.create_pool(
                url,
                min_size=0,
                max_size=int(options["max_size"]),
                max_inactive_connection_lifetime=float(options["max_inactive_connection_lifetime"]),
                statement_cache_size=int(options["statement_cache_size"]),
                command_timeout=None if timeout in (None, "", "none") else float(timeout),
                reset=keep_session,  # replicas only run asyncdb's reads
            )
            assert pool is not None
            where = f"{parts.hostname}:{parts.port or 5432}{parts.path}"
            self.replicas.append(Replica(where, pool))

    def replica_stats(self) -> dict[str, Any]:
        """Reads served per replica and by the primary, and each replica's health."""
        now = time.monotonic()
        return {
            "primary_reads": self.primary_reads,
            "replicas": [
                {
                    "where": r.where,
                    "reads": r.reads,
                    "failures": r.failures,
                    "healthy": r.healthy(now),
                    "replayed_lsn": r.replayed,
                }
                for r in self.replicas
            ],
        }

    async def close(self) -> None:
        for replica in self.replicas:
            with suppress(Exception):
                await asyncio.wait_for(replica.pool.close(), 5)
            replica.pool.terminate()
        await super().close()

    # --- writes: remember that this task wrote ---------------------------------------------

    def _wrote(self) -> None:
        self._written.set(_PENDING)

    @asynccontextmanager
    async def section(
        self, session: Session | None, *, transaction: bool
    ) -> AsyncIterator[PostgresSession]:
        try:
            async with super().section(session, transaction=transaction) as s:
                yield s
        finally:
            self._wrote()  # also when it failed: it may have committed

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        try:
            return await super().native(statement, params, writes=writes)
        finally:
            if writes:
                self._wrote()

    async def run_ddl(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().run_ddl(*args, **kwargs)
        finally:
            self._wrote()

    # --- reads ------------------------------------------------------------------------------

    def _is_read(self, sql: str) -> bool:
        known = self._reads_only.get(sql)
        if known is None:
            known = sql_reads_only(sql) and " FOR UPDATE" not in sql
            if len(self._reads_only) < 4096:
                self._reads_only[sql] = known
        return known

    async def fetch(self, sql: str, params: Sequence[Any], session: Session | None) -> list[Any]:
        if session is not None or not self.replicas:
            return await super().fetch(sql, params, session)
        if not self._is_read(sql):  # a one-statement write (an UPDATE in a CTE)
            try:
                return await super().fetch(sql, params, session)
            finally:
                self._wrote()
        self.check_not_owner()
        replica = await self._choose()
        if replica is not None:
            rows = await self._on_replica(replica, lambda conn: conn.fetch(sql, *params))
            if rows is not _MISSED:
                return rows  # type: ignore[no-any-return]
        self.primary_reads += 1
        return await super().fetch(sql, params, session)

    async def point_row(self, sql: str, params: Sequence[Any]) -> Any:
        """A key lookup goes where every read goes (a replica that has replayed this task's
        writes, else the primary)."""
        if not self.replicas:
            return await super().point_row(sql, params)
        rows = await self.fetch(sql, params, None)
        return rows[0] if rows else None

    async def stream(
        self, sql: str, params: Sequence[Any], session: Session | None
    ) -> AsyncIterator[list[Any]]:
        if session is not None or not self.replicas or not self._is_read(sql):
            async for batch in super().stream(sql, params, session):
                yield batch
            return
        self.check_not_owner()
        replica = await self._choose()
        if replica is not None:
            # Fail-over is possible until the first batch: later, a lost replica fails the
            # stream as a lost primary connection would.
            opened = await self._open_cursor(replica, sql, params)
            if opened is not None:
                conn, batches, first = opened  # batches: the cursor's async generator
                try:
                    if first:
                        yield first
                        async for batch in batches:
                            yield batch
                finally:
                    await batches.aclose()
                    with suppress(Exception):
                        await asyncio.shield(conn.execute("ROLLBACK"))
                    with suppress(Exception):
                        await replica.pool.release(conn)
                return
        self.primary_reads += 1
        async for batch in super().stream(sql, params, session):
            yield batch

    async def _open_cursor(
        self, replica: Replica, sql: str, params: Sequence[Any]
    ) -> tuple[asyncpg.Connection, Any, list[Any]] | None:
        conn: asyncpg.Connection | None = None
        batches: Any
        try:
            async with asyncio.timeout(self.replica_timeout):
                conn = await replica.pool.acquire()
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                batches = self._cursor(conn, None, sql, params)
                first: list[Any] = await anext(batches, [])
        except asyncio.CancelledError:
            if conn is not None:
                self._drop(replica, conn)
            raise
        except Exception as exc:  # any replica failure: the primary answers
            if conn is not None:
                self._drop(replica, conn)
            if _replica_down(exc):  # not a query error (wrapped as BackendError)
                self._failed(replica, exc)
            return None
        replica.reads += 1
        return conn, batches, first

    async def _on_replica(
        self, replica: Replica, work: Callable[[asyncpg.Connection], Any], *, read: bool = True
    ) -> Any:
        """``work(conn)`` on a connection of ``replica`` under ``replica_timeout``; ``_MISSED``
        when the replica failed (then marked down) or refused the query."""
        conn: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(self.replica_timeout):
                conn = await replica.pool.acquire()
                result = await work(conn)
        except asyncio.CancelledError:
            if conn is not None:
                self._drop(replica, conn)
            raise
        except Exception as exc:  # any replica failure: the primary answers
            if conn is not None:
                self._drop(replica, conn)
            if _replica_down(exc):
                self._failed(replica, exc)
            return _MISSED
        await replica.pool.release(conn)
        replica.reads += read
        return result

    def _drop(self, replica: Replica, conn: asyncpg.Connection) -> None:
        """A connection left mid-call: closed, not reused (its state is unknown). When the
        replica's server shut down, the pool may already have taken the connection back, and
        terminating its proxy then raises ``InterfaceError``: that connection is gone anyway."""
        with suppress(asyncpg.InterfaceError):
            conn.terminate()

        async def give_back() -> None:
            with suppress(Exception):
                await replica.pool.release(conn)

        _spawn(give_back())

    def _failed(self, replica: Replica, exc: BaseException) -> None:
        replica.failures += 1
        was_up = replica.healthy(time.monotonic())
        replica.down_until = time.monotonic() + self.replica_cooldown
        if was_up:
            log.warning(
                "postgres.replica_down",
                replica=replica.where,
                error=repr(exc),
                cooldown_s=self.replica_cooldown,
                detail="reads go to the other replicas or the primary",
            )

    async def _choose(self) -> Replica | None:
        """A healthy replica that has replayed this task's writes (waiting up to
        ``replica_wait``), in turn; None: read the primary."""
        now = time.monotonic()
        healthy = [r for r in self.replicas if r.healthy(now)]
        if not healthy:
            return None
        start = next(self._turn) % len(healthy)
        order = healthy[start:] + healthy[:start]
        needed = self._written.get()
        if needed is None:
            return order[0]
        if needed == _PENDING:
            needed = await self._primary_lsn()
            if needed is None:
                return None
            self._written.set(needed)
        for replica in order:
            if replica.replayed >= needed:
                return replica
        # Wait for a replica that is not known to be lagging; one that misses the bound is
        # not waited for again for a cool-down (its reads-after-writes go to the primary).
        waiting = [r for r in order if r.lagging_until <= now]
        deadline = time.monotonic() + self.replica_wait
        while waiting:
            for replica in waiting:
                if replica.healthy(time.monotonic()):
                    await self._refresh(replica)
                    if replica.replayed >= needed:
                        return replica
            if time.monotonic() >= deadline:
                for replica in waiting:
                    replica.lagging_until = time.monotonic() + self.replica_cooldown
                return None
            await asyncio.sleep(_POLL_EVERY)
        return None

    async def _primary_lsn(self) -> int | None:
        try:
            text = await self._fetchval("SELECT pg_current_wal_insert_lsn()::text")
        except Exception:  # the primary read that follows reports it
            return None
        return lsn_int(text)

    async def _refresh(self, replica: Replica) -> None:
        """The replica's replay position, one poll at a time (concurrent waiters share it)."""
        if replica.poll is not None and not replica.poll.done():
            await asyncio.shield(replica.poll)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        replica.poll = future
        try:
            text = await self._on_replica(
                replica,
                lambda conn: conn.fetchval("SELECT pg_last_wal_replay_lsn()::text"),
                read=False,
            )
            if isinstance(text, str):
                replica.replayed = max(replica.replayed, lsn_int(text))
        finally:
            future.set_result(None)


_MISSED: Any = object()
_tasks: set[asyncio.Task[None]] = set()


def _spawn(work: Any) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _replica_down(exc: BaseException) -> bool:
    """A failure of the replica itself (not of the query): mark it down."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # the protocol state of a connection the server ended under a call ("cannot switch
        # to state 12; another operation is in progress")
        return True
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.TooManyConnectionsError,
    )


async def open_replicated(
    pool: asyncpg.Pool, options: Mapping[str, Any], urls: list[str]
) -> ReplicatedPostgresStore:
    """The primary's store with a pool per replica."""
    store = ReplicatedPostgresStore(pool, options)
    try:
        await store.open_replicas(urls, options)
    except BaseException:
        await store.close()
        raise
    return store


__all__ = ["Replica", "ReplicatedPostgresStore", "open_replicated"]
