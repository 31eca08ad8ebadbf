"""DESIGN §1/§2: collection options -- composite keys, TTL, indexes and the scan policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import asyncdb

from .support import assert_same, id_set, ids

# --- composite keys -------------------------------------------------------------------------


async def test_composite_key_insert_returns_the_key_tuple(db: asyncdb.Database) -> None:
    coll = db.collection("tenants", key=("tenant", "id"))
    assert await coll.insert_one({"tenant": "t1", "id": "a", "v": 1}) == ("t1", "a")
    assert await coll.insert_many([{"tenant": "t2", "id": "a"}, {"tenant": "t1", "id": 7}]) == [
        ("t2", "a"),
        ("t1", 7),
    ]


async def test_composite_key_allows_the_same_id_in_another_tenant_only(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("tenants", key=("tenant", "id"))
    await coll.insert_one({"tenant": "t1", "id": "a", "v": 1})
    await coll.insert_one({"tenant": "t2", "id": "a", "v": 2})
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_one({"tenant": "t1", "id": "a", "v": 3})
    assert_same(
        {"tenant": "t1", "id": "a", "v": 1}, await coll.find_one({"tenant": "t1", "id": "a"})
    )
    assert_same(
        {"tenant": "t2", "id": "a", "v": 2}, await coll.find_one({"id": "a", "tenant": "t2"})
    )


async def test_composite_key_lookup_is_a_key_access(db: asyncdb.Database) -> None:
    coll = db.collection("tenants", key=("tenant", "id"))
    await coll.insert_one({"tenant": "t1", "id": "a"})
    plan = await coll.explain({"tenant": "t1", "id": "a"})
    assert plan.access_path == "key"
    # an equality on both key fields never needs a scan
    assert await coll.count_documents({"tenant": "t1", "id": {"$in": ["a", "b"]}}) == 1


async def test_composite_key_fields_are_required_and_never_generated(db: asyncdb.Database) -> None:
    coll = db.collection("tenants", key=("tenant", "id"), allow_scan=True)
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"tenant": "t1"})
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": "a"})
    assert await id_set(coll) == set()


async def test_composite_key_update_delete_and_upsert(db: asyncdb.Database) -> None:
    coll = db.collection("tenants", key=("tenant", "id"), allow_scan=True)
    await coll.insert_many(
        [{"tenant": "t1", "id": "a", "n": 1}, {"tenant": "t2", "id": "a", "n": 1}]
    )
    result = await coll.update_one({"tenant": "t2", "id": "a"}, {"$inc": {"n": 1}})
    assert (result.matched, result.modified) == (1, 1)
    assert_same(
        {"tenant": "t1", "id": "a", "n": 1}, await coll.find_one({"tenant": "t1", "id": "a"})
    )
    up = await coll.update_one({"tenant": "t3", "id": "z"}, {"$set": {"n": 9}}, upsert=True)
    assert up.upserted_id == ("t3", "z")
    assert_same(
        {"tenant": "t3", "id": "z", "n": 9}, await coll.find_one({"tenant": "t3", "id": "z"})
    )
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"tenant": "t1", "id": "a"}, {"$set": {"tenant": "t9"}})
    assert await coll.delete_one({"tenant": "t1", "id": "a"}) == 1
    assert await coll.find_one({"tenant": "t2", "id": "a"}) is not None


async def test_composite_key_breaks_sort_ties_in_key_order(db: asyncdb.Database) -> None:
    coll = db.collection("tenants", key=("tenant", "id"), allow_scan=True)
    await coll.insert_many(
        [{"tenant": t, "id": i, "g": 0} for t, i in [("b", 2), ("a", 2), ("b", 1), ("a", 1)]]
    )
    docs = await coll.find({}, sort=[("g", 1)]).to_list()
    assert [(d["tenant"], d["id"]) for d in docs] == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


async def test_datetime_key_values(db: asyncdb.Database) -> None:
    coll = db.collection("events", key=("src", "at"))
    at = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert await coll.insert_one({"src": "s", "at": at, "v": 1}) == ("s", at)
    assert_same({"src": "s", "at": at, "v": 1}, await coll.find_one({"src": "s", "at": at}))
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_one({"src": "s", "at": at + timedelta(microseconds=400)})


# --- TTL --------------------------------------------------------------------------------------


def ttl_collection(db: asyncdb.Database) -> asyncdb.Collection | None:
    if "ttl" not in db.capabilities:
        with pytest.raises(asyncdb.NotSupported):
            db.collection("ttl", ttl="expires_at")
        return None
    return db.collection("ttl", ttl="expires_at", allow_scan=True, indexes=["g"])


async def test_expired_documents_are_never_returned(db: asyncdb.Database) -> None:
    coll = ttl_collection(db)
    if coll is None:
        pytest.skip(f"{db.backend} does not claim ttl (checked: NotSupported)")
    now = datetime.now(UTC)
    await coll.insert_many(
        [
            {"id": "past", "g": 1, "expires_at": now - timedelta(hours=1)},
            {"id": "future", "g": 1, "expires_at": now + timedelta(hours=1)},
            {"id": "never", "g": 1},
            {"id": "not-a-date", "g": 1, "expires_at": "yesterday"},
            {"id": "null", "g": 1, "expires_at": None},
        ]
    )
    alive = {"future", "never", "not-a-date", "null"}
    assert await id_set(coll) == alive
    assert await id_set(coll, {"id": "past"}) == set()
    assert await coll.find_one({"id": "past"}) is None
    assert await coll.count_documents({"g": 1}) == 4
    page = await coll.find_page({"g": 1}, limit=10)
    assert {d["id"] for d in page.items} == alive
    result = await coll.update_one({"id": "past"}, {"$set": {"x": 1}})
    assert (result.matched, result.modified) == (0, 0)
    assert await coll.find_one_and_update({"id": "past"}, {"$set": {"x": 1}}) is None
    assert await coll.delete_many({"id": "past"}) == 0
    assert await coll.find_one({"id": "past"}) is None


async def test_a_document_disappears_when_its_time_passes(db: asyncdb.Database) -> None:
    coll = ttl_collection(db)
    if coll is None:
        pytest.skip(f"{db.backend} does not claim ttl (checked: NotSupported)")
    await coll.count_documents({})  # create the table first: only the document's life is timed
    soon = datetime.now(UTC) + timedelta(seconds=1)
    await coll.insert_one({"id": "soon", "g": 1, "expires_at": soon})
    asked = datetime.now(UTC)
    seen = await coll.find_one({"id": "soon"})
    # Visible before its time (a very slow machine may reach the read after it: then no claim).
    assert seen is not None or asked >= soon
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    assert await coll.find_one({"id": "soon"}) is None
    assert await coll.count_documents({"g": 1}) == 0


async def test_an_expired_key_can_be_inserted_again(db: asyncdb.Database) -> None:
    coll = ttl_collection(db)
    if coll is None:
        pytest.skip(f"{db.backend} does not claim ttl (checked: NotSupported)")
    now = datetime.now(UTC)
    await coll.insert_one({"id": "k", "v": "old", "expires_at": now - timedelta(hours=1)})
    await coll.insert_one({"id": "k", "v": "new", "expires_at": now + timedelta(hours=1)})
    doc = await coll.find_one({"id": "k"})
    assert doc is not None and doc["v"] == "new"


async def test_an_upsert_over_an_expired_document_inserts_a_fresh_one(db: asyncdb.Database) -> None:
    coll = ttl_collection(db)
    if coll is None:
        pytest.skip(f"{db.backend} does not claim ttl (checked: NotSupported)")
    await coll.insert_one({"id": "k", "v": "old", "expires_at": datetime(2000, 1, 1, tzinfo=UTC)})
    result = await coll.update_one({"id": "k"}, {"$set": {"v": "new"}}, upsert=True)
    assert (result.matched, result.upserted_id) == (0, "k")
    assert_same({"id": "k", "v": "new"}, await coll.find_one({"id": "k"}))


# --- scan policy --------------------------------------------------------------------------------


async def test_unindexed_filter_raises_scan_required_without_allow_scan(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c")
    await coll.insert_many(
        [{"id": f"k{i}", "colour": "red" if i % 2 else "blue"} for i in range(6)]
    )
    flt = {"colour": "red"}
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find(flt).to_list()
    with pytest.raises(asyncdb.ScanRequired):
        async for _ in coll.find(flt):
            pass
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find_one(flt)
    with pytest.raises(asyncdb.ScanRequired):
        await coll.count_documents(flt)
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find_page(flt)
    with pytest.raises(asyncdb.ScanRequired):
        await coll.update_many(flt, {"$set": {"x": 1}})
    with pytest.raises(asyncdb.ScanRequired):
        await coll.update_one(flt, {"$set": {"x": 1}})
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find_one_and_update(flt, {"$set": {"x": 1}})
    with pytest.raises(asyncdb.ScanRequired):
        await coll.delete_many(flt)
    with pytest.raises(asyncdb.ScanRequired):
        await coll.delete_one(flt)
    # nothing was changed by the refused writes
    assert await coll.count_documents(flt, allow_scan=True) == 3
    assert await coll.count_documents({"x": 1}, allow_scan=True) == 0


async def test_allow_scan_on_the_call_permits_the_scan(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_many(
        [{"id": f"k{i}", "colour": "red" if i % 2 else "blue"} for i in range(6)]
    )
    flt = {"colour": "red"}
    assert await ids(coll, flt, sort=[("id", 1)], allow_scan=True) == ["k1", "k3", "k5"]
    assert (await coll.find_one(flt, allow_scan=True) or {}).get("colour") == "red"
    assert await coll.count_documents(flt, allow_scan=True) == 3
    page = await coll.find_page(flt, allow_scan=True, limit=2)
    assert len(page.items) == 2
    assert (await coll.update_many(flt, {"$set": {"x": 1}}, allow_scan=True)).matched == 3
    assert await coll.delete_many(flt, allow_scan=True) == 3


async def test_allow_scan_on_the_collection_permits_the_scan(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many(
        [{"id": f"k{i}", "colour": "red" if i % 2 else "blue"} for i in range(6)]
    )
    assert await id_set(coll, {"colour": "red"}) == {"k1", "k3", "k5"}
    assert await coll.count_documents({"colour": "red"}) == 3
    assert await coll.delete_many({"colour": "blue"}) == 3
    # allow_scan=False on the call overrides the collection
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find({"colour": "red"}, allow_scan=False).to_list()


async def test_an_index_on_the_field_avoids_scan_required(db: asyncdb.Database) -> None:
    if "secondary_indexes" not in db.capabilities:
        pytest.skip(f"{db.backend} does not claim secondary_indexes (see test_capabilities)")
    coll = db.collection("c", indexes=["colour"])
    await coll.insert_many(
        [{"id": f"k{i}", "colour": "red" if i % 2 else "blue"} for i in range(6)]
    )
    assert await ids(coll, {"colour": "red"}, sort=[("id", 1)]) == ["k1", "k3", "k5"]
    assert await ids(coll, {"colour": {"$in": ["red"]}, "other": None}, sort=[("id", -1)]) == [
        "k5",
        "k3",
        "k1",
    ]
    assert await coll.count_documents({"colour": "blue"}) == 3
    assert (await coll.update_many({"colour": "red"}, {"$set": {"x": 1}})).modified == 3
    assert await coll.delete_many({"colour": "red"}) == 3


async def test_key_lookups_never_need_a_scan(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_many([{"id": f"k{i}", "n": i} for i in range(6)])
    assert await ids(coll, {"id": "k3"}) == ["k3"]
    assert await ids(coll, {"id": {"$in": ["k1", "k4", "nope"]}}, sort=[("n", -1)]) == ["k4", "k1"]
    assert await coll.count_documents({"id": "k3", "n": {"$gt": 100}}) == 0
    assert (await coll.update_one({"id": "k2"}, {"$inc": {"n": 1}})).modified == 1
    assert await coll.delete_one({"id": "k2"}) == 1


async def test_a_bounded_read_of_everything_is_not_a_scan(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_many([{"id": f"k{i}", "n": i} for i in range(6)])
    assert await ids(coll, {}, limit=3, sort=[("id", 1)]) == ["k0", "k1", "k2"]
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find({}).to_list()


async def test_scan_required_names_the_way_out(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_one({"id": "k", "colour": "red"})
    with pytest.raises(asyncdb.ScanRequired, match="allow_scan"):
        await coll.find_one({"colour": "red"})


async def test_collection_options_are_validated(db: asyncdb.Database) -> None:
    for bad in ("", "a b", "a.b", "x" * 129, "é"):
        with pytest.raises(asyncdb.ConfigurationError):
            db.collection(bad)
    with pytest.raises(asyncdb.ConfigurationError):
        db.collection("c", key=())
    with pytest.raises(asyncdb.ConfigurationError):
        db.collection("c", key=("a.b",))
    with pytest.raises(asyncdb.ConfigurationError):
        db.collection("c", max_scan=0)


async def test_unknown_url_scheme_raises_configuration_error() -> None:
    with pytest.raises(asyncdb.ConfigurationError):
        await asyncdb.connect("nosuchdb://x")
    with pytest.raises(asyncdb.ConfigurationError):
        await asyncdb.connect("no-scheme-at-all")
