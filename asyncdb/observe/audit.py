"""The audit trail: one event per operation, chained by ``prev_hash``, into a sink.

``connect(url, audit=...)`` takes a collection name (in the same database), a ``Collection``
(of any database), a callable (``fn(event)``, sync or async) or a structlog logger. Options:
``audit_reads=True`` audits reads too (writes always are), ``audit_keys=False`` records a
count instead of the keys, ``audit_policy="closed"`` (default) or ``"open"``:

- ``"closed"``: a call returns only after its event is stored. If the sink fails, the call
  raises :class:`~asyncdb.errors.AuditError`, whose ``result`` is the operation's own result
  (the write did happen; nothing is lost silently). Inside ``db.transaction()`` a call cannot
  wait for its event (the sink may need the connection the transaction holds): the event is
  queued, and written when the transaction's task lets it. Calls waiting at once share one
  insert (group commit): before it writes, the writer waits (up to ``GATHER_S``) for the
  audited operations still running to queue their events, so concurrent calls pay one insert
  between them; a call alone is written at once.
- ``"open"``: events are queued and written in the background in batches (the writer waits up
  to ``LINGER_S`` for a batch to fill, so even one caller's events share inserts); a sink
  failure is a structlog warning ``audit.sink_failed`` (no values) and
  ``db.metrics()["audit"]["failures"]``, never an error of the call. The queue is bounded
  (``MAX_QUEUED`` events): past it a call waits for the writer (back-pressure, never a dropped
  event). ``db.close()`` writes what is queued.

The chain, per audit collection: event ``n`` has ``seq`` n (key ``id``: n as 20 digits, so the
key order is the chain order), ``prev_hash`` (the ``hash`` of event n-1; 64 zeros for the first)
and ``hash`` = SHA-256 of its canonical JSON without ``id`` and ``hash``. A writer claims the
chain head with a conditional insert of seq n+1 (an insert of an existing key fails with
``DuplicateKey`` on every backend); the loser re-reads the events it lost to, takes the new
head's hash and retries one seq further. Only the store's key uniqueness is relied on, so
concurrent writers in one process (serialised by one writer task) and in several processes
keep one chain. A new process finds the head with O(log n) point reads (the seqs are dense).
:func:`verify_chain` (``asyncdb audit verify URL COLLECTION``) detects an edited event (hash),
a deleted one (a gap in seq, or a broken link) and reordered ones (seq or link out of order);
removing the newest events is detected against a head hash kept elsewhere (``--head``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from math import isfinite
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

import orjson
import structlog

from asyncdb.backends.base import current_operation
from asyncdb.errors import BackendError, ConfigurationError, DuplicateKey, QueryError
from asyncdb.query.values import INT64_MAX, INT64_MIN, check_field_name

if TYPE_CHECKING:
    from asyncdb.collection import Collection

log = structlog.get_logger("asyncdb.audit")

GENESIS = "0" * 64
# Events per insert: one all-or-nothing insert_many (DynamoDB's, Firestore's and Cosmos DB's
# batches are small; the SQL stores and MongoDB take larger ones in one statement).
_BATCH = {"sqlite": 100, "postgres": 100, "mongo": 100, "memory": 100}
_SMALL_BATCH = 25
_COMPENSATED = {"cosmos"}
MAX_QUEUED = 1000  # events waiting for the writer, at most, before calls wait for it
LINGER_S = 0.004  # open policy: how long the writer waits for a batch to fill
GATHER_S = 0.002  # closed policy: how long the writer waits for running operations' events
IDLE_S = 0.02  # closed policy: a trail without events this long has no callers taking turns
TURNS_DECAY = 31 / 32


class _Internal:
    """``current_operation`` while the trail writes: its own writes are not observed."""

    __slots__ = ("docs_read",)

    def __init__(self) -> None:
        self.docs_read = 0


_INTERNAL = _Internal()

_context: ContextVar[dict[str, Any]] = ContextVar("asyncdb_audit_context", default={})  # noqa: B039

# The fields the trail writes itself: the chain's (id, seq, prev_hash, hash) and each event's.
# ``audit_context`` refuses them, since a context field of one of these names would replace
# what the trail records (the time, the outcome) or break the chain.
EVENT_FIELDS = frozenset(
    {"id", "seq", "prev_hash", "hash", "ts", "trace_id", "span_id", "backend", "collection"}
    | {"op", "tx", "keys", "count", "query", "comment", "update", "matched", "modified"}
    | {"deleted", "outcome", "error", "duration_ms"}
)

Policy = Literal["closed", "open"]


@contextlib.contextmanager
def audit_context(
    actor: str | None = None, tenant: str | None = None, **fields: Any
) -> Iterator[dict[str, Any]]:
    """Who is acting, for every audit event of the operations inside (contextvars: follows
    tasks created inside). Nested contexts add to and override the outer one.

    >>> with audit_context(actor="u42", tenant="acme", request_id="r-1") as ctx:
    ...     sorted(ctx.items())
    [('actor', 'u42'), ('request_id', 'r-1'), ('tenant', 'acme')]

    A field named like one the trail writes itself (``op``, ``outcome``, ``seq``, ``hash``
    ...: ``EVENT_FIELDS``) is refused with :class:`~asyncdb.ConfigurationError`.
    """
    taken = sorted(EVENT_FIELDS.intersection(fields))
    if taken:
        raise ConfigurationError(
            f"audit_context fields {taken} are fields of the audit event itself"
            " (the trail writes them); name them otherwise, e.g. 'ctx_" + taken[0] + "'"
        )
    merged = dict(_context.get())
    if actor is not None:
        merged["actor"] = actor
    if tenant is not None:
        merged["tenant"] = tenant
    merged.update(fields)
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return _context.get()


@functools.cache
def _current_span() -> Callable[[], Any] | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_current_span


def trace_ids(span: Any = None) -> tuple[str | None, str | None]:
    """The trace and span id (hex) of ``span`` or else of the active OpenTelemetry span, or
    (None, None)."""
    if span is None:
        current = _current_span()
        if current is None:
            return None, None
        span = current()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# --- the chain --------------------------------------------------------------------------------


def _canonical_value(value: Any) -> Any:
    """Numbers as stores give them back (DynamoDB: Decimal; 2.0 may come back as 2)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # most of an event
        return value
    if kind is float:
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if kind is dict or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():  # plain values inline: an event is mostly text and ints
            t = type(v)
            out[k if type(k) is str else str(k)] = (
                v if t is str or t is int or t is bool or v is None else _canonical_value(v)
            )
        return out
    if kind is list or kind is tuple:
        return [v if type(v) is str else _canonical_value(v) for v in value]
    if isinstance(value, int | float | Decimal):  # Decimal, an int or float subclass
        number = float(value) if not isinstance(value, int) else int(value)
        return _canonical_value(number)
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    return str(value)


