"""Retries, timeouts, a circuit breaker and ``db.health()`` around every backend call.

Options of ``asyncdb.connect(url, ...)`` (defaults in brackets):

- ``timeout`` [30.0] seconds: the deadline of one call, retries and back-off included. Past it
  the call is cancelled and :class:`~asyncdb.errors.OperationTimeout` is raised. A timed-out
  call is never retried (the deadline is spent); a timed-out write may or may not have been
  applied. Outside a transaction each call runs in its own task, so the error comes on time
  while the driver's clean-up (returning a connection to its pool) goes on in the background;
  a store whose calls clean up in the background by themselves when cancelled
  (``Store.detach_calls = False``: PostgreSQL) runs them in the caller's task instead, which is
  cheaper; inside a transaction the call stays in the caller's task (stores tie sessions to
  it) and its rollback finishes first. A ``find`` stream applies ``timeout`` to each wait for
  its next document (:meth:`Resilience.next_item`); past the first document the wait runs in
  the caller's task, so the error follows the driver's cancellation of its
  fetch and can come late when the server is slow. Only network stores (``Store.network``)
  get the deadline; memory and SQLite calls run untimed.
- ``retries`` [4]: attempts at most per call (1 turns retrying off).
- ``retry_base_delay`` [0.05] / ``retry_max_delay`` [2.0] seconds: exponential back-off with
  full jitter, ``sleep = uniform(0, min(max, base * 2**n))``; a server's own hint (Cosmos DB's
  ``x-ms-retry-after-ms`` on 429) is honoured when longer. No sleep goes past the deadline.
- ``breaker_threshold`` [5] consecutive failed attempts (transient errors and timeouts) open the
  breaker for ``breaker_cooldown`` [5.0] seconds: every call then fails fast with
  :class:`~asyncdb.errors.BackendUnavailable`. After the cool-down one call goes through
  (half-open): its success closes the breaker, its failure opens it again. Each transition is a
  structlog warning (logger ``asyncdb.resilience``). An error that proves the server answered
  (a duplicate key, a bad update, a serialization failure or deadlock, throttling) counts as a
  success.

What is retried. Each store classifies its driver's errors (:meth:`Store.classify_error`) as
transient or not; a transient error is either *not applied* (the request provably never took
effect: connection refused, PostgreSQL's "cannot connect now", a serialization failure 40001 or
a deadlock 40P01 (the server rolled the statement back), Cosmos DB 429/503, Firestore
UNAVAILABLE/ABORTED, DynamoDB throttling via :func:`classify_botocore`, for the DynamoDB store
to use) or *maybe applied* (the connection died after the
request was sent: reset, ``ConnectionDoesNotExistError``, pymongo ``AutoReconnect``).

- Reads (``find``, ``find_one``, ``count_documents``, ``find_page``, collection set-up) are
  retried on every transient error. A ``find`` stream is retried only until its first document;
  past it, an error is raised (documents were already handed out).
- Writes are retried on *not applied* errors. On a *maybe applied* error only inserts are
  retried: an insert is idempotent once checked, because if the retry fails with DuplicateKey
  the documents are read back and, when every one is stored exactly as sent, the first attempt
  did apply it and the insert reports success (not a duplicate). If any differs, DuplicateKey
  stands: someone else owns the key. Updates, replaces and deletes are not retried on a *maybe
  applied* error (``$inc`` twice, or a delete's count, would be wrong): the error is raised and
  the outcome is unknown to the caller.
- A transient error that is not retried, or outlives the attempts or the deadline, is raised
  as the store's mapped error (a :class:`~asyncdb.errors.BackendError`, or
  ``TransactionError`` for a serialization failure), never as a raw driver error.
- Inside ``db.transaction()`` nothing is retried implicitly: a transient error is raised as
  :class:`~asyncdb.errors.TransactionError` (the transaction rolls back), and the caller retries
  the whole transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import random
import secrets
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import structlog

from asyncdb.errors import (
    AsyncDBError,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    Contention,
    DuplicateKey,
    OperationTimeout,
    TransactionError,
)

log = structlog.get_logger("asyncdb.resilience")

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class Transient:
    """A store's verdict on an error that a later attempt may not meet.

    ``maybe_applied`` is False when the error proves the request took no effect (so a write may
    be sent again); ``retry_after`` is the server's own back-off hint in seconds, if any;
    ``contention`` marks a conflict or throttling the server answered with (a serialization
    failure, a deadlock, a 429): retried, but no sign of an outage, so not a breaker failure.
    """

    maybe_applied: bool
    retry_after: float | None = None
    contention: bool = False


NOT_APPLIED = Transient(maybe_applied=False)
MAYBE_APPLIED = Transient(maybe_applied=True)
CONTENTION = Transient(maybe_applied=False, contention=True)


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from or while handling (stores map driver errors
    with ``raise ... from None``, which keeps the driver error as ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_os_error(exc: BaseException) -> Transient | None:
    """The socket-level verdict every store shares: refused = never sent; reset/aborted/broken
    pipe = maybe applied."""
    for err in error_chain(exc):
        if isinstance(err, ConnectionRefusedError):
            return NOT_APPLIED
        if isinstance(err, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            return MAYBE_APPLIED
    return None


# DynamoDB (botocore ClientError codes): the DynamoDB store's classify_error can return
# classify_botocore(exc) or classify_os_error(exc).
_AWS_THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
    }
)
_AWS_MAYBE_APPLIED = frozenset({"InternalServerError", "ServiceUnavailable"})


def classify_botocore(exc: BaseException) -> Transient | None:
    """Throttling and transaction conflicts: contention, not applied. Internal errors and 503:
    maybe applied. Duck-typed on ``exc.response["Error"]["Code"]`` (no botocore import)."""
    for err in error_chain(exc):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code in _AWS_THROTTLING:
                return CONTENTION
            if code in _AWS_MAYBE_APPLIED:
                return MAYBE_APPLIED
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The options above (see the module docstring)."""

    timeout: float = 30.0
    retries: int = 4
    retry_base_delay: float = 0.05
    retry_max_delay: float = 2.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 5.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetryPolicy:
        """Pop this policy's options from ``options`` (the rest go to the store)."""
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            if name in options:
                raw = options.pop(name)
                try:
                    value = int(raw) if field.type == "int" else float(raw)
                except (TypeError, ValueError):
                    raise ConfigurationError(f"option {name}={raw!r} is not a number") from None
                if value <= 0:
                    raise ConfigurationError(f"option {name} must be positive, not {raw!r}")
                values[name] = value
        return cls(**values)

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        cap = min(self.retry_max_delay, self.retry_base_delay * 2 ** (attempt - 1))
        return random.uniform(0, cap)


