"""A streaming replica of the session's PostgreSQL: ``pg_basebackup -R`` (a standby.signal and
the primary's connection in postgresql.auto.conf) into a temp dir, then ``postgres`` on another
loopback port, hot standby. It replicates every database, so a test's fresh database on the
primary appears on the replica (``replica_url`` waits for it). ``stop()`` / ``start()`` stop it
and start it again on the same port (it resumes streaming from where it was).

URL: ``postgresql://postgres@127.0.0.1:PORT/<the same database>``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .base import NATIVE_START_TIMEOUT, start_timeout
from .postgres import PostgresServer, _bindir
from .process import LOOPBACK, ServerProcess, ServerStartError, free_port, port_open

_READY = "database system is ready to accept read-only connections"


class PostgresReplica:
    title = "PostgreSQL streaming replica"

    def __init__(self, primary: PostgresServer) -> None:
        self.primary = primary
        self.port = 0
        self.workdir: Path | None = None
        self.process: ServerProcess | None = None
        self._user: str | None = None
        self._bindir = ""

    def create(self) -> None:
        """Base-backup the primary and start the replica; ServerStartError naming what failed."""
        bindir = _bindir()
        if bindir is None or not Path(bindir, "pg_basebackup").is_file():
            raise ServerStartError(f"{self.title}: pg_basebackup is not installed")
        self._bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="asyncdb-test-postgres-replica-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
            self._user = "postgres"
        parts = urlsplit(self.primary.url)
        argv = [
            f"{bindir}/pg_basebackup",
            "-h",
            parts.hostname or LOOPBACK,
            "-p",
            str(parts.port or 5432),
            "-U",
            parts.username or "postgres",
            "-D",
            str(self.workdir / "data"),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ]
        done = subprocess.run(argv, user=self._user, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ServerStartError(
                f"{self.title}: {' '.join(argv)} failed ({done.returncode}):"
                f" {done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        self.port = free_port()
        self.start()

    def start(self) -> None:
        assert self.workdir is not None
        log = self.workdir / "server.log"
        offset = log.stat().st_size if log.exists() else 0
        argv = [
            f"{self._bindir}/postgres",
            "-D",
            str(self.workdir / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.workdir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
            "-c",
            "hot_standby=on",
        ]
        process = ServerProcess(
            self.title,
            argv,
            log_path=log,
            cwd=self.workdir,
            user=self._user,
            stop_signal=signal.SIGINT,
        )
        process.start()

        def ready() -> bool:
            with open(log, errors="replace") as f:
                f.seek(offset)
                return _READY in f.read() and port_open(self.port)

        process.wait_ready(ready, start_timeout(NATIVE_START_TIMEOUT))
        self.process = process

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def destroy(self) -> None:
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def url_for(self, primary_url: str) -> str:
        """The replica's URL of the database ``primary_url`` names."""
        parts = urlsplit(primary_url)
        return urlunsplit(
            parts._replace(netloc=f"{parts.username or 'postgres'}@{LOOPBACK}:{self.port}")
        )

    async def wait_for_database(self, url: str) -> None:
        """Until the replica has replayed the creation of ``url``'s database."""
        import asyncpg

        deadline = time.monotonic() + 30.0
        while True:
            try:
                conn = await asyncpg.connect(url, timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                if time.monotonic() > deadline:
                    raise ServerStartError(f"{self.title}: {url} never appeared: {exc}") from exc
                await asyncio.sleep(0.02)
                continue
            await conn.close()
            return
