"""BSON sort order as byte strings that compare with ``memcmp``.

``sort_key(doc, sort)`` encodes a document's sort values so that comparing two keys as bytes
gives MongoDB's order: type rank first (null/missing < numbers < strings < objects < arrays <
bytes < bool < dates), numbers by value across int/float/Decimal, strings by code point; an array
sorts by its smallest element ascending and its largest descending; an empty array before null.
Each encoded value is prefix-free, so a descending field is the byte-wise complement and keys of
several fields concatenate. The same bytes order the memory backend, SQLite's ``ORDER BY`` (as a
registered function) and the keyset cursors of ``find_page``.

>>> from asyncdb.query.parse import parse_sort
>>> s = parse_sort([("n", 1)])
>>> sort_key({"n": 2}, s) < sort_key({"n": 10.5}, s) < sort_key({"n": "1"}, s)
True
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from asyncdb.query.ast import Path, Sort
from asyncdb.query.values import MISSING, compare

_EMPTY_ARRAY = b"\x05"
_NULL = b"\x0a"
_NUMBER = 0x14
_STRING = 0x1E
_OBJECT = 0x28
_ARRAY = 0x32
_BYTES = 0x3C
_BOOL = 0x50
_DATE = 0x5A
_END = b"\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INVERT = bytes(255 - i for i in range(256))


def _float_bytes(f: float) -> bytes:
    if f == 0.0:
        f = 0.0  # -0.0 and 0.0 are equal
    (bits,) = struct.unpack(">Q", struct.pack(">d", f))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return struct.pack(">Q", bits)


def _number(value: int | float | Decimal) -> bytes:
    try:
        approx = float(value)
    except OverflowError:
        approx = float("inf") if value > 0 else float("-inf")
    head = bytes([_NUMBER]) + _float_bytes(approx)
    if isinstance(value, float) or approx in (float("inf"), float("-inf")):
        return head + _float_bytes(0.0)
    # An int or Decimal that float() rounded: the exact remainder breaks the tie.
    rest = Fraction(value) - Fraction(approx)
    return head + _float_bytes(float(rest))


def _string(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def encode_value(value: Any) -> bytes:
    """Memcomparable encoding of one value in BSON order."""
    t = type(value)
    if value is None or value is MISSING:
        return _NULL
    if t is bool:
        return bytes([_BOOL, 1 if value else 0])
    if t is int or t is float or t is Decimal:
        return _number(value)
    if t is str:
        return bytes([_STRING]) + _string(value)
    if t is dict:
        parts = [bytes([_OBJECT])]
        for k, v in value.items():
            enc = encode_value(v)
            parts.append(enc[:1] + _string(k) + enc)
        parts.append(_END)
        return b"".join(parts)
    if t is list:
        return bytes([_ARRAY]) + b"".join(encode_value(v) for v in value) + _END
    if t is bytes:
        raw: bytes = value
        return bytes([_BYTES]) + struct.pack(">Q", len(raw)) + raw
    if t is datetime:
        millis = (value - _EPOCH) // _MS
        return bytes([_DATE]) + struct.pack(">Q", (millis + (1 << 63)) & 0xFFFFFFFFFFFFFFFF)
    raise TypeError(f"cannot sort on {t.__name__}")


from datetime import timedelta  # noqa: E402

_MS = timedelta(milliseconds=1)


def _leaf_values(doc: Any, path: Path, out: list[Any], i: int = 0) -> None:
    """The values a sort path reaches; arrays (at any level) contribute their elements."""
    if i == len(path):
        if type(doc) is list:
            if not doc:
                out.append(_EMPTY)
            else:
                out.extend(doc)
        else:
            out.append(doc)
        return
    part = path[i]
    if type(doc) is dict:
        _leaf_values(doc.get(part, MISSING), path, out, i + 1)
    elif type(doc) is list:
        if part.isdigit():
            # A position picks one element, and an array found there is one value (not
            # unwrapped), per mongodb/mongo jstest sort_dotted_paths_positional.js.
            index = int(part)
            if index >= len(doc):
                out.append(MISSING)
            elif i + 1 == len(path):
                out.append(doc[index])
            else:
                _leaf_values(doc[index], path, out, i + 1)
            return
        for element in doc:
            if type(element) is dict:
                _leaf_values(element.get(part, MISSING), path, out, i + 1)
        if not doc:
            out.append(MISSING)
    else:
        out.append(MISSING)


class _EmptyArray:
    __slots__ = ()


_EMPTY: Any = _EmptyArray()


def sort_value(doc: Any, path: Path, direction: int) -> Any:
    """The single value that represents ``doc`` for sorting on ``path`` in ``direction``."""
    values: list[Any] = []
    _leaf_values(doc, path, values)
    if not values:
        return MISSING
    if len(values) == 1:
        return values[0]
    empties = [v for v in values if v is _EMPTY]
    others = [v for v in values if v is not _EMPTY]
    if direction == 1 and empties:
        return _EMPTY
    if not others:
        return _EMPTY
    best = others[0]
    for v in others[1:]:
        c = compare(v, best)
        if (direction == 1 and c < 0) or (direction == -1 and c > 0):
            best = v
    return best


def field_key(doc: Any, path: Path, direction: int) -> bytes:
    value = sort_value(doc, path, direction)
    enc = _EMPTY_ARRAY if value is _EMPTY else encode_value(value)
    return enc if direction == 1 else enc.translate(_INVERT)


def sort_key(doc: Any, sort: Sort) -> bytes:
    """The memcomparable key of ``doc`` under ``sort`` (all fields, directions applied)."""
    return b"".join(field_key(doc, k.path, k.direction) for k in sort)


def sort_documents(docs: Iterable[dict[str, Any]], sort: Sort) -> list[dict[str, Any]]:
    """A stable sort of ``docs`` in BSON order."""
    if not sort:
        return list(docs)
    return sorted(docs, key=lambda d: sort_key(d, sort))


def _string_end(data: bytes, i: int) -> int:
    while True:
        if data[i] == 0:
            if data[i + 1] == 0:
                return i + 2
            i += 2
        else:
            i += 1


def _value_end(data: bytes, i: int) -> int:
    """Where the sort encoding (``asyncdb.query.sort.encode_value``) starting at ``i`` ends."""
    tag = data[i]
    if tag in (0x05, 0x0A):
        return i + 1
    if tag == 0x14:
        return i + 17
    if tag == 0x1E:
        return _string_end(data, i + 1)
    if tag == 0x28:
        j = i + 1
        while data[j] != 0:
            j = _value_end(data, _string_end(data, j + 1))
        return j + 1
    if tag == 0x32:
        j = i + 1
        while data[j] != 0:
            j = _value_end(data, j)
        return j + 1
    if tag == 0x3C:
        return i + 9 + int.from_bytes(data[i + 1 : i + 9], "big")
    if tag == 0x50:
        return i + 2
    if tag == 0x5A:
        return i + 9
    raise ValueError(f"not a sort key (tag {tag:#x} at {i})")


def split_sort_key(data: bytes, directions: tuple[int, ...]) -> tuple[bytes, ...]:
    """A keyset position (``sort_key`` of several fields) cut into one key per field.

    >>> from asyncdb.query.sort import field_key
    >>> doc = {"n": [3, "x"], "id": "k"}
    >>> parts = (field_key(doc, ("n",), -1), field_key(doc, ("id",), 1))
    >>> split_sort_key(b"".join(parts), (-1, 1)) == parts
    True
    """
    out: list[bytes] = []
    i = 0
    for direction in directions:
        rest = data[i:] if direction == 1 else data[i:].translate(_INVERT)
        end = i + _value_end(rest, 0)
        out.append(data[i:end])
        i = end
    if i != len(data):
        raise ValueError("the keyset position does not match the sort")
    return tuple(out)


def unfloat(raw: bytes) -> float:
    (bits,) = struct.unpack(">Q", raw)
    bits = bits ^ (1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    (value,) = struct.unpack(">d", struct.pack(">Q", bits))
    return float(value)


def decode_key_values(data: bytes, n: int) -> list[Any] | None:
    """The ``n`` key values (str, int, datetime) a sort key over key fields encodes (a
    descending field is stored inverted), or None if it holds anything else: the keyset
    position of a page, for stores that compare key values natively."""
    out: list[Any] = []
    i = 0
    try:
        for _ in range(n):
            flip = 0xFF if data[i] not in (_NUMBER, _STRING, _DATE) else 0
            tag = data[i] ^ flip
            i += 1
            if tag == _NUMBER:
                raw = bytes(b ^ flip for b in data[i : i + 16])
                i += 16
                out.append(int(Fraction(unfloat(raw[:8])) + Fraction(unfloat(raw[8:]))))
            elif tag == _DATE:
                raw = bytes(b ^ flip for b in data[i : i + 8])
                i += 8
                (biased,) = struct.unpack(">Q", raw)
                out.append(_EPOCH + timedelta(milliseconds=biased - (1 << 63)))
            elif tag == _STRING:
                chars = bytearray()
                while True:
                    b = data[i] ^ flip
                    if b == 0:
                        nxt = data[i + 1] ^ flip
                        i += 2
                        if nxt == 0:
                            break
                        chars.append(0)
                    else:
                        chars.append(b)
                        i += 1
                out.append(chars.decode("utf-8", "surrogatepass"))
            else:
                return None
    except (IndexError, struct.error, UnicodeDecodeError, OverflowError, ValueError):
        return None
    return out if i == len(data) else None


def path_values(doc: Any, path: Path) -> list[Any]:
    """The values ``path`` reaches in ``doc`` as ``distinct`` sees them: arrays on the way and
    at the end contribute their elements (one level), missing fields and empty arrays nothing.

    >>> path_values({"a": [{"b": 1}, {"b": [2, [3]]}, {}]}, ("a", "b"))
    [1, 2, [3]]
    """
    values: list[Any] = []
    _leaf_values(doc, path, values)
    return [v for v in values if v is not MISSING and v is not _EMPTY]
