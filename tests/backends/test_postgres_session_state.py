"""PostgreSQL connections go from one operation to the next without asyncpg's reset query (see
``keep_session`` in asyncdb/backends/postgres/store.py). Each case that reset would undo is
checked on a one-connection pool, so the next operation surely gets the same connection:
session advisory locks, SET, LISTEN (left by native statements, which reset themselves),
cancelled calls and transactions; and more callers than connections, and connections the server
ended while idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

import asyncdb
from asyncdb import Database


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = await asyncdb.connect(f"{postgres_url}?min_size=1&max_size=1")
    await database.collection("items").insert_one({"id": "a", "n": 1})
    try:
        yield database
    finally:
        await database.close()


async def backend_pids(db: Database) -> set[int]:
    rows = await db.native("SELECT pg_backend_pid() AS pid")
    return {rows[0]["pid"]}


async def test_one_connection_serves_every_operation(db: Database) -> None:
    first = await backend_pids(db)
    for _ in range(5):
        assert await db.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 1}
    assert await backend_pids(db) == first


async def test_a_session_advisory_lock_taken_natively_does_not_outlive_the_call(
    db: Database, postgres_url: str
) -> None:
    await db.native("SELECT pg_advisory_lock(4242)")
    other = await asyncpg.connect(postgres_url)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock(4242)") is True
    finally:
        await other.close()


async def test_settings_and_listens_made_natively_are_reset(db: Database) -> None:
    await db.native("SELECT set_config('statement_timeout', '1', false)")
    await db.native("LISTEN asyncdb_test_channel")
    await db.native("SET application_name = 'leaked'")
    rows = await db.native(
        "SELECT current_setting('statement_timeout') AS t, current_setting('application_name')"
        " AS a, (SELECT count(*) FROM pg_listening_channels()) AS l"
    )
    assert rows == [{"t": "0", "a": "", "l": 0}]
    # A 1 ms statement_timeout left behind would fail this slower read.
    assert await db.collection("items").count_documents({"n": {"$gte": 0}}, allow_scan=True) == 1


async def test_a_cancelled_call_leaves_the_connection_idle_and_usable(db: Database) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await db.native("SELECT pg_sleep(5)")
    assert await db.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 1}
    rows = await db.native(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%'"
        " AND state = 'active'"
    )
    assert rows == [{"n": 0}]


async def test_a_cancelled_transaction_rolls_back_before_the_connection_is_reused(
    db: Database,
) -> None:
    entered = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as tx:
            await tx.collection("items").update_one({"id": "a"}, {"$set": {"n": 99}})
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(writer())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 1}
    rows = await db.native("SELECT txid_current_if_assigned() AS x")
    assert rows == [{"x": None}]  # no transaction left open on the reused connection


async def test_more_callers_than_connections_all_get_one_in_turn(postgres_url: str) -> None:
    async with asyncdb.connect(f"{postgres_url}?min_size=1&max_size=2") as db:
        items = db.collection("items")
        await items.insert_many([{"id": f"k{i}", "n": i} for i in range(20)])
        got = await asyncio.gather(*(items.find_one({"id": f"k{i % 20}"}) for i in range(200)))
        assert got == [{"id": f"k{i % 20}", "n": i % 20} for i in range(200)]
        rows = await db.native(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND application_name = ''"
        )
        assert rows[0]["n"] <= 1  # this call holds one of the two


async def test_a_connection_the_server_ended_while_idle_is_replaced(
    db: Database, postgres_url: str
) -> None:
    (pid,) = await backend_pids(db)
    admin = await asyncpg.connect(postgres_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the client sees the connection close
    assert await db.collection("items").find_one({"id": "a"}) == {"id": "a", "n": 1}
    assert await backend_pids(db) != {pid}
