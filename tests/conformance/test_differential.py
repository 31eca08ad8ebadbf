"""Differential tests: every backend against the reference evaluator, on random data.

Hypothesis draws batches of documents (nulls, missing fields, nested documents, arrays of scalars
and of documents, mixed types: dates, Decimals, bytes, booleans next to 0/1, ints next to floats)
and random filters (every operator of DESIGN §2, ``$and/$or/$nor/$not``, dotted and numeric
paths), sorts, projections and updates. The oracle is ``asyncdb.query``: ``parse_filter`` +
``matches`` for filters, ``sort_documents`` for order (ties broken by key, as the API does),
``apply_projection`` and ``apply_update``. At least 200 examples x 10 filters per backend.

Filter operands are often ``Pick(n)`` placeholders, replaced before the query runs by the n-th
value that the condition's path reaches in the batch, so filters hit the data instead of
missing it by chance.

Each test runs its own event loop (``asyncio.Runner``) around one connection, so Hypothesis
can drive many examples through it; the count of checked cases is asserted at the end.
The ``ci`` profile (conftest) derandomizes, so CI sees the same cases every run.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.query import (
    apply_projection,
    apply_update,
    matches,
    parse_filter,
    parse_projection,
    parse_sort,
    parse_update,
    resolve,
    sort_documents,
)
from asyncdb.query.evaluate import MISSING

from .support import difference

# ASYNCDB_TEST_EXAMPLES=2000 (with HYPOTHESIS_PROFILE=dev) for a deeper local hunt
FILTER_EXAMPLES = int(os.environ.get("ASYNCDB_TEST_EXAMPLES", "200"))
COMPOUND_FILTERS = 4  # $and/$or/$nor trees and several fields
SINGLE_FILTERS = 6  # one condition on one path: the sharpest test of each operator
FILTERS_PER_EXAMPLE = COMPOUND_FILTERS + SINGLE_FILTERS
SORTS_PER_EXAMPLE = 3
UPDATE_EXAMPLES = max(FILTER_EXAMPLES // 2, 1)

Doc = dict[str, Any]

# --- values ---------------------------------------------------------------------------------------

DATES = [
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
]
# Few values, in clusters a store could confuse: 0/False/""/None, 1/True/1.0/Decimal("1")/"1",
# 2**53+1 next to float(2**53), and one of each other type.
SCALARS: list[Any] = [
    None,
    False,
    True,
    0,
    1,
    1.0,
    Decimal("1"),
    -1,
    2,
    2.5,
    1.5,
    -2.7,
    Decimal("2.5"),
    10,
    1e300,
    2**53 + 1,
    float(2**53),
    2**63 - 1,
    -(2**63),
    "",
    "1",
    "10",
    "a",
    "A",
    "ab",
    "b",
    "a\nb",
    "é",
    "\U0001f600",
    b"",
    b"a",
    b"\x00\x01",
    *DATES,
]
STRINGS = [v for v in SCALARS if isinstance(v, str)]
CONFUSABLE: list[Any] = [None, False, True, 0, 1, 1.0, Decimal("1"), "", "1"]
scalars = st.one_of(st.sampled_from(SCALARS), st.sampled_from(CONFUSABLE))
strings = st.sampled_from(STRINGS)
sub_keys = st.sampled_from(["x", "y", "z"])


def values(depth: int) -> st.SearchStrategy[Any]:
    """Scalars, and (to ``depth`` levels) arrays and small documents of them."""
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(sub_keys, inner, max_size=2),
    )


small_docs = st.fixed_dictionaries({}, optional={"x": values(1), "y": scalars, "z": scalars})

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "a": values(2),
    "b": scalars,
    "s": st.one_of(strings, strings, scalars, st.lists(strings, max_size=3)),
    "n": st.one_of(small_docs, small_docs, scalars, st.lists(small_docs, max_size=3)),
    "arr": st.one_of(
        st.lists(scalars, max_size=4),
        st.lists(scalars, max_size=4),
        scalars,
        st.lists(st.lists(scalars, max_size=2), max_size=3),
    ),
    "docs": st.one_of(
        st.lists(small_docs, max_size=3), st.lists(small_docs, max_size=3), small_docs
    ),
}


_ABSENT = object()


def _body(fields: Doc) -> Doc:
    return {k: v for k, v in fields.items() if v is not _ABSENT}


def _with_ids(bodies: list[Doc]) -> list[Doc]:
    return [{"id": f"d{i:02d}", **body} for i, body in enumerate(bodies)]


# each field is present three times in four
bodies = st.fixed_dictionaries(
    {k: st.one_of(st.just(_ABSENT), v, v, v) for k, v in FIELDS.items()}
).map(_body)
batches = st.lists(bodies, min_size=8, max_size=20).map(_with_ids)

# --- filters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """A placeholder operand: the n-th value (cyclically) that the enclosing path reaches
    (``here``), or that any path of the batch holds."""

    n: int
    here: bool = True


COMMON_PATHS = ["a", "b", "s", "n", "n.x", "arr", "docs", "docs.x"]
RARE_PATHS = ["n.y", "n.x.y", "arr.0", "arr.1", "docs.y", "docs.0.x", "docs.1", "a.x", "a.0"]
PATHS = COMMON_PATHS * 3 + [*RARE_PATHS, "a.0.x", "missing"]
REGEXES = ["^a", "a", "b$", "^$", "A", "^.$", "a.b", "a$", "^é", r"\d", "^[a-z]+$", "^a # c", "a b"]
REGEX_OPTIONS = ["", "i", "m", "s", "x", "im", "is", "ms", "imsx"]
TYPES: list[Any] = [
    "double",
    "string",
    "object",
    "array",
    "binData",
    "bool",
    "date",
    "null",
    "int",
    "long",
    "decimal",
    "number",
    1,
    2,
    16,
]
RE_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _compiled(pattern: str, options: str) -> re.Pattern[str]:
    flags = 0
    for letter in options:
        flags |= RE_FLAGS[letter]
    return re.compile(pattern, flags)


def _merge(parts: list[Doc]) -> Doc:
    out: Doc = {}
    for part in parts:
        out.update(part)
    return out


def choice(*branches: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``branches``, each equally likely (``st.one_of`` flattens nested alternatives, so
    its weights follow how many leaves each branch has)."""
    return st.sampled_from(branches).flatmap(lambda branch: branch)


