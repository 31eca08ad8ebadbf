"""The aggregation evaluator (and the positional update applier) cross-checked against a
MongoDB-wire server (SecantusDB), the way test_mongo_wire_oracle.py checks the filter evaluator.

Random pipelines (aggregate_strategies.py) run on the server through raw pymongo, over the batch
stored with ``_id`` = ``id`` and a leading ``{"$project": {"_id": 0}}`` (so the stages see the same
documents as the evaluator), and through ``run_pipeline``. A pipeline whose ``$match`` hits a known
filter deviation of SecantusDB is left out (the filter module's predicates); the aggregation
deviations are pinned by ``test_secantusdb_deviation_<what>`` tests, each asserting the server's
answer next to MongoDB's documented one, and the MongoDB backend keeps those stages off the server
(asyncdb/backends/mongo/planner.py, ``server_agrees``/``server_stages``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from asyncdb.backends.mongo.planner import dotted_reference, server_stages
from asyncdb.errors import UpdateError
from asyncdb.query import apply_update, parse_filter
from asyncdb.query.aggregate import EvaluationError, run_pipeline
from asyncdb.query.pipeline import parse_pipeline, parse_update_spec

from . import test_mongo_wire_oracle as wire
from .aggregate_strategies import canonical, close, concretize, pipelines
from .strategies import Concretizer, batches

Doc = dict[str, Any]
EXAMPLES = int(os.environ.get("ASYNCDB_TEST_ORACLE_EXAMPLES", "20"))
PIPELINES_PER_EXAMPLE = 6
COUNT_DOC = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/count/"
ADD_FIELDS_DOC = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/addFields/"


@pytest.fixture
def oracle(mongo_url: str) -> Iterator[wire.MongoCollection]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=30_000)
    try:
        yield client.get_default_database(codec_options=wire.CODEC)["agg_oracle"]
    finally:
        client.close()


def load(coll: wire.MongoCollection, docs: list[Doc]) -> None:
    coll.delete_many({})
    coll.insert_many([{"_id": d["id"], **wire.to_bson(d)} for d in docs])


def raw_results(coll: wire.MongoCollection, pipeline: list[Doc]) -> list[Doc]:
    """The server's answer to the stages as written (after dropping ``_id``)."""
    stages = [{"$project": {"_id": 0}}, *(wire.to_bson(s) for s in pipeline)]
    return [wire.from_bson(d) for d in coll.aggregate(stages)]


def server_results(coll: wire.MongoCollection, pipeline: list[Doc]) -> list[Doc]:
    """The server's answer to the stages as the MongoDB backend sends them (parsed, rendered,
    ``$count`` as its documented ``$group`` equivalent)."""
    return raw_results(coll, server_stages(parse_pipeline(pipeline)))


def deviation(pipeline: list[Doc], docs: list[Doc]) -> str | None:
    """The SecantusDB deviation a pipeline runs into, if any: one of the filter module's in a
    ``$match``, a dotted sort path (its sort deviation), a dotted field path in an expression."""
    for stage in pipeline:
        if "$match" in stage:
            found = wire.deviation_of(wire.FILTER_DEVIATIONS, stage["$match"], docs)
            if found is not None:
                return found.name
        elif "$sort" in stage and any("." in k for k in stage["$sort"]):
            return "sort_through_elements_without_field"
        elif dotted_reference(stage):
            return "field_path_through_array"
    return None


def test_aggregation_evaluator_agrees_with_secantusdb(oracle: wire.MongoCollection) -> None:
    checked = errors = excluded = 0

    @settings(
        max_examples=EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.tuples(
            batches,
            st.lists(pipelines, min_size=PIPELINES_PER_EXAMPLE, max_size=PIPELINES_PER_EXAMPLE),
        )
    )
    def body(case: tuple[list[Doc], list[list[Doc]]]) -> None:
        nonlocal checked, errors, excluded
        docs, templates = case
        load(oracle, docs)
        concrete = Concretizer(docs)
        for template in templates:
            pipeline = concretize(template, concrete)
            if deviation(pipeline, docs) is not None:
                excluded += 1
                continue
            try:
                expected = run_pipeline(parse_pipeline(pipeline), docs)
            except EvaluationError:
                with pytest.raises(OperationFailure):
                    server_results(oracle, pipeline)
                errors += 1
                continue
            try:
                got = server_results(oracle, pipeline)
            except OperationFailure as exc:
                assert exc.code == 1, exc  # its 64-bit overflow (pinned below)
                excluded += 1
                continue
            diff = close(canonical(expected), canonical(got))
            assert diff is None, (
                f"pipeline {pipeline!r}\n  {diff}\n  reference evaluator: {expected!r}\n"
                f"  SecantusDB: {got!r}\n  documents: {docs!r}"
            )
            checked += 1

    body()
    print(f"\naggregation oracle: {checked} agreed, {errors} failed on both, {excluded} left out")
    assert checked >= EXAMPLES * PIPELINES_PER_EXAMPLE * 0.6, (checked, errors, excluded)


# --- positional updates, case by case ------------------------------------------------------------