def _is_canonical(body: Mapping[str, Any]) -> bool:
    """True when ``_canonical_value(body)`` would be ``body`` itself (text keys; text, int,
    bool, None, a float with a fraction, or a list of text as values): most events."""
    if type(body) is not dict:
        return False
    for k, v in body.items():
        t = type(v)
        if type(k) is not str:
            return False
        if t is str or t is int or t is bool or v is None:
            continue
        if t is float:
            if v.is_integer():
                return False
            continue
        if t is list and all(type(x) is str for x in v):
            continue
        return False
    return True


def _digest(body: Mapping[str, Any]) -> str:
    return _sha256(body if _is_canonical(body) else _canonical_value(body))


def _sha256(canonical: Any) -> str:
    """SHA-256 of an already canonical value's JSON, keys sorted."""
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of the event's canonical JSON (sorted keys), without ``id`` and ``hash``."""
    return _digest({k: v for k, v in event.items() if k != "id" and k != "hash"})


_NAMES: set[str] = set()  # field names check_field_name passed (the events' own, mostly)
_NAMES_MAX = 1024


def _valid_name(name: str) -> bool:
    try:
        check_field_name(name, name)
    except QueryError:
        return False
    if len(_NAMES) < _NAMES_MAX:
        _NAMES.add(name)
    return True


