"""AsyncDBStore against LangGraph's ``BaseStore`` documentation, on every backend.

No upstream store suite exists; each test states the documented behaviour it checks. Expected
results of filters come from a small oracle of MongoDB's comparison rules for scalars (type
bracketing, null matching missing), independent of asyncdb's evaluator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBStore
from asyncdb.integrations.langgraph.store import prefix_filter

MISSING = object()
PROBES: list[Any] = [9, 9.5, "9", True, None]
VALUES: list[Any] = [1, 9, 10, 1.5, 9.5, 10.5, "10", "9", "a", True, False, None, MISSING]
OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return "str"


def _expected(op: str, probe: Any, value: Any) -> bool:
    """MongoDB's rule for a scalar comparison (the query language's specification)."""
    if op == "$ne":
        return not _expected("$eq", probe, value)
    if probe is None:
        return (value is None or value is MISSING) and op in ("$eq", "$gte", "$lte")
    if value is MISSING or _kind(value) != _kind(probe):
        return False
    if op == "$eq":
        return bool(value == probe)
    compare = {"$gt": value > probe, "$gte": value >= probe, "$lt": value < probe}
    return bool(compare.get(op, value <= probe))


async def test_filter_operators_by_type_follow_mongodb_rules(db: asyncdb.Database) -> None:
    store = AsyncDBStore(db)
    ns = ("filters", "t")
    for i, v in enumerate(VALUES):
        await store.aput(ns, f"k{i:02d}", {} if v is MISSING else {"v": v})
    mismatches = []
    for op in OPS:
        for probe in PROBES:
            found = await store.asearch(ns, filter={"v": {op: probe}}, limit=100)
            got = sorted(item.key for item in found)
            want = sorted(f"k{i:02d}" for i, v in enumerate(VALUES) if _expected(op, probe, v))
            if got != want:
                mismatches.append((op, probe, got, want))
    assert mismatches == []


async def test_numbers_compare_as_numbers_not_text(db: asyncdb.Database) -> None:
    """LangGraph's PostgresStore compares them as text (langgraph#7684: '9' >= '10')."""
    store = AsyncDBStore(db)
    for score in (2, 9, 10, 100):
        await store.aput(("scores",), f"s{score}", {"score": score})
    at_least_9 = await store.asearch(("scores",), filter={"score": {"$gte": 9}})
    assert sorted(i.value["score"] for i in at_least_9) == [9, 10, 100]
    below_10 = await store.asearch(("scores",), filter={"score": {"$lt": 10}})
    assert sorted(i.value["score"] for i in below_10) == [2, 9]


async def test_search_offset_and_limit_page_through_each_item_once(db: asyncdb.Database) -> None:
    store = AsyncDBStore(db)
    await store.abatch([PutOp(("docs", "u1"), f"d{i}", {"n": i}) for i in range(7)])
    everything = await store.asearch(("docs",), limit=100)
    pages = [await store.asearch(("docs",), limit=3, offset=o) for o in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i.key for p in pages for i in p] == [i.key for i in everything]
    assert sorted(i.value["n"] for i in everything) == list(range(7))
    filtered = await store.asearch(("docs",), filter={"n": {"$gte": 2}}, limit=2, offset=1)
    all_filtered = await store.asearch(("docs",), filter={"n": {"$gte": 2}}, limit=100)
    assert [i.key for i in filtered] == [i.key for i in all_filtered][1:3]


