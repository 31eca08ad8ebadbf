"""The reference evaluator cross-checked against a MongoDB-wire server (SecantusDB).

The differential strategies (strategies.py) draw batches of documents, filters and sorts. Each
batch is inserted through raw pymongo (the key field ``id`` stored as ``_id``, Decimal as
Decimal128) and every query runs twice: on the server, and through the reference evaluator
(``parse_filter`` + ``matches``, ``sort_documents``). Both must return the same ids (filters),
in the same order (sorts, with ``_id`` ascending as the last key in both).

MongoDB's manual is the specification (DESIGN §2). A divergence where the evaluator is wrong is
a bug in asyncdb.query and fails here. Where SecantusDB departs from MongoDB, that class of
generated case is left out of the cross-check by a named predicate (``FILTER_DEVIATIONS``,
``SORT_DEVIATIONS``) and pinned by a ``test_secantusdb_deviation_<what>`` test that asserts the
server's actual answer next to MongoDB's documented one, so the pin fails once the server is
fixed and the exclusion can go.

The ``ci`` Hypothesis profile (conftest) derandomizes: the same cases every run.
``ASYNCDB_TEST_ORACLE_EXAMPLES=1000 HYPOTHESIS_PROFILE=dev`` hunts deeper.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

import asyncdb
from asyncdb.query import matches, parse_filter, parse_sort, sort_documents

from .strategies import Concretizer, any_filter, batches, field_filters, sorts
from .support import difference

EXAMPLES = int(os.environ.get("ASYNCDB_TEST_ORACLE_EXAMPLES", "150"))
COMPOUND_FILTERS = 4  # $and/$or/$nor trees and several fields
SINGLE_FILTERS = 6  # one condition on one path
FILTERS_PER_EXAMPLE = COMPOUND_FILTERS + SINGLE_FILTERS
SORTS_PER_EXAMPLE = 3

Doc = dict[str, Any]
Spec = list[tuple[str, int]]
MongoCollection = Collection[dict[str, Any]]

CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)

# --- portable values <-> BSON ---------------------------------------------------------------------


def to_bson(value: Any) -> Any:
    """A portable value as pymongo sends it: Decimal as Decimal128 (pymongo refuses Decimal);
    bytes, datetimes, compiled regexes and the rest as they are."""
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, dict):
        return {k: to_bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_bson(v) for v in value]
    return value


def from_bson(value: Any) -> Any:
    """A value pymongo returned, as asyncdb's portable type (Decimal128 -> Decimal, Int64 ->
    int; datetimes come back UTC-aware through ``CODEC``, binary subtype 0 as bytes)."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, dict):
        return {k: from_bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_bson(v) for v in value]
    return value


def doc_to_bson(doc: Doc) -> Doc:
    return {("_id" if k == "id" else k): to_bson(v) for k, v in doc.items()}


def doc_from_bson(doc: Doc) -> Doc:
    return {("id" if k == "_id" else k): from_bson(v) for k, v in doc.items()}


def filter_to_bson(flt: Doc) -> Doc:
    """The filter for the server: the key field ``id`` becomes ``_id`` (at the top level and in
    ``$and/$or/$nor``; paths inside ``$elemMatch`` are relative), operands through to_bson."""
    out: Doc = {}
    for key, cond in flt.items():
        if key in ("$and", "$or", "$nor"):
            out[key] = [filter_to_bson(sub) for sub in cond]
        else:
            out["_id" if key == "id" else key] = to_bson(cond)
    return out


def total_sort(spec: Spec) -> Spec:
    """``spec`` with the key ascending as the tiebreak, as the API sorts."""
    return spec if any(p == "id" for p, _ in spec) else [*spec, ("id", 1)]


# --- the two answers ------------------------------------------------------------------------------


def evaluator_matches(docs: list[Doc], flt: Doc) -> list[Doc]:
    node = parse_filter(flt)
    return [d for d in docs if matches(node, d)]


def evaluator_ids(docs: list[Doc], flt: Doc, spec: Spec | None = None) -> list[str]:
    """The reference evaluator's answer: matching ids, sorted by id or in ``spec``'s order."""
    found = evaluator_matches(docs, flt)
    if spec is None:
        return sorted(d["id"] for d in found)
    return [d["id"] for d in sort_documents(found, parse_sort(total_sort(spec)))]


