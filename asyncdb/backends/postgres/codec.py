"""Documents as ``jsonb`` for PostgreSQL, with tagged objects for what JSON cannot hold.

A datetime is ``{"$date": "YYYY-MM-DDTHH:MM:SS.mmmZ"}`` (fixed width: its text sorts like the
instant), bytes ``{"$binary": "<base64>"}`` and a Decimal ``{"$decimal": "<str>", "$n": <number>}``
(``$n`` is its value as a jsonb number, so numeric conditions compare it exactly). Stored field
names never start with ``$``, so a tag cannot be confused with user data.

The text is stored as it is (``body``: jsonb would reorder fields and lose ``-0.0``) and as
``jsonb`` (``doc``, generated from it) for queries. Floats of magnitude 1e16 and up are written as
their exact integer value with ``.0``: jsonb reads numbers as exact ``numeric``, and the shortest
repr of such a float (``1.152921504606847e+18`` for 2**60) would equal an int it does not equal.

jsonb cannot hold U+0000 in a string: such a document is refused (a documented deviation).

>>> text, flags = encode_doc({"n": 1.0, "big": 1e300})
>>> flags, decode_doc(text, flags) == {"n": 1.0, "big": 1e300}
(0, True)
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from asyncdb.errors import QueryError
from asyncdb.query.sort import encode_value

TAGGED = 1

_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def iso_date(value: datetime) -> str:
    """Fixed-width UTC ISO text with milliseconds (sorts like the instant it names)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def decimal_text(value: Decimal) -> str:
    """A Decimal as JSON number text (jsonb reads it as an exact ``numeric``)."""
    return str(value).replace("E", "e")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": iso_date(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value), "$n": orjson.Fragment(decimal_text(value))}
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def float_text(value: float) -> str:
    """JSON text of a float that jsonb keeps a float, exact against ints (see module doc)."""
    if abs(value) >= 1e16:
        return f"{int(value)}.0"
    return orjson.dumps(value).decode()


def _fix_floats(value: Any) -> Any:
    t = type(value)
    if t is float:
        if abs(value) >= 1e16:
            return orjson.Fragment(float_text(value))
        return value
    if t is dict:
        return {k: _fix_floats(v) for k, v in value.items()}
    if t is list:
        return [_fix_floats(v) for v in value]
    if t is str and "\x00" in value:
        raise QueryError("PostgreSQL jsonb cannot store U+0000 in a string")
    return value


def _dumps_text(value: Any) -> str:
    # Searching a str is several times faster than searching bytes (memchr for one character),
    # so the text is decoded first and each rare pattern is looked for only after its character.
    text: str = orjson.dumps(value, default=_default, option=_DUMP_OPTIONS).decode()
    # Rare cases take the slow walk: floats written with an exponent, NUL in a string.
    if ("+" in text and "e+" in text) or ("\\" in text and "\\u0000" in text):
        text = orjson.dumps(_fix_floats(value), default=_default, option=_DUMP_OPTIONS).decode()
    return text


def dumps(value: Any) -> bytes:
    """jsonb text of a portable value (tags included)."""
    return _dumps_text(value).encode()


def encode_doc(doc: dict[str, Any]) -> tuple[str, int]:
    """The stored jsonb text of a document and its ``tagged`` flags."""
    text = _dumps_text(doc)
    # Quotes inside JSON strings are escaped, so '{"$' only appears where a tag starts.
    return text, TAGGED if "$" in text and '{"$' in text else 0


def _untag(value: Any) -> Any:
    t = type(value)
    if t is dict:
        tag = value.get("$date")
        if tag is not None and len(value) == 1:
            return datetime.fromisoformat(tag)
        tag = value.get("$binary")
        if tag is not None and len(value) == 1:
            return base64.b64decode(tag)
        tag = value.get("$decimal")
        if tag is not None and len(value) == 2:
            return Decimal(tag)
        return {k: _untag(v) for k, v in value.items()}
    if t is list:
        return [_untag(v) for v in value]
    return value


def decode_doc(text: str | bytes, flags: int) -> Any:
    """A stored document back as Python values."""
    value = orjson.loads(text)
    return _untag(value) if flags else value


def encode_key(value: Any) -> bytes:
    """A key field as stored: its memcomparable BSON encoding (``bytea`` sorts it in BSON
    order, and keeps 1 and "1" apart)."""
    if type(value) is str:  # the usual key, inlined: encode_value's form of a string
        text = value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff")
        return b"\x1e" + text + b"\x00\x00"
    return encode_value(value)


__all__ = [
    "TAGGED",
    "decimal_text",
    "decode_doc",
    "dumps",
    "encode_doc",
    "encode_key",
    "float_text",
    "iso_date",
]