async def test_namespaces_prefix_suffix_depth_and_paging_after_dedup(
    db: asyncdb.Database,
) -> None:
    store = AsyncDBStore(db)
    spaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "bc"),
        ("a", "c", "f"),
        ("x", "y"),
    ]
    for ns in spaces:
        await store.aput(ns, "k", {"ns": list(ns)})
    # BaseStore.alist_namespaces' own example
    assert await store.alist_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert await store.alist_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert await store.alist_namespaces(prefix=("a", "*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    # limit and offset count distinct namespaces, after truncation to max_depth
    assert await store.alist_namespaces(max_depth=1, limit=2) == [("a",), ("x",)]
    assert await store.alist_namespaces(max_depth=1, limit=1, offset=1) == [("x",)]
    # a search prefix matches whole labels: ("a", "b") is not a prefix of ("a", "bc")
    under_ab = await store.asearch(("a", "b"), limit=100)
    assert sorted(i.namespace for i in under_ab) == sorted(s for s in spaces if s[:2] == ("a", "b"))
    assert len(await store.asearch((), limit=100)) == len(spaces)


async def test_prefix_searches_are_key_prefix_queries_pushed_to_the_store(
    db: asyncdb.Database,
) -> None:
    """A search within a namespace prefix never scans, and where the backend evaluates the
    filter in the store the numeric comparison is exact there (nothing left to re-check)."""
    store = AsyncDBStore(db)
    query = {"$and": [prefix_filter(("users", "u1")), {"value.score": {"$gte": 9}}]}
    plan = await store.items.explain(query)
    assert plan.access_path == "key-prefix"
    if db.backend in ("sqlite", "postgres", "mongo"):
        assert plan.residual is None


async def test_put_get_update_delete_keep_created_at(db: asyncdb.Database) -> None:
    store = AsyncDBStore(db)
    await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
    first = await store.aget(("users", "u1"), "prefs")
    assert first is not None and first.value == {"theme": "dark"}
    await asyncio.sleep(0.01)
    await store.aput(("users", "u1"), "prefs", {"theme": "light"})
    second = await store.aget(("users", "u1"), "prefs")
    assert second is not None and second.value == {"theme": "light"}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert await store.aget(("users",), "prefs") is None  # another namespace
    await store.adelete(("users", "u1"), "prefs")
    assert await store.aget(("users", "u1"), "prefs") is None


async def test_batch_reads_see_the_store_before_its_puts_and_last_put_wins(
    db: asyncdb.Database,
) -> None:
    store = AsyncDBStore(db)
    ns = ("batch",)
    results = await store.abatch(
        [
            PutOp(ns, "k", {"v": 1}),
            GetOp(ns, "k"),
            PutOp(ns, "k", {"v": 2}),
            SearchOp(ns),
        ]
    )
    assert results == [None, None, None, []]
    item = await store.aget(ns, "k")
    assert item is not None and item.value == {"v": 2}


async def test_ttl_expires_refreshes_on_read_and_sweeps(db: asyncdb.Database) -> None:
    # 3 s; times are taken from the clock after the puts, so a slow store (an emulator under
    # load) cannot make "read" expire before it is read
    store = AsyncDBStore(db, ttl={"default_ttl": 0.05, "refresh_on_read": True})
    assert store.supports_ttl
    ns = ("ttl",)
    loop = asyncio.get_running_loop()
    await store.aput(ns, "forever", {"v": 3}, ttl=None)
    await store.aput(ns, "unread", {"v": 2})
    await store.aput(ns, "read", {"v": 1})  # expires at the earliest 3 s from t0, minus a put
    t0 = loop.time()
    await asyncio.sleep(1.0)
    assert await store.aget(ns, "read") is not None  # pushes its expiry to t0 + 4 s or later
    await asyncio.sleep(max(0.0, t0 + 3.3 - loop.time()))  # "unread" expired by t0 + 3 s
    assert await store.aget(ns, "unread", refresh_ttl=False) is None
    assert sorted(i.key for i in await store.asearch(ns, refresh_ttl=False)) == [
        "forever",
        "read",
    ]
    assert await store.asweep_ttl() >= 1
    assert await store.aget(ns, "forever") is not None


async def test_concurrent_puts_and_batches_lose_nothing(db: asyncdb.Database) -> None:
    store = AsyncDBStore(db)
    ns = ("conc",)
    await asyncio.gather(*(store.aput(ns, f"k{i}", {"i": i}) for i in range(20)))
    await asyncio.gather(*(store.aput(ns, "shared", {"writer": w}) for w in range(10)))
    items = await store.asearch(ns, limit=100)
    assert sorted(i.key for i in items) == sorted([f"k{i}" for i in range(20)] + ["shared"])
    shared = await store.aget(ns, "shared")
    assert shared is not None and shared.value["writer"] in range(10)


async def test_bad_input_is_refused_before_any_io(db: asyncdb.Database) -> None:
    with pytest.raises(asyncdb.NotSupported):
        AsyncDBStore(db, index={"dims": 3, "embed": lambda texts: [[0.0] * 3 for _ in texts]})
    store = AsyncDBStore(db)
    with pytest.raises(asyncdb.QueryError):
        await store.asearch(("a",), filter={"v": {"$where": "1"}})
    with pytest.raises(asyncdb.QueryError):
        await store.asearch(("a",), filter={"$text": "x"})
    with pytest.raises(InvalidNamespaceError):
        await store.aput(("a.b",), "k", {"v": 1})


async def test_sync_twin_runs_from_another_thread_and_refuses_the_loop_thread(
    db: asyncdb.Database,
) -> None:
    store = AsyncDBStore(db)
    await store.aput(("sync",), "k", {"v": 1})
    item = await asyncio.to_thread(store.get, ("sync",), "k")
    assert item is not None and item.value == {"v": 1}
    with pytest.raises(asyncio.InvalidStateError):
        store.get(("sync",), "k")
