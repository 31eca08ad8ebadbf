"""SecantusDB, a MongoDB-wire server on WiredTiger, standing in for MongoDB. It is GPL-2.0 and
test-only: scripts/install-test-deps installs the pinned ``secantusdb`` into a venv of its own
(outside the project's environment, see ``base.tools_dir``), and the tests only ever talk to
it as a separate process over the wire. Each test gets its own database, dropped afterwards.

URL: ``mongodb://127.0.0.1:PORT/t0123456789ab?directConnection=true``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from .base import ThrowawayServer, require_executable, tools_dir, unique_name
from .process import LOOPBACK, ServerProcess, port_open


def secantusd_path() -> str | None:
    """``ASYNCDB_TEST_SECANTUSD``, else the tools venv scripts/install-test-deps made, else PATH."""
    override = os.environ.get("ASYNCDB_TEST_SECANTUSD", "").strip()
    if override:
        return override
    venv = tools_dir() / "secantusdb" / "bin" / "secantusd-py"
    if venv.is_file():
        return str(venv)
    return shutil.which("secantusd-py")


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` (query string, e.g. directConnection, kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


class SecantusServer(ThrowawayServer):
    name: ClassVar[str] = "mongo"
    title: ClassVar[str] = "SecantusDB (MongoDB wire)"
    schemes: ClassVar[tuple[str, ...]] = ("mongodb", "mongodb+srv")

    def __init__(self) -> None:
        super().__init__()
        self._binary = ""

    def _prepare(self, workdir: Path) -> None:
        self._binary = require_executable(
            self.title,
            secantusd_path(),
            "secantusd-py",
            f"PyPI secantusdb in the venv {tools_dir() / 'secantusdb'};"
            " scripts/install-test-deps makes it",
        )
        # An empty config file: without --config it would read ./secantusd.toml,
        # ~/.secantus/secantusd.toml or /etc/secantus/secantusd.toml if one exists.
        (workdir / "secantusd.toml").write_text("")

    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        argv = [
            self._binary,
            "--config",
            str(workdir / "secantusd.toml"),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
        ]
        env = {**os.environ, "TMPDIR": str(workdir)}  # its ":memory:" store is a temp dir
        return ServerProcess(
            self.title, argv, log_path=workdir / "server.log", cwd=workdir, env=env
        )

    def _ready(self, port: int) -> bool:
        return port_open(port)

    def _base_url(self, host: str, port: int) -> str:
        return f"mongodb://{host}:{port}/?directConnection=true"

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        from pymongo import AsyncMongoClient

        database = unique_name()
        try:
            yield with_database(self.url, database)
        finally:
            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
                self.url, serverSelectionTimeoutMS=30_000
            )
            try:
                await client.drop_database(database)
            finally:
                await client.close()
