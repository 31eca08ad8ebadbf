"""The plan cache keyed on the raw filter's shape (asyncdb.query.plancache; DESIGN.md section 6).

A filter of a shape seen before is not parsed or compiled again: its values are bound into what
was built for the shape. The property: for random filters and a second filter of the same shape
with other values, the cached path gives exactly what parsing and planning the second filter
gives, on every planner (the same native query text and parameters, the same residual), and the
same QueryError when a value is invalid.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.backends.cosmos.planner import binder as cosmos_binder
from asyncdb.backends.cosmos.planner import plan_query
from asyncdb.backends.dynamodb.planner import binder as dynamodb_binder
from asyncdb.backends.dynamodb.planner import build_plan
from asyncdb.backends.firestore.planner import FirestorePlanner
from asyncdb.backends.mongo.planner import MongoPlanner
from asyncdb.backends.postgres.planner import PostgresPlanner
from asyncdb.backends.sqlite.planner import SQLitePlanner
from asyncdb.errors import QueryError
from asyncdb.query.parse import parse_filter, parse_projection, parse_sort
from asyncdb.query.plancache import PlanCache, filter_shape
from asyncdb.types import Plan, Query

EXAMPLES = 400 if os.environ.get("HYPOTHESIS_PROFILE") == "dev" else 60
FIELDS = ["id", "company", "status", "priority", "tags", "a.b", "created_at"]

texts = st.text(max_size=6)  # surrogates included: the same QueryError either way
ints = st.one_of(st.integers(-5, 5), st.integers(-(2**63), 2**63 - 1), st.integers(2**63, 2**64))
floats = st.floats(allow_nan=True, allow_infinity=True)
aware = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
naive = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1))
shifted = aware.map(lambda d: d.astimezone(timezone(timedelta(hours=5))))
fixed = st.sampled_from([True, False, None, Decimal("1.5"), Decimal("2"), b"\x00b", 0.0, -0.0])
scalars = st.one_of(texts, ints, floats, aware, naive, shifted, fixed)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2),
)
confusable = st.sampled_from(
    [
        True,
        False,
        0,
        1,
        1.5,
        -0.0,
        None,
        "1",
        Decimal("1"),
        datetime(2025, 1, 1),
        2**63,
        [1],
        {"x": 1},
    ]
)
cmp = st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq", "$ne"])
conditions = st.one_of(
    values,
    st.builds(lambda op, v: {op: v}, cmp, values),
    st.builds(lambda lo, hi: {"$gte": lo, "$lt": hi}, scalars, scalars),
    st.builds(
        lambda op, vs: {op: vs},
        st.sampled_from(["$in", "$nin", "$all"]),
        st.lists(values, max_size=4),
    ),
    st.builds(lambda b: {"$exists": b}, st.booleans()),
    st.builds(
        lambda p, o: {"$regex": p, "$options": o},
        st.sampled_from(["^ab", "a.c", "x$"]),
        st.sampled_from(["", "i"]),
    ),
    st.builds(lambda v: {"$not": {"$gt": v}}, scalars),
    st.builds(lambda v: {"$elemMatch": {"$gte": v}}, scalars),
    st.builds(lambda v: {"$elemMatch": {"x": v}}, scalars),
    st.builds(lambda n: {"$size": n}, st.integers(0, 3)),
)
field_filters = st.dictionaries(st.sampled_from(FIELDS), conditions, min_size=1, max_size=5)
filters = st.one_of(
    field_filters,
    st.builds(lambda fs: {"$or": fs}, st.lists(field_filters, min_size=1, max_size=3)),
    st.builds(lambda f, g: {**f, "$and": [g]}, field_filters, field_filters),
)


def _kind_strategy(value: Any) -> st.SearchStrategy[Any] | None:
    """Another value of the slot kind of ``value`` (None: the value is part of the shape)."""
    t = type(value)
    if t is str:
        return texts.filter(bool) if value else None
    if t is int and -(2**63) <= value < 2**63:
        return st.integers(-(2**63), 2**63 - 1)
    if t is float and value - value == 0.0:
        return st.floats(allow_nan=False, allow_infinity=False)
    if t is datetime:
        return naive if value.tzinfo is None else st.one_of(aware, shifted)
    return None


def _revalue(spec: Any, draw: Any, *, wild: bool = False) -> Any:
    """``spec`` with every slot value replaced by a fresh one of its kind (the same shape), or
    with ``wild`` some values by a confusable one of another kind (another shape, which a
    shape key that confused them would serve from the first filter's entry)."""

    def slot(value: Any) -> Any:
        if wild and draw(st.booleans()):
            return draw(confusable)
        strategy = _kind_strategy(value)
        return value if strategy is None else draw(strategy)

    def operators(ops: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for op, arg in ops.items():
            if op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte"):
                out[op] = slot(arg)
            elif op in ("$in", "$nin", "$all"):
                out[op] = [slot(v) for v in arg]
            elif op == "$not":
                out[op] = operators(arg)
            elif op == "$elemMatch":
                out[op] = operators(arg) if next(iter(arg))[:1] == "$" else document(arg)
            else:
                out[op] = arg
        return out

    def document(doc: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key[:1] == "$":
                out[key] = [document(d) for d in value]
            elif type(value) is dict and value and next(iter(value))[:1] == "$":
                out[key] = operators(value)
            else:
                out[key] = slot(value)
        return out

    return document(spec)


async def _memory() -> asyncdb.Database:
    return await asyncdb.connect("memory://")


def _planners() -> dict[str, Any]:
    memory = asyncio.run(_memory())
    store = memory.collection("alerts", indexes=["company", ("company", "priority"), "status"])
    spec = store.spec
    postgres, sqlite, mongo = PostgresPlanner(spec), SQLitePlanner(spec), MongoPlanner(spec)
    firestore = FirestorePlanner(spec)
    return {
        "memory": store._store.execution_plan,
        "sqlite": lambda q: sqlite.plan(q, explain=False),
        "postgres": lambda q: postgres.plan(q, explain=False),
        "mongo": mongo.plan,
        "firestore": firestore.plan,
        "cosmos": lambda q: plan_query(spec, q),
        "dynamodb": lambda q: build_plan(q, spec),
        "_memory_store": store._store,
        "_sqlite": sqlite,
    }


PLANNERS = _planners()


def _same(a: Plan, b: Plan) -> None:
    assert a.native == b.native
    assert a.residual_node == b.residual_node
    assert (a.access_path, a.sort_pushed, a.limit_pushed, a.client_sort) == (
        b.access_path,
        b.sort_pushed,
        b.limit_pushed,
        b.client_sort,
    )
    if type(a.payload).__name__ == "Statement":  # SQLite, PostgreSQL: what rows() runs
        assert a.payload.sql == b.payload.sql
        assert a.payload.params == b.payload.params


def _parsed(spec: Any) -> Any:
    try:
        return parse_filter(spec)
    except QueryError as exc:
        return exc


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("HYPOTHESIS_PROFILE", "ci") != "dev",
    suppress_health_check=[HealthCheck.too_slow],
)
@given(first=filters, data=st.data())
def test_a_cached_plan_equals_a_fresh_one_on_every_planner(first: Any, data: Any) -> None:
    second = _revalue(first, data.draw)
    third = _revalue(first, data.draw, wild=True)
    shape = filter_shape(first)
    if shape is not None:
        assert filter_shape(second) is not None
        assert filter_shape(second)[0] == shape[0]  # type: ignore[index]
    cache = PlanCache()
    made_from = _parsed(first)
    # a miss, the entry made, then a hit when the wild values happen to share the shape
    for spec in (first, second, third):
        fresh = _parsed(spec)
        try:
            node, entry = cache.parse(spec)
        except QueryError as exc:
            assert isinstance(fresh, QueryError), (spec, exc)
            assert (str(exc), exc.path) == (str(fresh), fresh.path)
            continue
        assert not isinstance(fresh, QueryError), (spec, fresh)
        assert node == fresh and type(node) is type(fresh)
        query = Query(node, limit=10)
        for name, plan in PLANNERS.items():
            if name.startswith("_"):
                continue
            try:
                expected = plan(Query(fresh, limit=10))
            except asyncdb.AsyncDBError as exc:  # a planner's own refusal: the same for both
                with pytest.raises(type(exc)):
                    plan(query)
                continue
            _same(plan(query), expected)
            if entry is not None and name == "memory":
                _same(PLANNERS["_memory_store"].shaped_plan(query, entry), expected)
        if entry is not None and not isinstance(made_from, QueryError):
            sqlite = PLANNERS["_sqlite"]  # its binder, made from the first filter of the shape
            expected = sqlite.plan(Query(fresh, limit=10), explain=False)
            _same(sqlite.binder(Query(made_from, limit=10))(query), expected)


def _binders() -> dict[str, tuple[Any, Any]]:
    """Per planner: (its binder of a query's raw shape, the plan ``find`` runs)."""
    store = PLANNERS["_memory_store"]
    spec = store.spec
    sqlite, mongo, firestore = SQLitePlanner(spec), MongoPlanner(spec), FirestorePlanner(spec)
    postgres = PostgresPlanner(spec)
    return {
        "memory": (store.plan_binder, store.execution_plan),
        "sqlite": (sqlite.binder, lambda q: sqlite.plan(q, explain=False)),
        "mongo": (mongo.binder, lambda q: mongo.plan(q, explain=False)),
        "postgres": (postgres.binder, lambda q: postgres.plan(q, explain=False)),
        "firestore": (firestore.binder, lambda q: firestore.plan(q, explain=False)),
        "cosmos": (lambda q: cosmos_binder(spec, q), lambda q: plan_query(spec, q, explain=False)),
        "dynamodb": (
            lambda q: dynamodb_binder(spec, q),
            lambda q: build_plan(q, spec, explain=False),
        ),
    }


BINDERS = _binders()
SORTS = [(), (("priority", 1), ("id", 1)), (("id", -1),), (("company", 1), ("id", 1))]
PROJECTIONS = [None, {"company": 1}, {"tags": 0}]


def _identical(got: Plan, expected: Plan) -> None:
    """Two plans equal in every field, the native query and what the store runs included."""
    assert got == expected
    assert got.residual_node == expected.residual_node
    assert got.payload == expected.payload


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("HYPOTHESIS_PROFILE", "ci") != "dev",
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    first=filters,
    sort=st.sampled_from(SORTS),
    projection=st.sampled_from(PROJECTIONS),
    skips=st.one_of(st.just((0, 0, 0)), st.tuples(*[st.integers(1, 9)] * 3)),
    limits=st.one_of(st.just((None, None, None)), st.tuples(*[st.integers(0, 50)] * 3)),
    data=st.data(),
)
def test_a_bound_plan_equals_a_fresh_plan_on_every_planner(
    first: Any,
    sort: Any,
    projection: Any,
    skips: tuple[int, int, int],
    limits: tuple[Any, Any, Any],
    data: Any,
) -> None:
    """A binder made from one filter, given other filters of its shape (other values, other
    skip and limit of the same settings): exactly the plan made from each of them."""
    made_from, shape = _parsed(first), filter_shape(first)
    if isinstance(made_from, QueryError) or shape is None:
        return
    sort_spec = parse_sort(list(sort))
    proj = parse_projection(projection, ("id",))
    others = [
        _revalue(first, data.draw),
        _revalue(first, data.draw, wild=True),
    ]
    for make, fresh in BINDERS.values():
        try:
            binder = make(Query(made_from, sort_spec, skips[0], limits[0], proj))
        except asyncdb.AsyncDBError:
            continue  # the planner refuses the shape: nothing is bound
        if binder is None:
            continue
        for i, spec in enumerate(others, start=1):
            theirs = filter_shape(spec)
            node = _parsed(spec)
            if theirs is None or theirs[0] != shape[0] or isinstance(node, QueryError):
                continue
            query = Query(node, sort_spec, skips[i], limits[i], proj)
            try:
                expected = fresh(query)
            except asyncdb.AsyncDBError as exc:
                with pytest.raises(type(exc)):
                    binder(query)
                continue
            _identical(binder(query), expected)


@pytest.mark.parametrize(
    ("first", "second", "limits"),
    [
        ({"tags": "x", "status": "x"}, {"tags": "x", "status": "y"}, (None, None)),  # one param
        ({"tags": "x", "status": "y"}, {"tags": "z", "status": "z"}, (None, None)),
        ({"priority": {"$gt": 5}}, {"priority": {"$gt": 2**60}}, (None, None)),  # beyond 2**53
        ({"status": {"$gt": "a"}}, {"status": {"$gt": "\U0001f600"}}, (None, None)),  # UTF-16
        ({"status": {"$not": {"$gt": "a"}}}, {"status": {"$not": {"$gt": "\U0001f600"}}}, (1, 2)),
        ({"tags": "x"}, {"tags": "x" * 400}, (None, None)),  # too long to index
        ({"status": {"$gt": "a"}}, {"status": {"$gt": "\x00tz"}}, (None, None)),  # a tag's text
        ({"tags": "x", "status": "y"}, {"tags": "\x00?", "status": "y"}, (None, None)),
        ({"status": {"$in": ["a", "b"]}}, {"status": {"$in": ["c", "c"]}}, (None, None)),
        ({"tags": "x"}, {"tags": "y"}, (5, 0)),  # TOP n, and no TOP for a limit of 0
        ({"tags": "x"}, {"tags": "y"}, (5, 7)),
    ],
)
def test_values_a_planner_branches_on_give_each_filter_its_own_plan(
    first: dict[str, Any], second: dict[str, Any], limits: tuple[Any, Any]
) -> None:
    a, b = filter_shape(first), filter_shape(second)
    assert a is not None and b is not None and a[0] == b[0]  # one shape, other values
    query = Query(parse_filter(second), limit=limits[1])
    for make, fresh in BINDERS.values():
        binder = make(Query(parse_filter(first), limit=limits[0]))
        if binder is not None:
            _identical(binder(query), fresh(query))


class _Name(str):
    """A field name that is a ``str`` subclass: such filters are not cached."""


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("HYPOTHESIS_PROFILE", "ci") != "dev",
    suppress_health_check=[HealthCheck.too_slow],
)
@given(first=filters, data=st.data())
def test_a_shapes_matcher_takes_exactly_its_shape_and_rebuilds_the_parsed_filter(
    first: Any, data: Any
) -> None:
    cache = PlanCache()
    if isinstance(_parsed(first), QueryError):
        return
    cache.parse(first)
    _, entry = cache.parse(first)
    shape = filter_shape(first)
    if entry is None or entry.match is None or shape is None:
        return
    renamed = {_Name(k): v for k, v in first.items()}
    others = [_revalue(first, data.draw), _revalue(first, data.draw, wild=True), renamed]
    for spec in others:
        theirs = filter_shape(spec)
        same = theirs is not None and theirs[0] == shape[0]
        fresh = _parsed(spec)
        try:
            got = entry.match(spec)
        except QueryError as exc:  # only a filter of the shape is checked, as the parser does
            assert same and isinstance(fresh, QueryError), (spec, exc)
            assert (str(exc), exc.path) == (str(fresh), fresh.path)
            continue
        if not same:
            assert got is None, spec
            continue
        assert got is not None and not isinstance(fresh, QueryError)
        assert got == fresh and type(got) is type(fresh)
        node, _ = cache.parse(spec)  # the cache's own path: the matcher of these field names
        assert node == fresh


