"""A small aiohttp service over asyncdb: post alerts, read one, list a company's alerts a page at
a time. ``ASYNCDB_URL`` picks the backend (default: SQLite, no server);
``ASYNCDB_CACHE_URL=redis://...`` adds the read cache and a per-client rate limit on posts.

    python examples/aiohttp_alerts.py            # http://127.0.0.1:8080
"""

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pydantic
from aiohttp import web

import asyncdb
from asyncdb.integrations.aiohttp import DB_KEY, setup
from asyncdb.integrations.ratelimit import RateLimiter

LIMITER = web.AppKey("limiter", RateLimiter)


class Alert(pydantic.BaseModel):
    id: str | None = None
    company_id: str
    title: str = pydantic.Field(min_length=1)
    priority: int = pydantic.Field(ge=0, le=100)
    created_at: pydantic.AwareDatetime = pydantic.Field(default_factory=lambda: datetime.now(UTC))


def alerts(request: web.Request) -> asyncdb.Collection[Alert]:
    return request.app[DB_KEY].collection(
        "alerts", model=Alert, indexes=[("company_id", "created_at")]
    )


async def create_alert(request: web.Request) -> web.Response:
    if LIMITER in request.app:
        await request.app[LIMITER].check_aiohttp(request, "create_alert")
    body = await request.json()
    coll = alerts(request)
    # Validated against Alert before any I/O: invalid input is a 400 from the error middleware.
    key = await coll.insert_one({**body, "company_id": request.match_info["company"]})
    alert = await coll.find_one({"id": key})
    assert alert is not None
    return web.json_response(alert.model_dump(mode="json"), status=201)


async def get_alert(request: web.Request) -> web.Response:
    alert = await alerts(request).find_one({"id": request.match_info["id"]})
    if alert is None:
        raise web.HTTPNotFound()
    return web.json_response(alert.model_dump(mode="json"))


async def list_alerts(request: web.Request) -> web.Response:
    page = await alerts(request).find_page(
        {"company_id": request.match_info["company"]},
        sort=[("created_at", -1), ("id", -1)],
        limit=int(request.query.get("limit", "50")),
        cursor=request.query.get("cursor"),
    )
    items = [a.model_dump(mode="json") for a in page.items]
    return web.json_response({"items": items, "next_cursor": page.next_cursor})


def create_app(url: str | None = None, cache: str | None = None) -> web.Application:
    app = web.Application()
    cache = cache or os.environ.get("ASYNCDB_CACHE_URL") or None
    setup(app, url or os.environ.get("ASYNCDB_URL", "sqlite:///alerts.db"), cache=cache)
    if cache:

        async def limiter(app: web.Application) -> AsyncIterator[None]:
            app[LIMITER] = RateLimiter(cache, limit=20, window=60)
            yield
            await app[LIMITER].close()

        app.cleanup_ctx.append(limiter)
    app.router.add_post("/companies/{company}/alerts", create_alert)
    app.router.add_get("/companies/{company}/alerts", list_alerts)
    app.router.add_get("/alerts/{id}", get_alert)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
