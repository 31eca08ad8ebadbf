"""DESIGN §9: ``asyncdb.Settings`` reads ASYNCDB_* variables and ``.env``; secrets never appear
in a repr, an error or a log line; ``connect(settings=...)`` and ``connect()`` use them."""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic
import pytest

import asyncdb

SECRET = "hunter2-do-not-print"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("URL", "CACHE_URL", "POOL_MIN_SIZE", "POOL_MAX_SIZE", "TIMEOUT", "CURSOR_SECRET"):
        monkeypatch.delenv(f"ASYNCDB_{name}", raising=False)
    monkeypatch.delenv("ASYNCDB_KEYRING", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_settings_come_from_env_and_dotenv_with_env_winning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        f"ASYNCDB_URL=sqlite:///{tmp_path}/from-dotenv.db\n"
        f"ASYNCDB_CURSOR_SECRET={SECRET}\nASYNCDB_TIMEOUT=2.5\n"
    )
    monkeypatch.setenv("ASYNCDB_TIMEOUT", "7")
    settings = asyncdb.Settings()
    assert settings.url is not None
    assert settings.url.get_secret_value() == f"sqlite:///{tmp_path}/from-dotenv.db"
    assert settings.timeout == 7.0
    assert settings.cursor_secret is not None
    assert settings.cursor_secret.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert SECRET not in text and "from-dotenv" not in text


def test_invalid_values_are_rejected_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCDB_POOL_MAX_SIZE", SECRET)
    with pytest.raises(pydantic.ValidationError) as info:
        asyncdb.Settings()
    assert "pool_max_size" in str(info.value)
    assert SECRET not in str(info.value)


async def test_connect_with_settings_and_with_asyncdb_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    settings = asyncdb.Settings(url=url, cursor_secret=SECRET, timeout=3)
    async with asyncdb.connect(settings=settings) as db:
        await db.collection("a").insert_many([{"id": str(i)} for i in range(3)])
        page = await db.collection("a").find_page({}, limit=1)
        assert page.next_cursor is not None
        # The cursor secret of the settings signs cursors: another secret refuses them.
        async with asyncdb.connect(url, cursor_secret="other") as other:
            with pytest.raises(asyncdb.InvalidCursor):
                await other.collection("a").find_page({}, limit=1, cursor=page.next_cursor)
    monkeypatch.setenv("ASYNCDB_URL", url)
    async with asyncdb.connect() as db:
        assert [
            d["id"] async for d in db.collection("a", allow_scan=True).find({}, sort=[("id", 1)])
        ] == [
            "0",
            "1",
            "2",
        ]
    monkeypatch.delenv("ASYNCDB_URL")
    with pytest.raises(asyncdb.ConfigurationError, match="ASYNCDB_URL"):
        await asyncdb.connect()


async def test_pool_sizes_reach_postgres_and_are_refused_elsewhere(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = asyncdb.Settings(url=postgres_url, pool_min_size=1, pool_max_size=3)
    async with asyncdb.connect(settings=settings) as db:
        pool = db._store.pool  # type: ignore[attr-defined]
        assert (pool.get_min_size(), pool.get_max_size()) == (1, 3)
    with pytest.raises(asyncdb.ConfigurationError, match="POOL"):
        await asyncdb.connect(settings=asyncdb.Settings(url="memory://", pool_max_size=3))


async def test_a_password_in_the_url_reaches_no_error_and_no_log_line(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    host = postgres_url.split("@", 1)[1].split("/", 1)[0]
    url = f"postgresql://nosuchuser:{SECRET}@{host}/postgres"
    settings = asyncdb.Settings(url=url, timeout=5)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(asyncdb.AsyncDBError) as info:
        async with asyncdb.connect(settings=settings) as db:
            await db.collection("a").find_one({"id": "x"})
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert SECRET not in caplog.text
    assert SECRET not in repr(settings)


def test_importing_asyncdb_imports_no_pydantic() -> None:
    import subprocess
    import sys

    code = "import sys, asyncdb; print(sorted(m for m in sys.modules if m.startswith('pydantic')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
