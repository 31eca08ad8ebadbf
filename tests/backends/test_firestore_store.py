"""The Firestore backend against the emulator: what the conformance suite does not reach
(hidden sort keys on existing data, batches beyond one commit, the point-read path)."""

from __future__ import annotations

import asyncdb
from asyncdb.backends.firestore.codec import doc_id


async def test_an_index_declared_on_existing_documents_backfills_their_sort_keys(
    firestore_url: str,
) -> None:
    async with asyncdb.connect(firestore_url) as db:
        await db.collection("c").insert_many([{"id": f"k{i}", "n": 5 - i} for i in range(5)])
    async with asyncdb.connect(firestore_url) as db:
        coll = db.collection("c", indexes=["n"], allow_scan=True)
        plan = await coll.explain({}, sort=[("n", 1)])
        assert plan.sort_pushed
        found = [d["id"] async for d in coll.find({}, sort=[("n", 1)])]
        assert found == ["k4", "k3", "k2", "k1", "k0"]


async def test_insert_many_beyond_one_commit_is_all_or_nothing(firestore_url: str) -> None:
    async with asyncdb.connect(firestore_url) as db:
        coll = db.collection("big", allow_scan=True)
        await coll.insert_one({"id": "k0700"})
        docs = [{"id": f"k{i:04d}"} for i in range(1200)]
        try:
            await coll.insert_many(docs)
        except asyncdb.DuplicateKey:
            pass
        else:
            raise AssertionError("the existing key was not reported")
        assert await coll.count_documents({}) == 1
        await coll.delete_one({"id": "k0700"})
        await coll.insert_many(docs)
        assert await coll.count_documents({}) == 1200


async def test_point_read_by_key_reads_one_document_id(firestore_url: str) -> None:
    async with asyncdb.connect(firestore_url) as db:
        coll = db.collection("c", key=("tenant", "n"))
        await coll.insert_one({"tenant": "a/b", "n": 1, "v": [[1]]})
        assert await coll.find_one({"tenant": "a/b", "n": 1}) == {
            "tenant": "a/b",
            "n": 1,
            "v": [[1]],
        }
        assert await coll.find_one({"tenant": "a/b", "n": "1"}) is None
        assert doc_id(("a/b", 1)) == "sa%2Fb|i1"


async def test_a_transaction_misses_a_phantom_insert_into_what_it_queried(
    firestore_url: str,
) -> None:
    """Documented deviation: a transaction validates the documents it read at commit, but a
    query does not lock its range, so a matching document inserted meanwhile goes unnoticed."""
    async with asyncdb.connect(firestore_url) as db:
        coll = db.collection("c", allow_scan=True)
        await coll.insert_one({"id": "a", "g": 1})
        async with db.transaction() as tx:
            seen = await tx.collection("c").count_documents({"g": 1})
            await coll_insert_elsewhere(firestore_url, {"id": "b", "g": 1})
            await tx.collection("c").insert_one({"id": "total", "n": seen})
        assert (await coll.find_one({"id": "total"}) or {})["n"] == 1  # "b" was not counted
        assert await coll.count_documents({"g": 1}) == 2


async def coll_insert_elsewhere(url: str, doc: dict[str, object]) -> None:
    async with asyncdb.connect(url) as other:
        await other.collection("c").insert_one(doc)


async def test_a_transaction_fails_when_a_document_it_read_changed(firestore_url: str) -> None:
    async with asyncdb.connect(firestore_url) as db:
        coll = db.collection("c")
        await coll.insert_many([{"id": "a", "n": 1}, {"id": "b", "n": 1}])
        try:
            async with db.transaction() as tx:
                await tx.collection("c").find_one({"id": "a"})  # read only
                await coll_update_elsewhere(firestore_url)
                await tx.collection("c").update_one({"id": "b"}, {"$set": {"n": 2}})
        except asyncdb.TransactionError:
            pass
        else:
            raise AssertionError("the commit did not notice that 'a' changed")
        assert (await coll.find_one({"id": "b"}) or {})["n"] == 1


async def coll_update_elsewhere(url: str) -> None:
    async with asyncdb.connect(url) as other:
        await other.collection("c").update_one({"id": "a"}, {"$set": {"n": 5}})
