"""Assertions the conformance tests share: strict value identity and id listings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncdb


def difference(expected: Any, got: Any, path: str = "$") -> str | None:
    """Where two portable values differ, strictly: types (``1`` vs ``1.0`` vs ``True`` vs
    ``Decimal(1)``), field order, the sign of zero, a Decimal's exponent, a datetime's zone.
    None when they are the same value."""
    if type(expected) is not type(got):
        kinds = f"{type(expected).__name__} vs {type(got).__name__}"
        return f"{path}: expected {expected!r}, got {got!r} ({kinds})"
    if isinstance(expected, dict):
        if list(expected) != list(got):
            return f"{path}: expected fields {list(expected)}, got {list(got)}"
        for k in expected:
            diff = difference(expected[k], got[k], f"{path}.{k}")
            if diff:
                return diff
        return None
    if isinstance(expected, list):
        if len(expected) != len(got):
            return f"{path}: expected {len(expected)} elements {expected!r}, got {got!r}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            diff = difference(e, g, f"{path}.{i}")
            if diff:
                return diff
        return None
    if isinstance(expected, float):
        same = expected == got and math.copysign(1, expected) == math.copysign(1, got)
        return None if same else f"{path}: expected {expected!r}, got {got!r}"
    if isinstance(expected, Decimal):
        return None if str(expected) == str(got) else f"{path}: expected {expected!r}, got {got!r}"
    if isinstance(expected, datetime):
        if got.utcoffset() != timedelta(0) or expected != got:
            return f"{path}: expected {expected!r}, got {got!r}"
        return None
    return None if expected == got else f"{path}: expected {expected!r}, got {got!r}"


def assert_same(expected: Any, got: Any) -> None:
    """``expected`` and ``got`` are the same portable value (see :func:`difference`)."""
    diff = difference(expected, got)
    assert diff is None, diff


async def ids(
    coll: asyncdb.Collection, filter: Mapping[str, Any] | None = None, **kw: Any
) -> list[Any]:
    """The keys of the documents ``find`` returns, in the order returned."""
    return [doc["id"] async for doc in coll.find(filter, **kw)]


async def id_set(coll: asyncdb.Collection, filter: Mapping[str, Any] | None = None) -> set[Any]:
    """The keys of the matching documents (scans allowed), as a set."""
    found = await ids(coll, filter, allow_scan=True)
    assert len(found) == len(set(found)), f"duplicate documents returned: {found}"
    return set(found)
