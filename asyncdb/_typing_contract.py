"""What a user's type checker sees of typed collections, checked by ``mypy --strict asyncdb``
(CI's types phase). Never imported at runtime.

``assert_type`` fails the check when a read stops carrying the model's type; the one
``type: ignore[index]`` fails it (as an unused ignore) if indexing a model instance like a dict
ever stops being an error.
"""

from __future__ import annotations

from typing import Any, assert_type

import asyncdb


class _Alert:  # any class types a collection; a pydantic model in practice
    id: str | None
    priority: int


async def _typed_reads(db: asyncdb.Database) -> None:
    alerts = db.collection("alerts", model=_Alert)
    assert_type(alerts, asyncdb.Collection[_Alert])
    assert_type(await alerts.find_one({"id": "a"}), _Alert | None)
    assert_type(await alerts.find({}).to_list(), list[_Alert])
    async for alert in alerts.find({"priority": {"$gt": 5}}, sort=[("priority", -1)]):
        assert_type(alert, _Alert)
    assert_type((await alerts.find_page({})).items, list[_Alert])
    after = await alerts.find_one_and_update({"id": "a"}, {"$inc": {"priority": 1}})
    assert_type(after, _Alert | None)
    # A projected read returns dicts, and is typed so.
    assert_type(await alerts.find_one({"id": "a"}, ["priority"]), dict[str, Any] | None)
    assert_type(await alerts.find({}, projection=["priority"]).to_list(), list[dict[str, Any]])
    assert_type((await alerts.find_page({}, projection=["id"])).items, list[dict[str, Any]])
    projected = await alerts.find_one_and_replace({"id": "a"}, _Alert(), projection=["id"])
    assert_type(projected, dict[str, Any] | None)
    positional = await alerts.find_one_and_replace({"id": "a"}, _Alert(), False, None, ["id"])
    assert_type(positional, dict[str, Any] | None)
    assert_type(await alerts.find_one_and_delete({}, projection=["id"]), dict[str, Any] | None)
    assert_type(await alerts.find_one_and_delete({}, None, ["id"]), dict[str, Any] | None)
    replaced = await alerts.find_one_and_replace({"id": "a"}, _Alert())
    assert_type(replaced, _Alert | None)
    before = await alerts.find_one_and_replace({"id": "a"}, {"priority": 2}, True, None, None)
    assert_type(before, _Alert | None)
    assert_type(await alerts.find_one_and_delete({"id": "a"}), _Alert | None)
    assert_type(await alerts.find_one_and_delete({}, [("priority", 1)]), _Alert | None)
    # Writes take instances, also in bulk; aggregate and distinct give plain values.
    await alerts.insert_many([_Alert(), {"priority": 1}], ordered=False)
    result = await alerts.bulk_write(
        [asyncdb.InsertOne(_Alert()), asyncdb.ReplaceOne({"id": "a"}, _Alert())]
    )
    assert_type(result, asyncdb.BulkWriteResult)
    assert_type(asyncdb.InsertOne(_Alert()), asyncdb.InsertOne[_Alert])
    assert_type(asyncdb.InsertOne({"id": "a"}), asyncdb.InsertOne[dict[str, str]])
    assert_type(await alerts.aggregate([{"$match": {}}]).to_list(), list[dict[str, Any]])
    assert_type(await alerts.distinct("priority"), list[Any])
    await alerts.insert_one(_Alert())
    await alerts.insert_one({"priority": 1})
    one = await alerts.find_one({})
    assert one is not None
    one["priority"]  # type: ignore[index]  # a model instance is not a dict


async def _plain_reads(db: asyncdb.Database, untyped: asyncdb.Collection) -> None:
    docs = db.collection("docs")
    assert_type(docs, asyncdb.Collection[dict[str, Any]])
    assert_type(await docs.find_one({}), dict[str, Any] | None)
    assert_type(await docs.find({}).to_list(), list[dict[str, Any]])
    assert_type(await untyped.find_one({}), dict[str, Any] | None)
    assert_type(await docs.find_one_and_delete({}), dict[str, Any] | None)
    assert_type(await docs.find_one_and_replace({}, {"n": 1}), dict[str, Any] | None)
    ops: list[asyncdb.InsertOne] = [asyncdb.InsertOne({"n": 1})]  # bare: a mapping
    await docs.bulk_write(ops)
    async with db.transaction() as tx:
        assert_type(tx.collection("docs"), asyncdb.Collection[Any])
