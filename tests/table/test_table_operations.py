"""Table mode on SQLite and PostgreSQL: every Collection operation over a typed schema, and the
rules of DESIGN §2 applied to columns (NULL is missing, type bracketing, code point order)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import asyncdb
from asyncdb import Collection, Database

from .conftest import ITEMS, MESSAGES, create_schema

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "ann", "n": 10, "small": 1, "f": 1.5, "price": Decimal("9.99"),
     "flag": True, "ts": T0, "data": b"ab", "meta": {"tags": ["x", "y"], "k": 1}},
    {"id": 2, "name": "bob", "n": 2, "small": 0, "f": 2.0, "price": Decimal("0.5"),
     "flag": False, "ts": T0 + timedelta(days=1), "data": b"b", "meta": {"k": 2}},
    {"id": 3, "name": "Émile", "n": -5, "f": -0.25, "flag": True, "data": b"abc"},
    {"id": 4, "name": "Zed", "n": 2**40},
    {"id": 5},
]  # fmt: skip


async def items(db: Database, **options: Any) -> Collection:
    coll = db.table(ITEMS, allow_scan=True, **options)
    await coll.insert_many(ROWS)
    return coll


async def ids(coll: Collection, flt: dict[str, Any], **kw: Any) -> list[Any]:
    return [d["id"] async for d in coll.find(flt, **kw)]


async def test_documents_round_trip_with_null_columns_missing(tdb: Database) -> None:
    coll = await items(tdb)
    got = await coll.find({}, sort=[("id", 1)]).to_list()
    for want, have in zip(ROWS, got, strict=True):
        assert set(have) == set(want), "NULL columns are missing fields"
        for k, v in want.items():
            assert (have[k] == v and type(have[k]) is type(v)) or k == "price", (k, have[k], v)
    if tdb.backend.startswith("postgresql"):
        assert got[0]["price"] == Decimal("9.99") and type(got[0]["price"]) is Decimal


async def test_sqlite_numeric_holds_doubles(tdb: Database) -> None:
    """Documented deviation: SQLite has no decimal type, a Numeric column keeps a double."""
    coll = await items(tdb)
    doc = await coll.find_one({"id": 1})
    assert doc is not None
    if tdb.backend.startswith("sqlite"):
        assert doc["price"] == 9.99 and type(doc["price"]) is float
    else:
        assert doc["price"] == Decimal("9.99")


async def test_null_and_missing(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"f": None}) == [4, 5]
    assert sorted(await ids(coll, {"n": {"$ne": 2}})) == [1, 3, 4, 5]
    assert await ids(coll, {"f": {"$exists": False}}) == [4, 5]
    assert sorted(await ids(coll, {"f": {"$exists": True}})) == [1, 2, 3]
    assert sorted(await ids(coll, {"n": {"$nin": [2, 10]}})) == [3, 4, 5]
    assert await ids(coll, {"ts": {"$gte": None}}) == [3, 4, 5]
    assert await ids(coll, {"ts": {"$gt": None}}) == []
    assert sorted(await ids(coll, {"n": {"$not": {"$gt": 0}}})) == [3, 5]
    assert await ids(coll, {"f": {"$type": "null"}}) == [], "NULL is missing, not a null value"
    assert sorted(await ids(coll, {"n": {"$in": [None, 2]}})) == [2, 5]


async def test_type_bracketing(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"name": {"$gt": 5}}) == [], "a number never matches a text column"
    assert await ids(coll, {"n": {"$gt": "1"}}) == [], "text never matches a number column"
    assert await ids(coll, {"flag": 1}) == [], "true is not 1"
    assert await ids(coll, {"small": True}) == [], "1 is not true"
    assert await ids(coll, {"small": 1}) == [1]
    assert await ids(coll, {"n": 10.0}) == [1], "numbers compare by value across int and float"
    assert await ids(coll, {"f": 2}) == [2]
    assert sorted(await ids(coll, {"n": {"$gt": 2.5}})) == [1, 4]
    assert sorted(await ids(coll, {"n": {"$lte": 2.5}})) == [2, 3]
    assert await ids(coll, {"n": 2.5}) == []
    assert await ids(coll, {"n": {"$gt": Decimal("9.5"), "$lt": 11}}) == [1]
    assert await ids(coll, {"price": {"$gt": 1}}) == [1]
    assert await ids(coll, {"ts": {"$gt": "2024"}}) == []
    assert await ids(coll, {"data": "ab"}) == [], "bytes are not text"
    assert await ids(coll, {"n": [10]}) == [], "a scalar column never holds an array"


async def test_big_integers_are_exact(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"n": 2**40}) == [4]
    assert await ids(coll, {"n": {"$gt": 2**40 - 1}}) == [4]
    assert await ids(coll, {"n": float(2**40)}) == [4]
    assert await ids(coll, {"small": {"$lt": 2**40}}) == [1, 2], "beyond the column's range"
    assert await ids(coll, {"small": {"$gt": 2**40}}) == []


async def test_strings_compare_by_code_point(tdb: Database) -> None:
    coll = await items(tdb)
    # code points: "Zed" < "ann" < "bob" < "Émile"
    assert await ids(coll, {"name": {"$gt": "a"}}, sort=[("name", 1)]) == [1, 2, 3]
    assert await ids(coll, {"name": {"$lt": "a"}}) == [4]
    got = await ids(coll, {"name": {"$exists": True}}, sort=[("name", 1)])
    assert got == [4, 1, 2, 3]


async def test_bytes_order_by_length_first(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"data": {"$gt": b"b"}}, sort=[("data", 1)]) == [1, 3]
    assert await ids(coll, {}, sort=[("data", 1)]) == [4, 5, 2, 1, 3]


async def test_sort_nulls_first_ascending_last_descending(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {}, sort=[("f", 1)]) == [4, 5, 3, 1, 2]
    assert await ids(coll, {}, sort=[("f", -1)]) == [2, 1, 3, 4, 5]
    assert await ids(coll, {}, sort=[("flag", -1), ("id", -1)]) == [3, 1, 2, 5, 4]
    plan = await coll.explain({}, sort=[("f", 1)])
    assert plan.sort_pushed and not plan.client_sort
    plan = await coll.explain({}, sort=[("meta", 1)])
    assert plan.client_sort, "a JSON column sorts in process, in BSON order"
    assert await ids(coll, {}, sort=[("meta", 1), ("id", 1)]) == [3, 4, 5, 2, 1]


async def test_datetimes(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"ts": {"$gt": T0}}) == [2]
    other_zone = T0.astimezone(__import__("datetime").timezone(timedelta(hours=5)))
    assert await ids(coll, {"ts": other_zone}) == [1]
    doc = await coll.find_one({"id": 2})
    assert doc is not None and doc["ts"] == T0 + timedelta(days=1) and doc["ts"].tzinfo is UTC


async def test_regex_literal_pushed_and_general_in_process(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"name": {"$regex": "^a"}}) == [1]
    assert sorted(await ids(coll, {"name": {"$regex": "b"}})) == [2]
    assert sorted(await ids(coll, {"name": {"$regex": "^[a-z]+$"}})) == [1, 2]
    assert sorted(await ids(coll, {"name": {"$regex": "^A", "$options": "i"}})) == [1]
    assert await ids(coll, {"n": {"$regex": "1"}}) == [], "a regex matches strings only"
    plan = await coll.explain({"name": {"$regex": "^a"}})
    assert plan.residual is None
    plan = await coll.explain({"name": {"$regex": "^a", "$options": "i"}})
    assert plan.residual == {"name": {"$regex": "^a", "$options": "i"}}


async def test_array_operators_on_scalar_columns(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"n": {"$size": 0}}) == []
    assert await ids(coll, {"n": {"$elemMatch": {"$gt": 0}}}) == []
    assert await ids(coll, {"n": {"$all": [10]}}) == [1]
    assert await ids(coll, {"n": {"$all": []}}) == []
    assert sorted(await ids(coll, {"n": {"$mod": [4, 2]}})) == [1, 2]
    assert sorted(await ids(coll, {"n": {"$mod": [2, -1]}})) == [3]
    assert await ids(coll, {"n": {"$type": "long"}}) == [4]
    assert sorted(await ids(coll, {"n": {"$type": "int"}})) == [1, 2, 3]


async def test_json_columns_are_checked_in_process(tdb: Database) -> None:
    coll = await items(tdb)
    assert await ids(coll, {"meta.tags": "y"}) == [1]
    assert await ids(coll, {"meta.k": {"$gte": 2}}) == [2]
    assert sorted(await ids(coll, {"meta": {"$exists": True}})) == [1, 2]
    plan = await coll.explain({"meta.k": 2, "n": {"$gt": 0}})
    assert plan.exact == {"n": {"$gt": 0}}
    assert plan.residual == {"meta.k": {"$eq": 2}}


async def test_unknown_column_is_a_query_error(tdb: Database) -> None:
    coll = await items(tdb)
    with pytest.raises(asyncdb.QueryError) as err:
        await coll.find({"nope": 1}).to_list()
    assert err.value.path == "nope"
    with pytest.raises(asyncdb.QueryError):
        await coll.find({"name.first": "a"}).to_list()
    with pytest.raises(asyncdb.QueryError):
        await coll.find({}, sort=[("nope", 1)]).to_list()
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": 9, "nope": 1})


async def test_or_nor_not_with_nulls(tdb: Database) -> None:
    coll = await items(tdb)
    assert sorted(await ids(coll, {"$or": [{"f": {"$gt": 1.9}}, {"name": None}]})) == [2, 5]
    assert sorted(await ids(coll, {"$nor": [{"f": {"$gt": 0}}, {"n": {"$lt": 0}}]})) == [4, 5]
    got = sorted(await ids(coll, {"$or": [{"meta.k": 1}, {"n": -5}]}))
    assert got == [1, 3]
    plan = await coll.explain({"$or": [{"meta.k": 1}, {"n": -5}]})
    assert plan.residual is not None and plan.approximate is None


async def test_count_pages_projection_skip_limit(tdb: Database) -> None:
    coll = await items(tdb)
    assert await coll.count_documents({}) == 5
    assert await coll.count_documents({"n": {"$gt": 0}}) == 3
    assert await coll.count_documents({"meta.k": {"$gt": 0}}) == 2
    got = await coll.find({}, projection={"name": 1}, sort=[("n", -1)], skip=1, limit=2).to_list()
    assert got == [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]
    seen: list[Any] = []
    cursor = None
    while True:
        page = await coll.find_page({}, sort=[("n", 1)], limit=2, cursor=cursor)
        seen += [d["id"] for d in page.items]
        await coll.insert_one({"id": 100 + len(seen), "n": -100})  # before the position
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [5, 3, 2, 1, 4]
    with pytest.raises(asyncdb.InvalidCursor):
        await coll.find_page({}, sort=[("f", 1)], limit=2, cursor=cursor or "x.y")


async def test_updates(tdb: Database) -> None:
    coll = await items(tdb)
    res = await coll.update_one({"id": 2}, {"$inc": {"n": 3}, "$set": {"name": "bobby"}})
    assert (res.matched, res.modified) == (1, 1)
    assert await coll.find_one({"id": 2}) == {**ROWS[1], "n": 5, "name": "bobby"} | (
        {"price": (await coll.find_one({"id": 2}) or {})["price"]}
    )
    await coll.update_one({"id": 2}, {"$unset": {"meta": ""}})
    doc = await coll.find_one({"id": 2})
    assert doc is not None and "meta" not in doc
    res = await coll.update_many({"n": {"$gt": 0}}, {"$mul": {"f": 2}})
    assert res.matched == 3
    assert (await coll.find_one({"id": 1}) or {})["f"] == 3.0
    res = await coll.update_many({"n": {"$gt": 0}}, {"$max": {"small": 1}})
    assert (res.matched, res.modified) == (3, 2)
    await coll.update_one({"id": 5}, {"$currentDate": {"ts": True}})
    doc = await coll.find_one({"id": 5})
    assert doc is not None and abs(doc["ts"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert await coll.replace_one({"id": 4}, {"name": "zed", "flag": False}) is not None
    assert await coll.find_one({"id": 4}) == {"id": 4, "name": "zed", "flag": False}
    after = await coll.find_one_and_update({"id": 3}, {"$inc": {"n": 1}}, return_document="after")
    assert after is not None and after["n"] == -4
    before = await coll.find_one_and_update({"id": 3}, {"$inc": {"n": 1}}, return_document="before")
    assert before is not None and before["n"] == -4


async def test_upsert_and_set_on_insert(tdb: Database) -> None:
    coll = await items(tdb)
    res = await coll.update_one(
        {"id": 50}, {"$set": {"name": "new"}, "$setOnInsert": {"n": 1}}, upsert=True
    )
    assert res.upserted_id == 50
    assert await coll.find_one({"id": 50}) == {"id": 50, "name": "new", "n": 1}
    res = await coll.update_one(
        {"id": 50}, {"$set": {"name": "again"}, "$setOnInsert": {"n": 7}}, upsert=True
    )
    assert res.upserted_id is None
    assert await coll.find_one({"id": 50}) == {"id": 50, "name": "again", "n": 1}


@pytest.mark.parametrize(
    "update",
    [
        {"$set": {"n": "text"}},
        {"$inc": {"n": 1.5}},
        {"$set": {"small": 2**40}},
        {"$set": {"name": "x" * 41}},
        {"$set": {"flag": 1}},
        {"$push": {"name": "x"}},
        {"$set": {"nope": 1}},
        {"$set": {"meta": {"b": b"bytes"}}},
        {"$set": {"price": Decimal("1.00001")}},
        {"$set": {"name": "nul\x00"}},
    ],
)
async def test_update_a_column_cannot_hold_writes_nothing(
    tdb: Database, update: dict[str, Any]
) -> None:
    sqlite = tdb.backend.startswith("sqlite")
    fields = next(iter(update.values()))
    if sqlite and ("price" in fields or "small" in fields):
        # SQLite: a Numeric column holds doubles, an Integer column 64 bits (documented).
        pytest.skip("SQLite keeps no declared scale or integer width")
    coll = await items(tdb)
    before = await coll.find({}, sort=[("id", 1)]).to_list()
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_many({}, update)
    assert await coll.find({}, sort=[("id", 1)]).to_list() == before


async def test_insert_checks_before_any_write(tdb: Database) -> None:
    coll = await items(tdb)
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_many([{"id": 20, "n": 1}, {"id": 21, "n": "x"}])
    assert await coll.count_documents({"id": {"$in": [20, 21]}}) == 0
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_many([{"id": 22}, {"id": 1}])
    assert await coll.count_documents({"id": 22}) == 0
    assert await coll.insert_one({"id": 23, "f": 3}) == 23
    doc = await coll.find_one({"id": 23})
    assert doc == {"id": 23, "f": 3.0}, "an integer a double holds exactly is stored as a double"
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": 24, "f": 2**60 + 1})


async def test_deletes(tdb: Database) -> None:
    coll = await items(tdb)
    assert await coll.delete_one({"n": {"$gt": 0}}) == 1
    assert await coll.delete_many({"f": None}) == 2
    assert await coll.delete_many({"meta.k": 2}) == 1
    assert await ids(coll, {}) == [3]


async def test_composite_key_and_server_default(tdb: Database) -> None:
    msgs = tdb.table(MESSAGES)
    keys = await msgs.insert_many(
        [{"conversation": "c1", "seq": i, "body": f"m{i}"} for i in range(3)]
    )
    assert keys[0] == ("c1", 0)
    doc = await msgs.find_one({"conversation": "c1", "seq": 1})
    assert doc == {"conversation": "c1", "seq": 1, "body": "m1", "status": "new"}
    with pytest.raises(asyncdb.QueryError):
        await msgs.insert_one({"conversation": "c1", "seq": 9})  # body is NOT NULL
    with pytest.raises(asyncdb.UpdateError):
        await msgs.update_one({"conversation": "c1", "seq": 1}, {"$unset": {"body": ""}})
    page = await msgs.find_page({"conversation": "c1"}, sort=[("seq", -1)], limit=2)
    assert [d["seq"] for d in page.items] == [2, 1]
    with pytest.raises(asyncdb.ScanRequired):
        await msgs.find({"body": "m1"}).to_list()
    assert (await msgs.explain({"conversation": "c1", "seq": 1})).access_path == "key"
    assert await msgs.delete_many({"conversation": "c1", "seq": {"$gte": 1}}) == 2


async def test_scan_policy_uses_the_tables_indexes(tdb: Database) -> None:
    coll = tdb.table(ITEMS)
    await coll.insert_many(ROWS)
    assert await ids(coll, {"name": "ann"}) == [1]
    assert (await coll.explain({"name": "ann"})).access_path == "index:ix_items_name"
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find({"n": 2}).to_list()
    assert await ids(coll, {"n": 2}, allow_scan=True) == [2]


async def test_table_transaction_commits_and_rolls_back(tdb: Database) -> None:
    coll = await items(tdb)
    async with tdb.transaction() as tx:
        t = tx.table(ITEMS, allow_scan=True)
        await t.update_one({"id": 1}, {"$inc": {"n": -1}})
        await t.update_one({"id": 2}, {"$inc": {"n": 1}})
    assert [
        d["n"] for d in await coll.find({"id": {"$in": [1, 2]}}, sort=[("id", 1)]).to_list()
    ] == [9, 3]
    with pytest.raises(RuntimeError):
        async with tdb.transaction() as tx:
            await tx.table(ITEMS).insert_one({"id": 60})
            assert await tx.table(ITEMS).find_one({"id": 60}) == {"id": 60}
            raise RuntimeError("abort")
    assert await coll.find_one({"id": 60}) is None
    with pytest.raises(asyncdb.NotSupported):
        async with tdb.transaction() as tx:
            tx.collection("docs")


async def test_table_on_a_document_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    await create_schema(url)
    async with asyncdb.connect(url) as db:
        coll = db.table(ITEMS, allow_scan=True)
        await coll.insert_many(ROWS)
        assert await ids(coll, {"n": {"$gt": 5}}) == [1, 4]
        alerts = db.collection("alerts")
        await alerts.insert_one({"id": "a"})
        async with db.transaction() as tx:
            with pytest.raises(asyncdb.NotSupported):
                tx.table(ITEMS)
    async with asyncdb.connect("memory://") as mem:
        with pytest.raises(asyncdb.NotSupported):
            mem.table(ITEMS)


async def test_table_mode_creates_nothing(table_url: str) -> None:
    async with asyncdb.connect(table_url, tables_only=True) as db:
        coll = db.table(ITEMS, allow_scan=True)
        with pytest.raises(asyncdb.BackendError):
            await coll.find({}).to_list()
        with pytest.raises(asyncdb.NotSupported):
            db.collection("docs")
        with pytest.raises(asyncdb.ConfigurationError):
            db.table("items")  # type: ignore[arg-type]
    unused = sa.MetaData()
    del unused


async def test_arithmetic_overflow_is_an_update_error(tdb: Database) -> None:
    coll = await items(tdb)
    await coll.update_one({"id": 5}, {"$set": {"n": 2**63 - 1, "small": 2**31 - 1}})
    for update in ({"$inc": {"n": 1}}, {"$mul": {"n": 2}}, {"$inc": {"small": 1}}):
        if "small" in update["$inc" if "$inc" in update else "$mul"] and tdb.backend.startswith(
            "sqlite"
        ):
            continue  # SQLite integers are 64-bit whatever the declared width (documented)
        with pytest.raises(asyncdb.UpdateError):
            await coll.update_many({"id": {"$gte": 4}}, update)
    doc = await coll.find_one({"id": 5})
    assert doc == {"id": 5, "n": 2**63 - 1, "small": 2**31 - 1}
    assert (await coll.find_one({"id": 4}) or {})["n"] == 2**40, "nothing was written"


async def test_update_many_counts_matched_and_modified(tdb: Database) -> None:
    coll = await items(tdb)
    res = await coll.update_many({"n": {"$gte": 2}}, {"$set": {"name": "bob"}})
    assert (res.matched, res.modified) == (3, 2)
    res = await coll.update_many({"n": {"$gte": 2}}, {"$unset": {"flag": ""}})
    assert (res.matched, res.modified) == (3, 2)
    res = await coll.update_many({"f": {"$gt": 100}}, {"$set": {"name": "x"}})
    assert (res.matched, res.modified) == (0, 0)
    res = await coll.update_one({"id": 77}, {"$set": {"name": "up"}}, upsert=True)
    assert res.upserted_id == 77


async def test_concurrent_read_modify_writes_lose_nothing(tdb: Database) -> None:
    """$push into a JSON column is a read-modify-write: its rows are locked (PostgreSQL) or
    its transaction serialized (SQLite), so concurrent updates all land."""
    coll = await items(tdb)
    await coll.update_one({"id": 5}, {"$set": {"meta": []}})

    async def push(i: int) -> None:
        for attempt in range(50):
            try:
                await coll.update_one({"id": 5}, {"$push": {"meta": i}})
                return
            except asyncdb.TransactionError:  # SQLite: a writer found the database locked
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("never committed")

    await asyncio.gather(*(push(i) for i in range(10)))
    doc = await coll.find_one({"id": 5})
    assert doc is not None and sorted(doc["meta"]) == list(range(10))


async def test_bulk_write_by_key_gives_what_the_single_calls_give(tdb: Database) -> None:
    # updates and deletes by key take bulk_write's shape-cached parse: the same answers and
    # errors as the single calls on a table
    items = tdb.table(ITEMS, allow_scan=True)
    await items.insert_many([{"id": i, "name": f"n{i}", "n": i} for i in range(1, 5)])
    result = await items.bulk_write(
        [
            asyncdb.UpdateOne({"id": 1}, {"$set": {"name": "one"}}),
            asyncdb.UpdateOne({"id": 2}, {"$inc": {"n": 40}}),
            asyncdb.UpdateOne({"id": 3}, {"$set": {"name": "n3"}}),  # already so
            asyncdb.DeleteOne({"id": 4}),
            asyncdb.UpdateOne({"id": 9}, {"$set": {"name": "none"}}),
        ]
    )
    assert result == asyncdb.BulkWriteResult(matched_count=3, modified_count=2, deleted_count=1)
    assert await items.find({}, sort=[("id", 1)]).to_list() == [
        {"id": 1, "name": "one", "n": 1},
        {"id": 2, "name": "n2", "n": 42},
        {"id": 3, "name": "n3", "n": 3},
    ]
    with pytest.raises(asyncdb.QueryError, match="bulk_write operation 1"):
        await items.bulk_write(
            [
                asyncdb.DeleteOne({"id": 1}),
                asyncdb.UpdateOne({"id": 2}, {"$set": {"name": "\ud800"}}),
            ]
        )
    assert await items.count_documents({}) == 3  # refused before any I/O
