"""Positional updates (``$``, ``$[]``, ``$[<identifier>]`` with array_filters) and pipeline updates
in the update applier, case by case from MongoDB's manual (the positional operator pages and
"Updates with Aggregation Pipeline"), with MongoDB's errors."""

from __future__ import annotations

from typing import Any

import pytest

from asyncdb.errors import QueryError, UpdateError
from asyncdb.query import apply_update, parse_filter
from asyncdb.query.pipeline import parse_update_spec

Doc = dict[str, Any]


def updated(
    doc: Doc, update: Any, filter: Doc | None = None, array_filters: Any = None, **kw: Any
) -> Doc:
    parsed = parse_update_spec(update, parse_filter(filter or {}), array_filters)
    return apply_update(parsed, doc, **kw)


def test_dollar_updates_the_first_element_the_query_matched() -> None:
    doc = {"_id": 1, "grades": [85, 80, 80]}
    assert updated(doc, {"$set": {"grades.$": 82}}, {"_id": 1, "grades": 80})["grades"] == [
        85,
        82,
        80,
    ]


def test_dollar_in_an_array_of_documents() -> None:
    doc = {
        "grades": [
            {"grade": 80, "mean": 75, "std": 8},
            {"grade": 85, "mean": 90, "std": 5},
            {"grade": 85, "mean": 85, "std": 8},
        ]
    }
    out = updated(doc, {"$set": {"grades.$.std": 6}}, {"grades.grade": 85})
    assert [g["std"] for g in out["grades"]] == [8, 6, 8]
    # several conditions on the array: the element that meets them all ($elemMatch too)
    both = {"grades.grade": {"$lte": 90}, "grades.mean": {"$gt": 80}}
    assert updated(doc, {"$inc": {"grades.$.std": 1}}, both)["grades"][1]["std"] == 6
    em = {"grades": {"$elemMatch": {"grade": {"$lte": 90}, "mean": {"$gt": 85}}}}
    assert updated(doc, {"$set": {"grades.$.std": 0}}, em)["grades"][1]["std"] == 0


def test_dollar_without_a_query_match_is_mongodbs_error() -> None:
    doc = {"grades": [1, 2]}
    for flt in ({}, {"other": 1}, {"grades": {"$ne": 5}}):
        with pytest.raises(UpdateError, match="did not find the match"):
            updated(doc, {"$set": {"grades.$": 0}}, flt)
    with pytest.raises(UpdateError, match="did not find the match"):  # an upsert's insert
        updated({}, {"$set": {"grades.$": 0}}, {"grades": 1}, is_insert=True)


def test_all_positional_updates_every_element() -> None:
    doc = {"grades": [85, 82, 80], "nested": [{"q": [1, 2]}, {"q": [3]}]}
    assert updated(doc, {"$inc": {"grades.$[]": 10}})["grades"] == [95, 92, 90]
    assert updated(doc, {"$inc": {"nested.$[].q.$[]": 1}})["nested"] == [{"q": [2, 3]}, {"q": [4]}]
    assert updated(doc, {"$unset": {"nested.$[].q": 1}})["nested"] == [{}, {}]
    assert updated({"a": []}, {"$set": {"a.$[]": 1}}) == {"a": []}


def test_all_positional_needs_an_existing_array() -> None:
    with pytest.raises(UpdateError, match="must exist"):
        updated({}, {"$set": {"a.$[]": 1}})
    with pytest.raises(UpdateError, match="cannot apply array updates"):
        updated({"a": 5}, {"$set": {"a.$[]": 1}})


def test_filtered_positional_updates_the_elements_its_filter_matches() -> None:
    doc = {"grades": [95, 102, 90, 150]}
    out = updated(doc, {"$set": {"grades.$[element]": 100}}, None, [{"element": {"$gte": 100}}])
    assert out["grades"] == [95, 100, 90, 100]
    docs = {"grades": [{"grade": 80, "mean": 75}, {"grade": 85, "mean": 100}]}
    out = updated(
        docs, {"$set": {"grades.$[elem].mean": 100}}, None, [{"elem.grade": {"$gte": 85}}]
    )
    assert out["grades"] == [{"grade": 80, "mean": 75}, {"grade": 85, "mean": 100}]


