"""DESIGN §2: every portable value type round-trips unchanged on every backend.

"Unchanged" is strict: the same Python type (``1`` is not ``1.0`` is not ``True`` is not
``Decimal(1)``), the same field order, the same sign of zero, the same Decimal exponent. The one
documented normalisation is asserted as such: datetimes come back in UTC, cut to milliseconds.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import asyncdb

from .support import assert_same, id_set

WHEN = datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC)

PORTABLE: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "int_zero": 0,
    "int_negative": -7,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "int_above_2_53": 2**53 + 1,
    "int32_edge": 2**31,
    "float": 0.1,
    "float_whole": 3.0,
    "float_negative_zero": -0.0,
    "float_max": 1.7976931348623157e308,
    "float_min_subnormal": 5e-324,
    "float_negative_exp": -1.5e-300,
    "decimal": Decimal("0.1"),
    "decimal_34_digits": Decimal("1234567890123456789012345678.901234"),
    "decimal_trailing_zero": Decimal("1.10"),
    "decimal_negative": Decimal("-42"),
    "decimal_exponent": Decimal("1E+30"),
    "decimal_tiny": Decimal("1E-30"),
    "str_empty": "",
    "str_ascii": "hello",
    "str_latin": "héllo wörld",
    "str_astral": "🎉 \U0001f600 \U00010348",
    "str_cjk_rtl": "日本語 עברית العربية",
    "str_combining": "e\u0301",
    "str_controls": "tab\tnl\ncr\rbell\x07esc\x1b\x7f",
    "str_quotes": "q\"uote s'ingle back\\slash",
    "str_json_like": '{"a": [1, 2], "$set": null}',
    "str_line_separators": "\u2028\u2029\u0085",
    "str_bom_and_max_bmp": "\ufeff\uffff",
    "str_numeric": "12345678901234567890",
    "str_long": "x" * 100_000,
    "bytes_empty": b"",
    "bytes_all": bytes(range(256)),
    "bytes_nul": b"\x00",
    "bytes_utf8": "é".encode(),
    "datetime": WHEN,
    "datetime_epoch": datetime(1970, 1, 1, tzinfo=UTC),
    "datetime_pre_epoch": datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "datetime_1900": datetime(1900, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    "datetime_min": datetime(1, 1, 1, tzinfo=UTC),
    "datetime_max": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "list_empty": [],
    "dict_empty": {},
    "list_mixed": [None, True, 1, 1.5, Decimal("2.5"), "s", b"b", WHEN, {"k": "v"}, [1, [2]]],
    "list_nested": [[[]], [[1, 2], []], [{}]],
    "dict_nested": {"a": {"b": {"c": {"d": [1, {"e": None}]}}}, "f": {}},
    "dict_field_order": {"z": 1, "a": 2, "m": {"y": 1, "b": 2}, "0": 3, "10": 4, "9": 5},
    "dict_unicode_fields": {"é": 1, "日本": 2, "with space": 3, 'q"': 4, "\U0001f600": 5},
    "deep": {"l1": {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": {"l8": [[[[["bottom"]]]]]}}}}}}}},
}


@pytest.mark.parametrize("name", list(PORTABLE))
async def test_portable_value_round_trips_unchanged(db: asyncdb.Database, name: str) -> None:
    value = PORTABLE[name]
    coll = db.collection("values")
    doc = {"id": name, "v": value, "in_list": [value], "in_doc": {"x": value}}
    await coll.insert_one(doc)
    assert_same(doc, await coll.find_one({"id": name}))
    assert_same([doc], await coll.find({"id": {"$in": [name]}}).to_list())


@pytest.mark.parametrize("name", list(PORTABLE))
async def test_portable_value_survives_an_update(db: asyncdb.Database, name: str) -> None:
    value = PORTABLE[name]
    coll = db.collection("values")
    await coll.insert_one({"id": name, "n": 0})
    await coll.update_one(
        {"id": name}, {"$set": {"v": value}, "$push": {"l": value}, "$inc": {"n": 1}}
    )
    assert_same({"id": name, "n": 1, "v": value, "l": [value]}, await coll.find_one({"id": name}))
    after = await coll.find_one_and_update({"id": name}, {"$set": {"w": value}})
    assert_same({"id": name, "n": 1, "v": value, "l": [value], "w": value}, after)


async def test_each_portable_value_is_found_by_equality(db: asyncdb.Database) -> None:
    coll = db.collection("values", allow_scan=True)
    await coll.insert_many([{"id": name, "v": value} for name, value in PORTABLE.items()])
    for name, value in PORTABLE.items():
        found = await id_set(coll, {"v": value})
        assert name in found, (name, found)
        if isinstance(value, list):
            continue  # an array value also matches its elements' equals
        for other in found - {name}:
            # anything else found must be equal by MongoDB's rules (1 == 1.0, arrays holding it)
            assert isinstance(PORTABLE[other], list) or _numeric_twin(PORTABLE[other], value), (
                name,
                other,
            )


def _numeric_twin(a: Any, b: Any) -> bool:
    numeric = (int, float, Decimal)
    return (
        isinstance(a, numeric)
        and isinstance(b, numeric)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


async def test_field_order_is_preserved(db: asyncdb.Database) -> None:
    coll = db.collection("values")
    doc = {"zeta": 1, "id": "k", "alpha": {"z": 1, "a": 2}, "mid": [{"b": 1, "a": 2}]}
    await coll.insert_one(doc)
    got = await coll.find_one({"id": "k"})
    assert got is not None
    assert list(got) == ["zeta", "id", "alpha", "mid"]
    assert list(got["alpha"]) == ["z", "a"]
    assert list(got["mid"][0]) == ["b", "a"]


async def test_embedded_document_equality_depends_on_field_order(db: asyncdb.Database) -> None:
    coll = db.collection("values", allow_scan=True)
    await coll.insert_many(
        [{"id": "ab", "d": {"a": 1, "b": 2}}, {"id": "ba", "d": {"b": 2, "a": 1}}]
    )
    assert await id_set(coll, {"d": {"a": 1, "b": 2}}) == {"ab"}
    assert await id_set(coll, {"d": {"b": 2, "a": 1}}) == {"ba"}


async def test_datetimes_are_normalised_to_utc_milliseconds(db: asyncdb.Database) -> None:
    coll = db.collection("values", allow_scan=True)
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=plus_two)
    await coll.insert_one({"id": "t", "at": local, "list": [local]})
    doc = await coll.find_one({"id": "t"})
    assert doc is not None
    expected = datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
    for got in (doc["at"], doc["list"][0]):
        assert got == expected
        assert got.utcoffset() == timedelta(0)
        assert got.microsecond == 123000
    # the original (aware, sub-millisecond) value finds it: filters are normalised the same way
    assert await id_set(coll, {"at": local}) == {"t"}
    assert await id_set(
        coll, {"at": {"$gte": expected, "$lt": expected + timedelta(milliseconds=1)}}
    ) == {"t"}


async def test_naive_datetimes_are_rejected(db: asyncdb.Database) -> None:
    coll = db.collection("values", allow_scan=True)
    naive = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(asyncdb.QueryError):
        await coll.insert_one({"id": "t", "at": naive})
    with pytest.raises(asyncdb.QueryError):
        await coll.find_one({"at": naive})
    assert await id_set(coll) == set()


async def test_tuples_are_stored_as_lists_and_bytearrays_as_bytes(db: asyncdb.Database) -> None:
    coll = db.collection("values")
    await coll.insert_one({"id": "t", "tup": (1, (2, 3)), "ba": bytearray(b"\x01\x02")})
    assert_same(
        {"id": "t", "tup": [1, [2, 3]], "ba": b"\x01\x02"}, await coll.find_one({"id": "t"})
    )


class Severity(str, enum.Enum):  # noqa: UP042 (the case under test: not a StrEnum)
    HIGH = "high"


class Level(enum.IntEnum):
    TWO = 2


async def test_str_and_int_enum_members_are_stored_as_their_values(db: asyncdb.Database) -> None:
    # str() of a (str, Enum) member is "Severity.HIGH"; the stored value must be "high", as
    # pymongo and orjson store it, in values, keys, filters and updates alike.
    coll = db.collection("values", allow_scan=True)
    await coll.insert_one({"id": "e", "sev": Severity.HIGH, "lvl": Level.TWO, Severity.HIGH: 1})
    got = await coll.find_one({"sev": Severity.HIGH})
    assert_same({"id": "e", "sev": "high", "lvl": 2, "high": 1}, got)
    assert got is not None and type(got["sev"]) is str and type(got["lvl"]) is int
    assert await coll.count_documents({"sev": "high", "lvl": {"$in": [Level.TWO]}}) == 1
    await coll.update_one({"id": "e"}, {"$set": {"again": Severity.HIGH}})
    assert await coll.count_documents({"again": "high"}) == 1


async def test_inserted_document_is_not_changed_by_later_mutation(db: asyncdb.Database) -> None:
    coll = db.collection("values")
    doc: dict[str, Any] = {"id": "m", "l": [1], "d": {"x": 1}}
    await coll.insert_one(doc)
    doc["l"].append(2)
    doc["d"]["x"] = 2
    got = await coll.find_one({"id": "m"})
    assert_same({"id": "m", "l": [1], "d": {"x": 1}}, got)
    assert got is not None
    got["l"].append(3)
    assert_same({"id": "m", "l": [1], "d": {"x": 1}}, await coll.find_one({"id": "m"}))
