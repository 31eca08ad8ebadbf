"""A dedicated throwaway PostgreSQL server per test module and a loopback TCP proxy in front of
it (``tcp_proxy``), for the tests that cut, delay or refuse its connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from servers.postgres import PostgresServer
from tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def proxy(own_postgres: PostgresServer) -> AsyncIterator[TcpProxy]:
    p = await TcpProxy(own_postgres.port).start()
    try:
        yield p
    finally:
        await p.stop()
