"""Portable values <-> what Firestore can hold, reversibly; document ids from keys.

Firestore keeps int64, double, string, bytes, bool, null, timestamp, map and array, but an
array cannot hold an array, there is no Decimal, maps do not keep their field order, and some
field names are reserved. What it cannot hold is stored as a tagged map whose one field name
starts with ``$`` (stored user field names never do: the query language rejects them):

* a Decimal is ``{"$dec": "<str>"}``;
* an array inside an array is ``{"$arr": [...]}``;
* a map with two or more fields carries ``"$o": [names in order]``;
* a field name Firestore rejects (empty, or ``__x__``) is stored as ``"$k" + name``.

Hidden top-level fields serve the planner (the decoder drops them):

* ``"$n:f"``: the ints or floats equal to the Decimals at top-level field ``f`` (its value or
  its elements), so numeric equality stays exact: ``f == 1 OR f array-contains 1 OR
  $n:f array-contains 1`` (a Decimal no int or float equals cannot equal a query number);
* ``"$D:f"``: true when ``f`` holds a Decimal (or an array with one), so a numeric range can be
  pushed as ``f > 1 OR f >= [] OR $D:f == true``: a superset, re-checked;
* ``"$a:p"`` and ``"$d:p"``: the BSON sort keys (``asyncdb.query.sort.field_key``) of path ``p``
  ascending and descending, as bytes, for the key fields and every declared index field. Every
  document has them (missing and null have keys too), so Firestore's ``order_by`` on them keeps
  every document and orders exactly as MongoDB, arrays and mixed types included.

>>> stored = encode_doc({"id": "a", "v": [[1]], "d": Decimal("1.5")})
>>> stored["v"], stored["d"], stored["$n:d"]
([{'$arr': [1]}], {'$dec': '1.5'}, [1.5])
>>> decode_doc(stored)
{'id': 'a', 'v': [[1]], 'd': Decimal('1.5')}
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asyncdb.errors import QueryError
from asyncdb.query.ast import Path, path_str
from asyncdb.query.sort import field_key
from asyncdb.query.values import INT64_MAX, INT64_MIN

DECIMAL_TAG = "$dec"
ARRAY_TAG = "$arr"
ORDER_FIELD = "$o"
KEY_ESCAPE = "$k"
DECIMAL_TWINS = "$n:"
DECIMAL_MARK = "$D:"
SORT_ASC = "$a:"
SORT_DESC = "$d:"
_HIDDEN = (DECIMAL_TWINS, DECIMAL_MARK, SORT_ASC, SORT_DESC)

_RESERVED_NAME = re.compile(r"__.*__", re.DOTALL)
MAX_NAME_BYTES = 1500
MAX_ID_BYTES = 1500


def field_name_ok(name: str) -> bool:
    """Whether Firestore stores this field name as it is (no escape needed)."""
    return bool(name) and _RESERVED_NAME.fullmatch(name) is None and not name.startswith("$")


def _encode_name(name: str) -> str:
    if field_name_ok(name):
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise QueryError("Firestore field names are limited to 1500 bytes", path=name)
        return name
    return KEY_ESCAPE + name


def _decode_name(name: str) -> str:
    return name[len(KEY_ESCAPE) :] if name.startswith(KEY_ESCAPE) else name


class _Encoder:
    def __init__(self) -> None:
        self.has_decimal = False

    def value(self, value: Any, in_array: bool = False) -> Any:
        t = type(value)
        if t is dict:
            return self.map(value)
        if t is list:
            items = [self.value(v, True) for v in value]
            return {ARRAY_TAG: items} if in_array else items
        if t is Decimal:
            self.has_decimal = True
            return {DECIMAL_TAG: str(value)}
        return value

    def map(self, value: dict[str, Any]) -> dict[str, Any]:
        out = {_encode_name(k): self.value(v) for k, v in value.items()}
        if len(value) > 1:
            out[ORDER_FIELD] = list(value)
        return out


def decimal_twin(value: Decimal) -> int | float | None:
    """The int or float equal to a Decimal, if one exists (else no int or float equals it)."""
    if not value.is_finite():
        return float(value) if not value.is_nan() else None
    if value == value.to_integral_value():
        as_int = int(value)
        if INT64_MIN <= as_int <= INT64_MAX:
            return as_int
    as_float = float(value)
    if math.isfinite(as_float) and Decimal(as_float) == value:
        return as_float
    return None


def sort_field(path: Path, direction: int) -> str:
    """The hidden field holding a path's sort key in one direction."""
    return (SORT_ASC if direction == 1 else SORT_DESC) + path_str(path)


