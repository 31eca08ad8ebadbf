"""The MongoDB backend against the real server (SecantusDB, fixture ``mongo_url``): the
deviations its planner works around, pinned, and what the conformance suite does not reach
(server explain, the stored form of keys and values)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from pymongo import AsyncMongoClient

import asyncdb
from asyncdb.backends.mongo.store import MongoCollection


async def test_secantusdb_deviation_decimal_against_double_is_rounded(mongo_url: str) -> None:
    """SecantusDB rounds a double to about 15 digits against a Decimal128: {v: 0.1} matches
    Decimal128("0.1") (0.1 as a double is 0.1000000000000000055511151231257827...), which the
    reference evaluator does not. The planner pushes such comparisons as widened ranges and
    re-checks them; asyncdb gives the evaluator's answer. When this pin fails, SecantusDB
    compares exactly and ``inexact_number`` in planner.py can go."""
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        coll = raw.get_default_database()["dec"]
        await coll.insert_many([{"_id": "d", "v": Decimal128("0.1")}, {"_id": "f", "v": 0.1}])
        found = sorted([d["_id"] async for d in coll.find({"v": 0.1})])
        assert found == ["d", "f"]  # the server's (rounded) answer
    finally:
        await raw.close()
    async with asyncdb.connect(mongo_url) as db:
        items = db.collection("dec2", allow_scan=True)
        await items.insert_many([{"id": "d", "v": Decimal("0.1")}, {"id": "f", "v": 0.1}])
        assert [d["id"] for d in await items.find({"v": 0.1}).to_list()] == ["f"]
        assert [d["id"] for d in await items.find({"v": Decimal("0.1")}).to_list()] == ["d"]
        assert [d["id"] for d in await items.find({"v": {"$gt": 0.1}}).to_list()] == []
        assert [d["id"] for d in await items.find({"v": {"$ne": 0.1}}).to_list()] == ["d"]


async def test_stored_form_keeps_key_and_values(mongo_url: str) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    doc = {"b": b"\x00\x01", "id": "k", "d": Decimal("1.5"), "t": when, "n": 2**62}
    async with asyncdb.connect(mongo_url) as db:
        items = db.collection("stored")
        await items.insert_one(doc)
        assert await items.find_one({"id": "k"}) == doc
        pair = db.collection("pairs", key=("tenant", "n"))
        await pair.insert_one({"tenant": "x", "n": 1, "v": 1})
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        stored = await raw.get_default_database()["stored"].find_one({"_id": "k"})
        assert stored is not None
        assert list(stored) == ["_id", "b", "id", "d", "t", "n"]
        assert isinstance(stored["d"], Decimal128)
        composite = await raw.get_default_database()["pairs"].find_one({})
        assert composite is not None and composite["_id"] == {"tenant": "x", "n": 1}
    finally:
        await raw.close()


async def test_server_explain_of_a_plan(mongo_url: str) -> None:
    async with asyncdb.connect(mongo_url) as db:
        items = db.collection("ex", indexes=["status"])
        await items.insert_one({"id": "a", "status": "open"})
        plan = await items.explain({"status": "open"})
        assert plan.access_path == "index:ix_status"
        store_collection = items._store
        assert isinstance(store_collection, MongoCollection)
        report = await store_collection.server_explain(plan)
        assert "queryPlanner" in report


async def test_unique_index_violation_inside_a_transaction(mongo_url: str) -> None:
    """The server aborts its transaction on a duplicate in a unique secondary index: the user
    gets DuplicateKey, the transaction is then clearly failed (TransactionError on the next
    operation and at the end of the block), and nothing of it is written."""
    async with asyncdb.connect(mongo_url) as db:
        users = db.collection("tx_ux", indexes=[{"fields": ["email"], "unique": True}])
        await users.insert_one({"id": "a", "email": "a@x"})
        with pytest.raises(asyncdb.TransactionError, match="aborted"):
            async with db.transaction() as tx:
                in_tx = tx.collection("tx_ux", indexes=[{"fields": ["email"], "unique": True}])
                await in_tx.insert_one({"id": "b", "email": "b@x"})
                with pytest.raises(asyncdb.DuplicateKey):
                    await in_tx.insert_one({"id": "c", "email": "a@x"})
                with pytest.raises(asyncdb.TransactionError, match="aborted"):
                    await in_tx.find_one({"id": "b"})
        assert sorted(d["id"] for d in await users.find({}, allow_scan=True).to_list()) == ["a"]
        # an update that collides, too
        with pytest.raises(asyncdb.TransactionError, match="aborted"):
            async with db.transaction() as tx:
                in_tx = tx.collection("tx_ux", indexes=[{"fields": ["email"], "unique": True}])
                await in_tx.insert_one({"id": "d", "email": "d@x"})
                with pytest.raises(asyncdb.DuplicateKey):
                    await in_tx.update_one({"id": "d"}, {"$set": {"email": "a@x"}})
        assert await users.find_one({"id": "d"}) is None
        # the database stays usable
        await users.insert_one({"id": "e", "email": "e@x"})


async def test_native_updates_match_the_applier(mongo_url: str) -> None:
    """$set/$unset of top-level fields run on the server (update_one/update_many/
    find_one_and_update, upsert with the key as _id); results, counts and stored form equal
    the in-process applier's."""
    async with asyncdb.connect(mongo_url) as db:
        items = db.collection("nat", allow_scan=True)
        await items.insert_many([{"id": "a", "n": 1, "s": "x"}, {"id": "b", "n": 2}])
        same = await items.update_one({"id": "a"}, {"$set": {"n": 1}})
        assert (same.matched, same.modified) == (1, 0)  # a no-op is not a modification
        many = await items.update_many({}, {"$set": {"s": "x"}})
        assert (many.matched, many.modified) == (2, 1)
        after = await items.find_one_and_update(
            {"n": {"$gte": 1}}, {"$set": {"m": [1]}, "$unset": {"s": ""}}, sort=[("n", -1)]
        )
        assert after == {"id": "b", "n": 2, "m": [1]}
        up = await items.update_one(
            {"id": "c", "s": "y"}, {"$set": {"z": 1}, "$setOnInsert": {"zz": True}}, upsert=True
        )
        assert (up.matched, up.modified, up.upserted_id) == (0, 0, "c")
        assert list(await items.find_one({"id": "c"}) or {}) == ["id", "s", "z", "zz"]
        # filter fields out of lexicographic order: in process (SecantusDB would reorder them)
        await items.update_one({"s": "w", "id": "e"}, {"$set": {"z": 1}}, upsert=True)
        assert list(await items.find_one({"id": "e"}) or {}) == ["s", "id", "z"]
        created = await items.find_one_and_update(
            {"id": "d"}, {"$set": {"v": 1}}, upsert=True, return_document="after"
        )
        assert created == {"id": "d", "v": 1}
        # $inc on a string fails on one document: nothing of update_many is written
        with pytest.raises(asyncdb.UpdateError):
            await items.update_many({}, {"$inc": {"s": 1}})
        assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1, "s": "x"}
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        stored = await raw.get_default_database()["nat"].find_one({"_id": "c"})
        assert stored is not None and list(stored) == ["_id", "id", "s", "z", "zz"]
        # the pin: SecantusDB seeds an upsert from the filter's equalities in sorted order
        coll = raw.get_default_database()["nat_raw"]
        await coll.update_one({"_id": "k", "s": "v", "id": "k"}, {"$set": {"z": 1}}, upsert=True)
        assert list(await coll.find_one({}) or {}) == ["_id", "id", "s", "z"]
    finally:
        await raw.close()
