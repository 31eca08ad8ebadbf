"""Include and exclude projections.

https://www.mongodb.com/docs/manual/tutorial/project-fields-from-query-results/
https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#projection
The key field ("id" by default) plays the part of MongoDB's ``_id``.
"""

from __future__ import annotations

from typing import Any

from asyncdb.query.ast import Projection
from asyncdb.query.parse import parse_projection
from asyncdb.query.update import apply_projection

KEY = ("id",)
DOC: dict[str, Any] = {
    "id": "k1",
    "item": "journal",
    "status": "A",
    "size": {"h": 14, "w": 21, "uom": "cm"},
    "instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}],
}


def project(spec: Any, doc: dict[str, Any] = DOC) -> dict[str, Any]:
    return apply_projection(parse_projection(spec, KEY), doc, KEY)


def test_no_projection_returns_the_document() -> None:
    assert parse_projection(None) is None
    assert parse_projection({}) is None
    assert project(None) == DOC


def test_inclusion_returns_listed_fields_and_the_key() -> None:
    assert project({"item": 1, "status": 1}) == {"id": "k1", "item": "journal", "status": "A"}


def test_inclusion_can_exclude_the_key() -> None:
    assert project({"item": 1, "status": 1, "id": 0}) == {"item": "journal", "status": "A"}


def test_inclusion_keeps_the_document_field_order() -> None:
    assert list(project({"status": 1, "item": 1})) == ["id", "item", "status"]


def test_inclusion_of_missing_field_is_omitted() -> None:
    assert project({"nope": 1}) == {"id": "k1"}


def test_exclusion_returns_every_other_field() -> None:
    assert project({"status": 0, "instock": 0}) == {
        "id": "k1",
        "item": "journal",
        "size": {"h": 14, "w": 21, "uom": "cm"},
    }


def test_exclusion_of_only_the_key() -> None:
    out = project({"id": 0})
    assert "id" not in out and out["item"] == "journal"


def test_list_of_fields_is_an_inclusion() -> None:
    assert project(["item"]) == {"id": "k1", "item": "journal"}


def test_true_and_false_work_like_one_and_zero() -> None:
    assert project({"item": True}) == project({"item": 1})
    assert project({"item": False}) == project({"item": 0})


def test_non_zero_numbers_are_inclusion() -> None:
    # find/#projection: "Non-zero integers are also treated as true"
    assert project({"item": 5}) == {"id": "k1", "item": "journal"}
    assert project({"item": -1.5}) == {"id": "k1", "item": "journal"}
    assert project({"item": 0.0}) == project({"item": 0})


def test_projection_is_parsed_once_into_paths() -> None:
    proj = parse_projection({"a.b": 1, "c": 1})
    assert proj == Projection(include=True, paths=(("a", "b"), ("c",)))


# --- embedded documents ----------------------------------------------------------------------
# project-fields-from-query-results: "Return Specific Fields in Embedded Documents"


def test_include_field_of_embedded_document() -> None:
    assert project({"size.uom": 1}) == {"id": "k1", "size": {"uom": "cm"}}


def test_include_keeps_embedded_field_order_of_the_document() -> None:
    assert list(project({"size.w": 1, "size.h": 1})["size"]) == ["h", "w"]


def test_exclude_field_of_embedded_document() -> None:
    out = project({"size.uom": 0})
    assert out["size"] == {"h": 14, "w": 21}
    assert out["instock"] == DOC["instock"]


def test_include_path_in_document_without_the_field_keeps_an_empty_document() -> None:
    # null_query_semantics.js: {"a.b": 1} projects {a: {}} to {a: {}}
    assert project({"a.b": 1}, {"id": 1, "a": {}}) == {"id": 1, "a": {}}
    assert project({"a.b": 1}, {"id": 1, "a": {"c": 1}}) == {"id": 1, "a": {}}


def test_include_path_through_scalar_omits_the_field() -> None:
    assert project({"a.b": 1}, {"id": 1, "a": 4}) == {"id": 1}
    assert project({"a.b": 1}, {"id": 1, "a": None}) == {"id": 1}


def test_exclusion_does_not_change_the_stored_document() -> None:
    doc = {"id": 1, "a": {"b": 1, "c": 2}}
    project({"a.b": 0}, doc)
    assert doc == {"id": 1, "a": {"b": 1, "c": 2}}


# --- arrays of documents ---------------------------------------------------------------------
# project-fields-from-query-results: "Project Specific Fields in Embedded Documents in an Array"


def test_include_field_of_documents_in_array() -> None:
    assert project({"instock.qty": 1}) == {"id": "k1", "instock": [{"qty": 5}, {"qty": 15}]}


def test_exclude_field_of_documents_in_array() -> None:
    out = project({"instock.qty": 0})
    assert out["instock"] == [{"warehouse": "A"}, {"warehouse": "C"}]


def test_include_through_array_drops_scalars_and_keeps_empty_documents() -> None:
    # null_query_semantics.js: {"a.b": 1} projects [1, "string", 4] to [] and [{b: 3}, {}] as is
    doc = {"id": 1, "a": [1, {"b": 3, "c": 4}, "x", {}]}
    assert project({"a.b": 1}, doc) == {"id": 1, "a": [{"b": 3}, {}]}


def test_include_through_nested_arrays_keeps_their_shape() -> None:
    # null_query_semantics.js: {"a.b": 1} projects {a: [[]]} to {a: [[]]}
    assert project({"a.b": 1}, {"id": 1, "a": [[]]}) == {"id": 1, "a": [[]]}
    doc = {"id": 1, "a": [[{"b": 1, "c": 2}, 3]]}
    assert project({"a.b": 1}, doc) == {"id": 1, "a": [[{"b": 1}]]}


def test_exclude_through_nested_arrays() -> None:
    doc = {"id": 1, "a": [[{"b": 1, "c": 2}], 5]}
    assert project({"a.b": 0}, doc) == {"id": 1, "a": [[{"c": 2}], 5]}


def test_include_several_fields_of_array_documents() -> None:
    doc = {"id": 1, "a": [{"b": 1, "c": 2, "d": 3}]}
    assert project({"a.b": 1, "a.d": 1}, doc) == {"id": 1, "a": [{"b": 1, "d": 3}]}


def test_include_whole_array() -> None:
    assert project({"instock": 1})["instock"] == DOC["instock"]


def test_included_values_are_copies() -> None:
    out = project({"instock": 1})
    out["instock"][0]["qty"] = 99
    assert DOC["instock"][0]["qty"] == 5