def _plain_body(event: Mapping[str, Any], seq: int, prev_hash: str) -> dict[str, Any] | None:
    """``{"seq": seq, **event, "prev_hash": prev_hash}`` when it is canonical both for the
    chain (``_is_canonical``: it is hashed as it is) and for the stores
    (:func:`asyncdb.query.values.canonical`: it is stored as it is, no validated copy): text
    keys that are valid field names, other than ``id`` and ``hash``; ASCII text, a 64-bit int,
    a bool, None, a finite float with a fraction, or a list of ASCII text as values (a list
    copied: nothing of the caller's context is shared). None otherwise (the general path):
    one walk over the event checks what the chain and the store would each check."""
    if type(event) is not dict or "id" in event or "hash" in event:
        return None
    body: dict[str, Any] = {"seq": seq}
    names = _NAMES
    for k, v in event.items():
        if type(k) is not str or (k not in names and not _valid_name(k)):
            return None
        t = type(v)
        if t is str:
            if not v.isascii():
                return None
        elif t is int:
            if not INT64_MIN <= v <= INT64_MAX:
                return None
        elif t is float:
            if v.is_integer() or not isfinite(v):
                return None
        elif t is list:
            for x in v:
                if type(x) is not str or not x.isascii():
                    return None
            v = v.copy()
        elif not (t is bool or v is None):
            return None
        body[k] = v
    body["prev_hash"] = prev_hash
    return body


def _seal(event: Mapping[str, Any], seq: int, prev_hash: str) -> tuple[dict[str, Any], bool]:
    """:func:`seal`, and whether the link is plain (``_plain_body``: already canonical for
    the stores, a fresh dict sharing nothing with the caller)."""
    body = _plain_body(event, seq, prev_hash)
    if body is None:
        body = {"seq": seq, **event, "prev_hash": prev_hash}
        return {"id": f"{seq:020d}", **body, "hash": _digest(body)}, False
    return {"id": f"{seq:020d}", **body, "hash": _sha256(body)}, True


def seal(event: Mapping[str, Any], seq: int, prev_hash: str) -> dict[str, Any]:
    """``event`` as link ``seq`` of a chain whose previous link hashed to ``prev_hash``."""
    return _seal(event, seq, prev_hash)[0]


@dataclass
class ChainReport:
    """``verify_chain``'s answer: ``ok`` when every link holds."""

    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": self.problems,
        }


