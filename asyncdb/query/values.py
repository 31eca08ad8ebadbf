"""Portable values: validation, normalisation, BSON type ranks and comparison.

Portable types: None, bool, int (64-bit), float (finite), Decimal, str, bytes, timezone-aware
datetime (stored as UTC with millisecond precision), list, dict with string keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeGuard

from asyncdb.errors import QueryError
from asyncdb.query.limits import MAX_DEPTH, check_text

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class _Missing:
    """The value of a path that does not exist in a document."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# BSON comparison order. Missing compares as null.
RANK_NULL = 1
RANK_NUMBER = 2
RANK_STRING = 3
RANK_OBJECT = 4
RANK_ARRAY = 5
RANK_BYTES = 6
RANK_BOOL = 8
RANK_DATE = 9

_RANKS: dict[type, int] = {
    type(None): RANK_NULL,
    int: RANK_NUMBER,
    float: RANK_NUMBER,
    Decimal: RANK_NUMBER,
    str: RANK_STRING,
    dict: RANK_OBJECT,
    list: RANK_ARRAY,
    bytes: RANK_BYTES,
    bool: RANK_BOOL,
    datetime: RANK_DATE,
    _Missing: RANK_NULL,
}


def rank(value: Any) -> int:
    """The BSON type rank of a portable value."""
    r = _RANKS.get(type(value))
    if r is not None:
        return r
    if isinstance(value, bool):
        return RANK_BOOL
    if isinstance(value, int | float | Decimal):
        return RANK_NUMBER
    if isinstance(value, str):
        return RANK_STRING
    if isinstance(value, Mapping):
        return RANK_OBJECT
    if isinstance(value, list | tuple):
        return RANK_ARRAY
    if isinstance(value, bytes | bytearray):
        return RANK_BYTES
    if isinstance(value, datetime):
        return RANK_DATE
    raise QueryError(f"unsupported value type {type(value).__name__}")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def compare(a: Any, b: Any) -> int:
    """Total BSON order of two portable values: -1, 0 or 1.

    >>> compare(1, 1.0), compare(4, "4"), compare(True, 1)
    (0, -1, 1)
    """
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int or ta is float):
        fast: int = (a > b) - (a < b)
        return fast
    ra, rb = rank(a), rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == RANK_NULL:
        return 0
    if ra == RANK_OBJECT:
        return _compare_sequences(list(a.items()), list(b.items()), keyed=True)
    if ra == RANK_ARRAY:
        return _compare_sequences(list(a), list(b), keyed=False)
    if ra == RANK_BYTES and len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    c: int = (a > b) - (a < b)
    return c


def _compare_sequences(a: list[Any], b: list[Any], *, keyed: bool) -> int:
    for x, y in zip(a, b, strict=False):
        if keyed:
            (kx, x), (ky, y) = x, y
            rx, ry = rank(x), rank(y)
            if rx != ry:
                return -1 if rx < ry else 1
            if kx != ky:
                return -1 if kx < ky else 1
        c = compare(x, y)
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def equal(a: Any, b: Any) -> bool:
    """MongoDB equality: ``1 == 1.0``, ``True != 1``, documents equal only in the same order."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is float):
        return bool(a == b)
    return compare(a, b) == 0


def type_name(value: Any) -> str:
    """The ``$type`` alias of a value (``int`` for 32-bit integers, ``long`` beyond)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bytes):
        return "binData"
    if isinstance(value, datetime):
        return "date"
    raise QueryError(f"unsupported value type {type(value).__name__}")


TYPE_CODES: dict[int, str] = {
    1: "double",
    2: "string",
    3: "object",
    4: "array",
    5: "binData",
    8: "bool",
    9: "date",
    10: "null",
    16: "int",
    18: "long",
    19: "decimal",
}
TYPE_NAMES = frozenset(TYPE_CODES.values()) | {"number"}


