"""MongoDB point reads decode in one pass of the driver and narrow Int64 and Decimal128 after:
the documents, to the types of every value, equal what the general read path returns."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncdb


def typed(value: Any) -> Any:
    """``value`` with the type of every value beside it, so equal means same types too."""
    if type(value) is dict:
        return {k: typed(v) for k, v in value.items()}
    if type(value) is list:
        return [typed(v) for v in value]
    return (type(value).__name__, value)


DOCS: list[dict[str, Any]] = [
    {
        "id": "wide",
        "big": 2**40,
        "small": 7,
        "negative": -(2**62),
        "price": Decimal("12.3400"),
        "nested": {"big": 2**33, "d": Decimal("-0.5"), "deeper": [{"n": 2**50}, Decimal("1E+3")]},
        "list": [2**35, 1, [Decimal("7"), 2**45]],
        "when": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "bytes": b"\x00\x01",
        "flag": True,
        "none": None,
        "float": 1.5,
    },
    {"id": "plain", "s": "text", "n": 1},
]


async def test_point_reads_return_the_types_of_the_general_path(mongo_url: str) -> None:
    async with asyncdb.connect(mongo_url) as db:
        t = db.collection("typed_points", allow_scan=True)
        await t.insert_many(DOCS)
        for doc in DOCS:
            point = await t.find_one({"id": doc["id"]})
            listed = await t.find({"id": doc["id"]}, limit=0).to_list()
            scanned = await t.find_one({"id": {"$in": [doc["id"]]}})  # the planned path
            assert point is not None
            assert typed(point) == typed(listed[0]) == typed(scanned) == typed(doc)
        assert await t.find_one({"id": "missing"}) is None
        pairs = db.collection("typed_pairs", key=["a", "b"])
        await pairs.insert_one({"a": "x", "b": 2**40, "d": Decimal("2.50")})
        got = await pairs.find_one({"a": "x", "b": 2**40})
        assert typed(got) == typed({"a": "x", "b": 2**40, "d": Decimal("2.50")})
