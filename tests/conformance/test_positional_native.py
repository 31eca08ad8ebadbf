"""Positional updates by key, case by case, on every backend: MongoDB's answer (the applier's)
everywhere, including MongoDB's errors. On the MongoDB backend, ``$set``/``$unset`` of
``<field>.$[]``/``<field>.$[<id>]`` go to the server in one round trip (no document read:
``docs_read`` 0 in ``db.metrics()``); the cases where the wire server departs from MongoDB
(pinned in test_aggregate_wire_oracle.py: it skips what MongoDB fails) run in process."""

from __future__ import annotations

from typing import Any

import pytest

import asyncdb

# (document, update, array_filters, MongoDB's result or the UpdateError it raises, native?)
CASES: list[tuple[dict[str, Any], Any, Any, Any, bool]] = [
    ({"a": [1, 2]}, {"$set": {"a.$[]": 0}}, None, {"a": [0, 0]}, True),
    (
        {"a": [1, 5]},
        {"$set": {"a.$[x]": 0, "b": 1}},
        [{"x": {"$gt": 2}}],
        {"a": [1, 0], "b": 1},
        True,
    ),
    (
        {"a": [{"b": 1}, {"b": 5}]},
        {"$unset": {"a.$[e]": 1}},
        [{"e.b": 5}],
        {"a": [{"b": 1}, None]},
        True,
    ),
    ({"a": []}, {"$set": {"a.$[]": 0}}, None, {"a": []}, True),
    # MongoDB fails these; the wire server would leave the document as it is
    ({"a": 5}, {"$set": {"a.$[]": 0}}, None, "array updates", False),
    ({}, {"$set": {"a.$[x]": 0}}, [{"x": 1}], "must exist", False),
    ({"a": {"b": 1}}, {"$set": {"a.$[]": 0}}, None, "array updates", False),
    ({"a": [{"b": 1}, 3]}, {"$set": {"a.$[].b": 0}}, None, "cannot create field", False),
    # not sent: an operator other than $set/$unset, a path below the positional part
    ({"a": [1, 2]}, {"$inc": {"a.$[]": 1}}, None, {"a": [2, 3]}, False),
    (
        {"a": [{"b": [1]}, {"b": [2]}]},
        {"$set": {"a.$[].b.$[]": 0}},
        None,
        {"a": [{"b": [0]}, {"b": [0]}]},
        False,
    ),
]


async def test_positional_updates_by_key(db: asyncdb.Database) -> None:
    coll = db.collection("positional")
    await coll.insert_many([{"id": f"p{i}", **case[0]} for i, case in enumerate(CASES)])
    for i, (doc, update, array_filters, expected, native) in enumerate(CASES):
        key = f"p{i}"
        read_before = _docs_read(db)
        if isinstance(expected, str):
            with pytest.raises(asyncdb.UpdateError, match=expected):
                await coll.update_one({"id": key}, update, array_filters=array_filters)
            assert await coll.find_one({"id": key}) == {"id": key, **doc}  # nothing written
            continue
        result = await coll.update_one({"id": key}, update, array_filters=array_filters)
        assert result.matched_count == 1, (i, update)
        read = _docs_read(db) - read_before
        assert await coll.find_one({"id": key}) == {"id": key, **expected}, (i, update)
        if db.backend == "mongo":
            assert (read == 0) is native, (i, update, read)  # on the server, or read here


def _docs_read(db: asyncdb.Database) -> int:
    """Documents update_one has read from the store so far (``db.metrics()``)."""
    ops = db.metrics()["collections"].get("positional", {})
    return int(ops.get("update_one", {}).get("docs_read", 0))
