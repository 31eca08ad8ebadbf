"""The DynamoDB store on DynamoDB Local: what the conformance suite does not pin.

Its documented limits (a transaction commits at most 100 items), the shadow attributes it
writes (TTL epoch seconds, GSI keys), pagination across LastEvaluatedKey with a residual and a
limit, and the raw item layout.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from servers.dynamodb import DUMMY_CREDENTIALS, DynamoEndpoint

import asyncdb


@pytest.fixture
async def db(dynamodb_url: str) -> Any:
    database = await asyncdb.connect(dynamodb_url)
    try:
        yield database
    finally:
        await database.close()


async def raw_item(url: str, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    import aioboto3

    endpoint = DynamoEndpoint.from_url(url)
    async with aioboto3.Session().client(
        "dynamodb",
        endpoint_url=endpoint.endpoint_url,
        region_name=endpoint.region,
        **DUMMY_CREDENTIALS,
    ) as client:
        got = await client.get_item(
            TableName=endpoint.table_prefix + table, Key=key, ConsistentRead=True
        )
    item: dict[str, Any] | None = got.get("Item")
    return item


async def test_a_transaction_of_more_than_100_items_is_refused_and_writes_nothing(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("big", allow_scan=True)
    with pytest.raises(asyncdb.TransactionError, match="at most 100"):
        async with db.transaction() as tx:
            await tx.collection("big").insert_many([{"id": f"k{i}"} for i in range(101)])
    assert await coll.count_documents({}) == 0
    async with db.transaction() as tx:
        await tx.collection("big").insert_many([{"id": f"k{i}"} for i in range(100)])
    assert await coll.count_documents({}) == 100


async def test_ttl_is_kept_in_a_shadow_epoch_attribute_and_expired_items_are_filtered(
    db: asyncdb.Database, dynamodb_url: str
) -> None:
    coll = db.collection("ttl", ttl="exp", allow_scan=True)
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(milliseconds=1)
    await coll.insert_many(
        [{"id": "old", "exp": now - timedelta(hours=1)}, {"id": "new", "exp": now + timedelta(1)}]
    )
    item = await raw_item(dynamodb_url, "ttl", {"id": {"S": "snew"}})
    assert item is not None
    # rounded up to the next second: DynamoDB never deletes an item before it expires
    assert item["._ttl"] == {"N": str(int((now + timedelta(1)).timestamp()) + 1)}
    # DynamoDB deletes expired items eventually (DynamoDB Local too); until then never returned
    assert [d["id"] async for d in coll.find({})] == ["new"]
    assert await coll.find_one({"id": "old"}) is None


async def test_the_item_holds_an_exact_body_and_native_shadows(
    db: asyncdb.Database, dynamodb_url: str
) -> None:
    coll = db.collection("raw", indexes=["status"])
    await coll.insert_one({"id": "a", "status": "open", "f": 1.0, "l": [1]})
    item = await raw_item(dynamodb_url, "raw", {"id": {"S": "sa"}})
    assert item is not None
    assert item["f"] == {"N": "1"}  # DynamoDB's one number type: the shadow loses 1.0 ...
    assert item["._d"]["S"] == '{"id":"a","status":"open","f":1.0,"l":[1]}'  # ... the body not
    assert item["l"] == {"S": "\x00?"}
    assert item["._h.ix_status"] == {"S": "s"} and item["._r.ix_status"] == {"S": "sopen"}
    got = await coll.find_one({"id": "a"})
    assert got is not None and type(got["f"]) is float


async def test_limit_holds_across_pages_when_the_residual_drops_items(db: asyncdb.Database) -> None:
    coll = db.collection("pages", allow_scan=True)
    # 1,000 items over several 200-item pages; only every 50th matches the residual ($regex)
    await coll.insert_many(
        [{"id": f"k{i:04d}", "s": "hit" if i % 50 == 0 else "miss"} for i in range(1000)]
    )
    found = await coll.find({"s": {"$regex": "^h"}}, limit=7).to_list()
    assert len(found) == 7
    assert await coll.count_documents({"s": {"$regex": "^h"}}) == 20
    # a filter that matches nothing still walks every page (empty pages are normal)
    assert await coll.count_documents({"s": "none"}) == 0


async def test_a_selective_gsi_query_reads_only_its_partition(db: asyncdb.Database) -> None:
    coll = db.collection("gsi", indexes=["colour"])
    await coll.insert_many(
        [{"id": f"k{i}", "colour": "red" if i % 10 == 0 else "blue", "n": i} for i in range(300)]
        + [{"id": "arr", "colour": ["red", "green"]}, {"id": "none", "colour": None}]
    )
    assert sorted([d["id"] async for d in coll.find({"colour": "red"})]) == sorted(
        [f"k{i}" for i in range(0, 300, 10)] + ["arr"]
    )
    plan = await coll.explain({"colour": "red"})
    assert plan.access_path == "index:ix_colour"
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find({"colour": None}).to_list()


# --- insert_many(assume_new=True): the batch puts without the duplicate-key lookup ------------


async def raw_items(url: str, table: str) -> dict[str, dict[str, Any]]:
    """Every item of ``table``, by its body, with the write stamp's random tokens left out
    (its write number and how many tokens it holds kept)."""
    import aioboto3

    endpoint = DynamoEndpoint.from_url(url)
    items: dict[str, dict[str, Any]] = {}
    async with aioboto3.Session().client(
        "dynamodb",
        endpoint_url=endpoint.endpoint_url,
        region_name=endpoint.region,
        **DUMMY_CREDENTIALS,
    ) as client:
        params: dict[str, Any] = {"TableName": endpoint.table_prefix + table}
        while True:
            page = await client.scan(**params, ConsistentRead=True)
            for item in page["Items"]:
                number, *tokens = item["._w"]["S"].split(" ")
                item["._w"] = {"S": f"{number} x{len(tokens)}"}
                items[item["._d"]["S"]] = item
            if "LastEvaluatedKey" not in page:
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_assume_new_stores_exactly_the_items_the_checked_insert_stores(dynamodb_url: str) -> None:
    import asyncio

    from conformance.strategies import batches
    from hypothesis import HealthCheck, given, settings

    padding = [{"id": f"p{i:03d}", "n": i, "s": "x" * (i % 7)} for i in range(100)]
    tables = iter(range(1000))

    async def check(docs: list[dict[str, Any]]) -> None:
        async with asyncdb.connect(dynamodb_url) as db:
            # a small batch (the checked insert's TransactWriteItems, each item encoded for
            # its request; assume_new's batch puts reuse the items the size checks encoded)
            # and one of more than 100 items (BatchWriteItem after a BatchGetItem of the keys)
            for batch in (docs, docs + padding):
                n = next(tables)
                checked = db.collection(f"checked{n}", indexes=["a"])
                assumed = db.collection(f"assumed{n}", indexes=["a"])
                assert await checked.insert_many(batch) == [d["id"] for d in batch]
                keys = await assumed.insert_many(batch, assume_new=True)
                assert keys == [d["id"] for d in batch]
                want = await raw_items(dynamodb_url, f"checked{n}")
                assert len(want) == len(batch)
                assert await raw_items(dynamodb_url, f"assumed{n}") == want
                everything: dict[str, Any] = {"sort": [("id", 1)], "allow_scan": True}
                got = await assumed.find({}, **everything).to_list()
                assert got == await checked.find({}, **everything).to_list()

    @settings(
        max_examples=3,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches)
    def body(docs: list[dict[str, Any]]) -> None:
        asyncio.run(check(docs))

    body()


async def test_assume_new_skips_the_key_lookup_so_a_stored_key_is_overwritten(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("assumed", allow_scan=True)
    await coll.insert_one({"id": "k1", "v": "old"})
    batch = [{"id": f"k{i}", "v": "new"} for i in range(150)]
    with pytest.raises(asyncdb.DuplicateKey):  # the checked insert looks first ...
        await coll.insert_many(batch)
    assert await coll.count_documents({}) == 1
    # ... the caller vouching for new keys is believed: nothing looked the key up
    assert await coll.insert_many(batch, assume_new=True) == [f"k{i}" for i in range(150)]
    assert await coll.find_one({"id": "k1"}) == {"id": "k1", "v": "new"}
    assert await coll.count_documents({}) == 150


async def test_assume_new_still_refuses_a_batch_holding_a_key_twice_before_any_write(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("assumed", allow_scan=True)
    with pytest.raises(asyncdb.DuplicateKey, match="twice"):
        await coll.insert_many([{"id": "a"}, {"id": "b"}, {"id": "a"}], assume_new=True)
    with pytest.raises(asyncdb.QueryError, match="assume_new"):
        await coll.insert_many([{"id": "c"}], assume_new=1)  # type: ignore[arg-type]
    assert await coll.count_documents({}) == 0


async def test_assume_new_is_checked_inside_a_transaction_and_on_ttl_collections(
    db: asyncdb.Database,
) -> None:
    coll = db.collection("assumed", allow_scan=True)
    await coll.insert_one({"id": "a", "v": 1})
    with pytest.raises(asyncdb.DuplicateKey):
        async with db.transaction() as tx:
            await tx.collection("assumed").insert_many([{"id": "a"}, {"id": "b"}], assume_new=True)
    expiring = db.collection("assumed_ttl", ttl="exp", allow_scan=True)
    await expiring.insert_one({"id": "a", "v": 1})
    with pytest.raises(asyncdb.DuplicateKey):
        await expiring.insert_many([{"id": "a"}, {"id": "b"}], assume_new=True)
    assert await coll.find({}).to_list() == [{"id": "a", "v": 1}]
    assert await expiring.find({}).to_list() == [{"id": "a", "v": 1}]
