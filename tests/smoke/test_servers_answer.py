"""Each real test server answers through its own raw driver, with the URL its fixture gives.

A failure here is about the test bed (the server, its install, the URL the fixture builds),
not about asyncdb. Run just these with ``pytest -m smoke``.
"""

from __future__ import annotations

import pytest
from servers.cosmos import CosmosEndpoint
from servers.dynamodb import DUMMY_CREDENTIALS, DynamoEndpoint
from servers.firestore import FirestoreEndpoint

pytestmark = pytest.mark.smoke


async def test_postgres_answers_through_asyncpg(postgres_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE smoke (id text PRIMARY KEY, doc jsonb NOT NULL)")
        await conn.execute("INSERT INTO smoke VALUES ($1, $2::jsonb)", "a", '{"n": 1}')
        row = await conn.fetchrow("SELECT id, doc->>'n' AS n FROM smoke WHERE id = $1", "a")
        version = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert (row["id"], row["n"]) == ("a", "1")
    assert version.startswith("15"), f"expected PostgreSQL 15, got {version}"


async def test_redis_answers_through_redis_py(redis_url: str) -> None:
    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    try:
        assert await client.get("smoke") is None  # the fixture flushed the database
        await client.set("smoke", b"value")
        assert await client.get("smoke") == b"value"
    finally:
        await client.aclose()


async def test_dynamodb_local_answers_through_aioboto3(dynamodb_url: str) -> None:
    import aioboto3

    endpoint = DynamoEndpoint.from_url(dynamodb_url)
    table = f"{endpoint.table_prefix}smoke"
    async with aioboto3.Session().client(
        "dynamodb",
        endpoint_url=endpoint.endpoint_url,
        region_name=endpoint.region,
        **DUMMY_CREDENTIALS,
    ) as client:
        await client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        await client.put_item(TableName=table, Item={"id": {"S": "a"}, "n": {"N": "1"}})
        got = await client.get_item(TableName=table, Key={"id": {"S": "a"}}, ConsistentRead=True)
    assert got["Item"] == {"id": {"S": "a"}, "n": {"N": "1"}}


async def test_firestore_emulator_answers_through_async_client(
    firestore_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.firestore import AsyncClient

    endpoint = FirestoreEndpoint.from_url(firestore_url)
    # The client reads the emulator's address from the environment when it is constructed.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", endpoint.emulator_host)
    client = AsyncClient(project=endpoint.project, credentials=AnonymousCredentials())
    try:
        ref = client.collection("smoke").document("a")
        await ref.set({"n": 1, "tags": ["x"]})
        snapshot = await ref.get()
    finally:
        client.close()
    assert snapshot.exists
    assert snapshot.to_dict() == {"n": 1, "tags": ["x"]}


async def test_cosmos_server_answers_through_azure_cosmos(cosmos_url: str) -> None:
    from azure.cosmos import PartitionKey
    from azure.cosmos.aio import CosmosClient

    endpoint = CosmosEndpoint.from_url(cosmos_url)
    assert endpoint.database, "the fixture names a fresh database"
    async with CosmosClient(
        endpoint.endpoint_url, credential=endpoint.key, connection_verify=endpoint.verify
    ) as client:
        database = client.get_database_client(endpoint.database)
        container = await database.create_container("smoke", PartitionKey(path="/pk"))
        await container.upsert_item({"id": "a", "pk": "p", "n": 1})
        item = await container.read_item("a", partition_key="p")
    assert (item["id"], item["pk"], item["n"]) == ("a", "p", 1)


async def test_mongo_wire_server_answers_through_pymongo(mongo_url: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_url, serverSelectionTimeoutMS=30_000
    )
    try:
        collection = client.get_default_database()["smoke"]
        await collection.insert_one({"_id": "a", "n": 1})
        found = await collection.find_one({"n": {"$gte": 1}})
    finally:
        await client.close()
    assert found == {"_id": "a", "n": 1}
