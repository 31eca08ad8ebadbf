"""``hint=`` and ``comment=`` (DESIGN §1, "added 2026-12") on every read and write operation and
on bulk_write's operations, on every backend: the same answers as without them, a hint that
names no declared index (or one the filter cannot use) a QueryError before any I/O, DynamoDB
querying the hinted GSI, MongoDB sending both to the server, and the comment in the audit
event and the span."""

from __future__ import annotations

from typing import Any

import pytest

import asyncdb

INDEXES = ["company", ("company", "prio")]
DOCS = [
    {"id": "a", "company": "acme", "prio": 3, "tags": ["x", "y"]},
    {"id": "b", "company": "acme", "prio": 1, "tags": ["y"]},
    {"id": "c", "company": "beta", "prio": 2},
    {"id": "d", "company": "acme", "prio": 5},
]


async def _seed(db: asyncdb.Database, name: str = "alerts") -> asyncdb.Collection:
    coll = db.collection(name, indexes=INDEXES)
    await coll.insert_many(DOCS, comment="seed")
    return coll


async def test_every_operation_takes_hint_and_comment_with_the_same_answers(
    db: asyncdb.Database,
) -> None:
    alerts = await _seed(db)
    await _store_acts_on_the_hint(db, alerts)
    acme = {"company": "acme"}
    opts: dict[str, Any] = {"hint": "ix_company", "comment": "dashboard"}
    by_key: dict[str, Any] = {"hint": {"_id": 1}, "comment": {"app": "billing"}}
    found = await alerts.find(acme, sort=[("prio", 1)], **opts).to_list()
    assert [d["id"] for d in found] == ["b", "a", "d"]
    pattern = await alerts.find(acme, sort=[("prio", -1)], hint=[("company", 1)]).to_list()
    assert [d["id"] for d in pattern] == ["d", "a", "b"]
    assert (await alerts.find_one({"company": "acme", "prio": {"$gt": 2}}, **opts))["id"] in "ad"
    assert (await alerts.find_one({"id": "c"}, **by_key)) == DOCS[2]
    assert await alerts.count_documents(acme, **opts) == 3
    assert (
        await alerts.count_documents(
            {"company": "acme", "prio": {"$gte": 3}},
            hint={
                "company": 1,
                "prio": 1,
            },
        )
        == 2
    )
    assert await alerts.distinct("tags", acme, **opts) == ["x", "y"]
    page = await alerts.find_page(acme, sort=[("prio", 1)], limit=2, **opts)
    assert [d["id"] for d in page.items] == ["b", "a"]
    grouped = await alerts.aggregate(
        [{"$match": acme}, {"$group": {"_id": "$company", "n": {"$sum": "$prio"}}}], **opts
    ).to_list()
    assert grouped == [{"_id": "acme", "n": 9}]
    assert await alerts.estimated_document_count(comment="stats") == 4

    res = await alerts.update_one({"company": "acme", "prio": 1}, {"$set": {"s": 1}}, **opts)
    assert (res.matched_count, res.modified_count) == (1, 1)
    res = await alerts.update_many(acme, {"$inc": {"prio": 10}}, **opts)
    assert (res.matched_count, res.modified_count) == (3, 3)
    res = await alerts.replace_one({"id": "c"}, {"company": "beta", "prio": 7}, **by_key)
    assert res.matched_count == 1
    before = await alerts.find_one_and_update(
        {"company": "acme", "prio": {"$gt": 12}},
        {"$set": {"top": True}},
        "before",
        sort=[("prio", 1)],
        hint="ix_company_prio",
        comment="x",
    )
    assert before is not None and before["id"] == "a" and "top" not in before
    after = await alerts.find_one_and_replace(
        {"company": "beta"}, {"company": "beta", "prio": 8}, **opts
    )
    assert after == {"id": "c", "company": "beta", "prio": 8}
    gone = await alerts.find_one_and_delete(acme, sort=[("prio", -1)], **opts)
    assert gone is not None and gone["id"] == "d"
    assert await alerts.delete_one({"company": "beta"}, **opts) == 1
    gone_too = {"company": "acme", "prio": {"$gte": 11}}
    assert await alerts.delete_many(gone_too, hint="ix_company_prio", comment="x") == 2
    assert await alerts.count_documents({}, allow_scan=True) == 0

    key = await alerts.insert_one({"id": "e", "company": "gamma", "prio": 1}, comment="one")
    assert key == "e"
    result = await alerts.bulk_write(
        [
            asyncdb.InsertOne({"id": "f", "company": "gamma", "prio": 2}),
            asyncdb.UpdateOne(
                {"company": "gamma", "prio": 1}, {"$set": {"s": 2}}, hint="ix_company"
            ),
            asyncdb.UpdateMany({"company": "gamma"}, {"$inc": {"prio": 1}}, hint=[("company", 1)]),
            asyncdb.ReplaceOne({"id": "f"}, {"company": "gamma", "prio": 9}, hint="_id_"),
            asyncdb.DeleteOne({"company": "gamma", "prio": {"$gte": 9}}, hint="ix_company"),
            asyncdb.DeleteMany({"company": "gamma"}, hint={"company": 1, "prio": 1}),
        ],
        comment="batch",
    )
    assert (result.inserted_count, result.matched_count, result.modified_count) == (1, 4, 4)
    assert result.deleted_count == 2