picks = st.builds(Pick, st.integers(0, 50), st.booleans())
operands = choice(picks, picks, scalars, values(1))
range_operands = st.one_of(picks, picks, scalars)
cmp_ops = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
types = st.sampled_from(TYPES)
regex_conditions = choice(
    st.builds(lambda p: {"$regex": p}, st.sampled_from(REGEXES)),
    st.builds(
        lambda p, o: {"$regex": p, "$options": o},
        st.sampled_from(REGEXES),
        st.sampled_from(REGEX_OPTIONS),
    ),
    st.builds(
        lambda p, o: {"$regex": _compiled(p, o)},
        st.sampled_from(REGEXES),
        st.sampled_from(REGEX_OPTIONS),
    ),
)
regex_values = st.builds(_compiled, st.sampled_from(REGEXES), st.sampled_from(REGEX_OPTIONS))

# operator documents: under a path, inside $not, inside a scalar $elemMatch, in $pull
operator_docs = choice(
    st.builds(lambda v: {"$eq": v}, operands),
    st.builds(lambda v: {"$ne": v}, operands),
    st.builds(lambda op, v: {op: v}, cmp_ops, range_operands),
    st.builds(lambda op, v: {op: v}, cmp_ops, range_operands),
    st.builds(lambda op, v: {op: v}, cmp_ops, values(1)),
    st.builds(
        lambda o1, v1, o2, v2: {o1: v1, o2: v2}, cmp_ops, range_operands, cmp_ops, range_operands
    ),
    st.builds(lambda vs: {"$in": vs}, st.lists(operands, max_size=4)),
    st.builds(lambda vs: {"$nin": vs}, st.lists(operands, max_size=4)),
    st.builds(lambda b: {"$exists": b}, st.booleans()),
    st.builds(lambda t: {"$type": t}, st.one_of(types, st.lists(types, min_size=1, max_size=3))),
    regex_conditions,
    st.builds(lambda vs: {"$all": vs}, st.lists(operands, max_size=3)),
    st.builds(lambda n: {"$size": n}, st.integers(0, 3)),
    st.builds(
        lambda d, r: {"$mod": [d, r]},
        st.sampled_from([2, 3, -2, 5, 2.0]),
        st.sampled_from([0, 1, -1]),
    ),
)
not_conditions = choice(
    st.builds(lambda c: {"$not": c}, operator_docs),
    st.builds(lambda r: {"$not": r}, regex_values),
)
# filters on the elements of an array of documents (keys x, y, z)
element_filters = st.builds(
    _merge,
    st.lists(
        st.builds(lambda k, c: {k: c}, sub_keys, st.one_of(operands, operator_docs)),
        min_size=1,
        max_size=2,
    ),
)
elem_match_conditions = choice(
    st.builds(lambda c: {"$elemMatch": c}, operator_docs),
    st.builds(lambda c1, c2: {"$elemMatch": {**c1, **c2}}, operator_docs, operator_docs),
    st.builds(lambda c: {"$elemMatch": c}, element_filters),
    st.builds(lambda a, b: {"$elemMatch": {"$or": [a, b]}}, element_filters, element_filters),
)
conditions = choice(
    operands,  # implicit equality (a document value: equality with the whole document)
    regex_values,
    operator_docs,
    operator_docs,
    operator_docs,
    operator_docs,
    st.builds(lambda a, b: {**a, **b}, operator_docs, operator_docs),
    not_conditions,
    elem_match_conditions,
)
field_filters = st.builds(lambda p, c: {p: c}, st.sampled_from(PATHS), conditions)
key_picks = st.builds(Pick, st.integers(0, 50))  # an id of the batch
key_filters = choice(
    st.builds(lambda k: {"id": k}, key_picks),
    st.builds(lambda k: {"id": k}, st.sampled_from(["d99", "c", "e"])),
    st.builds(lambda ks: {"id": {"$in": ks}}, st.lists(key_picks, max_size=4)),
    st.builds(lambda op, k: {"id": {op: k}}, cmp_ops, key_picks),
    st.builds(lambda k: {"id": {"$ne": k}}, key_picks),
)


