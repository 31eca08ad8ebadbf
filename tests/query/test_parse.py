"""Parsing: the AST a filter turns into, and every rejection with the path it names.

DESIGN.md section 2: anything outside the supported language is rejected before any I/O with
``QueryError`` naming the offending path.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.errors import QueryError
from asyncdb.query.ast import (
    All,
    And,
    Cmp,
    ElemMatch,
    Eq,
    Exists,
    In,
    MatchAll,
    Mod,
    Nor,
    Not,
    Or,
    Regex,
    Size,
    SortKey,
    Type,
)
from asyncdb.query.parse import (
    parse_filter,
    parse_projection,
    parse_replacement,
    parse_sort,
    parse_update,
)


def rejected(spec: Any, parser: Any = parse_filter) -> QueryError:
    with pytest.raises(QueryError) as info:
        parser(spec)
    return info.value


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"x": value}
    return value


# --- the AST ---------------------------------------------------------------------------------


def test_empty_and_none_filters_match_all() -> None:
    assert parse_filter({}) == MatchAll()
    assert parse_filter(None) == MatchAll()


def test_implicit_equality_is_eq_with_split_path() -> None:
    assert parse_filter({"a.b.0": 5}) == Eq(("a", "b", "0"), 5)


def test_several_fields_become_and_in_order() -> None:
    assert parse_filter({"a": 1, "b": {"$gt": 2}}) == And((Eq(("a",), 1), Cmp(("b",), "$gt", 2)))


def test_ne_and_nin_are_negations_of_eq_and_in() -> None:
    assert parse_filter({"a": {"$ne": 1}}) == Not(("a",), Eq(("a",), 1))
    assert parse_filter({"a": {"$nin": [1, 2]}}) == Not(("a",), In(("a",), (1, 2)))


def test_logical_operators_parse_to_their_nodes() -> None:
    assert parse_filter({"$or": [{"a": 1}, {"b": 2}]}) == Or((Eq(("a",), 1), Eq(("b",), 2)))
    assert parse_filter({"$nor": [{"a": 1}]}) == Nor((Eq(("a",), 1),))
    assert parse_filter({"$and": [{"a": 1}]}) == Eq(("a",), 1)


def test_operators_parse_to_their_nodes() -> None:
    assert parse_filter({"a": {"$exists": False}}) == Exists(("a",), False)
    assert parse_filter({"a": {"$type": [2, "double"]}}) == Type(("a",), ("string", "double"))
    assert parse_filter({"a": {"$all": [1]}}) == All(("a",), (1,))
    assert parse_filter({"a": {"$size": 2.0}}) == Size(("a",), 2)
    assert parse_filter({"a": {"$mod": [4.5, -1.5]}}) == Mod(("a",), 4, -1)
    assert parse_filter({"a": {"$regex": "x", "$options": "mi"}}) == Regex(("a",), "x", "im")


def test_compiled_pattern_becomes_regex_with_flags() -> None:
    assert parse_filter({"a": re.compile("^x", re.I | re.S)}) == Regex(("a",), "^x", "is")


def test_elem_match_with_operators_is_scalar_form() -> None:
    node = parse_filter({"a": {"$elemMatch": {"$gt": 1}}})
    assert node == ElemMatch(("a",), Cmp((), "$gt", 1), scalar=True)


def test_elem_match_with_fields_is_document_form() -> None:
    node = parse_filter({"a": {"$elemMatch": {"b": 1}}})
    assert node == ElemMatch(("a",), Eq(("b",), 1), scalar=False)


def test_literal_values_are_normalised() -> None:
    node = parse_filter({"a": (1, 2)})
    assert node == Eq(("a",), [1, 2])
    when = datetime(2024, 5, 6, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    node = parse_filter({"ts": when})
    assert isinstance(node, Eq)
    assert node.value == datetime(2024, 5, 6, 10, 0, 0, 123000, tzinfo=UTC)
    assert node.value.tzinfo is UTC


def test_to_mongo_round_trips_a_filter() -> None:
    spec = {
        "a": {"$ne": 1},
        "b": {"$nin": [1]},
        "c": {"$elemMatch": {"$gt": 1, "$lt": 5}},
        "$or": [{"d": {"$regex": "x", "$options": "i"}}, {"e": {"$exists": True}}],
    }
    node = parse_filter(spec)
    assert parse_filter(node.to_mongo()) == node


def test_query_error_is_a_value_error_with_a_path() -> None:
    err = rejected({"a": {"$foo": 1}})
    assert isinstance(err, ValueError)
    assert err.path == "a.$foo"
    assert "a.$foo" in str(err)


# --- rejected operators ----------------------------------------------------------------------


@pytest.mark.parametrize("op", ["$where", "$function", "$expr", "$text"])
def test_top_level_unsupported_operator_is_rejected_with_its_path(op: str) -> None:
    assert rejected({op: "x"}).path == op


@pytest.mark.parametrize("op", ["$where", "$function", "$expr", "$text"])
def test_unsupported_operator_inside_and_names_the_nested_path(op: str) -> None:
    assert rejected({"$and": [{"a": 1}, {op: "x"}]}).path == f"$and.1.{op}"


def test_unknown_top_level_operator_is_rejected() -> None:
    assert rejected({"$foo": 1}).path == "$foo"


def test_unknown_field_operator_is_rejected() -> None:
    assert rejected({"a.b": {"$foo": 1}}).path == "a.b.$foo"


def test_function_as_field_operator_is_rejected() -> None:
    assert rejected({"a": {"$where": "1"}}).path == "a.$where"


def test_mixing_operators_and_fields_in_one_condition_is_rejected() -> None:
    assert rejected({"a": {"$gt": 1, "b": 2}}).path == "a.b"


@pytest.mark.parametrize("op", ["$in", "$nin", "$all"])
def test_list_operator_with_non_list_is_rejected(op: str) -> None:
    assert rejected({"a": {op: 5}}).path == f"a.{op}"
    assert rejected({"a": {op: {"x": 1}}}).path == f"a.{op}"


def test_regex_inside_in_is_rejected() -> None:
    assert rejected({"a": {"$in": [re.compile("x")]}}).path.startswith("a.$in")


def test_regex_with_unknown_flag_is_rejected_naming_options() -> None:
    err = rejected({"a": {"$regex": "x", "$options": "iu"}})
    assert err.path == "a.$options"
    assert "u" in str(err)


@pytest.mark.parametrize("flags", ["i", "m", "s", "x", "imsx"])
def test_regex_accepts_flags_imsx(flags: str) -> None:
    node = parse_filter({"a": {"$regex": "x", "$options": flags}})
    assert isinstance(node, Regex) and set(node.flags) == set(flags)


def test_regex_options_must_be_a_string() -> None:
    assert rejected({"a": {"$regex": "x", "$options": 1}}).path == "a.$options"


def test_options_without_regex_is_rejected() -> None:
    assert rejected({"a": {"$options": "i"}}).path == "a.$options"


def test_invalid_regular_expression_is_rejected() -> None:
    assert rejected({"a": {"$regex": "("}}).path == "a.$regex"


def test_regex_pattern_must_be_a_string() -> None:
    assert rejected({"a": {"$regex": 5}}).path == "a.$regex"


@pytest.mark.parametrize("arg", [[4], [4, 1, 2], [], "4,0", [4, "x"], [0, 0], [math.nan, 0]])
def test_malformed_mod_is_rejected(arg: Any) -> None:
    assert rejected({"a": {"$mod": arg}}).path == "a.$mod"


def test_mod_divisor_beyond_64_bits_is_rejected() -> None:
    # query/mod: an error if divisor or remainder "can't be represented using a 64-bit integer"
    assert rejected({"a": {"$mod": [2.0**64, 0]}}).path == "a.$mod"
    assert rejected({"a": {"$mod": [4, Decimal("1e30")]}}).path == "a.$mod"


@pytest.mark.parametrize("arg", [-1, 1.5, "2", True, None])
def test_size_needs_a_non_negative_integer(arg: Any) -> None:
    assert rejected({"a": {"$size": arg}}).path == "a.$size"


@pytest.mark.parametrize("arg", ["strin", 99, [], True, [2, "nope"]])
def test_unknown_type_is_rejected(arg: Any) -> None:
    assert rejected({"a": {"$type": arg}}).path == "a.$type"


def test_exists_needs_a_boolean() -> None:
    assert rejected({"a": {"$exists": "yes"}}).path == "a.$exists"


@pytest.mark.parametrize("arg", [5, {}, {"b": 1}])
def test_not_needs_an_operator_document_or_regex(arg: Any) -> None:
    assert rejected({"a": {"$not": arg}}).path == "a.$not"


@pytest.mark.parametrize("op", ["$and", "$or", "$nor"])
def test_logical_operator_needs_a_non_empty_list_of_documents(op: str) -> None:
    assert rejected({op: []}).path == op
    assert rejected({op: {"a": 1}}).path == op
    assert rejected({op: [{"a": 1}, 5]}).path == f"{op}.1"


def test_elem_match_needs_a_non_empty_document() -> None:
    assert rejected({"a": {"$elemMatch": []}}).path == "a.$elemMatch"
    assert rejected({"a": {"$elemMatch": {}}}).path == "a.$elemMatch"


def test_operators_inside_all_are_rejected() -> None:
    assert rejected({"a": {"$all": [{"$elemMatch": {"b": 1}}]}}).path.startswith("a.$all.0")


def test_filter_must_be_a_mapping() -> None:
    rejected([("a", 1)])


# --- rejected field names --------------------------------------------------------------------


def test_field_name_starting_with_dollar_in_path_is_rejected() -> None:
    assert rejected({"a.$b": 1}).path == "a.$b"


def test_bad_field_name_inside_logical_operator_names_the_full_path() -> None:
    assert rejected({"$or": [{"a": 1}, {"b.$c": 1}]}).path == "$or.1.b.$c"


def test_field_name_starting_with_dollar_inside_literal_document_is_rejected() -> None:
    assert rejected({"a": {"b": 1, "$c": 2}}).path == "a.$c"


def test_field_name_with_nul_is_rejected() -> None:
    assert rejected({"a\x00b": 1}).path == "a\x00b"
    assert rejected({"a": {"b\x00": 1}}).path == "a.b\x00"


def test_field_name_with_dot_inside_literal_document_is_rejected() -> None:
    assert rejected({"a": {"b.c": 1}}).path == "a.b.c"


@pytest.mark.parametrize("key", ["a..b", ".a", "a.", ""])
def test_empty_path_part_is_rejected(key: str) -> None:
    rejected({key: 1})


def test_non_string_field_is_rejected() -> None:
    rejected({1: 1})


# --- rejected values -------------------------------------------------------------------------


def test_nan_is_rejected_with_its_path() -> None:
    assert rejected({"a": math.nan}).path == "a"
    assert rejected({"a": {"$gt": math.inf}}).path == "a.$gt"
    assert rejected({"a": {"$in": [1, Decimal("NaN")]}}).path == "a.$in.1"


def test_naive_datetime_is_rejected_with_its_path() -> None:
    assert rejected({"ts": {"$lt": datetime(2024, 1, 1)}}).path == "ts.$lt"
    assert rejected({"a": {"b": [datetime(2024, 1, 1)]}}).path == "a.b.0"


def test_integer_beyond_64_bits_is_rejected() -> None:
    assert rejected({"a": 2**63}).path == "a"
    assert parse_filter({"a": -(2**63)}) == Eq(("a",), -(2**63))


def test_unsupported_value_type_is_rejected() -> None:
    assert rejected({"a": {1, 2}}).path == "a"
    assert rejected({"a": object()}).path == "a"


def test_literal_nested_deeper_than_100_levels_is_rejected() -> None:
    parse_filter({"a": nested(99, 1)})
    err = rejected({"a": nested(101, 1)})
    assert err.path.startswith("a.x.x")


def test_filter_nested_deeper_than_100_levels_is_rejected() -> None:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(101):
        spec = {"$and": [spec]}
    err = rejected(spec)
    assert err.path.startswith("$and.0.$and.0")


def test_elem_match_nested_deeper_than_100_levels_is_rejected() -> None:
    spec: dict[str, Any] = {"$gt": 1}
    for _ in range(101):
        spec = {"$elemMatch": {"b": spec}}
    rejected({"a": spec})


# --- updates ---------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/


def test_update_parses_each_field_of_each_operator() -> None:
    update = parse_update({"$set": {"a": 1, "b.c": 2}, "$inc": {"n": 1}})
    assert [(op.op, op.path, op.value) for op in update.ops] == [
        ("$set", ("a",), 1),
        ("$set", ("b", "c"), 2),
        ("$inc", ("n",), 1),
    ]


def test_update_with_empty_operand_is_accepted_as_a_no_op() -> None:
    # update/set: "Starting in MongoDB 5.0, mongod no longer raises an error when you use an
    # update operator like $set with an empty operand expression ( { } )"
    assert parse_update({"$set": {}}).ops == ()
    assert parse_update({"$set": {}, "$inc": {"a": 1}}).ops[0].op == "$inc"


def test_empty_update_is_rejected() -> None:
    rejected({}, parse_update)


def test_update_mixing_fields_and_operators_is_rejected() -> None:
    assert rejected({"$set": {"a": 1}, "b": 2}, parse_update).path == "b"


def test_unknown_update_operator_is_rejected() -> None:
    assert rejected({"$foo": {"a": 1}}, parse_update).path == "$foo"
    assert rejected({"$where": {"a": 1}}, parse_update).path == "$where"


def test_update_operator_needs_a_document() -> None:
    assert rejected({"$set": [("a", 1)]}, parse_update).path == "$set"


@pytest.mark.parametrize("op", ["$inc", "$mul"])
@pytest.mark.parametrize("arg", ["1", None, True, [1]])
def test_arithmetic_update_needs_a_number(op: str, arg: Any) -> None:
    assert rejected({op: {"a": arg}}, parse_update).path == f"{op}.a"


def test_set_and_unset_on_the_same_path_conflict() -> None:
    assert rejected({"$set": {"a": 1}, "$unset": {"a": ""}}, parse_update).path == "a"


def test_updates_on_a_path_and_its_prefix_conflict() -> None:
    rejected({"$set": {"a.b": 1}, "$inc": {"a": 1}}, parse_update)
    rejected({"$set": {"a": {"b": 1}}, "$push": {"a.c": 1}}, parse_update)


def test_updates_on_sibling_paths_do_not_conflict() -> None:
    parse_update({"$set": {"a.b": 1}, "$inc": {"a.c": 1, "ab": 1}})


def test_rename_target_conflicting_with_another_update_is_rejected() -> None:
    rejected({"$rename": {"a": "b"}, "$set": {"b": 1}}, parse_update)
    rejected({"$rename": {"a": "a.b"}}, parse_update)


def test_rename_needs_a_different_string_target() -> None:
    assert rejected({"$rename": {"a": 5}}, parse_update).path == "$rename.a"
    assert rejected({"$rename": {"a": "a"}}, parse_update).path == "$rename.a"
    rejected({"$rename": {"a": "$b"}}, parse_update)


def test_update_field_starting_with_dollar_is_rejected() -> None:
    assert rejected({"$set": {"$a": 1}}, parse_update).path == "$set.$a"
    assert rejected({"$set": {"a.$x": 1}}, parse_update).path == "$set.a.$x"
    assert rejected({"$set": {"$.a": 1}}, parse_update).path == "$set.$.a"  # positional first


def test_update_value_with_dollar_field_is_rejected() -> None:
    assert rejected({"$set": {"a": {"$b": 1}}}, parse_update).path == "$set.a.$b"


def test_update_value_with_nul_field_is_rejected() -> None:
    assert rejected({"$set": {"a": {"b\x00": 1}}}, parse_update).path == "$set.a.b\x00"


def test_update_value_nan_and_naive_datetime_are_rejected() -> None:
    assert rejected({"$set": {"a": math.nan}}, parse_update).path == "$set.a"
    assert rejected({"$max": {"a": datetime(2024, 1, 1)}}, parse_update).path == "$max.a"
    assert rejected({"$push": {"a": {"$each": [math.inf]}}}, parse_update).path == "$push.a.$each.0"


def test_update_value_nested_deeper_than_100_levels_is_rejected() -> None:
    rejected({"$set": {"a": nested(101, 1)}}, parse_update)


def test_push_modifiers_need_each() -> None:
    assert rejected({"$push": {"a": {"$slice": 2}}}, parse_update).path == "$push.a.$slice"


def test_push_unknown_modifier_is_rejected() -> None:
    spec = {"$push": {"a": {"$each": [1], "$sort": 1}}}
    assert rejected(spec, parse_update).path == "$push.a.$sort"


@pytest.mark.parametrize("key", ["$slice", "$position"])
def test_push_slice_and_position_need_integers(key: str) -> None:
    spec = {"$push": {"a": {"$each": [1], key: 1.5}}}
    assert rejected(spec, parse_update).path == f"$push.a.{key}"


def test_push_each_needs_a_list() -> None:
    assert rejected({"$push": {"a": {"$each": 1}}}, parse_update).path == "$push.a.$each"


def test_add_to_set_takes_only_each() -> None:
    spec = {"$addToSet": {"a": {"$each": [1], "$slice": 1}}}
    assert rejected(spec, parse_update).path == "$addToSet.a"


@pytest.mark.parametrize("arg", [0, 2, "1", True])
def test_pop_needs_one_or_minus_one(arg: Any) -> None:
    assert rejected({"$pop": {"a": arg}}, parse_update).path == "$pop.a"


def test_current_date_timestamp_is_not_portable() -> None:
    spec = {"$currentDate": {"a": {"$type": "timestamp"}}}
    assert rejected(spec, parse_update).path == "$currentDate.a"
    assert rejected({"$currentDate": {"a": "now"}}, parse_update).path == "$currentDate.a"


def test_current_date_accepts_true_and_type_date() -> None:
    update = parse_update({"$currentDate": {"a": True, "b": {"$type": "date"}}})
    assert [op.value for op in update.ops] == ["date", "date"]


def test_update_round_trips_through_to_mongo() -> None:
    spec = {
        "$set": {"a": 1},
        "$unset": {"b": ""},
        "$push": {"c": {"$each": [1, 2], "$slice": -3, "$position": 0}},
        "$addToSet": {"d": {"$each": [1]}, "e": 5},
        "$pull": {"f": {"$gte": 6}, "g": {"x": 1}},
    }
    update = parse_update(spec)
    assert parse_update(update.to_mongo()) == update


# --- replacements ----------------------------------------------------------------------------


def test_replacement_with_operator_is_rejected() -> None:
    assert rejected({"a": 1, "$set": {"b": 1}}, parse_replacement).path == "$set"


def test_replacement_with_nested_dollar_field_is_rejected() -> None:
    assert rejected({"a": {"$b": 1}}, parse_replacement).path == "a.$b"


def test_replacement_is_normalised() -> None:
    update = parse_replacement({"a": (1, 2)})
    assert update.replacement == {"a": [1, 2]}


# --- sort ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/method/cursor.sort/


def test_sort_accepts_pairs_mapping_and_single_field() -> None:
    expected = (SortKey(("ts",), -1), SortKey(("a", "b"), 1))
    assert parse_sort([("ts", -1), ("a.b", 1)]) == expected
    assert parse_sort({"ts": -1, "a.b": 1}) == expected
    assert parse_sort("ts") == (SortKey(("ts",), 1),)
    assert parse_sort(None) == ()


@pytest.mark.parametrize("direction", [0, 2, "asc", True, None])
def test_sort_direction_must_be_one_or_minus_one(direction: Any) -> None:
    assert rejected([("a", direction)], parse_sort).path == "sort.a"


def test_sort_on_the_same_field_twice_is_rejected() -> None:
    assert rejected([("a", 1), ("a", -1)], parse_sort).path == "sort.a"


def test_sort_on_dollar_field_is_rejected() -> None:
    rejected([("$natural", 1)], parse_sort)


# --- projection ------------------------------------------------------------------------------


def test_projection_mixing_inclusion_and_exclusion_is_rejected() -> None:
    assert rejected({"a": 1, "b": 0}, parse_projection).path == "projection.b"


def test_projection_path_collision_is_rejected() -> None:
    assert rejected({"a": 1, "a.b": 1}, parse_projection).path == "projection.a.b"


@pytest.mark.parametrize("value", ["yes", None, {"$slice": 1}, [1]])
def test_projection_values_other_than_numbers_and_booleans_are_rejected(value: Any) -> None:
    assert rejected({"a": value}, parse_projection).path == "projection.a"
