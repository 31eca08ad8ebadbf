"""FastAPI: a lifespan that opens the database, a ``db`` dependency, error handlers, and a
response model for ``find_page`` (extra ``fastapi``).

>>> from typing import Annotated
>>> from fastapi import Depends, FastAPI
>>> import asyncdb
>>> from asyncdb.integrations.fastapi import AsyncDB
>>> adb = AsyncDB("sqlite:///app.db")
>>> app = FastAPI(lifespan=adb.lifespan)
>>> adb.install_error_handlers(app)
>>> @app.get("/alerts/{alert_id}")
... async def get_alert(alert_id: str, db: Annotated[asyncdb.Database, Depends(adb.db)]):
...     return await db.collection("alerts").find_one({"id": alert_id})

No global state: the open Database lives in the lifespan's state (``request.state``), so two
apps, two tenants' databases (two ``AsyncDB``), or one app served twice in one process never
share one; each worker process opens its own on its own event loop. Without a running lifespan
(FastAPI's ``TestClient`` outside ``with``), ``db`` opens a database for the one request and
closes it after the response (a ``memory://`` database then starts empty on every request).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import HTTPConnection, Request

from asyncdb.database import Database, connect
from asyncdb.errors import AsyncDBError, ConfigurationError
from asyncdb.integrations.errors import status_and_body
from asyncdb.settings import Settings
from asyncdb.types import Page

T = TypeVar("T")
_NAMES = itertools.count(1)


class PageResponse(BaseModel, Generic[T]):
    """The JSON of one ``find_page`` result: ``PageResponse[Alert]`` as a ``response_model``
    validates a returned ``Page`` (or anything with ``items`` and ``next_cursor``).

    >>> PageResponse[int].of(Page(items=[1, 2], next_cursor="c2")).model_dump()
    {'items': [1, 2], 'next_cursor': 'c2'}
    """

    model_config = {"from_attributes": True}

    items: list[T]
    next_cursor: str | None = None

    @classmethod
    def of(cls, page: Page[Any]) -> PageResponse[T]:
        return cls(items=page.items, next_cursor=page.next_cursor)


class AsyncDB:
    """One database for one FastAPI app: ``AsyncDB(url, **connect_options)`` or
    ``AsyncDB(settings=asyncdb.Settings())`` (or ``AsyncDB()``: ASYNCDB_* variables).

    ``name`` is the key of the database in the lifespan state (``request.state.<name>``);
    by default a unique one, so several AsyncDB on one app never collide.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        self._url = url
        self._settings = settings
        self._options = options
        self.name = name or f"asyncdb_{next(_NAMES)}"

    def connect(self) -> Any:
        """``asyncdb.connect`` with this AsyncDB's URL, settings and options."""
        return connect(self._url, settings=self._settings, **self._options)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        """``FastAPI(lifespan=adb.lifespan)``: open on startup, close on shutdown. To combine
        with an app's own lifespan: ``async with adb.lifespan(app) as state: ...; yield state``.
        """
        db: Database = await self.connect()
        try:
            yield {self.name: db}
        finally:
            await db.close()

    async def db(self, connection: HTTPConnection) -> AsyncIterator[Database]:
        """The dependency: ``db: Annotated[asyncdb.Database, Depends(adb.db)]``. Outside a
        lifespan it opens a database for the one request (see :meth:`database` for the
        cheaper dependency that needs the lifespan)."""
        state = connection.scope.get("state") or {}
        db = state.get(self.name)
        if db is not None:
            yield db
            return
        # No lifespan ran (TestClient outside ``with``): a database for this request only.
        opened: Database = await self.connect()
        try:
            yield opened
        finally:
            await opened.close()

    async def database(self, connection: HTTPConnection) -> Database:
        """The lifespan's database, as a plain dependency: ``Depends(adb.database)`` costs
        FastAPI less per request than the generator :meth:`db` (no exit stack), and outside a
        lifespan (TestClient without ``with``) raises ConfigurationError instead of opening one.
        """
        state = connection.scope.get("state") or {}
        db: Database | None = state.get(self.name)
        if db is None:
            raise ConfigurationError(
                "no database: the app's lifespan did not run (use `with TestClient(app)`), "
                "or depend on adb.db, which opens one per request outside a lifespan"
            )
        return db

    def install_error_handlers(self, app: FastAPI) -> None:
        """Map asyncdb errors to HTTP responses (DESIGN §9): QueryError, ValidationError,
        InvalidCursor, ScanRequired → 400; DuplicateKey → 409; NotSupported → 501;
        OperationTimeout → 504; BackendUnavailable → 503; any other asyncdb error → 500.
        Bodies are ``{"error": class name, "detail": message}`` with no document values."""
        install_error_handlers(app)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AsyncDBError)
    status, body = status_and_body(exc)
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """:meth:`AsyncDB.install_error_handlers` for an app that opens its database otherwise."""
    app.add_exception_handler(AsyncDBError, _handle)


__all__ = ["AsyncDB", "PageResponse", "install_error_handlers"]
