"""Differential tests of table mode: random typed rows, random filters, sorts, pages and updates
on SQLite and PostgreSQL, against the reference evaluator (``asyncdb.query``) as the oracle.

The oracle's documents are the rows as read back, NULL columns dropped (a NULL column is a
missing field). Operands come from every column's pool, so conditions often meet a column of
another type (type bracketing) and nulls. The ``ci`` profile checks at least 500 filters per
dialect: 60 examples x 10 (``ASYNCDB_TEST_TABLE_EXAMPLES`` raises the number of examples).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.query import apply_update, matches, parse_filter, parse_sort, parse_update
from asyncdb.query.sort import sort_documents
from asyncdb.query.update import strict_equal
from asyncdb.query.values import INT64_MAX, INT64_MIN

from .conftest import ITEMS, create_schema

EXAMPLES = int(os.environ.get("ASYNCDB_TEST_TABLE_EXAMPLES", "60"))
FILTERS_PER_EXAMPLE = 10
MIN_FILTER_CASES = 500

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POOLS: dict[str, list[Any]] = {
    "name": ["", "a", "ab", "b", "B", "é", "a\nb", "ab c", "Zz", "a.b", "1"],
    "n": [-3, 0, 1, 2, 5, 2**40, -(2**62), INT64_MAX, INT64_MIN],
    "small": [-1, 0, 1, 7, 2**31 - 1],
    "f": [-1.5, -0.0, 0.0, 1.0, 2.5, 1e10, 2.0, 0.1],
    "price": [Decimal("0"), Decimal("1.5"), Decimal("-2.25"), Decimal("10"), Decimal("0.125")],
    "flag": [True, False],
    "ts": [
        T0,
        T0 + timedelta(milliseconds=1),
        T0 + timedelta(days=1),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
    "data": [b"", b"a", b"ab", b"b", b"\x00\xff"],
    "meta": [{"x": 1}, {"x": [1, 2]}, [1, "a"], "s", 3, {"x": "a", "y": {"z": None}}, {"y": 2}],
}
COLUMNS = list(POOLS)
EXTRA_OPERANDS: list[Any] = [None, 1.5, "1", True, 0, 2**53 + 1, Decimal("2.5"), [1], {"x": 1}]
OPERANDS = [v for pool in POOLS.values() for v in pool] + EXTRA_OPERANDS
PATHS = [*COLUMNS, "meta.x", "meta.y.z"]
TYPES = [
    "int",
    "long",
    "double",
    "string",
    "bool",
    "date",
    "null",
    "number",
    "decimal",
    "binData",
    "object",
    "array",
]
REGEXES = ["^a", "a", "b$", "^$", "A", "^.$", "a.b", "^é", "^[a-z]+$", "\n", "b c"]

Doc = dict[str, Any]


def operand(path: str) -> st.SearchStrategy[Any]:
    own = POOLS.get(path.split(".")[0], [])
    return (
        st.one_of(st.sampled_from(own), st.sampled_from(OPERANDS))
        if own
        else st.sampled_from(OPERANDS)
    )


def condition(path: str) -> st.SearchStrategy[Any]:
    v = operand(path)
    return st.one_of(
        st.builds(
            lambda op, x: {op: x}, st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]), v
        ),
        st.builds(
            lambda op, xs: {op: xs},
            st.sampled_from(["$in", "$nin", "$all"]),
            st.lists(v, max_size=3),
        ),
        st.builds(lambda b: {"$exists": b}, st.booleans()),
        st.builds(lambda t: {"$type": t}, st.sampled_from(TYPES)),
        st.builds(
            lambda r, o: {"$regex": r, "$options": o},
            st.sampled_from(REGEXES),
            st.sampled_from(["", "i", "m", "s"]),
        ),
        st.builds(
            lambda d, r: {"$mod": [d, r]},
            st.sampled_from([1, 2, 3, 4, -3]),
            st.sampled_from([-1, 0, 1, 2]),
        ),
        st.builds(lambda k: {"$size": k}, st.integers(0, 2)),
        st.sampled_from([{"$elemMatch": {"$gt": 0}}, {"$elemMatch": {"x": 1}}]),
        st.builds(
            lambda op, x: {"$not": {op: x}}, st.sampled_from(["$gt", "$lte", "$eq", "$in"]), v
        ).map(lambda c: {"$not": {"$in": [c["$not"]["$in"]]}} if "$in" in c["$not"] else c),
        st.builds(lambda x, y: {"$gt": x, "$lt": y}, v, v),
    )


_FIELD_CONDITIONS = [condition(p).map(lambda c, p=p: {p: c}) for p in PATHS]
FIELD_FILTER: st.SearchStrategy[Doc] = st.one_of(_FIELD_CONDITIONS)


def filters(depth: int = 2) -> st.SearchStrategy[Doc]:
    leaf = st.lists(FIELD_FILTER, min_size=1, max_size=2).map(
        lambda parts: {k: v for part in parts for k, v in part.items()}
    )
    if depth == 0:
        return leaf
    sub = filters(depth - 1)
    return st.one_of(
        leaf,
        leaf,
        st.builds(
            lambda op, xs: {op: xs},
            st.sampled_from(["$and", "$or", "$nor"]),
            st.lists(sub, min_size=1, max_size=3),
        ),
    )


ROW = st.fixed_dictionaries(
    {c: st.one_of(st.none(), st.sampled_from(pool)) for c, pool in POOLS.items()}
)
rows = st.lists(ROW, max_size=14).map(
    lambda bodies: [
        {"id": i + 1, **{k: v for k, v in b.items() if v is not None}} for i, b in enumerate(bodies)
    ]
)
sorts = st.lists(
    st.tuples(st.sampled_from([*COLUMNS, "id"]), st.sampled_from([1, -1])),
    min_size=1,
    max_size=2,
    unique_by=lambda t: t[0],
)


async def _connect(url: str) -> asyncdb.Database:
    return await asyncdb.connect(url, tables_only=True)


def run(
    url: str,
    strategy: st.SearchStrategy[Any],
    check: Callable[[asyncdb.Database, Any], Awaitable[int]],
) -> int:
    counted = 0
    with asyncio.Runner() as runner:
        runner.run(create_schema(url))
        db = runner.run(_connect(url))
        try:

            @settings(
                max_examples=EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(strategy)
            def body(case: Any) -> None:
                nonlocal counted
                counted += runner.run(check(db, case))

            body()
        finally:
            runner.run(db.close())
    return counted


async def fresh(db: asyncdb.Database, docs: list[Doc]) -> tuple[asyncdb.Collection, list[Doc]]:
    coll = db.table(ITEMS, allow_scan=True)
    await coll.delete_many({})
    await coll.insert_many(docs)
    stored = await coll.find({}, sort=[("id", 1)]).to_list()
    assert [d["id"] for d in stored] == [d["id"] for d in docs]
    for want, have in zip(docs, stored, strict=True):
        assert set(want) == set(have), (want, have)
        for k, v in want.items():
            assert v == have[k] or (isinstance(v, float) and v != v), (k, v, have[k])
    return coll, stored


def reference(docs: list[Doc], flt: Doc, spec: list[tuple[str, int]]) -> list[Any]:
    total = spec if any(p == "id" for p, _ in spec) else [*spec, ("id", 1)]
    node = parse_filter(flt)
    return [
        d["id"] for d in sort_documents([d for d in docs if matches(node, d)], parse_sort(total))
    ]


async def check_filters(
    db: asyncdb.Database, case: tuple[list[Doc], list[Doc], list[Any], int, int]
) -> int:
    docs, flts, sort_spec, skip, limit = case
    coll, stored = await fresh(db, docs)
    for flt in flts:
        node = parse_filter(flt)
        expected = sorted(d["id"] for d in stored if matches(node, d))
        got = [d["id"] async for d in coll.find(flt)]
        assert sorted(got) == expected, (
            f"filter {flt!r}: expected {expected}, got {got}; rows {stored!r}"
        )
        assert await coll.count_documents(flt) == len(expected), f"count {flt!r}"
    flt = flts[0]
    order = reference(stored, flt, sort_spec)
    got = [d["id"] async for d in coll.find(flt, sort=sort_spec, skip=skip, limit=limit)]
    assert got == order[skip : skip + limit], f"sort {sort_spec} of {flt!r}: {order} vs {got}"
    paged: list[Any] = []
    cursor = None
    while True:
        page = await coll.find_page(flt, sort=sort_spec, limit=3, cursor=cursor)
        paged += [d["id"] for d in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert paged == order, f"pages of {sort_spec} {flt!r}: {order} vs {paged}"
    return len(flts)


FILTERS = filters()
UPDATE_FILTERS = filters(1)


def test_filters_sorts_pages_match_the_reference_evaluator(table_url: str) -> None:
    case = st.tuples(
        rows,
        st.lists(FILTERS, min_size=FILTERS_PER_EXAMPLE, max_size=FILTERS_PER_EXAMPLE),
        sorts,
        st.integers(0, 3),
        st.integers(1, 6),
    )
    counted = run(table_url, case, check_filters)
    if EXAMPLES >= 60:
        assert counted >= MIN_FILTER_CASES, counted


# --- updates -------------------------------------------------------------------------------------

UPDATE_COLUMNS = ["name", "n", "small", "f", "price", "flag", "ts", "meta"]
ARITH: list[Any] = [1, -1, 2.5, 2**62, Decimal("1.5"), 0]


def update_op() -> st.SearchStrategy[tuple[str, str, Any]]:
    col = st.sampled_from(UPDATE_COLUMNS)
    return st.one_of(
        st.tuples(st.just("$set"), col, st.sampled_from(OPERANDS)),
        st.tuples(st.just("$unset"), col, st.just("")),
        st.tuples(st.sampled_from(["$inc", "$mul"]), col, st.sampled_from(ARITH)),
        st.tuples(st.sampled_from(["$min", "$max"]), col, st.sampled_from(OPERANDS)),
        st.tuples(st.just("$push"), st.just("meta"), st.sampled_from([1, "a"])),
    )


def fits(dialect: str, col: str, v: Any) -> bool:
    """What each column of ITEMS can hold, decided independently of table mode."""
    t = type(v)
    if v is None:
        return True
    if col == "name":
        return t is str and len(v) <= 40 and "\x00" not in v
    if col in ("n", "small"):
        bits = 31 if col == "small" and dialect == "postgres" else 63
        return t is int and -(2**bits) <= v < 2**bits
    if col == "f" or (col == "price" and dialect == "sqlite"):
        return (
            t is float
            or (t is int and abs(v) <= 2**53)
            or (t is Decimal and (col == "price" or Decimal(float(v)) == v))
        )
    if col == "price":
        return (
            t in (int, float, Decimal)
            and abs(Decimal(v)) < 10**8
            and Decimal(v) == round(Decimal(v), 4)
        )
    if col == "flag":
        return t is bool
    if col == "ts":
        return t is datetime
    if col == "data":
        return t is bytes
    if col == "meta":
        return _json(v)
    return False


def _json(v: Any) -> bool:
    if v is None or type(v) in (bool, int, float, str):
        return True
    if type(v) is list:
        return all(_json(x) for x in v)
    if type(v) is dict:
        return all(_json(x) for x in v.values())
    return False


def same(col: str, a: Any, b: Any) -> bool:
    if col in ("f", "price") and a is not None and b is not None:
        return Decimal(a) == Decimal(b) or float(a) == float(b)
    return strict_equal(a, b)


async def check_update(
    db: asyncdb.Database, case: tuple[list[Doc], Doc, list[tuple[str, str, Any]]], dialect: str
) -> int:
    docs, flt, ops = case
    update: Doc = {}
    for op, col, value in ops:
        update.setdefault(op, {})[col] = value
    try:
        parsed = parse_update(update)
    except asyncdb.QueryError:
        return 0  # conflicting paths: rejected before any I/O on every backend
    coll, stored = await fresh(db, docs)
    node = parse_filter(flt)
    expected: list[Doc] = []
    error = False
    modified = matched = 0
    for d in stored:
        if not matches(node, d):
            expected.append(d)
            continue
        matched += 1
        try:
            new = apply_update(parsed, d, now=T0)
        except asyncdb.UpdateError:
            error = True
            break
        if any(not fits(dialect, k, v) for k, v in new.items() if k != "id") or set(new) - {
            "id",
            *POOLS,
        }:
            error = True
            break
        modified += not strict_equal(d, new)
        expected.append(new)
    if error:
        with pytest.raises(asyncdb.UpdateError):
            await coll.update_many(flt, update)
        expected = stored
    else:
        res = await coll.update_many(flt, update)
        assert (res.matched, res.modified) == (matched, modified), (flt, update)
    got = await coll.find({}, sort=[("id", 1)]).to_list()
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        want = {k: v for k, v in want.items() if v is not None}
        assert set(want) == set(have) and all(same(k, want[k], have[k]) for k in want), (
            flt,
            update,
            want,
            have,
        )
    return 1


def test_updates_match_the_reference_evaluator(
    table_url: str, request: pytest.FixtureRequest
) -> None:
    dialect = "sqlite" if table_url.startswith("sqlite") else "postgres"
    ops = st.lists(update_op(), min_size=1, max_size=3, unique_by=lambda t: t[1])
    case = st.tuples(rows, UPDATE_FILTERS, ops)
    counted = run(table_url, case, lambda db, c: check_update(db, c, dialect))
    assert counted >= EXAMPLES // 2, f"only {counted} updates were valid"
