"""Aggregation, positional updates and pipeline updates on every backend.

The oracle is the reference evaluator (``asyncdb.query.aggregate``) run over the documents as the
backend stores them (read back in key order), so a store's documented value deviations (DynamoDB's
one number type) do not count as aggregation differences. Random pipelines come from
aggregate_strategies.py; few examples per backend (each inserts a batch on a real server).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import asyncdb
from asyncdb.query.aggregate import EvaluationError, run_pipeline
from asyncdb.query.pipeline import parse_pipeline

from . import test_differential as differential
from .aggregate_strategies import canonical, close, concretize, pipelines
from .strategies import Concretizer, batches

Doc = dict[str, Any]
EXAMPLES = int(os.environ.get("ASYNCDB_TEST_AGGREGATE_EXAMPLES", "4"))
PIPELINES_PER_EXAMPLE = 5


# --- random pipelines against the reference evaluator ---------------------------------------------


async def check_pipelines(db: asyncdb.Database, case: tuple[list[Doc], list[list[Doc]]]) -> int:
    docs, templates = case
    coll = await differential.fresh(db, "agg_diff", docs)
    stored = await coll.find({}, sort=[("id", 1)]).to_list()
    concrete = Concretizer(stored)
    for template in templates:
        pipeline = concretize(template, concrete)
        try:
            expected = canonical(run_pipeline(parse_pipeline(pipeline), stored))
        except EvaluationError:
            with pytest.raises(asyncdb.QueryError):
                await coll.aggregate(pipeline).to_list()
            continue
        got = canonical(await coll.aggregate(pipeline).to_list())
        diff = close(expected, got)
        if diff is not None:
            # A group's _id is the value of the first document read, as in MongoDB: where 1 and
            # 1.0 share a group, which names it depends on the order the store reads. Stores
            # with no key order (hash-partitioned) read in their own order.
            natural = await coll.find({}).to_list()
            again = canonical(run_pipeline(parse_pipeline(pipeline), natural))
            if close(again, got) is None:
                continue
        assert diff is None, f"pipeline {pipeline!r}\n  {diff}\n  documents: {stored!r}"
    return len(templates)


def test_random_pipelines_match_the_reference_evaluator(backend_url: str) -> None:
    from hypothesis import strategies as st

    cases = st.tuples(
        batches, st.lists(pipelines, min_size=PIPELINES_PER_EXAMPLE, max_size=PIPELINES_PER_EXAMPLE)
    )
    checked = differential.run_examples(backend_url, cases, check_pipelines, EXAMPLES)
    assert checked == EXAMPLES * PIPELINES_PER_EXAMPLE


# --- documented results (MongoDB manual, $group) --------------------------------------------------


def _sale(i: int, item: str, price: str, quantity: int, month: int) -> Doc:
    return {
        "id": i,
        "item": item,
        "price": Decimal(price),
        "quantity": quantity,
        "date": datetime(2014, month, 1, tzinfo=UTC),
    }


SALES = [
    _sale(1, "abc", "10", 2, 3),
    _sale(2, "jkl", "20", 1, 3),
    _sale(3, "xyz", "5", 10, 3),
    _sale(4, "xyz", "5", 20, 4),
    _sale(5, "abc", "10", 10, 4),
    _sale(6, "def", "7.5", 5, 6),
    _sale(7, "def", "7.5", 10, 9),
    _sale(8, "abc", "10", 5, 2),
]


async def test_group_sort_and_limit_give_the_manuals_totals(db: asyncdb.Database) -> None:
    sales = db.collection("sales", indexes=["item"])
    await sales.insert_many(SALES)
    pipeline = [
        {"$match": {"item": {"$in": ["abc", "xyz", "def", "jkl"]}}},
        {"$group": {"_id": "$item", "total": {"$sum": {"$multiply": ["$price", "$quantity"]}}}},
        {"$match": {"total": {"$gte": 100}}},
        {"$sort": {"total": -1}},
    ]
    rows = await sales.aggregate(pipeline).to_list()
    assert [(r["_id"], r["total"]) for r in rows] == [
        ("abc", Decimal("170")),
        ("xyz", Decimal("150")),
        ("def", Decimal("112.5")),
    ]
    stats = await sales.aggregate(
        [
            {"$match": {"item": {"$in": ["abc", "xyz", "def", "jkl"]}}},
            {"$group": {"_id": None, "avg": {"$avg": "$quantity"}, "n": {"$count": {}}}},
        ]
    ).to_list()
    assert stats == [{"_id": None, "avg": 7.875, "n": 8}]
    top = await sales.aggregate(
        [{"$match": {"item": "abc"}}, {"$sort": {"quantity": -1}}, {"$limit": 2}]
    ).to_list()
    assert [r["id"] for r in top] == [5, 8]  # pushed down or not, the same two
    counted = await sales.aggregate(
        [{"$match": {"item": {"$in": ["abc", "def"]}}}, {"$sortByCount": "$item"}]
    ).to_list()
    assert counted == [{"_id": "abc", "count": 3}, {"_id": "def", "count": 2}]
    plan = await sales.explain(pipeline=pipeline)
    assert plan.access_path != "scan"
    if db.backend == "mongo":
        assert plan.native["in process"] == []
    else:
        assert plan.native["in process"] == ["$group", "$match", "$sort"]


async def test_aggregate_without_a_match_needs_allow_scan(db: asyncdb.Database) -> None:
    coll = db.collection("agg_scan")
    await coll.insert_many([{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    with pytest.raises(asyncdb.ScanRequired):
        await coll.aggregate([{"$group": {"_id": None, "s": {"$sum": "$n"}}}]).to_list()
    total = await coll.aggregate(
        [{"$group": {"_id": None, "s": {"$sum": "$n"}}}], allow_scan=True
    ).to_list()
    assert total == [{"_id": None, "s": 3}]
    by_key = await coll.aggregate([{"$match": {"id": "b"}}, {"$project": {"n": 1}}]).to_list()
    assert by_key == [{"n": 2}]  # $project keeps only _id by default, as in MongoDB
    with pytest.raises(asyncdb.QueryError) as err:
        coll.aggregate([{"$match": {"id": "a"}}, {"$lookup": {}}])
    assert err.value.path == "pipeline[1].$lookup"


# --- positional updates (MongoDB manual: $, $[], $[<identifier>]) ---------------------------------


async def test_positional_updates(db: asyncdb.Database) -> None:
    students = db.collection("students", allow_scan=True)
    await students.insert_many(
        [
            {"id": 1, "grades": [85, 80, 80], "scores": [95, 102, 90, 150]},
            {"id": 2, "grades": [88, 90, 92], "scores": [98, 100, 102]},
            {
                "id": 3,
                "grades": [
                    {"grade": 80, "mean": 75, "std": 8},
                    {"grade": 85, "mean": 90, "std": 5},
                    {"grade": 85, "mean": 85, "std": 8},
                ],
                "scores": [],
            },
        ]
    )
    res = await students.update_one({"id": 1, "grades": 80}, {"$set": {"grades.$": 82}})
    assert (res.matched_count, res.modified_count) == (1, 1)
    assert (await students.find_one({"id": 1}))["grades"] == [85, 82, 80]  # type: ignore[index]
    after = await students.find_one_and_update(
        {"id": 3, "grades.grade": 85}, {"$set": {"grades.$.std": 6}}
    )
    assert after is not None and [g["std"] for g in after["grades"]] == [8, 6, 8]
    res = await students.update_many({"id": {"$in": [1, 2]}}, {"$inc": {"grades.$[]": 10}})
    assert (res.matched_count, res.modified_count) == (2, 2)
    assert (await students.find_one({"id": 2}))["grades"] == [98, 100, 102]  # type: ignore[index]
    res = await students.update_many(
        {"scores": {"$gte": 100}},
        {"$set": {"scores.$[element]": 100}},
        array_filters=[{"element": {"$gte": 100}}],
    )
    assert (res.matched_count, res.modified_count) == (2, 2)
    assert (await students.find_one({"id": 1}))["scores"] == [95, 100, 90, 100]  # type: ignore[index]
    assert (await students.find_one({"id": 2}))["scores"] == [98, 100, 100]  # type: ignore[index]
    res = await students.update_one(
        {"id": 3},
        {"$inc": {"grades.$[g].mean": 1}},
        array_filters=[{"g.grade": {"$gte": 85}, "g.std": {"$lt": 7}}],
    )
    assert res.modified_count == 1
    doc3 = await students.find_one({"id": 3})
    assert doc3 is not None and [g["mean"] for g in doc3["grades"]] == [75, 91, 85]
    # $ without a match in the query fails and writes nothing
    with pytest.raises(asyncdb.UpdateError):
        await students.update_one({"id": 2}, {"$set": {"grades.$": 0}})
    assert (await students.find_one({"id": 2}))["grades"] == [98, 100, 102]  # type: ignore[index]
    with pytest.raises(asyncdb.QueryError):
        await students.update_one({"id": 2}, {"$set": {"grades.$[x]": 0}})
    up = await students.update_one(
        {"id": 4, "grades": [5, 8]}, {"$set": {"grades.$[]": 10}}, upsert=True
    )
    assert up.upserted_id == 4
    assert (await students.find_one({"id": 4}))["grades"] == [10, 10]  # type: ignore[index]


async def test_pipeline_updates(db: asyncdb.Database) -> None:
    coll = db.collection("pipeline_updates", allow_scan=True)
    await coll.insert_many([{"id": "a", "x": 1, "y": 2, "old": 0}, {"id": "b", "x": 5, "y": 5}])
    res = await coll.update_many(
        {}, [{"$set": {"total": {"$add": ["$x", "$y"]}}}, {"$unset": "old"}]
    )
    assert (res.matched_count, res.modified_count) == (2, 2)
    assert await coll.find({}, sort=[("id", 1)]).to_list() == [
        {"id": "a", "x": 1, "y": 2, "total": 3},
        {"id": "b", "x": 5, "y": 5, "total": 10},
    ]
    before = await coll.find_one_and_update(
        {"id": "b"},
        [{"$set": {"big": {"$gt": ["$total", 5]}}}],
        return_document="before",
    )
    assert before is not None and "big" not in before
    assert (await coll.find_one({"id": "b"}))["big"] is True  # type: ignore[index]
    same = await coll.update_one({"id": "a"}, [{"$set": {"x": {"$literal": 1}}}])
    assert (same.matched_count, same.modified_count) == (1, 0)
    up = await coll.update_one({"id": "c"}, [{"$set": {"n": {"$ifNull": ["$n", 0]}}}], upsert=True)
    assert up.upserted_id == "c"
    assert await coll.find_one({"id": "c"}) == {"id": "c", "n": 0}
    await coll.update_one({"id": "c"}, [{"$replaceWith": {"m": {"$add": ["$n", 1]}}}])
    assert await coll.find_one({"id": "c"}) == {"id": "c", "m": 1}  # the key stays
    with pytest.raises(asyncdb.UpdateError):
        await coll.update_one({"id": "a"}, [{"$set": {"z": {"$concat": ["$x"]}}}])


# --- $group pushed to GROUP BY where exact (SQLite, PostgreSQL), the same answers everywhere


async def test_group_by_two_fields_with_sum_and_avg(db: asyncdb.Database) -> None:
    coll = db.collection("grouped", indexes=["company"])
    docs: list[Doc] = [
        {"id": i, "company": ["acme", "globex"][i % 2], "severity": i % 3, "n": i * 7}
        for i in range(30)
    ]
    docs += [
        {"id": 100, "company": "acme", "severity": None, "n": 2**62},
        {"id": 101, "company": "acme", "severity": None, "n": 1},
        {"id": 102, "company": "acme", "n": 5},  # a key without severity: another group
        {"id": 103, "company": "acme", "severity": True, "n": "text is ignored"},
        {"id": 104, "company": "initech", "severity": "1", "n": 2**62},
        {"id": 105, "company": "initech", "severity": "1", "n": 2**62},  # beyond 64 bits
    ]
    await coll.insert_many(docs)
    pipeline = [
        {"$match": {"company": {"$in": ["acme", "globex", "initech"]}}},
        {
            "$group": {
                "_id": {"company": "$company", "severity": "$severity"},
                "count": {"$count": {}},
                "total": {"$sum": "$n"},
                "mean": {"$avg": "$n"},
            }
        },
        {"$sort": {"count": -1, "total": 1}},
    ]
    stored = await coll.find({"id": {"$in": [d["id"] for d in docs]}}).to_list()
    expected = canonical(run_pipeline(parse_pipeline(pipeline), stored))
    got = canonical(await coll.aggregate(pipeline).to_list())
    assert close(expected, got) is None, close(expected, got)
    by_key = {(r["_id"].get("company"), r["_id"].get("severity", "-")): r for r in got}
    assert by_key[("acme", None)]["count"] == 2 and by_key[("acme", None)]["total"] == 2**62 + 1
    assert by_key[("acme", "-")]["total"] == 5
    assert by_key[("initech", "1")]["total"] == float(2**63)  # past 64 bits: a double
    assert by_key[("acme", True)]["mean"] is None
    plan = await coll.explain(pipeline=pipeline)
    if db.backend in ("sqlite", "postgres"):
        assert "GROUP BY" in plan.native["group by"] and plan.native["in process"] == ["$sort"]
    # 1 and 1.0 are one group whose name depends on the input order: computed in process
    await coll.insert_many(
        [{"id": 200, "company": "z", "n": 1}, {"id": 201, "company": "z", "n": 1.0}]
    )
    mixed = await coll.aggregate(
        [{"$match": {"company": "z"}}, {"$group": {"_id": "$n", "c": {"$sum": 1}}}]
    ).to_list()
    assert len(mixed) == 1 and mixed[0]["c"] == 2 and mixed[0]["_id"] == 1


async def test_bulk_write_takes_array_filters_and_pipeline_updates(db: asyncdb.Database) -> None:
    coll = db.collection("bulk_positional", allow_scan=True)
    await coll.insert_many([{"id": "a", "v": [1, 5, 9]}, {"id": "b", "v": [7]}])
    res = await coll.bulk_write(
        [
            asyncdb.UpdateOne(
                {"id": "a"}, {"$set": {"v.$[x]": 0}}, array_filters=[{"x": {"$gt": 4}}]
            ),
            asyncdb.UpdateMany({}, [{"$set": {"n": {"$size": "$v"}}}]),
            asyncdb.UpdateOne({"id": "b", "v": 7}, {"$inc": {"v.$": 1}}),
        ]
    )
    assert (res.matched_count, res.modified_count) == (4, 4)
    assert await coll.find({}, sort=[("id", 1)]).to_list() == [
        {"id": "a", "v": [1, 0, 0], "n": 3},
        {"id": "b", "v": [8], "n": 1},
    ]
    with pytest.raises(asyncdb.QueryError):
        await coll.bulk_write([asyncdb.UpdateOne({}, {"$set": {"v.$[y]": 0}})])