def filters(depth: int) -> st.SearchStrategy[Doc]:
    leaf = choice(
        *[field_filters] * 6,
        st.builds(lambda a, b: {**a, **b}, field_filters, field_filters),
        st.builds(lambda k, f: {**k, **f}, key_filters, field_filters),
        key_filters,
    )
    if depth == 0:
        return leaf
    sub = st.lists(filters(depth - 1), min_size=1, max_size=3)
    return choice(
        leaf,
        leaf,
        leaf,
        st.builds(lambda fs: {"$and": fs}, sub),
        st.builds(lambda fs: {"$or": fs}, sub),
        st.builds(lambda fs: {"$nor": fs}, sub),
        st.builds(lambda fs, f: {"$or": fs, **f}, sub, field_filters),
    )


any_filter = filters(2)


class Concretizer:
    """Replaces ``Pick`` placeholders by values found in the batch at the condition's path."""

    def __init__(self, docs: list[Doc]) -> None:
        self._docs = docs
        self._pools: dict[str, list[Any]] = {}

    def pool(self, path: str | None) -> list[Any]:
        """The values ``path`` reaches in the batch; with None, every stored value."""
        key = "" if path is None else path
        if key not in self._pools:
            seen: dict[str, Any] = {}
            for doc in self._docs:
                if path is None:
                    found = [v for k, v in doc.items() if k != "id"]
                else:
                    found = resolve(doc, tuple(path.split(".")))
                for value in found:
                    _collect(value, seen, deep=path is None)
            self._pools[key] = list(seen.values()) or SCALARS
        return self._pools[key]

    def filter(self, flt: Doc, prefix: str = "") -> Doc:
        out: Doc = {}
        for key, cond in flt.items():
            if key in ("$and", "$or", "$nor"):
                out[key] = [self.filter(sub, prefix) for sub in cond]
            else:
                out[key] = self.condition(cond, f"{prefix}{key}")
        return out

    def condition(self, cond: Any, path: str) -> Any:
        if isinstance(cond, Pick):
            pool = self.pool(path if cond.here else None)
            return pool[cond.n % len(pool)]
        if isinstance(cond, list):
            return [self.condition(c, path) for c in cond]
        if not isinstance(cond, dict):
            return cond
        out: Doc = {}
        for op, arg in cond.items():
            if op == "$elemMatch" and isinstance(arg, dict) and not _is_operators(arg):
                out[op] = self.filter(arg, f"{path}.")
            elif op == "$elemMatch" and "$or" in arg:
                out[op] = {"$or": [self.filter(sub, f"{path}.") for sub in arg["$or"]]}
            else:
                out[op] = self.condition(arg, path)
        return out


