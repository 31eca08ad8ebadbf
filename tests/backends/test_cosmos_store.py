"""The Cosmos DB store on cosmosdb-server: what the conformance suite does not pin by itself
(compensated insert_many, compare-and-set under contention, ETag-conditional deletes, the
server's 500 for a missing item, explain with SQL and parameters)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import asyncdb
from asyncdb.backends.base import Doc
from asyncdb.backends.cosmos.store import CosmosCollection


@pytest.fixture
async def db(cosmos_url: str) -> AsyncIterator[asyncdb.Database]:
    database = await asyncdb.connect(cosmos_url)
    try:
        yield database
    finally:
        await database.close()


async def test_a_failed_insert_many_removes_what_it_created(db: asyncdb.Database) -> None:
    coll = db.collection("batch", allow_scan=True)
    await coll.insert_one({"id": "taken", "n": 0})
    with pytest.raises(asyncdb.DuplicateKey) as raised:
        await coll.insert_many([{"id": f"new{i}"} for i in range(20)] + [{"id": "taken"}])
    assert raised.value.key == "taken"
    assert [d["id"] async for d in coll.find({})] == ["taken"]


async def test_concurrent_increments_are_never_lost(db: asyncdb.Database) -> None:
    coll = db.collection("counter")
    await coll.insert_one({"id": "c", "n": 0})
    await asyncio.gather(*(coll.update_one({"id": "c"}, {"$inc": {"n": 1}}) for _ in range(12)))
    doc = await coll.find_one({"id": "c"})
    assert doc is not None and doc["n"] == 12


async def test_a_missing_key_reads_as_none_despite_the_servers_500(db: asyncdb.Database) -> None:
    coll = db.collection("points")
    await coll.insert_one({"id": "here"})
    assert await coll.find_one({"id": "absent"}) is None
    assert await coll.delete_one({"id": "absent"}) == 0


async def test_explain_shows_sql_parameters_and_residual(db: asyncdb.Database) -> None:
    coll = db.collection("explained", allow_scan=True)
    plan = await coll.explain({"status": "open", "n": {"$gt": 2}, "tag": {"$regex": "^a"}})
    assert plan.native["sql"].startswith("SELECT c.id, c._etag, c.raw FROM c WHERE ")
    assert plan.native["parameters"] == {"@p0": "open", "@p1": 2}
    assert plan.exact == {"status": {"$eq": "open"}}
    assert plan.residual == {"$and": [{"n": {"$gt": 2}}, {"tag": {"$regex": "^a"}}]}
    await coll.insert_many([{"id": "a", "status": "open", "n": 3, "tag": "ab"}])
    assert [d["id"] async for d in coll.find({"status": "open", "n": {"$gt": 2}})] == ["a"]


async def test_a_document_changed_after_the_query_is_rechecked_not_deleted(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("racing", allow_scan=True)
    await coll.insert_many([{"id": i, "state": "old"} for i in range(6)])
    store = coll._store
    assert isinstance(store, CosmosCollection)
    execute = store._execute
    changed = False

    async def query_then_change(*args: Any) -> AsyncIterator[Doc]:
        nonlocal changed
        async for doc in execute(*args):
            yield doc
        if changed:
            return
        changed = True
        # another writer changes documents 0 and 1 after delete_many's query, before its deletes
        await coll.update_one({"id": 0}, {"$set": {"state": "new"}})
        await coll.update_one({"id": 1}, {"$set": {"other": 1}})

    store._execute = query_then_change  # type: ignore[method-assign]
    # document 1 changed but still matches: re-read and deleted; document 0 no longer matches
    assert await coll.delete_many({"state": "old"}) == 5
    assert [d async for d in coll.find({})] == [{"id": 0, "state": "new"}]