def normalize_datetime(value: datetime, path: str = "") -> datetime:
    """UTC with millisecond precision, as every backend stores it."""
    if value.tzinfo is UTC and value.microsecond % 1000 == 0 and type(value) is datetime:
        return value  # already UTC at millisecond precision: what the conversion returns
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise QueryError("naive datetime: pass a timezone-aware datetime", path=path)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def normalize_value(value: Any, path: str = "", depth: int = 0) -> Any:
    """Validate a portable value and return its canonical form (lists, UTC datetimes).

    Containers are always copied, so the result shares nothing mutable with ``value``.
    Raises :class:`QueryError` naming the path for anything that cannot round-trip.
    """
    if depth > MAX_DEPTH:
        raise QueryError("nesting deeper than 100 levels", path=path)
    t = type(value)
    if t is str:
        if not value.isascii():
            check_text(value, path)
        return value
    if t is bool or value is None:
        return value
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise QueryError("integer outside the 64-bit range", path=path)
        return value
    if t is float:
        if not _isfinite(value):
            raise QueryError("NaN and infinity are not portable values", path=path)
        return value
    if t is dict:
        return _normalize_dict(value, path, depth)
    if t is list:
        return _normalize_list(value, path, depth)
    if isinstance(value, Mapping):
        return _normalize_mapping(value, path, depth)
    if isinstance(value, list | tuple):
        return _normalize_sequence(value, path, depth)
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
        return normalize_value(int(value), path, depth)
    if isinstance(value, float):
        return normalize_value(float(value), path, depth)
    if isinstance(value, str):
        # str.__str__, not str(): str() of a (str, Enum) member is "Cls.NAME", not its value.
        return normalize_value(str.__str__(value), path, depth)
    raise QueryError(f"unsupported value type {type(value).__name__}", path=path)


