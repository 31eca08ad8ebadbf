"""Redis from Debian's ``redis-server`` package, loopback only, no persistence. Each test gets
database 0 (or the one the external URL names), flushed before and after the test.

URL: ``redis://127.0.0.1:PORT/0``.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

from .base import ThrowawayServer, require_executable
from .process import LOOPBACK, ServerProcess


def answers_ping(port: int, host: str = LOOPBACK) -> bool:
    """True when a Redis server on ``host:port`` answers PING (it is loaded and serving)."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ThrowawayServer):
    name: ClassVar[str] = "redis"
    title: ClassVar[str] = "Redis"
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss")

    def __init__(self) -> None:
        super().__init__()
        self._binary = ""

    def _prepare(self, workdir: Path) -> None:
        self._binary = require_executable(
            self.title,
            shutil.which("redis-server"),
            "redis-server",
            "apt-get install -y redis-server; scripts/install-test-deps does it",
        )

    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        argv = [
            self._binary,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ]
        return ServerProcess(self.title, argv, log_path=workdir / "server.log", cwd=workdir)

    def _ready(self, port: int) -> bool:
        return answers_ping(port)

    def _base_url(self, host: str, port: int) -> str:
        return f"redis://{host}:{port}/0"

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        import redis.asyncio

        client = redis.asyncio.from_url(self.url)
        try:
            await client.flushdb()
            try:
                yield self.url
            finally:
                await client.flushdb()
        finally:
            await client.aclose()
