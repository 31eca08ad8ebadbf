"""Random aggregation pipelines over the differential batches (strategies.py), and how their
results are compared.

A pipeline is drawn in the shape users write, so that its result is determined (no stage depends
on the order a store returns tied documents in): an optional ``$match`` (a field filter with
``Pick`` operands), an optional ``$sort`` that ends on ``id`` (a total order) with ``$skip``/
``$limit``, up to two per-document stages, then optionally one of ``$group``, ``$count``,
``$sortByCount`` or ``$facet``, and after a ``$group`` a ``$sort`` on ``_id`` with a ``$limit``.
Order-sensitive accumulators (``$first``, ``$last``, ``$push``) are drawn only after the total
sort. Results are compared as multisets (``canonical``), ``$addToSet`` arrays as sets; a run
ends with the evaluator's error on both sides or with equal results.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from asyncdb.query.sort import encode_value

from .strategies import choice, field_filters

Doc = dict[str, Any]

GROUP_KEYS: list[Any] = [
    "$a",
    "$b",
    "$s",
    "$n.x",
    None,
    {"x": "$b", "y": "$s"},
    {"$cond": [{"$gt": ["$b", 1]}, "big", "small"]},
    {"$ifNull": ["$b", "none"]},
]
ACCUMULATORS: list[tuple[str, Any]] = [
    ("n", {"$sum": 1}),
    ("sum_a", {"$sum": "$a"}),
    ("sum_b", {"$sum": "$b"}),
    ("avg_b", {"$avg": "$b"}),
    ("avg_a", {"$avg": "$a"}),
    ("min_a", {"$min": "$a"}),
    ("max_s", {"$max": "$s"}),
    ("max_b", {"$max": "$b"}),
    ("count", {"$count": {}}),
    ("set_b", {"$addToSet": "$b"}),
    ("pos", {"$sum": {"$cond": [{"$gt": ["$b", 0]}, 1, 0]}}),
]
ORDERED_ACCUMULATORS: list[tuple[str, Any]] = [
    ("first_a", {"$first": "$a"}),
    ("last_s", {"$last": "$s"}),
    ("ids", {"$push": "$id"}),
]
PER_DOCUMENT: list[Any] = [
    {"$project": {"a": 1, "s": 1}},
    {"$project": {"arr": 0, "docs": 0}},
    {"$project": {"id": 1, "k": {"$ifNull": ["$b", "none"]}, "big": {"$gte": ["$b", 2]}}},
    {"$project": {"_id": 0, "b": 1, "t": {"$toUpper": {"$ifNull": [None, "x"]}}}},
    {"$addFields": {"hi": {"$cond": [{"$gte": ["$a", "$b"]}, "$a", "$b"]}}},
    {"$set": {"lit": {"$literal": "$b"}, "both": ["$b", "$missing"]}},
    {"$addFields": {"eq": {"$eq": ["$b", 1]}, "ne": {"$ne": ["$missing", None]}}},
    {"$addFields": {"and": {"$and": ["$b", "$a"]}, "or": {"$or": ["$b", {"$not": "$a"}]}}},
    {"$unwind": "$arr"},
    {"$unwind": {"path": "$docs", "preserveNullAndEmptyArrays": True, "includeArrayIndex": "i"}},
    {"$unwind": {"path": "$s", "preserveNullAndEmptyArrays": True}},
    {"$match": {"b": {"$ne": None}}},
    {"$match": {"a": {"$exists": True}}},
]
SORT_FIELDS = ["a", "b", "s", "n.x", "arr"]


def _group(key: Any, accs: list[tuple[str, Any]]) -> Doc:
    return {"$group": {"_id": key, **dict(accs)}}


def _accumulators(ordered: bool) -> st.SearchStrategy[list[tuple[str, Any]]]:
    pool = ACCUMULATORS + (ORDERED_ACCUMULATORS if ordered else [])
    return st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique_by=lambda a: a[0])


def _tail(ordered: bool) -> st.SearchStrategy[list[Doc]]:
    group = st.builds(_group, st.sampled_from(GROUP_KEYS), _accumulators(ordered))
    sorted_group = st.builds(
        lambda g, d, n: [g, {"$sort": {"_id": d}}, {"$limit": n}],
        group,
        st.sampled_from([1, -1]),
        st.integers(1, 4),
    )
    facet = st.builds(lambda g: [{"$facet": {"total": [{"$count": "n"}], "groups": [g]}}], group)
    return choice(
        st.just([]),
        group.map(lambda g: [g]),
        group.map(lambda g: [g]),
        sorted_group,
        st.sampled_from(["$b", "$s", {"$ifNull": ["$b", 0]}]).map(lambda e: [{"$sortByCount": e}]),
        st.just([{"$count": "total"}]),
        facet,
    )


def _pipeline(
    match: Doc | None,
    sort: tuple[str, int] | None,
    skip: int,
    limit: int | None,
    middle: list[Doc],
    tail: list[Doc],
) -> list[Doc]:
    stages: list[Doc] = []
    if match is not None:
        stages.append({"$match": match})
    if sort is not None:
        stages.append({"$sort": {sort[0]: sort[1], "id": 1}})
        if skip:
            stages.append({"$skip": skip})
        if limit is not None:
            stages.append({"$limit": limit})
    return stages + middle + tail


def _build(ordered: bool) -> st.SearchStrategy[list[Doc]]:
    sort = st.tuples(st.sampled_from(SORT_FIELDS), st.sampled_from([1, -1]))
    return st.builds(
        _pipeline,
        st.one_of(st.none(), field_filters),
        sort if ordered else st.none(),
        st.integers(0, 3),
        st.one_of(st.none(), st.integers(1, 12)),
        st.lists(st.sampled_from(PER_DOCUMENT), max_size=2),
        _tail(ordered),
    )


# a template: $match operands may be Pick placeholders (Concretizer.filter resolves them)
pipelines = choice(_build(ordered=True), _build(ordered=False))


def concretize(pipeline: list[Doc], concrete: Any) -> list[Doc]:
    """The pipeline with its ``$match`` operands picked from the batch."""
    out = []
    for stage in pipeline:
        if "$match" in stage:
            out.append({"$match": concrete.filter(stage["$match"])})
        else:
            out.append(stage)
    return out


def _canonical_value(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _canonical_value(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical_value(v) for v in value]
        if name.startswith("set_") or name in ("groups", "total"):
            items.sort(key=_sort_bytes)
        return items
    return value


def _sort_bytes(value: Any) -> bytes:
    return encode_value(value)


def canonical(results: list[Doc], ordered: bool = False) -> list[Doc]:
    """Results as a multiset (sorted by BSON order) unless ``ordered``; set-valued fields and
    facet outputs sorted too."""
    docs = [_canonical_value(d) for d in results]
    return docs if ordered else sorted(docs, key=_sort_bytes)


def close(expected: Any, got: Any, path: str = "$") -> str | None:
    """Where two results differ: strictly by type and value, except that floats may differ in
    their last bits (summation order) and Decimals compare by value."""
    if type(expected) is not type(got):
        return f"{path}: expected {expected!r}, got {got!r}"
    if isinstance(expected, dict):
        if list(expected) != list(got):
            return f"{path}: expected fields {list(expected)}, got {list(got)}"
        for k in expected:
            diff = close(expected[k], got[k], f"{path}.{k}")
            if diff:
                return diff
        return None
    if isinstance(expected, list):
        if len(expected) != len(got):
            return f"{path}: expected {expected!r}, got {got!r}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            diff = close(e, g, f"{path}.{i}")
            if diff:
                return diff
        return None
    if isinstance(expected, float):
        ok = math.isclose(expected, got, rel_tol=1e-12, abs_tol=1e-300) or expected == got
        return None if ok else f"{path}: expected {expected!r}, got {got!r}"
    if isinstance(expected, Decimal):
        return None if expected == got else f"{path}: expected {expected!r}, got {got!r}"
    return None if expected == got else f"{path}: expected {expected!r}, got {got!r}"
