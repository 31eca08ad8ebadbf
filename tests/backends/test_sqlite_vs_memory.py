"""SQLite against the reference (memory://) on tricky documents, through the public API.

The values are the ones SQL gets wrong when it is careless: missing fields and nulls, arrays
(nested, empty, of documents), numbers of mixed types (1 == 1.0, true != 1, Decimals), strings
that look like numbers or like our own date tags, bytes, dates, field names that need quoting.
Each example runs the same filters, sorts and pages on both backends and compares the results.
A store-level part checks what only SQLite has: index use in EXPLAIN QUERY PLAN, the date text
order the planner relies on, transactions, WAL readers and unique indexes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.backends.sqlite.codec import decode_doc, encode_doc, iso_date
from asyncdb.backends.sqlite.store import SQLiteCollection

D1 = datetime(2024, 1, 1, tzinfo=UTC)
D2 = datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
D3 = datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)

SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    2**53 + 1,
    -(2**63),
    0.5,
    1.0,
    -0.0,
    2.5,
    1e16,
    Decimal("1"),
    Decimal("1.5"),
    Decimal("0.1"),
    Decimal("-2"),
    "",
    "a",
    "b",
    "A",
    "é",
    "1",
    "true",
    "[1]",
    '{"$date":"2024-01-01T00:00:00.000Z"}',
    b"",
    b"a",
    b"ab",
    D1,
    D2,
    D3,
]
FIELDS = ["a", "b", "c d"]
PATHS = ["a", "b", "a.x", "a.y", "b.x.y", "c d", "a.x.y"]

scalar = st.sampled_from(SCALARS)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=6,
)
document = st.dictionaries(st.sampled_from(FIELDS), value, max_size=3)
small = st.one_of(scalar, st.lists(scalar, max_size=2), st.fixed_dictionaries({"x": scalar}))


def _field_condition() -> st.SearchStrategy[Any]:
    ops = st.one_of(
        small,
        st.builds(lambda v: {"$eq": v}, small),
        st.builds(lambda v: {"$ne": v}, small),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), small),
        st.builds(lambda vs: {"$in": vs}, st.lists(small, max_size=3)),
        st.builds(lambda vs: {"$nin": vs}, st.lists(small, max_size=3)),
        st.builds(lambda b: {"$exists": b}, st.booleans()),
        st.builds(
            lambda t: {"$type": t},
            st.sampled_from(
                [
                    "double",
                    "string",
                    "object",
                    "array",
                    "binData",
                    "bool",
                    "date",
                    "null",
                    "int",
                    "long",
                    "decimal",
                    "number",
                ]
            ),
        ),
        st.builds(lambda p: {"$regex": p}, st.sampled_from(["^a", "A", "^$", "1", "é"])),
        st.builds(lambda p: {"$regex": p, "$options": "i"}, st.sampled_from(["^a", "B"])),
        st.builds(lambda vs: {"$all": vs}, st.lists(small, min_size=1, max_size=2)),
        st.builds(lambda n: {"$size": n}, st.integers(0, 3)),
        st.builds(lambda d, r: {"$mod": [d, r]}, st.sampled_from([2, 3, -2]), st.integers(-1, 1)),
        st.builds(
            lambda c: {"$elemMatch": c},
            st.one_of(
                st.builds(lambda v: {"$gte": v}, scalar),
                st.builds(lambda v: {"$ne": v}, scalar),
                st.builds(lambda v: {"x": v}, scalar),
                st.builds(lambda v: {"x": {"$ne": v}}, scalar),
                st.builds(lambda v: {"x": {"$exists": v}}, st.booleans()),
            ),
        ),
        st.builds(lambda v: {"$not": {"$gt": v}}, scalar),
    )
    return ops


condition = st.fixed_dictionaries({}, optional={p: _field_condition() for p in PATHS})
filters = st.recursive(
    condition,
    lambda inner: st.builds(
        lambda op, subs: {op: subs},
        st.sampled_from(["$and", "$or", "$nor"]),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=4,
)
sorts = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from([1, -1])),
    max_size=2,
    unique_by=lambda s: s[0],
)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


@pytest.fixture(scope="module", params=["file", "memory"])
def pair(
    request: pytest.FixtureRequest, runner: asyncio.Runner, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[asyncdb.Database, asyncdb.Database]]:
    url = (
        f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'diff.db'}"
        if request.param == "file"
        else "sqlite:///:memory:"
    )

    async def both() -> tuple[asyncdb.Database, asyncdb.Database]:
        return await asyncdb.connect(url), await asyncdb.connect("memory://")

    sqlite_db, memory_db = runner.run(both())
    yield sqlite_db, memory_db
    runner.run(sqlite_db.close())
    runner.run(memory_db.close())


def _with_ids(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": f"d{i:02d}", **d} for i, d in enumerate(docs)]


async def _load(db: asyncdb.Database, docs: list[dict[str, Any]]) -> asyncdb.Collection:
    coll = db.collection("t", indexes=["a", "a.x", "b"], allow_scan=True)
    await coll.delete_many({})
    await coll.insert_many(docs)
    return coll


# ASYNCDB_SQLITE_DIFF_EXAMPLES=5000 explores new random examples (the default run is fixed).
_EXPLORE = int(os.environ.get("ASYNCDB_SQLITE_DIFF_EXAMPLES", "0"))
DIFF_SETTINGS = settings(
    max_examples=_EXPLORE or 150,
    deadline=None,
    derandomize=not _EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@DIFF_SETTINGS
@given(docs=st.lists(document, max_size=12), flts=st.lists(filters, min_size=1, max_size=4))
def test_filters_match_the_reference(
    runner: asyncio.Runner,
    pair: tuple[asyncdb.Database, asyncdb.Database],
    docs: list[dict[str, Any]],
    flts: list[dict[str, Any]],
) -> None:
    sqlite_db, memory_db = pair

    async def check() -> None:
        rows = _with_ids(docs)
        lite, mem = await _load(sqlite_db, rows), await _load(memory_db, rows)
        assert await lite.find({}, sort=[("id", 1)]).to_list() == rows  # round trip
        for flt in flts:
            want = sorted(d["id"] for d in await mem.find(flt).to_list())
            got = sorted(d["id"] for d in await lite.find(flt).to_list())
            assert got == want, (flt, await lite.explain(flt))
            assert await lite.count_documents(flt) == len(want), flt

    runner.run(check())


@DIFF_SETTINGS
@given(docs=st.lists(document, max_size=12), flt=filters, sort=sorts, page=st.integers(1, 4))
def test_sorts_and_pages_match_the_reference(
    runner: asyncio.Runner,
    pair: tuple[asyncdb.Database, asyncdb.Database],
    docs: list[dict[str, Any]],
    flt: dict[str, Any],
    sort: list[tuple[str, int]],
    page: int,
) -> None:
    sqlite_db, memory_db = pair
    sort = sort or [("id", -1)]  # without a sort the order is unspecified

    async def check() -> None:
        rows = _with_ids(docs)
        lite, mem = await _load(sqlite_db, rows), await _load(memory_db, rows)
        want = [d["id"] for d in await mem.find(flt, sort=sort or None).to_list()]
        got = [d["id"] for d in await lite.find(flt, sort=sort or None).to_list()]
        assert got == want, (flt, sort)
        skipped = [
            d["id"] for d in await lite.find(flt, sort=sort or None, skip=1, limit=2).to_list()
        ]
        assert skipped == want[1:3]
        paged: list[str] = []
        cursor = None
        while True:
            p = await lite.find_page(flt, sort=sort or None, limit=page, cursor=cursor)
            paged += [d["id"] for d in p.items]
            cursor = p.next_cursor
            if cursor is None:
                break
        assert paged == want, (flt, sort)

    runner.run(check())


@DIFF_SETTINGS
@given(docs=st.lists(document, min_size=1, max_size=8), flt=filters)
def test_updates_and_deletes_match_the_reference(
    runner: asyncio.Runner,
    pair: tuple[asyncdb.Database, asyncdb.Database],
    docs: list[dict[str, Any]],
    flt: dict[str, Any],
) -> None:
    sqlite_db, memory_db = pair

    async def check() -> None:
        rows = _with_ids(docs)
        lite, mem = await _load(sqlite_db, rows), await _load(memory_db, rows)
        update = {"$set": {"touched": Decimal("2.5")}, "$inc": {"n": 1}}
        assert (await lite.update_many(flt, update)).matched == (
            await mem.update_many(flt, update)
        ).matched
        assert await lite.delete_many({"touched": {"$exists": False}, **flt}) == (
            await mem.delete_many({"touched": {"$exists": False}, **flt})
        )
        want = await mem.find({}, sort=[("id", 1)]).to_list()
        assert await lite.find({}, sort=[("id", 1)]).to_list() == want

    runner.run(check())


# --- the codec -------------------------------------------------------------------------------


@given(doc=st.dictionaries(st.sampled_from(["a", "b", "é", "x y"]), value, max_size=4))
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_documents_round_trip_through_the_codec(doc: dict[str, Any]) -> None:
    text, flags = encode_doc(doc)
    back = decode_doc(text, flags)
    assert back == doc
    assert [type(v) for v in back.values()] == [type(v) for v in doc.values()]


def test_date_text_sorts_like_the_instant() -> None:
    moments = [datetime(1, 1, 1, tzinfo=UTC), D2, D1, D3, datetime(9999, 12, 31, tzinfo=UTC)]
    texts = [iso_date(m) for m in moments]
    assert texts == sorted(texts)
    assert len({len(t) for t in texts}) == 1


def test_sqlite_renders_date_tags_as_we_store_them() -> None:
    # The date range and equality pushdown compares json_extract's text with ours.
    text, _ = encode_doc({"a": {"d": D3, "b": b"\x00\xff", "n": Decimal("1.50")}})
    conn = sqlite3.connect(":memory:")
    for key, tag in (("d", '{"$date":"2024-01-01T00:00:00.001Z"}'), ("b", '{"$binary":"AP8="}')):
        (got,) = conn.execute("SELECT json_extract(?, ?)", (text, f"$.a.{key}")).fetchone()
        assert got == tag


# --- store behaviour ---------------------------------------------------------------------------


def test_indexed_queries_use_the_expression_indexes(tmp_path: Path) -> None:
    async def main() -> None:
        async with asyncdb.connect(f"sqlite:///{tmp_path / 'eqp.db'}") as db:
            coll = db.collection("alerts", indexes=["status", "meta.region", "priority"], ttl="exp")
            await coll.insert_many(
                [{"id": f"a{i}", "status": "open", "priority": i} for i in range(50)]
            )
            store = coll._store
            assert isinstance(store, SQLiteCollection)
            cases = {
                "status": ({"status": "open"}, "ix_status"),
                "range": ({"priority": {"$gt": 5}}, "ix_priority"),
                "in": ({"status": {"$in": ["open", "closed"]}}, "ix_status"),
                "nested": ({"meta.region": "eu"}, "ix_meta_region"),
                "null": ({"status": None}, "type:status"),
            }
            for name, (flt, index) in cases.items():
                plan = await coll.explain(flt)
                details = await store.query_plan(plan)
                assert any(index in d for d in details), (name, details)
                assert not any(d.startswith("SCAN alerts") for d in details), (name, details)
            point = await store.query_plan(await coll.explain({"id": "a1"}))
            assert any("sqlite_autoindex_alerts_1" in d or "PRIMARY KEY" in d for d in point)
            # the same through the public API, and no EXPLAIN ANALYZE in SQLite
            shown = await coll.explain({"status": "open"}, server_plan=True)
            assert shown.server_plan and any("ix_status" in d for d in shown.server_plan)
            with pytest.raises(asyncdb.NotSupported):
                await coll.explain({"status": "open"}, analyze=True)
            assert await coll.count_documents({"priority": {"$gte": 45}}) == 5

    asyncio.run(main())


def test_unique_index_raises_duplicate_key_with_bson_equality(tmp_path: Path) -> None:
    async def main() -> None:
        async with asyncdb.connect(f"sqlite:///{tmp_path / 'u.db'}") as db:
            users = db.collection("users", indexes=[{"fields": ["email"], "unique": True}])
            await users.insert_one({"id": "u1", "email": "a@x", "n": 1})
            with pytest.raises(asyncdb.DuplicateKey):
                await users.insert_one({"id": "u2", "email": "a@x"})
            with pytest.raises(asyncdb.DuplicateKey):
                await users.insert_many([{"id": "u3", "email": 1}, {"id": "u4", "email": 1.0}])
            assert await users.count_documents({"id": {"$in": ["u2", "u3", "u4"]}}) == 0
            await users.insert_many([{"id": "u5", "email": True}, {"id": "u6", "email": 1}])
            with pytest.raises(asyncdb.DuplicateKey):
                await users.update_one({"id": "u6"}, {"$set": {"email": "a@x"}})
            assert (await users.find_one({"id": "u6"}) or {})["email"] == 1

    asyncio.run(main())


def test_first_use_inside_a_rolled_back_transaction_keeps_the_table(tmp_path: Path) -> None:
    async def main() -> None:
        async with asyncdb.connect(f"sqlite:///{tmp_path / 'tx.db'}") as db:
            with pytest.raises(RuntimeError):
                async with db.transaction() as tx:
                    await tx.collection("fresh").insert_one({"id": "x"})
                    raise RuntimeError
            assert await db.collection("fresh").count_documents({}, allow_scan=True) == 0
            async with db.transaction() as tx:
                c = tx.collection("fresh")
                await c.insert_one({"id": "y"})
                with pytest.raises(asyncdb.DuplicateKey):
                    await c.insert_many([{"id": "z"}, {"id": "y"}])
            assert [d["id"] async for d in db.collection("fresh").find({}, allow_scan=True)] == [
                "y"
            ]

    asyncio.run(main())


def test_readers_see_only_committed_writes_and_streams_do_not_block_them(tmp_path: Path) -> None:
    async def main() -> None:
        async with asyncdb.connect(f"sqlite:///{tmp_path / 'wal.db'}?batch_size=8") as db:
            coll = db.collection("c", allow_scan=True)
            await coll.insert_many([{"id": f"k{i:03d}"} for i in range(100)])
            stream = coll.find({}).__aiter__()
            await stream.__anext__()  # a stream holds its reader (and snapshot) open
            started = asyncio.Event()
            release = asyncio.Event()

            async def writer() -> None:
                async with db.transaction() as tx:
                    await tx.collection("c").insert_one({"id": "new"})
                    started.set()
                    await release.wait()

            task = asyncio.create_task(writer())
            await started.wait()
            assert await coll.find_one({"id": "new"}) is None  # uncommitted: invisible
            release.set()
            await task
            assert await coll.find_one({"id": "new"}) == {"id": "new"}  # committed: visible
            rest = [d async for d in stream]
            assert len(rest) == 99
            await stream.aclose()

    asyncio.run(main())


def test_memory_database_reads_wait_for_open_transactions() -> None:
    async def main() -> None:
        async with asyncdb.connect("sqlite:///:memory:") as db:
            coll = db.collection("c", allow_scan=True)
            await coll.insert_one({"id": "a"})
            inside = asyncio.Event()

            async def writer() -> None:
                with pytest.raises(RuntimeError):
                    async with db.transaction() as tx:
                        await tx.collection("c").insert_one({"id": "b"})
                        inside.set()
                        await asyncio.sleep(0.05)
                        raise RuntimeError

            task = asyncio.create_task(writer())
            await inside.wait()
            assert await coll.count_documents({}) == 1
            await task

    asyncio.run(main())


def test_cancelled_transaction_rolls_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with asyncdb.connect(f"sqlite:///{tmp_path / 'cancel.db'}") as db:
            coll = db.collection("c", allow_scan=True)
            await coll.insert_one({"id": "a", "n": 0})
            entered = asyncio.Event()

            async def work() -> None:
                async with db.transaction() as tx:
                    await tx.collection("c").update_one({"id": "a"}, {"$inc": {"n": 1}})
                    entered.set()
                    await asyncio.sleep(10)

            task = asyncio.create_task(work())
            await entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await coll.find_one({"id": "a"}) or {})["n"] == 0
            await coll.update_one({"id": "a"}, {"$inc": {"n": 5}})  # the writer is usable again
            assert (await coll.find_one({"id": "a"}) or {})["n"] == 5

    asyncio.run(main())


def test_ttl_hides_and_purges_expired_documents(tmp_path: Path) -> None:
    async def main() -> None:
        async with asyncdb.connect(f"sqlite:///{tmp_path / 'ttl.db'}") as db:
            coll = db.collection("s", ttl="exp", allow_scan=True)
            now = datetime.now(UTC)
            await coll.insert_many(
                [
                    {"id": "old", "exp": now - timedelta(seconds=5)},
                    {"id": "new", "exp": now + timedelta(hours=1)},
                    {"id": "never"},
                ]
            )
            plan = await coll.explain({})
            assert plan.residual is None
            assert sorted([d["id"] async for d in coll.find({})]) == ["never", "new"]
            assert await coll.purge_expired() == 1

    asyncio.run(main())


def test_connection_options_and_bad_urls(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(asyncdb.ConfigurationError):
            await asyncdb.connect("sqlite://host/x.db")
        with pytest.raises(asyncdb.ConfigurationError):
            await asyncdb.connect(f"sqlite:///{tmp_path / 'o.db'}?bogus=1")
        db = await asyncdb.connect(f"sqlite:///{tmp_path / 'o.db'}", busy_timeout=100, readers=1)
        await db.close()

    asyncio.run(main())


def test_a_store_without_its_own_plans_says_so_when_asked() -> None:
    async def main() -> None:
        async with asyncdb.connect("memory://") as db:
            coll = db.collection("c")
            assert (await coll.explain({"a": 1})).server_plan is None
            with pytest.raises(asyncdb.NotSupported):
                await coll.explain({"a": 1}, server_plan=True)

    asyncio.run(main())