def _check_shared(first: Any, second: Any) -> None:
    """When two filters share a shape key, the second's cached plan is its fresh plan."""
    a, b = filter_shape(first), filter_shape(second)
    if a is None or b is None or a[0] != b[0]:
        return
    made_from, fresh = _parsed(first), _parsed(second)
    if isinstance(made_from, QueryError) or isinstance(fresh, QueryError):
        return
    cache = PlanCache()
    cache.parse(first)
    cache.parse(first)
    node, entry = cache.parse(second)
    assert node == fresh
    sqlite = PLANNERS["_sqlite"]
    expected = sqlite.plan(Query(fresh), explain=False)
    _same(sqlite.binder(Query(made_from))(Query(node)), expected)
    if entry is not None:
        memory = PLANNERS["_memory_store"]
        memory.shaped_plan(Query(made_from), entry)
        _same(memory.shaped_plan(Query(node), entry), memory.execution_plan(Query(fresh)))


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(
    st.one_of(scalars, confusable),
    st.one_of(scalars, confusable),
    st.sampled_from(["bare", "$gt", "$in", "$ne"]),
)
@example(5, True, "bare")
@example(1.5, 1, "$gt")
@example(datetime(2025, 1, 1), datetime(2025, 1, 1, tzinfo=UTC), "$in")
def test_values_of_different_kinds_never_share_a_plan(a: Any, b: Any, how: str) -> None:
    def wrap(v: Any) -> dict[str, Any]:
        if how == "bare":
            return {"n": v, "company": "c"}
        return {"n": {how: [v, 1] if how == "$in" else v}, "company": "c"}

    _check_shared(wrap(a), wrap(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"n": 1}, {"n": 1.0}),
        ({"n": 1}, {"n": True}),
        ({"n": 0}, {"n": None}),
        ({"n": "1"}, {"n": 1}),
        ({"n": {"x": 1}}, {"n": {"x": 2}}),
        ({"n": [1]}, {"n": [2]}),
        ({"n": {"$size": 1}}, {"n": {"$size": 2}}),
        ({"n": Decimal("1.0")}, {"n": Decimal("1")}),
        ({"n": {"$regex": "a", "$options": "i"}}, {"n": {"$regex": "a", "$options": ""}}),
        ({"n": {"$regex": "a"}}, {"n": {"$regex": "b"}}),
        ({"n": {"$in": [1, 2]}}, {"n": {"$in": [1, 2, 3]}}),
        ({"n": datetime(2025, 1, 1)}, {"n": datetime(2025, 1, 1, tzinfo=UTC)}),
        ({"n": 2**63 - 1}, {"n": 2**63}),
        ({"id": ""}, {"id": "a"}),  # "" is no key value: the other is a read by key
        ({"n": {"$exists": True}}, {"n": {"$exists": False}}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({"a": {"$gt": 1}}, {"a": {"$gte": 1}}),
        ({"$or": [{"a": 1}, {"b": 1}]}, {"$or": [{"a": 1}], "b": 1}),
    ],
)
def test_filters_that_differ_in_meaning_never_share_a_shape(a: Any, b: Any) -> None:
    sa, sb = filter_shape(a), filter_shape(b)
    assert sa is None or sb is None or sa[0] != sb[0]


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache = PlanCache(size=3)
    for name in ("a", "b", "c"):
        cache.parse({name: 1})
    cache.parse({"a": 2})  # used again: "b" is now the oldest
    cache.parse({"d": 1})
    assert len(cache) == 3
    hits = cache.hits
    cache.parse({"b": 5})
    assert cache.hits == hits  # dropped: parsed again
    cache.parse({"a": 9})
    assert cache.hits == hits + 1


