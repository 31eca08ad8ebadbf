"""bulk_write's native runs of updates and deletes by key (one TransactWriteItems on DynamoDB,
one batched commit on Firestore, concurrent If-Match writes on Cosmos DB for unordered runs, one
write section on memory/SQL): concurrent bulk writes over the same documents lose no update,
a document's operations apply in order, and ordered/unordered failures keep their semantics."""

from __future__ import annotations

import asyncio

import pytest

import asyncdb

KEYS = [f"k{i}" for i in range(8)]


async def test_concurrent_bulk_writes_lose_no_update(db: asyncdb.Database) -> None:
    coll = db.collection("counters")
    await coll.insert_many([{"id": k, "n": 0, "log": []} for k in KEYS])

    def requests(tag: str) -> list[asyncdb.UpdateOne]:
        ops = []
        for k in KEYS:  # each key twice: the second sees the first's result
            ops.append(asyncdb.UpdateOne({"id": k}, {"$inc": {"n": 1}, "$push": {"log": tag}}))
            ops.append(asyncdb.UpdateOne({"id": k}, {"$inc": {"n": 10}}))
        return ops

    results = await asyncio.gather(
        coll.bulk_write(requests("a"), ordered=True),
        coll.bulk_write(requests("b"), ordered=False),
        coll.bulk_write(requests("c"), ordered=False),
    )
    for res in results:
        assert (res.matched_count, res.modified_count) == (16, 16)
    for doc in await coll.find({"id": {"$in": KEYS}}).to_list():
        assert doc["n"] == 33, doc  # 3 x (1 + 10): nothing lost to a race
        assert sorted(doc["log"]) == ["a", "b", "c"]


async def test_a_failure_in_a_run_by_key(db: asyncdb.Database) -> None:
    coll = db.collection("run_failure")
    for ordered, p in ((True, "o"), (False, "u")):
        await coll.insert_many([{"id": f"{p}{i}", "n": 1, "s": "text"} for i in range(4)])
        ops = [
            asyncdb.UpdateOne({"id": f"{p}0"}, {"$inc": {"n": 1}}),
            asyncdb.DeleteOne({"id": f"{p}1"}),
            asyncdb.UpdateOne({"id": f"{p}2"}, {"$inc": {"s": 1}}),  # $inc of a string: fails
            asyncdb.UpdateOne({"id": f"{p}3"}, {"$set": {"n": 7}}),
            asyncdb.UpdateOne({"id": f"{p}0"}, {"$inc": {"n": 5}}),
            asyncdb.DeleteOne({"id": f"{p}-nope"}),
        ]
        with pytest.raises(asyncdb.BulkWriteError) as caught:
            await coll.bulk_write(ops, ordered=ordered)
        assert [index for index, _ in caught.value.errors] == [2]
        assert isinstance(caught.value.errors[0][1], asyncdb.UpdateError)
        result = caught.value.result
        found = await coll.find({"id": {"$in": [f"{p}{i}" for i in range(4)]}}).to_list()
        docs = {d["id"][1:]: d for d in found}
        assert "1" not in docs and result.deleted_count == 1
        assert docs["2"]["s"] == "text"
        if ordered:  # stopped at the failure: nothing after it ran
            assert (result.matched_count, docs["0"]["n"], docs["3"]["n"]) == (1, 2, 1)
        else:  # every other operation applied
            assert (result.matched_count, docs["0"]["n"], docs["3"]["n"]) == (3, 7, 7)