async def verify_chain(collection: Collection, *, head: str | None = None) -> ChainReport:
    """Walk an audit collection in key order and check every link (see the module docstring).
    ``head``: the head hash recorded elsewhere, to detect removed newest events.

    >>> # report = await verify_chain(db.collection("audit_log")); report.ok, report.problems
    """
    report = ChainReport()
    expected_seq = 1
    prev = GENESIS
    async for event in collection.find({}, sort=[("id", 1)], allow_scan=True, cache=False):
        report.events += 1
        seq = event.get("seq")
        where = {"id": event.get("id"), "seq": seq}
        if not isinstance(seq, int) or event.get("id") != f"{seq:020d}":
            report.problems.append({**where, "problem": "moved: seq does not match its key"})
        elif seq != expected_seq:
            kind = "deleted" if seq > expected_seq else "reordered"
            report.problems.append(
                {**where, "problem": f"{kind}: expected seq {expected_seq}, found {seq}"}
            )
        if event.get("hash") != event_hash(event):
            report.problems.append({**where, "problem": "edited: hash does not match the event"})
        if event.get("prev_hash") != prev:
            report.problems.append(
                {**where, "problem": "broken link: prev_hash is not the previous event's hash"}
            )
        prev = str(event.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        report.head_seq = seq if isinstance(seq, int) else report.head_seq
    report.head_hash = prev
    if head is not None and head != prev:
        report.problems.append(
            {"id": None, "seq": report.head_seq, "problem": "head: not the expected head hash"}
        )
    return report


# --- sinks ------------------------------------------------------------------------------------


class CollectionSink:
    """Events into a collection keyed ``id`` (the chain of the module docstring)."""

    def __init__(self, collection: Collection) -> None:
        if collection.spec.key != ("id",):
            raise ConfigurationError(
                f"an audit collection is keyed by 'id', not {collection.spec.key}"
            )
        self.collection = collection
        self.batch = _BATCH.get(collection._db.backend, _SMALL_BATCH)
        # A store whose insert_many is all or nothing by compensation (Cosmos DB: created one
        # by one, removed again on a conflict) shows other writers events that it may take
        # back, so a batch could leave a gap under an event that chains to it: there each
        # event is its own create, in seq order.
        self.one_by_one = collection._db.backend in _COMPENSATED
        self._head: tuple[int, str] | None = None

    async def _insert(self, sealed: list[dict[str, Any]], plain: bool = False) -> None:
        # One autocommitted statement where the store has one (SQLite, PostgreSQL: one
        # multi-row INSERT, not BEGIN / insert / COMMIT), else insert_many.
        await self.collection._insert_autocommitted(sealed, plain=plain)

    async def _insert_each(self, sealed: list[dict[str, Any]], plain: bool) -> int:
        """The events created one at a time in seq order: how many were stored before another
        writer's event took a seq (DuplicateKey when it took the first)."""
        for i, event in enumerate(sealed):
            try:
                await self._insert([event], plain)
            except DuplicateKey:
                if i == 0:
                    raise
                return i
        return len(sealed)

    def write_now(self, events: list[dict[str, Any]]) -> bool:
        """``events`` stored at once, in this step of the loop, where the collection can
        (:meth:`Collection._insert_now`: one statement, no await): True when stored (the head
        moved past them); False when not, nothing written (then :meth:`write`). Only with the
        head known: a new process, or a head lost to another writer, is found by :meth:`write`."""
        head = self._head
        if head is None:
            return False
        sealed, plain, (seq, prev) = _sealed(events, head)
        collection = self.collection
        try:
            # the general path's checks (of the key, the store's limits), and the values'
            # unless every link is plain (checked while sealed, and a fresh dict)
            prepared, _keys = collection._prepare(sealed, plain=plain)
            stored = collection._insert_now(prepared)
        except DuplicateKey:  # another writer took seq: write() re-reads the head
            self._head = None
            return False
        except Exception:
            return False
        if stored:
            self._head = (seq, prev)
        return stored

    async def _get(self, seq: int) -> dict[str, Any] | None:
        return await self.collection.find_one({"id": f"{seq:020d}"}, cache=False)

    async def _find_head(self) -> tuple[int, str]:
        """The last event by probing seqs 1, 2, 4, ... then bisecting (dense seqs)."""
        first = await self._get(1)
        if first is None:
            return 0, GENESIS
        low, low_event = 1, first
        high = 2
        while (event := await self._get(high)) is not None:
            low, low_event, high = high, event, high * 2
        while high - low > 1:  # low exists, high does not
            mid = (low + high) // 2
            event = await self._get(mid)
            if event is None:
                high = mid
            else:
                low, low_event = mid, event
        return low, str(low_event["hash"])

    async def _advance(self, head: tuple[int, str]) -> tuple[int, str]:
        """Past the events other writers appended after ``head``."""
        seq, prev = head
        while (event := await self._get(seq + 1)) is not None:
            seq, prev = seq + 1, str(event["hash"])
        return seq, prev

    async def write(self, events: list[dict[str, Any]]) -> None:
        head = self._head if self._head is not None else await self._find_head()
        for _attempt in range(1000):
            sealed, plain, (seq, prev) = _sealed(events, head)
            try:
                if self.one_by_one:
                    stored = await self._insert_each(sealed, plain)
                    if stored < len(sealed):  # another writer took the next seq: go on after
                        last = sealed[stored - 1]  # the events stored, from the new head
                        events = events[stored:]
                        self._head = None
                        head = await self._advance((int(last["seq"]), str(last["hash"])))
                        continue
                else:
                    await self._insert(sealed, plain)
            except DuplicateKey:
                self._head = None
                head = await self._advance(head)
                continue
            except BaseException:
                self._head = None  # unknown whether it was applied: re-read next time
                raise
            self._head = (seq, prev)
            return
        raise RuntimeError("audit chain: could not claim a head after 1000 attempts")


def _sealed(
    events: list[dict[str, Any]], head: tuple[int, str]
) -> tuple[list[dict[str, Any]], bool, tuple[int, str]]:
    """``events`` sealed in order after ``head`` (seq, hash), whether every link is plain
    (``_seal``), and the head after the last."""
    seq, prev = head
    sealed: list[dict[str, Any]] = []
    every = True
    for event in events:
        seq += 1
        link, plain = _seal(event, seq, prev)
        every = every and plain
        prev = link["hash"]
        sealed.append(link)
    return sealed, every, (seq, prev)


class CallableSink:
    """Events to ``fn(event)`` (sync or async), chained in this process."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn
        self.batch = 1  # one call per event anyway: a failing call fails that event alone
        self._head: tuple[int, str] = (0, GENESIS)

    def write_now(self, events: list[dict[str, Any]]) -> bool:
        return False  # fn may be a coroutine function, or slow: the writer task calls it

    async def write(self, events: list[dict[str, Any]]) -> None:
        seq, prev = self._head
        for event in events:
            link = seal(event, seq + 1, prev)
            link.pop("id")
            outcome = self.fn(link)
            if inspect.isawaitable(outcome):
                await outcome
            seq, prev = seq + 1, link["hash"]
            self._head = (seq, prev)


def logger_sink(logger: Any) -> CallableSink:
    """Events as ``logger.info("asyncdb.audit", **event)`` (a structlog logger)."""

    def emit(event: dict[str, Any]) -> None:
        logger.info("asyncdb.audit", **event)

    return CallableSink(emit)


def is_logger(value: Any) -> bool:
    return hasattr(value, "info") and hasattr(value, "bind") and not isinstance(value, type)


Sink = CollectionSink | CallableSink


class AuditTrail:
    """The queue and writer task in front of one sink (see the module docstring)."""

    def __init__(self, sink: Sink, policy: Policy, reads: bool, keys: bool) -> None:
        self.sink = sink
        self.policy = policy
        self.reads = reads
        self.keys = keys
        self.events = 0
        self.batches = 0  # writes to the sink that stored events (db.metrics()["audit"])
        self.failures = 0
        self.stored_by_callers = 0  # events a caller stored itself, in its own step
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None] | None]] = []
        self._writer: asyncio.Task[None] | None = None
        self.running = 0  # audited operations started whose events are not queued yet
        self._wake: asyncio.Future[None] | None = None  # the writer waiting for them
        # The caller of the last closed-policy event, when the trail was last busy (that event
        # or the end of a write), and how often the caller changed lately (a count decaying by
        # TURNS_DECAY an event, reset after IDLE_S without events). A caller alone (no change
        # in about the last 20 events) stores its event itself when the sink can at once;
        # callers taking turns leave theirs to the writer, to share one insert.
        self._last_caller: asyncio.Task[Any] | None = None
        self._last_active = 0.0
        self._turns = 0.0

    def started(self) -> None:
        """An audited operation began: its event will follow (:meth:`ended`, then submit)."""
        self.running += 1

    def ended(self) -> None:
        """The operation of a :meth:`started` finished; its event (if any) is submitted next,
        in the same step of the loop."""
        self.running -= 1
        if self.running <= 0:
            self.running = 0
            self._wake_writer()

    def _wake_writer(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def submit(self, event: dict[str, Any], in_transaction: bool) -> Awaitable[None] | None:
        """Queue ``event``. Unless the call is in a transaction (whose connection the sink may
        need), an awaitable done when the event is stored (raising if it was not): always
        under the closed policy, when the queue is full under the open one."""
        if not in_transaction and self.policy == "closed" and not self._queue:
            writer = self._writer
            task = asyncio.current_task()
            now = perf_counter()
            if now - self._last_active > IDLE_S:
                self._turns = 0.0  # idle a while: whoever calls next is alone
            else:
                self._turns *= TURNS_DECAY
                if task is not self._last_caller:
                    self._turns += 1.0
            self._last_caller, self._last_active = task, now
            if (
                self._turns < 0.5
                and (writer is None or writer.done())
                and self.sink.write_now([event])
            ):
                # Stored in this step (no await: a cancellation cannot fall between the
                # insert and its outcome), after every event before it (none queued, the
                # writer idle).
                self.events += 1
                self.batches += 1
                self.stored_by_callers += 1
                return None
        future: asyncio.Future[None] | None = None
        if not in_transaction and (self.policy == "closed" or len(self._queue) >= MAX_QUEUED):
            future = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        if self._wake is not None and len(self._queue) >= self.sink.batch:
            self._wake_writer()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return future

    async def _gather(self, size: int) -> None:
        """Let more events join the next batch (one insert for many). Under the closed
        policy, while audited operations are still running (their callers will wait for
        their events too), until the last of them has queued its event or the batch is
        full, for up to ``GATHER_S``; with none running, the batch is written at once. Under
        the open policy, for up to ``LINGER_S``."""
        if self.policy != "open":
            if self.running <= 0 or len(self._queue) >= size:
                return
            loop = asyncio.get_running_loop()
            wake = self._wake = loop.create_future()
            timer = loop.call_later(GATHER_S, self._wake_writer)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None
            return
        waited = 0.0
        while len(self._queue) < size and waited < LINGER_S:
            await asyncio.sleep(LINGER_S / 4)
            waited += LINGER_S / 4

    async def _drain(self) -> None:
        current_operation.set(_INTERNAL)  # this task's writes are the trail's own
        while self._queue:
            size = self.sink.batch
            await self._gather(size)
            batch, self._queue = self._queue[:size], self._queue[size:]
            events = [event for event, _ in batch]
            try:
                if not self.sink.write_now(events):  # in this step where the sink can
                    await self.sink.write(events)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Cancelled (or the loop is ending): no caller may wait for ever on
                    # events that will not be written.
                    self._abandon(batch + self._queue, exc)
                    self._queue = []
                    raise
                self.failures += len(batch)
                log.warning(
                    "audit.sink_failed",
                    events=len(batch),
                    error=type(exc).__name__,
                    policy=self.policy,
                )
                for _, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                continue
            self.events += len(batch)
            self.batches += 1
            self._last_active = perf_counter()
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    def _abandon(
        self, batch: list[tuple[dict[str, Any], asyncio.Future[None] | None]], exc: BaseException
    ) -> None:
        self.failures += len(batch)
        error = BackendError(f"the audit writer stopped ({type(exc).__name__})")
        for _, future in batch:
            if future is not None and not future.done():
                future.set_exception(error)

    async def flush(self) -> None:
        """Wait until every queued event is written (or failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)


def is_internal(operation: Any) -> bool:
    return operation is _INTERNAL


__all__ = [
    "GENESIS",
    "AuditTrail",
    "CallableSink",
    "ChainReport",
    "CollectionSink",
    "audit_context",
    "event_hash",
    "logger_sink",
    "seal",
    "trace_ids",
    "verify_chain",
]
