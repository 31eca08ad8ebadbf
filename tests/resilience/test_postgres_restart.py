"""PostgreSQL is restarted (stopped, then started on the same port and data dir) in the middle
of a concurrent read/write load, on a dedicated throwaway server (the session's shared one stays
up): operations resume on fresh connections, every acknowledged write is there afterwards, and
calls during the outage either succeed or raise the documented typed errors within the
deadline (no hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from servers.postgres import PostgresServer
from servers.process import port_open

import asyncdb
from asyncdb import BackendError, BackendUnavailable, OperationTimeout

TIMEOUT = 3.0
EPSILON = 2.0  # scheduling slack on a loaded 2-core machine
TYPED = (BackendError, BackendUnavailable, OperationTimeout, asyncdb.TransactionError)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def restart_on_same_port(server: PostgresServer, down_for: float) -> None:
    assert server.process is not None and server.workdir is not None
    server.process.stop()
    time.sleep(down_for)
    process = server._launch(server.port, server.workdir)
    process.start()
    process.wait_ready(lambda: port_open(server.port), 60)
    server.process = process


async def test_restart_under_load_resumes_and_keeps_every_acknowledged_write(
    own_postgres: PostgresServer,
) -> None:
    if own_postgres.external:
        pytest.skip("needs a PostgreSQL this test can stop (ASYNCDB_TEST_POSTGRES_URL is set)")
    url = own_postgres.url + "?max_size=6"
    async with asyncdb.connect(url, timeout=TIMEOUT, breaker_cooldown=0.5) as db:
        items = db.collection("load")
        await items.insert_one({"id": "seed", "n": 0})
        acknowledged: list[str] = []
        failures: list[BaseException] = []
        reads_ok = 0
        stop = asyncio.Event()
        # Bounded by time, not by count: point reads and inserts are fast enough that a count
        # bound ran out before the restart did (reads_ok stopped at 2 x 4000 by the restart).
        give_up = time.monotonic() + 120

        async def timed(call: asyncio.Future[object] | object) -> None:
            began = time.monotonic()
            try:
                await call  # type: ignore[misc]
            except TYPED as exc:
                failures.append(exc)
                await asyncio.sleep(0.05)
            finally:
                assert time.monotonic() - began < TIMEOUT + EPSILON  # no hang past the deadline

        async def writer(w: int) -> None:
            i = 0
            while not stop.is_set() and time.monotonic() < give_up:
                key = f"w{w}-{i}"
                i += 1

                async def insert(key: str = key) -> None:
                    await items.insert_one({"id": key, "w": w})
                    acknowledged.append(key)

                await timed(insert())
                await asyncio.sleep(0.001)  # paced: the restart thread gets the CPU it needs

        async def reader() -> None:
            nonlocal reads_ok
            while not stop.is_set() and time.monotonic() < give_up:

                async def read() -> None:
                    nonlocal reads_ok
                    assert await items.find_one({"id": "seed"}) == {"id": "seed", "n": 0}
                    reads_ok += 1

                await timed(read())
                await asyncio.sleep(0.001)

        tasks = [asyncio.create_task(writer(w)) for w in range(3)]
        tasks += [asyncio.create_task(reader()) for _ in range(2)]
        await asyncio.sleep(1.0)
        before = len(acknowledged)
        await asyncio.to_thread(restart_on_same_port, own_postgres, 1.0)
        acked_at_restart, reads_at_restart = len(acknowledged), reads_ok
        await asyncio.sleep(2.0)  # load goes on against the restarted server
        stop.set()
        await asyncio.gather(*tasks)

        assert before > 0
        # Operations resumed on fresh connections after the restart.
        assert len(acknowledged) > acked_at_restart and reads_ok > reads_at_restart
        # Every acknowledged write is there, once.
        stored = {d["id"] async for d in items.find({}, allow_scan=True)}
        missing = [k for k in acknowledged if k not in stored]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        assert len(set(acknowledged)) == len(acknowledged)
        health = await db.health()
        assert health.ok and health.breaker == "closed"
