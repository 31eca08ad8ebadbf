"""The SQLite planner, without I/O: SQL text, parameters, exactness, residual and index use."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.backends.base import expiry_filter
from asyncdb.backends.sqlite.planner import SQLitePlanner, json_path, schema
from asyncdb.query.ast import And
from asyncdb.query.parse import parse_filter, parse_sort
from asyncdb.types import CollectionSpec, Index, Plan, Query

SPEC = CollectionSpec(
    "alerts",
    indexes=(Index.of("status"), Index.of(("company", "priority")), Index.of("meta.region")),
    ttl="expires_at",
)


def plan(flt: Any, *, spec: CollectionSpec = SPEC, **kw: Any) -> Plan:
    if "sort" in kw:
        kw["sort"] = parse_sort(kw["sort"])
    return SQLitePlanner(spec).plan(Query(parse_filter(flt), **kw))


def sql(p: Plan) -> str:
    text: str = p.native["sql"]
    return text


# --- values stay out of SQL text ------------------------------------------------------------


MARKERS: list[Any] = [
    "marker'); DROP TABLE alerts; --",
    987654321,
    2.5e-7,
    datetime(2031, 7, 9, 1, 2, 3, tzinfo=UTC),
    b"\x00bytes-marker",
    Decimal("12.5"),
    ["arr-marker", True],
    {"doc": "obj-marker"},
]


@pytest.mark.parametrize("value", MARKERS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize(
    "template",
    [
        lambda v: {"f": v},
        lambda v: {"f": {"$ne": v}},
        lambda v: {"f": {"$gt": v}},
        lambda v: {"f": {"$in": [v, "other-marker"]}},
        lambda v: {"f": {"$nin": [v]}},
        lambda v: {"f": {"$all": [v]}},
        lambda v: {"f.g": {"$lte": v}},
        lambda v: {"f": {"$elemMatch": {"g": v}}},
        lambda v: {"$or": [{"f": v}, {"id": "key-marker"}]},
        lambda v: {"id": {"$in": ["key-marker", "key-marker-2"]}},
    ],
)
def test_values_are_bound_parameters_never_sql_text(template: Any, value: Any) -> None:
    p = plan(template(value))
    text = sql(p)
    for needle in ("marker", "987654321", "2.5e", "2031", "12.5", "obj-", "DROP"):
        assert needle not in text


def test_regex_pattern_and_flags_are_parameters() -> None:
    p = plan({"title": {"$regex": "^disk.*full$", "$options": "im"}})
    assert "disk" not in sql(p)
    assert p.native["params"] == ["^disk.*full$", "im"]
    assert p.residual is None


def test_mod_and_size_arguments_are_parameters() -> None:
    p = plan({"n": {"$mod": [7, 3]}, "tags": {"$size": 4}})
    assert not re.search(r"\b[347]\b", sql(p).replace("?3", "").replace("?4", ""))
    assert p.native["params"][:2] == [7, 3]
    assert p.residual is None


# --- access paths ------------------------------------------------------------------------------


def test_point_read_is_one_primary_key_lookup() -> None:
    p = plan({"id": "a1"})
    assert sql(p) == 'SELECT doc, tagged FROM "alerts" WHERE "k0" = ?1'
    assert p.native["params"] == ["a1"]
    assert p.access_path == "key"
    assert p.residual is None


def test_key_in_reads_the_listed_keys() -> None:
    p = plan({"id": {"$in": ["a", "b", 3]}})
    assert '"k0" IN (SELECT value FROM json_each(?1))' in sql(p)
    assert p.native["params"] == ['["a","b",3]']
    assert p.access_path == "key"


def test_key_equality_with_a_non_key_value_matches_nothing() -> None:
    for value in (None, True, ["a"], {"a": 1}, b"x"):
        p = plan({"id": value})
        assert sql(p).endswith("WHERE 0"), value
        assert p.residual is None


def test_key_equality_with_an_integral_float_still_reads_by_key() -> None:
    p = plan({"id": 1.0})
    assert p.access_path == "key"
    assert p.native["params"] == [1.0]


def test_compound_key_needs_every_field_for_a_key_read() -> None:
    spec = CollectionSpec("c", key=("tenant", "id"))
    assert plan({"tenant": "t", "id": 5}, spec=spec).access_path == "key"
    prefix = plan({"tenant": "t"}, spec=spec)
    assert prefix.access_path == "key-prefix"
    assert '"k0" = ?1' in sql(prefix)


def test_key_range_is_typed_so_ints_and_strings_stay_apart() -> None:
    p = plan({"id": {"$gt": 10}})
    assert '(typeof("k0") = \'integer\' AND "k0" > ?1)' in sql(p)
    assert p.access_path == "key-prefix"


def test_declared_index_serves_equality_with_its_own_expression() -> None:
    p = plan({"status": "open"})
    assert "json_extract(doc, '$.status') = ?1" in sql(p)
    assert p.access_path == "index:ix_status"
    ddl = "\n".join(schema(SPEC))
    assert "json_extract(doc, '$.status')" in ddl
    assert "json_type(doc, '$.status')" in ddl  # the array branch stays indexable


def test_index_on_a_nested_field_and_compound_index_lead() -> None:
    assert plan({"meta.region": "eu"}).access_path == "index:ix_meta_region"
    assert plan({"company": "acme"}).access_path == "index:ix_company_priority"
    assert plan({"priority": 5}).access_path == "scan"


def test_or_of_indexed_branches_uses_the_indexes() -> None:
    assert plan({"$or": [{"status": "a"}, {"company": "b"}]}).access_path.startswith("index:")
    assert plan({"$or": [{"status": "a"}, {"other": "b"}]}).access_path == "scan"


def test_unindexed_filter_is_a_scan() -> None:
    assert plan({"title": "x"}).access_path == "scan"
    assert plan({}).access_path == "scan"


# --- exactness and the residual ------------------------------------------------------------------


@pytest.mark.parametrize(
    "flt",
    [
        {"a": 1},
        {"a": "x"},
        {"a": None},
        {"a": True},
        {"a": {"$ne": None}},
        {"a": {"$gte": None}},
        {"a": {"$gt": 4}},
        {"a": {"$lte": "m"}},
        {"a": {"$lt": datetime(2024, 1, 1, tzinfo=UTC)}},
        {"a": datetime(2024, 1, 1, tzinfo=UTC)},
        {"a": b"bytes"},
        {"a": {"$in": [1, "x", None, True, datetime(2024, 1, 1, tzinfo=UTC)]}},
        {"a": {"$nin": [1, "x"]}},
        {"a": ["x", "y"]},
        {"a": {"k": "v"}},
        {"a.b.c": 3},
        {"a.b": None},
        {"a": {"$exists": False}},
        {"a": {"$type": ["object", "number", "date", "binData", "decimal", "int", "long"]}},
        {"a": {"$regex": "x"}},
        {"a": {"$all": [1, "x"]}},
        {"a": {"$size": 2}},
        {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
        {"a": {"$elemMatch": {"b": 1, "c": {"$ne": 2}}}},
        {"a": {"$elemMatch": {"$ne": 3}}},
        {"a": {"$mod": [3, 1]}},
        {"a": {"$not": {"$gt": 1, "$lt": 5}}},
        {"a": Decimal("1.5")},
        {"a": Decimal("0.1")},
        {"$nor": [{"a": 1}, {"b": {"$regex": "^x"}}]},
        {"$or": [{"a": 1}, {"b": "x"}], "c": {"$exists": True}},
        {"x y": 1, "é": "u"},
    ],
    ids=repr,
)
def test_exact_pushdown_leaves_no_residual(flt: Any) -> None:
    p = plan(flt)
    assert p.residual is None, sql(p)
    assert p.approximate is None
    assert p.exact is not None


@pytest.mark.parametrize(
    "flt",
    [
        {"a.0": 1},  # array index or key "0": the evaluator decides
        {"a": [1, 2]},  # 1 == 1.0 inside arrays: text comparison is not exact
        {"a": {"$in": [[1, 2]]}},
        {"a": {"$gt": [1]}},
        {"a": {"$gt": {"k": 1}}},
        {"a": {"$gt": b"x"}},
        {"a": {"$gt": Decimal("0.1")}},  # no float equals 0.1 exactly: bounds are widened
        {'we"ird': 1},  # SQLite JSON paths cannot quote a double quote
    ],
    ids=repr,
)
def test_inexact_nodes_go_to_the_residual(flt: Any) -> None:
    p = plan(flt)
    assert p.residual == parse_filter(flt).to_mongo()
    assert p.residual_node == parse_filter(flt)
    assert p.exact is None


def test_negation_of_an_inexact_node_is_not_pushed() -> None:
    p = plan({"a.0": {"$ne": 1}, "b": "x"})
    assert p.residual == {"a.0": {"$ne": 1}}
    assert p.exact == {"b": {"$eq": "x"}}
    assert "NOT" not in sql(p)


def test_only_inexact_conjuncts_are_rechecked() -> None:
    p = plan({"status": "open", "a": [1, 2]})
    assert p.exact == {"status": {"$eq": "open"}}
    assert p.approximate == {"a": {"$eq": [1, 2]}}
    assert p.residual == {"a": {"$eq": [1, 2]}}


def test_numeric_conditions_let_the_reference_evaluator_decide_decimal_rows() -> None:
    p = plan({"n": {"$gt": 5}})
    assert "tagged >= 2 AND asyncdb_match(doc, ?2)" in sql(p)
    assert p.native["params"][1] == '{"n":{"$gt":5}}'
    assert p.residual is None


def test_strings_and_dates_need_no_decimal_check() -> None:
    assert "asyncdb_match" not in sql(plan({"s": "x", "d": {"$lt": datetime.now(UTC)}}))


def test_null_matches_missing_and_negations_handle_missing() -> None:
    assert "json_type(doc, '$.a') IS NULL" in sql(plan({"a": None}))
    assert sql(plan({"a": {"$ne": 1}})).split("WHERE ")[1].startswith("NOT IFNULL(")


def test_type_guards_keep_booleans_and_strings_out_of_number_comparisons() -> None:
    text = sql(plan({"a": {"$gte": 1}}))
    assert "+json_type(doc, '$.a') IN ('integer','real')" in text
    text = sql(plan({"a": True}))
    assert "json_type(doc, '$.a') = ?1" in text
    assert plan({"a": True}).native["params"] == ["true"]


def test_ttl_expiry_filter_pushes_down_exactly() -> None:
    expiry = expiry_filter(SPEC)
    assert expiry is not None
    p = SQLitePlanner(SPEC).plan(Query(And((parse_filter({"status": "x"}), expiry))))
    assert p.residual is None
    assert "json_extract(doc, '$.expires_at') <= ?" in sql(p)


def test_unsafe_field_names_bind_the_json_path() -> None:
    p = plan({"my field": 1})
    assert "my field" not in sql(p)
    assert '$."my field"' in p.native["params"]


def test_json_path_text() -> None:
    assert json_path(("a", "b_c")) == "$.a.b_c"
    assert json_path(("a-b", "9x")) == '$."a-b"."9x"'
    assert json_path(("a b",)) is None
    assert json_path(("a", "0")) is None


# --- sort, pages, limits -------------------------------------------------------------------------


def test_sort_uses_the_bson_sort_key_function() -> None:
    p = plan({"status": "x"}, sort=[("ts", -1), ("id", 1)])
    assert "ORDER BY asyncdb_sortkey(doc, ?2)" in sql(p)
    assert p.native["params"][1] == '[[["ts"],-1],[["id"],1]]'
    assert p.sort_pushed and not p.client_sort


def test_sort_on_the_key_orders_by_the_key_column() -> None:
    p = plan({}, sort=[("id", -1)])
    assert sql(p).endswith('ORDER BY "k0" DESC')


def test_keyset_page_on_the_key_compares_key_columns() -> None:
    from asyncdb.query.sort import sort_key

    sort = parse_sort([("id", 1)])
    after = sort_key({"id": "m"}, sort)
    p = SQLitePlanner(SPEC).plan(Query(parse_filter({}), sort, after=after, limit=3))
    assert '("k0" > ?1)' in sql(p)
    assert p.native["params"] == ["m", 3]


def test_keyset_page_on_other_fields_compares_sort_keys() -> None:
    p = plan({}, sort=[("ts", 1), ("id", 1)], after=b"\x14", limit=10)
    assert "asyncdb_sortkey(doc, ?1) > ?2" in sql(p)
    assert p.native["params"][1] == b"\x14"


def test_limit_and_skip_are_pushed_only_without_residual() -> None:
    p = plan({"status": "x"}, limit=5, skip=2)
    assert sql(p).endswith("LIMIT ?2 OFFSET ?3")
    assert p.limit_pushed
    q = plan({"a.0": 1}, limit=5, skip=2)
    assert "LIMIT" not in sql(q)
    assert not q.limit_pushed


# --- compile once per shape ----------------------------------------------------------------------


def test_one_compilation_per_shape() -> None:
    planner = SQLitePlanner(SPEC)
    first = planner.plan(Query(parse_filter({"status": "a", "n": {"$gt": 1}})))
    again = planner.plan(Query(parse_filter({"status": "b", "n": {"$gt": 2.5}})))
    assert first.native["sql"] is again.native["sql"]
    assert again.native["params"][:2] == ["b", 2.5]
    other = planner.plan(Query(parse_filter({"status": "b", "n": {"$gt": "x"}})))
    assert other.native["sql"] != first.native["sql"]


SHAPES = [
    {"a": 1, "b": {"$in": [1, "x", None]}, "c": {"$elemMatch": {"d": {"$ne": 2}}}},
    {"$or": [{"a": {"$all": [1, "y"]}}, {"b": {"$not": {"$regex": "z", "$options": "i"}}}]},
    {"a.b": None, "c": {"$mod": [4, 1]}, "d": {"$size": 3}, "x y": Decimal("2")},
    {"a": {"$gt": datetime(2020, 1, 1, tzinfo=UTC)}, "b": b"x", "id": {"$in": ["k1", "k2"]}},
]


@pytest.mark.parametrize("flt", SHAPES, ids=[f"shape{i}" for i in range(len(SHAPES))])
def test_cached_compilation_equals_a_fresh_one(flt: Any) -> None:
    def bump(value: Any) -> Any:  # same kinds, other values
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float | Decimal):
            return value + 1
        if isinstance(value, str):
            return value + "!"
        if isinstance(value, bytes):
            return value + b"!"
        if isinstance(value, datetime):
            return value.replace(year=2021)
        if isinstance(value, list):
            return [bump(v) for v in value]
        if isinstance(value, dict):
            return {
                k: (v if k in ("$mod", "$size", "$options") else bump(v)) for k, v in value.items()
            }
        return value

    warm = SQLitePlanner(SPEC)
    warm.plan(Query(parse_filter(flt)))
    other = bump(flt)
    cached = warm.plan(Query(parse_filter(other)))
    fresh = SQLitePlanner(SPEC).plan(Query(parse_filter(other)))
    assert cached.native == fresh.native
    assert cached.residual == fresh.residual


def test_schema_declares_expression_indexes_and_unique_sort_key_index() -> None:
    spec = CollectionSpec("u", indexes=(Index.of({"fields": ["email"], "unique": True}),))
    ddl = schema(spec)
    assert any(
        s.startswith('CREATE UNIQUE INDEX IF NOT EXISTS "u:ux_email"') and "asyncdb_sortkey" in s
        for s in ddl
    )
    assert any("json_extract(doc, '$.email')" in s for s in ddl)
    assert ddl[0].startswith('CREATE TABLE IF NOT EXISTS "u" ("k0", doc TEXT NOT NULL')
