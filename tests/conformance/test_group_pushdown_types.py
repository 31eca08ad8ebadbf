"""``$group`` pushdown over keys of every JSON type with all-numeric sums (PostgreSQL's fast
statement: keys as text plus their type, sums cast straight to numeric) and with a summed value
that is not a number (its exact per-type statement): the reference evaluator's answer on every
backend either way."""

from __future__ import annotations

from typing import Any

import asyncdb
from asyncdb.query.aggregate import run_pipeline
from asyncdb.query.pipeline import parse_pipeline

from .aggregate_strategies import canonical, close

# keys BSON tells apart although their text is the same ("1" and 1, "true" and true, null and
# missing), all summed values numbers
KEYS: list[Any] = ["1", 1, "true", True, False, None, "a'b", 'q"uote', -7]
PIPELINE = [
    {"$match": {"g": {"$in": ["x", "y"]}}},
    {
        "$group": {
            "_id": {"k": "$k", "g": "$g"},
            "n": {"$count": {}},
            "total": {"$sum": "$v"},
            "mean": {"$avg": "$v"},
        }
    },
]


async def _answers(coll: asyncdb.Collection, docs: list[dict[str, Any]]) -> None:
    stored = await coll.find({"g": {"$in": ["x", "y"]}}).to_list()
    assert len(stored) == len(docs)
    expected = canonical(run_pipeline(parse_pipeline(PIPELINE), stored))
    got = canonical(await coll.aggregate(PIPELINE).to_list())
    assert close(expected, got) is None, close(expected, got)


async def test_group_keys_of_every_type_with_numeric_and_mixed_sums(db: asyncdb.Database) -> None:
    coll = db.collection("typed_groups", indexes=["g"])
    docs: list[dict[str, Any]] = [
        {"id": i, "k": KEYS[i % len(KEYS)], "g": "xy"[i % 2], "v": i * 3 - 20} for i in range(36)
    ]
    docs.append({"id": 100, "g": "x", "v": 4})  # k missing: its own group, apart from null
    await coll.insert_many(docs)
    await _answers(coll, docs)
    groups = await coll.aggregate(PIPELINE).to_list()
    assert len(groups) == 2 * len(KEYS) + 1
    # a summed value that is not a number (ignored by $sum/$avg): the exact statement
    more: list[dict[str, Any]] = [
        {"id": 200, "k": "1", "g": "x", "v": "12"},
        {"id": 201, "k": 1, "g": "y", "v": None},
        {"id": 202, "k": True, "g": "x", "v": True},
        {"id": 203, "k": None, "g": "y", "v": {"deep": 1}},
    ]
    await coll.insert_many(more)
    await _answers(coll, docs + more)
