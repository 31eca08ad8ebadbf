"""The MongoDB API breadth of DESIGN §1 ("added 2026-12") on every backend: find_one_and_replace,
find_one_and_delete, distinct, estimated_document_count, bulk_write, unordered insert_many, the
catalog (list_collections, drop), native statements, and the two documented deviations (key
types, dotted field names)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import asyncdb


async def _seed(db: asyncdb.Database) -> asyncdb.Collection:
    coll = db.collection("jobs", indexes=["state"])
    await coll.insert_many(
        [
            {"id": "a", "state": "queued", "prio": 3, "tags": ["x", "y"]},
            {"id": "b", "state": "queued", "prio": 1, "tags": "y"},
            {"id": "c", "state": "queued", "prio": 2},
            {"id": "d", "state": "done", "prio": 5, "tags": []},
        ]
    )
    return coll


async def test_find_one_and_replace_follows_sort_projection_and_return_document(
    db: asyncdb.Database,
) -> None:
    jobs = await _seed(db)
    before = await jobs.find_one_and_replace(
        {"state": "queued"},
        {"state": "running", "prio": 1},
        sort=[("prio", -1)],
        projection={"prio": 1},
        return_document="before",
    )
    assert before == {"id": "a", "prio": 3}  # the highest prio, as it was, projected
    assert await jobs.find_one({"id": "a"}) == {"id": "a", "state": "running", "prio": 1}
    after = await jobs.find_one_and_replace({"state": "queued"}, {"state": "x"}, sort=[("prio", 1)])
    assert after == {"id": "b", "state": "x"}  # replaced whole, key kept
    assert await jobs.find_one_and_replace({"state": "nope"}, {"state": "y"}) is None
    upserted = await jobs.find_one_and_replace(
        {"id": "new", "state": "nope"}, {"state": "fresh"}, upsert=True
    )
    assert upserted == {"id": "new", "state": "fresh"}
    assert await jobs.count_documents({"state": "fresh"}) == 1
    with pytest.raises(asyncdb.QueryError):
        await jobs.find_one_and_replace({"id": "a"}, {"$set": {"state": "z"}})


async def test_find_one_and_delete_takes_the_first_in_sort_order(db: asyncdb.Database) -> None:
    jobs = await _seed(db)
    first = await jobs.find_one_and_delete({"state": "queued"}, sort=[("prio", 1)])
    assert first == {"id": "b", "state": "queued", "prio": 1, "tags": "y"}
    projected = await jobs.find_one_and_delete(
        {"state": "queued"}, sort=[("prio", -1)], projection={"prio": 0, "tags": 0}
    )
    assert projected == {"id": "a", "state": "queued"}
    assert await jobs.find_one_and_delete({"state": "gone"}) is None
    assert sorted(
        d["id"] for d in await jobs.find({"state": {"$in": ["queued", "done"]}}).to_list()
    ) == [
        "c",
        "d",
    ]


async def test_distinct_unwinds_arrays_with_bson_equality_and_order(db: asyncdb.Database) -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    coll = db.collection("vals", indexes=["g"])
    await coll.insert_many(
        [
            {"id": "1", "g": 1, "v": 1},
            {"id": "2", "g": 1, "v": 1.0},  # BSON-equal to 1: one value
            {"id": "3", "g": 1, "v": "1"},  # a string: another
            {"id": "4", "g": 1, "v": [2, [3], Decimal("1"), None]},  # one level unwound
            {"id": "5", "g": 1, "v": {"k": 1}},
            {"id": "6", "g": 1, "v": when},
            {"id": "7", "g": 1, "v": True},
            {"id": "8", "g": 1, "v": []},  # an empty array: no value
            {"id": "9", "g": 1},  # missing: no value
            {"id": "10", "g": 2, "v": "only in g2", "sub": [{"x": 5}, {"x": [6, 5]}]},
        ]
    )
    got = await coll.distinct("v", {"g": 1})
    assert got == [None, 1, 2, "1", {"k": 1}, [3], True, when]
    assert type(got[1]) is int  # of 1, 1.0 and Decimal("1"), the same one on every backend
    assert await coll.distinct("sub.x", {"g": 2}) == [5, 6]
    assert await coll.distinct("nothing", {"g": 2}) == []
    with pytest.raises(asyncdb.ScanRequired):
        await coll.distinct("v")  # no filter: a full scan, refused by default
    assert len(await coll.distinct("v", allow_scan=True)) == 9
    with pytest.raises(asyncdb.QueryError):
        await coll.distinct("$v", {"g": 1})


async def test_estimated_document_count_counts_the_collection(db: asyncdb.Database) -> None:
    coll = db.collection("est")
    assert await coll.estimated_document_count() == 0
    await coll.insert_many([{"id": str(i)} for i in range(7)])
    await coll.delete_one({"id": "3"})
    assert await coll.estimated_document_count() == 6


def _mixed_ops() -> list[Any]:
    return [
        asyncdb.InsertOne({"id": "n1", "v": 1}),
        asyncdb.InsertOne({"id": "a", "v": 99}),  # 1: duplicate key
        asyncdb.UpdateOne({"id": "b"}, {"$inc": {"prio": 10}}),
        asyncdb.UpdateMany({"state": "queued"}, {"$set": {"seen": True}}),
        asyncdb.ReplaceOne({"id": "c"}, {"state": "replaced"}),
        asyncdb.UpdateOne({"id": "up"}, {"$set": {"v": 2}}, upsert=True),
        asyncdb.UpdateOne({"id": "d"}, {"$inc": {"state": 1}}),  # 6: $inc on a string
        asyncdb.DeleteOne({"id": "n1"}),
        asyncdb.DeleteMany({"state": "done"}),
        asyncdb.InsertOne({"id": "n2"}),
        asyncdb.InsertOne({"id": "n3"}),
    ]


async def test_bulk_write_ordered_stops_at_the_first_failure(db: asyncdb.Database) -> None:
    jobs = await _seed(db)
    with pytest.raises(asyncdb.BulkWriteError) as caught:
        await jobs.bulk_write(_mixed_ops())
    err = caught.value
    assert [i for i, _ in err.errors] == [1]
    assert isinstance(err.errors[0][1], asyncdb.DuplicateKey)
    assert err.result == asyncdb.BulkWriteResult(inserted_count=1)
    assert await jobs.find_one({"id": "a"}) == {
        "id": "a",
        "state": "queued",
        "prio": 3,
        "tags": ["x", "y"],
    }
    assert await jobs.find_one({"id": "n1"}) == {"id": "n1", "v": 1}
    assert await jobs.find_one({"id": "n2"}) is None  # never reached


async def test_bulk_write_unordered_applies_every_operation_it_can(db: asyncdb.Database) -> None:
    jobs = await _seed(db)
    with pytest.raises(asyncdb.BulkWriteError) as caught:
        await jobs.bulk_write(_mixed_ops(), ordered=False)
    err = caught.value
    assert [i for i, _ in err.errors] == [1, 6]
    assert isinstance(err.errors[0][1], asyncdb.DuplicateKey)
    assert isinstance(err.errors[1][1], asyncdb.UpdateError)
    assert err.result == asyncdb.BulkWriteResult(
        inserted_count=3,
        matched_count=1 + 3 + 1,
        modified_count=1 + 3 + 1,
        deleted_count=2,
        upserted_count=1,
        upserted_ids={5: "up"},
    )
    docs = {d["id"]: d for d in await jobs.find({}, allow_scan=True).to_list()}
    assert sorted(docs) == ["a", "b", "c", "n2", "n3", "up"]
    assert docs["b"]["prio"] == 11 and docs["b"]["seen"] is True
    assert docs["c"] == {"id": "c", "state": "replaced"}
    assert docs["up"] == {"id": "up", "v": 2}
    ok = await jobs.bulk_write([asyncdb.DeleteOne({"id": "n2"}), asyncdb.InsertOne({"id": "n4"})])
    assert ok == asyncdb.BulkWriteResult(inserted_count=1, deleted_count=1)


async def test_bulk_write_validates_every_operation_before_any_io(db: asyncdb.Database) -> None:
    jobs = await _seed(db)
    bad: list[Any] = [
        [asyncdb.InsertOne({"id": "z"}), asyncdb.UpdateOne({"id": "a"}, {"$bogus": {"x": 1}})],
        [asyncdb.InsertOne({"id": "z"}), {"insertOne": {"id": "q"}}],
        [asyncdb.InsertOne({"id": "z"}), asyncdb.InsertOne({"id": 1.5})],
        [],
    ]
    for ops in bad:
        with pytest.raises(asyncdb.QueryError):
            await jobs.bulk_write(ops)
    with pytest.raises(asyncdb.NotSupported):
        await jobs.bulk_write([asyncdb.DeleteOne({"id": "a"}, collation={"locale": "fr"})])
    assert await jobs.find_one({"id": "z"}) is None
    assert await jobs.count_documents({"state": {"$in": ["queued", "done"]}}) == 4


async def test_insert_many_unordered_inserts_what_it_can(db: asyncdb.Database) -> None:
    coll = db.collection("ins")
    await coll.insert_one({"id": "b"})
    docs = [{"id": "a"}, {"id": "b", "x": 1}, {"id": "c"}, {"id": "c"}, {"id": "d"}]
    with pytest.raises(asyncdb.BulkWriteError) as caught:
        await coll.insert_many(docs, ordered=False)
    assert [i for i, _ in caught.value.errors] == [1, 3]
    assert caught.value.result.inserted_count == 3
    assert await coll.find_one({"id": "b"}) == {"id": "b"}
    assert await coll.count_documents({"id": {"$in": ["a", "b", "c", "d"]}}) == 4
    with pytest.raises(asyncdb.DuplicateKey):  # the default stays all or nothing
        await coll.insert_many([{"id": "e"}, {"id": "a"}])
    assert await coll.find_one({"id": "e"}) is None
    assert await coll.insert_many([{"id": "f"}, {"id": "g"}], ordered=False) == ["f", "g"]


async def test_list_collections_and_drop(db: asyncdb.Database) -> None:
    alerts = db.collection("alerts", indexes=["company", ("company", "prio")])
    pairs = db.collection("pairs", key=("tenant", "n"))
    await alerts.insert_one({"id": "a", "company": "acme", "prio": 1})
    await pairs.insert_one({"tenant": "t", "n": 1})
    specs = await db.list_collections()
    assert [s.name for s in specs] == ["alerts", "pairs"]
    assert specs[0] == alerts.spec and specs[1] == pairs.spec
    await alerts.drop()
    assert [s.name for s in await db.list_collections()] == ["pairs"]
    assert await alerts.find_one({"id": "a"}) is None  # usable again, empty
    await alerts.insert_one({"id": "b", "company": "acme"})
    assert [d["id"] for d in await alerts.find({"company": "acme"}).to_list()] == ["b"]
    assert [s.name for s in await db.list_collections()] == ["alerts", "pairs"]
    with pytest.raises(asyncdb.ConfigurationError):
        db.collection("_asyncdb_catalog")


_NATIVE: dict[str, tuple[Any, Any]] = {
    "sqlite": ("SELECT count(*) AS n FROM events WHERE json_extract(doc, '$.k') = ?", ["x"]),
    "postgres": ("SELECT count(*) AS n FROM events WHERE doc->>'k' = $1", ["x"]),
    "cosmos": ("SELECT VALUE COUNT(1) FROM events e WHERE e.v.k = @k", {"@k": "x"}),
    "mongo": ({"count": "events", "query": {"k": "x"}}, None),
}


async def test_native_statement_runs_with_bound_parameters(
    db: asyncdb.Database, backend_name: str
) -> None:
    events = db.collection("events")
    await events.insert_many([{"id": "1", "k": "x"}, {"id": "2", "k": "x"}, {"id": "3", "k": "y"}])
    if backend_name in ("memory", "firestore"):
        with pytest.raises(asyncdb.NotSupported):
            await db.native("SELECT 1")
        return
    if backend_name == "dynamodb":
        table = f"{db._store.prefix}events"  # type: ignore[attr-defined]
        rows = await db.native(f'SELECT * FROM "{table}" WHERE k = ?', ["x"])
        assert len(rows) == 2
        return
    statement, params = _NATIVE[backend_name]
    rows = await db.native(statement, params)
    if backend_name == "mongo":
        assert rows[0]["n"] == 2
    elif backend_name == "cosmos":
        assert rows == [{"$1": 2}]  # SELECT VALUE: the value under Cosmos DB's own name
    else:
        assert rows == [{"n": 2}]
    with pytest.raises(asyncdb.QueryError):
        await db.native("", None)


async def test_key_values_are_strings_integers_or_datetimes(db: asyncdb.Database) -> None:
    """Documented deviation: MongoDB also accepts null, documents, floats... in _id."""
    coll = db.collection("keys")
    when = datetime(2026, 5, 1, tzinfo=UTC)
    assert await coll.insert_many([{"id": "s"}, {"id": 7}, {"id": when}]) == ["s", 7, when]
    for bad in (None, "", 1.5, True, {"a": 1}, [1], b"x", Decimal("1")):
        with pytest.raises(asyncdb.QueryError, match="key values"):
            await coll.insert_one({"id": bad})


async def test_field_names_containing_a_dot_are_rejected(db: asyncdb.Database) -> None:
    """Documented deviation: MongoDB 5.0+ stores them but cannot query them by path."""
    coll = db.collection("dots")
    for doc in (
        {"id": "a", "a.b": 1},
        {"id": "b", "n": {"x.y": 1}},
        {"id": "c", "l": [{"p.q": 1}]},
    ):
        with pytest.raises(asyncdb.QueryError, match=r"must not contain '\.'"):
            await coll.insert_one(doc)
    await coll.insert_one({"id": "ok"})
    with pytest.raises(asyncdb.QueryError, match=r"must not contain '\.'"):
        await coll.update_one({"id": "ok"}, {"$set": {"n": {"x.y": 1}}})
    assert await coll.find_one({"id": "ok"}) == {"id": "ok"}
