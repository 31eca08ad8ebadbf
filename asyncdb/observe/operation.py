"""The observation of one public operation: metrics, the slow-operation warning, the audit
event and the span, around each public method of :class:`~asyncdb.Collection`.

``@observed("update_one")`` on a method is the whole hook in the collection module; a find
cursor is observed over its stream (:meth:`Observer.stream`). An operation inside another one
(``find_one`` running a ``find``) and the audit trail's own writes are not observed again.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from asyncdb.backends.base import current_operation, key_lookup
from asyncdb.errors import AsyncDBError, AuditError
from asyncdb.observe import audit as audit_mod
from asyncdb.observe.metrics import PENDING_MAX, Metrics, OperationStats
from asyncdb.observe.redaction import field_names, native_query_text, query_shape
from asyncdb.options import comment_text
from asyncdb.types import Query, UpdateResult

if TYPE_CHECKING:
    from asyncdb.cache import ReadCache
    from asyncdb.collection import Collection
    from asyncdb.observe.audit import AuditTrail
    from asyncdb.observe.tracing import Tracing

log = structlog.get_logger("asyncdb.observe")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# Operations that change nothing: audited only with audit_reads=True.
READS = frozenset(
    {
        "find",
        "find_one",
        "find_page",
        "count_documents",
        "estimated_document_count",
        "distinct",
        "aggregate",
    }
)
_DOC_ARGS = ("update", "doc", "replacement")


class Operation:
    """What one operation did, filled in while it runs (``current_operation``)."""

    __slots__ = ("cache_hits", "cache_misses", "docs_read", "op", "span")

    def __init__(self, op: str) -> None:
        self.op = op
        self.docs_read = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.span: Any = None


class Observer:
    """The observation settings of one database (``connect`` options ``metrics``, ``slow_ms``,
    ``tracing``, ``audit`` and its ``audit_*`` options)."""

    def __init__(
        self,
        backend: str,
        *,
        metrics: bool = True,
        slow_ms: float | None = 1000.0,
        tracing: Tracing | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = Metrics() if metrics else None
        self.slow_s = math.inf if slow_ms is None else float(slow_ms) / 1000
        self.tracing = tracing
        self.audit = audit
        self.quiet = tracing is None and audit is None  # nothing but metrics and slow warnings
        # Open transactions with audited operations: id(session) -> [transaction id, count].
        self._transactions: dict[int, list[Any]] = {}

    # --- the two entry points ---------------------------------------------------------------

    async def run(
        self,
        coll: Collection,
        op: str,
        call: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        params: tuple[str, ...],
    ) -> Any:
        record = Operation(op)
        tracing = self.tracing
        if tracing is not None:
            record.span = tracing.start(op, coll.spec.name)
        token = current_operation.set(record)
        trail = self.audit
        if trail is not None:
            trail.started()  # the writer waits for this operation's event (group commit)
        started = time.perf_counter()
        try:
            if tracing is None:
                result = await call(coll, *args, **kwargs)
            else:
                with tracing.use(record.span):
                    result = await call(coll, *args, **kwargs)
        except BaseException as exc:
            seconds = time.perf_counter() - started
            current_operation.reset(token)
            if trail is not None:
                trail.ended()
            await self._finish(coll, record, _Inputs(args, kwargs, params), seconds, None, exc)
            raise
        seconds = time.perf_counter() - started
        current_operation.reset(token)
        if trail is not None:
            trail.ended()
        await self._finish(coll, record, _Inputs(args, kwargs, params), seconds, result, None)
        return result

    async def point_read(
        self,
        coll: Collection[Any],
        read: Awaitable[Any],
        filter: Mapping[str, Any],
        params: tuple[str, ...],
    ) -> Any:
        """``await read``, a ``find_one`` by exact key without a cache or spans, observed as
        :meth:`run` observes ``find_one`` (metrics, the slow warning, the audit event: the
        same event, from the same inputs), without the call through ``find_one``'s general
        path that would find the same key again."""
        record = Operation("find_one")
        token = current_operation.set(record)
        trail = self.audit
        if trail is not None:
            trail.started()
        started = time.perf_counter()
        try:
            result = await read
        except BaseException as exc:
            seconds = time.perf_counter() - started
            current_operation.reset(token)
            if trail is not None:
                trail.ended()
            await self._finish(coll, record, _Inputs((filter,), {}, params), seconds, None, exc)
            raise
        seconds = time.perf_counter() - started
        current_operation.reset(token)
        if trail is not None:
            trail.ended()
        await self._finish(coll, record, _Inputs((filter,), {}, params), seconds, result, None)
        return result

    async def stream(
        self, coll: Collection, node: Any, inner: AsyncIterator[Any], comment: Any = None
    ) -> AsyncIterator[Any]:
        """A find cursor's stream: timed from its opening to its end (or to the consumer's
        break), documents returned counted. The span is current only while a document is
        fetched, never in the consumer's code between documents."""
        record = Operation("find")
        tracing = self.tracing
        if tracing is not None:
            record.span = tracing.start("find", coll.spec.name)
        returned = 0
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            while True:
                token = current_operation.set(record)
                try:
                    if tracing is None:
                        doc = await anext(inner)
                    else:
                        with tracing.use(record.span):
                            doc = await anext(inner)
                except StopAsyncIteration:
                    break
                finally:
                    current_operation.reset(token)
                returned += 1
                yield doc
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):  # the consumer stopped early: not an error
                error = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            await inner.aclose()  # type: ignore[attr-defined]  # early: the store's cursor too
            inputs = _FindInputs(node, comment)
            await self._finish(coll, record, inputs, seconds, _Returned(returned), error)

    async def collect(
        self,
        coll: Collection,
        node: Any,
        produce: Callable[[], Awaitable[list[Any]]],
        comment: Any = None,
    ) -> list[Any]:
        """A find cursor's ``to_list`` served whole (a cached result): observed as ``stream``
        observes it, without a generator per document."""
        record = Operation("find")
        tracing = self.tracing
        if tracing is not None:
            record.span = tracing.start("find", coll.spec.name)
        started = time.perf_counter()
        token = current_operation.set(record)
        docs: list[Any] = []
        error: BaseException | None = None
        try:
            if tracing is None:
                docs = await produce()
            else:
                with tracing.use(record.span):
                    docs = await produce()
        except BaseException as exc:
            error = exc
            raise
        finally:
            current_operation.reset(token)
            seconds = time.perf_counter() - started
            metrics = self.metrics
            if error is None and self.quiet and seconds < self.slow_s and metrics is not None:
                # what _finish does then, inline: the counters alone
                stats = metrics.stats(coll.spec.name, "find")
                stats.add(
                    seconds, len(docs), record.docs_read, record.cache_hits, record.cache_misses
                )
            else:
                inputs = _FindInputs(node, comment)
                await self._finish(coll, record, inputs, seconds, _Returned(len(docs)), error)
        return docs

    # --- after the operation ----------------------------------------------------------------

    def _count(
        self,
        coll: Collection,
        record: Operation,
        seconds: float,
        result: Any,
        error: BaseException | None,
    ) -> tuple[int, OperationStats | None]:
        """The metrics of one operation; returns the documents it returned and its counters."""
        returned = _returned(record.op, result) if error is None else 0
        if self.metrics is None:
            return returned, None
        stats = self.metrics.stats(coll.spec.name, record.op)
        if error is not None:
            stats.record(seconds, True)
        else:
            stats.add(seconds, returned, record.docs_read, record.cache_hits, record.cache_misses)
        return returned, stats

    async def _finish(
        self,
        coll: Collection,
        record: Operation,
        inputs: _Inputs,
        seconds: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        op = record.op
        name = coll.spec.name
        returned, stats = self._count(coll, record, seconds, result, error)
        error_type = None if error is None else type(error).__name__
        if record.span is not None and self.tracing is not None:
            span = record.span
            if op in READS or op.startswith("find_one_and"):
                span.set_attribute("db.response.returned_rows", returned)
            text = self._query_text(coll, inputs.filter())
            if text is not None:
                span.set_attribute("db.query.text", text)
            comment = inputs.comment()
            if comment is not None:
                span.set_attribute("asyncdb.comment", comment)
            self.tracing.finish(span, op, name, seconds, error_type)  # ends the span
        if seconds >= self.slow_s:
            if stats is not None:
                stats.slow += 1
            log.warning(
                "asyncdb.slow_operation",
                backend=self.backend,
                collection=name,
                op=op,
                duration_ms=round(seconds * 1000, 3),
                query=query_shape(inputs.filter()),
                access_path=self._access_path(coll, inputs.filter()),
            )
        trail = self.audit
        if trail is None or (op in READS and not trail.reads):
            return
        if isinstance(error, AuditError):  # a nested operation's audit failure: told already
            return
        event = self._event(coll, record, inputs, seconds, result, error, trail.keys)
        waiter = trail.submit(event, in_transaction=coll._session is not None)
        if waiter is None:
            return
        try:
            await waiter
        except Exception as exc:
            if error is not None or trail.policy == "open":
                return  # the operation's own error is what the caller must see
            raise AuditError(
                f"{op} on {name!r} ran, but its audit event was not stored "
                f"({type(exc).__name__}); its result is in .result",
                result=result,
            ) from exc

    def _event(
        self,
        coll: Collection,
        record: Operation,
        inputs: _Inputs,
        seconds: float,
        result: Any,
        error: BaseException | None,
        with_keys: bool,
    ) -> dict[str, Any]:
        op = record.op
        event = _event_head(record.span)
        event["backend"] = self.backend
        event["collection"] = coll.spec.name
        event["op"] = op
        if coll._session is not None:  # its outcome is the transaction's, in a later event
            entry = self._transactions.setdefault(id(coll._session), [uuid.uuid4().hex[:16], 0])
            entry[1] += 1
            event["tx"] = entry[0]
        filt = inputs.filter()
        keys = _keys(coll, op, inputs, result, error, filt)
        if keys is not None:
            if with_keys:
                event["keys"] = keys
            event["count"] = len(keys)
        elif isinstance(result, _Returned):
            event["count"] = result.n
        if filt is not _MISSING:
            event["query"] = query_shape(filt)
        comment = inputs.comment()
        if comment is not None:  # the caller's own label of the operation (hint= / comment=)
            event["comment"] = comment
        for arg in () if op in READS or op.startswith("insert") else _DOC_ARGS:
            value = inputs.get(arg)
            if value is not _MISSING:
                event["update"] = (
                    query_shape(value)
                    if arg == "update" or _is_operator(value)
                    else field_names(value)
                )
                break
        if isinstance(result, UpdateResult):
            event["matched"] = result.matched_count
            event["modified"] = result.modified_count
        elif op.startswith("delete") and isinstance(result, int):
            event["deleted"] = result
        event["outcome"] = "ok" if error is None else "failed"
        if error is not None:
            event["error"] = type(error).__name__
        event["duration_ms"] = round(seconds * 1000, 3)
        return event

    async def transaction_ended(self, session: Any, error: BaseException | None) -> None:
        """The ``"transaction"`` event after a transaction with audited operations: its
        ``tx`` id (as in their events), how many, and ``ok`` (committed) or ``rolled_back``."""
        entry = self._transactions.pop(id(session), None)
        trail = self.audit
        if entry is None or trail is None:
            return
        event = _event_head(None)
        event.update(backend=self.backend, op="transaction", tx=entry[0], count=entry[1])
        event["outcome"] = "ok" if error is None else "rolled_back"
        if error is not None:
            event["error"] = type(error).__name__
        waiter = trail.submit(event, in_transaction=False)
        if waiter is None:
            return
        try:
            await waiter
        except Exception as exc:
            if error is None and trail.policy == "closed":
                raise AuditError(
                    f"the transaction committed, but its audit event was not stored "
                    f"({type(exc).__name__})"
                ) from exc

    def _query_text(self, coll: Collection, filt: Any) -> str | None:
        plan = self._plan(coll, filt)
        return None if plan is None else native_query_text(plan)

    def _access_path(self, coll: Collection, filt: Any) -> str | None:
        plan = self._plan(coll, filt)
        return None if plan is None else plan.access_path

    def _plan(self, coll: Collection, filt: Any) -> Any:
        if filt is _MISSING:
            return None
        from asyncdb.query.parse import parse_filter

        try:
            return coll._store.explain(Query(parse_filter(filt)))
        except (AsyncDBError, TypeError, ValueError):
            return None


class ObservedCache:
    """The read-through cache as the collections see it under an observer: each lookup counts
    a hit or a miss (the loader ran) for the current operation, in a ``"cache {op}"`` span
    when tracing."""

    def __init__(self, cache: ReadCache, tracing: Tracing | None) -> None:
        self.cache = cache
        self.config = cache.config
        self.tracing = tracing

    def read_doc(
        self, collection: str, key: Any, loader: Callable[[], Awaitable[Any]]
    ) -> Awaitable[Any]:
        return self._lookup(self.cache.read_doc, collection, key, loader)

    def read_query(
        self, collection: str, digest: str, loader: Callable[[], Awaitable[Any]]
    ) -> Awaitable[Any]:
        return self._lookup(self.cache.read_query, collection, digest, loader)

    async def _lookup(
        self,
        read: Callable[[str, Any, Callable[[], Awaitable[Any]]], Awaitable[Any]],
        collection: str,
        what: Any,
        loader: Callable[[], Awaitable[Any]],
    ) -> Any:
        record = current_operation.get()
        if not isinstance(record, Operation):
            return await read(collection, what, loader)
        missed = False

        def load() -> Awaitable[Any]:
            nonlocal missed
            missed = True
            return loader()

        if record.span is not None and self.tracing is not None:
            with self.tracing.child(
                f"cache {record.op}", {"db.collection.name": collection}
            ) as span:
                value = await read(collection, what, load)
                span.set_attribute("asyncdb.cache.hit", not missed)
        else:
            value = await read(collection, what, load)
        if missed:
            record.cache_misses += 1
        else:
            record.cache_hits += 1
        return value


_MISSING: Any = object()


_second: list[Any] = [None, ""]  # the last whole second formatted: [second, its text]


def _timestamp() -> str:
    """Now as ``datetime.now(UTC).isoformat(timespec="microseconds")`` writes it, the date
    and time of day formatted once a second.

    >>> len(_timestamp()), _timestamp()[10], _timestamp()[-6:]
    (32, 'T', '+00:00')
    """
    now = time.time_ns() // 1000
    second, micros = divmod(now, 1_000_000)
    if second != _second[0]:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0], _second[1] = second, text
    return f"{_second[1]}.{micros:06d}+00:00"


