"""The HTTP status and JSON body of each asyncdb error (DESIGN §9), shared by the FastAPI
handlers and the aiohttp middleware.

Bodies are ``{"error": class name, "detail": message}`` and carry no document values: where an
error's message can hold one (a duplicate key, the native query of a scan), the detail is a
fixed sentence.

>>> import asyncdb
>>> status_and_body(asyncdb.DuplicateKey("key 'a1' exists", key="a1"))
(409, {'error': 'DuplicateKey', 'detail': 'a document with this key or unique value exists'})
"""

from __future__ import annotations

from typing import Any

from asyncdb.errors import (
    AsyncDBError,
    BackendUnavailable,
    DuplicateKey,
    InvalidCursor,
    NotSupported,
    OperationTimeout,
    QueryError,
    ScanRequired,
)

# Most specific first: ValidationError is a QueryError.
STATUS: tuple[tuple[type[AsyncDBError], int], ...] = (
    (QueryError, 400),
    (InvalidCursor, 400),
    (ScanRequired, 400),
    (DuplicateKey, 409),
    (NotSupported, 501),
    (OperationTimeout, 504),
    (BackendUnavailable, 503),
)

# Errors whose message may quote a document's values: a fixed detail instead.
_FIXED_DETAIL: dict[type[AsyncDBError], str] = {
    DuplicateKey: "a document with this key or unique value exists",
    ScanRequired: "this query needs a full scan: it needs an index, or scans allowed",
}


def status_of(exc: AsyncDBError) -> int | None:
    """The HTTP status of ``exc``, or None for an error that is a server fault (500)."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return None


def status_and_body(exc: AsyncDBError) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of ``exc`` (500 with the class name alone for an error the
    mapping does not list: its message is not meant for clients)."""
    status = status_of(exc)
    if status is None:
        return 500, {"error": type(exc).__name__, "detail": "internal database error"}
    detail = next((d for c, d in _FIXED_DETAIL.items() if isinstance(exc, c)), None)
    return status, {"error": type(exc).__name__, "detail": detail or str(exc)}


__all__ = ["STATUS", "status_and_body", "status_of"]
