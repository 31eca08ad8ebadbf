"""The connections a :class:`PostgresStore` keeps checked out of asyncpg's pool.

asyncpg's pool makes connections (sizes, connect, close) and this keeps them: a connection is
taken from the pool once and handed from one operation to the next without going back, because
``Pool.release`` costs more than the point read itself on a busy machine (a shielded task and
several event-loop turns per release, besides the reset query ``keep_session`` removes).
Handing over is synchronous: a clean connection goes to the longest-waiting caller, or on the
idle stack (LIFO: the warmest connection next).

Only a clean connection is kept (open, no transaction): anything else, a call cancelled on it
included, goes back to asyncpg's pool, which waits for the cancellation, rolls back and makes
the slot free again. At most ``max_size`` connections are held; one idle longer than
``lifetime`` seconds goes back to the pool closed.

Each held connection keeps the statements prepared on it for the point read (one per SQL text,
:meth:`HeldConnections.statement`); they are forgotten when the connection goes back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import asyncpg

Conn = Any  # an asyncpg pool connection (a proxy of asyncpg.Connection)
MAX_PREPARED = 64  # point-read statements kept per held connection


def usable(conn: Conn) -> bool:
    """Open and still ours: when the server ends a connection, asyncpg's pool takes it back
    at once and the proxy we hold refuses every call."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class HeldConnections:
    """Up to ``max_size`` connections taken from ``pool`` and handed over in process."""

    def __init__(self, pool: asyncpg.Pool, max_size: int, lifetime: float) -> None:
        self.pool = pool
        self.max_size = max_size
        self.lifetime = lifetime
        self.held = 0  # taken from the pool, not given back (idle or in use)
        self.closed = False
        self._idle: list[tuple[Conn, float]] = []
        self._waiters: deque[asyncio.Future[tuple[Conn, float] | None]] = deque()
        self._retiring: set[asyncio.Task[None]] = set()
        # id(held connection) -> {SQL text: its prepared statement on that connection}
        self._prepared: dict[int, dict[str, Any]] = {}

    def take(self) -> tuple[Conn, float] | None:
        """An idle connection and when it went idle, without waiting (None: there is none)."""
        if self._idle:
            self._retire_stale()
            if self._idle:
                return self._idle.pop()
        return None

    def statement(self, conn: Conn, sql: str) -> Any:
        """The statement prepared for ``sql`` on ``conn`` (None: not prepared yet)."""
        kept = self._prepared.get(id(conn))
        return None if kept is None else kept.get(sql)

    async def prepare(self, conn: Conn, sql: str) -> Any:
        """Prepare ``sql`` on ``conn`` and keep it for that connection's next calls."""
        stmt = await conn.prepare(sql)
        kept = self._prepared.setdefault(id(conn), {})
        if len(kept) >= MAX_PREPARED:
            kept.pop(next(iter(kept)))  # the oldest shape: its statement closes once collected
        kept[sql] = stmt
        return stmt

    def forget(self, conn: Conn) -> None:
        """Drop the statements prepared on ``conn`` (it failed, or it goes back)."""
        self._prepared.pop(id(conn), None)

    async def get(self) -> tuple[Conn, float | None]:
        """A connection and when it went idle (None: fresh from the pool)."""
        while True:
            idle = self.take()
            if idle is not None:
                return idle
            if self.held < self.max_size or self.closed:
                self.held += 1
                try:
                    conn = await self.pool.acquire()
                except BaseException:
                    self.held -= 1
                    self._wake()
                    raise
                return conn, None
            waiter: asyncio.Future[tuple[Conn, float] | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                got = await waiter
            except asyncio.CancelledError:
                handed = None if waiter.cancelled() or not waiter.done() else waiter.result()
                if handed is not None:  # handed over as we were cancelled: pass it on
                    if not self.put(handed[0]):
                        self._spawn(self.give_back(handed[0]))
                else:
                    self._wake()  # a slot freed for us goes to the next waiter
                raise
            if got is not None:
                return got
            # None: a slot went back to the pool (or we are closing): try again.

    @property
    def idle(self) -> int:
        """Connections held and free for the next caller."""
        return len(self._idle)

    def must_wait(self) -> bool:
        """Whether a :meth:`get` now would wait for another caller's connection."""
        return not self._idle and self.held >= self.max_size and not self.closed

    def put(self, conn: Conn, *, clean: bool = False) -> bool:
        """Keep ``conn`` for the next caller (synchronous). False: not clean, or closing; the
        caller gives it back with :meth:`give_back`. ``clean``: the caller knows it is (a
        statement outside a transaction just succeeded on it)."""
        if self.closed or not (clean or (usable(conn) and not conn.is_in_transaction())):
            return False
        now = time.monotonic()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result((conn, now))
                return True
        self._idle.append((conn, now))
        return True

    async def give_back(self, conn: Conn) -> None:
        """Return ``conn`` to asyncpg's pool (it waits for a cancellation, rolls back, and
        closes a broken connection) and free its slot."""
        self.held -= 1
        self.forget(conn)
        try:
            await self.pool.release(conn)
        except asyncpg.InterfaceError:
            pass  # the pool took it back itself when the server ended it
        finally:
            self._wake()

    async def close(self) -> None:
        """Give every idle connection back and wake every waiter (they then fail on the
        closing pool)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await self.give_back(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _retire_stale(self) -> None:
        """The oldest idle connections past ``lifetime`` go back to the pool, closed."""
        cutoff = time.monotonic() - self.lifetime
        while self._idle and self._idle[0][1] < cutoff:
            conn, _ = self._idle.pop(0)
            if usable(conn):
                conn.terminate()
            self._spawn(self.give_back(conn))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


__all__ = ["HeldConnections", "usable"]
