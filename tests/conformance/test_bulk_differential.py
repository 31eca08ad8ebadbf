"""Differential test of ``bulk_write``: random operation lists (ordered and unordered, with
duplicate keys and failing updates at random positions) on every backend against an oracle that
applies the same operations one call at a time (insert_one, update_one, ...) on the memory
backend, catching each failure. Result counts, upserted ids, the failed indexes and their error
classes, and the documents left must be equal. Few examples per backend (``ci`` profile);
``ASYNCDB_TEST_EXAMPLES`` raises it for a deeper local hunt.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st

import asyncdb

from .test_differential import run_examples

EXAMPLES = max(int(os.environ.get("ASYNCDB_TEST_EXAMPLES", "200")) // 25, 4)
KEYS = [f"k{i}" for i in range(5)]

_key = st.sampled_from(KEYS)
_n = st.integers(-2, 3)
_update = st.one_of(
    st.builds(lambda n: {"$inc": {"n": n}}, _n),
    st.builds(lambda n: {"$set": {"n": n, "t": "x"}}, _n),
    st.just({"$inc": {"t": 1}}),  # fails (UpdateError) where t holds a string
    st.just({"$unset": {"t": ""}}),
)
_op = st.one_of(
    st.builds(lambda k, n: asyncdb.InsertOne({"id": k, "n": n}), _key, _n),
    st.builds(lambda k, u: asyncdb.UpdateOne({"id": k}, u), _key, _update),
    st.builds(lambda k, u: asyncdb.UpdateOne({"id": k}, u, upsert=True), _key, _update),
    st.builds(lambda n, u: asyncdb.UpdateMany({"n": {"$gte": n}}, u), _n, _update),
    st.builds(lambda k, n: asyncdb.ReplaceOne({"id": k}, {"n": n}), _key, _n),
    st.builds(lambda k: asyncdb.DeleteOne({"id": k}), _key),
    st.builds(lambda n: asyncdb.DeleteMany({"n": {"$lt": n}}), _n),
)
cases = st.tuples(
    st.lists(st.builds(lambda k, n: {"id": k, "n": n}, _key, _n), unique_by=lambda d: d["id"]),
    st.lists(_op, min_size=1, max_size=12),
    st.booleans(),
)


async def _oracle(
    docs: list[dict[str, Any]], ops: list[Any], ordered: bool
) -> tuple[dict[str, int], dict[int, Any], list[tuple[int, str]], list[dict[str, Any]]]:
    counts = dict.fromkeys(("inserted", "matched", "modified", "deleted"), 0)
    upserted: dict[int, Any] = {}
    errors: list[tuple[int, str]] = []
    async with asyncdb.connect("memory://") as db:
        coll = db.collection("bulk", allow_scan=True)
        if docs:
            await coll.insert_many(docs)
        for i, op in enumerate(ops):
            try:
                if isinstance(op, asyncdb.InsertOne):
                    await coll.insert_one(op.document)
                    counts["inserted"] += 1
                elif isinstance(op, asyncdb.DeleteOne | asyncdb.DeleteMany):
                    many = isinstance(op, asyncdb.DeleteMany)
                    call = coll.delete_many if many else coll.delete_one
                    counts["deleted"] += await call(op.filter)
                else:
                    if isinstance(op, asyncdb.ReplaceOne):
                        res = await coll.replace_one(op.filter, op.replacement, op.upsert)
                    elif isinstance(op, asyncdb.UpdateMany):
                        res = await coll.update_many(op.filter, op.update, op.upsert)
                    else:
                        res = await coll.update_one(op.filter, op.update, op.upsert)
                    counts["matched"] += res.matched_count
                    counts["modified"] += res.modified_count
                    if res.upserted_id is not None:
                        upserted[i] = res.upserted_id
            except (asyncdb.DuplicateKey, asyncdb.UpdateError) as exc:
                errors.append((i, type(exc).__name__))
                if ordered:
                    break
        left = await coll.find({}, sort=[("id", 1)]).to_list()
    return counts, upserted, errors, left


async def check_bulk(db: asyncdb.Database, case: Any) -> int:
    docs, ops, ordered = case
    coll = db.collection("bulk", allow_scan=True)
    await coll.delete_many({})
    if docs:
        await coll.insert_many(docs)
    counts, upserted, errors, left = await _oracle(docs, ops, ordered)
    try:
        result = await coll.bulk_write(ops, ordered=ordered)
        got_errors: list[tuple[int, str]] = []
    except asyncdb.BulkWriteError as exc:
        result = exc.result
        got_errors = [(i, type(e).__name__) for i, e in exc.errors]
    where = f"ops={ops!r} ordered={ordered} docs={docs!r}"
    assert got_errors == errors, where
    assert (
        result.inserted_count,
        result.matched_count,
        result.modified_count,
        result.deleted_count,
    ) == tuple(counts.values()), where
    assert result.upserted_ids == upserted and result.upserted_count == len(upserted), where
    assert await coll.find({}, sort=[("id", 1)]).to_list() == left, where
    return 1


def test_bulk_write_matches_one_call_at_a_time(backend_url: str) -> None:
    checked = run_examples(backend_url, cases, check_bulk, EXAMPLES)
    assert checked >= EXAMPLES
