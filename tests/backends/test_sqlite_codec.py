"""The SQLite codec's document text (no server): text and flags exactly those of the plain
definition, kept here as the oracle, and every text decodes back to the document."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdb._tagged_json import DUMP_OPTIONS, tag
from asyncdb.backends.sqlite import codec


def reference_encode_doc(doc: dict[str, Any]) -> tuple[str, int]:
    """encode_doc as it was: the bytes searched for the rare patterns and the tag."""
    raw = orjson.dumps(doc, default=tag, option=DUMP_OPTIONS)
    flags = 0
    if b"\\u0000" in raw or b"\\u0001" in raw:
        raw = orjson.dumps(codec.escape_values(doc), default=tag, option=DUMP_OPTIONS)
        flags = codec.ESCAPED
    if b'{"$' in raw:
        flags |= codec.TAGGED
        if b'{"$decimal":' in raw:
            flags |= codec.HAS_DECIMAL
    return raw.decode(), flags


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(
        ["a\x00b", "\x01", "\x01\x02", '{"$date": 1}', '{"$', "\\", "$", "\\u0000", '"\\']
    ),
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
    text, flags = codec.encode_doc(doc)
    assert (text, flags) == reference_encode_doc(doc)
    assert codec.decode_doc(text, flags) == doc


def test_encode_doc_rare_cases() -> None:
    for doc in [{"s": "a\\u0000"}, {"s": '{"$x'}, {"s": "a\x00"}, {"d": Decimal("2")}, {"b": b"x"}]:
        assert codec.encode_doc(doc) == reference_encode_doc(doc)
        assert codec.decode_doc(*codec.encode_doc(doc)) == doc
    assert codec.encode_doc({"s": '{"$x'}) == ('{"s":"{\\"$x"}', 0)
    assert codec.encode_doc({"s": "a\x00"})[1] == codec.ESCAPED
    assert codec.encode_doc({"d": Decimal("2")})[1] == codec.TAGGED | codec.HAS_DECIMAL
    assert codec.encode_doc({"b": b"x"})[1] == codec.TAGGED
