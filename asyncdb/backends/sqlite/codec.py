"""Documents as JSON text for SQLite, with tagged objects for the types JSON lacks.

A datetime is stored as ``{"$date": "YYYY-MM-DDTHH:MM:SS.mmmZ"}``, bytes as
``{"$binary": "<base64>"}`` and a Decimal as ``{"$decimal": "<str>"}``. Stored field names never
start with ``$`` (the query language rejects them), so a tag cannot be confused with user data.

Dates are fixed-width ISO strings rather than epoch millis so that the JSON text of a date,
``json_extract(doc, '$.ts')``, sorts chronologically: a range on dates then uses the plain
expression index of the field (and the TTL index) instead of a scan.

``encode_doc`` also returns the row's ``tagged`` flags: ``TAGGED`` when the text holds any tag (the
decoder only walks those documents; the others are a plain ``orjson.loads``) and ``HAS_DECIMAL``
when it holds a Decimal, the one type SQL cannot compare with numbers exactly.

>>> text, flags = encode_doc({"n": 1})
>>> text, flags, decode_doc(text, flags)
('{"n":1}', 0, {'n': 1})
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from asyncdb._tagged_json import DUMP_OPTIONS, dumps, iso_date, loads, tag, untag
from asyncdb.query.sort import decode_key_values, encode_value

TAGGED = 1
HAS_DECIMAL = 2
ESCAPED = 4  # strings hold NUL or \x01, stored escaped (escape_text)

DATE_PREFIX = '{"$date":"'
# Every date tag's text is >= DATE_PREFIX and < DATE_END ('#' follows '"').
DATE_END = '{"$date":#'


def escape_text(value: str) -> str:
    r"""``value`` without NUL, order kept: SQLite's JSON functions cut a string at its first
    NUL, so stored strings (and the filter strings compared with them) write NUL as
    ``\x01\x01`` and ``\x01`` as ``\x01\x02``. Code-point order and equality are unchanged.

    >>> escape_text("a\x00b") < escape_text("a\x01") < escape_text("a\x02")
    True
    >>> unescape_text(escape_text("a\x00\x01\x00b"))
    'a\x00\x01\x00b'
    """
    if "\x00" not in value and "\x01" not in value:
        return value
    return value.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def unescape_text(value: str) -> str:
    if "\x01" not in value:
        return value
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "\x01" else "\x01", value)


_ESCAPED = re.compile("\x01([\x01\x02])")


def _map_strings(value: Any, convert: Callable[[str], str]) -> Any:
    """``value`` with ``convert`` applied to every string in it (names are left as they are)."""
    t = type(value)
    if t is str:
        return convert(value)
    if t is dict:
        return {k: _map_strings(v, convert) for k, v in value.items()}
    if t is list:
        return [_map_strings(v, convert) for v in value]
    return value


def escape_values(value: Any) -> Any:
    """``value`` with every string in it escaped (escape_text)."""
    return _map_strings(value, escape_text)


def _unescape_values(value: Any) -> Any:
    return _map_strings(value, unescape_text)


def encode_doc(doc: dict[str, Any]) -> tuple[str, int]:
    """The stored text of a document and its ``tagged`` flags."""
    # Searching a str for one character is several times faster than searching bytes for a
    # pattern: the text is decoded first, each rare pattern looked for after its character.
    text = orjson.dumps(doc, default=tag, option=DUMP_OPTIONS).decode()
    flags = 0
    if "\\" in text and ("\\u0000" in text or "\\u0001" in text):  # NUL-safe (escape_text)
        text = orjson.dumps(escape_values(doc), default=tag, option=DUMP_OPTIONS).decode()
        flags = ESCAPED
    # Quotes inside JSON strings are escaped, so '{"$' only appears where a tag starts.
    if "$" in text and '{"$' in text:
        flags |= TAGGED
        if '{"$decimal":' in text:
            flags |= HAS_DECIMAL
    return text, flags


def tag_text(value: Any) -> str:
    """The JSON text SQLite's ``json_extract`` renders for a date or bytes value."""
    if type(value) is datetime:
        return DATE_PREFIX + iso_date(value) + '"}'
    return orjson.dumps(tag(value)).decode()


def decode_doc(text: str | bytes, flags: int) -> Any:
    """A stored document back as Python values."""
    value = orjson.loads(text)
    if flags & ESCAPED:
        value = _unescape_values(value)
    return untag(value) if flags else value


def decode_any(text: str | bytes) -> Any:
    """Decode stored JSON text without knowing its flags (SQL functions get only the text)."""
    value = loads(text)
    if ("\\u0001" in text) if isinstance(text, str) else (b"\\u0001" in text):
        value = _unescape_values(value)
    return value


# --- key columns ---------------------------------------------------------------------------
# Keys are str, int or datetime. The key columns have no declared type, so SQLite keeps
# 1 and '1' apart; a datetime key is a BLOB that sorts chronologically and after every text,
# which is BSON's order of numbers < strings < dates.


def encode_key(value: Any) -> Any:
    """The SQL value of a key field (a datetime becomes its memcomparable BSON encoding)."""
    if type(value) is datetime:
        return encode_value(value)
    return value


def decode_key_sort(data: bytes, n: int) -> list[Any]:
    """The key column values of a sort key over ``n`` key fields (``asyncdb.query.sort``
    encodings of str, int and datetime; a descending field is stored inverted)."""
    values = decode_key_values(data, n)
    if values is None:
        raise ValueError("not a key position")
    return [encode_key(v) for v in values]


__all__ = [
    "DATE_END",
    "DATE_PREFIX",
    "HAS_DECIMAL",
    "TAGGED",
    "decode_any",
    "decode_doc",
    "decode_key_sort",
    "dumps",
    "encode_doc",
    "encode_key",
    "iso_date",
    "loads",
    "tag_text",
]
