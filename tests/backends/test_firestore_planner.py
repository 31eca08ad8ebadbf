"""The Firestore planner and codec, without I/O: native filters, exactness, residual, sort
pushdown on hidden sort keys, keyset positions and the composite indexes a query needs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.backends.firestore.codec import decode_doc, doc_id, encode_doc
from asyncdb.backends.firestore.planner import (
    FirestorePlanner,
    FirestoreQuery,
    export_indexes,
)
from asyncdb.query.parse import parse_filter, parse_sort
from asyncdb.query.sort import field_key, sort_key, split_sort_key
from asyncdb.types import CollectionSpec, Index, Plan, Query

SPEC = CollectionSpec("alerts", indexes=(Index.of("status"), Index.of("n")))


def plan(flt: Any, *, spec: CollectionSpec = SPEC, **kw: Any) -> Plan:
    if "sort" in kw:
        kw["sort"] = parse_sort(kw["sort"])
    return FirestorePlanner(spec).plan(Query(parse_filter(flt), **kw))


def native(p: Plan) -> FirestoreQuery:
    payload: FirestoreQuery = p.payload
    return payload


# --- filters ----------------------------------------------------------------------------------


def test_string_equality_is_exact_as_equal_or_array_contains() -> None:
    p = plan({"status": "open"})
    assert native(p).where == (
        "or",
        (("f", "status", "==", "open"), ("f", "status", "array_contains", "open")),
    )
    assert p.exact == {"status": {"$eq": "open"}}
    assert p.residual is None and p.approximate is None
    assert p.access_path == "index:ix_status"


def test_number_equality_also_finds_equal_decimals_through_their_twins() -> None:
    p = plan({"n": 1})
    assert native(p).where == (
        "or",
        (
            ("f", "n", "==", 1),
            ("f", "n", "array_contains", 1),
            ("f", "$n:n", "array_contains", 1),
        ),
    )
    assert p.residual is None


def test_a_decimal_query_value_uses_its_twin_or_stays_residual() -> None:
    assert native(plan({"n": Decimal("2.5")})).where is not None
    assert native(plan({"n": Decimal("2.5")})).where[1][0] == ("f", "n", "==", 2.5)  # type: ignore[index]
    p = plan({"n": Decimal("0.1")})  # no double equals 0.1 exactly
    assert native(p).where is None and p.residual == {"n": {"$eq": Decimal("0.1")}}


def test_in_with_strings_is_exact_and_deduplicated() -> None:
    p = plan({"status": {"$in": ["a", "b", "a"]}})
    assert native(p).where == (
        "or",
        (("f", "status", "in", ["a", "b"]), ("f", "status", "array_contains_any", ["a", "b"])),
    )
    assert p.residual is None


def test_in_keeps_true_apart_from_one() -> None:
    where = native(plan({"n": {"$in": [True, 1, 1.0]}})).where
    assert where is not None
    assert where[1][0] == ("f", "n", "in", [True, 1])


def test_in_beyond_thirty_disjuncts_stays_residual() -> None:
    # each value is a disjunct of `in` and one of array-contains-any: 15 fit, 16 do not
    assert native(plan({"status": {"$in": [f"v{i}" for i in range(15)]}})).where is not None
    p = plan({"status": {"$in": [f"v{i}" for i in range(16)]}})
    assert native(p).where is None and p.residual is not None
    numbers = plan({"n": {"$in": list(range(11))}})  # in, array-contains-any, Decimal twins
    assert native(numbers).where is None


@pytest.mark.parametrize(
    "flt",
    [
        {"a.b": "x"},  # MongoDB follows dotted paths through arrays, Firestore does not
        {"n": {"$gt": b"a"}},  # MongoDB orders bytes by length first
        {"status": {"$ne": "x"}},  # != never matches a missing field
        {"status": None},  # null matches missing fields
        {"status": {"$exists": False}},
        {"status": {"$regex": "^a"}},
        {"status": {"x": 1}},  # Firestore map equality ignores field order
        {"status": "x" * 2000},  # beyond Firestore's indexed bytes
        {"__x__": "y"},  # a reserved name is stored escaped
    ],
)
def test_what_firestore_cannot_say_exactly_stays_residual(flt: dict[str, Any]) -> None:
    p = plan(flt)
    assert native(p).where is None
    assert p.exact is None and p.residual is not None
    assert not p.sort_pushed and not p.limit_pushed


def test_a_range_is_a_superset_keeping_arrays_and_decimals_and_is_rechecked() -> None:
    p = plan({"n": {"$gt": 5}})
    assert native(p).where == (
        "or",
        (("f", "n", ">", 5), ("f", "n", ">=", []), ("f", "$D:n", "==", True)),
    )
    assert p.exact is None and p.approximate == {"n": {"$gt": 5}}
    assert p.residual == {"n": {"$gt": 5}}
    assert not p.sort_pushed and not p.limit_pushed
    dates = plan({"ts": {"$lte": datetime(2024, 1, 1, tzinfo=UTC)}})
    where = native(dates).where
    assert where is not None and len(where[1]) == 2  # no Decimal twin for a date


def test_an_exact_conjunct_is_preferred_to_a_range() -> None:
    p = plan({"n": {"$gt": 5}, "status": "open"})
    assert p.exact == {"status": {"$eq": "open"}}
    assert p.residual == {"n": {"$gt": 5}}


def test_one_array_contains_per_query_the_rest_is_rechecked() -> None:
    p = plan({"status": "open", "team": "red"})
    assert p.exact == {"status": {"$eq": "open"}}
    assert p.residual == {"team": {"$eq": "red"}}


def test_key_equality_reads_by_document_id() -> None:
    p = plan({"id": {"$in": ["a", "b/c"]}})
    assert p.access_path == "key"
    assert native(p).ids == ("sa", "sb%2Fc")
    assert p.native == {"get": ["sa", "sb%2Fc"]}


def test_unindexed_filter_is_a_scan() -> None:
    assert plan({"team": "red"}).access_path == "scan"


# --- sort, limit, keyset --------------------------------------------------------------------


def test_sort_on_index_fields_is_pushed_when_nothing_is_rechecked() -> None:
    p = plan({"status": "open"}, sort=[("n", -1), ("id", 1)], skip=2, limit=5)
    assert p.sort_pushed and p.limit_pushed and not p.client_sort
    q = native(p)
    assert q.order_by == ("$d:n", "$a:id")
    assert (q.offset, q.limit) == (2, 5)


def test_sort_is_not_pushed_with_a_residual_or_on_an_unindexed_field() -> None:
    with_residual = plan({"status": "open", "x": {"$gt": 1}}, sort=[("n", 1)], limit=3)
    assert with_residual.client_sort and not with_residual.sort_pushed
    assert native(with_residual).limit is None
    unindexed = plan({"status": "open"}, sort=[("team", 1)])
    assert unindexed.client_sort and not unindexed.sort_pushed


def test_a_keyset_position_is_cut_into_one_value_per_sort_field() -> None:
    docs = [
        {"n": [3, "x", {"a": [1]}], "id": "k\x00"},
        {"n": None, "id": 7},
        {"n": b"\x00\xff", "id": datetime(2024, 1, 1, tzinfo=UTC)},
        {"n": Decimal("2.5"), "id": "z"},
        {"id": "missing"},
    ]
    sort = parse_sort([("n", -1), ("id", 1)])
    for doc in docs:
        parts = (field_key(doc, ("n",), -1), field_key(doc, ("id",), 1))
        assert split_sort_key(sort_key(doc, sort), (-1, 1)) == parts
    p = plan({}, sort=[("n", -1), ("id", 1)], limit=2, after=sort_key(docs[0], sort))
    assert native(p).start_after == (field_key(docs[0], ("n",), -1), field_key(docs[0], ("id",), 1))


# --- composite indexes ------------------------------------------------------------------------


def test_explain_reports_the_composite_indexes_and_exports_them() -> None:
    p = plan({"status": "open"}, sort=[("n", -1), ("id", 1)])
    indexes = p.native["composite_indexes"]
    assert len(indexes) == 2  # one per disjunct: equality, and array-contains
    assert indexes[1]["fields"] == [
        {"fieldPath": "status", "arrayConfig": "CONTAINS"},
        {"fieldPath": "`$d:n`", "order": "ASCENDING"},
        {"fieldPath": "`$a:id`", "order": "ASCENDING"},
    ]
    exported = json.loads(export_indexes([p, p, plan({"status": "x"})]))
    assert exported["indexes"] == indexes and exported["fieldOverrides"] == []


def test_a_single_field_query_needs_no_composite_index() -> None:
    assert "composite_indexes" not in plan({"status": "open"}).native


# --- codec ------------------------------------------------------------------------------------


def test_codec_round_trips_what_firestore_cannot_hold() -> None:
    doc = {
        "id": "k",
        "z": 1,
        "a": {"y": 1, "x": [[1, [2]], Decimal("1.50")]},
        "__x__": {"": 1},
    }
    stored = encode_doc(doc, ((("id",)),))
    assert stored["$o"] == ["id", "z", "a", "__x__"]
    assert "$k__x__" in stored and stored["$k__x__"] == {"$k": 1}
    back = decode_doc(dict(reversed(list(stored.items()))))
    assert back == doc and list(back) == list(doc)
    assert list(back["a"]) == ["y", "x"]
    assert type(back["a"]["x"][1]) is Decimal and str(back["a"]["x"][1]) == "1.50"


def test_document_ids_keep_types_apart_and_avoid_reserved_ids() -> None:
    assert doc_id(("1",)) != doc_id((1,))
    assert doc_id((".",)) == "s." and doc_id(("__x__",)) == "s__x__"
    assert doc_id(("a|b",)) != doc_id(("a", "b"))
    long_id = doc_id(("x" * 2000,))
    assert long_id.startswith("h") and len(long_id) == 65
