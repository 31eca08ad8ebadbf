"""The Cosmos DB planner and codec, without I/O: SQL text, parameters, exactness, residual."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.backends.cosmos.codec import (
    decode_item,
    decode_key_part,
    encode_item,
    encode_key,
    encode_key_part,
)
from asyncdb.backends.cosmos.planner import MAX_NESTING, Parameters, compile_node, plan_query
from asyncdb.query.parse import parse_filter, parse_sort
from asyncdb.types import CollectionSpec, Index, Plan, Query

SPEC = CollectionSpec("alerts", indexes=(Index.of("status"),), allow_scan=True)
PAIR = CollectionSpec("events", key=("tenant", "seq"), allow_scan=True)


def plan(flt: Any, *, spec: CollectionSpec = SPEC, **kw: Any) -> Plan:
    if "sort" in kw:
        kw["sort"] = parse_sort(kw["sort"])
    return plan_query(spec, Query(parse_filter(flt), **kw))


def sql(p: Plan) -> str:
    text: str = p.native["sql"]
    return text


# --- values never enter the SQL text ----------------------------------------------------------


@pytest.mark.parametrize("value", ["x'); DROP --", 'a" OR true OR "', "@p9 x", 5, True, None, 2.5])
def test_values_travel_as_parameters_never_as_text(value: Any) -> None:
    p = plan({"status": value})
    if isinstance(value, str):
        assert value not in sql(p)
        assert value in p.native["parameters"].values()
    assert "@p0" in sql(p)


def test_a_field_name_outside_the_safe_set_is_not_pushed() -> None:
    p = plan({"we ird": "x"})
    assert "WHERE" not in sql(p)
    assert p.residual == {"we ird": {"$eq": "x"}}


def test_unused_parameters_are_not_sent() -> None:
    # the regex leaves its parameter-free residual; only @p0 of the pushed term is sent
    p = plan({"a": "x", "b": {"$regex": "^a"}})
    assert list(p.native["parameters"]) == ["@p0"]


# --- exact, approximate, residual ---------------------------------------------------------------


def test_string_equality_is_exact_with_array_containment() -> None:
    p = plan({"status": "open"})
    assert 'ARRAY_CONTAINS(c["v"]["status"], @p0)' in sql(p)
    assert 'IS_DEFINED(c["v"]["status"]) AND c["v"]["status"] = @p0' in sql(p)
    assert p.exact == {"status": {"$eq": "open"}}
    assert p.residual is None and p.residual_node is None


def test_number_equality_lets_tagged_numbers_through_to_the_residual() -> None:
    p = plan({"n": 1})
    assert "c.tn = true" in sql(p)
    assert p.exact is None
    assert p.approximate == {"n": {"$eq": 1}}
    assert p.residual == {"n": {"$eq": 1}}


def test_null_equality_matches_missing_null_and_arrays_holding_null() -> None:
    p = plan({"a": None})
    text = sql(p)
    assert 'NOT IS_DEFINED(c["v"]["a"])' in text and 'IS_NULL(c["v"]["a"])' in text
    assert p.residual is None


def test_ranges_are_type_guarded_and_approximate_on_arrays() -> None:
    p = plan({"s": {"$gt": "b"}, "n": {"$lte": 4}})
    text = sql(p)
    assert 'IS_STRING(c["v"]["s"]) AND c["v"]["s"] > @p0' in text
    assert 'IS_NUMBER(c["v"]["n"]) AND c["v"]["n"] <= @p1' in text
    assert 'IS_ARRAY(c["v"]["s"])' in text
    assert p.exact is None and p.residual is not None


def test_string_ranges_beyond_the_surrogates_stay_residual() -> None:
    # the server compares UTF-16 code units; code point order differs past U+D800
    p = plan({"s": {"$gt": "\ue000"}})
    assert "WHERE" not in sql(p)
    assert p.residual == {"s": {"$gt": "\ue000"}}


@pytest.mark.parametrize(
    "value",
    [Decimal("1"), 2**53 + 1, datetime(2024, 1, 1, tzinfo=UTC), b"x", [1], {"x": 1}],
)
def test_values_cosmos_cannot_compare_exactly_stay_residual(value: Any) -> None:
    p = plan({"a": value})
    assert "WHERE" not in sql(p)
    assert p.residual is not None


def test_negation_is_pushed_only_over_an_exact_condition() -> None:
    exact = plan({"s": {"$ne": "x"}})
    assert sql(exact).count("NOT") == 1 and exact.residual is None
    approximate = plan({"n": {"$ne": 1}})
    assert "WHERE" not in sql(approximate)
    assert approximate.residual == {"n": {"$ne": 1}}


def test_or_is_pushed_only_when_every_branch_is() -> None:
    both = plan({"$or": [{"s": "x"}, {"t": True}]})
    assert " OR " in sql(both) and both.residual is None
    partial = plan({"$or": [{"s": "x"}, {"t": {"$regex": "a"}}]})
    assert "WHERE" not in sql(partial)


def test_exists_in_and_size_are_exact() -> None:
    p = plan({"a": {"$exists": False}, "s": {"$in": ["x", "y"]}, "arr": {"$size": 2}})
    text = sql(p)
    assert 'NOT IS_DEFINED(c["v"]["a"])' in text
    assert 'ARRAY_LENGTH(c["v"]["arr"]) = @p' in text
    assert p.residual is None


def test_dotted_paths_stay_residual() -> None:
    p = plan({"a.b": "x"})
    assert "WHERE" not in sql(p) and p.residual == {"a.b": {"$eq": "x"}}


def test_deep_nesting_stays_residual_for_the_servers_parser() -> None:
    deep = parse_filter({"$or": [{"$and": [{"$nor": [{"s": "x"}, {"t": "y"}]}, {"u": "z"}]}]})
    fragment = compile_node(deep, Parameters())
    assert fragment is None or fragment.nesting <= MAX_NESTING


# --- access paths, limits, sort -----------------------------------------------------------------


def test_key_equality_is_a_point_read() -> None:
    p = plan({"id": "a/b"})
    assert p.access_path == "key"
    assert p.native == {"read_items": ["sa%2Fb"]}


def test_compound_key_prefix_scopes_the_partition() -> None:
    p = plan({"tenant": "t1", "n": {"$gt": 1}}, spec=PAIR)
    assert "c.pk = @p0" in sql(p)
    assert p.native["parameters"]["@p0"] == "st1"


def test_limit_becomes_top_only_when_nothing_is_rechecked() -> None:
    assert sql(plan({"s": "x"}, limit=5)).startswith("SELECT TOP 5 ")
    assert plan({"s": "x"}, limit=5).limit_pushed
    assert not plan({"n": 1}, limit=5).limit_pushed
    assert not plan({"s": "x"}, limit=5, skip=1).limit_pushed
    assert not plan({"s": "x"}, limit=5, sort=[("s", 1)]).limit_pushed


def test_sort_is_done_in_process() -> None:
    p = plan({"s": "x"}, sort=[("n", -1)])
    assert p.client_sort and not p.sort_pushed and "ORDER BY" not in sql(p)


def test_explain_shows_sql_parameters_and_residual() -> None:
    text = str(plan({"s": "x", "n": {"$gt": 1}}))
    assert "native sql: SELECT c.id, c._etag, c.raw FROM c WHERE" in text
    assert "native parameters: {'@p0': 'x', '@p1': 1}" in text
    assert "re-checked in process: {'n': {'$gt': 1}}" in text


# --- codec ----------------------------------------------------------------------------------------


def test_keys_encode_reversibly_without_forbidden_characters() -> None:
    for value in ["a/b\\c?d#e", "%2F", "x,y", 7, -3, datetime(2024, 1, 1, tzinfo=UTC)]:
        text = encode_key_part(value)
        assert not set(text) & set("/\\?#")
        assert decode_key_part(text) == value
    assert encode_key(("a,b", 1)) == "sa%2Cb,i1"


def test_items_round_trip_every_portable_type_exactly() -> None:
    doc = {
        "id": "k",
        "f": 1.0,
        "z": -0.0,
        "big": 2**63 - 1,
        "d": Decimal("1.50"),
        "t": datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        "b": b"\x00\x01",
        "nested": {"y": [1, "x", None, True]},
    }
    item = encode_item(doc, ("id",))
    back = decode_item(item)
    assert list(back) == list(doc)
    for field, value in doc.items():
        assert type(back[field]) is type(value) and repr(back[field]) == repr(value)


def test_the_queryable_copy_tags_what_cosmos_cannot_compare() -> None:
    item = encode_item({"id": "k", "n": 2**60, "s": "x", "t": b"x"}, ("id",))
    assert item["v"] == {"id": "k", "n": {"$t": "num"}, "s": "x", "t": {"$t": "bin"}}
    assert item["tn"] is True
    assert encode_item({"id": "k", "n": 2**53}, ("id",))["tn"] is False
