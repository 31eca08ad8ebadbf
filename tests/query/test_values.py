"""Value normalisation: the fast paths of normalize_value / normalize_document give exactly the
results and errors of the plain recursive definition (kept here as the oracle), copy every
container, and the insert path neither aliases nor mutates the caller's documents."""

from __future__ import annotations

import enum
import gc
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.backends.base import GC_PAUSE_MIN, StoreCollection, check_key, gc_paused
from asyncdb.errors import DuplicateKey, QueryError
from asyncdb.query.values import (
    INT64_MAX,
    INT64_MIN,
    check_field_name,
    normalize_datetime,
    normalize_document,
    normalize_value,
)
from asyncdb.types import CollectionSpec


def reference_normalize(value: Any, path: str = "", depth: int = 0) -> Any:
    """normalize_value as it was before the fast paths: the definition they must match."""
    if depth > 100:
        raise QueryError("nesting deeper than 100 levels", path=path)
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise QueryError("integer outside the 64-bit range", path=path)
        return value
    if t is float:
        if not math.isfinite(value):
            raise QueryError("NaN and infinity are not portable values", path=path)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            check_field_name(k, sub)
            out[str.__str__(k)] = reference_normalize(v, sub, depth + 1)  # a str subclass: its text
        return out
    if isinstance(value, list | tuple):
        return [reference_normalize(v, f"{path}.{i}", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, datetime):
        return normalize_datetime(value, path)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QueryError("NaN and infinity are not portable values", path=path)
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return reference_normalize(int(value), path, depth)
    if isinstance(value, float):
        return reference_normalize(float(value), path, depth)
    if isinstance(value, str):
        return str.__str__(value)  # not str(): that of a (str, Enum) member is "Cls.NAME"
    raise QueryError(f"unsupported value type {type(value).__name__}", path=path)


class Level(enum.IntEnum):
    HIGH = 3


class Tone(str, enum.Enum):  # noqa: UP042 (a mixed-in str enum, whose str() is "Tone.LOUD")
    LOUD = "loud"


class Name(str):
    pass


class FrozenMap(Mapping[Any, Any]):
    """A mapping that is not a dict (takes the general path)."""

    def __init__(self, items: dict[Any, Any]) -> None:
        self._items = items

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Any:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def outcome(fn: Any, value: Any) -> Any:
    """The result of ``fn(value)`` with its exact types, or the error it raised."""
    try:
        return ("ok", typed(fn(value)))
    except QueryError as exc:
        return ("error", str(exc), exc.path)


def typed(value: Any) -> Any:
    """A value with every type (and the sign of zero) spelled out, for exact comparison."""
    if isinstance(value, dict):
        return ("dict", type(value), [(type(k), k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", type(value), [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.tzinfo)
    return (type(value), value)


T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN - 2, max_value=INT64_MAX + 2),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 1e16, 1.5e300, float("nan"), float("-inf")]),
    st.text(max_size=4),
    st.sampled_from(["", "x\x00y", "$a", "a.b", Name("sub"), Tone.LOUD]),
    st.sampled_from([Decimal("1.5"), Decimal("NaN"), Decimal("-Infinity"), Decimal("1E+3")]),
    st.sampled_from([b"", b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")]),
    st.sampled_from(
        [
            T0,
            T0.replace(tzinfo=None),
            T0.astimezone(timezone(timedelta(hours=5, minutes=30))),
            datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-3))),
        ]
    ),
    st.sampled_from([Level.HIGH, {1, 2}, object()]),
)
field_names = st.one_of(
    st.text(max_size=3),
    st.sampled_from(["a", "b", "id", "$x", "a.b", "", "n\x00", Name("sub"), Tone.LOUD, 1, None]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(field_names, children, max_size=4),
        st.dictionaries(field_names, children, max_size=3).map(OrderedDict),
        st.dictionaries(field_names, children, max_size=3).map(FrozenMap),
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(values)
def test_normalize_value_matches_the_reference(value: Any) -> None:
    assert outcome(normalize_value, value) == outcome(reference_normalize, value)


@settings(max_examples=300)
@given(st.dictionaries(field_names, values, max_size=5))
def test_normalize_document_matches_the_reference(doc: dict[Any, Any]) -> None:
    assert outcome(normalize_document, doc) == outcome(reference_normalize, doc)
    assert outcome(normalize_document, FrozenMap(doc)) == outcome(reference_normalize, doc)


def nested(kind: str, levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value} if kind == "dict" else [value]
    return value


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("levels", [99, 100, 101, 102])
def test_nesting_limit_is_unchanged(kind: str, levels: int) -> None:
    value = nested(kind, levels)
    assert outcome(normalize_value, value) == outcome(reference_normalize, value)
    assert (outcome(normalize_value, value)[0] == "ok") == (levels <= 100)


@pytest.mark.parametrize(
    ("doc", "message", "path"),
    [
        ({"a": 2**63}, "integer outside the 64-bit range", "a"),
        ({"a": [1, -(2**63) - 1]}, "integer outside the 64-bit range", "a.1"),
        ({"a": {"b": float("nan")}}, "NaN and infinity", "a.b"),
        ({"a": [float("inf")]}, "NaN and infinity", "a.0"),
        ({"a": {"$b": 1}}, "must not start with '$'", "a.$b"),
        ({"a.b": 1}, "must not contain '.'", "a.b"),
        ({"": 1}, "empty field name", ""),
        ({"a": {1: 1}}, "field names must be strings", "a.1"),
        ({"a": [{"b\x00": 1}]}, "must not contain NUL", "a.0.b\x00"),
        ({"a": T0.replace(tzinfo=None)}, "naive datetime", "a"),
        ({"a": [{1, 2}]}, "unsupported value type set", "a.0"),
    ],
)
def test_bad_values_are_still_rejected(doc: dict[Any, Any], message: str, path: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)) as info:
        normalize_document(doc)
    assert info.value.path == path


def test_a_valid_name_is_remembered_but_invalid_names_still_fail_every_time() -> None:
    for _ in range(3):
        assert normalize_document({"ok": 1}) == {"ok": 1}
        with pytest.raises(QueryError):
            normalize_document({"$bad": 1})


def test_datetimes_become_utc_milliseconds() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    doc = {"at": T0.astimezone(ist), "list": [T0], "nested": {"at": T0}}
    out = normalize_document(doc)
    expected = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    assert out["at"] == expected and out["at"].tzinfo is UTC
    assert out["list"] == [expected] and out["nested"]["at"] == expected
    with pytest.raises(QueryError, match="naive datetime"):
        normalize_document({"at": datetime(2024, 1, 1)})


def containers(value: Any) -> list[Any]:
    found = []
    if isinstance(value, dict | list):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            found.extend(containers(child))
    return found


def test_the_result_shares_no_container_with_the_input() -> None:
    doc = {"tags": ["a", "b"], "sub": {"x": [1, {"y": 2}]}, "t": (1, 2), "n": 1}
    out = normalize_document(doc)
    assert out == {"tags": ["a", "b"], "sub": {"x": [1, {"y": 2}]}, "t": [1, 2], "n": 1}
    mine = {id(c) for c in containers(doc)}
    assert not any(id(c) in mine for c in containers(out))
    doc["tags"].append("c")
    doc["sub"]["x"][1]["y"] = 3
    doc["n"] = 2
    assert out == {"tags": ["a", "b"], "sub": {"x": [1, {"y": 2}]}, "t": [1, 2], "n": 1}


async def test_insert_neither_aliases_nor_mutates_the_callers_documents() -> None:
    db = await asyncdb.connect("memory://")
    try:
        items = db.collection("items")
        docs = [{"title": "a", "tags": ["x"]}, {"id": "k2", "sub": {"n": 1}}]
        keys = await items.insert_many(docs)
        # no generated id was written into the caller's dict, nothing else changed
        assert docs == [{"title": "a", "tags": ["x"]}, {"id": "k2", "sub": {"n": 1}}]
        docs[0]["tags"].append("y")
        docs[1]["sub"]["n"] = 2
        docs[1]["extra"] = True
        assert await items.find_one({"id": keys[0]}) == {"id": keys[0], "title": "a", "tags": ["x"]}
        assert await items.find_one({"id": "k2"}) == {"id": "k2", "sub": {"n": 1}}
        one = {"id": "k3", "tags": ("p",)}
        assert await items.insert_one(one) == "k3"
        assert one == {"id": "k3", "tags": ("p",)}
        assert await items.find_one({"id": "k3"}) == {"id": "k3", "tags": ["p"]}
    finally:
        await db.close()


async def test_insert_many_takes_any_iterable_and_returns_key_copies() -> None:
    db = await asyncdb.connect("memory://")
    try:
        pairs = db.collection("pairs", key=["a", "b"])
        keys = await pairs.insert_many({"a": "x", "b": i} for i in range(3))
        assert keys == [("x", 0), ("x", 1), ("x", 2)]
        assert await pairs.insert_many(iter([])) == []
        with pytest.raises(QueryError, match="must be a mapping"):
            await pairs.insert_many([{"a": "y", "b": 1}, ["not", "a", "doc"]])
        assert await pairs.count_documents({}, allow_scan=True) == 3  # nothing half-written
    finally:
        await db.close()


def test_check_key_accepts_only_key_values() -> None:
    spec = CollectionSpec("c")
    assert check_key({"id": "a"}, spec) == ("a",)
    assert check_key({"id": 7}, spec) == (7,)
    assert check_key({"id": T0}, spec) == (T0,)
    for bad in ["", True, 1.0, None, b"a", ["a"]]:
        with pytest.raises(QueryError, match="key values"):
            check_key({"id": bad}, spec)
    with pytest.raises(QueryError, match="lacks its key"):
        check_key({"x": 1}, spec)
    both = CollectionSpec("c", key=("a", "b"))
    assert check_key({"b": 2, "a": "x"}, both) == ("x", 2)
    with pytest.raises(QueryError, match="lacks its key") as info:
        check_key({"a": "x"}, both)
    assert info.value.path == "b"


async def test_a_batch_duplicate_names_the_first_repeated_key() -> None:
    db = await asyncdb.connect("memory://")
    try:
        items = db.collection("items")
        store = items._store
        assert isinstance(store, StoreCollection)
        batch = [{"id": k} for k in ["a", "b", "c", "b", "a"]]
        with pytest.raises(DuplicateKey) as info:
            await store.insert(batch, None)
        assert info.value.key == ("a",)
        assert await items.count_documents({}, allow_scan=True) == 0
    finally:
        await db.close()


def test_gc_paused_restores_the_collector_state() -> None:
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), gc_paused():
        assert not gc.isenabled()
        1 / 0  # noqa: B018
    assert gc.isenabled()
    with gc_paused(False):
        assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