async def test_find_through_cached_shapes_returns_each_filters_own_documents() -> None:
    for url in ("memory://", "sqlite:///:memory:"):
        db = await asyncdb.connect(url)
        coll = db.collection("alerts", indexes=["company"])
        await coll.insert_many(
            [{"id": f"a{i}", "company": f"c{i % 3}", "priority": i} for i in range(30)]
        )
        for i in range(3):
            found = await coll.find({"company": f"c{i}", "priority": {"$gte": 10 + i}}).to_list()
            expected = {f"a{j}" for j in range(30) if j % 3 == i and j >= 10 + i}
            assert {d["id"] for d in found} == expected
        assert coll._store.plans.hits >= 2
        # count, update and delete parse through the same cache: each filter its own answer
        for i in range(3):
            spec = {"company": f"c{i}", "priority": {"$gte": 10 + i}}
            expected_n = sum(1 for j in range(30) if j % 3 == i and j >= 10 + i)
            assert await coll.count_documents(spec) == expected_n
            changed = await coll.update_many(spec, {"$set": {"seen": i}})
            assert changed.modified_count == expected_n
        assert await coll.count_documents({"seen": {"$exists": True}}, allow_scan=True) == sum(
            1 for j in range(30) if j >= 10 + j % 3
        )
        removed = await coll.delete_many({"company": "c1", "priority": {"$gte": 0}})
        assert removed == 10
        assert await coll.count_documents({"company": "c1", "priority": {"$gte": 0}}) == 0
        await db.close()
