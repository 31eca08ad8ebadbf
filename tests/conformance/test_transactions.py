"""DESIGN §1/§4: ``async with db.transaction() as tx`` commits every write or none.

These tests need the ``transactions`` capability; a backend without it is checked in
test_capabilities (``db.transaction()`` must raise NotSupported), never skipped here silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import asyncdb

from .support import assert_same, id_set


@pytest.fixture
async def tdb(db: asyncdb.Database) -> asyncdb.Database:
    """The database, if it claims transactions; otherwise NotSupported is checked and the test
    is skipped with that reason (visible in the report, never silent)."""
    if "transactions" not in db.capabilities:
        with pytest.raises(asyncdb.NotSupported):
            async with db.transaction():
                pass
        pytest.skip(f"{db.backend} does not claim transactions (checked: NotSupported)")
    return db


async def retrying(
    db: asyncdb.Database, body: Callable[[asyncdb.Transaction], Awaitable[Any]]
) -> Any:
    """Run ``body`` in a transaction, retrying on TransactionError (a conflict), as a user would."""
    for _ in range(100):
        try:
            async with db.transaction() as tx:
                return await body(tx)
        except asyncdb.TransactionError:
            await asyncio.sleep(0.001)
    raise AssertionError("a transaction kept conflicting 100 times")


async def test_committed_writes_are_visible_in_every_collection(tdb: asyncdb.Database) -> None:
    accounts = tdb.collection("accounts")
    journal = tdb.collection("journal", allow_scan=True)
    await accounts.insert_many([{"id": "a", "n": 10}, {"id": "b", "n": 0}])
    async with tdb.transaction() as tx:
        await tx.collection("accounts").update_one({"id": "a"}, {"$inc": {"n": -4}})
        await tx.collection("accounts").update_one({"id": "b"}, {"$inc": {"n": 4}})
        await tx.collection("journal").insert_one({"id": "t1", "amount": 4})
    assert_same({"id": "a", "n": 6}, await accounts.find_one({"id": "a"}))
    assert_same({"id": "b", "n": 4}, await accounts.find_one({"id": "b"}))
    assert await id_set(journal) == {"t1"}


async def test_a_transaction_reads_its_own_writes(tdb: asyncdb.Database) -> None:
    coll = tdb.collection("c", allow_scan=True)
    await coll.insert_one({"id": "x", "n": 1})
    async with tdb.transaction() as tx:
        tc = tx.collection("c")
        await tc.insert_one({"id": "y", "n": 2})
        await tc.update_one({"id": "x"}, {"$set": {"n": 5}})
        assert_same({"id": "x", "n": 5}, await tc.find_one({"id": "x"}))
        assert await tc.count_documents({}) == 2
        assert [d["id"] for d in await tc.find({}, sort=[("n", -1)]).to_list()] == ["x", "y"]


class Boom(Exception):
    pass


async def test_an_exception_rolls_back_every_write(tdb: asyncdb.Database) -> None:
    coll = tdb.collection("c", allow_scan=True)
    log = tdb.collection("log", allow_scan=True)
    before = [{"id": "keep", "n": 1}, {"id": "gone", "n": 2}, {"id": "edit", "n": 3}]
    await coll.insert_many(before)
    await log.insert_one({"id": "l0"})
    with pytest.raises(Boom):
        async with tdb.transaction() as tx:
            tc = tx.collection("c")
            await tc.insert_one({"id": "new", "n": 9})
            await tc.insert_many([{"id": "new2"}, {"id": "new3"}])
            await tc.update_many({}, {"$inc": {"n": 100}})
            await tc.replace_one({"id": "edit"}, {"v": "replaced"})
            await tc.delete_one({"id": "gone"})
            await tc.find_one_and_update({"id": "keep"}, {"$set": {"x": 1}})
            await tc.update_one({"id": "up"}, {"$set": {"n": 0}}, upsert=True)
            await tx.collection("log").delete_many({})
            await tx.collection("log").insert_one({"id": "l1"})
            raise Boom
    assert_same(before, await coll.find({}, sort=[("n", 1)]).to_list())
    assert await id_set(log) == {"l0"}


async def test_outside_readers_never_see_uncommitted_writes(tdb: asyncdb.Database) -> None:
    coll = tdb.collection("c", allow_scan=True)
    await coll.insert_one({"id": "x", "n": 1})
    reader: asyncio.Task[Any] | None = None
    with pytest.raises(Boom):
        async with tdb.transaction() as tx:
            await tx.collection("c").insert_one({"id": "dirty"})
            await tx.collection("c").update_one({"id": "x"}, {"$set": {"n": 2}})
            # a reader outside the transaction may wait or read the old state, never the new one
            reader = asyncio.ensure_future(
                asyncio.gather(coll.find_one({"id": "dirty"}), coll.find_one({"id": "x"}))
            )
            await asyncio.sleep(0.05)
            raise Boom
    assert reader is not None
    dirty, x = await asyncio.wait_for(reader, 10)
    assert dirty is None
    assert_same({"id": "x", "n": 1}, x)


async def test_duplicate_key_caught_inside_a_transaction_leaves_no_half_batch(
    tdb: asyncdb.Database,
) -> None:
    coll = tdb.collection("c", allow_scan=True)
    await coll.insert_one({"id": "old"})
    async with tdb.transaction() as tx:
        tc = tx.collection("c")
        with pytest.raises(asyncdb.DuplicateKey):
            await tc.insert_many([{"id": "n1"}, {"id": "n2"}, {"id": "old"}])
        await tc.insert_one({"id": "after"})
    assert await id_set(coll) == {"old", "after"}


async def test_update_error_caught_inside_a_transaction_leaves_no_half_update(
    tdb: asyncdb.Database,
) -> None:
    coll = tdb.collection("c", allow_scan=True)
    docs = [{"id": "a", "n": 1}, {"id": "b", "n": "text"}, {"id": "c", "n": 2}]
    await coll.insert_many(docs)
    async with tdb.transaction() as tx:
        with pytest.raises(asyncdb.UpdateError):
            await tx.collection("c").update_many({}, {"$inc": {"n": 1}})
    assert_same(docs, await coll.find({}, sort=[("id", 1)]).to_list())


async def test_twenty_concurrent_transactions_incrementing_a_counter_end_at_twenty(
    tdb: asyncdb.Database,
) -> None:
    coll = tdb.collection("counters")
    await coll.insert_one({"id": "n", "value": 0})

    async def increment(tx: asyncdb.Transaction) -> None:
        tc = tx.collection("counters")
        doc = await tc.find_one({"id": "n"})
        assert doc is not None
        await asyncio.sleep(0)  # let the others interleave between read and write
        await tc.replace_one({"id": "n"}, {"value": doc["value"] + 1})

    await asyncio.gather(*(retrying(tdb, increment) for _ in range(20)))
    assert_same({"id": "n", "value": 20}, await coll.find_one({"id": "n"}))


async def test_concurrent_transfers_keep_the_total(tdb: asyncdb.Database) -> None:
    coll = tdb.collection("acct", allow_scan=True)
    await coll.insert_many([{"id": f"a{i}", "bal": 100} for i in range(4)])

    def transfer(
        src: int, dst: int, amount: int
    ) -> Callable[[asyncdb.Transaction], Awaitable[None]]:
        async def body(tx: asyncdb.Transaction) -> None:
            tc = tx.collection("acct")
            doc = await tc.find_one({"id": f"a{src}"})
            assert doc is not None
            if doc["bal"] < amount:
                return
            await asyncio.sleep(0)
            await tc.update_one({"id": f"a{src}"}, {"$inc": {"bal": -amount}})
            await tc.update_one({"id": f"a{dst}"}, {"$inc": {"bal": amount}})

        return body

    moves = [transfer(i % 4, (i * 3 + 1) % 4, 30 + i) for i in range(16)]
    await asyncio.gather(*(retrying(tdb, m) for m in moves))
    docs = await coll.find({}).to_list()
    assert sum(d["bal"] for d in docs) == 400
    assert all(d["bal"] >= 0 for d in docs)


async def test_plain_collection_inside_a_transaction_of_the_same_task_raises_not_hangs(
    db: asyncdb.Database,
) -> None:
    if "transactions" not in db.capabilities:
        pytest.skip("backend has no transactions: test_capabilities checks NotSupported")
    coll = db.collection("tx_owner", allow_scan=True)
    await coll.insert_one({"id": "x", "n": 1})

    async def misuse() -> None:
        async with db.transaction() as tx:
            await tx.collection("tx_owner").update_one({"id": "x"}, {"$inc": {"n": 1}})
            await coll.find_one({"id": "x"})

    with pytest.raises(asyncdb.TransactionError):
        await asyncio.wait_for(misuse(), timeout=10)
    assert (await coll.find_one({"id": "x"}))["n"] == 1  # the failed transaction rolled back