async def test_a_large_batch_leaves_the_collector_on_even_when_it_fails() -> None:
    db = await asyncdb.connect("memory://")
    try:
        items = db.collection("items")
        batch = [{"id": f"k{i}", "n": i} for i in range(GC_PAUSE_MIN + 10)]
        assert len(await items.insert_many(batch)) == len(batch)
        assert gc.isenabled()
        bad = [{"id": f"j{i}"} for i in range(GC_PAUSE_MIN)] + [{"id": "x", "n": 2**64}]
        with pytest.raises(QueryError, match="64-bit"):
            await items.insert_many(bad)
        assert gc.isenabled()
    finally:
        await db.close()


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))]),
    ),
    st.booleans(),
)
def test_iso_date_is_fixed_width_utc_text_with_milliseconds(value: datetime, whole: bool) -> None:
    from asyncdb._tagged_json import iso_date

    if whole:  # the millisecond values the parser keeps, and whole seconds
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    utc = value.astimezone(UTC)
    assert iso_date(value) == utc.isoformat(timespec="milliseconds")[:-6] + "Z"
    assert len(iso_date(value)) == 24


# --- canonical: a document the validation would return unchanged --------------------------

canonical_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 0, 1, 1.0, True, False, 2**53 + 1, 1e16]),
    st.text(max_size=4),
    st.sampled_from(["é", "日本", "x\x00y", "\ud800", "a\udfffb"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.sampled_from([Decimal("1.5"), Decimal("-0"), Decimal("NaN"), Decimal("Infinity")]),
    st.binary(max_size=3),
    st.sampled_from([bytearray(b"ab"), memoryview(b"cd")]),
    st.datetimes(timezones=st.just(UTC)),  # microseconds: canonical only at whole milliseconds
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    st.sampled_from(
        [
            T0.replace(tzinfo=None),
            T0.replace(microsecond=123000).astimezone(timezone(timedelta(hours=5))),
            T0.replace(microsecond=123000, tzinfo=timezone(timedelta(0))),  # UTC, another tzinfo
        ]
    ),
    st.sampled_from([Level.HIGH, Tone.LOUD, Name("sub"), {1, 2}, (1, 2)]),
    st.integers(min_value=INT64_MAX + 1, max_value=INT64_MAX + 3),
)
canonical_names = st.one_of(
    st.sampled_from(["a", "b", "id", "n", "é"]),
    st.text(max_size=3),
    st.sampled_from(["$x", "a.b", "", "n\x00", "\ud800", Name("sub"), Tone.LOUD, 1]),
)
canonical_values = st.recursive(
    canonical_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(canonical_names, children, max_size=4),
        st.dictionaries(canonical_names, children, max_size=2).map(OrderedDict),
        st.lists(children, max_size=2).map(tuple),
    ),
    max_leaves=12,
)


