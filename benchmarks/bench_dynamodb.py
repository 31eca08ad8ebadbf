"""DynamoDB through asyncdb against raw aioboto3, on a throwaway DynamoDB Local, in one run.

1. Bulk insert of 10,000 items: asyncdb ``insert_many`` (a BatchGetItem duplicate check, then
   BatchWriteItem in chunks of 25) against raw ``batch_write_item`` in chunks of 25 (the
   driver's fastest path): one untimed call of each (the JVM's warm-up), then
   ``BENCH_DYNAMODB_BULK_ROUNDS`` (default 5) interleaved rounds of one call each, every call
   into an empty table of its own; the median round counts. Raw sequential ``put_item`` is timed
   once on the warm server. The raw items hold the same fields, marshalled directly.
2. A selective query (1% of the items) with and without a usable GSI: asyncdb ``find`` on a
   collection with ``indexes=["colour"]`` (Query on the GSI) and on one without (Scan with a
   FilterExpression, scans allowed), each against the raw request that ``explain()`` shows,
   replayed with aioboto3. Items read is DynamoDB's ScannedCount summed over pages.

Both parts are timed by the ``asyncdb bench`` harness (``asyncdb.cli.bench.interleaved``, which
``_report`` re-exports: rounds of a fixed duration per side, in alternating order; the median
round counts).

DynamoDB Local runs on the same two shared cores as everything else: ratios within this run are
what count, not absolute times.

    python benchmarks/bench_dynamodb.py  # + results/dynamodb.json
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test bed's servers

import aioboto3
from _report import interleaved, markdown_table, print_table, save_results
from servers.dynamodb import DUMMY_CREDENTIALS, DynamoDBLocalServer, DynamoEndpoint

import asyncdb
from asyncdb.backends.dynamodb.store import table_definition
from asyncdb.types import CollectionSpec

ITEMS = 10_000
BULK_ROUNDS = int(os.environ.get("BENCH_DYNAMODB_BULK_ROUNDS", "5"))
BULK_DETAIL: dict[str, Any] = {}  # the bulk part's rounds, for the results file
QUERY_ROUNDS = 5
QUERY_SECONDS = 0.5  # per round and side (at least one query each)
COLOURS = ("blue", "green", "yellow", "black")


def make_doc(i: int) -> dict[str, Any]:
    return {
        "id": f"item-{i:06d}",
        "colour": "red" if i % 100 == 0 else COLOURS[i % len(COLOURS)],
        "n": i,
        "title": f"Disk usage above {80 + i % 20}% on host-{i % 999}",
        "tags": ["disk", "cpu"],
    }


def raw_item(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": {"S": doc["id"]},
        "colour": {"S": doc["colour"]},
        "n": {"N": str(doc["n"])},
        "title": {"S": doc["title"]},
        "tags": {"L": [{"S": t} for t in doc["tags"]]},
    }


async def create_raw_table(client: Any, name: str) -> None:
    await client.create_table(**table_definition(CollectionSpec("raw"), name))
    await client.get_waiter("table_exists").wait(TableName=name)


async def bench_bulk(client: Any, url: str, prefix: str) -> list[list[Any]]:
    """asyncdb ``insert_many`` and raw ``batch_write_item`` of ITEMS items, each call into an
    empty table of its own (created before timing): one untimed call of each first (DynamoDB
    Local's JVM warms up on whichever side runs first), then BULK_ROUNDS interleaved rounds of
    one call each, the order reversed every other round; the median round counts. Sequential
    ``put_item`` is timed once, after them, on the warm server."""
    docs = [make_doc(i) for i in range(ITEMS)]
    calls = BULK_ROUNDS + 1  # the warm-up's call and one per round
    db = await asyncdb.connect(url)
    try:
        colls = [db.collection(f"bulk_{i}") for i in range(calls)]
        for coll in colls:  # the table exists and is empty before timing
            await coll.insert_one({"id": "warm"})
            await coll.delete_one({"id": "warm"})
        raw_tables = [f"{prefix}raw_batch_{i}" for i in range(calls)]
        for table in raw_tables:
            await create_raw_table(client, table)
        free_colls, free_tables = iter(colls), iter(raw_tables)

        async def asyncdb_insert(n: int) -> None:
            await next(free_colls).insert_many(docs)

        async def raw_batch(n: int) -> None:
            table = next(free_tables)
            for start in range(0, ITEMS, 25):
                pending = [{"PutRequest": {"Item": raw_item(d)}} for d in docs[start : start + 25]]
                while pending:
                    reply = await client.batch_write_item(RequestItems={table: pending})
                    pending = reply.get("UnprocessedItems", {}).get(table, [])

        # duration 1 ms: one call per measurement (a call takes seconds)
        c = await interleaved(
            {"asyncdb": asyncdb_insert, "raw": raw_batch},
            concurrency=1,
            duration=0.001,
            rounds=BULK_ROUNDS,
            warmup=0.001,
        )
        assert not any(c.errors.values()), f"inserts failed: {c.errors}"
        for coll in colls:
            assert await coll.count_documents({}, allow_scan=True) == ITEMS
    finally:
        await db.close()

    await create_raw_table(client, prefix + "raw_put")
    started = time.perf_counter()
    for doc in docs:
        await client.put_item(TableName=prefix + "raw_put", Item=raw_item(doc))
    put_s = time.perf_counter() - started
    asyncdb_s, batch_s = 1 / c.ops_per_s("asyncdb"), 1 / c.ops_per_s("raw")
    BULK_DETAIL.update(
        rounds=BULK_ROUNDS,
        rounds_seconds={k: [1 / v for v in vs] for k, vs in c.rounds_ops_per_s.items()},
        ratio_median=c.ratio("asyncdb", "raw"),
        ratio_best_rounds=c.best_ratio("asyncdb", "raw"),
        cpu_ratio=c.cpu_ratio("asyncdb", "raw"),
    )
    return [
        ["bulk insert 10k: asyncdb insert_many", asyncdb_s, 1.0, ITEMS],
        ["raw sequential put_item", put_s, asyncdb_s / put_s, ITEMS],
        ["raw batch_write_item (25)", batch_s, c.ratio("asyncdb", "raw"), ITEMS],
    ]


async def replay(client: Any, table: str, native: dict[str, Any]) -> tuple[int, int]:
    """Run the request explain() shows with the raw client: (items returned, items read)."""
    returned = read = 0
    base: dict[str, Any] = {"TableName": table}
    if "IndexName" in native:
        base["IndexName"] = native["IndexName"]
    if "FilterExpression" in native:
        base["FilterExpression"] = native["FilterExpression"]
    for condition in native.get("KeyConditionExpression") or [None]:
        params = dict(base)
        text = (native.get("FilterExpression") or "") + " " + (condition or "")
        names = {k: v for k, v in native.get("ExpressionAttributeNames", {}).items() if k in text}
        values = {
            k: v
            for k, v in native.get("ExpressionAttributeValues", {}).items()
            if k + " " in text + " " or k + ")" in text or k + "," in text
        }
        if names:
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = values
        if condition is not None:
            params["KeyConditionExpression"] = condition
        call = client.query if condition is not None else client.scan
        while True:
            page = await call(**params)
            returned += len(page["Items"])
            read += page["ScannedCount"]
            if not page.get("LastEvaluatedKey"):
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return returned, read


async def bench_query(client: Any, url: str, prefix: str) -> list[list[Any]]:
    docs = [make_doc(i) for i in range(ITEMS)]
    rows: list[list[Any]] = []
    db = await asyncdb.connect(url)
    try:
        for name, options in (("with_gsi", {"indexes": ["colour"]}), ("no_gsi", {})):
            coll = db.collection(name, allow_scan=True, **options)
            await coll.insert_many(docs)
            flt = {"colour": "red"}
            plan = await coll.explain(flt)
            found = await coll.find(flt).to_list()
            returned, read = await replay(client, prefix + name, plan.native)
            assert len(found) == ITEMS // 100 == returned

            async def asyncdb_find(n: int, coll: Any = coll, flt: Any = flt) -> None:
                assert len(await coll.find(flt).to_list()) == ITEMS // 100

            async def raw_find(
                n: int, table: str = prefix + name, native: Any = plan.native
            ) -> None:
                assert (await replay(client, table, native))[0] == ITEMS // 100

            c = await interleaved(
                {"asyncdb": asyncdb_find, "raw": raw_find},
                concurrency=1,
                duration=QUERY_SECONDS,
                rounds=QUERY_ROUNDS,
                warmup=0,
            )
            assert not any(c.errors.values()), f"queries failed: {c.errors}"
            t, raw = 1 / c.ops_per_s("asyncdb"), 1 / c.ops_per_s("raw")
            label = f"query colour=red ({plan.access_path})"
            rows.append([f"{label}: asyncdb find", t, c.ratio("asyncdb", "raw"), read])
            rows.append([f"{label}: raw replay of explain()", raw, 1.0, read])
    finally:
        await db.close()
    return rows


async def main() -> None:
    server = DynamoDBLocalServer()
    server.start()
    try:
        async with server.fresh() as url:
            endpoint = DynamoEndpoint.from_url(url)
            async with aioboto3.Session().client(
                "dynamodb",
                endpoint_url=endpoint.endpoint_url,
                region_name=endpoint.region,
                **DUMMY_CREDENTIALS,
            ) as client:
                rows = await bench_bulk(client, url, endpoint.table_prefix)
                rows += await bench_query(client, url, endpoint.table_prefix)
    finally:
        server.stop()
    headers = ["case", "seconds", "ratio (asyncdb / this)", "items read"]
    print_table(headers, rows)
    saved = save_results(
        "dynamodb",
        {
            "items": ITEMS,
            "rows": [dict(zip(headers, r, strict=True)) for r in rows],
            "bulk": BULK_DETAIL,
            "note": "DynamoDB Local on a shared, loaded 2-core machine; ratios within one run",
        },
    )
    print(f"saved {saved}")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
