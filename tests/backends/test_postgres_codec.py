"""The PostgreSQL codec's fast paths (no server): document text, tag flags and key bytes are
exactly those of the plain definitions, kept here as the oracle."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdb.backends.postgres import codec
from asyncdb.errors import QueryError
from asyncdb.query.sort import encode_value


def reference_encode_doc(doc: dict[str, Any]) -> tuple[str, int]:
    """encode_doc as it was: bytes searched for the rare patterns and the tag."""
    options = {"default": codec._default, "option": codec._DUMP_OPTIONS}
    raw = orjson.dumps(doc, **options)
    if b"e+" in raw or b"\\u0000" in raw:
        raw = orjson.dumps(codec._fix_floats(doc), **options)
    return raw.decode(), codec.TAGGED if b'{"$' in raw else 0


def outcome(fn: Any, value: Any) -> Any:
    try:
        return ("ok", fn(value))
    except QueryError as exc:
        return ("error", str(exc))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e16, -(2.0**60), 1.5e300, 1e-7, -0.0]),
    st.text(max_size=5),
    st.sampled_from(["e+", "a\x00b", '{"$date": 1}', "\\", "+", "$", "\\u0000"]),
    st.sampled_from([datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), b"\x00\x01", Decimal("1.5")]),
)
names = st.text(min_size=1, max_size=3).filter(lambda n: n[0] != "$" and "." not in n)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=500)
@given(st.dictionaries(names, values, max_size=5))
def test_encode_doc_matches_the_reference(doc: dict[str, Any]) -> None:
    assert outcome(codec.encode_doc, doc) == outcome(reference_encode_doc, doc)
    if outcome(codec.encode_doc, doc)[0] == "ok":
        assert codec.dumps(doc) == reference_encode_doc(doc)[0].encode()


def test_encode_doc_rare_cases() -> None:
    assert codec.encode_doc({"f": 2.0**60}) == ('{"f":1152921504606846976.0}', 0)
    assert codec.encode_doc({"s": "e+"}) == ('{"s":"e+"}', 0)
    assert codec.encode_doc({"s": '{"$x'}) == ('{"s":"{\\"$x"}', 0)
    assert codec.encode_doc({"d": Decimal("2")})[1] == codec.TAGGED
    with pytest.raises(QueryError, match="U\\+0000"):
        codec.encode_doc({"s": "a\x00"})


@given(st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1)))
def test_encode_key_is_encode_value(key: Any) -> None:
    assert codec.encode_key(key) == encode_value(key)


def test_encode_key_of_strings_with_nul_and_surrogates() -> None:
    for key in ["a\x00b", "\ud800", "é", "x" * 300]:
        assert codec.encode_key(key) == encode_value(key)
