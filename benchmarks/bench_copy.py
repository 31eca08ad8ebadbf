"""Copy and verify throughput, and the peak memory of a verify.

1. ``asyncdb.copy`` (workers 4, batches of 500, the final verify off) for SQLite ->
   PostgreSQL, PostgreSQL -> MongoDB and MongoDB -> DynamoDB, each against the slower side's
   raw bulk path alone, fed prepared documents: asyncpg ``copy_records_to_table`` of (id,
   jsonb) rows; PyMongo ``insert_many``; aioboto3
   ``batch_write_item`` of 25 items from 4 concurrent tasks. Target: copy >= 0.5x the raw path.
2. ``asyncdb.verify`` of each pair: documents per second (both sides read).
3. Peak memory (tracemalloc) allocated by ``verify`` of two SQLite databases of N and 4N
   documents: it should not grow with N (ranges, not documents).

    python benchmarks/bench_copy.py   # servers from tests/servers (or ASYNCDB_TEST_*_URL)

The pairs form a chain (each destination is the next source). ``BENCH_COPY_DOCS`` (default
20,000; SQLite -> PostgreSQL: ``BENCH_COPY_PG_DOCS``, default 100,000, so that connecting and
creating the tables do not dominate a throughput) and ``BENCH_VERIFY_DOCS`` (default 250,000:
the 4N side of the memory measure) set the sizes. On a loaded machine one round is noise: the
SQLite -> PostgreSQL pair runs ``BENCH_COPY_ROUNDS`` (default 3) alternating rounds of raw and
copy and keeps the best of each; it also measures asyncdb's own ``insert_many`` of the same
documents (4 tasks, batches of 500), the destination's bulk path that bounds any copy.
The MongoDB -> DynamoDB pair fills its own source and runs warm, interleaved rounds
(``BENCH_COPY_ROUNDS``) of raw ``batch_write_item``, the copy and ``insert_many`` alone; the
medians count. ``BENCH_COPY_PAIRS=sqlite`` (or ``mongo``) runs that pair alone, with only the
servers it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import orjson
from _report import print_table, save_results

import asyncdb

DOCS = int(os.environ.get("BENCH_COPY_DOCS", "20000"))
PG_DOCS = int(os.environ.get("BENCH_COPY_PG_DOCS", "100000"))
ROUNDS = int(os.environ.get("BENCH_COPY_ROUNDS", "3"))
PAIRS = os.environ.get("BENCH_COPY_PAIRS", "sqlite,postgres,mongo").split(",")
VERIFY_DOCS = int(os.environ.get("BENCH_VERIFY_DOCS", "250000"))
TARGET = 0.5
MONGO_DYNAMODB_DETAIL: dict[str, Any] = {}  # that pair's rounds, for the results file


def doc(i: int) -> dict[str, Any]:
    return {"id": f"d{i:07d}", "company": f"c{i % 31}", "n": i, "tags": ["a", "b"], "x": i / 3}


async def raw_postgres(url: str, docs: list[dict[str, Any]]) -> float:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS raw_copy; CREATE TABLE raw_copy (id text PRIMARY KEY, doc jsonb)"
        )
        started = time.perf_counter()
        rows = [(d["id"], orjson.dumps(d).decode()) for d in docs]
        await conn.copy_records_to_table("raw_copy", records=rows, columns=["id", "doc"])
        return time.perf_counter() - started
    finally:
        await conn.close()


async def raw_mongo(url: str, docs: list[dict[str, Any]]) -> float:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(url)
    try:
        coll = client.get_default_database().raw_copy
        await coll.drop()
        rows = [{"_id": d["id"], **{k: v for k, v in d.items() if k != "id"}} for d in docs]
        started = time.perf_counter()
        await coll.insert_many(rows, ordered=False)
        return time.perf_counter() - started
    finally:
        await client.close()


async def raw_dynamodb_tables(url: str, names: list[str]) -> None:
    """Empty tables of one ``id`` string key for :func:`raw_dynamodb` (made before timing)."""
    from asyncdb.movement.foreign import _dynamo_client

    async with asyncdb.connect(url) as db:
        cm, client, _ = await _dynamo_client(db)
    try:
        for name in names:
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                await client.delete_table(TableName=name)
            await client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
    finally:
        await cm.__aexit__(None, None, None)


async def raw_dynamodb(url: str, docs: list[dict[str, Any]], table: str = "raw_copy") -> float:
    """aioboto3 ``batch_write_item`` of 25 items from 4 tasks into ``table`` (empty, made by
    :func:`raw_dynamodb_tables`), fed prepared items."""
    from asyncdb.movement.foreign import _dynamo_client

    async with asyncdb.connect(url) as db:
        cm, client, _ = await _dynamo_client(db)
    try:
        items = [
            {
                "PutRequest": {
                    "Item": {"id": {"S": d["id"]}, "body": {"S": orjson.dumps(d).decode()}}
                }
            }
            for d in docs
        ]
        chunks = [items[i : i + 25] for i in range(0, len(items), 25)]
        started = time.perf_counter()

        async def worker(mine: list[list[dict[str, Any]]]) -> None:
            for chunk in mine:
                pending = chunk
                while pending:
                    reply = await client.batch_write_item(RequestItems={table: pending})
                    pending = reply.get("UnprocessedItems", {}).get(table, [])

        await asyncio.gather(*(worker(chunks[w::4]) for w in range(4)))
        return time.perf_counter() - started
    finally:
        await cm.__aexit__(None, None, None)


async def insert_alone(url: str, docs: list[dict[str, Any]]) -> float:
    """asyncdb's ``insert_many`` of ``docs`` into an empty collection: 4 tasks, batches of 500
    (what a copy's writers do, without reading anything)."""
    async with asyncdb.connect(url) as db:
        coll = db.collection("bench_insert")
        await coll.drop()
        await coll.insert_one({"id": "warm"})  # the table exists: creation is not timed
        chunks = [docs[i : i + 500] for i in range(0, len(docs), 500)]
        started = time.perf_counter()

        async def worker(mine: list[list[dict[str, Any]]]) -> None:
            for chunk in mine:
                await coll.insert_many(chunk)

        await asyncio.gather(*(worker(chunks[w::4]) for w in range(4)))
        seconds = time.perf_counter() - started
        await coll.drop()
        return seconds


async def pair(
    src: str, dst: str, n: int, batch: int, raw: Any, fill: bool, rounds: int = 1
) -> list[list[Any]]:
    """One measured pair; the source holds the documents already unless ``fill``. With
    ``rounds`` > 1, alternating rounds of raw and copy, the best of each."""
    docs = [doc(i) for i in range(n)]
    if fill:
        async with asyncdb.connect(src) as db:
            for start in range(0, n, 50_000):
                await db.collection("bench").insert_many(docs[start : start + 50_000])
    async with asyncdb.connect(dst) as db:  # the backend's modules loaded, as raw's driver is
        await db.list_collections()
    raw_times, copy_times, alone_times = [], [], []
    for _ in range(rounds):
        raw_times.append(await raw(dst, docs))
        async with asyncdb.connect(dst) as db:
            await db.collection("bench").drop()
        started = time.perf_counter()
        report = await asyncdb.copy(src, dst, verify=False, workers=4, batch_size=batch)
        copy_times.append(time.perf_counter() - started)
        assert report.written == n
        if rounds > 1:
            alone_times.append(await insert_alone(dst, docs))
    raw_s, ours = min(raw_times), min(copy_times)
    started = time.perf_counter()
    assert (await asyncdb.verify(src, dst)).equal
    verify_s = time.perf_counter() - started
    name = f"{src.split(':')[0]} -> {dst.split(':')[0]}"
    ratio = raw_s / ours
    best = f", best of {rounds}" if rounds > 1 else ""
    rows = [
        [f"copy {name} ({n:,}{best})", f"{n / ours:,.0f} docs/s", f"{n / raw_s:,.0f} docs/s",
         round(ratio, 2), f">= {TARGET}", "yes" if ratio >= TARGET else "no"],
    ]  # fmt: skip
    if alone_times:
        alone = min(alone_times)
        rows.append(
            [f"  asyncdb insert_many alone ({n:,}, 4 tasks x 500)", f"{n / alone:,.0f} docs/s",
             f"{n / raw_s:,.0f} docs/s", round(raw_s / alone, 2), "bound", ""]
        )  # fmt: skip
        rows.append(
            ["  copy / insert_many alone", "", "", round(alone / ours, 2), "", ""]
        )  # fmt: skip
    rows.append([f"verify {name}", f"{n / verify_s:,.0f} docs/s", "", "", "", ""])
    return rows


async def mongo_dynamodb(mongo: str, dynamo: str, n: int, rounds: int) -> list[list[Any]]:
    """MongoDB -> DynamoDB, warm and interleaved: the pair fills its own MongoDB source, runs
    one untimed raw write, copy and ``insert_many`` (DynamoDB Local's JVM and both drivers warm
    up on whichever side runs first), then ``rounds`` rounds of raw ``batch_write_item``, the
    copy and asyncdb's ``insert_many`` alone, their order reversed every other round; each into
    an empty table made before timing. The medians count (the best rounds are shown too)."""
    docs = [doc(i) for i in range(n)]
    async with asyncdb.connect(mongo) as db:
        bench = db.collection("bench")
        await bench.drop()
        for start in range(0, n, 50_000):
            await bench.insert_many(docs[start : start + 50_000])
    tables = [f"raw_copy_{r}" for r in range(rounds + 1)]
    await raw_dynamodb_tables(dynamo, tables)
    free = iter(tables)

    async def raw() -> float:
        return await raw_dynamodb(dynamo, docs, next(free))

    async def copy() -> float:
        async with asyncdb.connect(dynamo) as db:
            await db.collection("bench").drop()
        started = time.perf_counter()
        report = await asyncdb.copy(mongo, dynamo, verify=False, workers=4, batch_size=500)
        seconds = time.perf_counter() - started
        assert report.written == n
        return seconds

    async def alone() -> float:
        return await insert_alone(dynamo, docs)

    sides = {"raw": raw, "copy": copy, "alone": alone}
    times: dict[str, list[float]] = {k: [] for k in sides}
    for label in sides:  # the warm-up, untimed
        await sides[label]()
    for r in range(rounds):
        for label in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            times[label].append(await sides[label]())
    started = time.perf_counter()
    assert (await asyncdb.verify(mongo, dynamo)).equal
    verify_s = time.perf_counter() - started
    raw_s, copy_s, alone_s = (statistics.median(times[k]) for k in ("raw", "copy", "alone"))
    best_raw, best_copy = min(times["raw"]), min(times["copy"])
    ratio = raw_s / copy_s
    MONGO_DYNAMODB_DETAIL.update(
        rounds=rounds,
        rounds_seconds=times,
        ratio_median=ratio,
        ratio_best_rounds=best_raw / best_copy,
        alone_ratio_median=raw_s / alone_s,
    )
    name = f"copy mongodb -> dynamodb ({n:,}, median of {rounds}, warm, interleaved)"
    return [
        [name, f"{n / copy_s:,.0f} docs/s", f"{n / raw_s:,.0f} docs/s", round(ratio, 2),
         f">= {TARGET}", "yes" if ratio >= TARGET else "no"],
        ["  best rounds", f"{n / best_copy:,.0f} docs/s", f"{n / best_raw:,.0f} docs/s",
         round(best_raw / best_copy, 2), "", ""],
        [f"  asyncdb insert_many alone ({n:,}, 4 tasks x 500)", f"{n / alone_s:,.0f} docs/s",
         f"{n / raw_s:,.0f} docs/s", round(raw_s / alone_s, 2), "bound", ""],
        ["  copy / insert_many alone", "", "", round(alone_s / copy_s, 2), "", ""],
        ["verify mongodb -> dynamodb", f"{n / verify_s:,.0f} docs/s", "", "", "", ""],
    ]  # fmt: skip


async def verify_memory(n: int, tmp: str) -> int:
    """Peak memory allocated during a verify of two SQLite files of ``n`` documents (SQLite
    streams its rows; memory:// would hold a snapshot list of its own)."""
    a_url, b_url = f"sqlite:///{tmp}/va{n}.db", f"sqlite:///{tmp}/vb{n}.db"
    async with asyncdb.connect(a_url) as a, asyncdb.connect(b_url) as b:
        for start in range(0, n, 50_000):
            docs = [doc(i) for i in range(start, min(n, start + 50_000))]
            await a.collection("bench").insert_many(docs)
            await b.collection("bench").insert_many(docs)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        report = await asyncdb.verify(a, b)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert report.equal
        return peak


async def main() -> None:
    from tests.servers.dynamodb import DynamoDBLocalServer
    from tests.servers.mongo import SecantusServer
    from tests.servers.postgres import PostgresServer, with_database

    wanted = {
        "postgres": bool({"sqlite", "postgres"} & set(PAIRS)),
        "mongo": bool({"postgres", "mongo"} & set(PAIRS)),
        "dynamodb": "mongo" in PAIRS,
    }
    made = {"postgres": PostgresServer, "mongo": SecantusServer, "dynamodb": DynamoDBLocalServer}
    started = {k: made[k]() for k, on in wanted.items() if on}
    servers: list[Any] = list(started.values())
    rows: list[list[Any]] = []
    for s in servers:
        s.start()
    try:
        pg = started["postgres"].url if "postgres" in started else ""
        dynamo = started["dynamodb"].url if "dynamodb" in started else ""
        mongo = (
            with_database(started["mongo"].url, "asyncdb_bench_copy") if "mongo" in started else ""
        )
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            # a chain: each destination is the next source
            sqlite = f"sqlite:///{tmp}/src.db"
            if "sqlite" in PAIRS:
                rows += await pair(sqlite, pg, PG_DOCS, 500, raw_postgres, True, ROUNDS)
            if "postgres" in PAIRS:  # the chain: PostgreSQL holds DOCS documents first
                if "sqlite" in PAIRS and PG_DOCS != DOCS:
                    async with asyncdb.connect(pg) as db:
                        bench = db.collection("bench", allow_scan=True)
                        await bench.delete_many({"n": {"$gte": DOCS}})
                elif "sqlite" not in PAIRS:
                    await pair(sqlite, pg, DOCS, 500, raw_postgres, True)
                rows += await pair(pg, mongo, DOCS, 500, raw_mongo, False)
            if "mongo" in PAIRS:
                rows += await mongo_dynamodb(mongo, dynamo, DOCS, ROUNDS)
    finally:
        for s in servers:
            s.stop()
    if VERIFY_DOCS:  # 0: skip the memory measure (benchmarks/bench_verify_1m.py has 1M)
        with tempfile.TemporaryDirectory() as tmp:
            small = await verify_memory(VERIFY_DOCS // 4, tmp)
            large = await verify_memory(VERIFY_DOCS, tmp)
        rows.append(
            [f"verify peak memory {VERIFY_DOCS // 4:,} / {VERIFY_DOCS:,} docs",
             f"{small / 1e6:.2f} MB", f"{large / 1e6:.2f} MB", round(large / max(small, 1), 2),
             "~1", ""]
        )  # fmt: skip
    headers = ["measure", "asyncdb", "raw", "ratio", "target", "ok"]
    print_table(headers, rows)
    name = "bench_copy" if len(PAIRS) == 3 else "bench_copy_" + "_".join(PAIRS)
    table = [dict(zip(headers, r, strict=True)) for r in rows]
    save_results(
        name,
        {
            "docs": DOCS,
            "pg_docs": PG_DOCS,
            "rounds": ROUNDS,
            "rows": table,
            "mongo_dynamodb": MONGO_DYNAMODB_DETAIL,
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
