"""Sort order: BSON comparison order as memcomparable keys.

https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
https://www.mongodb.com/docs/manual/reference/method/cursor.sort/
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asyncdb.query.parse import parse_sort
from asyncdb.query.sort import encode_value, sort_documents, sort_key
from asyncdb.query.values import compare, equal

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def order(values: list[Any], direction: int = 1, field: str = "v") -> list[Any]:
    """Sort documents holding ``values`` and return the values (missing shown as "MISSING")."""
    docs = [{field: v} if v != "MISSING" else {} for v in values]
    out = sort_documents(docs, parse_sort([(field, direction)]))
    return [d.get(field, "MISSING") for d in out]


def key(value: Any, direction: int = 1) -> bytes:
    return sort_key({"v": value}, parse_sort([("v", direction)]))


# --- order across types ----------------------------------------------------------------------
# bson-type-comparison-order: Null < Numbers < String < Object < Array < BinData < Boolean < Date


def test_types_sort_in_bson_order() -> None:
    values = [T0, True, b"\x00", {"a": 1}, "a", 5, None]
    assert order(values) == [None, 5, "a", {"a": 1}, b"\x00", True, T0]


def test_types_sort_descending_in_reverse_bson_order() -> None:
    values = [None, 5, "a", {"a": 1}, b"\x00", True, T0]
    assert order(values, -1) == [T0, True, b"\x00", {"a": 1}, "a", 5, None]


def test_array_type_sorts_between_object_and_bytes_when_nested() -> None:
    # a nested array is compared as an array value, not unwrapped
    assert order([b"x", [[1]], {"a": 1}]) == [{"a": 1}, [[1]], b"x"]


def test_missing_field_sorts_as_null_and_keeps_input_order() -> None:
    # bson-type-comparison-order, Non-existent Fields: "treats a non-existent field as if it
    # were null"
    docs = [{"i": 1, "v": None}, {"i": 2}, {"i": 3, "v": None}, {"i": 4, "v": 0}]
    out = sort_documents(docs, parse_sort([("v", 1)]))
    assert [d["i"] for d in out] == [1, 2, 3, 4]
    assert key(None) == sort_key({}, parse_sort([("v", 1)]))


def test_number_never_sorts_with_its_string() -> None:
    assert order(["10", 9, "9", 10]) == [9, 10, "10", "9"]


def test_false_sorts_before_true() -> None:
    assert order([True, False]) == [False, True]


# --- numbers ---------------------------------------------------------------------------------


def test_numbers_sort_by_value_across_int_float_and_decimal() -> None:
    values = [Decimal("2.5"), 3, -1.5, Decimal("-2"), 0, 2.25]
    assert order(values) == [Decimal("-2"), -1.5, 0, 2.25, Decimal("2.5"), 3]


def test_equal_numbers_of_different_types_have_equal_keys() -> None:
    assert key(1) == key(1.0) == key(Decimal("1")) == key(Decimal("1.00"))


def test_negative_zero_equals_zero() -> None:
    assert key(-0.0) == key(0) == key(0.0)


def test_large_integers_keep_exact_order_beyond_float_precision() -> None:
    assert key(2**53) < key(2**53 + 1) < key(2**63 - 1)
    assert key(2**63 - 1) < key(float(2**63))
    assert key(-(2**63)) < key(-(2**63) + 1)


def test_decimal_orders_against_the_nearest_double() -> None:
    # 0.1 as a double is slightly above one tenth
    assert key(Decimal("0.1")) < key(0.1)
    assert key(Decimal("0.1000000000000000000001")) > key(Decimal("0.1"))


def test_huge_and_tiny_floats_order() -> None:
    assert order([1e308, -1e308, 5e-324, -5e-324, 0.0]) == [-1e308, -5e-324, 0.0, 5e-324, 1e308]


# --- strings ---------------------------------------------------------------------------------


def test_strings_sort_by_code_point() -> None:
    values = ["é", "a", "B", "\U0001f600", "\uffff", "A", "aa"]
    assert order(values) == ["A", "B", "a", "aa", "é", "\uffff", "\U0001f600"]


def test_string_prefix_sorts_first_even_with_nul() -> None:
    assert order(["ab", "a\x00", "a", "a\x00b"]) == ["a", "a\x00", "a\x00b", "ab"]


def test_empty_string_sorts_first_among_strings() -> None:
    assert order(["a", ""]) == ["", "a"]


# --- objects ---------------------------------------------------------------------------------
# bson-type-comparison-order, Objects: pairs in order; field type, then name, then value.


def test_objects_compare_field_type_before_field_name() -> None:
    assert order([{"a": "x"}, {"b": 1}]) == [{"b": 1}, {"a": "x"}]


def test_objects_compare_field_name_before_value() -> None:
    assert order([{"b": 1}, {"a": 2}]) == [{"a": 2}, {"b": 1}]


def test_object_without_further_pairs_sorts_first() -> None:
    assert order([{"a": 1, "b": 1}, {"a": 1}, {}]) == [{}, {"a": 1}, {"a": 1, "b": 1}]


def test_object_field_order_matters() -> None:
    assert key({"a": 1, "b": 2}) != key({"b": 2, "a": 1})


# --- arrays ----------------------------------------------------------------------------------
# bson-type-comparison-order, Arrays: ascending uses the smallest element, descending the
# largest; an empty array sorts before null or a missing field.


def test_array_sorts_by_smallest_element_ascending() -> None:
    assert order([[5, 1], 3, [2, 9]]) == [[5, 1], [2, 9], 3]


def test_array_sorts_by_largest_element_descending() -> None:
    assert order([[5, 1], 3, [2, 9]], -1) == [[2, 9], [5, 1], 3]


def test_array_with_mixed_types_uses_bson_order_for_its_minimum() -> None:
    assert order(["b", ["z", 7], 8]) == [["z", 7], 8, "b"]
    assert order(["b", ["z", 7], 8], -1) == [["z", 7], "b", 8]


def test_empty_array_sorts_before_null_and_missing() -> None:
    assert order([None, "MISSING", [], 1]) == [[], None, "MISSING", 1]


def test_empty_array_sorts_after_null_descending() -> None:
    assert order([[], None, 1], -1) == [1, None, []]


def test_single_element_array_sorts_as_its_element() -> None:
    assert key([1]) == key(1)
    assert order([2, [1], [3]]) == [[1], 2, [3]]


def test_array_with_null_sorts_with_null_ascending() -> None:
    assert order([0, [None, 5]]) == [[None, 5], 0]


def test_nested_array_element_is_an_array_value() -> None:
    # [[1, 2], 3]: elements are [1, 2] (array type) and 3 (number); the minimum is 3
    assert key([[1, 2], 3]) == key(3)
    assert key([[1, 2], 3], -1) == key([[1, 2]], -1)


def test_dotted_sort_through_array_of_documents_uses_all_values() -> None:
    docs = [
        {"i": 1, "a": [{"b": 5}, {"b": 1}]},
        {"i": 2, "a": [{"b": 3}]},
        {"i": 3, "a": {"b": 2}},
    ]
    up = sort_documents(docs, parse_sort([("a.b", 1)]))
    down = sort_documents(docs, parse_sort([("a.b", -1)]))
    assert [d["i"] for d in up] == [1, 3, 2]
    assert [d["i"] for d in down] == [1, 2, 3]


def test_dotted_sort_with_document_missing_the_field_sorts_as_null() -> None:
    docs = [{"i": 1, "a": [{"b": 5}, {}]}, {"i": 2, "a": [{"b": 0}]}]
    assert [d["i"] for d in sort_documents(docs, parse_sort([("a.b", 1)]))] == [1, 2]
    assert [d["i"] for d in sort_documents(docs, parse_sort([("a.b", -1)]))] == [1, 2]


# --- dates and bytes -------------------------------------------------------------------------


def test_datetimes_sort_by_instant_including_before_1970() -> None:
    old = datetime(1900, 1, 1, tzinfo=UTC)
    values = [T0 + timedelta(milliseconds=1), old, T0]
    assert order(values) == [old, T0, T0 + timedelta(milliseconds=1)]


def test_bytes_sort_by_length_then_content() -> None:
    assert order([b"\x00\x00", b"\xff", b"\x01", b""]) == [b"", b"\x01", b"\xff", b"\x00\x00"]


# --- several keys and directions -------------------------------------------------------------


def test_sort_on_several_fields_with_mixed_directions() -> None:
    docs = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "a"}]
    out = sort_documents(docs, parse_sort([("a", -1), ("b", 1)]))
    assert [(d["a"], d["b"]) for d in out] == [(2, "a"), (2, "y"), (1, "x"), (1, "z")]


def test_string_key_prefix_does_not_leak_into_the_next_field() -> None:
    docs = [{"a": "ab", "b": 1}, {"a": "a", "b": 2}]
    for direction in (1, -1):
        out = sort_documents(docs, parse_sort([("a", direction), ("b", 1)]))
        expected = ["a", "ab"] if direction == 1 else ["ab", "a"]
        assert [d["a"] for d in out] == expected


def test_sort_is_stable_for_equal_keys() -> None:
    docs = [{"i": i, "v": 1 if i % 2 else 1.0} for i in range(6)]
    out = sort_documents(docs, parse_sort([("v", -1)]))
    assert [d["i"] for d in out] == list(range(6))


def test_no_sort_keeps_input_order() -> None:
    docs = [{"v": 2}, {"v": 1}]
    assert sort_documents(docs, ()) == docs


# --- the bytes agree with compare() ----------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-(10**20), max_value=10**20, places=4),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=2), inner, max_size=3),
    ),
    max_leaves=8,
)


def sign(n: int) -> int:
    return (n > 0) - (n < 0)


@given(NESTED, NESTED)
def test_encoded_values_order_like_compare(a: Any, b: Any) -> None:
    ea, eb = encode_value(a), encode_value(b)
    assert sign((ea > eb) - (ea < eb)) == sign(compare(a, b))
    assert (ea == eb) is equal(a, b)


@given(SCALARS, SCALARS)
def test_descending_key_reverses_ascending_key(a: Any, b: Any) -> None:
    up = sign((key(a) > key(b)) - (key(a) < key(b)))
    down = sign((key(a, -1) > key(b, -1)) - (key(a, -1) < key(b, -1)))
    assert down == -up


# --- dotted and positional paths, from MongoDB's own sort tests ------------------------------
# mongodb/mongo jstests sort_dotted_paths.js and sort_dotted_paths_positional.js (the documents
# holding `undefined` are left out: it is not a portable value). Ties break on "_id".


def ids(docs: list[dict[str, Any]], spec: list[tuple[str, int]]) -> list[int]:
    return [d["_id"] for d in sort_documents(docs, parse_sort(spec))]


MIXED = [
    {"_id": 1, "a": 1},
    {"_id": 3, "a": None},
    {"_id": 4, "a": {}},
    {"_id": 5, "a": []},
    {"_id": 6, "a": [1]},
    {"_id": 7, "a": [[1]]},
    {"_id": 8},
]


def test_mixed_types_sort_like_mongodb() -> None:
    assert ids(MIXED, [("a", 1), ("_id", 1)]) == [5, 3, 8, 1, 6, 4, 7]
    assert ids(MIXED, [("a", -1), ("_id", 1)]) == [7, 4, 1, 6, 3, 8, 5]


def test_positional_sort_takes_the_element_whole() -> None:
    # "a.0" of [[1]] is the array [1], which sorts after every number
    assert ids(MIXED, [("a.0", 1), ("_id", 1)]) == [1, 3, 4, 5, 8, 6, 7]
    assert ids(MIXED, [("a.0", -1), ("_id", 1)]) == [7, 6, 1, 3, 4, 5, 8]


def test_sort_on_two_fields_each_an_array_in_some_documents() -> None:
    docs = [
        {"_id": 1, "a": 1, "b": [2]},
        {"_id": 2, "a": 2, "b": []},
        {"_id": 3, "a": [], "b": 4},
        {"_id": 4, "a": [1], "b": 4},
        {"_id": 5, "a": [2, 3], "b": 2},
        {"_id": 6, "a": 2, "b": [3, 5]},
        {"_id": 7, "a": 1, "b": [1, 3]},
        {"_id": 8, "a": [1, 2], "b": 3},
        {"_id": 9, "a": 2, "b": 3},
    ]
    assert ids(docs, [("a", 1), ("b", 1), ("_id", 1)]) == [3, 7, 1, 8, 4, 2, 5, 6, 9]
    assert ids(docs, [("a", 1), ("b", -1), ("_id", 1)]) == [3, 4, 7, 8, 1, 6, 9, 5, 2]
    assert ids(docs, [("a", -1), ("b", 1), ("_id", 1)]) == [5, 2, 6, 8, 9, 7, 1, 4, 3]
    assert ids(docs, [("a", -1), ("b", -1), ("_id", 1)]) == [5, 6, 8, 9, 2, 4, 7, 1, 3]


def test_sort_on_path_of_length_two_through_arrays() -> None:
    docs = [
        {"_id": 1, "a": {"b": 2}},
        {"_id": 2, "a": {"b": []}},
        {"_id": 3, "a": {"b": [2, 3]}},
        {"_id": 4, "a": {"c": 1}},
        {"_id": 5, "a": []},
        {"_id": 6, "a": [{"b": [5]}]},
        {"_id": 7, "a": [{"b": [4, 5]}, {"b": 7}]},
        {"_id": 8, "a": [{"b": [1, 3]}, {"b": [2, 5]}]},
        {"_id": 9, "a": [{"b": []}, {"b": [1, 3]}]},
    ]
    assert ids(docs, [("a.b", 1), ("_id", 1)]) == [2, 9, 4, 5, 8, 1, 3, 7, 6]
    assert ids(docs, [("a.b", 1), ("_id", -1)]) == [9, 2, 5, 4, 8, 3, 1, 7, 6]
    assert ids(docs, [("a.b", -1), ("_id", 1)]) == [7, 6, 8, 3, 9, 1, 4, 5, 2]
    assert ids(docs, [("a.b", -1), ("_id", -1)]) == [7, 8, 6, 9, 3, 1, 5, 4, 2]


def test_sort_on_positional_path_into_array_of_documents() -> None:
    docs = [
        {"_id": 1, "a": [{"b": [4, 1], "c": 1}, {"b": [1, 5], "c": 2}]},
        {"_id": 2, "a": [{"b": 2, "c": [1, 3]}, {"b": 4, "c": [2, 4]}]},
        {"_id": 3, "a": [{"b": [6, 4], "c": 1}, {"b": [9, 7], "c": 2}]},
        {"_id": 4, "a": [{"b": 4, "c": [1, 2]}, {"b": 5, "c": [3, 2]}]},
        {"_id": 5, "a": [{"b": [2, 3], "c": 1}, {"b": [7, 6], "c": 3}]},
        {"_id": 6, "a": [{"b": 5, "c": []}, {"b": 3, "c": 3}]},
        {"_id": 7, "a": [{"b": [], "c": 2}, {"b": 2, "c": 3}]},
        {"_id": 8, "a": [{"b": 3, "c": [2]}, {"b": 8, "c": [3]}]},
        {"_id": 9, "a": [{"b": [8], "c": 2}, {"b": [6], "c": 3}]},
    ]
    assert ids(docs, [("a.0.b", 1), ("_id", 1)]) == [7, 1, 2, 5, 8, 3, 4, 6, 9]
    assert ids(docs, [("a.0.b", 1), ("_id", -1)]) == [7, 1, 5, 2, 8, 4, 3, 6, 9]
    assert ids(docs, [("a.0.b", -1), ("_id", 1)]) == [9, 3, 6, 1, 4, 5, 8, 2, 7]
    assert ids(docs, [("a.0.b", -1), ("_id", -1)]) == [9, 3, 6, 4, 1, 8, 5, 2, 7]


def test_sort_on_path_of_length_three_through_arrays() -> None:
    docs = [
        {"_id": 1, "a": {"b": {"c": 2}}},
        {"_id": 2, "a": {"b": {"c": []}}},
        {"_id": 3, "a": [{"b": []}, {"b": {"c": []}}]},
        {"_id": 4, "a": [{"b": {"c": 1}}]},
        {"_id": 5, "a": {"b": [{"c": 3}, {"d": 1}]}},
        {"_id": 6, "a": {"b": [{"c": [5]}]}},
        {"_id": 7, "a": []},
        {"_id": 8, "a": {"b": [{"c": [1, 3]}, {"c": [2, 5]}]}},
        {"_id": 9, "a": [{"b": [{"c": []}, {"c": [1, 3]}]}]},
    ]
    assert ids(docs, [("a.b.c", 1), ("_id", 1)]) == [2, 3, 9, 5, 7, 4, 8, 1, 6]
    assert ids(docs, [("a.b.c", -1), ("_id", -1)]) == [8, 6, 9, 5, 1, 4, 7, 3, 2]
