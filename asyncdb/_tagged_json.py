"""JSON text for portable values, with tagged objects for the types JSON lacks.

A datetime is ``{"$date": "YYYY-MM-DDTHH:MM:SS.mmmZ"}`` (fixed width, so the text sorts
chronologically), bytes ``{"$binary": "<base64>"}`` and a Decimal ``{"$decimal": "<str>"}``.
Stored field names never start with ``$`` (the query language rejects them), so a tag cannot be
confused with user data. Used by the stores that keep a document as exact JSON text (SQLite,
DynamoDB's body attribute) and by the cache.

>>> from datetime import UTC, datetime
>>> text = dumps({"at": datetime(2026, 1, 2, tzinfo=UTC)})
>>> text
'{"at":{"$date":"2026-01-02T00:00:00.000Z"}}'
>>> loads(text) == {"at": datetime(2026, 1, 2, tzinfo=UTC)}
True
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def iso_date(value: datetime) -> str:
    """Fixed-width UTC ISO text with milliseconds (sorts like the instant it names)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    micro = value.microsecond
    if micro == 0:  # isoformat() without timespec is the faster call; same text
        return value.isoformat()[:-6] + ".000Z"
    if micro % 1000 == 0:
        return value.isoformat()[:-9] + "Z"  # drop "000+00:00"
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def tag(value: Any) -> Any:
    """The tagged object of a datetime, bytes or Decimal (orjson's ``default``)."""
    if isinstance(value, datetime):
        return {"$date": iso_date(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def dumps(value: Any) -> str:
    """JSON text of a portable value, tags included."""
    return orjson.dumps(value, default=tag, option=DUMP_OPTIONS).decode()


def untag(value: Any) -> Any:
    """``value`` (parsed JSON) with every tagged object turned back into its Python value."""
    t = type(value)
    if t is dict:
        if len(value) == 1:
            (key,) = value
            if key[:1] == "$":
                inner = value[key]
                if key == "$date":
                    return datetime.fromisoformat(inner)
                if key == "$binary":
                    return base64.b64decode(inner)
                if key == "$decimal":
                    return Decimal(inner)
        return {k: untag(v) for k, v in value.items()}
    if t is list:
        return [untag(v) for v in value]
    return value


def loads(text: str | bytes) -> Any:
    """Decode JSON text that may hold tags (untagging only when one is there)."""
    value = orjson.loads(text)
    tagged = b'{"$' in text if isinstance(text, bytes) else '{"$' in text
    return untag(value) if tagged else value
