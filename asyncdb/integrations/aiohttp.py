"""aiohttp: open the database on startup and close it on cleanup (``cleanup_ctx``), under an
``AppKey``, and map asyncdb errors to JSON responses in a middleware (extra ``aiohttp``).

>>> from aiohttp import web
>>> from asyncdb.integrations.aiohttp import DB_KEY, setup
>>> async def get_alert(request: web.Request) -> web.Response:
...     alert = await request.app[DB_KEY].collection("alerts").find_one(
...         {"id": request.match_info["id"]})
...     return web.json_response(alert)
>>> app = web.Application()
>>> setup(app, "sqlite:///app.db")
>>> _ = app.router.add_get("/alerts/{id}", get_alert)

No global state: the Database belongs to the application object (``app[DB_KEY]``) and is
opened on the loop that runs it. ``setup(app, ..., key=web.AppKey("tenant_b", Database))``
puts a second database on the same app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from asyncdb.database import Database, connect
from asyncdb.errors import AsyncDBError
from asyncdb.integrations.errors import status_and_body
from asyncdb.settings import Settings

DB_KEY = web.AppKey("asyncdb", Database)
_MIDDLEWARE_KEY = web.AppKey("asyncdb_error_middleware", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """asyncdb errors as JSON responses, with the statuses of DESIGN §9 (see
    :mod:`asyncdb.integrations.errors`)."""
    try:
        return await handler(request)
    except AsyncDBError as exc:
        status, body = status_and_body(exc)
        return web.json_response(body, status=status)


def setup(
    app: web.Application,
    url: str | None = None,
    *,
    settings: Settings | None = None,
    key: web.AppKey[Database] = DB_KEY,
    errors: bool = True,
    **options: Any,
) -> None:
    """Open ``asyncdb.connect(url, settings=settings, **options)`` when ``app`` starts, as
    ``app[key]``, close it on cleanup, and add the error middleware (once per app)."""

    async def database(app: web.Application) -> AsyncIterator[None]:
        db: Database = await connect(url, settings=settings, **options)
        app[key] = db
        try:
            yield
        finally:
            await db.close()

    app.cleanup_ctx.append(database)
    if errors and not app.get(_MIDDLEWARE_KEY, False):
        app.middlewares.append(error_middleware)
        app[_MIDDLEWARE_KEY] = True


__all__ = ["DB_KEY", "error_middleware", "setup"]
