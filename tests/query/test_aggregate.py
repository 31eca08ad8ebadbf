"""The reference aggregation evaluator, case by case from MongoDB's manual (the stage, accumulator
and expression pages), and the pipeline parser's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.errors import QueryError
from asyncdb.query.aggregate import EvaluationError, evaluate, run_pipeline
from asyncdb.query.pipeline import (
    parse_expression,
    parse_pipeline,
    render_pipeline,
    split_find,
)

Doc = dict[str, Any]


def run(pipeline: list[Doc], docs: list[Doc]) -> list[Doc]:
    return run_pipeline(parse_pipeline(pipeline), docs)


def expr(spec: Any, doc: Doc | None = None) -> Any:
    return evaluate(parse_expression(spec, "x"), doc or {})


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# the sales collection of the $group manual page
SALES: list[Doc] = [
    {"_id": 1, "item": "abc", "price": Decimal("10"), "quantity": 2, "date": d(2014, 3, 1, 8)},
    {"_id": 2, "item": "jkl", "price": Decimal("20"), "quantity": 1, "date": d(2014, 3, 1, 9)},
    {"_id": 3, "item": "xyz", "price": Decimal("5"), "quantity": 10, "date": d(2014, 3, 15, 9)},
    {"_id": 4, "item": "xyz", "price": Decimal("5"), "quantity": 20, "date": d(2014, 4, 4, 11)},
    {"_id": 5, "item": "abc", "price": Decimal("10"), "quantity": 10, "date": d(2014, 4, 4, 21)},
    {"_id": 6, "item": "def", "price": Decimal("7.5"), "quantity": 5, "date": d(2015, 6, 4, 5)},
    {"_id": 7, "item": "def", "price": Decimal("7.5"), "quantity": 10, "date": d(2015, 9, 10, 8)},
    {"_id": 8, "item": "abc", "price": Decimal("10"), "quantity": 5, "date": d(2016, 2, 6, 20)},
]


# --- $group (manual: $group examples) ------------------------------------------------------------


def test_group_by_item_having_a_total_of_at_least_100() -> None:
    out = run(
        [
            {
                "$group": {
                    "_id": "$item",
                    "totalSaleAmount": {"$sum": {"$multiply": ["$price", "$quantity"]}},
                }
            },
            {"$match": {"totalSaleAmount": {"$gte": 100}}},
            {"$sort": {"_id": 1}},
        ],
        SALES,
    )
    assert out == [
        {"_id": "abc", "totalSaleAmount": Decimal("170")},
        {"_id": "def", "totalSaleAmount": Decimal("112.5")},
        {"_id": "xyz", "totalSaleAmount": Decimal("150")},
    ]


def test_group_by_null_computes_totals_over_every_document() -> None:
    out = run(
        [
            {
                "$group": {
                    "_id": None,
                    "totalSaleAmount": {"$sum": {"$multiply": ["$price", "$quantity"]}},
                    "averageQuantity": {"$avg": "$quantity"},
                    "count": {"$sum": 1},
                }
            }
        ],
        SALES,
    )
    assert out == [
        {"_id": None, "totalSaleAmount": Decimal("452.5"), "averageQuantity": 7.875, "count": 8}
    ]


def test_group_by_truncated_year_with_date_trunc() -> None:
    out = run(
        [
            {
                "$group": {
                    "_id": {"$dateTrunc": {"date": "$date", "unit": "year"}},
                    "n": {"$count": {}},
                }
            },
            {"$sort": {"_id": 1}},
        ],
        SALES,
    )
    assert out == [
        {"_id": d(2014, 1, 1), "n": 5},
        {"_id": d(2015, 1, 1), "n": 2},
        {"_id": d(2016, 1, 1), "n": 1},
    ]


def test_group_keys_follow_bson_equality() -> None:
    docs = [{"k": 1}, {"k": 1.0}, {"k": Decimal("1")}, {"k": "1"}, {"k": True}, {}, {"k": None}]
    out = run([{"$group": {"_id": "$k", "n": {"$sum": 1}}}], docs)
    # the first value seen names the group; missing and null are one group
    assert out == [
        {"_id": 1, "n": 3},
        {"_id": "1", "n": 1},
        {"_id": True, "n": 1},
        {"_id": None, "n": 2},
    ]


def test_group_by_document_key_drops_missing_fields() -> None:
    docs = [{"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": 2}]
    out = run([{"$group": {"_id": {"a": "$a", "b": "$b"}, "n": {"$sum": 1}}}], docs)
    assert out == [{"_id": {"a": 1, "b": 2}, "n": 2}, {"_id": {"a": 1}, "n": 1}]


def test_sum_follows_numeric_rules() -> None:
    def total(values: list[Any]) -> Any:
        docs = [{"v": v} for v in values]
        return run([{"$group": {"_id": None, "s": {"$sum": "$v"}}}], docs)[0]["s"]

    assert total([1, 2]) == 3 and type(total([1, 2])) is int
    assert total([1, 2.5]) == 3.5
    assert total([1, Decimal("2.5"), 0.5]) == Decimal("4.0")
    assert total(["a", None, True, [1]]) == 0  # non-numbers are ignored
    assert total([2**63 - 1, 1]) == float(2**63)  # a 64-bit overflow becomes a double
    assert run([{"$group": {"_id": None, "s": {"$sum": "$v"}}}], []) == []  # no group at all


def test_avg_ignores_non_numbers_and_is_null_without_any() -> None:
    docs = [{"v": 1}, {"v": "x"}, {"v": 2}, {}]
    assert run([{"$group": {"_id": None, "a": {"$avg": "$v"}}}], docs)[0]["a"] == 1.5
    assert run([{"$group": {"_id": None, "a": {"$avg": "$w"}}}], docs)[0]["a"] is None
    dec = run([{"$group": {"_id": None, "a": {"$avg": "$v"}}}], [{"v": Decimal("1")}, {"v": 2}])
    assert dec[0]["a"] == Decimal("1.5")


def test_min_max_use_bson_order_and_skip_nulls() -> None:
    docs = [{"v": 5}, {"v": "a"}, {"v": None}, {}, {"v": 2.5}, {"v": [1]}]
    out = run([{"$group": {"_id": None, "lo": {"$min": "$v"}, "hi": {"$max": "$v"}}}], docs)
    assert out == [{"_id": None, "lo": 2.5, "hi": [1]}]
    only_null = run([{"$group": {"_id": None, "lo": {"$min": "$v"}}}], [{"v": None}, {}])
    assert only_null[0]["lo"] is None


def test_first_last_push_and_add_to_set() -> None:
    docs = [{"v": 1}, {}, {"v": 1.0}, {"v": None}, {"v": 3}]
    out = run(
        [
            {
                "$group": {
                    "_id": None,
                    "f": {"$first": "$v"},
                    "l": {"$last": "$v"},
                    "p": {"$push": "$v"},
                    "s": {"$addToSet": "$v"},
                }
            }
        ],
        docs,
    )
    # $push and $addToSet skip missing values (null is a value); $addToSet uses BSON equality
    assert out == [{"_id": None, "f": 1, "l": 3, "p": [1, 1.0, None, 3], "s": [1, None, 3]}]
    assert run([{"$group": {"_id": None, "f": {"$first": "$w"}}}], docs)[0]["f"] is None


# --- other stages --------------------------------------------------------------------------------


def test_unwind_with_index_and_preserve() -> None:
    docs = [
        {"_id": 1, "sizes": ["S", "M"]},
        {"_id": 2, "sizes": []},
        {"_id": 3, "sizes": None},
        {"_id": 4},
        {"_id": 5, "sizes": "L"},
    ]
    plain = run([{"$unwind": "$sizes"}], docs)
    assert plain == [{"_id": 1, "sizes": "S"}, {"_id": 1, "sizes": "M"}, {"_id": 5, "sizes": "L"}]
    kept = run(
        [
            {
                "$unwind": {
                    "path": "$sizes",
                    "includeArrayIndex": "i",
                    "preserveNullAndEmptyArrays": True,
                }
            }
        ],
        docs,
    )
    assert [(x["_id"], x.get("sizes", "-"), x["i"]) for x in kept] == [
        (1, "S", 0),
        (1, "M", 1),
        (2, "-", None),  # the manual's "Shorts": the empty array is dropped
        (3, None, None),
        (4, "-", None),
        (5, "L", None),
    ]


def test_project_inclusion_keeps_id_and_document_order() -> None:
    doc = {"_id": 1, "b": 2, "a": {"x": 1, "y": 2}, "c": [{"x": 1, "z": 3}, 5]}
    assert run([{"$project": {"a.x": 1, "b": 1}}], [doc]) == [{"_id": 1, "b": 2, "a": {"x": 1}}]
    assert run([{"$project": {"_id": 0, "c.x": 1}}], [doc]) == [{"c": [{"x": 1}]}]
    computed = run([{"$project": {"_id": 0, "sum": {"$add": ["$b", 1]}, "b": 1}}], [doc])
    assert computed == [{"b": 2, "sum": 3}]


def test_project_exclusion_and_mixing_is_rejected() -> None:
    doc = {"_id": 1, "a": {"x": 1, "y": 2}, "b": 2}
    assert run([{"$project": {"a.x": 0, "_id": 0}}], [doc]) == [{"a": {"y": 2}, "b": 2}]
    with pytest.raises(QueryError) as err:
        parse_pipeline([{"$project": {"a": 1, "b": 0}}])
    assert err.value.path == "pipeline[0].$project"


def test_add_fields_sets_nested_paths_and_merges_documents() -> None:
    doc = {"_id": 1, "specs": {"doors": 4}, "arr": [{"a": 1}, 2]}
    out = run([{"$addFields": {"specs.fuel": "unleaded", "arr.b": 1}}], [doc])
    # through an array: each element gets the field, a scalar element becomes a document
    assert out == [
        {"_id": 1, "specs": {"doors": 4, "fuel": "unleaded"}, "arr": [{"a": 1, "b": 1}, {"b": 1}]}
    ]
    merged = run([{"$set": {"specs": {"wheels": 4}}}], [doc])
    assert merged[0]["specs"] == {"doors": 4, "wheels": 4}
    assert run([{"$set": {"specs": "$missing"}}], [doc]) == [{"_id": 1, "arr": doc["arr"]}]


def test_count_sort_by_count_skip_limit_and_facet() -> None:
    docs = [{"t": t} for t in ["a", "b", "a", "c", "a", "b"]]
    assert run([{"$count": "n"}], docs) == [{"n": 6}]
    assert run([{"$match": {"t": "z"}}, {"$count": "n"}], docs) == []
    assert run([{"$sortByCount": "$t"}], docs)[:2] == [
        {"_id": "a", "count": 3},
        {"_id": "b", "count": 2},
    ]
    assert run([{"$skip": 4}, {"$limit": 1}], docs) == [{"t": "a"}]
    facet = run(
        [{"$facet": {"n": [{"$count": "n"}], "top": [{"$sortByCount": "$t"}, {"$limit": 1}]}}], docs
    )
    assert facet == [{"n": [{"n": 6}], "top": [{"_id": "a", "count": 3}]}]
    assert run([{"$facet": {"n": [{"$count": "n"}]}}], []) == [{"n": []}]


def test_sort_uses_bson_order_and_is_stable() -> None:
    docs = [
        {"i": 0, "v": "a"},
        {"i": 1, "v": 2},
        {"i": 2},
        {"i": 3, "v": 2.0},
        {"i": 4, "v": [0, 9]},
    ]
    out = run([{"$sort": {"v": 1}}], docs)
    assert [x["i"] for x in out] == [2, 4, 1, 3, 0]  # missing, [0..] by its least, 2 == 2.0, str
    top = run([{"$sort": {"v": -1}}, {"$limit": 2}], docs)
    assert [x["i"] for x in top] == [0, 4]


# --- expressions (manual: the operator pages) ----------------------------------------------------


def test_arithmetic_expressions() -> None:
    assert expr({"$add": [1, 2.5]}) == 3.5
    assert expr({"$add": [d(2024, 1, 1), 86_400_000]}) == d(2024, 1, 2)
    assert expr({"$add": [1, "$missing"]}) is None
    assert expr({"$subtract": [d(2024, 1, 2), d(2024, 1, 1)]}) == 86_400_000
    assert expr({"$multiply": [Decimal("1.5"), 2]}) == Decimal("3.0")
    assert expr({"$divide": [7, 2]}) == 3.5 and type(expr({"$divide": [4, 2]})) is float
    assert expr({"$mod": [-7, 3]}) == -1  # the dividend's sign, as the manual shows
    assert expr({"$mod": [7.5, 2]}) == 1.5
    for bad in ({"$add": [1, "a"]}, {"$divide": [1, 0]}, {"$mod": [1, 0]}):
        with pytest.raises(EvaluationError):
            expr(bad)


def test_string_expressions() -> None:
    assert expr({"$concat": ["a", "$s", "c"]}, {"s": "b"}) == "abc"
    assert expr({"$concat": ["a", "$missing"]}) is None
    assert expr({"$toLower": "ÀBc"}) == "Àbc"  # ASCII letters only
    assert expr({"$toUpper": "$missing"}) == ""
    assert expr({"$toUpper": 2.5}) == "2.5"
    with pytest.raises(EvaluationError):
        expr({"$concat": ["a", 1]})


def test_conditional_and_comparison_expressions() -> None:
    assert expr({"$cond": {"if": {"$gte": ["$q", 250]}, "then": 30, "else": 20}}, {"q": 300}) == 30
    assert expr({"$cond": [[], "yes", "no"]}) == "yes"  # an empty array is true
    assert expr({"$cond": [0.0, "yes", "no"]}) == "no"
    assert expr({"$ifNull": ["$a", "$b", "dflt"]}, {"b": None}) == "dflt"
    assert expr({"$eq": ["$missing", None]}) is False  # missing is below null in expressions
    assert expr({"$lt": ["$missing", None]}) is True
    assert expr({"$gt": ["a", 5]}) is True  # strings sort after numbers
    assert expr({"$eq": [1, 1.0]}) is True
    assert expr({"$and": [1, "x", True]}) is True and expr({"$and": []}) is True
    assert expr({"$or": [0, None, "$missing"]}) is False
    assert expr({"$not": [[]]}) is False


def test_size_literal_set_field_and_variables() -> None:
    doc = {"a": [1, 2, 3], "b": {"c": 1}}
    assert expr({"$size": "$a"}, doc) == 3
    with pytest.raises(EvaluationError):
        expr({"$size": "$b"}, doc)
    assert expr({"$literal": "$a"}) == "$a"
    assert expr({"$setField": {"field": "n", "input": "$b", "value": 2}}, doc) == {"c": 1, "n": 2}
    assert expr({"$setField": {"field": "c", "input": "$b", "value": "$none"}}, doc) == {}
    assert expr("$$ROOT", doc) == doc and expr("$$CURRENT.b.c", doc) == 1
    assert expr("$a.x", {"a": [{"x": 1}, 2, {"x": [3]}, {}]}) == [1, [3]]


def test_date_trunc_units_bins_and_weeks() -> None:
    t = d(2024, 5, 17, 13, 45, 30)
    assert expr({"$dateTrunc": {"date": t, "unit": "hour"}}) == d(2024, 5, 17, 13)
    assert expr({"$dateTrunc": {"date": t, "unit": "month", "binSize": 3}}) == d(2024, 4, 1)
    assert expr({"$dateTrunc": {"date": t, "unit": "quarter"}}) == d(2024, 4, 1)
    # weeks start on Sunday by default; binned from 2000-01-02 (the first Sunday of 2000)
    assert expr({"$dateTrunc": {"date": t, "unit": "week"}}) == d(2024, 5, 12)
    assert expr({"$dateTrunc": {"date": t, "unit": "week", "binSize": 2}}) == d(2024, 5, 5)
    week = {"date": t, "unit": "week", "startOfWeek": "monday"}
    assert expr({"$dateTrunc": week}) == d(2024, 5, 13)
    local = {"date": t, "unit": "day", "timezone": "+05:00"}
    assert expr({"$dateTrunc": local}) == d(2024, 5, 16, 19)
    assert expr({"$dateTrunc": {"date": "$missing", "unit": "day"}}) is None


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pipeline", "path"),
    [
        ([{"$match": {}}, {"$out": "x"}], "pipeline[1].$out"),
        ([{"$group": {"_id": 1, "n": {"$median": "$a"}}}], "pipeline[0].$group.n.$median"),
        (
            [{"$project": {"x": {"$regexMatch": {"input": "$a"}}}}],
            "pipeline[0].$project.x.$regexMatch",
        ),
        ([{"$match": {"a": {"$where": "1"}}}], "pipeline[0].$match.a.$where"),
        ([{"$limit": 0}], "pipeline[0].$limit"),
        ([{"$group": {"n": {"$sum": 1}}}], "pipeline[0].$group"),
        ([{"$facet": {"f": [{"$facet": {}}]}}], "pipeline[0].$facet.f[0].$facet"),
        ([{"$set": {"x": "$$NOW"}}], "pipeline[0].$set.x"),
        ([{"$unwind": "a"}], "pipeline[0].$unwind"),
        ([{"$sort": {"a": 2}}], "pipeline[0].$sort"),
        ([{"$match": {}, "$limit": 1}], "pipeline[0]"),
    ],
)
def test_rejected_before_any_io_naming_the_stage_path(pipeline: list[Doc], path: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_pipeline(pipeline)
    assert err.value.path == path


def test_split_find_pushes_the_leading_match_sort_skip_and_limit() -> None:
    p = parse_pipeline(
        [
            {"$match": {"a": 1}},
            {"$match": {"b": 2}},
            {"$sort": {"t": -1}},
            {"$skip": 2},
            {"$limit": 5},
            {"$group": {"_id": "$c"}},
        ]
    )
    down = split_find(p)
    assert down.filter.to_mongo() == {"$and": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}
    assert (down.skip, down.limit, len(down.rest)) == (2, 5, 1)
    later = split_find(parse_pipeline([{"$limit": 5}, {"$skip": 2}, {"$count": "n"}]))
    assert (later.skip, later.limit, len(later.rest)) == (2, 3, 1)


def test_rendered_pipeline_parses_back_to_the_same_ast() -> None:
    p = parse_pipeline(
        [
            {"$match": {"a": {"$gt": 1}}},
            {"$project": {"_id": 0, "a": 1, "x": {"$cond": [{"$gt": ["$a", 2]}, "$a", None]}}},
            {"$unwind": {"path": "$a", "includeArrayIndex": "i"}},
            {"$group": {"_id": {"k": "$a"}, "n": {"$count": {}}, "s": {"$addToSet": "$x"}}},
            {"$sortByCount": "$_id.k"},
            {"$facet": {"f": [{"$count": "n"}]}},
        ]
    )
    assert parse_pipeline(render_pipeline(p)) == p