def server_ids(coll: MongoCollection, flt: Doc, spec: Spec | None = None) -> list[str]:
    """SecantusDB's answer to the same query, through raw pymongo."""
    if spec is None:
        return sorted(d["_id"] for d in coll.find(filter_to_bson(flt), {"_id": 1}))
    order = [("_id" if p == "id" else p, d) for p, d in total_sort(spec)]
    return [d["_id"] for d in coll.find(filter_to_bson(flt), {"_id": 1}, sort=order)]


def load(coll: MongoCollection, docs: list[Doc]) -> None:
    """Replace the collection's contents with ``docs`` and check they round-trip."""
    coll.delete_many({})
    coll.insert_many([doc_to_bson(d) for d in docs])
    stored = [doc_from_bson(d) for d in coll.find({}, sort=[("_id", 1)])]
    diff = difference(sorted(docs, key=lambda d: d["id"]), stored)
    assert diff is None, f"documents did not round-trip through pymongo: {diff}"


def describe(what: str, query: Any, docs: list[Doc], expected: list[str], got: list[str]) -> str:
    wrong = set(expected) ^ set(got)
    involved = [d for d in docs if d["id"] in wrong] or docs
    return (
        f"{what} {query!r}\n  reference evaluator: {expected}\n  SecantusDB: {got}\n"
        f"  documents involved: {involved!r}\n"
        "  Decide with MongoDB's manual which is right: fix asyncdb.query, or add a documented"
        " SecantusDB deviation (predicate + pin) to this module."
    )


# --- known deviations of SecantusDB ---------------------------------------------------------------


@dataclass(frozen=True)
class Deviation:
    """A class of generated case where SecantusDB departs from MongoDB (``source`` says what
    MongoDB does); left out of the cross-check, pinned by ``test_secantusdb_deviation_<name>``."""

    name: str
    source: str
    applies: Callable[[Any, list[Doc]], bool]


def walk_conditions(flt: Doc) -> Iterator[tuple[str, Any]]:
    """Every (path, condition) of a filter, through ``$and/$or/$nor`` (not into $elemMatch)."""
    for key, cond in flt.items():
        if key in ("$and", "$or", "$nor"):
            for sub in cond:
                yield from walk_conditions(sub)
        else:
            yield key, cond


