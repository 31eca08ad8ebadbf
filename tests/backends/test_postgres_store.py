"""PostgreSQL store behaviour on a real server: the pushed-down ``$regex`` (``like_regex``)
selects exactly what Python ``re`` selects on the strings where the two engines could differ;
sorts, keyset pages and unique indexes on the sort-key columns follow BSON order and equality;
``explain(server_plan=True)`` shows the server's plan."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

import asyncdb
from asyncdb.query import apply_projection, parse_projection, parse_sort, sort_documents

SUBJECTS = [
    "abc",
    "c\nx",
    "x\nab",
    "abc\n",
    "ab\nc",
    "a\nbc",
    "\nabc",
    "ABC",
    "aab",
    "ab",
    "x_ y",
    "é\n",
    "éa",
    "",
    "\u212ait",
    "\u017fI\u0131",
    "SKİ",
    "Ab",
]

PATTERNS = [
    ("^abc$", ""),
    ("c$", ""),
    ("b.c", ""),
    ("b.c", "s"),
    ("^a.", ""),
    ("a{2,3}b", ""),
    ("^[a-c]+$", ""),
    ("[^a-z]", ""),
    ("[^a-z]", "s"),
    ("^é.$", ""),
    ("_ y$", ""),
    ("", ""),
    ("^$", ""),
    ("^ab", "i"),
    ("kit", "i"),
    ("^s+i", "i"),
    ("sk.$", "is"),
    ("^ab", ""),
    ("^ab", "s"),
    ("c$", "s"),
]


@pytest.mark.parametrize(("pattern", "flags"), PATTERNS)
async def test_pushed_regex_matches_what_python_re_matches(
    postgres_url: str, pattern: str, flags: str
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("rx", allow_scan=True)
        await items.insert_many([{"id": i, "s": s} for i, s in enumerate(SUBJECTS)])
        await items.insert_one({"id": 100, "s": ["zz", "abc"]})
        await items.insert_one({"id": 101, "s": [["abc"]]})
        flt = {"s": {"$regex": pattern, "$options": flags}}
        plan = await items.explain(flt)
        assert plan.residual is None, plan
        got = sorted(d["id"] for d in await items.find(flt).to_list())
        bits = (re.S if "s" in flags else 0) | (re.I if "i" in flags else 0)
        want = [i for i, s in enumerate(SUBJECTS) if re.search(pattern, s, bits)]
        if re.search(pattern, "abc", bits) or re.search(pattern, "zz", bits):
            want.append(100)
        assert got == want, (pattern, flags)


# --- sort-key columns: ORDER BY, keyset pages and unique indexes in BSON order -----------------

MIXED = [
    {"id": "a", "n": 3},
    {"id": "b", "n": "3"},
    {"id": "c", "n": [5, 1]},
    {"id": "d"},
    {"id": "e", "n": None},
    {"id": "f", "n": []},
    {"id": "g", "n": 2.5},
    {"id": "h", "n": True},
    {"id": "i", "n": {"x": 1}},
    {"id": "j", "n": Decimal("2.50")},
    {"id": "k", "n": datetime(2024, 1, 1, tzinfo=UTC)},
    {"id": "l", "n": b"\x01"},
    {"id": "m", "n": -0.0},
]


def reference_ids(docs: list[dict[str, Any]], sort: list[tuple[str, int]]) -> list[str]:
    return [d["id"] for d in sort_documents(docs, parse_sort(sort))]


@pytest.mark.parametrize("direction", [1, -1])
async def test_a_sort_on_an_indexed_field_is_pushed_and_gives_bson_order(
    postgres_url: str, direction: int
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("mixed", indexes=["n"], allow_scan=True)
        await items.insert_many(MIXED)
        sort = [("n", direction), ("id", 1)]
        plan = await items.explain({}, sort=sort, limit=20)
        assert plan.sort_pushed and plan.limit_pushed and not plan.client_sort
        got = [d["id"] for d in await items.find({}, sort=sort, limit=20).to_list()]
        assert got == reference_ids(MIXED, sort)
        # keyset pages resume inside runs of equal values (3 == 3.0, 2.5 == Decimal("2.50"))
        paged: list[str] = []
        cursor = None
        while True:
            page = await items.find_page({}, sort=[("n", direction)], limit=2, cursor=cursor)
            paged += [d["id"] for d in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert paged == reference_ids(MIXED, [("n", direction), ("id", 1)])


async def test_pages_sorted_descending_on_the_key_resume_in_sql(postgres_url: str) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("pages", indexes=["g"])
        docs = [{"id": f"k{i:02d}", "g": i % 3} for i in range(20)]
        await items.insert_many(docs)
        sort = [("g", 1), ("id", -1)]
        first = await items.find_page({"g": {"$gte": 0}}, sort=sort, limit=7)
        plan = await items.explain({"g": {"$gte": 0}}, sort=sort)
        assert plan.sort_pushed
        rest = await items.find_page(
            {"g": {"$gte": 0}}, sort=sort, limit=50, cursor=first.next_cursor
        )
        got = [d["id"] for d in [*first.items, *rest.items]]
        assert got == reference_ids(docs, sort)


async def test_an_index_declared_later_fills_the_sort_keys_of_existing_documents(
    postgres_url: str,
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        await db.collection("later", allow_scan=True).insert_many(MIXED)
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("later", indexes=["n"], allow_scan=True)
        assert (await items.explain({}, sort=[("n", -1)])).sort_pushed
        got = [d["id"] for d in await items.find({}, sort=[("n", -1)]).to_list()]
        assert got == reference_ids(MIXED, [("n", -1), ("id", 1)])
        # documents written from now on get their sort keys as they are written
        await items.update_one({"id": "a"}, {"$set": {"n": 100}})
        await items.insert_one({"id": "z", "n": -1})
        docs = await items.find({}, sort=[("id", 1)]).to_list()
        got = [d["id"] for d in await items.find({}, sort=[("n", 1)]).to_list()]
        assert got == reference_ids(docs, [("n", 1), ("id", 1)])


async def test_a_unique_index_uses_bson_equality_and_a_failed_write_changes_nothing(
    postgres_url: str,
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        users = db.collection("users", indexes=[{"fields": ["n"], "unique": True}], allow_scan=True)
        await users.insert_many([{"id": "a", "n": 1}, {"id": "b", "n": True}, {"id": "c"}])
        for clash in (
            {"id": "x", "n": 1.0},
            {"id": "x", "n": Decimal("1.00")},
            {"id": "x", "n": None},
        ):
            with pytest.raises(asyncdb.DuplicateKey):
                await users.insert_one(clash)  # 1 == 1.0 == 1.00; null == missing
        await users.insert_one({"id": "d", "n": "1"})  # "1" is not 1
        before = await users.find({}, sort=[("id", 1)]).to_list()
        with pytest.raises(asyncdb.DuplicateKey):
            await users.update_many({"id": {"$in": ["b", "d"]}}, {"$set": {"n": 7}})
        with pytest.raises(asyncdb.DuplicateKey):
            await users.insert_many([{"id": f"y{i}", "n": 10 + i % 2} for i in range(100)])  # COPY
        assert await users.find({}, sort=[("id", 1)]).to_list() == before


async def test_explain_shows_the_servers_plan_and_analyze_runs_it(postgres_url: str) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("big", indexes=["n"])
        await items.insert_many([{"id": i, "n": i % 500} for i in range(5000)])
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute('ANALYZE "big"')
        finally:
            await conn.close()
        plan = await items.explain({}, sort=[("n", -1)], limit=5, server_plan=True)
        text = "\n".join(plan.server_plan or ())
        assert "big:ix_n" in text and "Sort" not in text.split("Index")[0], text
        assert "server plan:" in str(plan)
        analyzed = await items.explain({"n": 7}, analyze=True)
        assert analyzed.server_plan is not None
        assert any("actual time" in line for line in analyzed.server_plan)


async def test_a_projection_done_in_sql_returns_exactly_what_the_stored_document_holds(
    postgres_url: str,
) -> None:
    docs = [
        {
            "id": "a",
            "z": -0.0,
            "n": {"y": 1.0, "x": [Decimal("1.50"), b"\x00"]},
            "t": datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
            "big": "x" * 1000,
            "s": 'é\n"',
        },
        {"id": "b", "n": 2, "s": None},
        {"id": "c"},
    ]
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("proj", indexes=["s"], allow_scan=True)
        await items.insert_many(docs)
        for projection in ({"n.x": 1, "z": 1}, {"big": 0}, {"t": 1, "id": 0}, {"n.y": 0}):
            plan = await items.explain({}, sort=[("id", 1)], projection=projection)
            pushed = "json_each" in plan.native["sql"]
            assert pushed == (projection != {"n.y": 0}), plan
            proj = parse_projection(projection)
            want = [apply_projection(proj, d, ("id",)) for d in docs]
            got = await items.find({}, projection, sort=[("id", 1)]).to_list()
            assert got == want and [list(d) for d in got] == [list(d) for d in want]
            assert repr(got) == repr(want)  # -0.0, 1.0 and Decimal("1.50") as stored
        # a residual reads a field the projection leaves out: it still comes back to be checked
        flt = {"n.x.0": Decimal("1.5")}
        assert (await items.explain(flt, projection={"z": 1})).residual is not None
        assert await items.find(flt, {"z": 1}).to_list() == [{"id": "a", "z": -0.0}]
        assert await items.find_one({"id": "b"}, {"s": 1}) == {"id": "b", "s": None}


# --- updates as one statement ------------------------------------------------------------------


async def test_a_plain_set_or_unset_is_one_statement_that_keeps_the_stored_text_exact(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncdb.backends.postgres.store import PostgresCollection

    async def no_read_modify_write(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the update took the read-modify-write path")

    docs = [
        {"id": "a", "z": -0.0, "s": "x", "d": Decimal("1.50"), "n": {"f": 1.0}, "k": 1},
        {"id": "b", "s": "y", "k": 2},
        {"id": "c", "s": "x", "k": 3},
    ]
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("upd", indexes=["k"], allow_scan=True)
        await items.insert_many(docs)
        monkeypatch.setattr(PostgresCollection, "replace_docs", no_read_modify_write)
        res = await items.update_one({"id": "a"}, {"$set": {"s": "w", "new": None, "b": True}})
        assert (res.matched_count, res.modified_count) == (1, 1)
        got = await items.find_one({"id": "a"})
        want = {
            "id": "a", "z": -0.0, "s": "w", "d": Decimal("1.50"), "n": {"f": 1.0}, "k": 1,
            "new": None, "b": True,
        }  # fmt: skip
        assert repr(got) == repr(want)  # place, order and every untouched value exact
        # setting what is there already, or unsetting what is not, matches but changes nothing
        same = await items.update_many({"s": "x"}, {"$set": {"s": "x"}, "$unset": {"gone": ""}})
        assert (same.matched_count, same.modified_count) == (1, 0)
        res = await items.update_many({"k": {"$gte": 2}}, {"$unset": {"s": ""}, "$set": {"t": 7}})
        assert (res.matched_count, res.modified_count) == (2, 2)
        assert await items.find({"k": {"$gte": 2}}, sort=[("k", 1)]).to_list() == [
            {"id": "b", "k": 2, "t": 7},
            {"id": "c", "k": 3, "t": 7},
        ]
        one = await items.update_one({"t": 7}, {"$set": {"u": 1}})
        assert (one.matched_count, one.modified_count) == (1, 1)
        assert await items.count_documents({"u": 1}) == 1
        # in a transaction too, and its rollback undoes it
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.collection("upd").update_one({"id": "b"}, {"$set": {"s": "tx"}})
                assert (await tx.collection("upd").find_one({"id": "b"}) or {}).get("s") == "tx"
                raise RuntimeError("roll back")
        assert "s" not in (await items.find_one({"id": "b"}) or {})
        # concurrent writers of different fields of one document lose nothing
        await asyncio.gather(
            *(items.update_one({"id": "c"}, {"$set": {f"f{i}": i}}) for i in range(20))
        )
        doc = await items.find_one({"id": "c"})
        assert doc is not None and all(doc[f"f{i}"] == i for i in range(20))
    monkeypatch.undo()


async def test_updates_the_single_statement_cannot_express_keep_the_general_path(
    postgres_url: str,
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("upd2", indexes=["k"], allow_scan=True)
        await items.insert_many([{"id": "a", "k": 1, "f": 1.5, "s": "x"}])
        for flt, update, want in (
            ({"id": "a"}, {"$inc": {"f": 1}}, {"f": 2.5}),  # float arithmetic in Python
            ({"id": "a"}, {"$set": {"k": 5}}, {"k": 5}),  # an indexed field: its sort keys
            ({"id": "a"}, {"$set": {"m.n": 1}}, {"m": {"n": 1}}),  # a dotted path
            ({"id": "a"}, {"$set": {"f": 0.5}}, {"f": 0.5}),  # a float
            ({"s": {"$regex": "x", "$options": "m"}}, {"$set": {"s": "y"}}, {"s": "y"}),
        ):
            res = await items.update_one(flt, update)
            assert res.modified_count == 1, update
            doc = await items.find_one({"id": "a"})
            assert doc is not None and all(doc[k] == v for k, v in want.items()), update
        assert [d["id"] for d in await items.find({}, sort=[("k", -1)]).to_list()] == ["a"]


async def test_a_copy_stopped_by_a_bad_or_duplicate_document_inserts_nothing(
    postgres_url: str,
) -> None:
    # COPY encodes rows while it sends them: a document refused by that encoding (U+0000,
    # which jsonb cannot hold) or a duplicate key stops it part-way, and nothing stays.
    async with asyncdb.connect(f"{postgres_url}?max_size=1") as db:
        items = db.collection("items", allow_scan=True)
        await items.insert_one({"id": "k0050", "n": -1})
        batch = [{"id": f"k{i:04d}", "n": i} for i in range(3000)]
        bad = [*batch[:2900], {"id": "bad", "s": "a\x00b"}, *batch[2900:]]
        with pytest.raises(asyncdb.QueryError, match="U\\+0000"):
            await items.insert_many(bad)
        with pytest.raises(asyncdb.DuplicateKey):
            await items.insert_many(batch)
        assert await items.find({}).to_list() == [{"id": "k0050", "n": -1}]
        await items.delete_one({"id": "k0050"})
        await items.insert_many(batch)  # the same connection, usable after both
        assert await items.count_documents({}) == 3000
        assert await items.find_one({"id": "k2999"}) == {"id": "k2999", "n": 2999}