POSITIONAL_CASES: list[tuple[Doc, Doc, Any, Any]] = [
    ({"grades": [85, 80, 80]}, {"grades": 80}, {"$set": {"grades.$": 82}}, None),
    (
        {"g": [{"k": 1, "v": 0}, {"k": 2, "v": 0}, {"k": 2, "v": 5}]},
        {"g.k": 2, "g.v": {"$gt": 1}},
        {"$inc": {"g.$.v": 1}},
        None,
    ),
    (
        {"g": [{"k": 1, "v": 0}, {"k": 2, "v": 9}]},
        {"g": {"$elemMatch": {"k": 2, "v": 9}}},
        {"$set": {"g.$.w": True}},
        None,
    ),
    ({"a": [1, [2, 3], {"b": 1}]}, {}, {"$set": {"a.$[]": 0}}, None),
    ({"a": [{"b": [1, 2]}, {"b": [3]}]}, {}, {"$inc": {"a.$[].b.$[]": 10}}, None),
    ({"a": [{"b": 1}, {"c": 2}]}, {}, {"$unset": {"a.$[].b": 1}}, None),
    ({"a": [1, 5, 9, 3]}, {}, {"$mul": {"a.$[x]": 2}}, [{"x": {"$gte": 5}}]),
    (
        {"a": [{"t": "q", "s": [7, 9]}, {"t": "h", "s": [8]}]},
        {},
        {"$inc": {"a.$[t].s.$[s]": 1}},
        [{"t.t": "q"}, {"s": {"$gte": 8}}],
    ),
    ({"a": [1, 2]}, {}, {"$push": {"a.$[x]": 1}}, [{"x": {"$type": "array"}}]),
    ({"a": [[1], [2, 3]]}, {}, {"$push": {"a.$[x]": 4}}, [{"x": {"$size": 2}}]),
    ({"a": [{"b": 1}, {"b": 2}]}, {}, {"$set": {"a.$[e].c": 1}}, [{"e.b": {"$in": [2, 3]}}]),
]


@pytest.mark.parametrize(("doc", "flt", "update", "array_filters"), POSITIONAL_CASES)
def test_positional_update_applier_agrees_with_secantusdb(
    oracle: wire.MongoCollection, doc: Doc, flt: Doc, update: Any, array_filters: Any
) -> None:
    parsed = parse_update_spec(update, parse_filter(flt), array_filters)
    expected = apply_update(parsed, {"id": "p", **doc})
    load(oracle, [{"id": "p", **doc}])
    oracle.update_one({"_id": "p", **flt}, update, array_filters=array_filters)
    got = wire.from_bson(oracle.find_one({"_id": "p"}, {"_id": 0}))
    assert close(expected, got) is None, (expected, got)


def test_positional_without_a_query_match_fails_like_secantusdb(
    oracle: wire.MongoCollection,
) -> None:
    load(oracle, [{"id": "p", "a": [1, 2]}])
    with pytest.raises(OperationFailure, match="did not find the match needed from the query"):
        oracle.update_one({"_id": "p"}, {"$set": {"a.$": 0}})
    with pytest.raises(UpdateError, match="did not find the match needed from the query"):
        apply_update(parse_update_spec({"$set": {"a.$": 0}}, parse_filter({})), {"a": [1, 2]})


# --- pins: what SecantusDB does where it departs from MongoDB ------------------------------------


def test_secantusdb_deviation_count_of_nothing(oracle: wire.MongoCollection) -> None:
    # COUNT_DOC: $count is {$group: {_id: null, n: {$sum: 1}}} then {$project: {_id: 0}}, which
    # outputs no document for no input; SecantusDB outputs a zero count.
    load(oracle, [{"id": "a", "v": 1}])
    pipeline = [{"$match": {"v": 2}}, {"$count": "n"}]
    assert raw_results(oracle, pipeline) == [{"n": 0}]
    assert server_results(oracle, pipeline) == []  # as the MongoDB backend sends it
    assert run_pipeline(parse_pipeline(pipeline), [{"id": "a", "v": 1}]) == []  # MongoDB's


def test_secantusdb_deviation_add_fields_dotted_path_through_scalar_array(
    oracle: wire.MongoCollection,
) -> None:
    # ADD_FIELDS_DOC ("equivalent to a $project that specifies all existing fields and adds the
    # new fields"): a computed field applied to an array element that is not a document replaces
    # it with a document of the computed fields, and a document element gets the field (mongo
    # src/mongo/db/exec/projection_node.cpp, applyExpressionsToValue); SecantusDB leaves the
    # array as it is.
    docs = [{"id": "a", "arr": [1, {"c": 1}]}]
    load(oracle, docs)
    pipeline = [{"$addFields": {"arr.b": 5}}]
    assert server_results(oracle, pipeline) == [{"id": "a", "arr": [1, {"c": 1}]}]
    mongodb = [{"id": "a", "arr": [{"b": 5}, {"c": 1, "b": 5}]}]
    assert run_pipeline(parse_pipeline(pipeline), docs) == mongodb


