"""Every failure is an asyncdb error: what a store still refuses (a document over its size
limit) is a typed error, raised at once rather than retried, and the database stays usable;
a server that does not answer at connect is an asyncdb error too, never the driver's."""

from __future__ import annotations

import time

import pytest
from servers.base import ThrowawayServer
from tcp_proxy import TcpProxy

import asyncdb
from asyncdb import AsyncDBError, BackendError, OperationTimeout, QueryError

MB = 1024 * 1024
# a document over each store's own limit: MongoDB 16 MB, DynamoDB 400 KB an item, Firestore
# 1 MiB a document (4 MB a request on the emulator's gRPC)
OVERSIZED = {"mongo": 17 * MB, "dynamodb": 3 * MB, "firestore": 5 * MB}


@pytest.fixture(params=sorted(OVERSIZED))
def sized(request: pytest.FixtureRequest) -> tuple[str, str]:
    backend: str = request.param
    url: str = request.getfixturevalue(f"{backend}_url")
    return backend, url


async def test_a_document_over_the_store_limit_is_a_query_error_and_not_retried(
    sized: tuple[str, str],
) -> None:
    backend, url = sized
    async with asyncdb.connect(url, timeout=20) as db:
        items = db.collection("big")
        huge = {"id": "huge", "s": "x" * OVERSIZED[backend]}
        began = time.monotonic()
        with pytest.raises(QueryError):
            await items.insert_one(huge)
        with pytest.raises(QueryError):  # inside a batch too; all or nothing
            await items.insert_many([{"id": "small"}, {**huge, "id": "huge2"}])
        assert time.monotonic() - began < 15  # refused at once, not retried to the deadline
        assert await items.find_one({"id": "small"}) is None
        await items.insert_one({"id": "ok", "n": 1})
        with pytest.raises(QueryError):  # an update that would grow it past the limit
            await items.update_one({"id": "ok"}, {"$set": {"s": huge["s"]}})
        assert await items.find_one({"id": "ok"}) == {"id": "ok", "n": 1}
        assert db._resilience.breaker.state == "closed"


async def test_a_mongo_update_that_grows_a_document_past_16_mb_is_a_query_error(
    mongo_url: str,
) -> None:
    """Operands under the limit, a result over it: the server refuses the update (code 10334,
    or a bare internal error for findAndModify on SecantusDB); each way in is a QueryError,
    as for an oversized insert, and the document is unchanged."""
    async with asyncdb.connect(mongo_url, timeout=20) as db:
        items = db.collection("big")
        stored = {"id": "ok", "s": "x" * (9 * MB)}
        await items.insert_one(stored)
        grow = "y" * (9 * MB)
        with pytest.raises(QueryError, match="too large"):  # native update
            await items.update_one({"id": "ok"}, {"$set": {"t": grow}})
        with pytest.raises(QueryError, match=r"too large|size limit"):
            await items.update_one({"id": "ok"}, {"$push": {"a": grow}})
        with pytest.raises(QueryError, match=r"too large|size limit"):  # findAndModify
            await items.find_one_and_update({"id": "ok"}, {"$set": {"t": grow}})
        with pytest.raises(asyncdb.BulkWriteError) as failed:
            await items.bulk_write([asyncdb.UpdateOne({"id": "ok"}, {"$set": {"t": grow}})])
        assert [type(e) for _, e in failed.value.errors] == [QueryError]
        with pytest.raises(QueryError, match="too large"):
            async with db.transaction() as tx:
                await tx.collection("big").update_one({"id": "ok"}, {"$set": {"t": grow}})
        assert await items.find_one({"id": "ok"}) == stored


async def test_connect_to_a_cosmos_server_that_never_answers_is_a_backend_error(
    cosmos_server: ThrowawayServer, cosmos_url: str
) -> None:
    proxy = await TcpProxy(cosmos_server.port).start()
    proxy.blackhole = True  # accepts the connection, never answers (not even TLS)
    try:
        url = cosmos_url.replace(f":{cosmos_server.port}", f":{proxy.port}")
        url += "&endpoint_discovery=false"
        began = time.monotonic()
        with pytest.raises(BackendError) as raised:
            await asyncdb.connect(url, timeout=5)
        assert "cannot reach Cosmos DB" in str(raised.value)
        assert time.monotonic() - began < 60
    finally:
        await proxy.stop()


@pytest.mark.parametrize("backend", ["cosmos", "postgres", "mongo"])
async def test_a_refused_connection_is_an_asyncdb_error(backend: str, unused_tcp_port: int) -> None:
    port = unused_tcp_port
    url = {
        "cosmos": f"cosmos://127.0.0.1:{port}/db?key=eA%3D%3D&verify=false",
        "postgres": f"postgresql://postgres@127.0.0.1:{port}/x",
        "mongo": f"mongodb://127.0.0.1:{port}/db?directConnection=true&serverSelectionTimeoutMS=500",
    }[backend]
    with pytest.raises(AsyncDBError) as raised:
        async with asyncdb.connect(url, timeout=2, retries=1) as db:
            await db.collection("x").find_one({"id": "a"})
    assert isinstance(raised.value, BackendError | OperationTimeout | asyncdb.ConfigurationError)
