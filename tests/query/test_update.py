"""Update operators applied to documents, case by case from MongoDB's manual.

https://www.mongodb.com/docs/manual/reference/operator/update/
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.errors import UpdateError
from asyncdb.query.parse import parse_filter, parse_update
from asyncdb.query.update import apply_update, strict_equal, upsert_seed

NOW = datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def up(spec: dict[str, Any], doc: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return apply_update(parse_update(spec), doc, **kw)


def fails(spec: dict[str, Any], doc: dict[str, Any]) -> UpdateError:
    with pytest.raises(UpdateError) as info:
        up(spec, doc)
    return info.value


def test_apply_update_does_not_change_the_input_document() -> None:
    doc = {"a": {"b": [1]}, "n": 1}
    up({"$push": {"a.b": 2}, "$inc": {"n": 1}, "$set": {"a.c": 1}}, doc)
    assert doc == {"a": {"b": [1]}, "n": 1}


def test_failed_update_leaves_input_unchanged() -> None:
    doc = {"a": 1, "s": "x"}
    fails({"$set": {"a": 2}, "$inc": {"s": 1}}, doc)
    assert doc == {"a": 1, "s": "x"}


# --- $set ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/set/


def test_set_replaces_value() -> None:
    assert up({"$set": {"a": 2}}, {"a": 1}) == {"a": 2}


def test_set_adds_missing_field_at_the_end() -> None:
    assert list(up({"$set": {"z": 1}}, {"b": 1, "a": 2})) == ["b", "a", "z"]


def test_set_creates_embedded_documents_for_missing_path() -> None:
    assert up({"$set": {"a.b.c": 1}}, {}) == {"a": {"b": {"c": 1}}}


def test_set_field_in_existing_embedded_document() -> None:
    assert up({"$set": {"details.make": "Kustom"}}, {"details": {"model": "X"}}) == {
        "details": {"model": "X", "make": "Kustom"}
    }


def test_set_array_element_by_index() -> None:
    assert up({"$set": {"tags.1": "rain"}}, {"tags": ["a", "b", "c"]}) == {
        "tags": ["a", "rain", "c"]
    }


def test_set_index_beyond_array_length_pads_with_null() -> None:
    assert up({"$set": {"a.3": 1}}, {"a": [0]}) == {"a": [0, None, None, 1]}


def test_set_field_of_document_in_array_by_index() -> None:
    doc = {"ratings": [{"by": "ijk", "rating": 4}]}
    assert up({"$set": {"ratings.0.rating": 2}}, doc) == {"ratings": [{"by": "ijk", "rating": 2}]}


def test_set_through_padded_array_position_creates_document() -> None:
    assert up({"$set": {"a.2.b": 1}}, {"a": []}) == {"a": [None, None, {"b": 1}]}


def test_set_through_scalar_is_an_update_error() -> None:
    assert fails({"$set": {"a.b": 1}}, {"a": 5}).path == "a.b"


def test_set_through_null_is_an_update_error() -> None:
    fails({"$set": {"a.b": 1}}, {"a": None})


def test_set_through_null_array_element_is_an_update_error() -> None:
    # an existing null element cannot hold a field ("Cannot create field 'b' in element {0: null}")
    fails({"$set": {"a.0.b": 1}}, {"a": [None]})


def test_set_non_numeric_field_in_array_is_an_update_error() -> None:
    fails({"$set": {"a.b": 1}}, {"a": [{"b": 0}]})


def test_set_copies_the_value() -> None:
    update = parse_update({"$set": {"a": {"b": [1]}}})
    first = apply_update(update, {})
    first["a"]["b"].append(2)
    assert apply_update(update, {}) == {"a": {"b": [1]}}


# --- $unset ----------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/unset/


def test_unset_removes_field() -> None:
    assert up(
        {"$unset": {"quantity": "", "instock": ""}}, {"quantity": 1, "instock": 1, "x": 1}
    ) == {"x": 1}


def test_unset_missing_field_is_a_no_op() -> None:
    assert up({"$unset": {"a": ""}}, {"b": 1}) == {"b": 1}
    assert up({"$unset": {"a.b.c": ""}}, {"a": 5}) == {"a": 5}


def test_unset_array_element_sets_it_to_null() -> None:
    assert up({"$unset": {"a.1": ""}}, {"a": [1, 2, 3]}) == {"a": [1, None, 3]}


def test_unset_nested_field() -> None:
    assert up({"$unset": {"a.b": ""}}, {"a": {"b": 1, "c": 2}}) == {"a": {"c": 2}}


def test_unset_through_array_with_a_name_is_a_no_op() -> None:
    assert up({"$unset": {"a.b.c": ""}}, {"a": [{"b": {"c": 1}}]}) == {"a": [{"b": {"c": 1}}]}


# --- $inc ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/inc/


def test_inc_adds_positive_and_negative_amounts() -> None:
    doc = {"quantity": 10, "metrics": {"orders": 2}}
    out = up({"$inc": {"quantity": -2, "metrics.orders": 1}}, doc)
    assert out == {"quantity": 8, "metrics": {"orders": 3}}


def test_inc_missing_field_creates_it_with_the_amount() -> None:
    assert up({"$inc": {"a.b": 5}}, {}) == {"a": {"b": 5}}


def test_inc_int_by_float_gives_float() -> None:
    out = up({"$inc": {"a": 0.5}}, {"a": 1})
    assert out == {"a": 1.5} and type(out["a"]) is float


def test_inc_decimal_stays_decimal_and_exact() -> None:
    out = up({"$inc": {"a": Decimal("0.1")}}, {"a": 0.2})
    assert out == {"a": Decimal("0.3")} and type(out["a"]) is Decimal
    assert up({"$inc": {"a": 1}}, {"a": Decimal("1.5")}) == {"a": Decimal("2.5")}


def test_inc_on_string_is_an_update_error() -> None:
    assert fails({"$inc": {"a": 1}}, {"a": "1"}).path == "a"


def test_inc_on_null_is_an_update_error() -> None:
    fails({"$inc": {"a": 1}}, {"a": None})


def test_inc_on_bool_is_an_update_error() -> None:
    fails({"$inc": {"a": 1}}, {"a": True})


def test_inc_overflowing_64_bits_is_an_update_error() -> None:
    assert fails({"$inc": {"a": 1}}, {"a": 2**63 - 1}).path == "a"
    fails({"$inc": {"a": -1}}, {"a": -(2**63)})


def test_inc_overflowing_double_is_an_update_error() -> None:
    fails({"$inc": {"a": 1e308}}, {"a": 1e308})


def test_inc_through_scalar_is_an_update_error() -> None:
    fails({"$inc": {"a.b": 1}}, {"a": 1})


# --- $mul ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/mul/


def test_mul_multiplies() -> None:
    assert up({"$mul": {"price": 1.25, "qty": 2}}, {"price": 10.5, "qty": 25}) == {
        "price": 13.125,
        "qty": 50,
    }


def test_mul_missing_field_creates_zero_of_the_multiplier_type() -> None:
    out = up({"$mul": {"a": 5, "b": 2.5, "c": Decimal("3")}}, {})
    assert out == {"a": 0, "b": 0.0, "c": Decimal("0")}
    assert [type(out[k]) for k in "abc"] == [int, float, Decimal]


def test_mul_mixed_int_and_float_gives_float() -> None:
    out = up({"$mul": {"a": 2.0}}, {"a": 3})
    assert type(out["a"]) is float and out["a"] == 6.0


def test_mul_on_string_is_an_update_error() -> None:
    fails({"$mul": {"a": 2}}, {"a": "x"})


def test_mul_overflowing_64_bits_is_an_update_error() -> None:
    fails({"$mul": {"a": 2}}, {"a": 2**62})


def test_mul_overflowing_double_is_an_update_error() -> None:
    fails({"$mul": {"a": 1e10}}, {"a": 1e300})


# --- $min and $max ---------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/min/
# https://www.mongodb.com/docs/manual/reference/operator/update/max/


def test_min_lowers_only_when_smaller() -> None:
    assert up({"$min": {"lowScore": 150}}, {"lowScore": 200}) == {"lowScore": 150}
    assert up({"$min": {"lowScore": 250}}, {"lowScore": 200}) == {"lowScore": 200}


def test_max_raises_only_when_larger() -> None:
    assert up({"$max": {"highScore": 950}}, {"highScore": 800}) == {"highScore": 950}
    assert up({"$max": {"highScore": 700}}, {"highScore": 800}) == {"highScore": 800}


def test_min_and_max_set_missing_field() -> None:
    assert up({"$min": {"a": 1}, "$max": {"b": 2}}, {}) == {"a": 1, "b": 2}


def test_min_equal_value_of_other_numeric_type_keeps_the_stored_value() -> None:
    out = up({"$min": {"a": 1.0}}, {"a": 1})
    assert type(out["a"]) is int


def test_min_max_compare_dates() -> None:
    now = NOW.replace(microsecond=0)
    later = now + timedelta(days=1)
    assert up({"$max": {"d": later}}, {"d": now}) == {"d": later}
    assert up({"$min": {"d": later}}, {"d": now}) == {"d": now}


def test_min_max_use_bson_order_across_types() -> None:
    # update/min, update/max: values of different types compare in BSON comparison order
    assert up({"$min": {"a": None}}, {"a": 5}) == {"a": None}
    assert up({"$max": {"a": "x"}}, {"a": 5}) == {"a": "x"}
    assert up({"$max": {"a": 5}}, {"a": "x"}) == {"a": "x"}


# --- $rename ---------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/rename/


def test_rename_moves_value_to_new_name() -> None:
    assert up({"$rename": {"nmae": "name"}}, {"nmae": "x", "a": 1}) == {"a": 1, "name": "x"}


def test_rename_missing_field_is_a_no_op() -> None:
    assert up({"$rename": {"wife": "spouse"}}, {"a": 1}) == {"a": 1}


def test_rename_overwrites_existing_target() -> None:
    assert up({"$rename": {"a": "b"}}, {"a": 1, "b": 2}) == {"b": 1}


def test_rename_into_and_out_of_embedded_documents() -> None:
    doc = {"name": {"first": "abc", "last": "xyz"}}
    assert up({"$rename": {"name.first": "name.fname"}}, doc) == {
        "name": {"last": "xyz", "fname": "abc"}
    }
    assert up({"$rename": {"name.last": "contact.lname"}}, doc) == {
        "name": {"first": "abc"},
        "contact": {"lname": "xyz"},
    }


def test_rename_array_element_is_an_update_error() -> None:
    # rename: "$rename does not work on arrays"
    fails({"$rename": {"a.0": "b"}}, {"a": [1, 2]})


def test_rename_into_a_scalar_is_an_update_error() -> None:
    fails({"$rename": {"a": "b.c"}}, {"a": 1, "b": 5})


# --- $push, $each, $slice, $position ---------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/push/
# https://www.mongodb.com/docs/manual/reference/operator/update/each/
# https://www.mongodb.com/docs/manual/reference/operator/update/slice/
# https://www.mongodb.com/docs/manual/reference/operator/update/position/


def test_push_appends_value() -> None:
    assert up({"$push": {"scores": 89}}, {"scores": [44, 78]}) == {"scores": [44, 78, 89]}


def test_push_on_missing_field_creates_array() -> None:
    assert up({"$push": {"a.b": 1}}, {}) == {"a": {"b": [1]}}


def test_push_array_value_appends_it_as_one_element() -> None:
    assert up({"$push": {"a": [1, 2]}}, {"a": [0]}) == {"a": [0, [1, 2]]}


def test_push_on_non_array_is_an_update_error() -> None:
    assert fails({"$push": {"a": 1}}, {"a": 5}).path == "a"
    fails({"$push": {"a": 1}}, {"a": None})
    fails({"$push": {"a": 1}}, {"a": {"0": 1}})


def test_push_each_appends_every_value() -> None:
    assert up({"$push": {"s": {"$each": [90, 92]}}}, {"s": [1]}) == {"s": [1, 90, 92]}


def test_push_each_empty_list_creates_empty_array() -> None:
    assert up({"$push": {"s": {"$each": []}}}, {}) == {"s": []}


def test_push_slice_positive_keeps_first_elements() -> None:
    doc = {"s": [40, 50, 60]}
    assert up({"$push": {"s": {"$each": [80, 78, 86], "$slice": 3}}}, doc) == {"s": [40, 50, 60]}


def test_push_slice_negative_keeps_last_elements() -> None:
    doc = {"s": [40, 50, 60]}
    assert up({"$push": {"s": {"$each": [80, 78, 86], "$slice": -5}}}, doc) == {
        "s": [50, 60, 80, 78, 86]
    }


def test_push_slice_zero_empties_the_array() -> None:
    assert up({"$push": {"s": {"$each": [1], "$slice": 0}}}, {"s": [5]}) == {"s": []}


def test_push_slice_with_empty_each_only_trims() -> None:
    assert up({"$push": {"s": {"$each": [], "$slice": -2}}}, {"s": [1, 2, 3]}) == {"s": [2, 3]}


def test_push_slice_larger_than_array_keeps_everything() -> None:
    assert up({"$push": {"s": {"$each": [3], "$slice": 10}}}, {"s": [1, 2]}) == {"s": [1, 2, 3]}
    assert up({"$push": {"s": {"$each": [3], "$slice": -10}}}, {"s": [1, 2]}) == {"s": [1, 2, 3]}


def test_push_position_zero_inserts_at_start() -> None:
    doc = {"s": [100]}
    assert up({"$push": {"s": {"$each": [50, 60, 70], "$position": 0}}}, doc) == {
        "s": [50, 60, 70, 100]
    }


def test_push_position_in_the_middle() -> None:
    doc = {"s": [50, 60, 70, 100]}
    assert up({"$push": {"s": {"$each": [20, 30], "$position": 2}}}, doc) == {
        "s": [50, 60, 20, 30, 70, 100]
    }


def test_push_negative_position_counts_from_the_end() -> None:
    # position: -1 places the elements just before the last element
    doc = {"s": [50, 60, 20, 30, 70, 100]}
    assert up({"$push": {"s": {"$each": [90, 80], "$position": -2}}}, doc) == {
        "s": [50, 60, 20, 30, 90, 80, 70, 100]
    }
    assert up({"$push": {"s": {"$each": [9], "$position": -1}}}, {"s": [1, 2]}) == {"s": [1, 9, 2]}


def test_push_position_beyond_either_end_clamps() -> None:
    assert up({"$push": {"s": {"$each": [9], "$position": 10}}}, {"s": [1]}) == {"s": [1, 9]}
    assert up({"$push": {"s": {"$each": [9], "$position": -10}}}, {"s": [1]}) == {"s": [9, 1]}


def test_push_position_then_slice() -> None:
    doc = {"s": [1, 2, 3]}
    spec = {"$push": {"s": {"$each": [0], "$position": 0, "$slice": 2}}}
    assert up(spec, doc) == {"s": [0, 1]}


# --- $addToSet -------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/addToSet/


def test_add_to_set_adds_absent_value() -> None:
    assert up({"$addToSet": {"tags": "camera"}}, {"tags": ["x"]}) == {"tags": ["x", "camera"]}


def test_add_to_set_does_not_duplicate_present_value() -> None:
    assert up({"$addToSet": {"tags": "x"}}, {"tags": ["x"]}) == {"tags": ["x"]}


def test_add_to_set_treats_equal_numbers_as_duplicates() -> None:
    assert up({"$addToSet": {"a": 1.0}}, {"a": [1]}) == {"a": [1]}
    assert up({"$addToSet": {"a": True}}, {"a": [1]}) == {"a": [1, True]}


def test_add_to_set_array_value_is_added_as_one_element() -> None:
    doc = {"letters": ["a", "b"]}
    assert up({"$addToSet": {"letters": ["c", "d"]}}, doc) == {"letters": ["a", "b", ["c", "d"]]}


def test_add_to_set_each_adds_each_absent_value_once() -> None:
    doc = {"tags": ["electronics", "supplies"]}
    spec = {"$addToSet": {"tags": {"$each": ["camera", "electronics", "camera", "accessories"]}}}
    assert up(spec, doc) == {"tags": ["electronics", "supplies", "camera", "accessories"]}


def test_add_to_set_document_duplicate_needs_same_field_order() -> None:
    doc = {"a": [{"x": 1, "y": 2}]}
    assert up({"$addToSet": {"a": {"x": 1, "y": 2}}}, doc) == doc
    assert up({"$addToSet": {"a": {"y": 2, "x": 1}}}, doc) == {
        "a": [{"x": 1, "y": 2}, {"y": 2, "x": 1}]
    }


def test_add_to_set_on_missing_field_creates_array() -> None:
    assert up({"$addToSet": {"a": 1}}, {}) == {"a": [1]}


def test_add_to_set_on_non_array_is_an_update_error() -> None:
    fails({"$addToSet": {"a": 1}}, {"a": "x"})


# --- $pop ------------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/pop/


def test_pop_minus_one_removes_first_element() -> None:
    assert up({"$pop": {"s": -1}}, {"s": [8, 9, 10]}) == {"s": [9, 10]}


def test_pop_one_removes_last_element() -> None:
    assert up({"$pop": {"s": 1}}, {"s": [9, 10]}) == {"s": [9]}


def test_pop_on_empty_or_missing_array_is_a_no_op() -> None:
    assert up({"$pop": {"s": 1}}, {"s": []}) == {"s": []}
    assert up({"$pop": {"s": 1}}, {}) == {}


def test_pop_on_non_array_is_an_update_error() -> None:
    fails({"$pop": {"s": 1}}, {"s": 5})


# --- $pull -----------------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/pull/


def test_pull_removes_every_equal_value() -> None:
    doc = {"fruits": ["apples", "pears", "apples"], "veg": ["carrots", "celery"]}
    out = up({"$pull": {"fruits": "apples", "veg": "carrots"}}, doc)
    assert out == {"fruits": ["pears"], "veg": ["celery"]}


def test_pull_with_condition_removes_matching_elements() -> None:
    assert up({"$pull": {"votes": {"$gte": 6}}}, {"votes": [3, 5, 6, 7, 7, 8]}) == {"votes": [3, 5]}


def test_pull_with_in_removes_listed_values() -> None:
    doc = {"fruits": ["apples", "pears", "oranges", "grapes"]}
    out = up({"$pull": {"fruits": {"$in": ["apples", "oranges"]}}}, doc)
    assert out == {"fruits": ["pears", "grapes"]}


def test_pull_equal_numbers_of_other_types() -> None:
    assert up({"$pull": {"a": 1}}, {"a": [1.0, Decimal("1"), 2, True]}) == {"a": [2, True]}


def test_pull_array_value_removes_exactly_equal_arrays_only() -> None:
    doc = {"a": [[1, 2], [2, 1], 1, 2]}
    assert up({"$pull": {"a": [1, 2]}}, doc) == {"a": [[2, 1], 1, 2]}


def test_pull_document_removes_elements_matching_it_as_a_query() -> None:
    # pull_node.cpp ObjectMatcher: a document that is not an operator is a query on each
    # element that is a document, so extra fields and field order do not matter
    doc = {"results": [{"item": "A", "score": 5}, {"score": 8, "item": "B", "x": 1}, 8]}
    out = up({"$pull": {"results": {"item": "B", "score": 8}}}, doc)
    assert out == {"results": [{"item": "A", "score": 5}, 8]}


def test_pull_document_condition_with_elem_match() -> None:
    doc = {
        "results": [
            {"item": "A", "answers": [{"q": 1, "a": 4}, {"q": 2, "a": 6}]},
            {"item": "B", "answers": [{"q": 1, "a": 8}, {"q": 2, "a": 9}]},
        ]
    }
    spec = {"$pull": {"results": {"answers": {"$elemMatch": {"q": 2, "a": {"$gte": 8}}}}}}
    assert [r["item"] for r in up(spec, doc)["results"]] == ["A"]


def test_pull_on_missing_field_is_a_no_op() -> None:
    assert up({"$pull": {"a": 1}}, {}) == {}


def test_pull_on_non_array_is_an_update_error() -> None:
    fails({"$pull": {"a": 1}}, {"a": 1})


# --- $setOnInsert ----------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/setOnInsert/


def test_set_on_insert_applies_only_when_inserting() -> None:
    spec = {"$set": {"item": "apple"}, "$setOnInsert": {"defaultQty": 100}}
    assert up(spec, {}, is_insert=True) == {"item": "apple", "defaultQty": 100}
    assert up(spec, {"item": "x"}) == {"item": "apple"}


# --- $currentDate ----------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/operator/update/currentDate/


def test_current_date_sets_now_in_utc_at_millisecond_precision() -> None:
    here = NOW.astimezone(timezone(timedelta(hours=-3)))
    out = up({"$currentDate": {"lastModified": True, "c.d": {"$type": "date"}}}, {}, now=here)
    expected = datetime(2024, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    assert out == {"lastModified": expected, "c": {"d": expected}}
    assert out["lastModified"].tzinfo is UTC


def test_current_date_without_now_uses_the_clock() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    out = up({"$currentDate": {"a": True}}, {})
    assert before <= out["a"] <= datetime.now(UTC)


# --- several operators -----------------------------------------------------------------------


def test_several_operators_apply_in_one_update() -> None:
    doc = {"n": 1, "tags": ["a"], "old": 1, "gone": 1}
    spec = {
        "$inc": {"n": 2},
        "$addToSet": {"tags": "b"},
        "$rename": {"old": "new"},
        "$unset": {"gone": ""},
        "$set": {"x.y": True},
    }
    assert up(spec, doc) == {"n": 3, "tags": ["a", "b"], "new": 1, "x": {"y": True}}


def test_empty_operand_update_leaves_the_document_unchanged() -> None:
    assert up({"$set": {}}, {"a": 1}) == {"a": 1}


def test_replacement_replaces_the_whole_document() -> None:
    from asyncdb.query.parse import parse_replacement

    assert apply_update(parse_replacement({"b": 2}), {"a": 1}) == {"b": 2}


# --- upsert seed -----------------------------------------------------------------------------
# https://www.mongodb.com/docs/manual/reference/method/db.collection.updateOne/#upsert
# ("the new document ... includes the equality conditions of the filter")


def test_upsert_seed_takes_equality_conditions() -> None:
    node = parse_filter({"a": 1, "b.c": "x", "d": {"$eq": 2}, "e": {"$gt": 5}})
    assert upsert_seed(node) == {"a": 1, "b": {"c": "x"}, "d": 2}


def test_upsert_seed_takes_equalities_inside_and() -> None:
    node = parse_filter({"$and": [{"a": 1}, {"b": 2}], "c": 3})
    assert upsert_seed(node) == {"a": 1, "b": 2, "c": 3}


def test_upsert_seed_ignores_or_and_ranges() -> None:
    assert upsert_seed(parse_filter({"$or": [{"a": 1}, {"a": 2}]})) == {}
    assert upsert_seed(parse_filter({"a": {"$in": [1, 2]}})) == {}


def test_upsert_applies_update_on_top_of_the_seed() -> None:
    seed = upsert_seed(parse_filter({"name": "x", "n": 1}))
    spec = {"$inc": {"n": 1}, "$setOnInsert": {"created": True}}
    assert up(spec, seed, is_insert=True) == {"name": "x", "n": 2, "created": True}


# --- strict_equal ----------------------------------------------------------------------------


def test_strict_equal_tells_numeric_types_apart() -> None:
    assert not strict_equal(1, 1.0)
    assert not strict_equal(1, True)
    assert not strict_equal([1], [1.0])
    assert strict_equal({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]})


def test_strict_equal_respects_field_order() -> None:
    assert not strict_equal({"a": 1, "b": 2}, {"b": 2, "a": 1})
