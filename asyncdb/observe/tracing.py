"""OpenTelemetry spans and metrics (``connect(url, tracing=True)``, extra ``otel``).

Following the stable database semantic conventions: one CLIENT span per operation named
``"{db.operation.name} {db.collection.name}"`` with ``db.system.name``, ``db.operation.name``,
``db.collection.name``, ``db.namespace``, ``server.address``/``server.port``, ``db.query.text``
(the backend's native query with every literal as ``?``, see
:func:`asyncdb.observe.redaction.native_query_text`), ``db.response.returned_rows`` and, on
failure, ``error.type`` (the error's class name: never its message, which may quote a value)
and an ERROR status. Child spans: ``"retry {op}"`` for each attempt after the first, and
``"cache {op}"`` for a read-through cache lookup (``asyncdb.cache.hit``). The histogram
``db.client.operation.duration`` (seconds) is recorded per operation; the pool gauges
``db.client.connection.count`` (``db.client.connection.state`` idle/used),
``db.client.connection.max`` and the counter ``asyncdb.client.connection.waits`` come from
``Store.pool_stats()`` where the store has a pool (PostgreSQL). The tracer and meter are the
global providers' (``opentelemetry.trace.set_tracer_provider``), looked up at connect.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from asyncdb.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncdb.backends.base import Store

T = TypeVar("T")

SYSTEM_NAMES = {
    "postgres": "postgresql",
    "sqlite": "sqlite",
    "mongo": "mongodb",
    "dynamodb": "aws.dynamodb",
    "cosmos": "azure.cosmosdb",
    "firestore": "gcp.firestore",
    "memory": "asyncdb.memory",
}
# Seconds, as the conventions advise for db.client.operation.duration.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


def _place(url: str, backend: str) -> dict[str, Any]:
    """``db.namespace`` and ``server.*`` from the URL (never its credentials or options)."""
    parts = urlsplit(url)
    attrs: dict[str, Any] = {}
    if backend in ("sqlite", "memory"):
        return attrs
    if parts.hostname:
        attrs["server.address"] = parts.hostname
    try:
        if parts.port:
            attrs["server.port"] = parts.port
    except ValueError:
        pass
    name = parts.path.strip("/") if backend != "firestore" else (parts.hostname or "")
    if name:
        attrs["db.namespace"] = name
    return attrs


# The stores whose pools are observed (gone when their database is), with their attributes.
_POOLS: weakref.WeakKeyDictionary[Store, dict[str, str]] = weakref.WeakKeyDictionary()
_METERS: set[int] = set()


def _pool_observations(pick: Callable[[dict[str, int], dict[str, str]], list[Any]]) -> list[Any]:
    out: list[Any] = []
    for store, attrs in list(_POOLS.items()):
        try:
            stats = store.pool_stats()
        except Exception:  # a closed pool
            continue
        if stats is not None:
            out.extend(pick(stats, attrs))
    return out


def _register_pool_instruments(meter: Any) -> None:
    from opentelemetry.metrics import CallbackOptions, Observation

    def count(options: CallbackOptions) -> Iterable[Observation]:
        return _pool_observations(
            lambda s, a: [
                Observation(s["idle"], {**a, "db.client.connection.state": "idle"}),
                Observation(s["in_use"], {**a, "db.client.connection.state": "used"}),
            ]
        )

    def maximum(options: CallbackOptions) -> Iterable[Observation]:
        return _pool_observations(lambda s, a: [Observation(s["max_size"], a)])

    def waits(options: CallbackOptions) -> Iterable[Observation]:
        return _pool_observations(lambda s, a: [Observation(s["waits"], a)])

    meter.create_observable_up_down_counter(
        "db.client.connection.count", [count], unit="{connection}"
    )
    meter.create_observable_up_down_counter(
        "db.client.connection.max", [maximum], unit="{connection}"
    )
    meter.create_observable_counter("asyncdb.client.connection.waits", [waits], unit="{acquire}")


class Tracing:
    """The tracer, meter and instruments of one database."""

    def __init__(self, backend: str, url: str, store: Store) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            raise ConfigurationError(
                "tracing=True needs OpenTelemetry: pip install 'asyncdb-unified[otel]'"
            ) from None
        import asyncdb

        self._trace = trace
        self.kind = trace.SpanKind.CLIENT
        self.tracer = trace.get_tracer("asyncdb", asyncdb.__version__)
        meter = metrics.get_meter("asyncdb", asyncdb.__version__)
        self.system = SYSTEM_NAMES.get(backend, backend)
        self.base: dict[str, Any] = {"db.system.name": self.system, **_place(url, backend)}
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        if store.pool_stats() is not None:
            self._pool_instruments(meter, store)

    def _pool_instruments(self, meter: Any, store: Store) -> None:
        pool = {"db.client.connection.pool.name": f"{self.system}:{self.base.get('db.namespace')}"}
        _POOLS[store] = pool
        if id(meter) not in _METERS:  # one set of instruments per meter: a name registers once
            _METERS.add(id(meter))
            _register_pool_instruments(meter)

    def start(self, op: str, collection: str) -> Any:
        """The operation's span, started (made current only by :meth:`use`)."""
        return self.tracer.start_span(
            f"{op} {collection}",
            kind=self.kind,
            attributes={
                **self.base,
                "db.operation.name": op,
                "db.collection.name": collection,
            },
        )

    def use(self, span: Any) -> Any:
        """``span`` as the current span inside a ``with`` block (not ended by it)."""
        return self._trace.use_span(
            span,
            end_on_exit=False,
            record_exception=False,  # an exception's message may quote a value
            set_status_on_exception=False,
        )

    def finish(
        self, span: Any, op: str, collection: str, seconds: float, error: str | None
    ) -> None:
        attrs = {**self.base, "db.operation.name": op, "db.collection.name": collection}
        if error is not None:
            attrs["error.type"] = error
            span.set_attribute("error.type", error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()
        self.duration.record(seconds, attrs)

    def child(self, name: str, attributes: dict[str, Any]) -> Any:
        return self.tracer.start_as_current_span(
            name,
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    def attempts(
        self, operation: Callable[[], Awaitable[T]], op: str
    ) -> Callable[[], Awaitable[T]]:
        """``operation`` with a ``"retry {op}"`` span around each attempt after the first."""
        attempt = 0

        async def run() -> T:
            nonlocal attempt
            attempt += 1
            if attempt == 1:
                return await operation()
            with self.child(f"retry {op}", {"asyncdb.attempt": attempt}) as span:
                try:
                    return await operation()
                except BaseException as exc:
                    span.set_attribute("error.type", type(exc).__name__)
                    raise

        return run


__all__ = ["SYSTEM_NAMES", "Tracing"]
