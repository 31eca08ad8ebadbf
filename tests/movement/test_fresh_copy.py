"""A copy that is not resumed, into a destination collection found empty at its start, writes
its batches without the duplicate-key check (``insert_many(assume_new=True)``): nothing but
the copy's own batches can hold its keys, each written once. A destination holding documents
already, and every resumed copy, keep the checked path: a key a foreign document holds is
re-applied by key (the source's document replaces it) and verify lists the destination's
extra documents."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from backends.test_dynamodb_store import raw_items
from servers.dynamodb import DynamoEndpoint, with_query

import asyncdb

WHEN = datetime(2025, 3, 14, tzinfo=UTC)
N = 300
BATCH = 150  # more than 100: the checked insert reads the keys (BatchGetItem) first


def documents() -> list[dict[str, Any]]:
    return [
        {"id": f"k{i:04d}", "company": f"c{i % 5}", "n": i if i % 2 else float(i),
         "at": WHEN + timedelta(seconds=i), "tags": [i % 3, {"t": "x"}]}
        for i in range(N)
    ]  # fmt: skip


def destination(url: str, name: str) -> str:
    """A destination of its own on the same DynamoDB Local (its tables under the test's
    prefix, removed with the test's)."""
    return with_query(url, table_prefix=DynamoEndpoint.from_url(url).table_prefix + name + "_")


async def fill_source(mongo_url: str) -> None:
    async with asyncdb.connect(mongo_url) as db:
        await db.collection("events", indexes=["company"]).insert_many(documents())


async def copy(src: str, dst: str, **options: Any) -> asyncdb.CopyReport:
    return await asyncdb.copy(src, dst, batch_size=BATCH, workers=2, **options)


async def test_a_fresh_copy_skips_the_key_lookup_and_stores_what_the_checked_copy_stores(
    mongo_url: str, dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await fill_source(mongo_url)
    fresh, checked = destination(dynamodb_url, "fresh"), destination(dynamodb_url, "checked")
    async with asyncdb.connect(checked) as db:  # not empty: the copy takes the checked path
        await db.collection("events", indexes=["company"]).insert_one({"id": "zzz", "n": -1})
    # the requests each copy sent to its destination, by operation
    fast_calls, slow_calls = Counter[str](), Counter[str]()
    for url, calls in ((fresh, fast_calls), (checked, slow_calls)):
        async with asyncdb.connect(url) as db:
            db._store.client.meta.events.register(  # type: ignore[attr-defined]
                "after-call.dynamodb", lambda model, calls=calls, **_: calls.update([model.name])
            )
            report = await copy(mongo_url, db, verify=False)
            assert report.written == N
    # the checked copy read its keys before writing them; the fresh copy did not
    assert fast_calls["BatchGetItem"] == 0 and fast_calls["TransactWriteItems"] == 0
    assert slow_calls["BatchGetItem"] >= N // 100
    assert fast_calls["BatchWriteItem"] == slow_calls["BatchWriteItem"] == N // 25
    assert (await asyncdb.verify(mongo_url, fresh)).equal
    extra = (await asyncdb.verify(mongo_url, checked)).collections["events"].extra
    assert extra == ["zzz"]
    # item for item (attributes, GSI shadows, body, write number) the same
    want = await raw_items(checked, "events")
    want = {body: item for body, item in want.items() if '"zzz"' not in body}
    assert len(want) == N
    assert await raw_items(fresh, "events") == want
    async with asyncdb.connect(fresh) as db:
        got = await db.collection("events").find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert got == documents()


async def test_a_key_held_by_a_foreign_document_is_re_applied_and_extras_are_reported(
    mongo_url: str, dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await fill_source(mongo_url)
    dst = destination(dynamodb_url, "taken")
    async with asyncdb.connect(dst) as db:
        foreign = db.collection("events", indexes=["company"])
        await foreign.insert_many([{"id": "k0007", "by": "another app"}, {"id": "x1", "n": 0}])
    report = await copy(mongo_url, dst)
    assert report.written == N
    assert report.verify is not None and not report.verify.equal
    result = report.verify.collections["events"]
    assert result.extra == ["x1"] and result.missing == [] and result.different == []
    async with asyncdb.connect(dst) as db:
        events = db.collection("events", indexes=["company"])
        assert await events.find_one({"id": "k0007"}) == documents()[7]
        assert await events.count_documents({}, allow_scan=True) == N + 1


async def test_assume_new_is_a_hint_stores_with_a_free_key_check_keep() -> None:
    async with asyncdb.connect("memory://") as db:
        coll = db.collection("events")
        await coll.insert_one({"id": "a"})
        with pytest.raises(asyncdb.DuplicateKey):
            await coll.insert_many([{"id": "a"}, {"id": "b"}], assume_new=True)
        assert await coll.count_documents({}, allow_scan=True) == 1