def twin_field(name: str) -> str:
    """The hidden field holding the numeric twins of the Decimals at a top-level field."""
    return DECIMAL_TWINS + name


def decimal_mark(name: str) -> str:
    """The hidden field set (true) when a top-level field holds a Decimal or an array of some."""
    return DECIMAL_MARK + name


def encode_doc(doc: dict[str, Any], sort_paths: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The stored form of a document (a map Firestore accepts), with its hidden fields."""
    encoder = _Encoder()
    out = encoder.map(doc)
    if encoder.has_decimal:
        for name, value in doc.items():
            items = value if type(value) is list else [value]
            twins = [decimal_twin(v) for v in items if type(v) is Decimal]
            if twins:
                out[decimal_mark(name)] = True
            found = [t for t in twins if t is not None]
            if found:
                out[twin_field(name)] = found
    for path in sort_paths:
        out[sort_field(path, 1)] = field_key(doc, path, 1)
        out[sort_field(path, -1)] = field_key(doc, path, -1)
    return out


def encode_value(value: Any) -> Any:
    """The stored form of one value (as a field of a document)."""
    return _Encoder().value(value)


def decode_value(value: Any) -> Any:
    """A stored value back as a portable value."""
    t = type(value)
    if t is dict:
        if len(value) == 1:
            if DECIMAL_TAG in value:
                return Decimal(value[DECIMAL_TAG])
            if ARRAY_TAG in value:
                return [decode_value(v) for v in value[ARRAY_TAG]]
        return _decode_map(value)
    if t is list:
        return [decode_value(v) for v in value]
    if isinstance(value, datetime):
        # The driver's DatetimeWithNanoseconds: a plain UTC datetime (milliseconds stored).
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=UTC,
        )
    return value


def _decode_map(value: dict[str, Any]) -> dict[str, Any]:
    order = value.get(ORDER_FIELD)
    fields = {_decode_name(k): decode_value(v) for k, v in value.items() if k != ORDER_FIELD}
    if order is None:
        return fields
    return {name: fields[name] for name in order}


def decode_doc(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored document back as a portable document."""
    for name in [k for k in stored if k.startswith(_HIDDEN)]:
        del stored[name]
    return _decode_map(stored)


# --- document ids ---------------------------------------------------------------------------
# A key part is typed (s: string, i: integer, d: datetime) so that "1" and 1 stay apart; '%',
# '/' and '|' (the part separator) are escaped, which also keeps ids off '.', '..' and '__x__'
# (every id starts with a type letter). An id beyond Firestore's 1500 bytes is replaced by a
# hash of itself: ids are only looked up, never decoded (the key fields live in the document).

_ID_ESCAPES = str.maketrans({"%": "%25", "/": "%2F", "|": "%7C"})


def _id_part(value: Any) -> str:
    if type(value) is str:
        return "s" + value.translate(_ID_ESCAPES)
    if type(value) is int:
        return "i" + str(value)
    if type(value) is datetime:
        return "d" + value.astimezone(UTC).isoformat(timespec="microseconds")
    raise QueryError(f"a key value cannot be of type {type(value).__name__}")


def doc_id(key: tuple[Any, ...]) -> str:
    """The Firestore document id of a key (one or more parts).

    >>> doc_id(("a/b",)), doc_id((1,)), doc_id(("x", 2))
    ('sa%2Fb', 'i1', 'sx|i2')
    """
    text = "|".join(_id_part(v) for v in key)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_ID_BYTES or _has_surrogate(text):
        return "h" + hashlib.sha256(raw).hexdigest()
    return text


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


__all__ = [
    "ARRAY_TAG",
    "DECIMAL_MARK",
    "DECIMAL_TAG",
    "DECIMAL_TWINS",
    "KEY_ESCAPE",
    "ORDER_FIELD",
    "SORT_ASC",
    "SORT_DESC",
    "decimal_mark",
    "decimal_twin",
    "decode_doc",
    "decode_value",
    "doc_id",
    "encode_doc",
    "encode_value",
    "field_name_ok",
    "sort_field",
    "twin_field",
]
