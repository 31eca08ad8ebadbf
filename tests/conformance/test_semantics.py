"""DESIGN §2: the rules of MongoDB's query semantics that every backend must honour.

Each test stores a handful of documents and checks which of them a filter (or sort, or
projection) returns, with the answer MongoDB's documentation gives.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import asyncdb

from .support import assert_same, id_set, ids


async def stored(db: asyncdb.Database, docs: list[dict[str, Any]]) -> asyncdb.Collection:
    coll = db.collection("sem", allow_scan=True)
    await coll.insert_many(docs)
    return coll


async def matching(
    db: asyncdb.Database, docs: list[dict[str, Any]], flt: dict[str, Any]
) -> set[Any]:
    return await id_set(await stored(db, docs), flt)


# --- null and missing -------------------------------------------------------------------------

NULLISH = [
    {"id": 1, "a": None},
    {"id": 2},
    {"id": 3, "a": 0},
    {"id": 4, "a": [None, 1]},
    {"id": 5, "a": []},
    {"id": 6, "a": ""},
    {"id": 7, "a": False},
    {"id": 8, "a": [1, 2]},
]


async def test_eq_null_matches_null_missing_and_arrays_holding_null(db: asyncdb.Database) -> None:
    coll = await stored(db, NULLISH)
    assert await id_set(coll, {"a": None}) == {1, 2, 4}
    assert await id_set(coll, {"a": {"$eq": None}}) == {1, 2, 4}
    assert await id_set(coll, {"a": {"$in": [None, 0]}}) == {1, 2, 3, 4}


async def test_gte_and_lte_null_match_null_and_missing_but_gt_and_lt_do_not(
    db: asyncdb.Database,
) -> None:
    coll = await stored(db, NULLISH)
    assert await id_set(coll, {"a": {"$gte": None}}) == {1, 2, 4}
    assert await id_set(coll, {"a": {"$lte": None}}) == {1, 2, 4}
    assert await id_set(coll, {"a": {"$gt": None}}) == set()
    assert await id_set(coll, {"a": {"$lt": None}}) == set()


async def test_ne_and_nin_match_missing_fields(db: asyncdb.Database) -> None:
    coll = await stored(db, NULLISH)
    assert await id_set(coll, {"a": {"$ne": 1}}) == {1, 2, 3, 5, 6, 7}
    assert await id_set(coll, {"a": {"$nin": [1, 0]}}) == {1, 2, 5, 6, 7}
    assert await id_set(coll, {"zz": {"$ne": "x"}}) == {1, 2, 3, 4, 5, 6, 7, 8}
    assert await id_set(coll, {"zz": {"$nin": ["x"]}}) == {1, 2, 3, 4, 5, 6, 7, 8}


async def test_ne_null_matches_only_present_non_null_values(db: asyncdb.Database) -> None:
    coll = await stored(db, NULLISH)
    assert await id_set(coll, {"a": {"$ne": None}}) == {3, 5, 6, 7, 8}
    assert await id_set(coll, {"a": {"$nin": [None]}}) == {3, 5, 6, 7, 8}


async def test_exists_distinguishes_null_from_missing(db: asyncdb.Database) -> None:
    coll = await stored(db, NULLISH)
    assert await id_set(coll, {"a": {"$exists": True}}) == {1, 3, 4, 5, 6, 7, 8}
    assert await id_set(coll, {"a": {"$exists": False}}) == {2}


async def test_dotted_null_matches_missing_intermediate_and_leaf(db: asyncdb.Database) -> None:
    docs = [
        {"id": 1, "n": {"x": None}},
        {"id": 2, "n": {}},
        {"id": 3},
        {"id": 4, "n": {"x": 1}},
        {"id": 5, "n": 5},
        {"id": 6, "n": [{"x": 1}, {"y": 1}]},
        {"id": 7, "n": [{"x": 1}, {"x": 2}]},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"n.x": None}) == {1, 2, 3, 5, 6}
    assert await id_set(coll, {"n.x": {"$exists": False}}) == {2, 3, 5}
    assert await id_set(coll, {"n.x": {"$ne": None}}) == {4, 7}


async def test_type_null_matches_only_stored_nulls(db: asyncdb.Database) -> None:
    coll = await stored(db, NULLISH)
    assert await id_set(coll, {"a": {"$type": "null"}}) == {1, 4}


# --- arrays -----------------------------------------------------------------------------------

ARRAYS = [
    {"id": 1, "a": [1, 2]},
    {"id": 2, "a": [2, 1]},
    {"id": 3, "a": [[1, 2], 3]},
    {"id": 4, "a": [1, 2, 3]},
    {"id": 5, "a": 1},
    {"id": 6, "a": [[1], [2]]},
    {"id": 7, "a": []},
]


async def test_scalar_condition_on_an_array_matches_any_element(db: asyncdb.Database) -> None:
    coll = await stored(db, ARRAYS)
    assert await id_set(coll, {"a": 1}) == {1, 2, 4, 5}
    assert await id_set(coll, {"a": 3}) == {3, 4}
    assert await id_set(coll, {"a": {"$in": [3, 7]}}) == {3, 4}
    assert await id_set(coll, {"a": {"$gt": 2}}) == {3, 4}


async def test_array_value_matches_the_whole_array_or_an_element_equal_to_it(
    db: asyncdb.Database,
) -> None:
    coll = await stored(db, ARRAYS)
    assert await id_set(coll, {"a": [1, 2]}) == {1, 3}
    assert await id_set(coll, {"a": [2]}) == {6}
    assert await id_set(coll, {"a": []}) == {7}
    assert await id_set(coll, {"a": {"$in": [[2, 1]]}}) == {2}


async def test_ne_on_an_array_excludes_arrays_with_an_equal_element(db: asyncdb.Database) -> None:
    coll = await stored(db, ARRAYS)
    assert await id_set(coll, {"a": {"$ne": 1}}) == {3, 6, 7}
    assert await id_set(coll, {"a": {"$nin": [3, [1]]}}) == {1, 2, 5, 7}


async def test_range_conditions_on_an_array_may_be_met_by_different_elements(
    db: asyncdb.Database,
) -> None:
    docs = [{"id": 1, "a": [3, 12]}, {"id": 2, "a": [7]}, {"id": 3, "a": [1, 2]}, {"id": 4, "a": 7}]
    coll = await stored(db, docs)
    assert await id_set(coll, {"a": {"$gt": 5, "$lt": 10}}) == {1, 2, 4}


async def test_elem_match_needs_one_element_meeting_every_condition(db: asyncdb.Database) -> None:
    docs = [{"id": 1, "a": [3, 12]}, {"id": 2, "a": [7]}, {"id": 3, "a": [1, 2]}, {"id": 4, "a": 7}]
    coll = await stored(db, docs)
    assert await id_set(coll, {"a": {"$elemMatch": {"$gt": 5, "$lt": 10}}}) == {2}
    assert await id_set(coll, {"a": {"$elemMatch": {"$ne": 7}}}) == {1, 3}


async def test_elem_match_on_documents_versus_dotted_conditions(db: asyncdb.Database) -> None:
    docs = [
        {"id": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 5}]},
        {"id": 2, "items": [{"sku": "a", "qty": 5}]},
        {"id": 3, "items": {"sku": "a", "qty": 5}},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"items.sku": "a", "items.qty": 5}) == {1, 2, 3}
    assert await id_set(coll, {"items": {"$elemMatch": {"sku": "a", "qty": 5}}}) == {2}
    assert await id_set(coll, {"items": {"$elemMatch": {"qty": {"$gte": 2}}}}) == {1, 2}
    assert await id_set(coll, {"items": {"$elemMatch": {"$or": [{"sku": "b"}, {"qty": 5}]}}}) == {
        1,
        2,
    }


async def test_elem_match_with_a_document_condition_skips_scalar_elements(
    db: asyncdb.Database,
) -> None:
    docs = [
        {"id": "int", "a": [5]},
        {"id": "bytes", "a": [b"x"]},
        {"id": "decimal", "a": [Decimal("1.5")]},
        {"id": "date", "a": [datetime(2024, 1, 1, tzinfo=UTC)]},
        {"id": "str", "a": ["s"]},
        {"id": "null", "a": [None]},
        {"id": "doc", "a": [{"y": 1}]},
    ]
    coll = await stored(db, docs)
    # only a document element can lack "x"; bytes, Decimals and dates are values, not documents
    assert await id_set(coll, {"a": {"$elemMatch": {"x": None}}}) == {"doc"}
    assert await id_set(coll, {"a": {"$elemMatch": {"x": {"$exists": False}}}}) == {"doc"}
    assert await id_set(coll, {"a": {"$elemMatch": {"x": {"$ne": 1}}}}) == {"doc"}


async def test_all_needs_every_value_somewhere_in_the_array(db: asyncdb.Database) -> None:
    docs = [
        {"id": 1, "tags": ["a", "b", "c"]},
        {"id": 2, "tags": ["a", "c"]},
        {"id": 3, "tags": "a"},
        {"id": 4, "tags": [["a", "b"]]},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"tags": {"$all": ["a", "b"]}}) == {1}
    assert await id_set(coll, {"tags": {"$all": ["a"]}}) == {1, 2, 3}
    assert await id_set(coll, {"tags": {"$all": []}}) == set()


async def test_size_matches_arrays_of_exactly_that_length(db: asyncdb.Database) -> None:
    coll = await stored(db, ARRAYS)
    assert await id_set(coll, {"a": {"$size": 2}}) == {1, 2, 3, 6}
    assert await id_set(coll, {"a": {"$size": 0}}) == {7}
    assert await id_set(coll, {"a": {"$size": 1}}) == set()  # 5 is a scalar, not [1]


# --- type bracketing ----------------------------------------------------------------------------

MIXED = [
    {"id": "int4", "v": 4},
    {"id": "str5", "v": "5"},
    {"id": "str3", "v": "3"},
    {"id": "true", "v": True},
    {"id": "false", "v": False},
    {"id": "one", "v": 1},
    {"id": "onef", "v": 1.0},
    {"id": "oned", "v": Decimal("1")},
    {"id": "zero", "v": 0},
    {"id": "half", "v": 0.5},
    {"id": "date", "v": datetime(2024, 1, 1, tzinfo=UTC)},
    {"id": "bytes", "v": b"\x05"},
]


async def test_range_comparisons_never_cross_types(db: asyncdb.Database) -> None:
    coll = await stored(db, MIXED)
    assert await id_set(coll, {"v": {"$gt": 4}}) == set()
    assert await id_set(coll, {"v": {"$gte": 4}}) == {"int4"}
    assert await id_set(coll, {"v": {"$lt": "5"}}) == {"str3"}
    assert await id_set(coll, {"v": {"$gte": 0, "$lte": 1}}) == {
        "one",
        "onef",
        "oned",
        "zero",
        "half",
    }
    assert await id_set(coll, {"v": {"$gt": False}}) == {"true"}
    assert await id_set(coll, {"v": {"$gt": datetime(2000, 1, 1, tzinfo=UTC)}}) == {"date"}
    assert await id_set(coll, {"v": {"$lt": b"\x06"}}) == {"bytes"}


async def test_true_never_equals_one_and_false_never_equals_zero(db: asyncdb.Database) -> None:
    coll = await stored(db, MIXED)
    assert await id_set(coll, {"v": True}) == {"true"}
    assert await id_set(coll, {"v": 1}) == {"one", "onef", "oned"}
    assert await id_set(coll, {"v": 0}) == {"zero"}
    assert await id_set(coll, {"v": {"$in": [False]}}) == {"false"}
    assert await id_set(coll, {"v": {"$ne": True}}) == {x["id"] for x in MIXED} - {"true"}


async def test_numbers_compare_by_value_across_int_float_and_decimal(db: asyncdb.Database) -> None:
    coll = await stored(db, MIXED)
    assert await id_set(coll, {"v": 1.0}) == {"one", "onef", "oned"}
    assert await id_set(coll, {"v": Decimal("1.0")}) == {"one", "onef", "oned"}
    assert await id_set(coll, {"v": {"$in": [4.0, 0.5]}}) == {"int4", "half"}
    assert await id_set(coll, {"v": {"$gt": Decimal("0.75"), "$lt": 2}}) == {"one", "onef", "oned"}


async def test_large_integers_compare_exactly_not_as_doubles(db: asyncdb.Database) -> None:
    big = 2**53
    docs = [
        {"id": "even", "v": big},
        {"id": "odd", "v": big + 1},
        {"id": "float", "v": float(big)},
        {"id": "max", "v": 2**63 - 1},
        {"id": "min", "v": -(2**63)},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"v": big + 1}) == {"odd"}
    assert await id_set(coll, {"v": float(big)}) == {"even", "float"}
    assert await id_set(coll, {"v": {"$gt": float(big)}}) == {"odd", "max"}
    assert await id_set(coll, {"v": 2**63 - 1}) == {"max"}
    assert await id_set(coll, {"v": {"$lt": -(2**62)}}) == {"min"}
    assert await ids(coll, {}, sort=[("v", 1)]) == ["min", "even", "float", "odd", "max"]


async def test_strings_compare_by_code_point(db: asyncdb.Database) -> None:
    words = ["B", "a", "é", "Z", "ä", "\U0001f600", "\uffff", "a\u0301", "ab", "A", ""]
    coll = await stored(db, [{"id": f"w{i}", "s": w} for i, w in enumerate(words)])
    by_point = sorted(range(len(words)), key=lambda i: words[i])
    assert await ids(coll, {}, sort=[("s", 1)]) == [f"w{i}" for i in by_point]
    assert await ids(coll, {}, sort=[("s", -1)]) == [f"w{i}" for i in reversed(by_point)]
    above = {f"w{i}" for i, w in enumerate(words) if w > "Z"}
    assert await id_set(coll, {"s": {"$gt": "Z"}}) == above
    assert await id_set(coll, {"s": {"$gt": "\uffff"}}) == {"w5"}  # beyond the BMP, not UTF-16
    assert await id_set(coll, {"s": "a"}) == {"w1"}  # no case or accent folding


# --- regex ----------------------------------------------------------------------------------------

TEXTS = [
    {"id": 1, "s": "apple"},
    {"id": 2, "s": "Apple pie"},
    {"id": 3, "s": "pine\napple"},
    {"id": 4, "s": "a\nb"},
    {"id": 5, "s": ["grape", "apricot"]},
    {"id": 6, "s": 42},
    {"id": 7},
    {"id": 8, "s": "ÄPFEL"},
]


async def test_regex_is_case_sensitive_and_searches_anywhere(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$regex": "pp"}}) == {1, 2, 3}
    assert await id_set(coll, {"s": {"$regex": "^a"}}) == {1, 4, 5}
    assert await id_set(coll, {"s": {"$regex": "4"}}) == set()  # never matches a number


async def test_regex_flag_i_ignores_case(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$regex": "^apple", "$options": "i"}}) == {1, 2}
    assert await id_set(coll, {"s": {"$regex": "äpfel", "$options": "i"}}) == {8}
    assert await id_set(coll, {"s": re.compile("^APPLE", re.IGNORECASE)}) == {1, 2}


async def test_regex_flag_m_anchors_at_line_starts(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$regex": "^apple$"}}) == {1}
    assert await id_set(coll, {"s": {"$regex": "^apple$", "$options": "m"}}) == {1, 3}
    assert await id_set(coll, {"s": {"$regex": "^b", "$options": "m"}}) == {4}


async def test_regex_flag_s_lets_dot_match_newline(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$regex": "a.b"}}) == set()
    assert await id_set(coll, {"s": {"$regex": "a.b", "$options": "s"}}) == {4}


async def test_regex_flag_x_ignores_pattern_whitespace_and_comments(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$regex": "^ap ple  # the fruit", "$options": "x"}}) == {1}
    assert await id_set(coll, {"s": {"$regex": "^ap ple"}}) == set()


async def test_regex_follows_python_re_syntax(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$regex": r"(?P<w>p)(?P=w)"}}) == {1, 2, 3}
    assert await id_set(coll, {"s": {"$regex": r"\bpie\b"}}) == {2}
    assert await id_set(coll, {"s": {"$regex": r"^\w+$"}}) == {1, 5, 8}
    assert await id_set(coll, {"s": {"$regex": "%"}}) == set()  # no LIKE wildcards
    assert await id_set(coll, {"s": {"$regex": "a_p"}}) == set()


async def test_not_regex_matches_non_strings_and_missing(db: asyncdb.Database) -> None:
    coll = await stored(db, TEXTS)
    assert await id_set(coll, {"s": {"$not": re.compile("p")}}) == {4, 6, 7, 8}
    assert await id_set(coll, {"s": {"$not": {"$regex": "^a"}}}) == {2, 3, 6, 7, 8}


# --- $mod, $type, $exists, logic -----------------------------------------------------------------


async def test_mod_truncates_and_keeps_the_dividend_sign(db: asyncdb.Database) -> None:
    docs = [
        {"id": "8", "n": 8},
        {"id": "8.9", "n": 8.9},
        {"id": "-8.9", "n": -8.9},
        {"id": "-5", "n": -5},
        {"id": "5", "n": 5},
        {"id": "d9", "n": Decimal("9.5")},
        {"id": "str", "n": "8"},
        {"id": "arr", "n": [3, 4]},
        {"id": "true", "n": True},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"n": {"$mod": [4, 0]}}) == {"8", "8.9", "-8.9", "arr"}
    assert await id_set(coll, {"n": {"$mod": [4, 1]}}) == {"5", "d9"}
    assert await id_set(coll, {"n": {"$mod": [4, -1]}}) == {"-5"}
    assert await id_set(coll, {"n": {"$mod": [-4, 1]}}) == {"5", "d9"}


async def test_type_matches_by_bson_type_name_and_number_alias(db: asyncdb.Database) -> None:
    docs = [
        {"id": "int", "v": 1},
        {"id": "long", "v": 2**40},
        {"id": "double", "v": 1.5},
        {"id": "dec", "v": Decimal("1.5")},
        {"id": "str", "v": "x"},
        {"id": "bool", "v": True},
        {"id": "obj", "v": {"a": 1}},
        {"id": "arr", "v": ["x", 2.5]},
        {"id": "bin", "v": b"x"},
        {"id": "date", "v": datetime(2024, 1, 1, tzinfo=UTC)},
        {"id": "null", "v": None},
        {"id": "missing"},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"v": {"$type": "number"}}) == {"int", "long", "double", "dec", "arr"}
    assert await id_set(coll, {"v": {"$type": "int"}}) == {"int"}
    assert await id_set(coll, {"v": {"$type": "long"}}) == {"long"}
    assert await id_set(coll, {"v": {"$type": "double"}}) == {"double", "arr"}
    assert await id_set(coll, {"v": {"$type": "decimal"}}) == {"dec"}
    assert await id_set(coll, {"v": {"$type": "string"}}) == {"str", "arr"}
    assert await id_set(coll, {"v": {"$type": 2}}) == {"str", "arr"}
    assert await id_set(coll, {"v": {"$type": "bool"}}) == {"bool"}
    assert await id_set(coll, {"v": {"$type": "object"}}) == {"obj"}
    assert await id_set(coll, {"v": {"$type": "array"}}) == {"arr"}
    assert await id_set(coll, {"v": {"$type": "binData"}}) == {"bin"}
    assert await id_set(coll, {"v": {"$type": "date"}}) == {"date"}
    assert await id_set(coll, {"v": {"$type": ["null", "bool"]}}) == {"null", "bool"}


async def test_logical_operators(db: asyncdb.Database) -> None:
    docs = [{"id": i, "a": i % 3, "b": i % 2} for i in range(6)] + [{"id": 6}]
    coll = await stored(db, docs)
    assert await id_set(coll, {"$and": [{"a": 0}, {"b": 0}]}) == {0}
    assert await id_set(coll, {"$or": [{"a": 2}, {"b": 1}]}) == {1, 2, 3, 5}
    assert await id_set(coll, {"$nor": [{"a": 2}, {"b": 1}]}) == {0, 4, 6}
    assert await id_set(coll, {"a": {"$not": {"$gt": 0}}}) == {0, 3, 6}
    assert await id_set(coll, {"a": {"$not": {"$gt": 0, "$lt": 2}}}) == {0, 2, 3, 5, 6}
    assert await id_set(coll, {"$or": [{"a": 1}], "b": 1}) == {1}
    nested = {"$or": [{"$and": [{"a": 1}, {"b": 0}]}, {"$nor": [{"a": {"$exists": True}}]}]}
    assert await id_set(coll, nested) == {4, 6}


# --- paths ----------------------------------------------------------------------------------------


async def test_dotted_paths_reach_into_documents_and_arrays_of_documents(
    db: asyncdb.Database,
) -> None:
    docs = [
        {"id": 1, "n": {"x": {"y": 1}}},
        {"id": 2, "n": [{"x": {"y": 2}}, {"x": {"y": 1}}]},
        {"id": 3, "n": [{"x": [{"y": 1}]}]},
        {"id": 4, "n": {"x": [1, {"y": 3}]}},
        {"id": 5, "n": {"x": {"y": [5, 1]}}},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"n.x.y": 1}) == {1, 2, 3, 5}
    assert await id_set(coll, {"n.x.y": {"$gte": 3}}) == {4, 5}
    assert await id_set(coll, {"n.x": {"y": 1}}) == {1, 2, 3}


async def test_numeric_path_parts_index_arrays_and_name_fields(db: asyncdb.Database) -> None:
    docs = [
        {"id": 1, "a": ["x", "y"]},
        {"id": 2, "a": ["y", "x"]},
        {"id": 3, "a": {"0": "x"}},
        {"id": 4, "a": [{"b": 1}, {"b": 2}]},
        {"id": 5, "a": [[1, 2], [3]]},
        {"id": 6, "a": []},
    ]
    coll = await stored(db, docs)
    assert await id_set(coll, {"a.0": "x"}) == {1, 3}
    assert await id_set(coll, {"a.1": "x"}) == {2}
    assert await id_set(coll, {"a.1.b": 2}) == {4}
    assert await id_set(coll, {"a.0.b": 2}) == set()
    assert await id_set(coll, {"a.0": [1, 2]}) == {5}
    # The element an index picks is one value, not traversed again (match_numeric_components.js)
    assert await id_set(coll, {"a.0": 1}) == set()
    assert await id_set(coll, {"a.5": {"$exists": True}}) == set()
    assert await id_set(coll, {"a.1": {"$exists": False}}) == {3, 6}


async def test_field_names_with_spaces_quotes_and_unicode_are_queryable(
    db: asyncdb.Database,
) -> None:
    names = ["with space", 'q"uote', "s'ingle", "é", "日本", "back\\slash", "-dash", "0", "a[0]"]
    doc: dict[str, Any] = {"id": "x", **{n: i for i, n in enumerate(names)}}
    doc["nest"] = {n: n for n in names}
    coll = await stored(db, [doc, {"id": "y"}])
    assert_same(doc, await coll.find_one({"id": "x"}))
    for i, n in enumerate(names):
        assert await id_set(coll, {n: i}) == {"x"}, n
        assert await id_set(coll, {f"nest.{n}": n}) == {"x"}, n
        assert await ids(coll, {}, sort=[(n, -1)]) == ["x", "y"], n


# --- sort -----------------------------------------------------------------------------------------


async def test_sort_orders_mixed_types_in_bson_order(db: asyncdb.Database) -> None:
    docs = [
        {"id": "date", "v": datetime(2020, 1, 1, tzinfo=UTC)},
        {"id": "true", "v": True},
        {"id": "false", "v": False},
        {"id": "bytes", "v": b"\x00"},
        {"id": "bytes2", "v": b"\x00\x00"},
        {"id": "obj", "v": {"a": 1}},
        {"id": "str_b", "v": "b"},
        {"id": "str_a", "v": "a"},
        {"id": "num3", "v": 3},
        {"id": "num2.5", "v": 2.5},
        {"id": "dec10", "v": Decimal("10")},
        {"id": "null", "v": None},
        {"id": "missing"},
        {"id": "nested_arr", "v": [[1]]},
    ]
    order = [
        "missing",
        "null",
        "num2.5",
        "num3",
        "dec10",
        "str_a",
        "str_b",
        "obj",
        "nested_arr",
        "bytes",
        "bytes2",
        "false",
        "true",
        "date",
    ]
    coll = await stored(db, docs)
    assert await ids(coll, {}, sort=[("v", 1)]) == order
    # descending: reversed, but null and missing tie and stay in key order
    desc = [*reversed(order[2:]), "missing", "null"]
    assert await ids(coll, {}, sort=[("v", -1)]) == desc


async def test_arrays_sort_by_smallest_element_ascending_and_largest_descending(
    db: asyncdb.Database,
) -> None:
    docs = [
        {"id": "a", "v": [5, 1]},
        {"id": "b", "v": [2, 4]},
        {"id": "c", "v": 3},
        {"id": "d", "v": [0, "z"]},
        {"id": "e", "v": [6]},
    ]
    coll = await stored(db, docs)
    assert await ids(coll, {}, sort=[("v", 1)]) == ["d", "a", "b", "c", "e"]
    assert await ids(coll, {}, sort=[("v", -1)]) == ["d", "e", "a", "b", "c"]


async def test_empty_array_sorts_before_null(db: asyncdb.Database) -> None:
    docs = [
        {"id": "null", "v": None},
        {"id": "empty", "v": []},
        {"id": "missing"},
        {"id": "zero", "v": 0},
    ]
    coll = await stored(db, docs)
    assert await ids(coll, {}, sort=[("v", 1)]) == ["empty", "missing", "null", "zero"]
    assert await ids(coll, {}, sort=[("v", -1)]) == ["zero", "missing", "null", "empty"]


async def test_sort_on_a_path_through_an_array_of_documents(db: asyncdb.Database) -> None:
    docs = [
        {"id": "a", "items": [{"q": 5}, {"q": 1}]},
        {"id": "b", "items": [{"q": 3}]},
        {"id": "c", "items": {"q": 2}},
        {"id": "d", "items": [{"q": 4}, {"r": 0}]},
    ]
    coll = await stored(db, docs)
    # "d" has an element without q, which sorts as null
    assert await ids(coll, {}, sort=[("items.q", 1)]) == ["d", "a", "c", "b"]
    assert await ids(coll, {}, sort=[("items.q", -1)]) == ["a", "d", "b", "c"]


async def test_sort_on_embedded_documents_compares_field_by_field(db: asyncdb.Database) -> None:
    docs = [
        {"id": "a", "v": {"x": 2}},
        {"id": "b", "v": {"x": 1, "y": 9}},
        {"id": "c", "v": {"x": 1}},
        {"id": "d", "v": {"w": 100}},
        {"id": "e", "v": {}},
    ]
    coll = await stored(db, docs)
    # per field: the value's type, then the field name ("w" < "x"), then the value
    assert await ids(coll, {}, sort=[("v", 1)]) == ["e", "d", "c", "b", "a"]


# --- projection -----------------------------------------------------------------------------------


async def test_include_projection_of_nested_and_array_paths(db: asyncdb.Database) -> None:
    doc = {
        "id": "x",
        "a": 1,
        "n": {"x": 1, "y": 2},
        "items": [{"q": 1, "r": 2}, {"r": 3}, 7],
        "z": "drop",
    }
    coll = await stored(db, [doc])
    assert_same(
        {"id": "x", "n": {"y": 2}, "items": [{"q": 1}, {}]},
        await coll.find_one({"id": "x"}, {"items.q": 1, "n.y": 1}),
    )
    assert_same({"id": "x", "a": 1}, await coll.find_one({"id": "x"}, {"a": 1, "missing": 1}))


async def test_exclude_projection_of_nested_and_array_paths(db: asyncdb.Database) -> None:
    doc = {"id": "x", "a": 1, "n": {"x": 1, "y": 2}, "items": [{"q": 1, "r": 2}, {"r": 3}, 7]}
    coll = await stored(db, [doc])
    assert_same(
        {"id": "x", "a": 1, "n": {"x": 1}, "items": [{"r": 2}, {"r": 3}, 7]},
        await coll.find_one({"id": "x"}, {"items.q": 0, "n.y": 0}),
    )


@pytest.mark.parametrize("flag", [True, 1, 1.0])
async def test_projection_accepts_truthy_flags(db: asyncdb.Database, flag: Any) -> None:
    coll = await stored(db, [{"id": "x", "a": 1, "b": 2}])
    assert_same({"id": "x", "a": 1}, await coll.find_one({"id": "x"}, {"a": flag}))