def _event_head(span: Any) -> dict[str, Any]:
    """An event's first fields: the time, the audit context, the trace and span ids."""
    event: dict[str, Any] = {"ts": _timestamp()}
    event.update(audit_mod.current_context())
    trace_id, span_id = audit_mod.trace_ids(span)
    if trace_id is not None:
        event["trace_id"] = trace_id
        event["span_id"] = span_id
    return event


class _Returned:
    """A find stream's result: how many documents it handed out."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class _Inputs:
    """The arguments of one call, by parameter name."""

    __slots__ = ("args", "kwargs", "params")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], params: tuple[str, ...]):
        self.args = args
        self.kwargs = kwargs
        self.params = params

    def get(self, name: str) -> Any:
        if name in self.kwargs:
            return self.kwargs[name]
        if name not in self.params:  # a test, not an index's ValueError: most names are absent
            return _MISSING
        index = self.params.index(name)
        return self.args[index] if index < len(self.args) else _MISSING

    def comment(self) -> str | None:
        """The call's ``comment=`` as text (None without one)."""
        value = self.get("comment")
        return None if value is _MISSING else comment_text(value)

    def filter(self) -> Any:
        value = self.get("filter")
        if value is _MISSING and "filter" in self.params:
            return None  # left at its default: everything
        return value


