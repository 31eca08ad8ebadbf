"""The MongoDB planner without a server: the native find, and the exact/approximate/residual split.

Server-dependent filter forms (tests/conformance/test_mongo_wire_oracle.py pins each on
SecantusDB) must never be sent as exact; everything else goes through natively.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.backends.base import expiry_filter
from asyncdb.backends.mongo.planner import (
    Find,
    MongoPlanner,
    inexact_number,
    native_projection,
    native_update,
    server_dependent,
    upsert_filter,
    widened,
)
from asyncdb.query.ast import And, FieldNode
from asyncdb.query.parse import parse_filter, parse_projection, parse_sort, parse_update
from asyncdb.types import CollectionSpec, Index, Query

SPEC = CollectionSpec("t", indexes=(Index.of("status"),))
COMPOSITE = CollectionSpec("c", key=("tenant", "n"))


def plan(flt: dict[str, Any], spec: CollectionSpec = SPEC, **kw: Any) -> Any:
    sort = kw.pop("sort", None)
    query = Query(parse_filter(flt), parse_sort(sort) if sort else (), **kw)
    return MongoPlanner(spec).plan(query)


def test_key_equality_is_an_id_lookup() -> None:
    p = plan({"id": "a1"})
    assert p.native == {"filter": {"_id": {"$eq": "a1"}}}
    assert p.access_path == "key" and p.residual is None
    assert p.exact == {"id": {"$eq": "a1"}}


def test_composite_key_fields_are_addressed_at_the_top_level() -> None:
    p = plan({"tenant": "x", "n": 1}, COMPOSITE)
    assert p.native["filter"] == {"$and": [{"tenant": {"$eq": "x"}}, {"n": {"$eq": 1}}]}
    assert p.access_path == "key"


@pytest.mark.parametrize(
    ("flt", "native"),
    [
        ({"a": {"$gt": 4}}, {"a": {"$gt": 4}}),
        ({"a": {"$ne": None}}, {"a": {"$ne": None}}),
        ({"a": None}, {"a": {"$eq": None}}),
        ({"a.b": 1}, {"a.b": {"$eq": 1}}),
        ({"a": {"$in": [1, "x"]}}, {"a": {"$in": [1, "x"]}}),
        ({"a": {"$nin": [1]}}, {"a": {"$nin": [1]}}),
        ({"a": {"$regex": "^x", "$options": "i"}}, {"a": {"$regex": "^x", "$options": "i"}}),
        ({"a": {"$not": {"$gt": 1, "$lt": 5}}}, {"a": {"$not": {"$gt": 1, "$lt": 5}}}),
        ({"a": {"$size": 2}}, {"a": {"$size": 2}}),
        ({"a": {"$type": "string"}}, {"a": {"$type": "string"}}),
        ({"a": {"$all": [1, 2]}}, {"a": {"$all": [1, 2]}}),
        ({"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}}, {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}}),
        ({"a": 1.5}, {"a": {"$eq": 1.5}}),
        ({"a": {"$exists": False}}, {"a": {"$exists": False}}),
    ],
)
def test_portable_conditions_pass_through_exactly(flt: dict[str, Any], native: Any) -> None:
    p = plan(flt)
    assert p.native["filter"] == native
    assert p.residual is None and p.approximate is None


def test_or_and_nor_of_exact_terms_are_exact() -> None:
    p = plan({"$or": [{"a": 1}, {"b": {"$gt": 2}}], "$nor": [{"c": "x"}]})
    assert p.residual is None
    assert p.native["filter"] == {
        "$and": [
            {"$or": [{"a": {"$eq": 1}}, {"b": {"$gt": 2}}]},
            {"$nor": [{"c": {"$eq": "x"}}]},
        ]
    }


@pytest.mark.parametrize(
    "flt",
    [
        {"a.b": None},  # MongoDB 9.0 changed it (SERVER-36681); SecantusDB keeps the old rule
        {"a.b": {"$ne": None}},
        {"a.b": {"$in": [None, 5]}},
        {"a.b": {"$gte": None}},
        {"a": {"$all": [None]}},
        {"a": {"$all": [[1, 2]]}},
        {"a": {"$elemMatch": {"$or": [{"c": 4}, {"c": 5}]}}},
        {"a": {"$elemMatch": {"b": None}}},
        {"a.0": {"$mod": [42, 0]}},
        {"n": {"$mod": [2, 0]}},
        {"s": {"$lte": b"a"}},
        {"v": Decimal("0.1")},
        {"v": 0.1},
        {"v": {"$lt": 0.1}},
        {"v": {"$in": [0.1, 3]}},
        {"v": [0.1]},
    ],
)
def test_server_dependent_forms_are_rechecked(flt: dict[str, Any]) -> None:
    p = plan(flt)
    assert p.exact is None
    assert p.residual == parse_filter(flt).to_mongo()
    node = parse_filter(flt)
    assert isinstance(node, FieldNode) and server_dependent(node) is not None


def test_supersets_for_server_dependent_forms() -> None:
    assert plan({"n": {"$mod": [2, 0]}}).native["filter"] == {"n": {"$type": "number"}}
    assert plan({"s": {"$gt": b"a"}}).native["filter"] == {"s": {"$type": "binData"}}
    assert plan({"a": {"$elemMatch": {"b": 1}}}).native["filter"] == {"a": {"$exists": True}}
    assert plan({"a.b": None}).native["filter"] == {}
    gt = plan({"v": {"$gt": 0.1}}).native["filter"]["v"]
    assert list(gt) == ["$gte"] and gt["$gte"] < 0.1
    eq = plan({"v": Decimal("2.5")}).native["filter"]["v"]
    assert eq["$gte"] < Decimal("2.5") < eq["$lte"]
    assert plan({"v": 0.1}).approximate == {"v": {"$eq": 0.1}}


def test_negated_superset_is_not_pushed() -> None:
    # the negation of a superset would lose matches
    assert plan({"v": {"$ne": 0.1}}).native["filter"] == {}
    assert plan({"$nor": [{"n": {"$mod": [2, 0]}}]}).native["filter"] == {}
    assert plan({"a": {"$not": {"$mod": [2, 0]}}}).native["filter"] == {}


def test_inexact_numbers() -> None:
    assert inexact_number(0.1) and inexact_number(Decimal("1"))
    assert not inexact_number(1.5) and not inexact_number(2.0) and not inexact_number(3)
    assert not inexact_number(True)
    assert widened(0.1, -1) < 0.1 < widened(0.1, 1)


def test_exact_and_inexact_conjuncts_split() -> None:
    p = plan({"status": "open", "n": {"$mod": [3, 1]}})
    assert p.exact == {"status": {"$eq": "open"}}
    assert p.residual == {"n": {"$mod": [3, 1]}}
    assert p.native["filter"] == {"$and": [{"status": {"$eq": "open"}}, {"n": {"$type": "number"}}]}
    assert p.access_path == "index:ix_status"


def test_or_with_a_residual_branch_is_dropped_whole() -> None:
    p = plan({"$or": [{"a": 1}, {"a.b": None}]})
    assert p.native["filter"] == {}
    assert p.residual is not None


def test_sort_skip_limit_are_pushed_when_nothing_is_rechecked() -> None:
    p = plan({"status": "open"}, sort=[("n", -1), ("id", 1)], skip=5, limit=10)
    find: Find = p.payload
    assert find == Find({"status": {"$eq": "open"}}, [("n", -1), ("_id", 1)], 5, 10)
    assert p.sort_pushed and p.limit_pushed and not p.client_sort


def test_sort_is_pushed_but_limit_is_not_with_a_residual() -> None:
    p = plan({"n": {"$mod": [2, 0]}}, sort=[("n", 1), ("id", 1)], limit=3)
    assert p.sort_pushed and not p.limit_pushed and not p.client_sort
    assert p.payload.limit == 0


def test_dotted_sort_runs_in_process() -> None:
    p = plan({}, sort=[("a.b", 1), ("id", 1)], limit=3)
    assert p.client_sort and not p.sort_pushed and not p.limit_pushed
    assert p.payload.sort == [("_id", 1)]


def test_keyset_position_off_the_key_is_checked_in_process_over_the_native_order() -> None:
    p = plan({}, sort=[("n", 1), ("id", 1)], limit=3, after=b"\x14")
    assert not p.sort_pushed and not p.client_sort and not p.limit_pushed
    assert p.payload.sort == [("n", 1), ("_id", 1)]


def test_ttl_expiry_condition_is_pushed_exactly() -> None:
    spec = CollectionSpec("ttl", ttl="expires_at")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expiry = expiry_filter(spec, now)
    assert expiry is not None
    p = MongoPlanner(spec).plan(Query(And((parse_filter({"id": "a"}), expiry))))
    assert p.residual is None
    assert p.native["filter"] == {
        "$and": [{"_id": {"$eq": "a"}}, {"expires_at": {"$not": {"$lte": now}}}]
    }


def test_keyset_position_on_the_key_is_a_native_range() -> None:
    from asyncdb.query.sort import sort_key

    sort = parse_sort([("id", 1)])
    after = sort_key({"id": "k05"}, sort)
    p = MongoPlanner(SPEC).plan(Query(parse_filter({}), sort, limit=3, after=after))
    assert p.sort_pushed and p.limit_pushed
    assert p.native["filter"] == {"$or": [{"_id": {"$gt": "k05"}}, {"_id": {"$type": ["date"]}}]}


def test_keyset_position_on_a_composite_key_descending() -> None:
    from asyncdb.query.sort import sort_key

    sort = parse_sort([("tenant", -1), ("n", 1)])
    when = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    after = sort_key({"tenant": when, "n": 7}, sort)
    p = MongoPlanner(COMPOSITE).plan(Query(parse_filter({}), sort, after=after))
    assert p.native["filter"] == {
        "$or": [
            {"$or": [{"tenant": {"$lt": when}}, {"tenant": {"$type": ["number", "string"]}}]},
            {
                "$and": [
                    {"tenant": {"$eq": when}},
                    {"$or": [{"n": {"$gt": 7}}, {"n": {"$type": ["string", "date"]}}]},
                ]
            },
        ]
    }


@pytest.mark.parametrize(
    ("pattern", "portable"),
    [
        ("^ab", True),
        (r"a\.b|c$", True),
        ("(?:x|y)[a-z]+", True),
        (r"\d+", False),  # Unicode digits in Python, ASCII in PCRE
        (r"\w", False),
        ("é", False),
        ("a{,3}", False),  # a quantifier in Python 3.11, literal text in PCRE
        (r"\Z", False),
        ("(?P<n>a)", False),
        ("x[:alpha:]", False),  # a POSIX class inside brackets in PCRE
    ],
)
def test_regex_is_exact_only_in_the_syntax_both_engines_share(pattern: str, portable: bool) -> None:
    p = plan({"s": {"$regex": pattern}})
    if portable:
        assert p.native["filter"] == {"s": {"$regex": pattern}} and p.residual is None
    else:
        assert p.native["filter"] == {"s": {"$type": "string"}}
        assert p.residual == {"s": {"$regex": pattern}}


# --- native updates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "native"),
    [
        ({"$set": {"a": 1, "b": "x"}}, {"$set": {"a": 1, "b": "x"}}),
        ({"$set": {"a": [1, {"p": None}]}, "$unset": {"b": ""}}, None),  # checked below
        ({"$setOnInsert": {"s": True}}, {"$setOnInsert": {"s": True}}),
    ],
)
def test_top_level_set_and_unset_run_on_the_server(update: Any, native: Any) -> None:
    expected = native if native is not None else update
    assert native_update(parse_update(update), SPEC) == expected


@pytest.mark.parametrize(
    "update",
    [
        {"$inc": {"n": 1}},  # fails on a string: the applier checks every document first
        {"$set": {"n.x": 1}},  # fails where n is a scalar
        {"$set": {"f": 1.5}},  # -0.0/NaN: the server and the applier count "modified" apart
        {"$set": {"d": Decimal("1.0")}},  # exponent changes: likewise
        {"$set": {"t": datetime(2026, 1, 1, tzinfo=UTC)}},  # milliseconds: likewise
        {"$set": {"id": "k"}},  # the key cannot change: the applier raises
        {"$set": {"b": 1, "a": 1}},  # MongoDB 5.0+ applies paths in lexicographic order
        {"$push": {"arr": 1}},
        {"$currentDate": {"c": True}},
    ],
)
def test_updates_the_server_may_apply_differently_stay_in_process(update: Any) -> None:
    assert native_update(parse_update(update), SPEC) is None


def test_replacement_stays_in_process() -> None:
    from asyncdb.query.parse import parse_replacement

    assert native_update(parse_replacement({"a": 1}), SPEC) is None


def test_upsert_filter_puts_id_first_then_the_sorted_equalities() -> None:
    assert upsert_filter(parse_filter({"id": "k", "s": "v"}), SPEC) == {
        "_id": "k",
        "id": "k",
        "s": "v",
    }
    # SecantusDB seeds the new document in lexicographic order, the applier in the filter's
    assert upsert_filter(parse_filter({"s": "v", "id": "k"}), SPEC) is None
    assert upsert_filter(parse_filter({"s": "v"}), SPEC) is None  # a new key is made in process
    assert upsert_filter(parse_filter({"id": "k", "n": {"$gt": 1}}), SPEC) is None
    assert upsert_filter(parse_filter({"id": "k", "f": 1.5}), SPEC) is None
    assert upsert_filter(parse_filter({"tenant": "x", "n": 1}), COMPOSITE) is None


# --- projection -------------------------------------------------------------------------------


def test_inclusion_keeps_whole_top_level_fields_the_key_and_what_runs_in_process() -> None:
    p = plan({"s": {"$mod": [2, 0]}}, projection=parse_projection({"a.b": 1, "c": 1}))
    # $mod is residual: its field comes back too, apply_projection runs again in process
    assert p.native["projection"] == {"a": 1, "c": 1, "id": 1, "s": 1}


def test_exclusion_drops_only_top_level_fields_nothing_in_process_reads() -> None:
    proj = parse_projection({"a": 0, "b.c": 0, "s": 0})
    p = plan({"s": {"$mod": [2, 0]}}, projection=proj)
    assert p.native["projection"] == {"a": 0}
    assert "projection" not in plan({}, projection=parse_projection({"b.c": 0})).native


def test_no_projection_no_native_projection() -> None:
    assert native_projection(None, SPEC, set()) is None


# --- keyset pages on non-key sorts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "value", "condition"),
    [
        (1, "m", {"$not": {"$lt": "m"}}),
        (-1, "m", {"$not": {"$gt": "m"}}),
        (1, datetime(2026, 1, 1, tzinfo=UTC), {"$not": {"$lt": datetime(2026, 1, 1, tzinfo=UTC)}}),
        (1, 0.5, {"$not": {"$lt": widened(0.5, -1)}}),
        (-1, 7, {"$not": {"$gt": widened(7.0, 1)}}),
    ],
)
def test_a_non_key_position_is_a_native_superset_rechecked_in_process(
    direction: int, value: Any, condition: Any
) -> None:
    from asyncdb.query.sort import sort_key

    sort = parse_sort([("s", direction), ("id", 1)])
    after = sort_key({"s": value, "id": "k"}, sort)
    p = MongoPlanner(SPEC).plan(Query(parse_filter({}), sort, limit=3, after=after))
    assert p.native["filter"] == {"s": condition}
    # the exact position stays in process: no pushed sort, no pushed limit
    assert not p.sort_pushed and not p.limit_pushed


def test_a_position_on_other_types_stays_in_process() -> None:
    from asyncdb.query.sort import sort_key

    sort = parse_sort([("s", 1), ("id", 1)])
    for value in (None, True, [], {"x": 1}):
        after = sort_key({"s": value, "id": "k"}, sort)
        p = MongoPlanner(SPEC).plan(Query(parse_filter({}), sort, after=after))
        assert p.native["filter"] == {}
