"""DESIGN §1: ``find_page`` keyset pagination with opaque, signed cursors."""

from __future__ import annotations

from typing import Any

import pytest

import asyncdb

from .support import assert_same


async def pages_of(
    coll: asyncdb.Collection, flt: dict[str, Any], sort: Any, limit: int
) -> list[list[str]]:
    out: list[list[str]] = []
    cursor = None
    while True:
        page = await coll.find_page(flt, sort=sort, limit=limit, cursor=cursor)
        assert isinstance(page, asyncdb.Page)
        out.append([d["id"] for d in page.items])
        if page.next_cursor is None:
            return out
        assert len(page.items) == limit, "only the last page may be short"
        cursor = page.next_cursor
        assert len(out) < 1000, "pagination does not terminate"


async def test_find_page_walks_every_document_once_in_sort_order(db: asyncdb.Database) -> None:
    coll = db.collection("c", indexes=["g"])
    docs = [{"id": f"d{i:02d}", "g": "x", "n": (i * 7) % 10} for i in range(21)]
    await coll.insert_many(docs)
    pages = await pages_of(coll, {"g": "x"}, [("n", 1)], 5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 1]
    flat = [i for p in pages for i in p]
    expected = [d["id"] for d in sorted(docs, key=lambda d: (d["n"], d["id"]))]
    assert flat == expected


async def test_find_page_descending_sort_and_exact_multiple_of_the_limit(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c", indexes=["g"])
    docs = [{"id": f"d{i:02d}", "g": 1, "n": i % 4} for i in range(12)]
    await coll.insert_many(docs)
    pages = await pages_of(coll, {"g": 1}, [("n", -1)], 4)
    assert [len(p) for p in pages] == [4, 4, 4]  # the last full page has no next cursor
    flat = [i for p in pages for i in p]
    assert flat == [d["id"] for d in sorted(docs, key=lambda d: (-d["n"], d["id"]))]


async def test_find_page_without_sort_pages_by_key(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many([{"id": f"k{i}"} for i in (5, 3, 9, 1, 7, 2)])
    pages = await pages_of(coll, {}, None, 4)
    assert pages == [["k1", "k2", "k3", "k5"], ["k7", "k9"]]


async def test_find_page_with_projection(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many([{"id": f"k{i}", "n": i, "x": "drop"} for i in range(3)])
    page = await coll.find_page({}, sort=[("n", 1)], limit=2, projection={"n": 1})
    assert_same([{"id": "k0", "n": 0}, {"id": "k1", "n": 1}], page.items)
    assert page.next_cursor is not None
    rest = await coll.find_page(
        {}, sort=[("n", 1)], limit=2, cursor=page.next_cursor, projection={"n": 1}
    )
    assert_same([{"id": "k2", "n": 2}], rest.items)
    assert rest.next_cursor is None


async def test_find_page_with_concurrent_inserts_never_repeats_or_skips_existing_documents(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c", indexes=["g"])
    original = [{"id": f"o{i:02d}", "g": "x", "n": i * 10} for i in range(30)]
    await coll.insert_many(original)
    seen: list[str] = []
    cursor = None
    round_ = 0
    while True:
        page = await coll.find_page({"g": "x"}, sort=[("n", 1)], limit=7, cursor=cursor)
        seen.extend(d["id"] for d in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        last_n = page.items[-1]["n"]
        # between pages: documents before, at, and after the cursor position, and elsewhere
        await coll.insert_many(
            [
                {"id": f"b{round_}", "g": "x", "n": last_n - 5},
                {"id": f"e{round_}", "g": "x", "n": last_n},
                {"id": f"a{round_}", "g": "x", "n": last_n + 5},
                {"id": f"z{round_}", "g": "y", "n": last_n + 1},
                {"id": f"~{round_}", "g": "x", "n": 10_000},
            ]
        )
        round_ += 1
        assert round_ < 100
    assert len(seen) == len(set(seen)), f"a document was returned twice: {seen}"
    assert {d["id"] for d in original} <= set(seen), "a document that existed was skipped"
    position = {d["id"]: d["n"] for d in original}
    ns = [position[i] for i in seen if i in position]
    assert ns == sorted(ns)
    assert not any(i.startswith("z") for i in seen)  # other filter values never leak in
    assert not any(i.startswith("b") for i in seen)  # inserted behind the cursor
    assert {f"a{r}" for r in range(round_)} <= set(seen)  # inserted ahead of the cursor


async def test_cursor_is_an_opaque_string(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many([{"id": f"secret-{i}", "n": 1000 + i} for i in range(3)])
    page = await coll.find_page({}, sort=[("n", 1)], limit=2)
    cursor = page.next_cursor
    assert isinstance(cursor, str) and cursor
    assert "secret-1" not in cursor and "1001" not in cursor


def tamper(cursor: str, index: int) -> str:
    replacement = "A" if cursor[index] != "A" else "B"
    return cursor[:index] + replacement + cursor[index + 1 :]


async def test_tampered_cursor_raises_invalid_cursor(db: asyncdb.Database) -> None:
    coll = db.collection("c", allow_scan=True)
    await coll.insert_many([{"id": f"k{i}", "n": i} for i in range(5)])
    page = await coll.find_page({}, sort=[("n", 1)], limit=2)
    cursor = page.next_cursor
    assert cursor is not None
    forged = [
        tamper(cursor, 0),
        tamper(cursor, len(cursor) // 3),
        tamper(cursor, len(cursor) - 5),
        cursor[:-6],
        cursor + "A",
        cursor + "." + cursor,
        "not-a-cursor",
        "",
        cursor.swapcase(),
    ]
    for bad in forged:
        with pytest.raises(asyncdb.InvalidCursor):
            await coll.find_page({}, sort=[("n", 1)], limit=2, cursor=bad)
    # the genuine cursor still works
    rest = await coll.find_page({}, sort=[("n", 1)], limit=2, cursor=cursor)
    assert [d["id"] for d in rest.items] == ["k2", "k3"]


async def test_cursor_used_with_another_filter_sort_or_collection_raises_invalid_cursor(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("c", allow_scan=True)
    other = db.collection("other", allow_scan=True)
    await coll.insert_many([{"id": f"k{i}", "n": i, "g": i % 2} for i in range(6)])
    await other.insert_many([{"id": f"k{i}", "n": i, "g": i % 2} for i in range(6)])
    page = await coll.find_page({"g": 0}, sort=[("n", 1)], limit=1)
    cursor = page.next_cursor
    assert cursor is not None
    with pytest.raises(asyncdb.InvalidCursor):
        await coll.find_page({"g": 1}, sort=[("n", 1)], limit=1, cursor=cursor)
    with pytest.raises(asyncdb.InvalidCursor):
        await coll.find_page({}, sort=[("n", 1)], limit=1, cursor=cursor)
    with pytest.raises(asyncdb.InvalidCursor):
        await coll.find_page({"g": 0}, sort=[("n", -1)], limit=1, cursor=cursor)
    with pytest.raises(asyncdb.InvalidCursor):
        await other.find_page({"g": 0}, sort=[("n", 1)], limit=1, cursor=cursor)
    # the same query with another page size may continue it
    more = await coll.find_page({"g": 0}, sort=[("n", 1)], limit=5, cursor=cursor)
    assert [d["id"] for d in more.items] == ["k2", "k4"]


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, None])
async def test_find_page_limit_must_be_a_positive_integer(db: asyncdb.Database, limit: Any) -> None:
    coll = db.collection("c", allow_scan=True)
    with pytest.raises(asyncdb.QueryError):
        await coll.find_page({}, limit=limit)