def walk_values(value: Any) -> Iterator[Any]:
    """``value`` and everything nested in it (documents and lists)."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_values(v)


def uses(cond: Any, op: str) -> bool:
    """Whether ``op`` appears anywhere in a condition (under $not, inside $elemMatch...)."""
    return any(isinstance(v, dict) and op in v for v in walk_values(cond))


def reachable(value: Any, parts: list[str]) -> Iterator[Any]:
    """The values a path reaches, without expanding the last one (an index and a field name
    both tried on arrays)."""
    if not parts:
        yield value
        return
    part, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        if part in value:
            yield from reachable(value[part], rest)
    elif isinstance(value, list):
        if part.isdigit() and int(part) < len(value):
            yield from reachable(value[int(part)], rest)
        for element in value:
            if isinstance(element, dict):
                yield from reachable(element, parts)


# 1. $elemMatch whose criteria are only $and/$or/$nor.
# MongoDB reads {$elemMatch: {$or: [...]}} as criteria on the array's documents: only $where and
# $text are refused inside $elemMatch (ELEM_MATCH_DOC), and mongodb/mongo
# jstests/core/query/elemmatch/elemmatch_or_pushdown.js runs {b: {$elemMatch: {$or: [{c: 4},
# {c: 5}]}}}. SecantusDB takes any criteria whose keys all start with "$" for the operator form
# and fails with "unknown operator: $or".
ELEM_MATCH_DOC = "https://www.mongodb.com/docs/manual/reference/operator/query/elemMatch/"


def elem_match_of_logical_operators(flt: Doc, docs: list[Doc]) -> bool:
    for value in walk_values(flt):
        if isinstance(value, dict) and isinstance(value.get("$elemMatch"), dict):
            keys = list(value["$elemMatch"])
            operators_only = bool(keys) and all(k.startswith("$") for k in keys)
            if operators_only and any(k in ("$and", "$or", "$nor") for k in keys):
                return True
    return False


# 2. null on a dotted path through an empty array or an array of non-documents.
# "Starting in MongoDB 9.0, a dotted path that does not resolve to a non-null value evaluates as
# null. The new behavior applies when a field in the path holds an empty array, an array of
# scalar values, or an array that contains a nested array": {"a.b": null} matches {a: [1]} and
# {a: []}, and {"a.b": {$ne: null}} matches neither (NULL_PATH_DOC). The evaluator implements
# that; SecantusDB (which measures itself against MongoDB 8.2) keeps the earlier rule.
NULL_PATH_DOC = "https://www.mongodb.com/docs/manual/release-notes/9.0-compatibility/"


def matches_null(cond: Any) -> bool:
    """Whether a condition compares with null ({a: null}, $eq/$ne/$gte/$lte null, $in/$nin/$all
    holding null, any of these under $not): its answer depends on where a path is null."""
    if cond is None:
        return True
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return False
    for op, arg in cond.items():
        if op in ("$eq", "$ne", "$gte", "$lte") and arg is None:
            return True
        if op in ("$in", "$nin", "$all") and any(v is None for v in arg):
            return True
        if op == "$not" and matches_null(arg):
            return True
    return False


def crosses_scalar_array(value: Any, parts: list[str]) -> bool:
    """Whether resolving ``parts`` walks, by field name, through an array that is empty or holds
    a non-document: the arrays whose null semantics MongoDB 9.0 changed. (An index past the end
    is null in both.)"""
    if not parts:
        return False
    part, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return part in value and crosses_scalar_array(value[part], rest)
    if not isinstance(value, list):
        return False
    if part.isdigit():
        index = int(part)
        if index < len(value) and crosses_scalar_array(value[index], rest):
            return True
    elif not value or any(not isinstance(e, dict) for e in value):
        return True
    return any(
        crosses_scalar_array(e[part], rest) for e in value if isinstance(e, dict) and part in e
    )


def null_through_scalar_array(flt: Doc, docs: list[Doc]) -> bool:
    for path, cond in walk_conditions(flt):
        parts = path.split(".")
        if (
            len(parts) > 1
            and matches_null(cond)
            and any(crosses_scalar_array(d, parts) for d in docs)
        ):
            return True
    return False


# 3. $mod on an array that MongoDB compares whole.
# A numeric path component picks one element, and an array found there is compared whole, not
# element by element: mongodb/mongo jstests/core/match_numeric_components.js (NUMERIC_PATH_DOC)
# expects {"a.0": {$mod: [42, 0]}}, like $eq, $gt, $in, $all and $type, to match {a: [42]} but
# not {a: [[42]]}. Likewise the operator form of $elemMatch takes each element whole ({a:
# {$elemMatch: {$gt: 1}}} does not match {a: [[5]]}, ELEM_MATCH_DOC). SecantusDB's $mod alone
# matches the elements of such an array: {"a.0": {$mod: [2, 0]}} and {a: {$elemMatch: {$mod:
# [2, 0]}}} both match {a: [[0]]}.
NUMERIC_PATH_DOC = (
    "https://github.com/mongodb/mongo/blob/master/jstests/core/match_numeric_components.js"
)


def positional_leaf_array(value: Any, parts: list[str]) -> bool:
    """Whether ``parts`` ends with an array index that picks an array somewhere in ``value``."""
    if not parts:
        return False
    part, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return part in value and positional_leaf_array(value[part], rest)
    if not isinstance(value, list):
        return False
    if part.isdigit() and int(part) < len(value):
        picked = value[int(part)]
        if (not rest and isinstance(picked, list)) or positional_leaf_array(picked, rest):
            return True
    return any(positional_leaf_array(e, parts) for e in value if isinstance(e, dict))


def holds_nested_array(doc: Doc, parts: list[str]) -> bool:
    """Whether the path reaches an array with an array element."""
    return any(
        isinstance(v, list) and any(isinstance(e, list) for e in v) for v in reachable(doc, parts)
    )


def mod_on_array_value(flt: Doc, docs: list[Doc]) -> bool:
    for path, cond in walk_conditions(flt):
        if uses(cond, "$mod"):
            parts = path.split(".")
            for doc in docs:
                if positional_leaf_array(doc, parts) or (
                    uses(cond, "$elemMatch") and holds_nested_array(doc, parts)
                ):
                    return True
    return False


# 4. $all with null or with an array operand.
# "$all is equivalent to an $and operation of the specified values", and "when passed an array
# of a nested array (e.g. [["A"]]), $all matches documents where the field contains the nested
# array as an element, or the field equals the nested array" (ALL_DOC). So {a: {$all: [null]}}
# is {a: null} and matches a missing field, and {a: {$all: [[1, 2]]}} matches {a: [1, 2]}.
# SecantusDB compares each $all operand with the field's elements only: it matches neither.
ALL_DOC = "https://www.mongodb.com/docs/manual/reference/operator/query/all/"


def all_operands(flt: Doc) -> Iterator[Any]:
    for value in walk_values(flt):
        if isinstance(value, dict) and isinstance(value.get("$all"), list):
            yield from value["$all"]


def all_with_null(flt: Doc, docs: list[Doc]) -> bool:
    return any(v is None for v in all_operands(flt))


def all_with_array_operand(flt: Doc, docs: list[Doc]) -> bool:
    return any(isinstance(v, list) for v in all_operands(flt))


# 5. $mod of a number beyond 2**53.
# MongoDB computes $mod in 64-bit integers: a long modulo the divisor exactly, a double truncated
# toward zero first, and a double whose truncation does not fit in 64 bits matches nothing
# (MOD_DOC; ModMatchExpression::matchesSingleElement in mongodb/mongo
# src/mongo/db/matcher/expression_leaf.cpp). SecantusDB goes through a float (math.fmod), so
# {a: {$mod: [2, 0]}} matches {a: 2**53 + 1}, and matches {a: 1e300}.
MOD_DOC = "https://www.mongodb.com/docs/manual/reference/operator/query/mod/"
DOUBLE_EXACT = 2**53


def mod_beyond_double_precision(flt: Doc, docs: list[Doc]) -> bool:
    for path, cond in walk_conditions(flt):
        if uses(cond, "$mod"):
            top = path.split(".")[0]
            for doc in docs:
                for v in walk_values(doc.get(top)):
                    big = isinstance(v, int | float) and not isinstance(v, bool)
                    if big and abs(v) >= DOUBLE_EXACT:
                        return True
    return False


# 6. $elemMatch criteria on an element that is itself an array.
# MongoDB matches the document form of $elemMatch against an array element that is an array as
# if it were the document {"0": ..., "1": ...}: mongodb/mongo jstests/core/query/
# null_query_semantics.js (testElemMatchObject) expects {a: {$elemMatch: {b: {$eq: null}}}} to
# match {a: [[]]}. SecantusDB only tries document elements under non-empty criteria.
ELEM_MATCH_ARRAY_DOC = (
    "https://github.com/mongodb/mongo/blob/master/jstests/core/query/null_query_semantics.js"
)


def elem_match_criteria_on_nested_array(flt: Doc, docs: list[Doc]) -> bool:
    for path, cond in walk_conditions(flt):
        if not (isinstance(cond, dict) and isinstance(cond.get("$elemMatch"), dict)):
            continue
        criteria = cond["$elemMatch"]
        if criteria and all(k.startswith("$") for k in criteria):
            continue  # the operator form: an array element is one value
        for doc in docs:
            for value in reachable(doc, path.split(".")):
                if isinstance(value, list) and any(isinstance(e, list) for e in value):
                    return True
    return False


# 7. $gt/$gte/$lt/$lte between binary values of different lengths.
# "MongoDB sorts BinData in the following order: first, the length or size of the data; then,
# by the BSON one-byte subtype; finally, by the data, performing a byte-by-byte comparison"
# (BINDATA_DOC), so b"\x00\x01" > b"a". SecantusDB sorts that way but its range operators
# compare the bytes alone: {s: {$lte: b"a"}} matches {s: b"\x00\x01"}.
BINDATA_DOC = "https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/"
RANGE_OPERATORS = ("$gt", "$gte", "$lt", "$lte")


def range_on_bytes_of_other_length(flt: Doc, docs: list[Doc]) -> bool:
    lengths = {
        len(v)
        for value in walk_values(flt)
        if isinstance(value, dict)
        for op, v in value.items()
        if op in RANGE_OPERATORS and isinstance(v, bytes)
    }
    if not lengths:
        return False
    stored = {len(v) for doc in docs for v in walk_values(doc) if isinstance(v, bytes)}
    return bool(stored - lengths) or len(lengths) > 1


# 8. sort on a path through array elements that lack it.
# A document sorts by the smallest (ascending) or largest (descending) value its sort path
# reaches, and an array element without the field counts as null ("the comparison treats a
# non-existent field as if it were null", SORT_MISSING_DOC): mongodb/mongo
# jstests/core/query/sort/sort_dotted_paths.js sorts {a: {b: [{c: 3}, {d: 1}]}} by "a.b.c"
# ascending among the nulls and descending as 3. SecantusDB skips such elements and sorts that
# document as 3 both ways.
SORT_MISSING_DOC = "https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/"
_NO_FIELD = object()


def sort_branches(value: Any, parts: list[str]) -> list[Any]:
    """What a sort path reaches, one entry per branch through arrays (``_NO_FIELD`` for a
    branch that ends without the field)."""
    if not parts:
        return [value]
    part, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return sort_branches(value[part], rest) if part in value else [_NO_FIELD]
    if isinstance(value, list):
        if part.isdigit():
            index = int(part)
            return sort_branches(value[index], rest) if index < len(value) else [_NO_FIELD]
        found = [b for e in value if isinstance(e, dict) for b in sort_branches(e, parts)]
        return found or [_NO_FIELD]
    return [_NO_FIELD]


def sort_through_elements_without_field(spec: Spec, docs: list[Doc]) -> bool:
    for path, _ in spec:
        for doc in docs:
            branches = sort_branches(doc, path.split("."))
            if len(branches) > 1 and any(b is _NO_FIELD for b in branches):
                return True
    return False


FILTER_DEVIATIONS = [
    Deviation("elem_match_of_logical_operators", ELEM_MATCH_DOC, elem_match_of_logical_operators),
    Deviation("null_through_scalar_array", NULL_PATH_DOC, null_through_scalar_array),
    Deviation("mod_on_array_value", NUMERIC_PATH_DOC, mod_on_array_value),
    Deviation("all_with_null", ALL_DOC, all_with_null),
    Deviation("all_with_array_operand", ALL_DOC, all_with_array_operand),
    Deviation("mod_beyond_double_precision", MOD_DOC, mod_beyond_double_precision),
    Deviation(
        "elem_match_criteria_on_nested_array",
        ELEM_MATCH_ARRAY_DOC,
        elem_match_criteria_on_nested_array,
    ),
    Deviation("range_on_bytes_of_other_length", BINDATA_DOC, range_on_bytes_of_other_length),
]
SORT_DEVIATIONS = [
    Deviation(
        "sort_through_elements_without_field",
        SORT_MISSING_DOC,
        sort_through_elements_without_field,
    ),
]


def deviation_of(deviations: list[Deviation], query: Any, docs: list[Doc]) -> Deviation | None:
    return next((d for d in deviations if d.applies(query, docs)), None)


# --- the cross-check ------------------------------------------------------------------------------


@dataclass
class Tally:
    filters: int = 0
    sorts: int = 0
    excluded: Counter[str] = field(default_factory=Counter)


oracle_cases = st.tuples(
    batches,
    st.lists(any_filter, min_size=COMPOUND_FILTERS, max_size=COMPOUND_FILTERS),
    st.lists(field_filters, min_size=SINGLE_FILTERS, max_size=SINGLE_FILTERS),
    st.lists(
        st.tuples(sorts, st.one_of(st.just({}), any_filter)),
        min_size=SORTS_PER_EXAMPLE,
        max_size=SORTS_PER_EXAMPLE,
    ),
)


def server_answer(coll: MongoCollection, flt: Doc, spec: Spec | None = None) -> list[str]:
    try:
        return server_ids(coll, flt, spec)
    except OperationFailure as exc:
        pytest.fail(f"SecantusDB refused {flt!r} (sort {spec!r}); the evaluator took it: {exc}")


def check_case(coll: MongoCollection, case: Any, tally: Tally) -> None:
    docs, compound, single, sort_list = case
    concrete = Concretizer(docs)
    load(coll, docs)
    for template in compound + single:
        flt = concrete.filter(template)
        deviation = deviation_of(FILTER_DEVIATIONS, flt, docs)
        if deviation is not None:
            tally.excluded[deviation.name] += 1
            continue
        expected = evaluator_ids(docs, flt)
        got = server_answer(coll, flt)
        assert got == expected, describe("filter", flt, docs, expected, got)
        tally.filters += 1
    for spec, template in sort_list:
        flt = concrete.filter(template)
        deviation = deviation_of(FILTER_DEVIATIONS, flt, docs) or deviation_of(
            SORT_DEVIATIONS, spec, evaluator_matches(docs, flt)
        )
        if deviation is not None:
            tally.excluded[deviation.name] += 1
            continue
        expected = evaluator_ids(docs, flt, spec)
        got = server_answer(coll, flt, spec)
        query = {"filter": flt, "sort": total_sort(spec)}
        assert got == expected, describe("sort", query, docs, expected, got)
        tally.sorts += 1


@pytest.fixture
def oracle(mongo_url: str) -> Iterator[MongoCollection]:
    """A collection in the fresh database of ``mongo_url``, through raw (sync) pymongo."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=30_000)
    try:
        yield client.get_default_database(codec_options=CODEC)["oracle"]
    finally:
        client.close()


