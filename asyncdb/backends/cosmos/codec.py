"""Documents as Cosmos DB items: an exact copy for reading back, a queryable copy for SQL.

Cosmos stores JSON and its query engine sees every number as a double, so one JSON form cannot
both round-trip every portable value and compare like MongoDB. An item therefore holds two
copies of the user document:

- ``raw``: the document as JSON text with tags for the types JSON lacks (``{"$date": iso}``,
  ``{"$binary": base64}``, ``{"$decimal": str}``). Python's ``json`` keeps ints of any size, the
  float/int distinction, ``-0.0``, NaN and infinities, and field order, so decoding is exact.
  The store never looks inside it.
- ``v``: the document for queries. Strings, booleans, null, finite floats and ints within
  +-2**53 are native JSON (compared exactly by Cosmos); everything else (Decimal, larger ints,
  NaN, infinities, bytes, dates) becomes an opaque ``{"$t": kind}`` object that no pushed
  comparison can match. ``tn`` is true when the document holds such a tagged number, so every
  pushed numeric condition adds ``OR c.tn = true`` and leaves those documents to the residual.

Stored field names never start with ``$`` (the query language rejects them), so a tag cannot be
confused with user data. Cosmos ids cannot contain ``/ \\ ? #``: keys are percent-encoded.

>>> item = encode_item({"id": "a/b", "n": 1.0}, ("id",))
>>> item["id"], item["v"], item["tn"]
('sa%2Fb', {'id': 'a/b', 'n': 1.0}, False)
>>> decode_item(item)
{'id': 'a/b', 'n': 1.0}
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from asyncdb.errors import QueryError

# Cosmos compares numbers as doubles: beyond this an int is not exact there.
SAFE_INT = 2**53
# Properties of an item besides the user document; user data lives under ``v``/``raw`` only.
ID, PARTITION, QUERYABLE, RAW, TAGGED_NUMBER, TTL = "id", "pk", "v", "raw", "tn", "ttl"


def _tag(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, datetime):
        return {"$date": _iso(value)}
    if isinstance(value, bytes):
        return {"$binary": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    return value


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, text),) = obj.items()
        if tag == "$date":
            return datetime.fromisoformat(text)
        if tag == "$binary":
            return base64.b64decode(text)
        if tag == "$decimal":
            return Decimal(text)
    return obj


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def dump_raw(doc: dict[str, Any]) -> str:
    """The exact JSON text of a document (tags for dates, bytes and Decimals)."""
    return json.dumps(_tag(doc), ensure_ascii=False, separators=(",", ":"))


def load_raw(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(text, object_hook=_untag)
    return doc


def queryable(value: Any) -> tuple[Any, bool]:
    """The value as Cosmos SQL should see it, and whether it holds a tagged number."""
    if value is None or isinstance(value, bool | str):
        return value, False
    if isinstance(value, int):
        return (value, False) if -SAFE_INT <= value <= SAFE_INT else ({"$t": "num"}, True)
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else ({"$t": "num"}, True)
    if isinstance(value, Decimal):
        return {"$t": "num"}, True
    if isinstance(value, datetime):
        return {"$t": "date"}, False
    if isinstance(value, bytes):
        return {"$t": "bin"}, False
    if isinstance(value, list):
        items = [queryable(v) for v in value]
        return [v for v, _ in items], any(t for _, t in items)
    if isinstance(value, dict):
        fields = {k: queryable(v) for k, v in value.items()}
        return {k: v for k, (v, _) in fields.items()}, any(t for _, t in fields.values())
    raise QueryError(f"cannot store a value of type {type(value).__name__}")


def is_plain(value: Any) -> bool:
    """Whether a literal is stored natively (so Cosmos compares it as MongoDB would)."""
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -SAFE_INT <= value <= SAFE_INT
    return isinstance(value, float) and math.isfinite(value)


def encode_key_part(value: Any) -> str:
    """A reversible, Cosmos-safe text for one key value (no ``/ \\ ? #``)."""
    if isinstance(value, str):
        return "s" + quote(value, safe="")
    if isinstance(value, datetime):
        return "d" + _iso(value)
    return "i" + str(int(value))


def encode_key(key: tuple[Any, ...]) -> str:
    """The item id of a key tuple (``,`` joins parts; quoting escapes any ``,`` inside one)."""
    return ",".join(encode_key_part(v) for v in key)


def decode_key_part(text: str) -> Any:
    kind, body = text[0], text[1:]
    if kind == "s":
        return unquote(body)
    if kind == "d":
        return datetime.fromisoformat(body)
    return int(body)


def encode_item(doc: dict[str, Any], key_fields: tuple[str, ...]) -> dict[str, Any]:
    """The Cosmos item of a document: id and partition from the key, both copies of the body."""
    key = tuple(doc[f] for f in key_fields)
    body, tagged = queryable(doc)
    return {
        ID: encode_key(key),
        PARTITION: encode_key_part(key[0]),
        QUERYABLE: body,
        RAW: dump_raw(doc),
        TAGGED_NUMBER: tagged,
    }


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return load_raw(item[RAW])
