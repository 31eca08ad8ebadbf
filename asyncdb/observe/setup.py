"""The observation options of ``asyncdb.connect(url, ...)`` and the observer they make.

``metrics`` [True], ``slow_ms`` [1000; None turns the warning off], ``tracing`` [False],
``audit`` [None], ``audit_reads`` [False], ``audit_keys`` [True], ``audit_policy``
["closed" | "open"]. They are checked before any I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asyncdb.errors import ConfigurationError
from asyncdb.observe.audit import AuditTrail, CallableSink, CollectionSink, is_logger, logger_sink
from asyncdb.observe.operation import Observer
from asyncdb.observe.tracing import Tracing
from asyncdb.types import check_identifier

if TYPE_CHECKING:
    from asyncdb.database import Database


@dataclass(frozen=True, slots=True)
class ObserveOptions:
    metrics: bool = True
    slow_ms: float | None = 1000.0
    tracing: bool = False
    audit: Any = None
    audit_reads: bool = False
    audit_keys: bool = True
    audit_policy: str = "closed"

    @classmethod
    def pop(cls, options: dict[str, Any]) -> ObserveOptions:
        """Take this module's options out of ``options`` (the rest go to the store)."""
        values = {name: options.pop(name) for name in cls.__dataclass_fields__ if name in options}
        made = cls(**values)
        slow = made.slow_ms
        if slow is not None and (isinstance(slow, bool) or not isinstance(slow, int | float)):
            raise ConfigurationError(f"slow_ms must be a number of milliseconds, not {slow!r}")
        if slow is not None and slow < 0:
            raise ConfigurationError("slow_ms must not be negative")
        if made.audit_policy not in ("closed", "open"):
            raise ConfigurationError(
                f'audit_policy must be "closed" or "open", not {made.audit_policy!r}'
            )
        audit = made.audit
        if isinstance(audit, str):
            check_identifier(audit, "audit collection name")
        elif audit is not None and not (
            callable(audit) or is_logger(audit) or hasattr(audit, "spec")
        ):
            raise ConfigurationError(
                "audit= takes a collection name, a Collection, a callable or a structlog logger"
            )
        return made

    def observer(self, db: Database) -> Observer | None:
        """The database's observer, or None when nothing is observed at all."""
        if not (self.metrics or self.tracing or self.audit is not None or self.slow_ms):
            return None
        tracing = Tracing(db.backend, db.url, db._store) if self.tracing else None
        trail = None
        if self.audit is not None:
            trail = AuditTrail(
                _sink(db, self.audit),
                "open" if self.audit_policy == "open" else "closed",
                bool(self.audit_reads),
                bool(self.audit_keys),
            )
        return Observer(
            db.backend,
            metrics=bool(self.metrics),
            slow_ms=self.slow_ms,
            tracing=tracing,
            audit=trail,
        )


def _sink(db: Database, audit: Any) -> CollectionSink | CallableSink:
    from asyncdb.collection import Collection

    if isinstance(audit, str):
        return CollectionSink(db.collection(audit))
    if isinstance(audit, Collection):
        return CollectionSink(audit)
    if is_logger(audit):
        return logger_sink(audit)
    fn: Callable[[dict[str, Any]], Any] = audit
    return CallableSink(fn)


__all__ = ["ObserveOptions"]