# The deadline (loop time) of the call now running under Resilience.call, for the store's own
# retry loops; None for in-process stores and outside a call.
_CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "asyncdb_call_deadline", default=None
)


class ContentionBackoff:
    """The pacing of a store's compare-and-set loop on one document (a lost version check, a
    write conflict): exponential back-off with full jitter, ``sleep = uniform(0, min(cap,
    base * 2**n))``, so hundreds of writers of one document spread out instead of retrying in
    lock-step. It gives up with :class:`~asyncdb.errors.Contention` (nothing applied: every
    attempt was refused) when the next sleep and attempt would not end before the call's
    deadline, so the caller gets "contention" rather than a timeout whose write may have
    landed; without a deadline (an in-process store), after ``max_attempts``.

    >>> backoff = ContentionBackoff("update of 'counters'", max_attempts=1)
    >>> asyncio.run(backoff.lost())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    asyncdb.errors.Contention: update of 'counters': lost the race for the document 1 time(s) ...
    """

    __slots__ = ("_longest", "_mark", "base", "cap", "lost_races", "max_attempts", "what")

    def __init__(
        self, what: str, *, base: float = 0.005, cap: float = 0.5, max_attempts: int = 200
    ) -> None:
        self.what = what
        self.base = base
        self.cap = cap
        self.max_attempts = max_attempts
        self.lost_races = 0
        self._mark = time.monotonic()
        self._longest = 0.0  # the slowest attempt so far: what the next one may take

    async def lost(self) -> None:
        """One more race lost: sleep before the next attempt, or raise Contention."""
        now = time.monotonic()
        self._longest = max(self._longest, now - self._mark)
        self.lost_races += 1
        delay = random.uniform(0, min(self.cap, self.base * 2 ** min(self.lost_races, 30)))
        deadline = _CALL_DEADLINE.get()
        if deadline is not None:
            left = deadline - asyncio.get_running_loop().time()
            out_of_time = delay + 2 * self._longest + 0.05 >= left
        else:
            out_of_time = self.lost_races >= self.max_attempts
        if out_of_time:
            raise Contention(
                f"{self.what}: lost the race for the document {self.lost_races} time(s) to"
                " concurrent writers; nothing was applied (retry later, or spread the writes)"
            )
        await asyncio.sleep(delay)
        self._mark = time.monotonic()


