"""The planners that cache compiled SQL per filter shape (PostgreSQL, SQLite) give, for any
filter, sort and page, exactly the plan a fresh planner gives: same SQL, same parameters, same
split between store and process. One planner lives across all examples, so shapes recur with
new values (the strategies pick operands from random documents) and reach the cache."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncdb.backends.base import with_key_tiebreak
from asyncdb.backends.postgres.planner import PostgresPlanner
from asyncdb.backends.sqlite.planner import SQLitePlanner
from asyncdb.errors import QueryError
from asyncdb.query import parse_filter, parse_sort
from asyncdb.query.sort import sort_key
from asyncdb.types import CollectionSpec, Index, Query

from .strategies import Concretizer, any_filter, batches, field_filters, sorts

SPEC = CollectionSpec("t", indexes=tuple(Index.of(p) for p in ["a", "n", "s", "arr", "n.x"]))
PLANNERS: dict[str, Any] = {"postgres": PostgresPlanner, "sqlite": SQLitePlanner}
SHARED = {name: cls(SPEC) for name, cls in PLANNERS.items()}


def queries(docs: list[dict[str, Any]], templates: list[Any], sort_list: list[Any]) -> list[Query]:
    concrete = Concretizer(docs)
    out = []
    for i, template in enumerate(templates):
        try:
            node = parse_filter(concrete.filter(template))
        except QueryError:
            continue
        sort = with_key_tiebreak(parse_sort(sort_list[i % len(sort_list)]), SPEC) if i % 2 else ()
        after = sort_key(docs[i % len(docs)], sort) if sort and i % 4 == 1 else None
        out.append(Query(node, sort, skip=i % 3, limit=(i % 5) or None, after=after))
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches,
    st.lists(st.one_of(any_filter, field_filters), min_size=6, max_size=6),
    st.lists(sorts, min_size=1, max_size=3),
)
def test_a_cached_shape_plans_exactly_like_a_fresh_planner(
    docs: list[dict[str, Any]], templates: list[Any], sort_list: list[Any]
) -> None:
    for query in queries(docs, templates, sort_list):
        for name, cls in PLANNERS.items():
            cached = SHARED[name].plan(query)
            fresh = cls(SPEC).plan(query)
            assert cached.native == fresh.native, name
            assert (cached.exact, cached.approximate, cached.residual) == (
                fresh.exact,
                fresh.approximate,
                fresh.residual,
            ), name
            assert (cached.sort_pushed, cached.limit_pushed, cached.client_sort) == (
                fresh.sort_pushed,
                fresh.limit_pushed,
                fresh.client_sort,
            ), name
            assert cached.access_path == fresh.access_path, name
            if name == "postgres":  # the statement: SELECT, COUNT/DELETE WHERE, bounds
                assert cached.payload == fresh.payload
            else:
                a, b = cached.payload, fresh.payload
                assert (a.count_sql, a.delete_sql, a.bounded) == (
                    b.count_sql,
                    b.delete_sql,
                    b.bounded,
                )
                assert a.count_params() == b.count_params()