def unchanged_by_validation(doc: Any) -> bool:
    """The oracle: the validation returns a value equal to ``doc``, every type the same."""
    return outcome(normalize_document, doc) == ("ok", typed(doc))


@settings(max_examples=600)
@given(st.dictionaries(canonical_names, canonical_values, max_size=5))
def test_canonical_exactly_when_validation_changes_and_refuses_nothing(doc: Any) -> None:
    from asyncdb.query.values import canonical

    # canonical implies: the validated copy equals the document, types included (bool vs
    # int, float vs int, -0.0, Decimal, bytes, UTC datetimes, nesting); anything the
    # validation would change (a tuple, bytearray, an IntEnum, a str subclass, a non-UTC or
    # sub-millisecond datetime) or refuse ($ names, NaN, surrogates, big ints) is not
    assert canonical(doc) == unchanged_by_validation(doc)


def test_canonical_holds_for_stored_forms_and_not_for_near_misses() -> None:
    from asyncdb.query.values import canonical

    good = {
        "id": "a1",
        "n": 1,
        "f": 1.0,
        "b": True,
        "d": Decimal("1.10"),
        "at": T0.replace(microsecond=123000),
        "raw": b"\x00",
        "nested": {"l": [1, "x", None, {"k": [2.5]}]},
        "text": "日本",
    }
    assert canonical(good)
    for field, bad in [
        ("t", (1, 2)),
        ("at", T0),  # microseconds below the millisecond
        ("at", T0.replace(microsecond=0, tzinfo=None)),
        ("raw", bytearray(b"x")),
        ("n", Level.HIGH),
        ("s", Name("x")),
        ("d", Decimal("NaN")),
        ("f", math.inf),
        ("i", INT64_MAX + 1),
        ("s", "\ud800"),
        ("m", OrderedDict(a=1)),
        ("set", {1}),
    ]:
        assert not canonical({**good, field: bad}), (field, bad)
        assert not canonical({**good, "nested": {"deep": [bad]}}), (field, bad)
    for name in ["$x", "a.b", "", "n\x00"]:
        assert not canonical({**good, name: 1})
    assert not canonical(OrderedDict(good))  # not a dict: the general path
    assert not canonical(nested("dict", 95))  # deep nesting: the validation decides
