"""DESIGN §9: a Database used from another event loop than the one that opened it raises
``asyncdb.WrongEventLoop`` at once (instead of a driver's obscure error or a hang), with
pytest-asyncio's function and session loops and with plain ``asyncio.run``."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import asyncdb


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[asyncdb.Database]:
    path = tmp_path_factory.mktemp("loops") / "session.db"
    async with asyncdb.connect(f"sqlite:///{path}") as db:
        await db.collection("items").insert_one({"id": "seed", "n": 1})
        yield db


@pytest.mark.asyncio(loop_scope="session")
async def test_a_session_loop_test_uses_the_session_database(session_db: asyncdb.Database) -> None:
    items = session_db.collection("items")
    assert await items.find_one({"id": "seed"}) == {"id": "seed", "n": 1}
    await items.update_one({"id": "seed"}, {"$inc": {"n": 1}})


async def test_a_function_loop_test_gets_wrong_event_loop(session_db: asyncdb.Database) -> None:
    items = session_db.collection("items")
    with pytest.raises(asyncdb.WrongEventLoop, match="another event loop"):
        await items.find_one({"id": "seed"})
    with pytest.raises(asyncdb.WrongEventLoop):
        await items.insert_one({"id": "x"})
    with pytest.raises(asyncdb.WrongEventLoop):
        await items.find({}).to_list()
    with pytest.raises(asyncdb.WrongEventLoop):
        async with session_db.transaction():
            pass


@pytest.mark.parametrize("scheme", ["sqlite", "postgres"])
def test_asyncio_run_twice_raises_at_once(
    scheme: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'run.db'}"
        if scheme == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    db = asyncio.run(_open_and_write(url))

    async def reuse() -> None:
        with pytest.raises(asyncdb.WrongEventLoop):
            await asyncio.wait_for(db.collection("items").find_one({"id": "a"}), 5)

    asyncio.run(reuse())

    async def close_on_a_fresh_loop() -> None:  # what works: a Database per loop
        async with asyncdb.connect(url) as again:
            assert await again.collection("items").find_one({"id": "a"}) == {"id": "a"}

    asyncio.run(close_on_a_fresh_loop())


async def _open_and_write(url: str) -> asyncdb.Database:
    db = await asyncdb.connect(url)
    await db.collection("items").insert_one({"id": "a"})
    return db


def test_a_database_from_another_loop_in_a_fastapi_app_is_a_500_not_a_hang(
    tmp_path: Path,
) -> None:
    from typing import Annotated

    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from asyncdb.integrations.fastapi import install_error_handlers

    url = f"sqlite:///{tmp_path / 'global.db'}"
    shared = asyncio.run(_open_and_write(url))  # a module-level database, opened at import

    def database() -> asyncdb.Database:
        return shared

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/items/{key}")
    async def get(key: str, db: Annotated[asyncdb.Database, Depends(database)]) -> object:
        return await db.collection("items").find_one({"id": key})

    without = TestClient(app).get("/items/a")
    with TestClient(app) as client:
        within = client.get("/items/a")
    for r in (without, within):
        assert r.status_code == 500
        assert r.json()["error"] == "WrongEventLoop"
