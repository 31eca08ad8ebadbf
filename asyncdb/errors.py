"""The exception hierarchy: every error asyncdb raises derives from :class:`AsyncDBError`."""

from __future__ import annotations

from typing import Any


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


class KeyChanged(QueryError, UpdateError):
    """An update or replacement would change a document's key (refused, as in MongoDB; setting
    it to the value it has is allowed). A QueryError, and an UpdateError for callers that
    catch those."""


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


class BulkWriteError(AsyncDBError):
    """Some operations of a ``bulk_write`` (or an unordered ``insert_many``) failed.

    ``errors`` lists ``(index, error)`` for each failed operation (each error an asyncdb error
    such as :class:`DuplicateKey` or :class:`UpdateError`); ``result`` is the
    ``BulkWriteResult`` of what was applied. An ordered bulk write stopped at its first failure;
    an unordered one applied every other operation.
    """

    def __init__(self, errors: list[tuple[int, Exception]], result: Any) -> None:
        self.errors = errors
        self.result = result
        first_index, first = errors[0]
        super().__init__(
            f"{len(errors)} operation(s) failed; the first, at index {first_index}: "
            f"{type(first).__name__}: {first}"
        )


class Contention(OperationTimeout):
    """A write kept losing the race for one document (a compare-and-set that failed its
    version check, a write conflict) until retrying with back-off would pass the call's
    ``timeout``. The write was not applied: every attempt was refused by the store. A subclass
    of :class:`OperationTimeout` (the call did not finish in time), so code that catches
    timeouts keeps working; retry later or spread the writes over more documents."""


class DecryptionError(AsyncDBError):
    """An encrypted value that does not open: tampered, moved to another document, field or
    collection, sealed by another key ring, under an unknown or disabled key, or plaintext where
    ciphertext belongs. ``key_id`` and ``field`` say where; the value is never in the message."""

    def __init__(self, message: str, *, key_id: str = "", field: str = "") -> None:
        self.key_id = key_id
        self.field = field
        super().__init__(message)


class ValidationError(QueryError):
    """A document that does not validate against its collection's model (``model=``).

    Raised before any I/O; ``path`` names the first invalid field and the message never
    carries the offending value.

    >>> ValidationError("Input should be a valid integer", path="priority").path
    'priority'
    """


class WrongEventLoop(AsyncDBError, RuntimeError):
    """A Database used from another event loop than the one that opened it.

    Pools, sockets and driver clients belong to the loop they were created on; open one
    Database per event loop (per worker process, per test loop) instead of sharing one."""


class AuditError(AsyncDBError):
    """The operation ran, but its audit event could not be stored (``audit_policy="closed"``).

    ``result`` is the operation's own result: a write that raised this was applied.
    """

    def __init__(self, message: str, *, result: object = None) -> None:
        self.result = result
        super().__init__(message)
