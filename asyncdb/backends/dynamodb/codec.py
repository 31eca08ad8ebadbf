"""Documents as DynamoDB items: an exact body plus native shadow attributes for pushdown.

DynamoDB cannot keep what the portable types need: it has one number type (``1.0`` comes back
as ``1``, ``-0.0`` as ``0``), numbers only up to 38 digits within 1E-130..1E+126 (a float such as
``1.7976931348623157e308`` or ``5e-324`` does not fit), and maps without field order. So the
document itself is stored exactly, as tagged JSON text in the attribute ``._d`` (datetimes,
bytes and Decimals as ``{"$date": ...}``, ``{"$binary": ...}``, ``{"$decimal": ...}``; stored
field names never start with ``$``). Reads decode only that attribute.

Every top-level field also gets a native shadow attribute of the same name, which is what
FilterExpressions test (names never contain ``.``, so they cannot collide with ``._d``):

* None -> NULL, bool -> BOOL, a number exactly representable in DynamoDB -> N, a string of at
  most ``NATIVE_STRING_MAX`` bytes -> S, a datetime -> S ``"\\x00t" + ISO-8601 UTC`` (fixed
  width, so it sorts chronologically, and tagged so that no filter on a string value can be
  exact for it by accident);
* anything else (bytes, lists, maps, long strings, numbers DynamoDB cannot hold) -> the marker
  S ``OPAQUE``. Every pushed predicate on a field also accepts ``OPAQUE``, so the pushed filter
  stays a superset, and the residual decides.

Key fields and GSI keys use :func:`sortable`: a string with a type tag (``n`` numbers < ``s``
strings < ``t`` dates, BSON's order) and an order-preserving body, so that one DynamoDB ``S``
key attribute holds keys of any of the three key types and ranges within a type are exact.

>>> sortable(1) == sortable(1.0) == sortable(Decimal("1.00"))
True
>>> sortable(-2) < sortable(-1.5) < sortable(0) < sortable(0.25) < sortable(3)
True
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import orjson

from asyncdb._tagged_json import dumps, iso_date, untag

# The body: the exact document as tagged JSON text.
BODY = "._d"
# The version of an item, incremented on every write (optimistic concurrency).
VERSION = "._v"
# DynamoDB TTL: epoch seconds (N) of the TTL field's earliest date.
TTL_SHADOW = "._ttl"

OPAQUE = "\x00?"
DATE_TAG = "\x00t"
NATIVE_STRING_MAX = 512
# GSI range keys may hold at most 1024 bytes; the sortable form of a longer string overflows.
SORTABLE_STRING_MAX = 900
OVERFLOW = "x"

# normalize() rounds to the context's precision (28 by default): a float's exact value has up
# to 767 digits, and a rounded shadow or key would compare wrongly at the edges.
_EXACT = Context(prec=1100, Emax=999_999, Emin=-999_999)


def encode_body(doc: dict[str, Any]) -> str:
    """The exact text of a document (field order, int/float/Decimal, -0.0 all kept)."""
    return dumps(doc)


def decode_body(text: str) -> dict[str, Any]:
    """A stored body back as the document."""
    doc: dict[str, Any] = orjson.loads(text)
    return untag(doc) if '{"$' in text else doc


# --- native shadow attributes -----------------------------------------------------------------


def dynamo_number(value: int | float | Decimal) -> str | None:
    """The N text of a number DynamoDB holds exactly (38 digits, 1E-130..1E+126), else None."""
    if type(value) is int:
        return str(value) if -(10**38) < value < 10**38 else None
    try:
        exact = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    if not exact.is_finite():
        return None
    if exact.is_zero():
        return "0"
    exact = exact.normalize(_EXACT)
    _sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    magnitude = len(digits) + exponent  # value = 0.d1d2... x 10**magnitude
    if len(digits) > 38 or magnitude > 126 or magnitude < -129:
        return None
    return format(exact, "f") if -30 < exponent < 30 else str(exact)


def native(value: Any) -> dict[str, Any]:
    """The native shadow attribute value of a top-level field."""
    t = type(value)
    if t is str:
        return _opaque_or_short(value)
    if value is None:
        return {"NULL": True}
    if t is bool:
        return {"BOOL": value}
    if t is int or t is float or t is Decimal:
        n = dynamo_number(value)
        return {"N": n} if n is not None else {"S": OPAQUE}
    if t is datetime:
        return {"S": DATE_TAG + iso_date(value)}
    return {"S": OPAQUE}


def _opaque_or_short(value: str) -> dict[str, Any]:
    if len(value) * 4 <= NATIVE_STRING_MAX:  # short enough whatever its encoding
        return {"S": value}
    fits = len(value.encode("utf-8", "surrogatepass")) <= NATIVE_STRING_MAX
    return {"S": value if fits else OPAQUE}


def native_value(value: Any) -> dict[str, Any] | None:
    """The native attribute a filter value compares with, or None if no stored native value
    can equal it (then the predicate is not pushed down)."""
    t = type(value)
    if t is str:
        encoded = _opaque_or_short(value)
        return None if encoded["S"] == OPAQUE else encoded
    if t is bool:
        return {"BOOL": value}
    if t is int or t is float or t is Decimal:
        n = dynamo_number(value)
        return {"N": n} if n is not None else None
    if t is datetime:
        return {"S": DATE_TAG + iso_date(value)}
    return None


# --- sortable strings (keys, GSI keys) ----------------------------------------------------------

_EXP_OFFSET = 50_000


def _number_body(value: int | float | Decimal) -> str | None:
    exact = Decimal(value)
    if not exact.is_finite():
        return None
    if exact.is_zero():
        return "1"
    sign, digits, exponent = exact.normalize(_EXACT).as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > 800:
        return None
    magnitude = len(digits) + exponent
    if not -_EXP_OFFSET < magnitude < _EXP_OFFSET:
        return None
    text = "".join(map(str, digits))
    if not sign:
        return f"2{magnitude + _EXP_OFFSET:05d}{text}"
    # negatives: a larger magnitude sorts first; "~" ends the digits so a longer one sorts first
    flipped = "".join(str(9 - d) for d in digits)
    return f"0{2 * _EXP_OFFSET - 1 - (magnitude + _EXP_OFFSET):05d}{flipped}~"


def sortable(value: Any) -> str | None:
    """A string that sorts as ``value`` does among values of its type (numbers ``n``, strings
    ``s``, dates ``t``), equal for numbers equal by value; None for any other value."""
    t = type(value)
    if t is str:
        if len(value.encode("utf-8", "surrogatepass")) > SORTABLE_STRING_MAX:
            return None
        return "s" + str(value)
    if t is int or t is float or t is Decimal:
        body = _number_body(value)
        return None if body is None else "n" + body
    if t is datetime:
        return "t" + iso_date(value)
    return None


def type_end(tag: str) -> str:
    """The smallest string above every sortable string of this type tag."""
    return chr(ord(tag) + 1)


def decode_key(text: str) -> Any:
    """A key attribute (sortable str/int/datetime) back as its value."""
    tag, body = text[0], text[1:]
    if tag == "s":
        return body
    if tag == "t":
        return datetime.fromisoformat(body)
    if body == "1":
        return 0
    if body[0] == "2":
        magnitude = int(body[1:6]) - _EXP_OFFSET
        digits = body[6:]
        return int(Decimal(f"0.{digits}").scaleb(magnitude))
    magnitude = 2 * _EXP_OFFSET - 1 - int(body[1:6]) - _EXP_OFFSET
    digits = "".join(str(9 - int(c)) for c in body[6:-1])
    return -int(Decimal(f"0.{digits}").scaleb(magnitude))


def ttl_epoch(value: Any) -> int | None:
    """Epoch seconds for DynamoDB TTL: a date, or the earliest date of an array; else None.

    Rounded up: DynamoDB may delete an item once its TTL second has passed, which must never
    be before the document expires (until then, reads filter expired documents themselves).
    """
    if type(value) is datetime:
        return math.ceil(value.timestamp())
    if type(value) is list:
        dates = [math.ceil(v.timestamp()) for v in value if type(v) is datetime]
        return min(dates) if dates else None
    return None


__all__ = [
    "BODY",
    "DATE_TAG",
    "OPAQUE",
    "OVERFLOW",
    "TTL_SHADOW",
    "VERSION",
    "decode_body",
    "decode_key",
    "dynamo_number",
    "encode_body",
    "iso_date",
    "native",
    "native_value",
    "sortable",
    "ttl_epoch",
    "type_end",
]