def test_nested_filtered_positional_operators() -> None:
    doc = {
        "degrees": [
            {"level": "Master", "gpa": [3.0, 3.8]},
            {"level": "Bachelor", "gpa": [3.9, 2.0]},
        ]
    }
    out = updated(
        doc,
        {"$inc": {"degrees.$[d].gpa.$[g]": 0.5}},
        None,
        [{"d.level": "Bachelor"}, {"g": {"$gte": 3}}],
    )
    assert out["degrees"][1]["gpa"] == [4.4, 2.0] and out["degrees"][0]["gpa"] == [3.0, 3.8]


def test_upsert_with_all_positional_uses_the_equality_on_the_array() -> None:
    seed = {"myArray": [5, 8]}
    out = updated(seed, {"$set": {"myArray.$[]": 10}}, seed, is_insert=True)
    assert out == {"myArray": [10, 10]}


@pytest.mark.parametrize(
    ("update", "array_filters", "message"),
    [
        ({"$set": {"a.$[x]": 1}}, None, "no array filter for the identifier 'x'"),
        ({"$set": {"a": 1}}, [{"x": 1}], "is not used in the update"),
        ({"$set": {"a.$[x]": 1}}, [{"x": 1}, {"x": 2}], "several array filters"),
        ({"$set": {"a.$[x]": 1}}, [{"x": 1, "y": 2}], "one top-level field name"),
        ({"$set": {"a.$[X]": 1}}, [{"X": 1}], "lowercase letter"),
        ({"$set": {"a.$[1x]": 1}}, [{"1x": 1}], "lowercase letter"),
        ({"$set": {"a.$.b.$": 1}}, None, "too many positional"),
        ({"$set": {"$[].a": 1}}, None, "cannot be the first part"),
        ({"$rename": {"a.$": "b"}}, None, "cannot move a positional path"),
        ([{"$set": {"a": 1}}], [{"x": 1}], "pipeline update"),
        ({"$set": {"a.$[x]": 1}}, {"x": 1}, "a list of filters"),
    ],
)
def test_positional_errors_before_any_io(update: Any, array_filters: Any, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_update_spec(update, parse_filter({}), array_filters)


def test_pipeline_update_computes_from_the_document() -> None:
    doc = {"id": "1", "a": 2, "b": 3, "old": True, "tags": ["x"]}
    out = updated(
        doc,
        [
            {"$set": {"total": {"$add": ["$a", "$b"]}, "n": {"$size": "$tags"}}},
            {"$unset": ["old"]},
            {"$addFields": {"double": {"$multiply": ["$total", 2]}}},
        ],
    )
    assert out == {"id": "1", "a": 2, "b": 3, "tags": ["x"], "total": 5, "n": 1, "double": 10}
    replaced = updated(doc, [{"$replaceWith": {"id": "$id", "sum": {"$add": ["$a", "$b"]}}}])
    assert replaced == {"id": "1", "sum": 5}
    projected = updated(doc, [{"$project": {"id": 1, "a": 1}}])
    assert projected == {"id": "1", "a": 2}


def test_pipeline_update_errors_are_update_errors() -> None:
    with pytest.raises(UpdateError):
        updated({"a": "x"}, [{"$set": {"b": {"$add": ["$a", 1]}}}])
    with pytest.raises(UpdateError, match="needs a document"):
        updated({"a": 1}, [{"$replaceWith": "$a"}])
    with pytest.raises(QueryError) as err:
        parse_update_spec([{"$group": {"_id": 1}}], parse_filter({}))
    assert err.value.path == "update[0].$group"
    with pytest.raises(QueryError):
        parse_update_spec([], parse_filter({}))


def test_pipeline_update_cannot_compute_a_field_name_an_insert_refuses() -> None:
    # $setField can name a field "$a" or "a.b"; an insert refuses those names (the documented
    # deviation), so the update fails before anything is written, on every backend alike
    for name in ("$a", "a.b"):
        stage = {"$setField": {"field": {"$literal": name}, "value": 1, "input": "$$ROOT"}}
        with pytest.raises(UpdateError, match="field names must not") as err:
            updated({"id": "1", "foo": {}}, [{"$replaceWith": stage}])
        assert err.value.path == name
    nested = {"$setField": {"field": {"$literal": "$b"}, "value": 1, "input": "$foo"}}
    with pytest.raises(UpdateError, match="must not start") as err:
        updated({"id": "1", "foo": {}}, [{"$set": {"foo": nested}}])
    assert err.value.path == "foo.$b"
