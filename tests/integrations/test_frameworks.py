"""DESIGN §9: the FastAPI and aiohttp integrations map asyncdb errors to the same HTTP statuses
with JSON bodies that carry no document values, keep no global state (two tenants' databases on
one app, one app served twice at once), and give typed pages as a response model."""

from pathlib import Path
from typing import Annotated, Any

import pydantic
from aiohttp import web
from aiohttp.test_utils import TestClient as AioClient
from aiohttp.test_utils import TestServer
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import asyncdb
from asyncdb.integrations import aiohttp as adb_aiohttp
from asyncdb.integrations.fastapi import AsyncDB, PageResponse

from .service import example, newest_key

SECRET_VALUE = "ssn-123-45-6789"

RAISED: dict[str, tuple[asyncdb.AsyncDBError, int]] = {
    "query": (asyncdb.QueryError("unknown operator", path="a.$foo"), 400),
    "validation": (asyncdb.ValidationError("Alert: bad", path="priority"), 400),
    "cursor": (asyncdb.InvalidCursor("malformed cursor"), 400),
    "scan": (asyncdb.ScanRequired(f"needs a full scan ({{'params': ['{SECRET_VALUE}']}})"), 400),
    "duplicate": (asyncdb.DuplicateKey(f"key {SECRET_VALUE!r} exists", key=SECRET_VALUE), 409),
    "unsupported": (asyncdb.NotSupported("cosmos does not support transactions"), 501),
    "timeout": (asyncdb.OperationTimeout("find did not finish within 5 s"), 504),
    "unavailable": (asyncdb.BackendUnavailable("circuit open"), 503),
    "other": (asyncdb.BackendError(f"driver said {SECRET_VALUE}"), 500),
}


class Alert(pydantic.BaseModel):
    id: str | None = None
    priority: int


def fastapi_app(adb: AsyncDB) -> FastAPI:
    app = FastAPI(lifespan=adb.lifespan)
    adb.install_error_handlers(app)
    DB = Annotated[asyncdb.Database, Depends(adb.db)]

    @app.get("/raise/{kind}")
    async def raise_(kind: str) -> None:
        raise RAISED[kind][0]

    @app.post("/alerts")
    async def create(doc: dict[str, Any], db: DB) -> dict[str, Any]:
        return {"id": await db.collection("alerts", model=Alert).insert_one(doc)}

    @app.get("/alerts", response_model=PageResponse[Alert])
    async def page(db: DB, cursor: str | None = None) -> Any:
        alerts = db.collection("alerts", model=Alert, allow_scan=True)
        return await alerts.find_page({}, sort=[("id", 1)], limit=2, cursor=cursor)

    return app


def assert_mapped(kind: str, status: int, body: dict[str, Any]) -> None:
    exc, expected = RAISED[kind]
    assert status == expected, (kind, status, body)
    assert body["error"] == type(exc).__name__
    assert set(body) == {"error", "detail"} and SECRET_VALUE not in body["detail"]


def test_fastapi_maps_every_error_and_pages_typed_results(tmp_path: Path) -> None:
    with TestClient(fastapi_app(AsyncDB(f"sqlite:///{tmp_path / 'a.db'}"))) as c:
        for kind in RAISED:
            r = c.get(f"/raise/{kind}")
            assert_mapped(kind, r.status_code, r.json())
        assert c.post("/alerts", json={"id": SECRET_VALUE, "priority": 1}).status_code == 200
        dup = c.post("/alerts", json={"id": SECRET_VALUE, "priority": 2})  # a real DuplicateKey
        assert dup.status_code == 409 and SECRET_VALUE not in dup.text
        bad = c.post("/alerts", json={"priority": SECRET_VALUE})  # a real ValidationError
        assert bad.status_code == 400 and bad.json()["error"] == "ValidationError"
        assert "priority" in bad.json()["detail"] and SECRET_VALUE not in bad.text
        for i in range(3):
            c.post("/alerts", json={"id": f"a{i}", "priority": i})
        first = c.get("/alerts").json()
        assert first["items"] == [{"id": "a0", "priority": 0}, {"id": "a1", "priority": 1}]
        rest = c.get("/alerts", params={"cursor": first["next_cursor"]}).json()
        assert [a["id"] for a in rest["items"]] == ["a2", SECRET_VALUE]


def test_two_tenants_on_one_app_and_one_app_served_twice() -> None:
    tenant_a, tenant_b = AsyncDB("memory://"), AsyncDB("memory://")
    app = FastAPI(lifespan=_both(tenant_a, tenant_b))

    @app.post("/{tenant}/items/{item}")
    async def put(
        tenant: str,
        item: str,
        a: Annotated[asyncdb.Database, Depends(tenant_a.db)],
        b: Annotated[asyncdb.Database, Depends(tenant_b.db)],
    ) -> None:
        await (a if tenant == "a" else b).collection("items").insert_one({"id": item})

    @app.get("/{tenant}/items/{item}")
    async def get(
        tenant: str,
        item: str,
        a: Annotated[asyncdb.Database, Depends(tenant_a.db)],
        b: Annotated[asyncdb.Database, Depends(tenant_b.db)],
    ) -> bool:
        found = await (a if tenant == "a" else b).collection("items").find_one({"id": item})
        return found is not None

    # The same app object in two servers at once: each run of the lifespan has its databases.
    with TestClient(app) as one, TestClient(app) as two:
        one.post("/a/items/x")
        assert one.get("/a/items/x").json() is True
        assert one.get("/b/items/x").json() is False  # the other tenant's database
        assert two.get("/a/items/x").json() is False  # the other server's database
        two.post("/b/items/y")
        assert two.get("/b/items/y").json() is True and one.get("/b/items/y").json() is False


