"""PostgreSQL 15 from Debian's packages: a cluster made by ``initdb`` in a temp dir, the
``postgres`` server run in the foreground (as the ``postgres`` user when we are root, since
initdb and postgres refuse root), loopback only, fsync off. Each test gets its own database,
dropped (WITH FORCE) afterwards.

URL: ``postgresql://postgres@127.0.0.1:PORT/t0123456789ab``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from .base import ThrowawayServer, require_executable, unique_name
from .process import LOOPBACK, ServerProcess, ServerStartError, port_open

_READY_LINE = "database system is ready to accept connections"


def _bindir() -> str | None:
    """The directory holding initdb and postgres: ``ASYNCDB_TEST_PG_BINDIR``, Debian's
    PostgreSQL 15, any other Debian version (newest first), or the one on PATH."""
    override = os.environ.get("ASYNCDB_TEST_PG_BINDIR", "").strip()
    if override:
        return override
    candidates = ["/usr/lib/postgresql/15/bin"]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for found in (shutil.which("initdb"), shutil.which("postgres")):
        if found:
            candidates.append(str(Path(found).resolve().parent))
    for candidate in candidates:
        if Path(candidate, "initdb").is_file() and Path(candidate, "postgres").is_file():
            return candidate
    return None


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead of the database it names."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


class PostgresServer(ThrowawayServer):
    name: ClassVar[str] = "postgres"
    title: ClassVar[str] = "PostgreSQL 15"
    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")

    def __init__(self) -> None:
        super().__init__()
        self._user: str | None = None
        self._bindir = ""

    def _prepare(self, workdir: Path) -> None:
        bindir = _bindir()
        how = "Debian package postgresql-15; scripts/install-test-deps installs it"
        require_executable(self.title, bindir and f"{bindir}/initdb", "initdb", how)
        self._bindir = str(bindir)
        if os.geteuid() == 0:
            # initdb refuses to run as root: the cluster belongs to the postgres user.
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServerStartError(
                    f"{self.title}: running as root needs the 'postgres' user to own the"
                    " cluster (Debian's postgresql-15 package creates it)"
                ) from exc
            os.chown(workdir, account.pw_uid, account.pw_gid)
            self._user = "postgres"
        log = workdir / "initdb.log"
        argv = [
            f"{bindir}/initdb",
            "--pgdata",
            str(workdir / "data"),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
            "--no-sync",
        ]
        result = subprocess.run(
            argv, user=self._user, capture_output=True, text=True, timeout=300, check=False
        )
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ServerStartError(
                f"{self.title}: initdb failed with code {result.returncode}"
                f" (command: {' '.join(argv)})\n{result.stdout}{result.stderr}"
            )

    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        argv = [
            f"{self._bindir}/postgres",
            "-D",
            str(workdir / "data"),
            "-p",
            str(port),
            "-k",
            str(workdir),  # the unix socket stays in our temp dir, not /var/run/postgresql
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        return ServerProcess(
            self.title,
            argv,
            log_path=workdir / "server.log",
            cwd=workdir,
            user=self._user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: ends sessions, no waiting for clients
        )

    def _ready(self, port: int) -> bool:
        assert self.workdir is not None
        log = self.workdir / "server.log"
        return _READY_LINE in log.read_text(errors="replace") and port_open(port)

    def _base_url(self, host: str, port: int) -> str:
        return f"postgresql://postgres@{host}:{port}/postgres"

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        import asyncpg

        database = unique_name()
        admin = await asyncpg.connect(self.url, timeout=30)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        try:
            yield with_database(self.url, database)
        finally:
            admin = await asyncpg.connect(self.url, timeout=30)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()