def _collect(value: Any, seen: dict[str, Any], *, deep: bool) -> None:
    if value is MISSING:
        return
    seen.setdefault(f"{type(value).__name__}:{value!r}", value)
    if deep and isinstance(value, list):
        for v in value:
            _collect(v, seen, deep=True)
    elif deep and isinstance(value, dict):
        for v in value.values():
            _collect(v, seen, deep=True)


def _is_operators(cond: Doc) -> bool:
    return bool(cond) and all(k.startswith("$") for k in cond) and "$or" not in cond


# --- sorts and projections ------------------------------------------------------------------------

SORT_PATHS = ["a", "b", "s", "n", "n.x", "arr", "arr.0", "docs.x", "docs.0.x", "missing", "id"]
sorts = st.lists(
    st.tuples(st.sampled_from(SORT_PATHS), st.sampled_from([1, -1])),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
)
PROJECTABLE = ["a", "b", "s", "n.x", "n.y", "arr", "docs.x"]
projections = st.one_of(
    st.none(),
    st.lists(st.sampled_from(PROJECTABLE), min_size=1, max_size=3, unique=True),
    st.builds(
        lambda ps: dict.fromkeys(ps, 0),
        st.lists(st.sampled_from(PROJECTABLE), min_size=1, max_size=2, unique=True),
    ),
    st.builds(lambda p: {"id": 0, p: 1}, st.sampled_from(PROJECTABLE)),
)
sort_cases = st.tuples(
    sorts,
    st.one_of(st.just({}), any_filter),
    st.integers(0, 4),
    st.one_of(st.none(), st.integers(1, 8)),
    projections,
)

# --- runner ---------------------------------------------------------------------------------------