def _both(a: AsyncDB, b: AsyncDB) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with a.lifespan(app) as sa, b.lifespan(app) as sb:
            yield {**sa, **sb}

    return lifespan


async def test_aiohttp_setup_error_middleware_and_two_apps(tmp_path: Path) -> None:
    async def raise_(request: web.Request) -> web.Response:
        raise RAISED[request.match_info["kind"]][0]

    async def put(request: web.Request) -> web.Response:
        db = request.app[adb_aiohttp.DB_KEY]
        key = await db.collection("items").insert_one(await request.json())
        return web.json_response({"id": key})

    async def get(request: web.Request) -> web.Response:
        db = request.app[adb_aiohttp.DB_KEY]
        return web.json_response(
            await db.collection("items").find_one({"id": request.match_info["id"]})
        )

    def make(path: Path) -> web.Application:
        app = web.Application()
        adb_aiohttp.setup(app, f"sqlite:///{path}")
        app.router.add_get("/raise/{kind}", raise_)
        app.router.add_post("/items", put)
        app.router.add_get("/items/{id}", get)
        return app

    async with (
        AioClient(TestServer(make(tmp_path / "one.db"))) as one,
        AioClient(TestServer(make(tmp_path / "two.db"))) as two,
    ):
        for kind in RAISED:
            r = await one.get(f"/raise/{kind}")
            assert_mapped(kind, r.status, await r.json())
        assert (await one.post("/items", json={"id": "x", "n": 1})).status == 200
        dup = await one.post("/items", json={"id": "x"})
        assert dup.status == 409 and (await dup.json())["error"] == "DuplicateKey"
        assert await (await one.get("/items/x")).json() == {"id": "x", "n": 1}
        assert await (await two.get("/items/x")).json() is None  # its own database
        assert one.server.app is not None
        assert isinstance(one.server.app[adb_aiohttp.DB_KEY], asyncdb.Database)


async def test_the_aiohttp_example_service(tmp_path: Path) -> None:
    app = example("aiohttp_alerts").create_app(f"sqlite:///{tmp_path / 'aio.db'}")
    async with AioClient(TestServer(app)) as c:
        made = []
        for i in range(3):
            r = await c.post("/companies/acme/alerts", json={"title": f"t{i}", "priority": i})
            assert r.status == 201
            made.append(await r.json())
        assert await (await c.get(f"/alerts/{made[0]['id']}")).json() == made[0]
        assert (await c.get("/alerts/nope")).status == 404
        bad = await c.post("/companies/acme/alerts", json={"title": "t", "priority": 101})
        assert bad.status == 400 and (await bad.json())["error"] == "ValidationError"
        first = await (await c.get("/companies/acme/alerts", params={"limit": "2"})).json()
        rest = await (
            await c.get("/companies/acme/alerts", params={"cursor": first["next_cursor"]})
        ).json()
        newest_first = sorted(made, key=newest_key, reverse=True)
        assert first["items"] + rest["items"] == newest_first


def test_the_readme_twelve_line_service(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # it opens sqlite:///app.db in the working directory
    app = example("fastapi_minimal").app

    async def insert() -> None:
        async with asyncdb.connect("sqlite:///app.db") as db:
            await db.collection("alerts").insert_one({"id": "a1", "priority": 80})

    with TestClient(app) as c:
        assert c.get("/alerts/a1").json() is None
        c.portal.call(insert)  # type: ignore[union-attr]
        assert c.get("/alerts/a1").json() == {"id": "a1", "priority": 80}


def test_outside_a_lifespan_db_opens_one_per_request_and_database_refuses(tmp_path: Path) -> None:
    adb = AsyncDB(f"sqlite:///{tmp_path / 'per_request.db'}")
    app = FastAPI(lifespan=adb.lifespan)
    adb.install_error_handlers(app)

    @app.post("/items/{key}")
    async def put(key: str, db: Annotated[asyncdb.Database, Depends(adb.db)]) -> None:
        await db.collection("items").insert_one({"id": key})

    @app.get("/items/{key}")
    async def get(key: str, db: Annotated[asyncdb.Database, Depends(adb.db)]) -> object:
        return await db.collection("items").find_one({"id": key})

    @app.get("/fast/{key}")
    async def fast(key: str, db: Annotated[asyncdb.Database, Depends(adb.database)]) -> object:
        return await db.collection("items").find_one({"id": key})

    client = TestClient(app)  # no `with`: no lifespan, and a new event loop per request
    client.post("/items/a")
    assert client.get("/items/a").json() == {"id": "a"}  # the file outlives each request's db
    refused = client.get("/fast/a")
    assert refused.status_code == 500 and refused.json()["error"] == "ConfigurationError"
    with TestClient(app) as c:
        assert c.get("/fast/a").json() == {"id": "a"}
