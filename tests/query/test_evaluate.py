"""The reference evaluator against MongoDB's documented matching semantics.

Each group cites the manual page its cases are taken from. Where the manual is silent the
comment names the MongoDB source or jstest that pins the server's behaviour.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncdb.query.evaluate import MISSING, matches, resolve
from asyncdb.query.parse import parse_filter


def m(spec: dict[str, Any], doc: dict[str, Any]) -> bool:
    return matches(parse_filter(spec), doc)


def which(spec: dict[str, Any], docs: dict[str, dict[str, Any]]) -> set[str]:
    """The names of the documents in ``docs`` that ``spec`` matches."""
    node = parse_filter(spec)
    return {name for name, doc in docs.items() if matches(node, doc)}


T0 = datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)


# --- $eq -------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/eq/


def test_eq_matches_equal_scalar() -> None:
    assert m({"qty": 20}, {"qty": 20})
    assert not m({"qty": 20}, {"qty": 21})


def test_explicit_eq_is_the_same_as_implicit_equality() -> None:
    docs = {"a": {"qty": 20}, "b": {"qty": 25}, "c": {}}
    assert which({"qty": {"$eq": 20}}, docs) == which({"qty": 20}, docs) == {"a"}


def test_eq_on_embedded_field_with_dot_notation() -> None:
    assert m({"item.name": "ab"}, {"item": {"name": "ab", "code": "123"}})
    assert not m({"item.name": "cd"}, {"item": {"name": "ab", "code": "123"}})


def test_eq_on_embedded_document_needs_exact_document_including_field_order() -> None:
    doc = {"item": {"name": "ab", "code": "123"}}
    assert m({"item": {"name": "ab", "code": "123"}}, doc)
    assert not m({"item": {"code": "123", "name": "ab"}}, doc)
    assert not m({"item": {"name": "ab"}}, doc)


def test_eq_scalar_matches_any_array_element() -> None:
    assert m({"tags": "B"}, {"tags": ["A", "B"]})
    assert not m({"tags": "C"}, {"tags": ["A", "B"]})


def test_eq_array_matches_the_whole_array_in_order() -> None:
    assert m({"tags": ["A", "B"]}, {"tags": ["A", "B"]})
    assert not m({"tags": ["A", "B"]}, {"tags": ["B", "A"]})
    assert not m({"tags": ["A", "B"]}, {"tags": ["A", "B", "C"]})


def test_eq_array_matches_an_element_equal_to_the_array() -> None:
    assert m({"tags": ["A", "B"]}, {"tags": [["A", "B"], "C"]})
    assert not m({"tags": ["A", "B"]}, {"tags": [["A", "C"], "B"]})


def test_eq_strings_are_case_sensitive() -> None:
    assert not m({"s": "abc"}, {"s": "ABC"})


def test_eq_numbers_compare_by_value_across_int_float_and_decimal() -> None:
    # bson-type-comparison-order: "all numeric types are considered equivalent in comparisons"
    for stored in (1, 1.0, Decimal("1"), Decimal("1.000")):
        for query in (1, 1.0, Decimal("1")):
            assert m({"n": query}, {"n": stored}), (query, stored)


def test_eq_decimal_is_not_equal_to_the_nearest_double() -> None:
    # numbers compare by exact value; the double 0.1 is not exactly one tenth
    assert not m({"n": Decimal("0.1")}, {"n": 0.1})
    assert m({"n": Decimal("0.5")}, {"n": 0.5})


def test_eq_true_never_equals_one() -> None:
    assert not m({"flag": True}, {"flag": 1})
    assert not m({"flag": 1}, {"flag": True})
    assert not m({"flag": False}, {"flag": 0})
    assert m({"flag": True}, {"flag": True})


def test_eq_number_never_equals_its_string() -> None:
    assert not m({"n": 5}, {"n": "5"})
    assert not m({"n": "5"}, {"n": 5})


def test_eq_matches_datetimes_at_millisecond_precision() -> None:
    stored = T0.replace(microsecond=6000)
    assert m({"ts": T0.replace(microsecond=6999)}, {"ts": stored})
    assert not m({"ts": T0.replace(microsecond=7000)}, {"ts": stored})


def test_eq_matches_same_instant_in_another_timezone() -> None:
    other = T0.astimezone(timezone(timedelta(hours=5)))
    assert m({"ts": other}, {"ts": T0.replace(microsecond=6000)})


def test_eq_matches_bytes() -> None:
    assert m({"b": b"\x00\x01"}, {"b": b"\x00\x01"})
    assert not m({"b": b"\x00\x01"}, {"b": b"\x00\x02"})


# --- null and missing fields -----------------------------------------------------------------
# https://www.mongodb.com/docs/manual/tutorial/query-for-null-fields/
# and the mongodb/mongo jstest null_query_semantics.js for the array cases.

NULL_DOCS: dict[str, dict[str, Any]] = {
    "a_null": {"a": None},
    "no_a": {},
    "a_number": {"a": 4},
    "a_zero": {"a": 0},
    "a_empty_string": {"a": ""},
    "a_false": {"a": False},
    "a_empty_subobject": {"a": {}},
    "a_empty_array": {"a": []},
    "a_value_array_with_null": {"a": [1, None]},
    "a_value_array_no_nulls": {"a": [1, "x"]},
}


def test_null_equality_matches_null_and_missing_fields_only() -> None:
    assert which({"a": None}, NULL_DOCS) == {"a_null", "no_a", "a_value_array_with_null"}


def test_eq_null_explicit_matches_missing_field() -> None:
    assert m({"a": {"$eq": None}}, {})


def test_type_null_matches_only_null_values_not_missing() -> None:
    assert which({"a": {"$type": "null"}}, NULL_DOCS) == {"a_null", "a_value_array_with_null"}
    assert which({"a": {"$type": 10}}, NULL_DOCS) == {"a_null", "a_value_array_with_null"}


def test_exists_false_matches_only_missing_field_not_null() -> None:
    assert which({"a": {"$exists": False}}, NULL_DOCS) == {"no_a"}


def test_ne_null_excludes_null_and_missing() -> None:
    expected = set(NULL_DOCS) - {"a_null", "no_a", "a_value_array_with_null"}
    assert which({"a": {"$ne": None}}, NULL_DOCS) == expected


def test_gte_null_matches_missing_and_null() -> None:
    assert which({"a": {"$gte": None}}, NULL_DOCS) == {"a_null", "no_a", "a_value_array_with_null"}


def test_lte_null_matches_missing_and_null() -> None:
    assert which({"a": {"$lte": None}}, NULL_DOCS) == {"a_null", "no_a", "a_value_array_with_null"}


def test_gt_and_lt_null_match_nothing() -> None:
    assert which({"a": {"$gt": None}}, NULL_DOCS) == set()
    assert which({"a": {"$lt": None}}, NULL_DOCS) == set()


def test_not_gte_null_matches_everything_not_null_or_missing() -> None:
    expected = set(NULL_DOCS) - {"a_null", "no_a", "a_value_array_with_null"}
    assert which({"a": {"$not": {"$gte": None}}}, NULL_DOCS) == expected


def test_in_with_null_matches_missing_field() -> None:
    assert which({"a": {"$in": [None, 4]}}, NULL_DOCS) == {
        "a_null",
        "no_a",
        "a_number",
        "a_value_array_with_null",
    }


def test_nin_with_null_excludes_missing_field() -> None:
    got = which({"a": {"$nin": [None, 4]}}, NULL_DOCS)
    assert "no_a" not in got and "a_null" not in got and "a_number" not in got
    assert "a_zero" in got


def test_nin_null_and_empty_array_excludes_empty_array_and_nested_empty_array() -> None:
    docs = {"empty": {"a": []}, "double": {"a": [[]]}, "one": {"a": [1]}}
    assert which({"a": {"$nin": [None, []]}}, docs) == {"one"}


def test_all_null_matches_missing_field() -> None:
    # $all: [x] is equivalent to {$and: [{a: x}]} (query/all)
    assert m({"a": {"$all": [None]}}, {})


DOTTED_NULL_DOCS: dict[str, dict[str, Any]] = {
    "no_a": {},
    "a_null": {"a": None},
    "a_number": {"a": 4},
    "a_empty_subobject": {"a": {}},
    "a_subobject_b_null": {"a": {"b": None}},
    "a_subobject_b_not_null": {"a": {"b": "hi"}},
    "a_object_array_some_b_missing": {"a": [{"b": 3}, {}]},
    "a_object_array_some_b_nulls": {"a": [{"b": None}, {"b": 3}]},
    "a_object_array_no_b_nulls": {"a": [{"b": 1}, {"b": 3}]},
    "a_value_array": {"a": [1, "string", 4]},
    "a_empty_array": {"a": []},
    "a_double_array": {"a": [[]]},
    "a_mixed_array": {"a": [5, {"b": 5}]},
}


def test_dotted_null_matches_non_document_parent_and_documents_missing_the_field() -> None:
    got = which({"a.b": None}, DOTTED_NULL_DOCS)
    assert {
        "no_a",
        "a_null",
        "a_number",
        "a_empty_subobject",
        "a_subobject_b_null",
        "a_object_array_some_b_missing",
        "a_object_array_some_b_nulls",
    } <= got
    assert "a_subobject_b_not_null" not in got
    assert "a_object_array_no_b_nulls" not in got


def test_dotted_null_matches_arrays_without_documents() -> None:
    # MongoDB 9.0 (SERVER-36681, null_query_semantics.js at FCV 9.0): an array element that is
    # not a document, and an empty array, leave "a.b" missing, so {"a.b": null} matches.
    got = which({"a.b": None}, DOTTED_NULL_DOCS)
    assert {"a_value_array", "a_empty_array", "a_double_array", "a_mixed_array"} <= got


def test_dotted_ne_null_matches_only_where_every_value_is_present_and_not_null() -> None:
    # mongodb/mongo jstest for SERVER-36681 ($ne: null): {"a.b": {$ne: null}} counts 0 for
    # {a: [1, {c: 1}]}, {a: [1]}, {a: []}, {a: [[]]}, {a: [{}]}, {}, {a: {}}, {a: null}
    docs = [{"a": [1, {"c": 1}]}, {"a": [1]}, {"a": []}, {"a": [[]]}, {"a": [{}]}, {}]
    docs += [{"a": {}}, {"a": None}]
    node = parse_filter({"a.b": {"$ne": None}})
    assert [d for d in docs if matches(node, d)] == []
    assert which({"a.b": {"$ne": None}}, DOTTED_NULL_DOCS) == {
        "a_subobject_b_not_null",
        "a_object_array_no_b_nulls",
    }


def test_dotted_in_null_matches_documents_in_array_missing_the_field() -> None:
    # mongodb/mongo jstest dotted_path_in_null.js (FCV 9.0)
    docs = {
        "1": {"a": [{"b": 5}]},
        "2": {"a": [{}]},
        "3": {"a": []},
        "4": {"a": [{}, {"b": 5}]},
        "5": {"a": [5, {"b": 5}]},
    }
    assert which({"a.b": {"$in": [None]}}, docs) == {"2", "3", "4", "5"}


def test_dotted_exists_false_matches_non_document_parents() -> None:
    docs = {
        "no_a": {},
        "a_empty_subobject": {"a": {}},
        "a_null": {"a": None},
        "a_number": {"a": 4},
        "a_b": {"a": {"b": None}},
        "a_values": {"a": [1, 2]},
    }
    assert which({"a.b": {"$exists": False}}, docs) == {
        "no_a",
        "a_empty_subobject",
        "a_null",
        "a_number",
        "a_values",
    }


# --- $ne and $nin ----------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/ne/
# https://www.mongodb.com/docs/manual/reference/operator/query/nin/


def test_ne_matches_missing_field() -> None:
    assert m({"quantity": {"$ne": 20}}, {"item": "nuts"})


def test_ne_matches_different_value_and_other_types() -> None:
    assert m({"quantity": {"$ne": 20}}, {"quantity": 30})
    assert m({"quantity": {"$ne": 20}}, {"quantity": "20"})
    assert not m({"quantity": {"$ne": 20}}, {"quantity": 20.0})


def test_ne_on_array_field_fails_when_any_element_equals() -> None:
    assert not m({"tags": {"$ne": "a"}}, {"tags": ["a", "b"]})
    assert m({"tags": {"$ne": "c"}}, {"tags": ["a", "b"]})


def test_ne_on_embedded_field_matches_missing_parent() -> None:
    assert m({"carrier.fee": {"$ne": 1}}, {"item": "x"})
    assert m({"carrier.fee": {"$ne": 1}}, {"carrier": {"name": "Shipit"}})
    assert not m({"carrier.fee": {"$ne": 1}}, {"carrier": {"fee": 1}})


def test_nin_matches_missing_field() -> None:
    assert m({"qty": {"$nin": [5, 15]}}, {"item": "x"})


def test_nin_excludes_value_in_list() -> None:
    assert not m({"qty": {"$nin": [5, 15]}}, {"qty": 15})
    assert m({"qty": {"$nin": [5, 15]}}, {"qty": 16})


def test_nin_on_array_field_excludes_when_any_element_is_listed() -> None:
    assert not m({"tags": {"$nin": ["school"]}}, {"tags": ["home", "school"]})
    assert m({"tags": {"$nin": ["work"]}}, {"tags": ["home", "school"]})


def test_nin_empty_list_matches_everything() -> None:
    assert m({"a": {"$nin": []}}, {"a": 1})
    assert m({"a": {"$nin": []}}, {})


# --- $gt $gte $lt $lte and type bracketing ---------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/gt/ (and gte, lt, lte)
# https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/ ("Type Bracketing")


def test_gt_matches_greater_numbers_only() -> None:
    assert m({"q": {"$gt": 20}}, {"q": 25})
    assert not m({"q": {"$gt": 20}}, {"q": 20})
    assert not m({"q": {"$gt": 20}}, {"q": 15})


def test_gte_includes_equal_value_across_numeric_types() -> None:
    assert m({"q": {"$gte": 20}}, {"q": 20.0})
    assert m({"q": {"$gte": Decimal("20")}}, {"q": 20})
    assert not m({"q": {"$gte": 20}}, {"q": 19.999})


def test_lt_and_lte_bounds() -> None:
    assert m({"q": {"$lt": 20}}, {"q": 19.5})
    assert not m({"q": {"$lt": 20}}, {"q": 20})
    assert m({"q": {"$lte": 20}}, {"q": 20})


def test_gt_number_never_matches_a_string() -> None:
    assert not m({"q": {"$gt": 4}}, {"q": "5"})
    assert not m({"q": {"$lt": 4}}, {"q": "3"})


def test_gt_string_never_matches_a_number() -> None:
    assert not m({"q": {"$gt": "4"}}, {"q": 5})


def test_lt_number_never_matches_null_or_missing() -> None:
    # null sorts below numbers but type bracketing keeps it out of numeric ranges
    assert not m({"q": {"$lt": 4}}, {"q": None})
    assert not m({"q": {"$lt": 4}}, {})


def test_gt_true_is_greater_than_false_and_never_a_number() -> None:
    assert m({"f": {"$gt": False}}, {"f": True})
    assert not m({"f": {"$gt": 0}}, {"f": True})
    assert not m({"f": {"$gte": True}}, {"f": 1})


def test_strings_compare_by_code_point() -> None:
    # "simple binary comparison" (bson-type-comparison-order, Strings)
    assert m({"s": {"$lt": "a"}}, {"s": "Z"})
    assert m({"s": {"$gt": "z"}}, {"s": "é"})
    assert m({"s": {"$gt": "\uffff"}}, {"s": "\U0001f600"})
    assert m({"s": {"$gt": "ab"}}, {"s": "abc"})
    assert not m({"s": {"$gt": "abc"}}, {"s": "ab"})


def test_datetime_range() -> None:
    doc = {"ts": T0}
    assert m({"ts": {"$gt": T0 - timedelta(seconds=1)}}, doc)
    assert not m({"ts": {"$gt": T0 + timedelta(seconds=1)}}, doc)
    assert not m({"ts": {"$gt": 0}}, doc)


def test_bytes_compare_by_length_before_content() -> None:
    # bson-type-comparison-order, BinData: first the length, then the subtype, then the bytes
    assert m({"b": {"$gt": b"\xff"}}, {"b": b"\x00\x00"})
    assert m({"b": {"$lt": b"\x02"}}, {"b": b"\x01"})


def test_range_on_array_matches_if_any_element_is_in_range() -> None:
    assert m({"dim": {"$gt": 25}}, {"dim": [14, 21.5, 30]})
    assert not m({"dim": {"$gt": 30}}, {"dim": [14, 21.5, 30]})


def test_compound_range_on_array_may_be_met_by_different_elements() -> None:
    # query-arrays: {dim_cm: {$gt: 15, $lt: 20}} - one element > 15, another < 20
    assert m({"dim": {"$gt": 15, "$lt": 20}}, {"dim": [10, 25]})
    assert m({"dim": {"$gt": 15, "$lt": 20}}, {"dim": [18]})


def test_elem_match_range_needs_one_element_meeting_all_conditions() -> None:
    assert not m({"dim": {"$elemMatch": {"$gt": 15, "$lt": 20}}}, {"dim": [10, 25]})
    assert m({"dim": {"$elemMatch": {"$gt": 15, "$lt": 20}}}, {"dim": [10, 18, 25]})


def test_range_does_not_unwrap_nested_arrays() -> None:
    assert not m({"a": {"$gt": 4}}, {"a": [[5]]})
    assert m({"a": {"$gt": 4}}, {"a": [[5], 6]})


def test_gt_on_document_compares_field_by_field() -> None:
    assert m({"d": {"$gt": {"a": 1}}}, {"d": {"a": 2}})
    assert m({"d": {"$gt": {"a": 1}}}, {"d": {"a": 1, "b": 0}})
    assert not m({"d": {"$gt": {"a": 1}}}, {"d": {"a": 0, "b": 9}})


# --- $in -------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/in/


def test_in_matches_any_listed_value() -> None:
    assert m({"qty": {"$in": [5, 15]}}, {"qty": 15})
    assert not m({"qty": {"$in": [5, 15]}}, {"qty": 10})


def test_in_matches_array_field_with_any_listed_element() -> None:
    assert m({"tags": {"$in": ["home", "work"]}}, {"tags": ["school", "home"]})
    assert not m({"tags": {"$in": ["gym"]}}, {"tags": ["school", "home"]})


def test_in_matches_whole_array_value() -> None:
    assert m({"tags": {"$in": [["a", "b"]]}}, {"tags": ["a", "b"]})
    assert not m({"tags": {"$in": [["b", "a"]]}}, {"tags": ["a", "b"]})


def test_in_empty_list_matches_nothing() -> None:
    assert not m({"a": {"$in": []}}, {"a": 1})
    assert not m({"a": {"$in": []}}, {})


def test_in_applies_type_bracketing() -> None:
    assert not m({"a": {"$in": [1]}}, {"a": True})
    assert not m({"a": {"$in": ["1"]}}, {"a": 1})
    assert m({"a": {"$in": [1.0]}}, {"a": 1})


# --- $exists ---------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/exists/


def test_exists_true_matches_fields_holding_null() -> None:
    assert m({"a": {"$exists": True}}, {"a": None})
    assert not m({"a": {"$exists": True}}, {"b": 1})


def test_exists_false_does_not_match_present_field() -> None:
    assert not m({"a": {"$exists": False}}, {"a": 0})


def test_exists_on_dotted_path_through_array_of_documents() -> None:
    assert m({"a.b": {"$exists": True}}, {"a": [{"c": 1}, {"b": 2}]})
    assert not m({"a.b": {"$exists": True}}, {"a": [{"c": 1}, 5]})


def test_exists_with_numeric_argument_uses_truthiness() -> None:
    assert m({"a": {"$exists": 1}}, {"a": 1})
    assert m({"a": {"$exists": 0}}, {})


def test_exists_on_empty_array_is_true() -> None:
    assert m({"a": {"$exists": True}}, {"a": []})


# --- $type -----------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/type/


@pytest.mark.parametrize(
    ("value", "alias", "code"),
    [
        (1.5, "double", 1),
        ("s", "string", 2),
        ({"x": 1}, "object", 3),
        (b"x", "binData", 5),
        (True, "bool", 8),
        (T0, "date", 9),
        (None, "null", 10),
        (7, "int", 16),
        (2**40, "long", 18),
        (Decimal("1.5"), "decimal", 19),
    ],
)
def test_type_matches_by_alias_and_by_number(value: Any, alias: str, code: int) -> None:
    assert m({"a": {"$type": alias}}, {"a": value})
    assert m({"a": {"$type": code}}, {"a": value})


def test_type_does_not_match_other_types() -> None:
    assert not m({"a": {"$type": "string"}}, {"a": 1})
    assert not m({"a": {"$type": "int"}}, {"a": 1.0})
    assert not m({"a": {"$type": "bool"}}, {"a": 1})
    assert not m({"a": {"$type": "int"}}, {"a": True})


def test_type_number_matches_every_numeric_type_but_not_bool() -> None:
    for value in (1, 2**40, 1.5, Decimal("2")):
        assert m({"a": {"$type": "number"}}, {"a": value})
    assert not m({"a": {"$type": "number"}}, {"a": True})
    assert not m({"a": {"$type": "number"}}, {"a": "1"})


def test_type_array_matches_array_fields() -> None:
    assert m({"a": {"$type": "array"}}, {"a": []})
    assert m({"a": {"$type": 4}}, {"a": [1]})
    assert not m({"a": {"$type": "array"}}, {"a": {"0": 1}})


def test_type_matches_array_elements_of_the_type() -> None:
    assert m({"a": {"$type": "string"}}, {"a": [1, "x"]})
    assert not m({"a": {"$type": "string"}}, {"a": [1, 2]})


def test_type_list_matches_any_listed_type() -> None:
    assert m({"a": {"$type": ["string", "double"]}}, {"a": 1.5})
    assert not m({"a": {"$type": ["string", "double"]}}, {"a": 1})


def test_type_never_matches_missing_field() -> None:
    for alias in ("null", "object", "number", "array"):
        assert not m({"a": {"$type": alias}}, {})


# --- $regex ----------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/regex/


def test_regex_matches_substring() -> None:
    assert m({"sku": {"$regex": "789$"}}, {"sku": "abc789"})
    assert not m({"sku": {"$regex": "789$"}}, {"sku": "789abc"})


def test_regex_option_i_is_case_insensitive() -> None:
    assert m({"sku": {"$regex": "^ABC", "$options": "i"}}, {"sku": "abc123"})
    assert not m({"sku": {"$regex": "^ABC"}}, {"sku": "abc123"})


def test_regex_option_m_anchors_at_line_starts() -> None:
    doc = {"d": "First line\nSecond line"}
    assert m({"d": {"$regex": "^S", "$options": "m"}}, doc)
    assert not m({"d": {"$regex": "^S"}}, doc)


def test_regex_option_s_lets_dot_match_newline() -> None:
    doc = {"d": "One\nTwo"}
    assert m({"d": {"$regex": "one.two", "$options": "si"}}, doc)
    assert not m({"d": {"$regex": "one.two", "$options": "i"}}, doc)


def test_regex_option_x_ignores_pattern_whitespace_and_comments() -> None:
    pattern = "abc # category code\n123"
    assert m({"sku": {"$regex": pattern, "$options": "x"}}, {"sku": "abc123"})
    assert not m({"sku": {"$regex": pattern}}, {"sku": "abc123"})


def test_regex_compiled_pattern_value_carries_its_flags() -> None:
    assert m({"sku": re.compile("^abc", re.I)}, {"sku": "ABC1"})
    assert not m({"sku": re.compile("^abc")}, {"sku": "ABC1"})


def test_regex_matches_any_string_element_of_array() -> None:
    assert m({"tags": {"$regex": "^sc"}}, {"tags": ["home", "school"]})


def test_regex_never_matches_non_strings() -> None:
    assert not m({"a": {"$regex": "1"}}, {"a": 1})
    assert not m({"a": {"$regex": ".*"}}, {})
    assert not m({"a": {"$regex": ".*"}}, {"a": None})


def test_not_regex_matches_non_matching_and_missing() -> None:
    assert m({"item": {"$not": re.compile("^p.*")}}, {"item": "apple"})
    assert m({"item": {"$not": re.compile("^p.*")}}, {})
    assert not m({"item": {"$not": re.compile("^p.*")}}, {"item": "pear"})


# --- $all ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/all/


def test_all_needs_every_value_in_any_order() -> None:
    assert m({"tags": {"$all": ["ssl", "security"]}}, {"tags": ["security", "x", "ssl"]})
    assert not m({"tags": {"$all": ["ssl", "security"]}}, {"tags": ["ssl"]})


def test_all_with_nested_array_matches_whole_array_or_element() -> None:
    # { tags: { $all: [ [ "ssl", "security" ] ] } } is { $and: [ { tags: [ "ssl", "security" ] } ] }
    spec = {"tags": {"$all": [["ssl", "security"]]}}
    assert m(spec, {"tags": [["ssl", "security"], "x"]})
    assert m(spec, {"tags": ["ssl", "security"]})
    assert not m(spec, {"tags": ["security", "ssl"]})


def test_all_single_value_matches_non_array_field() -> None:
    assert m({"tags": {"$all": ["ssl"]}}, {"tags": "ssl"})


def test_all_empty_list_matches_nothing() -> None:
    assert not m({"tags": {"$all": []}}, {"tags": ["ssl"]})
    assert not m({"tags": {"$all": []}}, {"tags": []})


def test_all_on_array_of_documents_through_dotted_path() -> None:
    doc = {"qty": [{"size": "S", "num": 10}, {"size": "M", "num": 45}]}
    assert m({"qty.size": {"$all": ["S", "M"]}}, doc)
    assert not m({"qty.size": {"$all": ["S", "L"]}}, doc)


# --- $size -----------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/size/


def test_size_matches_exact_element_count() -> None:
    assert m({"a": {"$size": 2}}, {"a": [1, 1]})
    assert not m({"a": {"$size": 2}}, {"a": [1]})
    assert not m({"a": {"$size": 2}}, {"a": [1, 2, 3]})


def test_size_zero_matches_empty_array_only() -> None:
    assert m({"a": {"$size": 0}}, {"a": []})
    assert not m({"a": {"$size": 0}}, {})
    assert not m({"a": {"$size": 0}}, {"a": None})


def test_size_does_not_match_non_arrays() -> None:
    assert not m({"a": {"$size": 1}}, {"a": "x"})
    assert not m({"a": {"$size": 1}}, {"a": {"k": 1}})


def test_size_counts_the_outer_array_not_nested_ones() -> None:
    assert m({"a": {"$size": 1}}, {"a": [[1, 2]]})
    assert not m({"a": {"$size": 2}}, {"a": [[1, 2]]})


def test_size_reaches_arrays_inside_array_of_documents() -> None:
    assert m({"a.b": {"$size": 2}}, {"a": [{"b": [1]}, {"b": [1, 2]}]})


# --- $elemMatch ------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/elemMatch/


def test_elem_match_scalar_form_needs_one_element_in_range() -> None:
    spec = {"results": {"$elemMatch": {"$gte": 80, "$lt": 85}}}
    assert m(spec, {"results": [82, 85, 88]})
    assert not m(spec, {"results": [75, 88, 89]})


def test_elem_match_document_form_needs_one_element_meeting_every_condition() -> None:
    spec = {"results": {"$elemMatch": {"product": "xyz", "score": {"$gte": 8}}}}
    assert m(spec, {"results": [{"product": "abc", "score": 10}, {"product": "xyz", "score": 9}]})
    assert not m(
        spec, {"results": [{"product": "abc", "score": 10}, {"product": "xyz", "score": 5}]}
    )


def test_dotted_conditions_without_elem_match_may_use_different_elements() -> None:
    doc = {"results": [{"product": "abc", "score": 10}, {"product": "xyz", "score": 5}]}
    assert m({"results.product": "xyz", "results.score": {"$gte": 8}}, doc)


def test_elem_match_never_matches_non_array_field() -> None:
    assert not m({"a": {"$elemMatch": {"$eq": 1}}}, {"a": 1})
    assert not m({"a": {"$elemMatch": {"b": 1}}}, {"a": {"b": 1}})
    assert not m({"a": {"$elemMatch": {"$eq": None}}}, {})


def test_elem_match_scalar_form_does_not_unwrap_nested_arrays() -> None:
    assert not m({"a": {"$elemMatch": {"$eq": 1}}}, {"a": [[1, 2]]})
    assert m({"a": {"$elemMatch": {"$eq": [1, 2]}}}, {"a": [[1, 2]]})


def test_elem_match_eq_null_matches_null_element_only() -> None:
    # null_query_semantics.js: {a: {$elemMatch: {$eq: null}}}
    assert m({"a": {"$elemMatch": {"$eq": None}}}, {"a": [1, None]})
    assert not m({"a": {"$elemMatch": {"$eq": None}}}, {"a": [{}]})
    assert not m({"a": {"$elemMatch": {"$eq": None}}}, {"a": []})


def test_elem_match_document_form_treats_nested_array_as_a_document() -> None:
    # null_query_semantics.js: {a: {$elemMatch: {b: {$eq: null}}}} matches {a: [[]]}, and
    # {a: {$elemMatch: {b: {$ne: null}}}} does not
    assert m({"a": {"$elemMatch": {"b": None}}}, {"a": [[]]})
    assert not m({"a": {"$elemMatch": {"b": {"$ne": None}}}}, {"a": [[]]})
    assert not m({"a": {"$elemMatch": {"b": None}}}, {"a": [1, "x"]})


def test_elem_match_with_or_inside() -> None:
    spec = {"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 2}]}}}
    assert m(spec, {"a": [{"c": 2}]})
    assert not m(spec, {"a": [{"c": 3}]})


def test_elem_match_with_not_inside_scalar_form() -> None:
    spec = {"a": {"$elemMatch": {"$not": {"$gt": 5}}}}
    assert m(spec, {"a": [9, 3]})
    assert not m(spec, {"a": [9, 7]})


def test_nested_elem_match() -> None:
    spec = {"a": {"$elemMatch": {"b": {"$elemMatch": {"$gt": 5}}}}}
    assert m(spec, {"a": [{"b": [1]}, {"b": [2, 9]}]})
    assert not m(spec, {"a": [{"b": [1]}, {"b": 9}]})


# --- $mod ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/mod/


def test_mod_selects_values_with_remainder() -> None:
    node = parse_filter({"qty": {"$mod": [4, 0]}})
    got = [q for q in (0, 5, 12) if matches(node, {"qty": q})]
    assert got == [0, 12]


def test_mod_truncates_float_divisor_and_remainder_toward_zero() -> None:
    for divisor in (4.0, 4.5, 4.99):
        assert m({"qty": {"$mod": [divisor, 0]}}, {"qty": 12})
        assert not m({"qty": {"$mod": [divisor, 0]}}, {"qty": 5})


def test_mod_truncates_the_field_value_toward_zero() -> None:
    assert m({"qty": {"$mod": [4, 1]}}, {"qty": 5.9})
    assert m({"qty": {"$mod": [4, -1]}}, {"qty": -5.9})
    assert m({"qty": {"$mod": [4, 1]}}, {"qty": Decimal("5.9")})


def test_mod_negative_dividend_gives_negative_remainder() -> None:
    assert m({"qty": {"$mod": [4, -1]}}, {"qty": -5})
    assert not m({"qty": {"$mod": [4, 3]}}, {"qty": -5})
    assert m({"qty": {"$mod": [4, -0]}}, {"qty": -12})


def test_mod_negative_divisor_does_not_change_the_remainder_sign() -> None:
    # C++/JavaScript %: the sign follows the dividend
    assert m({"qty": {"$mod": [-4, 1]}}, {"qty": 5})


def test_mod_never_matches_non_numbers() -> None:
    assert not m({"qty": {"$mod": [2, 0]}}, {"qty": "4"})
    assert not m({"qty": {"$mod": [2, 0]}}, {"qty": False})
    assert not m({"qty": {"$mod": [2, 0]}}, {})


def test_mod_matches_any_array_element() -> None:
    assert m({"qty": {"$mod": [3, 0]}}, {"qty": [1, 9]})


# --- $not ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/not/


def test_not_matches_missing_field_and_other_types() -> None:
    spec = {"price": {"$not": {"$gt": 1.99}}}
    assert m(spec, {"price": 1.99})
    assert m(spec, {})
    assert m(spec, {"price": "cheap"})
    assert not m(spec, {"price": 2.5})


def test_not_differs_from_the_opposite_comparison() -> None:
    assert m({"price": {"$not": {"$gt": 1.99}}}, {})
    assert not m({"price": {"$lte": 1.99}}, {})


def test_not_with_several_conditions_negates_their_conjunction() -> None:
    spec = {"a": {"$not": {"$gt": 1, "$lt": 5}}}
    assert not m(spec, {"a": 3})
    assert m(spec, {"a": 7})


def test_not_on_array_field_negates_the_any_element_rule() -> None:
    assert not m({"a": {"$not": {"$gt": 5}}}, {"a": [1, 9]})
    assert m({"a": {"$not": {"$gt": 10}}}, {"a": [1, 9]})


# --- $nor $and $or ---------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/query/nor/
# https://www.mongodb.com/docs/manual/reference/operator/query/and/
# https://www.mongodb.com/docs/manual/reference/operator/query/or/


def test_nor_matches_documents_failing_every_clause_including_missing_fields() -> None:
    spec = {"$nor": [{"price": 1.99}, {"sale": True}]}
    assert m(spec, {"price": 2, "sale": False})
    assert m(spec, {"price": 2})
    assert m(spec, {})
    assert not m(spec, {"price": 1.99})
    assert not m(spec, {"sale": True})


def test_nor_with_exists_false_requires_field_present() -> None:
    spec = {"$nor": [{"price": 1.99}, {"price": {"$exists": False}}]}
    assert m(spec, {"price": 3})
    assert not m(spec, {})


def test_and_needs_every_clause() -> None:
    spec = {"$and": [{"price": {"$ne": 1.99}}, {"price": {"$exists": True}}]}
    assert m(spec, {"price": 2})
    assert not m(spec, {})
    assert not m(spec, {"price": 1.99})


def test_implicit_and_of_fields() -> None:
    assert m({"a": 1, "b": 2}, {"a": 1, "b": 2})
    assert not m({"a": 1, "b": 2}, {"a": 1, "b": 3})


def test_or_needs_any_clause() -> None:
    spec = {"$or": [{"qty": {"$lt": 20}}, {"price": 10}]}
    assert m(spec, {"qty": 30, "price": 10})
    assert m(spec, {"qty": 5})
    assert not m(spec, {"qty": 30, "price": 11})


def test_empty_filter_matches_everything() -> None:
    assert m({}, {})
    assert matches(parse_filter(None), {"a": 1})


# --- arrays ----------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/tutorial/query-arrays/


def test_array_exact_match_includes_order() -> None:
    assert m({"tags": ["red", "blank"]}, {"tags": ["red", "blank"]})
    assert not m({"tags": ["red", "blank"]}, {"tags": ["blank", "red"]})


def test_array_element_by_index_position() -> None:
    assert m({"dim.1": {"$gt": 25}}, {"dim": [14, 30]})
    assert not m({"dim.1": {"$gt": 25}}, {"dim": [30, 14]})


def test_array_index_beyond_length_is_missing() -> None:
    assert m({"dim.5": None}, {"dim": [1, 2]})
    assert not m({"dim.5": {"$exists": True}}, {"dim": [1, 2]})
    assert m({"dim.1": {"$exists": True}}, {"dim": [1, 2]})


def test_array_index_path_into_document_element() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}]}
    assert m({"a.1.b": 2}, doc)
    assert not m({"a.0.b": 2}, doc)


def test_numeric_path_part_on_document_is_a_field_name() -> None:
    assert m({"a.0": "x"}, {"a": {"0": "x"}})
    assert not m({"a.0": "x"}, {"a": {"1": "x"}})


def test_array_of_arrays_is_not_unwrapped_twice() -> None:
    assert not m({"a": 1}, {"a": [[1, 2]]})
    assert m({"a": [1, 2]}, {"a": [[1, 2]]})
    assert not m({"a.b": 1}, {"a": [[{"b": 1}]]})


def test_index_path_into_nested_array() -> None:
    assert m({"a.0.1": 2}, {"a": [[1, 2]]})


# --- embedded documents and arrays of documents ----------------------------------------------
# https://www.mongodb.com/docs/manual/tutorial/query-embedded-documents/
# https://www.mongodb.com/docs/manual/tutorial/query-array-of-documents/


def test_nested_dotted_path() -> None:
    doc = {"size": {"h": 14, "w": 21, "uom": {"name": "cm"}}}
    assert m({"size.uom.name": "cm"}, doc)
    assert m({"size.h": {"$lt": 15}}, doc)
    assert not m({"size.uom.name": "in"}, doc)


def test_array_of_documents_element_match_needs_exact_document() -> None:
    doc = {"instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}]}
    assert m({"instock": {"warehouse": "A", "qty": 5}}, doc)
    assert not m({"instock": {"qty": 5, "warehouse": "A"}}, doc)


def test_dotted_path_through_array_of_documents_matches_any_element() -> None:
    doc = {"instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}]}
    assert m({"instock.qty": {"$lte": 5}}, doc)
    assert not m({"instock.qty": {"$gt": 20}}, doc)


def test_indexed_path_in_array_of_documents() -> None:
    doc = {"instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}]}
    assert m({"instock.0.qty": {"$lte": 5}}, doc)
    assert not m({"instock.1.qty": {"$lte": 5}}, doc)


def test_dotted_path_reaches_arrays_inside_documents_inside_arrays() -> None:
    doc = {"a": [{"b": [{"c": 1}, {"c": 2}]}]}
    assert m({"a.b.c": 2}, doc)
    assert not m({"a.b.c": 3}, doc)


def test_dotted_path_skips_scalar_elements_for_non_null_values() -> None:
    assert not m({"a.b": 5}, {"a": [5]})
    assert m({"a.b": 5}, {"a": [5, {"b": 5}]})


# --- resolve ---------------------------------------------------------------------------------


def test_resolve_returns_array_whole_and_element_by_element() -> None:
    assert resolve({"a": [1, 2]}, ("a",)) == [[1, 2], 1, 2]


def test_resolve_without_leaf_expansion_returns_array_whole() -> None:
    assert resolve({"a": [1, 2]}, ("a",), expand_leaf=False) == [[1, 2]]


def test_resolve_missing_path_is_missing() -> None:
    assert resolve({}, ("a", "b")) == [MISSING]
    assert resolve({"a": 1}, ("a", "b")) == [MISSING]


def test_resolve_follows_documents_in_arrays() -> None:
    assert resolve({"a": [{"b": 1}, {"c": 2}]}, ("a", "b")) == [1, MISSING]


# --- properties ------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@given(VALUES, SCALARS)
def test_ne_is_the_negation_of_eq(stored: Any, query: Any) -> None:
    doc = {"a": stored}
    assert m({"a": {"$ne": query}}, doc) is not m({"a": query}, doc)


@given(VALUES, st.lists(SCALARS, max_size=3))
def test_nin_is_the_negation_of_in(stored: Any, values: list[Any]) -> None:
    doc = {"a": stored}
    assert m({"a": {"$nin": values}}, doc) is not m({"a": {"$in": values}}, doc)


@given(VALUES, st.lists(SCALARS, max_size=3))
def test_in_is_an_or_of_equalities(stored: Any, values: list[Any]) -> None:
    doc = {"a": stored}
    expected = any(m({"a": v}, doc) for v in values)
    assert m({"a": {"$in": values}}, doc) is expected