def normalize_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``normalize_value`` of a document: a validated deep copy in canonical form."""
    if type(doc) is dict:
        return _normalize_dict(doc, "", 0)
    return _normalize_mapping(doc, "", 0)


_isfinite = math.isfinite

# Containers nested deeper than this are never called canonical (the nesting limit is then
# enforced by the validation itself).
_CANONICAL_DEPTH = MAX_DEPTH - 10


def canonical(doc: Any) -> TypeGuard[dict[str, Any]]:
    """Whether ``normalize_document(doc)`` would return a document equal to ``doc``, types
    included: a dict with valid field names whose values are all in canonical form (str,
    bool, None, 64-bit int, finite float, finite Decimal, bytes, UTC datetimes at millisecond
    precision, and dicts and lists of those). False for anything the validation would change
    or refuse, and for anything it is not sure of (then the validation decides).

    A document that is canonical can be written as it is instead of as a validated copy
    when nothing else holds it (a copy's freshly read documents).

    >>> canonical({"id": "a1", "n": 1, "tags": ["x"]}), canonical({"t": (1, 2)})
    (True, False)
    """
    return type(doc) is dict and _canonical_dict(doc, 0)


def _canonical_text(value: str) -> bool:
    try:
        check_text(value, "")
    except QueryError:
        return False
    return True


def _canonical_dict(value: dict[Any, Any], depth: int) -> bool:
    """canonical of a dict at ``depth``: the checks of _normalize_dict, no copy."""
    for k, v in value.items():
        if type(k) is not str:
            return False
        if k not in _VALID_NAMES and not _canonical_name(k):
            return False
        t = type(v)
        if t is str:
            if v.isascii():
                continue
        elif t is bool or v is None:
            continue
        elif t is int:
            if INT64_MIN <= v <= INT64_MAX:
                continue
            return False
        elif t is float:
            if _isfinite(v):
                continue
            return False
        elif t is list:
            if depth < _CANONICAL_DEPTH and _canonical_list(v, depth + 1):
                continue
            return False
        if not _canonical_value(v, depth + 1):
            return False
    return True


def _canonical_list(value: list[Any], depth: int) -> bool:
    for v in value:
        t = type(v)
        if (
            (t is str and v.isascii())
            or t is bool
            or v is None
            or (t is int and INT64_MIN <= v <= INT64_MAX)
            or (t is float and _isfinite(v))
        ):
            continue
        if not _canonical_value(v, depth):
            return False
    return True


def _canonical_name(name: str) -> bool:
    try:
        _check_name(name, "")
    except QueryError:
        return False
    return True


def _canonical_value(value: Any, depth: int) -> bool:
    t = type(value)
    if t is str:
        return value.isascii() or _canonical_text(value)
    if t is bool or value is None or t is bytes:
        return True
    if t is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    if t is float:
        return _isfinite(value)
    if t is dict:
        return depth < _CANONICAL_DEPTH and _canonical_dict(value, depth)
    if t is list:
        return depth < _CANONICAL_DEPTH and _canonical_list(value, depth + 1)
    if t is datetime:
        return value.tzinfo is UTC and value.microsecond % 1000 == 0
    if t is Decimal:
        return bool(value.is_finite())
    return False


# Field names already found valid. Documents repeat the same few names, so one set lookup
# replaces the checks of check_field_name; bounded so arbitrary names cannot grow it forever.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 4096


def _check_name(name: Any, path: str) -> None:
    """check_field_name of a field of the mapping at ``path``, remembering a valid name."""
    check_field_name(name, f"{path}.{name}" if path else str(name))
    if type(name) is str and len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES.add(name)


def _normalize_dict(value: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
    """normalize_value of a dict. The hot path of every insert: the dict is copied in C and
    only values that change (containers, which are copied; datetimes; ...) are replaced; plain
    scalars are checked inline. Errors and rare types go through normalize_value with their
    path, in field order, so results and errors are those of _normalize_mapping."""
    if depth >= 100:
        return _normalize_mapping(value, path, depth)  # children would be too deep: it raises
    out: dict[str, Any] = value.copy()
    for k, v in out.items():
        if type(k) is not str or k not in _VALID_NAMES:
            if type(k) is not str:
                return _normalize_mapping(value, path, depth)  # a str subclass key: see there
            _check_name(k, path)
        t = type(v)
        if t is str:
            if v.isascii():
                continue
        elif t is bool or v is None:
            continue
        elif t is int:
            if INT64_MIN <= v <= INT64_MAX:
                continue
        elif t is float:
            if _isfinite(v):
                continue
        elif t is dict:
            out[k] = _normalize_dict(v, f"{path}.{k}" if path else k, depth + 1)
            continue
        elif t is list:
            out[k] = _normalize_list(v, f"{path}.{k}" if path else k, depth + 1)
            continue
        out[k] = normalize_value(v, f"{path}.{k}" if path else k, depth + 1)
    return out


def _normalize_list(value: list[Any], path: str, depth: int) -> list[Any]:
    """normalize_value of a list: copied in C, then only changed elements replaced."""
    if depth >= 100:
        return _normalize_sequence(value, path, depth)
    out = value[:]
    for i, v in enumerate(out):
        t = type(v)
        if not (
            (t is str and v.isascii())
            or t is bool
            or v is None
            or (t is int and INT64_MIN <= v <= INT64_MAX)
            or (t is float and _isfinite(v))
        ):
            out[i] = normalize_value(v, f"{path}.{i}", depth + 1)
    return out


def _normalize_mapping(value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
    """normalize_value of any mapping (the general form of _normalize_dict)."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        sub = f"{path}.{k}" if path else str(k)
        check_field_name(k, sub)
        if type(k) is not str:
            k = str.__str__(k)  # a (str, Enum) key is stored as its value, as pymongo does
        out[k] = normalize_value(v, sub, depth + 1)
    return out


def _normalize_sequence(value: list[Any] | tuple[Any, ...], path: str, depth: int) -> list[Any]:
    """normalize_value of any list or tuple (the general form of _normalize_list)."""
    return [normalize_value(v, f"{path}.{i}", depth + 1) for i, v in enumerate(value)]


def check_field_name(name: Any, path: str) -> None:
    """A stored field name: a non-empty string without a leading ``$``, a ``.`` or NUL."""
    if not isinstance(name, str):
        raise QueryError("field names must be strings", path=path)
    if not name:
        raise QueryError("empty field name", path=path)
    if name[0] == "$":
        raise QueryError("field names must not start with '$'", path=path)
    if "." in name:
        raise QueryError("field names must not contain '.'", path=path)
    if "\x00" in name:
        raise QueryError("field names must not contain NUL", path=path)
    check_text(name, path)
