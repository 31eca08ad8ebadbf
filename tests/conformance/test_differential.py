"""Differential tests: every backend against the reference evaluator, on random data.

Hypothesis draws batches of documents (nulls, missing fields, nested documents, arrays of scalars
and of documents, mixed types: dates, Decimals, bytes, booleans next to 0/1, ints next to floats)
and random filters (every operator of DESIGN §2, ``$and/$or/$nor/$not``, dotted and numeric
paths), sorts, projections and updates. The oracle is ``asyncdb.query``: ``parse_filter`` +
``matches`` for filters, ``sort_documents`` for order (ties broken by key, as the API does),
``apply_projection`` and ``apply_update``. At least 200 examples x 10 filters per backend.

The strategies live in strategies.py (shared with test_mongo_wire_oracle.py). Filter operands
are often ``Pick(n)`` placeholders, replaced before the query runs by the n-th value that the
condition's path reaches in the batch, so filters hit the data instead of missing it by chance.

Each test runs its own event loop (``asyncio.Runner``) around one connection, so Hypothesis
can drive many examples through it; the count of checked cases is asserted at the end.
The ``ci`` profile (conftest) derandomizes, so CI sees the same cases every run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
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
    sort_documents,
)

from .strategies import (
    Concretizer,
    any_filter,
    batches,
    field_filters,
    sort_cases,
    update_doc,
    update_op_lists,
)
from .support import difference

# ASYNCDB_TEST_EXAMPLES=2000 (with HYPOTHESIS_PROFILE=dev) for a deeper local hunt
FILTER_EXAMPLES = int(os.environ.get("ASYNCDB_TEST_EXAMPLES", "200"))
COMPOUND_FILTERS = 4  # $and/$or/$nor trees and several fields
SINGLE_FILTERS = 6  # one condition on one path: the sharpest test of each operator
FILTERS_PER_EXAMPLE = COMPOUND_FILTERS + SINGLE_FILTERS
SORTS_PER_EXAMPLE = 3
UPDATE_EXAMPLES = max(FILTER_EXAMPLES // 2, 1)

Doc = dict[str, Any]

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
    await check_sorts(coll, docs, concrete, sort_list)
    return len(filter_templates)


async def check_sorts(
    coll: asyncdb.Collection, docs: list[Doc], concrete: Concretizer, sort_list: list[Any]
) -> None:
    """Each sort case (filter, sort, skip, limit, projection) and keyset pages over the first
    one return the reference evaluator's order."""
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


query_cases = st.tuples(
    batches,
    st.lists(any_filter, min_size=COMPOUND_FILTERS, max_size=COMPOUND_FILTERS),
    st.lists(field_filters, min_size=SINGLE_FILTERS, max_size=SINGLE_FILTERS),
    st.lists(sort_cases, min_size=SORTS_PER_EXAMPLE, max_size=SORTS_PER_EXAMPLE),
)


def test_filters_sorts_and_pages_match_the_reference_evaluator(backend_url: str) -> None:
    cases = run_examples(backend_url, query_cases, check_queries, FILTER_EXAMPLES)
    assert cases >= FILTER_EXAMPLES * FILTERS_PER_EXAMPLE


# Sorts on declared indexes: the stores that sort natively (``server_side_sort``) do it on their
# own structures (PostgreSQL's sort-key columns, Firestore's hidden fields, SQLite's ORDER BY,
# MongoDB's index), which must give the reference order for mixed types, arrays and missing values.
INDEXED_SORT_PATHS = ["a", "b", "s", "n", "n.x", "arr", "docs.x", "missing"]


async def check_indexed_sorts(db: asyncdb.Database, case: tuple[list[Doc], list[Any]]) -> int:
    docs, sort_list = case
    coll = db.collection("diff_sorted", indexes=INDEXED_SORT_PATHS, allow_scan=True)
    await coll.delete_many({})
    await coll.insert_many(docs)
    plan = await coll.explain({}, sort=[("n", -1)])
    assert plan.sort_pushed and not plan.client_sort, plan
    await check_sorts(coll, docs, Concretizer(docs), sort_list)
    return len(sort_list)


def test_sorts_on_indexed_fields_match_the_reference_evaluator(backend_url: str) -> None:
    async def sorts_natively() -> bool:
        async with asyncdb.connect(backend_url) as db:
            return "server_side_sort" in db.capabilities

    if not asyncio.run(sorts_natively()):
        pytest.skip("this backend does not sort natively (the client-side sort is tested above)")
    examples = max(1, FILTER_EXAMPLES // 4)
    strategy = st.tuples(
        batches, st.lists(sort_cases, min_size=SORTS_PER_EXAMPLE, max_size=SORTS_PER_EXAMPLE)
    )
    cases = run_examples(backend_url, strategy, check_indexed_sorts, examples)
    assert cases >= examples * SORTS_PER_EXAMPLE


async def check_updates(db: asyncdb.Database, case: tuple[list[Doc], Any]) -> int:
    docs, ops = case
    update = update_doc(list(ops), Concretizer(docs))
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