def test_secantusdb_deviation_add_fields_embedded_object_replaces(
    oracle: wire.MongoCollection,
) -> None:
    # ADD_FIELDS_DOC: an embedded object in $addFields is a set of paths ({a: {b: x}} is
    # {"a.b": x}, merged into an existing document, as in $project); SecantusDB replaces the
    # field with the object.
    docs = [{"id": "a", "specs": {"doors": 4}}]
    load(oracle, docs)
    pipeline = [{"$addFields": {"specs": {"fuel": "unleaded"}}}]
    assert raw_results(oracle, pipeline) == [{"id": "a", "specs": {"fuel": "unleaded"}}]
    mongodb = [{"id": "a", "specs": {"doors": 4, "fuel": "unleaded"}}]
    assert run_pipeline(parse_pipeline(pipeline), docs) == mongodb


POSITIONAL_DOC = "https://www.mongodb.com/docs/manual/reference/operator/update/positional-all/"


def test_secantusdb_deviation_all_positional_on_a_non_array(oracle: wire.MongoCollection) -> None:
    # POSITIONAL_DOC and mongo src/mongo/db/update/update_array_node.cpp: $[] on a field that is
    # missing ("The path 'm' must exist in the document in order to apply array updates.") or
    # not an array ("Cannot apply array updates to non-array element") fails the update;
    # SecantusDB leaves the document unchanged. asyncdb's stores apply positional updates in
    # process (read-modify-write), so they fail as MongoDB does.
    load(oracle, [{"id": "p", "s": 5}])
    for update in ({"$set": {"s.$[]": 0}}, {"$set": {"m.$[]": 0}}):
        assert oracle.update_one({"_id": "p"}, update).modified_count == 0
        with pytest.raises(UpdateError, match="array updates"):
            apply_update(parse_update_spec(update, parse_filter({})), {"id": "p", "s": 5})
    assert oracle.find_one({"_id": "p"}, {"_id": 0}) == {"id": "p", "s": 5}


def test_secantusdb_deviation_positional_skips_what_mongodb_fails(
    oracle: wire.MongoCollection,
) -> None:
    # POSITIONAL_DOC and mongo src/mongo/db/update/update_array_node.cpp, modifier_node.cpp:
    # a field below $[] in an element that is not a document ("Cannot create field 'b' in
    # element {1: 3}"), $[] below $[] on an element without the array, and $ when the query
    # matched a scalar, not an array element, fail the update; SecantusDB skips those elements
    # (applying the rest) or the whole update. This, and the case above, is all it departs in:
    # where MongoDB succeeds it agrees (POSITIONAL_CASES), so the MongoDB backend sends $set and
    # $unset of <field>.$[] / <field>.$[<id>] natively, guarded by {<field>: {$type: "array"}}.
    cases: list[tuple[Doc, Doc, Any, Doc]] = [
        ({"a": [{"b": 1}, 3]}, {}, {"$set": {"a.$[].b": 0}}, {"a": [{"b": 0}, 3]}),
        ({"a": [{"b": [1]}, {}]}, {}, {"$set": {"a.$[].b.$[]": 0}}, {"a": [{"b": [0]}, {}]}),
        ({"a": 2}, {"a": 2}, {"$set": {"a.$": 0}}, {"a": 2}),
    ]
    for doc, flt, update, secantus in cases:
        load(oracle, [{"id": "p", **doc}])
        oracle.update_one({"_id": "p", **flt}, update)
        assert oracle.find_one({"_id": "p"}, {"_id": 0, "id": 0}) == secantus
        with pytest.raises(UpdateError):
            apply_update(parse_update_spec(update, parse_filter(flt)), {"id": "p", **doc})


def test_secantusdb_deviation_field_path_through_array(oracle: wire.MongoCollection) -> None:
    # FIELD_PATH_DOC: "$n.x" on an array of documents is the array of their x values (elements
    # without x are left out); SecantusDB finds nothing (the field is missing).
    docs = [{"id": "a", "n": [{"x": 1}, {}, {"x": [2]}]}]
    load(oracle, docs)
    pipeline = [{"$project": {"x": "$n.x"}}]
    assert server_results(oracle, pipeline) == [{}]
    assert run_pipeline(parse_pipeline(pipeline), docs) == [{"x": [1, [2]]}]  # MongoDB's


FIELD_PATH_DOC = "https://www.mongodb.com/docs/manual/core/expression/#field-paths"


SUM_DOC = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/sum/"


def test_secantusdb_deviation_sum_overflow(oracle: wire.MongoCollection) -> None:
    # SUM_DOC: a sum of longs that overflows 64 bits is returned as a double; SecantusDB fails
    # the aggregation with InternalError (code 1). The MongoDB backend then runs the pipeline in
    # process (asyncdb/backends/mongo/store.py, before any result was sent).
    docs = [{"id": "a", "n": 2**62}, {"id": "b", "n": 2**62}]
    load(oracle, docs)
    pipeline = [{"$group": {"_id": None, "s": {"$sum": "$n"}}}]
    with pytest.raises(OperationFailure) as err:
        server_results(oracle, pipeline)
    assert err.value.code == 1
    assert run_pipeline(parse_pipeline(pipeline), docs) == [{"_id": None, "s": float(2**63)}]