async def observed_find_list(coll: Collection[Any], node: Any, read: Awaitable[list[Any]]) -> Any:
    """``await read``, a bounded find collected whole, observed as its stream would be
    (:meth:`Observer.stream`: one operation "find", the documents read and returned)."""
    observer = coll._db._observer
    if observer is None or current_operation.get() is not None:
        return await read
    record = Operation("find")
    token = current_operation.set(record)
    started = perf_counter()
    try:
        docs = await read
    except BaseException as exc:
        current_operation.reset(token)
        await observer._finish(coll, record, _FindInputs(node), perf_counter() - started, None, exc)
        raise
    current_operation.reset(token)
    seconds = perf_counter() - started
    await observer._finish(coll, record, _FindInputs(node), seconds, _Returned(len(docs)), None)
    return docs


class _FindInputs(_Inputs):
    """A find stream's inputs: its filter, rendered only when something asks for it (a span,
    the slow warning, an audit event), not after every query."""

    __slots__ = ("comment_value", "node")

    def __init__(self, node: Any, comment: Any = None) -> None:
        super().__init__((), {}, ())
        self.node = node
        self.comment_value = comment

    def get(self, name: str) -> Any:
        if name == "filter":
            return self.node.to_mongo()
        if name == "comment" and self.comment_value is not None:
            return self.comment_value
        return _MISSING


