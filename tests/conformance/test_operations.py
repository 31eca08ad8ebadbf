"""DESIGN §1: every operation of the public collection API, on every backend."""

from __future__ import annotations

import asyncio
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import asyncdb
from asyncdb.query import parse_filter

from .support import assert_same, id_set, ids

SEED = [
    {"id": "a1", "status": "open", "p": 5, "team": "red", "n": {"x": 1, "y": 2}},
    {"id": "a2", "status": "closed", "p": 3, "team": "blue", "n": {"x": 2, "y": 1}},
    {"id": "a3", "status": "open", "p": 9, "team": "blue", "n": {"x": 3, "y": 0}},
    {"id": "a4", "status": "open", "p": 1, "team": "red", "n": {"x": 4, "y": 9}},
    {"id": "a5", "status": "closed", "p": 7, "team": "green", "n": {"x": 5, "y": 5}},
]


async def seeded(db: asyncdb.Database, name: str = "alerts", **options: Any) -> asyncdb.Collection:
    options.setdefault("allow_scan", True)
    coll = db.collection(name, **options)
    await coll.insert_many(SEED)
    return coll


# --- connect ------------------------------------------------------------------------------


async def test_connect_is_awaitable_and_an_async_context_manager(backend_url: str) -> None:
    db = await asyncdb.connect(backend_url)
    try:
        await db.collection("c").insert_one({"id": "x"})
    finally:
        await db.close()
    async with asyncdb.connect(backend_url) as db2:
        assert isinstance(db2, asyncdb.Database)
        assert isinstance(db2.capabilities, asyncdb.Capabilities)
        await db2.collection("c2").insert_one({"id": "y"})


# --- insert -------------------------------------------------------------------------------