def test_reference_evaluator_agrees_with_secantusdb(oracle: MongoCollection) -> None:
    tally = Tally()

    @settings(
        max_examples=EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(oracle_cases)
    def body(case: Any) -> None:
        check_case(oracle, case, tally)

    body()
    print(
        f"\nmongo-wire oracle: {tally.filters} filters and {tally.sorts} sorts agreed;"
        f" left out as SecantusDB deviations: {dict(tally.excluded)}"
    )
    # Most cases must really be checked: a predicate that grew to swallow them would hide bugs.
    assert tally.filters >= EXAMPLES * FILTERS_PER_EXAMPLE * 0.85, tally
    assert tally.sorts >= EXAMPLES * SORTS_PER_EXAMPLE * 0.7, tally


def test_every_deviation_is_pinned() -> None:
    for deviation in FILTER_DEVIATIONS + SORT_DEVIATIONS:
        assert f"test_secantusdb_deviation_{deviation.name}" in globals(), deviation.name
        assert deviation.source.startswith("https://"), deviation.name


# --- numeric path components, case by case --------------------------------------------------------

# mongodb/mongo jstests/core/match_numeric_components.js (NUMERIC_PATH_DOC): its documents 0-10
# and what MongoDB returns for each filter. An index picks one element (an array there is one
# value, not traversed), and the same part also names a field of the array's documents.
NUMERIC_DOCS: list[Any] = [
    42,
    [42],
    {"0": 42},
    [[42]],
    [{"0": 42}],
    {"0": [42]},
    {"0": {"0": 42}},
    [[[42]]],
    [[{"0": 42}]],
    [{"0": [42]}],
    [{"0": {"0": 42}}],
]
NUMERIC_CASES: list[tuple[Doc, list[int]]] = [
    ({"a.0": 42}, [1, 2, 4, 5, 9]),
    ({"a.0": {"$ne": 42}}, [0, 3, 6, 7, 8, 10]),
    ({"a.0.0": 42}, [3, 4, 5, 6, 8, 9, 10]),
    ({"a.0": {"$gt": 41}}, [1, 2, 4, 5, 9]),
    ({"a.0": {"$in": [41, 42, 43]}}, [1, 2, 4, 5, 9]),
    ({"a.0": {"$nin": [41, 42, 43]}}, [0, 3, 6, 7, 8, 10]),
    ({"a.0": {"$all": [42]}}, [1, 2, 4, 5, 9]),
    ({"a.0": {"$type": "number"}}, [1, 2, 4, 5, 9]),
    ({"a.0": {"$mod": [42, 0]}}, [1, 2, 4, 5, 9]),
]


def numeric_docs() -> list[Doc]:
    return [{"id": f"n{i:02d}", "a": a} for i, a in enumerate(NUMERIC_DOCS)]


@pytest.mark.parametrize(("flt", "mongodb"), NUMERIC_CASES, ids=lambda v: repr(v))
def test_numeric_path_components_match_mongodb(
    oracle: MongoCollection, flt: Doc, mongodb: list[int]
) -> None:
    docs = numeric_docs()
    expected = [f"n{i:02d}" for i in mongodb]
    assert evaluator_ids(docs, flt) == expected, f"reference evaluator on {flt!r}"
    if not mod_on_array_value(flt, docs):
        load(oracle, docs)
        assert server_ids(oracle, flt) == expected, f"SecantusDB on {flt!r}"


# --- pins: what SecantusDB does where it departs from MongoDB -------------------------------------
# Each asserts the server's present (wrong) answer and MongoDB's documented one. When a pin
# fails because SecantusDB now answers like MongoDB, delete the pin and its Deviation.


def test_secantusdb_deviation_elem_match_of_logical_operators(oracle: MongoCollection) -> None:
    # ELEM_MATCH_DOC; jstests/core/query/elemmatch/elemmatch_or_pushdown.js
    docs = [{"id": "e0", "b": [{"c": 4}]}, {"id": "e1", "b": [{"c": 6}]}]
    flt = {"b": {"$elemMatch": {"$or": [{"c": 4}, {"c": 5}]}}}
    assert elem_match_of_logical_operators(flt, docs)
    load(oracle, docs)
    with pytest.raises(OperationFailure, match=r"unknown operator: \$or"):
        server_ids(oracle, flt)
    assert evaluator_ids(docs, flt) == ["e0"]  # MongoDB's answer


def test_secantusdb_deviation_null_through_scalar_array(oracle: MongoCollection) -> None:
    # NULL_PATH_DOC: the example of MongoDB 9.0's compatibility notes, plus an array of documents
    # (which matched null in every version).
    docs = [{"id": "z1", "a": [1]}, {"id": "z2", "a": []}, {"id": "z3", "a": [{"c": 1}]}]
    load(oracle, docs)
    for flt, server, mongodb in [
        ({"a.b": None}, ["z3"], ["z1", "z2", "z3"]),
        ({"a.b": {"$ne": None}}, ["z1", "z2"], []),
        ({"a.b": {"$in": [None, 5]}}, ["z3"], ["z1", "z2", "z3"]),
    ]:
        assert null_through_scalar_array(flt, docs)
        assert server_ids(oracle, flt) == server, flt
        assert evaluator_ids(docs, flt) == mongodb, flt


def test_secantusdb_deviation_mod_on_array_value(oracle: MongoCollection) -> None:
    # NUMERIC_PATH_DOC: MongoDB matches n01 ({a: [42]}) only; SecantusDB also n03 ({a: [[42]]})
    docs = [d for d in numeric_docs() if d["id"] in ("n01", "n03")]
    load(oracle, docs)
    for flt, server, mongodb in [
        ({"a.0": {"$mod": [42, 0]}}, ["n01", "n03"], ["n01"]),
        ({"a": {"$elemMatch": {"$mod": [42, 0]}}}, ["n01", "n03"], ["n01"]),
        ({"a": {"$elemMatch": {"$gt": 41}}}, ["n01"], ["n01"]),  # the other operators agree
    ]:
        assert server_ids(oracle, flt) == server, flt
        assert evaluator_ids(docs, flt) == mongodb, flt
    assert mod_on_array_value({"a.0": {"$mod": [42, 0]}}, docs)
    assert mod_on_array_value({"a": {"$elemMatch": {"$mod": [42, 0]}}}, docs)


def test_secantusdb_deviation_sort_through_elements_without_field(
    oracle: MongoCollection,
) -> None:
    # SORT_MISSING_DOC; jstests/core/query/sort/sort_dotted_paths.js ("a.b.c", _ids 4, 5, 7)
    docs = [
        {"id": "s4", "a": [{"b": {"c": 1}}]},
        {"id": "s5", "a": {"b": [{"c": 3}, {"d": 1}]}},
        {"id": "s7", "a": []},
    ]
    load(oracle, docs)
    for spec, server, mongodb in [
        ([("a.b.c", 1)], ["s7", "s4", "s5"], ["s5", "s7", "s4"]),
        ([("a.b.c", -1)], ["s5", "s4", "s7"], ["s5", "s4", "s7"]),
    ]:
        assert sort_through_elements_without_field(spec, docs)
        assert server_ids(oracle, {}, spec) == server, spec
        assert evaluator_ids(docs, {}, spec) == mongodb, spec


def test_secantusdb_deviation_all_with_null(oracle: MongoCollection) -> None:
    # ALL_DOC: {a: {$all: [null]}} is {$and: [{a: null}]}, which matches a missing field
    docs = [{"id": "m0"}, {"id": "m1", "a": None}, {"id": "m2", "a": [None, 1]}]
    flt = {"a": {"$all": [None]}}
    assert all_with_null(flt, docs)
    load(oracle, docs)
    assert server_ids(oracle, flt) == ["m1", "m2"]
    assert evaluator_ids(docs, flt) == ["m0", "m1", "m2"]  # MongoDB's answer


def test_secantusdb_deviation_all_with_array_operand(oracle: MongoCollection) -> None:
    # ALL_DOC: {tags: {$all: [["ssl", "security"]]}} matches tags equal to that array, and tags
    # holding it as an element
    docs = [
        {"id": "t0", "tags": ["ssl", "security"]},
        {"id": "t1", "tags": [["ssl", "security"], "x"]},
    ]
    flt = {"tags": {"$all": [["ssl", "security"]]}}
    assert all_with_array_operand(flt, docs)
    load(oracle, docs)
    assert server_ids(oracle, flt) == ["t1"]
    assert evaluator_ids(docs, flt) == ["t0", "t1"]  # MongoDB's answer


def test_secantusdb_deviation_mod_beyond_double_precision(oracle: MongoCollection) -> None:
    # MOD_DOC and ModMatchExpression: 2**53 + 1 is odd; 2**63 - 1 is odd; 1e300 does not fit in
    # 64 bits, so it matches no $mod at all
    docs = [
        {"id": "b0", "n": 2**53 + 1},
        {"id": "b1", "n": 2**63 - 1},
        {"id": "b2", "n": 1e300},
        {"id": "b3", "n": 4},
    ]
    flt = {"n": {"$mod": [2, 0]}}
    assert mod_beyond_double_precision(flt, docs)
    load(oracle, docs)
    assert server_ids(oracle, flt) == ["b0", "b1", "b2", "b3"]
    assert evaluator_ids(docs, flt) == ["b3"]  # MongoDB's answer
    assert evaluator_ids(docs, {"n": {"$mod": [2, 1]}}) == ["b0", "b1"]


def test_secantusdb_deviation_elem_match_criteria_on_nested_array(
    oracle: MongoCollection,
) -> None:
    # ELEM_MATCH_ARRAY_DOC (testElemMatchObject): {a: {$elemMatch: {b: {$eq: null}}}} matches
    # {a: [[]]}; {a: {$elemMatch: {b: {$ne: null}}}} does not
    docs = [{"id": "q0", "a": [[]]}, {"id": "q1", "a": [{"b": 1}]}]
    load(oracle, docs)
    for flt, server, mongodb in [
        ({"a": {"$elemMatch": {"b": {"$eq": None}}}}, [], ["q0"]),
        ({"a": {"$elemMatch": {"b": {"$ne": None}}}}, ["q1"], ["q1"]),
    ]:
        assert elem_match_criteria_on_nested_array(flt, docs)
        assert server_ids(oracle, flt) == server, flt
        assert evaluator_ids(docs, flt) == mongodb, flt


def test_secantusdb_deviation_range_on_bytes_of_other_length(oracle: MongoCollection) -> None:
    # BINDATA_DOC: binary data compares by length first, so b"\x00\x01" > b"a" > b""
    docs = [{"id": "y0", "s": b"\x00\x01"}, {"id": "y1", "s": b"a"}, {"id": "y2", "s": b""}]
    load(oracle, docs)
    for flt, server, mongodb in [
        ({"s": {"$lte": b"a"}}, ["y0", "y1", "y2"], ["y1", "y2"]),
        ({"s": {"$gt": b"a"}}, [], ["y0"]),
    ]:
        assert range_on_bytes_of_other_length(flt, docs)
        assert server_ids(oracle, flt) == server, flt
        assert evaluator_ids(docs, flt) == mongodb, flt
    # its sort agrees with MongoDB
    assert server_ids(oracle, {}, [("s", 1)]) == ["y2", "y1", "y0"]


# Known up front (DESIGN §5). The cross-check's collection has no index but _id, and no generated
# regular expression is on _id, so neither needs an exclusion there.

REGEX_DOC = "https://www.mongodb.com/docs/manual/reference/operator/query/regex/"
TEXT_DOC = "https://www.mongodb.com/docs/manual/reference/operator/query/text/"


def test_secantusdb_deviation_regex_value_on_indexed_field(oracle: MongoCollection) -> None:
    # REGEX_DOC: {field: /pattern/} is the same query as {field: {$regex: "pattern"}}; on an
    # indexed field SecantusDB answers the plain-value form (and $in with a regex) with nothing
    docs = [{"id": "r0", "s": "ab"}, {"id": "r1", "s": "ba"}, {"id": "r2", "s": ["x", "abc"]}]
    load(oracle, docs)
    oracle.create_index("s")
    pattern = re.compile("^a")
    assert server_ids(oracle, {"s": {"$regex": "^a"}}) == ["r0", "r2"]
    assert server_ids(oracle, {"s": pattern}) == []
    assert server_ids(oracle, {"s": {"$in": [pattern]}}) == []
    assert evaluator_ids(docs, {"s": pattern}) == ["r0", "r2"]  # MongoDB's answer


def test_secantusdb_deviation_no_text_index(oracle: MongoCollection) -> None:
    # TEXT_DOC: $text needs a text index, which SecantusDB cannot build; asyncdb refuses $text
    # before any I/O (DESIGN §2)
    load(oracle, [{"id": "x0", "s": "ab"}])
    with pytest.raises(OperationFailure, match="text indexes are not supported"):
        oracle.create_index([("s", "text")])
    with pytest.raises(OperationFailure, match=r"\$text"):
        list(oracle.find({"$text": {"$search": "ab"}}))
    with pytest.raises(asyncdb.QueryError):
        parse_filter({"$text": {"$search": "ab"}})