def _is_operator(value: Any) -> bool:
    return isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)


def _returned(op: str, result: Any) -> int:
    if isinstance(result, _Returned):
        return result.n
    if op == "find_one" or op.startswith("find_one_and"):
        return 0 if result is None else 1
    items = getattr(result, "items", None)
    if op == "find_page" and isinstance(items, list):
        return len(items)
    return 0


def _key_list(values: Any) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in values]


def _keys(
    coll: Collection,
    op: str,
    inputs: _Inputs,
    result: Any,
    error: BaseException | None,
    filt: Any = _MISSING,
) -> list[Any] | None:
    """The keys an operation touched, when known (an insert's, a filter pinning keys);
    ``filt``: ``inputs.filter()`` when the caller has it."""
    if op == "insert_one" and error is None:
        return _key_list([result])
    if op == "insert_many" and error is None and isinstance(result, list):
        return _key_list(result)
    if op == "find_one" and isinstance(result, Mapping):
        key = tuple(result.get(k) for k in coll.spec.key)
        return _key_list([key[0] if len(key) == 1 else key])
    if filt is _MISSING:
        filt = inputs.filter()
    if filt is _MISSING:
        return None
    from asyncdb.query.parse import parse_filter

    try:
        keys = key_lookup(parse_filter(filt), coll.spec)
    except (AsyncDBError, TypeError, ValueError):
        return None
    if keys is None:
        return None
    out = [k[0] if len(k) == 1 else k for k in keys]
    upserted = getattr(result, "upserted_id", None)
    if upserted is not None and upserted not in out:
        out.append(upserted)
    return _key_list(out)