def run_examples(
    url: str,
    strategy: st.SearchStrategy[Any],
    check: Callable[[asyncdb.Database, Any], Awaitable[int]],
    examples: int,
) -> int:
    """Run ``check`` on ``examples`` Hypothesis examples over one connection; returns how many
    cases the checks counted."""
    counted = 0

    async def connect() -> asyncdb.Database:
        return await asyncdb.connect(url)

    with asyncio.Runner() as runner:
        db = runner.run(connect())
        try:

            @settings(
                max_examples=examples,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(strategy)
            def body(case: Any) -> None:
                nonlocal counted
                counted += runner.run(check(db, case))

            body()
        finally:
            runner.run(db.close())
    return counted


async def fresh(db: asyncdb.Database, name: str, docs: list[Doc]) -> asyncdb.Collection:
    coll = db.collection(name, allow_scan=True)
    await coll.delete_many({})
    assert await coll.count_documents({}) == 0
    await coll.insert_many(docs)
    return coll


def mismatch(what: str, query: Any, docs: list[Doc], expected: list[Any], got: list[Any]) -> str:
    wrong = set(expected) ^ set(got)
    involved = [d for d in docs if d["id"] in wrong] or docs
    return (
        f"{what} {query!r}\n  expected (reference evaluator): {expected}\n  got: {got}\n"
        f"  documents involved: {involved!r}"
    )


def reference_order(docs: list[Doc], flt: Doc, spec: list[tuple[str, int]]) -> list[Doc]:
    """The matching documents in the API's order: ``spec``, then the key ascending."""
    total = spec if any(p == "id" for p, _ in spec) else [*spec, ("id", 1)]
    node = parse_filter(flt)
    return sort_documents([d for d in docs if matches(node, d)], parse_sort(total))


# --- filters, sorts, pages ------------------------------------------------------------------------


async def check_queries(
    db: asyncdb.Database, case: tuple[list[Doc], list[Doc], list[Doc], list[Any]]
) -> int:
    docs, compound, single, sort_list = case
    filter_templates = compound + single
    concrete = Concretizer(docs)
    coll = await fresh(db, "diff_filters", docs)
    diff = difference(docs, await coll.find({}, sort=[("id", 1)]).to_list())
    assert diff is None, f"documents did not round-trip: {diff}"
    for template in filter_templates:
        flt = concrete.filter(template)
        node = parse_filter(flt)
        expected = sorted(d["id"] for d in docs if matches(node, d))
        got = [d["id"] async for d in coll.find(flt)]
        assert sorted(got) == expected, mismatch("filter", flt, docs, expected, got)
        count = await coll.count_documents(flt)
        assert count == len(expected), mismatch("count_documents", flt, docs, expected, [count])
    for spec, template, skip, limit, projection in sort_list:
        flt = concrete.filter(template)
        ordered = reference_order(docs, flt, spec)
        window = ordered[skip:] if limit is None else ordered[skip : skip + limit]
        proj = parse_projection(projection)
        expected_docs = [apply_projection(proj, d, ("id",)) for d in window]
        got_docs = await coll.find(flt, projection, sort=spec, skip=skip, limit=limit).to_list()
        query = {
            "filter": flt,
            "sort": spec,
            "skip": skip,
            "limit": limit,
            "projection": projection,
        }
        expected_ids = [d["id"] for d in window]
        got_ids = [d.get("id") for d in got_docs]
        if not (isinstance(projection, dict) and projection.get("id") == 0):
            assert got_ids == expected_ids, mismatch("sort", query, docs, expected_ids, got_ids)
        diff = difference(expected_docs, got_docs)
        assert diff is None, f"{mismatch('sort', query, docs, expected_ids, got_ids)}\n  {diff}"
    # keyset pages over the first sort walk the same order
    spec, flt = sort_list[0][0], concrete.filter(sort_list[0][1])
    expected_ids = [d["id"] for d in reference_order(docs, flt, spec)]
    paged: list[str] = []
    cursor = None
    for _ in range(len(docs) + 2):
        page = await coll.find_page(flt, sort=spec, limit=3, cursor=cursor)
        paged.extend(d["id"] for d in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    query = {"filter": flt, "sort": spec, "limit": 3}
    assert paged == expected_ids, mismatch("find_page", query, docs, expected_ids, paged)
    return len(filter_templates)


query_cases = st.tuples(
    batches,
    st.lists(any_filter, min_size=COMPOUND_FILTERS, max_size=COMPOUND_FILTERS),
    st.lists(field_filters, min_size=SINGLE_FILTERS, max_size=SINGLE_FILTERS),
    st.lists(sort_cases, min_size=SORTS_PER_EXAMPLE, max_size=SORTS_PER_EXAMPLE),
)


def test_filters_sorts_and_pages_match_the_reference_evaluator(backend_url: str) -> None:
    cases = run_examples(backend_url, query_cases, check_queries, FILTER_EXAMPLES)
    assert cases >= FILTER_EXAMPLES * FILTERS_PER_EXAMPLE


# --- updates --------------------------------------------------------------------------------------

UPDATE_PATHS = ["a", "b", "s", "n.x", "n.q", "arr", "arr.1", "docs.0.x", "new.deep", "c"]
ARITH = [1, -1, 2, 0, 10, 2.5, -0.5, Decimal("1.5"), 2**62, 1e300]


def update_ops(path: str) -> st.SearchStrategy[tuple[str, Any]]:
    options: list[st.SearchStrategy[tuple[str, Any]]] = [
        st.tuples(st.just("$set"), values(1)),
        st.tuples(st.just("$unset"), st.just("")),
        st.tuples(st.just("$inc"), st.sampled_from(ARITH)),
        st.tuples(st.just("$mul"), st.sampled_from(ARITH)),
        st.tuples(st.sampled_from(["$min", "$max"]), scalars),
        st.tuples(st.just("$push"), values(1)),
        st.tuples(
            st.just("$push"),
            st.builds(
                lambda each, sl, pos: {
                    "$each": each,
                    **({} if sl is None else {"$slice": sl}),
                    **({} if pos is None else {"$position": pos}),
                },
                st.lists(values(1), max_size=3),
                st.one_of(st.none(), st.integers(-3, 3)),
                st.one_of(st.none(), st.integers(-2, 3)),
            ),
        ),
        st.tuples(st.just("$addToSet"), values(1)),
        st.tuples(
            st.just("$addToSet"), st.builds(lambda e: {"$each": e}, st.lists(scalars, max_size=3))
        ),
        st.tuples(st.just("$pop"), st.sampled_from([1, -1])),
        st.tuples(st.just("$pull"), scalars),
        st.tuples(st.just("$pull"), operator_docs),
        st.tuples(st.just("$pull"), element_filters),
        st.tuples(st.just("$setOnInsert"), values(1)),
    ]
    if not any(part.isdigit() for part in path.split(".")):
        options.append(st.just(("$rename", "r_" + path.replace(".", "_"))))
    return st.one_of(options)


def _update_doc(ops: list[tuple[str, str, Any]], concrete: Concretizer) -> Doc:
    out: Doc = {}
    for op, path, arg in ops:
        if op == "$pull" and isinstance(arg, dict) and not _is_operators(arg):
            arg = concrete.filter(arg, f"{path}.")
        elif op not in ("$rename", "$unset"):
            arg = concrete.condition(arg, path)
        out.setdefault(op, {})[path] = arg
    return out


update_op_lists = st.lists(
    st.sampled_from(UPDATE_PATHS), min_size=1, max_size=3, unique=True
).flatmap(
    lambda paths: st.tuples(*(update_ops(p).map(lambda oa, p=p: (oa[0], p, oa[1])) for p in paths))
)


async def check_updates(db: asyncdb.Database, case: tuple[list[Doc], Any]) -> int:
    docs, ops = case
    update = _update_doc(list(ops), Concretizer(docs))
    coll = await fresh(db, "diff_updates", docs)
    try:
        parsed = parse_update(update)
    except asyncdb.QueryError:
        with pytest.raises(asyncdb.QueryError):
            await coll.update_one({"id": docs[0]["id"]}, update)
        return 0
    results: list[Doc | None] = []
    for doc in docs:
        try:
            expected: Doc | None = apply_update(parsed, doc)
        except asyncdb.UpdateError:
            expected = None
        results.append(expected)
        where = f"update {update!r} of {doc!r}"
        if expected is None:
            with pytest.raises(asyncdb.UpdateError):
                await coll.update_one({"id": doc["id"]}, update)
                pytest.fail(f"{where}: expected UpdateError (reference), the backend applied it")
            diff = difference(doc, await coll.find_one({"id": doc["id"]}))
            assert diff is None, f"{where}: a failed update changed the document: {diff}"
            continue
        result = await coll.update_one({"id": doc["id"]}, update)
        modified = 0 if difference(doc, expected) is None else 1
        assert (result.matched, result.modified) == (1, modified), f"{where}: {result}"
        diff = difference(expected, await coll.find_one({"id": doc["id"]}))
        assert diff is None, f"{where}: {diff}"
    # update_many over the original batch: all documents or none
    coll = await fresh(db, "diff_updates", docs)
    if any(r is None for r in results):
        with pytest.raises(asyncdb.UpdateError):
            await coll.update_many({}, update)
        final = docs
    else:
        many = await coll.update_many({}, update)
        assert many.matched == len(docs), f"update_many {update!r}: {many}"
        final = [r for r in results if r is not None]
    diff = difference(final, await coll.find({}, sort=[("id", 1)]).to_list())
    assert diff is None, f"update_many {update!r}: {diff}"
    return len(docs)


def test_updates_match_the_reference_applier(backend_url: str) -> None:
    strategy = st.tuples(batches, update_op_lists)
    cases = run_examples(backend_url, strategy, check_updates, UPDATE_EXAMPLES)
    assert cases >= UPDATE_EXAMPLES * 8
