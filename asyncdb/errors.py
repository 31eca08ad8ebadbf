"""The exception hierarchy: every error asyncdb raises derives from :class:`AsyncDBError`."""

from __future__ import annotations


class AsyncDBError(Exception):
    """Base class of every asyncdb error."""


class QueryError(AsyncDBError, ValueError):
    """A filter, update, sort or projection that the query language rejects.

    Raised before any I/O. ``path`` names the offending place, e.g. ``"a.b.$gt"``.

    >>> QueryError("unknown operator", path="a.$foo").path
    'a.$foo'
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(f"{message} (at {path!r})" if path else message)


class UpdateError(AsyncDBError):
    """An update that cannot be applied to a stored document (``$inc`` on a string, ...).

    Nothing is written when it is raised.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(f"{message} (at {path!r})" if path else message)


class ScanRequired(AsyncDBError):
    """The query needs a full scan (or a client-side sort beyond ``max_scan``) and scans are off."""


class NotSupported(AsyncDBError):
    """The backend does not offer this capability; it is refused instead of half-done."""


class DuplicateKey(AsyncDBError):
    """A write would create a second document with an existing key (or unique index value)."""

    def __init__(self, message: str, *, key: object = None) -> None:
        self.key = key
        super().__init__(message)


class InvalidCursor(AsyncDBError):
    """A pagination cursor that is malformed, forged, or belongs to another query."""


class TransactionError(AsyncDBError):
    """A transaction could not be committed (conflict, aborted, misuse)."""


class ConfigurationError(AsyncDBError):
    """A connection URL or collection spec that cannot be used."""


class BackendError(AsyncDBError):
    """An error of the underlying store that asyncdb could not map to a narrower class."""


class OperationTimeout(AsyncDBError, TimeoutError):
    """A call did not finish within the database's ``timeout`` (retries included); it was
    cancelled. A write that timed out may or may not have been applied."""


class BackendUnavailable(AsyncDBError):
    """The backend's circuit breaker is open (too many consecutive failures): the call failed
    fast without reaching the backend. Retry after the cool-down."""


class AuditError(AsyncDBError):
    """The operation ran, but its audit event could not be stored (``audit_policy="closed"``).

    ``result`` is the operation's own result: a write that raised this was applied.
    """

    def __init__(self, message: str, *, result: object = None) -> None:
        self.result = result
        super().__init__(message)