def observed(op: str) -> Callable[[F], F]:
    """Observe a public ``Collection`` method as operation ``op`` (when the database has an
    observer, and the call is not inside another observed operation)."""

    def wrap(method: F) -> F:
        params = tuple(inspect.signature(method).parameters)[1:]
        returns_one = op == "find_one" or op.startswith("find_one_and")

        @functools.wraps(method)
        async def call(self: Collection, *args: Any, **kwargs: Any) -> Any:
            observer = self._db._observer
            if observer is None or current_operation.get() is not None:
                return await method(self, *args, **kwargs)
            if not observer.quiet:  # spans or audit events: the full observation
                return await observer.run(self, op, method, args, kwargs, params)
            # Metrics (and the slow warning) alone, inline: the cost of the default, per call.
            record = Operation(op)
            token = current_operation.set(record)
            started = perf_counter()
            try:
                result = await method(self, *args, **kwargs)
            except BaseException as exc:
                seconds = perf_counter() - started
                current_operation.reset(token)
                inputs = _Inputs(args, kwargs, params)
                await observer._finish(self, record, inputs, seconds, None, exc)
                raise
            seconds = perf_counter() - started
            current_operation.reset(token)
            if seconds < observer.slow_s:
                metrics = observer.metrics
                if metrics is not None:
                    stats = metrics._ops.get((self.spec.name, op))
                    if stats is None:
                        stats = metrics.stats(self.spec.name, op)
                    returned = (result is not None) if returns_one else _returned(op, result)
                    stats.add(
                        seconds, returned, record.docs_read, record.cache_hits, record.cache_misses
                    )
            else:
                inputs = _Inputs(args, kwargs, params)
                await observer._finish(self, record, inputs, seconds, result, None)
            return result

        return call  # type: ignore[return-value]

    return wrap


async def observed_point_read(
    coll: Collection[Any],
    read: Awaitable[Any],
    filter: Mapping[str, Any],
    params: tuple[str, ...],
    observer: Observer | None,
) -> Any:
    """``await read``, a ``find_one`` by exact key without a cache, observed as ``@observed``
    does when the observer is quiet (metrics and the slow warning: the default) or absent,
    without the operation record a point read leaves empty: the clock and one counter update.
    (With spans or an audit trail, ``find_one`` takes the observed path instead.)
    ``observer``: the database's (``coll._db._observer``, which the caller has at hand)."""
    if observer is None or current_operation.get() is not None:
        return await read
    started = perf_counter()
    try:
        result = await read
    except BaseException as exc:
        seconds = perf_counter() - started
        inputs = _Inputs((filter,), {}, params)
        await observer._finish(coll, Operation("find_one"), inputs, seconds, None, exc)
        raise
    seconds = perf_counter() - started
    if seconds >= observer.slow_s:
        inputs = _Inputs((filter,), {}, params)
        await observer._finish(coll, Operation("find_one"), inputs, seconds, result, None)
        return result
    metrics = observer.metrics
    if metrics is not None:
        name = coll.spec.name
        stats = metrics.point_reads.get(name)
        if stats is None:
            stats = metrics.point_read_stats(name)
        pending = stats.pending if result is not None else stats.pending_missed
        pending.append(seconds)
        if len(pending) >= PENDING_MAX:
            stats.fold()
    return result


__all__ = [
    "READS",
    "ObservedCache",
    "Observer",
    "Operation",
    "observed",
    "observed_find_list",
    "observed_point_read",
]