class DocumentTurns:
    """Writers of one document in this process take turns: a compare-and-set store's update of
    a document waits for the one before it in this process instead of racing it to the
    server, where all but one would lose and retry. Races with other processes remain (the
    compare-and-set and :class:`ContentionBackoff` settle those). A writer whose turn would not
    come in time before the call's deadline gives up with
    :class:`~asyncdb.errors.Contention`, having sent nothing.

    >>> turns = DocumentTurns()
    >>> async def once():
    ...     async with turns.turn(("items", "k"), "an update of 'items'"):
    ...         return len(turns._queues)
    >>> asyncio.run(once()), len(turns._queues)
    (1, 0)
    """

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        # key -> [lock, writers waiting or holding, how long the last turn took]
        self._queues: dict[Any, list[Any]] = {}

    def of(
        self, scope: str, keys: list[Any] | None, what: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """The turn of a write pinned to one document (``keys``: what the filter pins, None
        when it pins none); a write of several documents takes none."""
        if keys is None or len(keys) != 1:
            return contextlib.nullcontext()
        return self.turn((scope, keys[0]), what)

    @contextlib.asynccontextmanager
    async def turn(self, key: Any, what: str) -> AsyncIterator[None]:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = [asyncio.Lock(), 0, 0.0]
        lock: asyncio.Lock = queue[0]
        queue[1] += 1
        try:
            deadline = _CALL_DEADLINE.get()
            if deadline is None or not lock.locked():
                await lock.acquire()
            else:
                loop = asyncio.get_running_loop()
                try:
                    # leave room for the turn itself (as long as the last one, twice over)
                    async with asyncio.timeout_at(deadline - 2 * queue[2] - 0.05):
                        await lock.acquire()
                except TimeoutError:
                    raise self._late(what, queue) from None
                if loop.time() + 2 * queue[2] + 0.05 >= deadline:  # the last turn was slower
                    lock.release()
                    raise self._late(what, queue)
            began = time.monotonic()
            try:
                yield
            finally:
                queue[2] = time.monotonic() - began
                lock.release()
        finally:
            queue[1] -= 1
            if not queue[1]:
                del self._queues[key]

    @staticmethod
    def _late(what: str, queue: list[Any]) -> Contention:
        return Contention(
            f"{what}: {queue[1] - 1} other writer(s) of this document in this process were"
            " ahead and the call's timeout came first; nothing was sent (retry later, or"
            " spread the writes)"
        )


# How many writes back a document's stamp remembers (see WriteStamp).
STAMP_HISTORY = 8


@dataclass(frozen=True, slots=True)
class WriteStamp:
    """The hidden record a compare-and-set store keeps with each document: its write number
    and the random tokens of its last :data:`STAMP_HISTORY` writes, newest first.

    A write whose reply was lost (and which a driver, or asyncdb, may have resent) carries one
    token; when its version check then fails, the stamp read back says whether that write is
    the one that landed: our write made the document's write number ``number``, so the token
    ``stamp.number - number`` places back is ours exactly when it applied. That makes a resent
    compare-and-set exactly-once: applied once and reported as applied, never applied again.

    >>> first = WriteStamp.NEW.next("t1")
    >>> later = first.next("t2").next("t3")
    >>> later.encode(), WriteStamp.decode(later.encode()) == later
    ('3 t3 t2 t1', True)
    >>> later.landed("t1", 1), later.landed("t9", 2), WriteStamp.NEW.landed("t1", 1)
    (True, False, False)
    """

    number: int
    tokens: tuple[str, ...]

    NEW: ClassVar[WriteStamp]

    @staticmethod
    def token() -> str:
        """A fresh random write token."""
        return secrets.token_hex(8)

    def next(self, token: str) -> WriteStamp:
        """The stamp of the write that follows this one, carrying ``token``."""
        return WriteStamp(self.number + 1, (token, *self.tokens)[:STAMP_HISTORY])

    def landed(self, token: str, number: int) -> bool | None:
        """Whether the write that would have made the write number ``number`` with ``token``
        is in this stamp: True, False, or None when too many writes followed to tell."""
        back = self.number - number
        if back < 0:
            return False  # the document never reached that write number
        if back >= len(self.tokens):
            return None if back < self.number else False
        return self.tokens[back] == token

    def holds(self, written: WriteStamp) -> bool | None:
        """Whether the write that produced ``written`` is in this (later) stamp."""
        return self.landed(written.tokens[0], written.number) if written.tokens else False

    def proves(self, written: WriteStamp) -> bool:
        """:meth:`holds`, for a write that was resent after a lost reply and then met a
        conflict: when too many writes followed it to tell, its outcome is unknown, and that
        is a :class:`~asyncdb.errors.BackendError`."""
        held = self.holds(written)
        if held is None:
            raise BackendError(
                "a write whose reply was lost was resent and met a conflict, and more than"
                f" {STAMP_HISTORY} writes followed it: whether it was applied cannot be told"
            )
        return held

    def encode(self) -> str:
        return " ".join((str(self.number), *self.tokens))

    @classmethod
    def decode(cls, text: str | None) -> WriteStamp:
        """A stored stamp (a document written before stamps were kept reads as NEW)."""
        if not text:
            return cls.NEW
        number, *tokens = text.split(" ")
        return cls(int(number), tuple(tokens))


WriteStamp.NEW = WriteStamp(0, ())


class CircuitBreaker:
    """Consecutive failures -> open for a cool-down -> one half-open probe -> closed.

    >>> b = CircuitBreaker("memory", threshold=2, cooldown=60.0, probe_timeout=1.0)
    >>> b.failure(OSError("down")); b.state
    'closed'
    >>> b.failure(OSError("down")); b.state, b.allow()
    ('open', False)
    """

    def __init__(self, backend: str, threshold: int, cooldown: float, probe_timeout: float):
        self.backend = backend
        self.threshold = threshold
        self.cooldown = cooldown
        self.probe_timeout = probe_timeout
        self.state: BreakerState = "closed"
        self.failures = 0
        self.opened = 0  # how many times it opened
        self._reopen_at = 0.0
        self._probe_until = 0.0

    def allow(self) -> bool:
        """True when a call may go to the backend now (in half-open, only the one probe; a
        probe that never reported, e.g. cancelled, is replaced after ``probe_timeout``)."""
        if self.state == "closed":
            return True
        now = time.monotonic()
        if (self.state == "open" and now >= self._reopen_at) or (
            self.state == "half_open" and now >= self._probe_until
        ):
            self.state = "half_open"
            self._probe_until = now + self.probe_timeout
            log.warning("resilience.circuit_half_open", backend=self.backend)
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        if self.state != "closed":
            self.state = "closed"
            log.warning("resilience.circuit_closed", backend=self.backend)

    def failure(self, error: BaseException) -> None:
        self.failures += 1
        if self.state == "half_open" or (
            self.state == "closed" and self.failures >= self.threshold
        ):
            self.state = "open"
            self.opened += 1
            self._reopen_at = time.monotonic() + self.cooldown
            log.warning(
                "resilience.circuit_open",
                backend=self.backend,
                error=repr(error),
                cooldown_s=self.cooldown,
            )


class Resilience:
    """The policy and breaker of one database; :meth:`call` runs one backend operation."""

    def __init__(
        self,
        backend: str,
        classify: Callable[[BaseException], Transient | None],
        policy: RetryPolicy,
        *,
        network: bool = False,
        detach: bool = True,
    ) -> None:
        self.backend = backend
        self.detach = detach
        self.classify = classify
        self.policy = policy
        # In-process stores (memory, SQLite) take no per-call timer: the timer costs more than
        # a point read there, and SQLite's busy timeout bounds its lock waits.
        self.network = network
        self.transaction_tasks: Counter[asyncio.Task[Any] | None] = Counter()
        self.breaker = CircuitBreaker(
            backend, policy.breaker_threshold, policy.breaker_cooldown, policy.timeout
        )

    def check_breaker(self) -> None:
        if not self.breaker.allow():
            raise BackendUnavailable(
                f"{self.backend}: circuit breaker open after {self.breaker.failures} consecutive"
                f" failures; failing fast for up to {self.policy.breaker_cooldown}s"
            )

    def timed_out(self, what: str) -> OperationTimeout:
        return OperationTimeout(
            f"{self.backend}: {what} did not finish within timeout={self.policy.timeout}s"
        )

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        write: bool,
        in_transaction: bool = False,
        insert_check: Callable[[], Awaitable[bool]] | None = None,
        what: str = "call",
        loop: asyncio.AbstractEventLoop | None = None,
        failed: Exception | None = None,
        own_task: bool = True,
    ) -> T:
        """Run ``operation`` under the breaker, the deadline and the retry policy (``loop``: the
        running loop, when the caller knows it).

        ``insert_check`` makes a write an insert: retried on a maybe-applied error, and a
        DuplicateKey after such a retry is success when ``insert_check()`` finds the documents
        stored exactly as sent.

        ``own_task=False``: the operation returns at once when cancelled (its clean-up waits on
        nothing), so it runs in the caller's task even on a store whose calls get their own.

        ``failed``: the error of a first attempt the caller made itself (an in-process read
        outside this layer, when the breaker was closed and clean): handled as this call's
        first attempt, so what follows (retry, mapping, breaker) is as if it had made it.
        """
        breaker = self.breaker
        if breaker.state != "closed":
            self.check_breaker()
        # A call from a task with a transaction open stays in that task: stores tie sessions
        # (and their misuse checks) to the task.
        detach = (
            self.network
            and self.detach
            and own_task
            and not in_transaction
            and asyncio.current_task() not in self.transaction_tasks
        )
        policy = self.policy
        if loop is None:
            loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.timeout
        attempt = 0
        resent_maybe_applied = False
        while True:
            attempt += 1
            context = _CALL_DEADLINE.set(deadline if self.network else None)
            try:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                result = await _within(operation, deadline if self.network else None, detach, loop)
            except Contention:  # a TimeoutError too, but the store's own verdict: as it is
                self.breaker.success()  # the server answered every attempt
                raise
            except TimeoutError as exc:
                self.breaker.failure(exc)
                raise self.timed_out(what) from exc
            except Exception as exc:
                verdict = self.classify(exc)
                if verdict is None:
                    if not isinstance(exc, AsyncDBError):
                        # no driver exception reaches the caller: what the store left unmapped
                        # is a BackendError (not retried: nothing says it would pass)
                        raise BackendError(f"{self.backend}: {what} failed: {exc!r}") from exc
                    if not isinstance(exc, BackendError):
                        self.breaker.success()  # the server answered (duplicate key, ...)
                        if (
                            resent_maybe_applied
                            and insert_check is not None
                            and isinstance(exc, DuplicateKey)
                            and await self._checked(insert_check, deadline, what)
                        ):
                            log.info("resilience.insert_confirmed", backend=self.backend)
                            return None  # type: ignore[return-value]  # inserts return None
                    raise
                if verdict.contention:
                    self.breaker.success()  # the server answered
                else:
                    self.breaker.failure(exc)
                if in_transaction:
                    raise TransactionError(
                        f"{self.backend}: transient error inside a transaction ({exc}); it is"
                        " rolled back and not retried implicitly: retry the transaction"
                    ) from exc
                retryable = not write or not verdict.maybe_applied or insert_check is not None
                delay = policy.backoff(attempt)
                if verdict.retry_after is not None:
                    delay = max(delay, verdict.retry_after)
                if (
                    not retryable
                    or attempt >= policy.retries
                    or self.breaker.state != "closed"
                    or loop.time() + delay >= deadline
                ):
                    if isinstance(exc, AsyncDBError):
                        raise
                    raise BackendError(
                        f"{self.backend}: {what} failed after {attempt} attempt(s): {exc!r}"
                    ) from exc
                log.info(
                    "resilience.retry",
                    backend=self.backend,
                    what=what,
                    attempt=attempt,
                    delay_s=round(delay, 4),
                    error=repr(exc),
                )
                await asyncio.sleep(delay)
                resent_maybe_applied = resent_maybe_applied or verdict.maybe_applied
                continue
            finally:
                _CALL_DEADLINE.reset(context)
            if breaker.failures or breaker.state != "closed":
                breaker.success()
            return result

    async def next_item(
        self, it: AsyncIterator[T], loop: asyncio.AbstractEventLoop | None = None
    ) -> T:
        """``anext(it)`` within ``timeout`` from now, in the caller's task: the deadline of a
        stream's wait for its next document (the consumer's own time between documents does
        not count). ``TimeoutError`` past it; ``StopAsyncIteration`` at the end. ``loop``: the
        running loop, when the caller knows it."""
        if loop is None:
            loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.timeout
        try:
            return await _within(it.__anext__, deadline, False, loop)
        except (StopAsyncIteration, TimeoutError, AsyncDBError):
            raise
        except Exception as exc:  # past the first document a stream is not retried
            raise BackendError(f"{self.backend}: find (next document) failed: {exc!r}") from exc

    async def _checked(
        self, check: Callable[[], Awaitable[bool]], deadline: float, what: str
    ) -> bool:
        try:
            async with asyncio.timeout_at(deadline):
                return await check()
        except TimeoutError as exc:
            raise self.timed_out(what) from exc


