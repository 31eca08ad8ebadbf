"""The session's servers: each started on first use, at most once, and stopped at the end.

A server that cannot start fails every test that needs it, loudly, with the same message
(the start is not retried for each test). ``ASYNCDB_TEST_SKIP=cosmos,firestore`` is the only
way to skip a backend; the session summary lists what was skipped.

Tests use the fixtures of ``servers.plugin`` (``postgres_url`` ...); code that builds its own
fixtures (the conformance suite's backend table) can use ``POOL.fresh_url(name)`` directly:

    async with POOL.fresh_url("postgres") as url:
        db = await asyncdb.connect(url)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from .base import ThrowawayServer
from .cosmos import CosmosServer
from .dynamodb import DynamoDBLocalServer
from .firestore import FirestoreEmulator
from .mongo import SecantusServer
from .postgres import PostgresServer
from .process import ServerStartError
from .redis import RedisServer

SERVER_TYPES: dict[str, type[ThrowawayServer]] = {
    cls.name: cls
    for cls in (
        PostgresServer,
        SecantusServer,
        DynamoDBLocalServer,
        CosmosServer,
        FirestoreEmulator,
        RedisServer,
    )
}


def skipped_backends() -> list[str]:
    """The backends ``ASYNCDB_TEST_SKIP`` names; pytest.UsageError for an unknown name."""
    raw = os.environ.get("ASYNCDB_TEST_SKIP", "")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVER_TYPES]
    if unknown:
        raise pytest.UsageError(
            f"ASYNCDB_TEST_SKIP names unknown backends {unknown}; known: {list(SERVER_TYPES)}"
        )
    return names


class ServerPool:
    """Starts each server on first request; remembers failures; stops them all at the end."""

    def __init__(self) -> None:
        self.servers: dict[str, ThrowawayServer] = {}
        self.failures: dict[str, str] = {}
        self.skip_hits: set[str] = set()  # skipped backends some test asked for

    def server(self, name: str) -> ThrowawayServer:
        """The running server for backend ``name``; skips or fails the calling test otherwise."""
        cls = SERVER_TYPES[name]
        if name in skipped_backends():
            self.skip_hits.add(name)
            pytest.skip(f"{cls.title} ({name}) skipped by ASYNCDB_TEST_SKIP")
        if name not in self.servers and name not in self.failures:
            server = cls()
            try:
                server.start()
            except Exception as exc:
                server.stop(keep_logs=True)
                why = str(exc) if isinstance(exc, ServerStartError) else f"{exc!r}"
                why = why.removeprefix(f"{cls.title}: ").removeprefix(f"{cls.title} ")
                self.failures[name] = f"{server.label} test server unavailable: {why}"
            else:
                self.servers[name] = server
        if name in self.failures:
            pytest.fail(self.failures[name], pytrace=False)
        return self.servers[name]

    @asynccontextmanager
    async def fresh_url(self, name: str) -> AsyncIterator[str]:
        """A URL to fresh, empty state on backend ``name`` for one test."""
        server = self.server(name)
        async with AsyncExitStack() as stack:
            problem = ""
            try:
                url = await stack.enter_async_context(server.fresh())
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem:  # failed outside the except block: no "during handling" chain
                pytest.fail(
                    f"{server.label} at {server.host}:{server.port}: could not prepare fresh"
                    f" state for a test: {problem}",
                    pytrace=False,
                )
            yield url

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()

    def summary_lines(self) -> list[str]:
        """What the session did with each backend's server, one line each."""
        lines = [server.describe() for server in self.servers.values()]
        lines += [message.splitlines()[0] for message in self.failures.values()]
        skipped = skipped_backends()
        if skipped:
            asked = [n for n in skipped if n in self.skip_hits]
            note = f" (tests skipped for: {', '.join(asked)})" if asked else ""
            lines.append(f"SKIPPED backends (ASYNCDB_TEST_SKIP): {', '.join(skipped)}{note}")
        return lines


POOL = ServerPool()
