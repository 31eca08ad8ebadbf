"""The shape-cached parsing of bulk_write's common operations (``asyncdb.bulk.key_filter``,
``simple_update``) against the general parser: for random filters and updates, the fast parse
either declines (None) or gives exactly what ``parse_filter``/``parse_update_spec`` give, and
raises exactly the error they raise."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from asyncdb.bulk import key_filter, simple_update
from asyncdb.errors import AsyncDBError
from asyncdb.query.parse import parse_filter
from asyncdb.query.pipeline import parse_update_spec

KEY = ("id",)
VALUES = st.one_of(
    st.integers(-(2**64), 2**64),
    st.floats(),
    st.text(max_size=3),
    st.sampled_from(["é", "\ud800", "x\x00", "", "$x"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "$b"]), st.integers(), max_size=2),
)
FIELDS = st.sampled_from(["id", "n", "a.b", "a.$", "a.$[]", "$x", "", "a..b", "s\x00", 1, "é"])
OPERATORS = st.sampled_from(["$set", "$unset", "$inc", "$push", "$rename", "$bogus", "n"])
LIKELY = st.dictionaries(  # shapes the fast parse takes, with values of every kind
    st.sampled_from(["$set", "$unset", "$inc"]),
    st.dictionaries(st.sampled_from(["n", "é", "a.b", "id"]), VALUES, min_size=1, max_size=2),
    min_size=1,
    max_size=2,
)
UPDATES = st.one_of(
    LIKELY,
    LIKELY,
    st.dictionaries(OPERATORS, st.dictionaries(FIELDS, VALUES, max_size=3), max_size=3),
    st.just({"$set": {"n": 1}, "$inc": {"n": 1}}),  # a conflict
    st.just({"$set": {"a": 1, "a.b": 2}}),
    st.just([{"$set": {"n": 1}}]),
)


def _general(update: Any) -> Any:
    try:
        return parse_update_spec(update, parse_filter({"id": "k"}))
    except AsyncDBError as exc:
        return type(exc), str(exc)


@settings(max_examples=600, deadline=None)
@given(UPDATES)
@example({"$set": {"n": "\ud800"}})  # each value check of the general parser, with its path
@example({"$set": {"é": "caf\u00e9", "n": 2**63}})
@example({"$inc": {"n": float("nan")}})
@example({"$inc": {"n": True}})
@example({"$set": {"n": float("inf")}})
@example({"$inc": {"n": "1"}})
@example({"$set": {"id": "k"}})
def test_simple_update_is_the_general_parse_or_declines(update: Any) -> None:
    want = _general(update)
    try:
        got = simple_update(update, KEY)
    except AsyncDBError as exc:
        assert want == (type(exc), str(exc))
        return
    if got is None:
        return
    parsed, flat = got
    assert parsed == want
    assert flat == all(
        (op.op == "$set" or op.op == "$unset") and len(op.path) == 1 for op in parsed.ops
    )
    assert not any(op.path[0] in KEY for op in parsed.ops)  # the key checks stay general


def test_simple_update_takes_the_common_shapes() -> None:
    for update in ({"$set": {"status": "x"}}, {"$inc": {"n": 1}, "$unset": {"t": ""}}):
        got = simple_update(update, KEY)
        assert got is not None and got[0] == _general(update)
    assert simple_update({"$set": {"status": "x", "t": None}}, KEY) == (
        _general({"$set": {"status": "x", "t": None}}),
        True,
    )


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "n", "$or"]), VALUES, max_size=2))
def test_key_filter_is_the_general_parse_or_declines(flt: dict[str, Any]) -> None:
    got = key_filter(flt, KEY)
    if got is None:
        return
    node, key = got
    assert node == parse_filter(flt)
    assert key == (flt["id"],) and len(flt) == 1