async def test_insert_one_returns_the_given_key_and_stores_the_document(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c")
    doc = {"id": "k1", "title": "disk full", "priority": 80}
    assert await coll.insert_one(doc) == "k1"
    assert_same(doc, await coll.find_one({"id": "k1"}))


async def test_insert_one_accepts_integer_keys(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    assert await coll.insert_one({"id": 42, "v": "x"}) == 42
    assert_same({"id": 42, "v": "x"}, await coll.find_one({"id": 42}))


async def test_insert_one_generates_a_distinct_string_id_when_missing(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    first = await coll.insert_one({"title": "one"})
    second = await coll.insert_one({"title": "two"})
    assert isinstance(first, str) and first
    assert isinstance(second, str) and second
    assert first != second
    assert_same({"id": first, "title": "one"}, await coll.find_one({"id": first}))
    assert_same({"id": second, "title": "two"}, await coll.find_one({"id": second}))


async def test_insert_one_with_an_existing_key_raises_duplicate_key_and_keeps_the_original(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c")
    await coll.insert_one({"id": "k", "v": 1})
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_one({"id": "k", "v": 2})
    assert_same({"id": "k", "v": 1}, await coll.find_one({"id": "k"}))


async def test_insert_many_returns_the_keys_in_order(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    keys = await coll.insert_many([{"id": "b"}, {"v": 1}, {"id": "a"}])
    assert keys[0] == "b" and keys[2] == "a"
    assert isinstance(keys[1], str) and keys[1] not in ("a", "b")
    assert await id_set(coll) == {"a", "b", keys[1]}
    assert await coll.insert_many([]) == []


async def test_insert_many_with_a_duplicate_inside_the_batch_writes_nothing(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c", allow_scan=True)
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_many([{"id": "x1"}, {"id": "x2"}, {"id": "x1"}])
    assert await id_set(coll) == set()


async def test_insert_many_with_a_key_that_exists_writes_nothing(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_one({"id": "old", "v": 1})
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_many([{"id": "n1"}, {"id": "n2"}, {"id": "old", "v": 2}, {"id": "n3"}])
    assert await id_set(coll) == {"old"}
    assert_same({"id": "old", "v": 1}, await coll.find_one({"id": "old"}))


@pytest.mark.parametrize(
    "key", [1.5, "", None, True, [1], {"a": 1}, b"k"], ids=lambda k: type(k).__name__ + repr(k)
)
async def test_insert_with_a_key_that_is_not_a_string_int_or_datetime_raises_query_error(
    db: asyncdb.Database, key: Any
) -> None:
    coll = db.collection("c", allow_scan=True)
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": key})
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_many([{"id": "fine"}, {"id": key}])
    assert await id_set(coll) == set()


@pytest.mark.parametrize(
    "doc",
    [
        {"$set": 1},
        {"a.b": 1},
        {"": 1},
        {"n": {"$x": 1}},
        {"a\x00b": 1},
        {"v": float("nan")},
        {"v": float("inf")},
        {"v": 2**63},
        {"v": -(2**63) - 1},
        {"v": {1, 2}},
        {"v": object()},
        {1: "non-string field name"},
    ],
    ids=lambda doc: repr(doc).split(" at 0x")[0],  # object() has no stable repr (pytest-xdist)
)
async def test_insert_of_a_non_portable_document_raises_query_error_and_writes_nothing(
    db: asyncdb.Database, doc: dict[Any, Any]
) -> None:
    coll = db.collection("c", allow_scan=True)
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": "x", **doc})
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_many([{"id": "y"}, {"id": "z", **doc}])
    assert await id_set(coll) == set()


# --- find ---------------------------------------------------------------------------------


async def test_find_one_returns_a_matching_document_or_none(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert_same(SEED[2], await coll.find_one({"id": "a3"}))
    assert await coll.find_one({"id": "nope"}) is None
    found = await coll.find_one({"status": "closed", "p": {"$gt": 5}})
    assert found is not None and found["id"] == "a5"


async def test_find_one_with_sort_returns_the_first_in_that_order(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    top = await coll.find_one({"status": "open"}, sort=[("p", -1)])
    assert top is not None and top["id"] == "a3"


async def test_find_one_with_include_projection_keeps_the_key_and_the_named_fields(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    assert_same(
        {"id": "a1", "p": 5, "n": {"x": 1}}, await coll.find_one({"id": "a1"}, {"p": 1, "n.x": 1})
    )
    assert_same({"p": 5}, await coll.find_one({"id": "a1"}, {"p": 1, "id": 0}))
    assert_same({"id": "a1", "status": "open"}, await coll.find_one({"id": "a1"}, ["status"]))


async def test_find_one_with_exclude_projection_drops_the_named_fields(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    assert_same(
        {"id": "a1", "status": "open", "team": "red", "n": {"y": 2}},
        await coll.find_one({"id": "a1"}, {"p": 0, "n.x": 0}),
    )
    assert_same(
        {"status": "open", "p": 5, "team": "red", "n": {"x": 1, "y": 2}},
        await coll.find_one({"id": "a1"}, {"id": 0}),
    )


async def test_projection_mixing_include_and_exclude_raises_query_error(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    with pytest.raises(asyncdb.QueryError):
        await coll.find_one({"id": "a1"}, {"p": 1, "team": 0})


async def test_find_applies_sort_skip_limit_and_projection(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert await ids(coll, {}, sort=[("p", 1)]) == ["a4", "a2", "a1", "a5", "a3"]
    assert await ids(coll, {}, sort=[("p", -1)], skip=1, limit=2) == ["a5", "a1"]
    assert await ids(coll, {}, sort=[("p", 1)], skip=10) == []
    docs = await coll.find({"team": "blue"}, projection={"p": 1}, sort=[("p", -1)]).to_list()
    assert docs == [{"id": "a3", "p": 9}, {"id": "a2", "p": 3}]


async def test_find_sort_ties_are_broken_by_key(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many([{"id": k, "g": 1} for k in ("d", "b", "e", "a", "c")])
    assert await ids(coll, {}, sort=[("g", 1)]) == ["a", "b", "c", "d", "e"]
    assert await ids(coll, {}, sort=[("g", -1)]) == ["a", "b", "c", "d", "e"]


async def test_find_sort_on_several_fields_with_mixed_directions(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert await ids(coll, {}, sort=[("team", 1), ("p", -1)]) == ["a3", "a2", "a5", "a1", "a4"]
    assert await ids(coll, {}, sort={"status": -1, "n.y": 1}) == ["a3", "a1", "a4", "a2", "a5"]


async def test_cursor_methods_sort_skip_limit_chain(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    cur = coll.find({"status": "open"}).sort([("p", 1)]).skip(1).limit(1)
    assert [d["id"] for d in await cur.to_list()] == ["a1"]


async def test_to_list_with_length_returns_at_most_that_many(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    docs = await coll.find({}, sort=[("p", 1)]).to_list(2)
    assert [d["id"] for d in docs] == ["a4", "a2"]


async def test_async_for_yields_the_same_documents_as_to_list(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    streamed = [doc async for doc in coll.find({"status": "open"}, sort=[("p", 1)])]
    listed = await coll.find({"status": "open"}, sort=[("p", 1)]).to_list()
    assert streamed == listed
    assert [d["id"] for d in streamed] == ["a4", "a1", "a3"]


async def test_async_for_can_stop_early(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    seen = []
    async for doc in coll.find({}, sort=[("p", 1)]):
        seen.append(doc["id"])
        if len(seen) == 2:
            break
    assert seen == ["a4", "a2"]
    assert await coll.count_documents({}) == 5  # the collection is usable afterwards


async def test_async_for_streams_without_materialising_the_result(db: asyncdb.Database) -> None:
    coll = db.collection("big", allow_scan=True)
    for start in range(0, 2000, 500):
        await coll.insert_many(
            [
                {"id": f"d{i:05d}", "rows": [{"k": j} for j in range(30)]}
                for i in range(start, start + 500)
            ]
        )

    async def peak(consume: Any) -> int:
        tracemalloc.start()
        try:
            await consume()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    async def stream() -> None:
        n = 0
        async for _ in coll.find({}):
            n += 1
        assert n == 2000

    async def collect() -> None:
        assert len(await coll.find({}).to_list()) == 2000

    streamed, collected = await peak(stream), await peak(collect)
    # to_list holds 2000 decoded documents of 30 sub-documents; a streaming cursor must hold
    # only a bounded batch of them at a time
    assert collected > 4_000_000
    assert streamed < collected / 4, f"streaming peaked at {streamed} B, to_list at {collected} B"


# --- count --------------------------------------------------------------------------------


async def test_count_documents_counts_matches(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert await coll.count_documents({}) == 5
    assert await coll.count_documents({"status": "open"}) == 3
    assert await coll.count_documents({"p": {"$gte": 5}, "team": {"$ne": "red"}}) == 2
    assert await coll.count_documents({"status": "gone"}) == 0


# --- updates ------------------------------------------------------------------------------


async def test_update_one_changes_one_matching_document(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    result = await coll.update_one({"status": "open"}, {"$set": {"flag": True}})
    assert (result.matched, result.modified, result.upserted_id) == (1, 1, None)
    assert result.matched_count == 1 and result.modified_count == 1
    assert await coll.count_documents({"flag": True}) == 1


async def test_update_one_that_changes_nothing_reports_matched_but_not_modified(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    result = await coll.update_one({"id": "a1"}, {"$set": {"p": 5}})
    assert (result.matched, result.modified, result.upserted_id) == (1, 0, None)
    assert_same(SEED[0], await coll.find_one({"id": "a1"}))


async def test_update_of_int_to_equal_float_counts_as_modified(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    result = await coll.update_one({"id": "a1"}, {"$set": {"p": 5.0}})
    assert (result.matched, result.modified) == (1, 1)
    found = await coll.find_one({"id": "a1"})
    assert found is not None
    assert_same(5.0, found["p"])


async def test_update_without_match_reports_zero(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    result = await coll.update_one({"id": "zz"}, {"$set": {"p": 1}})
    assert (result.matched, result.modified, result.upserted_id) == (0, 0, None)
    result = await coll.update_many({"status": "gone"}, {"$set": {"p": 1}})
    assert (result.matched, result.modified, result.upserted_id) == (0, 0, None)
    assert await coll.count_documents({}) == 5


async def test_update_many_changes_every_match_and_counts_modified(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    result = await coll.update_many({"status": "open"}, {"$max": {"p": 5}})
    # a1 already has p=5, a3 has 9: only a4 (p=1) changes
    assert (result.matched, result.modified, result.upserted_id) == (3, 1, None)
    assert [d["p"] for d in await coll.find({"status": "open"}, sort=[("id", 1)]).to_list()] == [
        5,
        9,
        5,
    ]
    result = await coll.update_many({}, {"$inc": {"p": 10}})
    assert (result.matched, result.modified) == (5, 5)
    assert await ids(coll, {"p": {"$gte": 11}}, sort=[("id", 1)]) == ["a1", "a2", "a3", "a4", "a5"]


async def test_update_operators_apply_as_documented(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_one({"id": "x", "n": 1, "tags": ["a", "b"], "old": 1, "m": 10})
    await coll.update_one(
        {"id": "x"},
        {
            "$inc": {"n": 2},
            "$push": {"tags": {"$each": ["c", "d"], "$slice": -3}},
            "$rename": {"old": "renamed"},
            "$min": {"m": 3},
            "$set": {"deep.er": [1]},
            "$unset": {"nothing": ""},
        },
    )
    assert_same(
        {"id": "x", "n": 3, "tags": ["b", "c", "d"], "m": 3, "renamed": 1, "deep": {"er": [1]}},
        await coll.find_one({"id": "x"}),
    )
    await coll.update_one(
        {"id": "x"},
        {"$addToSet": {"tags": {"$each": ["b", "e"]}}, "$pop": {"deep.er": 1}, "$mul": {"n": 2.5}},
    )
    await coll.update_one({"id": "x"}, {"$pull": {"tags": {"$in": ["c", "d"]}}})
    assert_same(
        {"id": "x", "n": 7.5, "tags": ["b", "e"], "m": 3, "renamed": 1, "deep": {"er": []}},
        await coll.find_one({"id": "x"}),
    )


async def test_current_date_sets_a_utc_millisecond_datetime(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_one({"id": "x"})
    before = datetime.now(UTC) - timedelta(seconds=1)
    await coll.update_one({"id": "x"}, {"$currentDate": {"seen": True}})
    doc = await coll.find_one({"id": "x"})
    assert doc is not None
    seen = doc["seen"]
    assert isinstance(seen, datetime) and seen.utcoffset() == timedelta(0)
    assert seen.microsecond % 1000 == 0
    assert before <= seen <= datetime.now(UTC) + timedelta(seconds=1)


async def test_update_one_upsert_inserts_a_document_seeded_from_filter_equalities(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c", allow_scan=True)
    result = await coll.update_one(
        {"id": "u1", "status": "new", "n.x": 5, "p": {"$gt": 3}},
        {"$set": {"v": 1}, "$setOnInsert": {"created": True}},
        upsert=True,
    )
    assert (result.matched, result.modified, result.upserted_id) == (0, 0, "u1")
    assert_same(
        {"id": "u1", "status": "new", "n": {"x": 5}, "v": 1, "created": True},
        await coll.find_one({"id": "u1"}),
    )
    again = await coll.update_one(
        {"id": "u1", "status": "new"},
        {"$set": {"v": 2}, "$setOnInsert": {"created": False}},
        upsert=True,
    )
    assert (again.matched, again.modified, again.upserted_id) == (1, 1, None)
    doc = await coll.find_one({"id": "u1"})
    assert doc is not None and doc["v"] == 2 and doc["created"] is True


async def test_upsert_without_key_in_filter_generates_an_id(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    result = await coll.update_many({"status": "fresh"}, {"$inc": {"n": 1}}, upsert=True)
    assert result.matched == 0 and result.modified == 0
    assert isinstance(result.upserted_id, str) and result.upserted_id
    assert_same(
        {"id": result.upserted_id, "status": "fresh", "n": 1},
        await coll.find_one({"id": result.upserted_id}),
    )


async def test_replace_one_replaces_the_whole_document_and_keeps_the_key(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    result = await coll.replace_one({"id": "a2"}, {"status": "replaced", "z": [1]})
    assert (result.matched, result.modified, result.upserted_id) == (1, 1, None)
    assert_same({"id": "a2", "status": "replaced", "z": [1]}, await coll.find_one({"id": "a2"}))
    same = await coll.replace_one({"id": "a2"}, {"id": "a2", "status": "replaced", "z": [1]})
    assert (same.matched, same.modified) == (1, 0)


async def test_replace_one_upsert_inserts_with_the_filter_key(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    result = await coll.replace_one({"id": "r1"}, {"v": 1}, upsert=True)
    assert (result.matched, result.modified, result.upserted_id) == (0, 0, "r1")
    assert_same({"id": "r1", "v": 1}, await coll.find_one({"id": "r1"}))


async def test_replace_one_that_changes_the_key_raises_update_error(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    with pytest.raises(asyncdb.UpdateError):
        await coll.replace_one({"id": "a2"}, {"id": "other", "v": 1})
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"id": "a2"}, {"$set": {"id": "other"}})
    assert_same(SEED[1], await coll.find_one({"id": "a2"}))
    assert await coll.find_one({"id": "other"}) is None


async def test_replace_one_with_operators_raises_query_error(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    with pytest.raises(asyncdb.QueryError):
        await coll.replace_one({"id": "a2"}, {"$set": {"v": 1}})
    assert_same(SEED[1], await coll.find_one({"id": "a2"}))


async def test_find_one_and_update_returns_the_document_after_by_default(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    after = await coll.find_one_and_update({"id": "a1"}, {"$inc": {"p": 1}})
    assert_same({**SEED[0], "p": 6}, after)
    explicit = await coll.find_one_and_update(
        {"id": "a1"}, {"$inc": {"p": 1}}, return_document="after"
    )
    assert_same({**SEED[0], "p": 7}, explicit)


async def test_find_one_and_update_returns_the_document_before(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    before = await coll.find_one_and_update(
        {"id": "a1"}, {"$inc": {"p": 1}}, return_document="before"
    )
    assert_same(SEED[0], before)
    now = await coll.find_one({"id": "a1"})
    assert now is not None and now["p"] == 6


async def test_find_one_and_update_without_match_returns_none(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert await coll.find_one_and_update({"id": "zz"}, {"$set": {"p": 1}}) is None
    assert await coll.find_one({"id": "zz"}) is None


async def test_find_one_and_update_with_upsert_returns_the_new_document(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c")
    doc = await coll.find_one_and_update({"id": "n1"}, {"$set": {"v": 1}}, upsert=True)
    assert_same({"id": "n1", "v": 1}, doc)


async def test_find_one_and_update_with_sort_updates_the_first_in_order_ties_by_key(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many([{"id": "b", "p": 1}, {"id": "c", "p": 2}, {"id": "a", "p": 1}])
    doc = await coll.find_one_and_update({}, {"$set": {"hit": True}}, sort=[("p", 1)])
    assert doc is not None and doc["id"] == "a"
    doc = await coll.find_one_and_update({}, {"$set": {"hit2": True}}, sort=[("p", -1)])
    assert doc is not None and doc["id"] == "c"


async def test_find_one_and_update_with_projection(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    doc = await coll.find_one_and_update({"id": "a1"}, {"$set": {"p": 0}}, projection={"p": 1})
    assert_same({"id": "a1", "p": 0}, doc)


async def test_inc_on_a_string_raises_update_error_and_leaves_the_document(
    db: asyncdb.Database,
) -> None:
    coll = await seeded(db)
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"id": "a1"}, {"$inc": {"status": 1}})
    with pytest.raises(asyncdb.UpdateError):
        await coll.find_one_and_update({"id": "a1"}, {"$inc": {"status": 1}, "$set": {"p": 0}})
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"id": "a1"}, {"$push": {"p": 1}})
    assert_same(SEED[0], await coll.find_one({"id": "a1"}))


async def test_update_many_that_fails_on_one_document_changes_none(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    docs = [{"id": "a", "n": 1}, {"id": "b", "n": "text"}, {"id": "c", "n": 3}]
    await coll.insert_many(docs)
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_many({}, {"$inc": {"n": 1}})
    assert_same(docs, await coll.find({}, sort=[("id", 1)]).to_list())


async def test_inc_past_the_64_bit_range_raises_update_error(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_one({"id": "x", "n": 2**63 - 1})
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"id": "x"}, {"$inc": {"n": 1}})
    assert_same({"id": "x", "n": 2**63 - 1}, await coll.find_one({"id": "x"}))


async def test_mul_past_the_float_range_raises_update_error(db: asyncdb.Database) -> None:
    # a non-finite float is not a portable value (DESIGN §2), so an update must not store one
    coll = db.collection("c")
    await coll.insert_one({"id": "x", "f": 1e300})
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"id": "x"}, {"$mul": {"f": 1e300}})
    assert_same({"id": "x", "f": 1e300}, await coll.find_one({"id": "x"}))


async def test_concurrent_updates_of_one_document_are_not_lost(db: asyncdb.Database) -> None:
    # DESIGN §4: updates are atomic per document on every backend
    coll = db.collection("c")
    await coll.insert_one({"id": "ctr", "n": 0, "log": []})
    results = await asyncio.gather(
        *(
            coll.update_one({"id": "ctr"}, {"$inc": {"n": 1}, "$push": {"log": i}})
            for i in range(20)
        )
    )
    assert all((r.matched, r.modified) == (1, 1) for r in results)
    doc = await coll.find_one({"id": "ctr"})
    assert doc is not None and doc["n"] == 20
    assert sorted(doc["log"]) == list(range(20))


async def test_concurrent_conditional_updates_let_exactly_one_win(db: asyncdb.Database) -> None:
    coll = db.collection("c")
    await coll.insert_one({"id": "job", "state": "ready"})
    results = await asyncio.gather(
        *(
            coll.update_one({"id": "job", "state": "ready"}, {"$set": {"state": "taken", "by": i}})
            for i in range(10)
        )
    )
    assert sum(r.modified for r in results) == 1
    assert sum(r.matched for r in results) == 1


# --- delete -------------------------------------------------------------------------------


async def test_delete_one_deletes_one_match_and_returns_one(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert await coll.delete_one({"status": "open"}) == 1
    assert await coll.count_documents({"status": "open"}) == 2
    assert await coll.delete_one({"id": "a2"}) == 1
    assert await coll.find_one({"id": "a2"}) is None
    assert await coll.delete_one({"id": "a2"}) == 0


async def test_delete_many_deletes_every_match_and_returns_how_many(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    assert await coll.delete_many({"team": {"$in": ["red", "green"]}}) == 3
    assert await id_set(coll) == {"a2", "a3"}
    assert await coll.delete_many({"team": "red"}) == 0
    assert await coll.delete_many({}) == 2
    assert await coll.count_documents({}) == 0


# --- explain ------------------------------------------------------------------------------


async def test_explain_returns_a_plan_with_access_path_and_parts(db: asyncdb.Database) -> None:
    coll = await seeded(db, "plans", indexes=["status"], allow_scan=False)
    by_key = await coll.explain({"id": "a1"})
    assert isinstance(by_key, asyncdb.Plan)
    assert by_key.backend == db.backend and by_key.collection == "plans"
    assert by_key.access_path == "key"
    by_index = await coll.explain({"status": "open", "p": {"$gt": 1}}, sort=[("p", -1)])
    assert by_index.access_path == "index:ix_status"
    assert not by_index.scan
    scan = await coll.explain({"team": "red"})  # explain runs nothing: no ScanRequired
    assert scan.access_path == "scan" and scan.scan
    for plan in (by_key, by_index, scan):
        assert isinstance(plan.native, dict)
        for part in (plan.exact, plan.approximate, plan.residual):
            if part is not None:
                parse_filter(part)  # each part is itself a valid filter
        # something evaluates the filter: the store exactly, or the residual re-check
        assert plan.exact is not None or plan.residual is not None
        assert str(plan)


async def test_explain_parts_together_are_the_filter(db: asyncdb.Database) -> None:
    """The exact part narrows the documents, the approximate part never loses a match, and the
    residual re-checked over the exact part's matches gives the query's answer."""
    coll = await seeded(db)
    flt = {"status": "open", "n.x": {"$gte": 2}, "team": {"$regex": "^r"}}
    plan = await coll.explain(flt)
    expected = await id_set(coll, flt)
    assert expected == {"a4"}
    if plan.approximate is not None:
        assert expected <= await id_set(coll, plan.approximate)
    kept = await id_set(coll, plan.exact)
    if plan.residual is not None:
        kept &= await id_set(coll, plan.residual)
    assert kept == expected


# --- errors before I/O --------------------------------------------------------------------

BAD_FILTERS = [
    ({"$where": "this.a > 1"}, "$where"),
    ({"$function": {"body": "x"}}, "$function"),
    ({"$expr": {"$gt": ["$a", 1]}}, "$expr"),
    ({"$text": {"$search": "x"}}, "$text"),
    ({"a": {"$foo": 1}}, "a.$foo"),
    ({"$foo": [{"a": 1}]}, "$foo"),
    ({"a": {"$where": "1"}}, "a.$where"),
    ({"a.$b": 1}, "a.$b"),
    ({"a": {"$regex": "("}}, "a.$regex"),
    ({"a": {"$regex": "x", "$options": "q"}}, "a.$options"),
    ({"a": {"$options": "i"}}, "a.$options"),
    ({"a": {"$in": 5}}, "a.$in"),
    ({"a": {"$size": -1}}, "a.$size"),
    ({"a": {"$mod": [0, 1]}}, "a.$mod"),
    ({"a": {"$type": "nope"}}, "a.$type"),
    ({"$or": []}, "$or"),
    ({"$and": "x"}, "$and"),
    ({"x": {"$elemMatch": {"y": {"$bad": 1}}}}, "$bad"),
    ({"a": {"$not": 5}}, "a.$not"),
    ({"a": float("nan")}, "a"),
    ({"a": 2**64}, "a"),
    ({"a": {"$all": [{"$gt": 1}]}}, "a.$all"),
]


@pytest.mark.parametrize(("flt", "where"), BAD_FILTERS, ids=[repr(f) for f, _ in BAD_FILTERS])
async def test_bad_filter_raises_query_error_naming_the_path_before_any_io(
    backend_url: str, flt: dict[str, Any], where: str
) -> None:
    db = await asyncdb.connect(backend_url)
    coll = db.collection("never_used", allow_scan=True)
    with pytest.raises(asyncdb.QueryError) as sync_err:
        coll.find(flt)  # no await: find() parses eagerly
    assert where in sync_err.value.path
    await db.close()  # any I/O after this point would fail with another error
    calls = [
        coll.find_one(flt),
        coll.count_documents(flt),
        coll.update_one(flt, {"$set": {"v": 1}}),
        coll.update_many(flt, {"$set": {"v": 1}}),
        coll.replace_one(flt, {"v": 1}),
        coll.find_one_and_update(flt, {"$set": {"v": 1}}),
        coll.delete_one(flt),
        coll.delete_many(flt),
        coll.find_page(flt),
        coll.explain(flt),
    ]
    for call in calls:
        with pytest.raises(asyncdb.QueryError) as err:
            await call
        assert where in err.value.path, (err.value, where)


BAD_UPDATES = [
    {},
    {"a": 1},
    {"$foo": {"a": 1}},
    {"$set": 1},
    {"$inc": {"a": "x"}},
    {"$set": {"$a": 1}},
    {"$set": {"a": 1}, "$inc": {"a": 1}},
    {"$set": {"a.b": 1}, "$unset": {"a": ""}},
    {"$pop": {"a": 2}},
    {"$rename": {"a": "a"}},
    {"$push": {"a": {"$each": 1}}},
    {"$push": {"a": {"$each": [1], "$sort": 1}}},
    {"$currentDate": {"a": {"$type": "timestamp"}}},
    {"$set": {"a": float("inf")}},
    {"$where": {"a": 1}},
]


@pytest.mark.parametrize("update", BAD_UPDATES, ids=repr)
async def test_bad_update_raises_query_error_before_any_io(
    backend_url: str, update: dict[str, Any]
) -> None:
    db = await asyncdb.connect(backend_url)
    coll = db.collection("c", allow_scan=True)
    await coll.insert_one({"id": "x", "a": 1})
    with pytest.raises(asyncdb.QueryError):
        await coll.update_one({"id": "x"}, update)
    assert_same({"id": "x", "a": 1}, await coll.find_one({"id": "x"}))
    never = db.collection("never_used")
    await db.close()
    for call in (
        never.update_one({"id": "x"}, update, upsert=True),
        never.update_many({}, update),
        never.find_one_and_update({"id": "x"}, update),
    ):
        with pytest.raises(asyncdb.QueryError):
            await call


async def test_bad_document_keys_are_rejected_before_any_io(backend_url: str) -> None:
    db = await asyncdb.connect(backend_url)
    coll = db.collection("never_used")
    await db.close()
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": 1.5})
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_many([{"id": "ok"}, {"id": ""}])
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": "x", "v": float("nan")})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sort": [("p", 2)]},
        {"sort": [("p", 1), ("p", -1)]},
        {"sort": [("$p", 1)]},
        {"skip": -1},
        {"limit": -1},
        {"limit": 1.5},
        {"projection": {"p": "yes"}},
        {"projection": {"p": 1, "p.q": 1}},
    ],
    ids=repr,
)
async def test_bad_sort_skip_limit_or_projection_raises_query_error(
    db: asyncdb.Database, kwargs: dict[str, Any]
) -> None:
    coll = db.collection("c", allow_scan=True)
    with pytest.raises(asyncdb.QueryError):
        coll.find({}, **kwargs)


async def test_limit_zero_means_no_limit_like_pymongo(db: asyncdb.Database) -> None:
    coll = await seeded(db)
    everything = {d["id"] for d in SEED}
    assert {d["id"] for d in await coll.find({}, limit=0).to_list()} == everything
    assert {d["id"] for d in await coll.find({}).limit(0).to_list()} == everything


async def test_float_equal_to_an_integer_key_finds_that_document(db: asyncdb.Database) -> None:
    coll = db.collection("int_keys", allow_scan=True)
    await coll.insert_one({"id": 1, "v": "one"})
    assert (await coll.find_one({"id": 1.0}))["v"] == "one"  # 1 == 1.0, as in MongoDB
    assert await coll.count_documents({"id": {"$in": [1.0]}}) == 1
