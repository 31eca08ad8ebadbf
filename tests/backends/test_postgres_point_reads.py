"""PostgreSQL point reads run on a statement prepared once per held connection and SQL text
(``PostgresStore.point_row``). On a one-connection pool every read surely meets the same
connection, so what could break a kept statement is checked here: the statement is reused, a
dropped and re-created table, a native ``DEALLOCATE ALL``, ``statement_cache_size=0`` (no named
statement at all), and the database used from a thread running another loop while its own
loop runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

import asyncdb
from asyncdb import Database
from asyncdb.errors import WrongEventLoop

# the point read's statement among those prepared on the (one) connection
KEPT = (
    "SELECT count(*) AS n FROM pg_prepared_statements"
    ' WHERE statement = \'SELECT body, tagged FROM "items" WHERE "k0" = $1\''
)


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = await asyncdb.connect(f"{postgres_url}?min_size=1&max_size=1")
    await database.collection("items").insert_many([{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    try:
        yield database
    finally:
        await database.close()


async def test_point_reads_reuse_one_prepared_statement(db: Database) -> None:
    items = db.collection("items")
    for _ in range(3):
        assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
        assert await items.find_one({"id": "b"}) == {"id": "b", "n": 2}
        assert await items.find_one({"id": "zz"}) is None
    assert (await db.native(KEPT))[0]["n"] == 1


async def test_a_dropped_and_recreated_table_reads_its_new_rows(db: Database) -> None:
    items = db.collection("items")
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
    await items.drop()
    items = db.collection("items")
    await items.insert_one({"id": "a", "n": 10})
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 10}
    assert await items.find_one({"id": "b"}) is None


async def test_a_native_deallocate_does_not_fail_the_next_read(db: Database) -> None:
    items = db.collection("items")
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
    await db.native("DEALLOCATE ALL")
    assert await items.find_one({"id": "b"}) == {"id": "b", "n": 2}


async def test_statement_cache_size_zero_prepares_no_named_statement(postgres_url: str) -> None:
    async with asyncdb.connect(f"{postgres_url}?max_size=1&statement_cache_size=0") as db:
        items = db.collection("items")
        await items.insert_one({"id": "a", "n": 1})
        for _ in range(3):
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
        assert (await db.native(KEPT))[0]["n"] == 0


async def test_another_threads_loop_gets_wrong_event_loop_while_ours_runs(db: Database) -> None:
    items = db.collection("items")
    assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
    raised: list[BaseException] = []

    def other_thread() -> None:
        try:
            asyncio.run(items.find_one({"id": "a"}))
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert len(raised) == 1 and isinstance(raised[0], WrongEventLoop)
    assert await items.find_one({"id": "b"}) == {"id": "b", "n": 2}