class _Watch:
    """The deadlines of the calls that run in their caller's task (and of a stream's waits for
    its next document), all kept by one timer.

    ``asyncio.timeout_at`` per call schedules and cancels a timer each time (about 9 µs, a
    twentieth of a PostgreSQL point read at concurrency 64). Here a call only registers its
    task and deadline; the timer is armed for the earliest deadline, and when it fires it
    cancels the tasks whose deadline has passed (marking them expired, so the call raises
    ``TimeoutError``) and re-arms for the next one. Calls of one default timeout register
    later deadlines than the armed one, so most calls touch no timer at all."""

    __slots__ = ("_calls", "_due", "_handle", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: dict[int, list[Any]] = {}  # id(entry) -> [task, deadline, expired]
        self._handle: asyncio.TimerHandle | None = None
        self._due = math.inf

    def enter(self, task: asyncio.Task[Any], deadline: float) -> list[Any]:
        entry: list[Any] = [task, deadline, False]
        self._calls[id(entry)] = entry
        if deadline < self._due:
            if self._handle is not None:
                self._handle.cancel()
            self._due = deadline
            self._handle = self.loop.call_at(deadline, self._fire)
        return entry

    def leave(self, entry: list[Any]) -> None:
        self._calls.pop(id(entry), None)

    def _fire(self) -> None:
        self._handle = None
        self._due = math.inf
        now = self.loop.time()
        following = math.inf
        for entry in list(self._calls.values()):
            if entry[2]:
                continue
            if entry[1] <= now:
                entry[2] = True
                entry[0].cancel()
            elif entry[1] < following:
                following = entry[1]
        if following < math.inf:
            self._due = following
            self._handle = self.loop.call_at(following, self._fire)


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


_last_watch: list[_Watch] = []  # the watch used last (a program runs one loop at a time)


def _watch(loop: asyncio.AbstractEventLoop | None = None) -> _Watch:
    """The watch of ``loop`` (the running loop by default; made on first use)."""
    if loop is None:
        loop = asyncio.get_running_loop()
    if _last_watch and _last_watch[0].loop is loop:
        return _last_watch[0]
    watch = _WATCHES.get(loop)
    if watch is None:
        watch = _WATCHES[loop] = _Watch(loop)
    _last_watch[:] = [watch]
    return watch


_detached: set[asyncio.Task[Any]] = set()  # timed-out calls whose clean-up goes on


async def _within(
    operation: Callable[[], Awaitable[T]],
    deadline: float | None,
    detach: bool,
    loop: asyncio.AbstractEventLoop | None = None,
) -> T:
    """``await operation()`` until ``deadline`` (loop time), else TimeoutError.

    ``detach``: the operation runs in its own task, and at the deadline it is cancelled and
    left to clean up in the background (a driver returning a connection to its pool may wait on
    the very server that is slow), so the TimeoutError is on time. Otherwise (inside a
    transaction, whose store session belongs to the calling task) it is cancelled in this task
    and its clean-up, usually a rollback, finishes before the TimeoutError."""
    if deadline is None:
        return await operation()
    if loop is None:
        loop = asyncio.get_running_loop()
    if not detach:
        current = asyncio.current_task(loop)
        if current is None:
            async with asyncio.timeout_at(deadline):
                return await operation()
        watch = _watch(loop)
        entry = watch.enter(current, deadline)
        try:
            result = await operation()
        except asyncio.CancelledError:
            if entry[2] and current.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            watch.leave(entry)
        if entry[2]:  # expired just as it finished: take back the cancellation it was sent
            current.uncancel()
        return result
    task: asyncio.Task[T] = loop.create_task(operation())  # type: ignore[arg-type]
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_at(deadline, wake)
    try:
        await waiter
    except BaseException:  # the caller was cancelled: so is the operation
        _detach(task)
        raise
    finally:
        timer.cancel()
    if task.done():
        return task.result()
    _detach(task)
    raise TimeoutError


def _detach(task: asyncio.Task[Any]) -> None:
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning
        return
    task.cancel()
    _detached.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _detached.discard(task)
    if not task.cancelled():
        task.exception()


async def together(coros: Iterable[Awaitable[Any]]) -> None:
    """Run the awaitables at once; the first failure cancels the others and is raised, and
    none is left running when this returns."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass(frozen=True, slots=True)
class Health:
    """``await db.health()``: one round trip to the backend (``Store.ping``)."""

    backend: str
    ok: bool
    latency_ms: float
    breaker: BreakerState
    cache: dict[str, Any] | None = None
    error: str | None = None


__all__ = [
    "CONTENTION",
    "MAYBE_APPLIED",
    "NOT_APPLIED",
    "CircuitBreaker",
    "ContentionBackoff",
    "DocumentTurns",
    "Health",
    "Resilience",
    "RetryPolicy",
    "Transient",
    "WriteStamp",
    "classify_botocore",
    "classify_os_error",
    "error_chain",
    "together",
]
