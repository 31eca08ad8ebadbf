"""pytest fixtures for the real servers (loaded by tests/conftest.py).

Session-scoped ``<backend>_server`` fixtures start a server the first time a test needs it;
function-scoped ``<backend>_url`` fixtures yield a URL, in asyncdb's scheme, to fresh empty
state for one test (a new database, table prefix, or a reset emulator):

    async def test_roundtrip(postgres_url: str) -> None:
        db = await asyncdb.connect(postgres_url)

Backends: postgres, mongo, dynamodb, cosmos, firestore, redis. ``ASYNCDB_TEST_<BACKEND>_URL``
points a backend at a server already running; ``ASYNCDB_TEST_SKIP=cosmos,firestore`` skips.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from types import FrameType

import pytest

from .base import ThrowawayServer
from .pool import POOL, SERVER_TYPES, skipped_backends
from .postgres import PostgresServer
from .postgres_replica import PostgresReplica
from .process import ServerStartError, stop_all
from .redis_cluster import RedisClusterBed


def pytest_configure(config: pytest.Config) -> None:
    skipped_backends()  # an unknown name in ASYNCDB_TEST_SKIP stops the run here
    config.addinivalue_line("markers", "smoke: a real server answers through its raw driver")
    # A SIGTERM (a CI time-out, `kill`) would end pytest without atexit handlers: stop the
    # servers first, then die of SIGTERM as before.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_servers_then_die)


def _stop_servers_then_die(signum: int, frame: FrameType | None) -> None:
    POOL.stop_all()
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_report_header(config: pytest.Config) -> list[str]:
    external = [name for name, cls in SERVER_TYPES.items() if os.environ.get(cls.env_var())]
    skipped = skipped_backends()
    line = "asyncdb test servers: started on first use"
    if external:
        line += f"; external: {', '.join(external)}"
    if skipped:
        line += f"; SKIPPED by ASYNCDB_TEST_SKIP: {', '.join(skipped)}"
    return [line]


@pytest.hookimpl(trylast=True)  # after pytest's own teardown, which still uses the servers
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    POOL.stop_all()


def _session_server(name: str) -> Iterator[ThrowawayServer]:
    """Start on first use; stop when the session's fixtures are torn down (pytest_sessionfinish
    and atexit stop whatever is still running after an interrupted or crashed session)."""
    yield POOL.server(name)
    POOL.servers[name].stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayServer]:
    yield from _session_server("postgres")


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[ThrowawayServer]:
    yield from _session_server("mongo")


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[ThrowawayServer]:
    yield from _session_server("dynamodb")


@pytest.fixture(scope="session")
def cosmos_server() -> Iterator[ThrowawayServer]:
    yield from _session_server("cosmos")


@pytest.fixture(scope="session")
def firestore_server() -> Iterator[ThrowawayServer]:
    yield from _session_server("firestore")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ThrowawayServer]:
    yield from _session_server("redis")


@pytest.fixture
async def postgres_url(postgres_server: ThrowawayServer) -> AsyncIterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/tXXXX``: a new database, dropped afterwards."""
    async with POOL.fresh_url("postgres") as url:
        yield url


@pytest.fixture
async def mongo_url(mongo_server: ThrowawayServer) -> AsyncIterator[str]:
    """``mongodb://127.0.0.1:PORT/tXXXX?directConnection=true``: a new database."""
    async with POOL.fresh_url("mongo") as url:
        yield url


@pytest.fixture
async def dynamodb_url(dynamodb_server: ThrowawayServer) -> AsyncIterator[str]:
    """``dynamodb://127.0.0.1:PORT?region=us-east-1&table_prefix=tXXXX_``: a new prefix."""
    async with POOL.fresh_url("dynamodb") as url:
        yield url


@pytest.fixture
async def cosmos_url(cosmos_server: ThrowawayServer) -> AsyncIterator[str]:
    """``cosmos://127.0.0.1:PORT/tXXXX?key=...&verify=false``: a new database."""
    async with POOL.fresh_url("cosmos") as url:
        yield url


@pytest.fixture
async def firestore_url(firestore_server: ThrowawayServer) -> AsyncIterator[str]:
    """``firestore://demo-test?emulator_host=127.0.0.1:PORT``: an emptied emulator."""
    async with POOL.fresh_url("firestore") as url:
        yield url


@pytest.fixture
async def redis_url(redis_server: ThrowawayServer) -> AsyncIterator[str]:
    """``redis://127.0.0.1:PORT/0``: a flushed database."""
    async with POOL.fresh_url("redis") as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterBed]:
    """A 3-node Redis Cluster on loopback (started on first use; a start failure fails loudly).
    A test that kills a node restarts it before it ends."""
    bed = RedisClusterBed()
    try:
        bed.start()
    except ServerStartError as exc:
        bed.stop()
        pytest.fail(f"Redis Cluster test bed unavailable: {exc}", pytrace=False)
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture
async def redis_cluster_url(redis_cluster: RedisClusterBed) -> AsyncIterator[str]:
    """``redis+cluster://127.0.0.1:P1,...``: every node flushed before and after the test."""
    import redis.asyncio

    async def flush() -> None:
        for port in redis_cluster.ports:
            client = redis.asyncio.Redis(host="127.0.0.1", port=port)
            try:
                await client.flushall()
            finally:
                await client.aclose()

    await flush()
    yield redis_cluster.url
    await flush()


@pytest.fixture(scope="session")
def postgres_replica(postgres_server: ThrowawayServer) -> Iterator[PostgresReplica]:
    """A streaming replica of the session's PostgreSQL (``pg_basebackup -R``) on another
    loopback port. A test that stops it starts it again before it ends."""
    assert isinstance(postgres_server, PostgresServer)
    replica = PostgresReplica(postgres_server)
    try:
        replica.create()
    except (ServerStartError, OSError, KeyError) as exc:
        replica.destroy()
        pytest.fail(f"PostgreSQL replica test bed unavailable: {exc}", pytrace=False)
    try:
        yield replica
    finally:
        replica.destroy()


@pytest.fixture
async def postgres_replica_url(postgres_replica: PostgresReplica, postgres_url: str) -> str:
    """The replica's URL of this test's fresh database (``postgres_url``), once replayed."""
    url = postgres_replica.url_for(postgres_url)
    await postgres_replica.wait_for_database(url)
    return url