async def test_a_bad_hint_is_a_query_error_before_any_io(db: asyncdb.Database) -> None:
    fresh = db.collection("fresh", indexes=INDEXES)
    bad: list[Any] = [
        "ix_nope",  # no such index
        [("company", -1)],  # a key pattern no index has
        {"tags": 1},
        42,  # not a name or a pattern
        [("company", 2)],
    ]
    for hint in bad:
        with pytest.raises(asyncdb.QueryError) as caught:
            await fresh.find_one({"company": "acme"}, hint=hint)
        assert caught.value.path == "hint"
    # an index the filter has no condition for (null matches documents a sparse index lacks)
    for filt in ({"prio": 3}, {"company": None}, {"company": {"$exists": True}}, {}):
        with pytest.raises(asyncdb.QueryError, match="cannot be used"):
            await fresh.count_documents(filt, hint="ix_company", allow_scan=True)
    with pytest.raises(asyncdb.QueryError, match="operation 1"):
        await fresh.bulk_write(
            [asyncdb.InsertOne({"id": "z"}), asyncdb.DeleteOne({"prio": 1}, hint="ix_nope")]
        )
    with pytest.raises(asyncdb.QueryError):
        await fresh.update_one({"prio": 1}, {"$set": {"a": 1}}, hint="ix_company")
    with pytest.raises(asyncdb.QueryError):
        fresh.find({"company": "a"}, comment=object())  # a comment must be a portable value
    # nothing reached the store: the collection was never even created
    assert "fresh" not in [spec.name for spec in await db.list_collections()]


async def _store_acts_on_the_hint(db: asyncdb.Database, alerts: asyncdb.Collection) -> None:
    """What the store does with a valid hint, where it can act on one."""
    backend_name = db.backend
    plan = await alerts.explain({"id": "a", "company": "acme"}, hint="ix_company")
    if backend_name == "dynamodb":
        # the hinted GSI is queried even where the key would do
        assert plan.access_path == "index:ix_company"
        assert plan.native["IndexName"] == "ix_company"
        with pytest.raises(asyncdb.QueryError, match="DynamoDB"):  # a range on a compound GSI
            await alerts.find_one({"company": {"$gt": "a"}}, hint="ix_company_prio")
        assert await alerts.find_one({"company": {"$gt": "b"}}, hint="ix_company") == DOCS[2]
    if backend_name == "mongo":
        # the server receives the hint: an index it does not have is its error
        server: Any = db._store.db  # type: ignore[attr-defined]  # the driver's database
        await server["alerts"].drop_index("ix_company_prio")
        with pytest.raises(asyncdb.AsyncDBError):
            await alerts.find({"company": "acme"}, hint="ix_company_prio").to_list()
        found = await alerts.find_one({"company": "acme", "prio": 3}, hint="ix_company")
        assert found is not None and found["id"] == "a"
        pattern = [("company", 1), ("prio", 1)]
        await server["alerts"].create_index(pattern, name="ix_company_prio")  # as it was


async def test_the_comment_reaches_the_audit_event() -> None:
    events: list[dict[str, Any]] = []
    async with asyncdb.connect("memory://", audit=events.append, audit_reads=True) as db:
        alerts = await _seed(db)
        await alerts.update_many({"company": "acme"}, {"$set": {"s": 1}}, comment="nightly fix")
        await alerts.find({"company": "acme"}, comment={"job": 7}).to_list()
        await alerts.count_documents({"company": "acme"})
    by_op = {e["op"]: e for e in events}
    assert by_op["insert_many"]["comment"] == "seed"
    assert by_op["update_many"]["comment"] == "nightly fix"
    assert by_op["find"]["comment"] == "{'job': 7}"
    assert "comment" not in by_op["count_documents"]
