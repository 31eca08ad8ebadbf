"""``bulk_write`` of 10k mixed operations against the driver's own batch call, on SQLite,
PostgreSQL and MongoDB.

The workload: a collection of 5,000 documents, then 10,000 operations in runs of 50 of one kind,
the kinds cycling 40% inserts of new documents, 40% ``$set`` of one field by key and 20% deletes
by key, ordered. asyncdb runs ``coll.bulk_write(ops)``. The raw side does the same writes with
the driver's batch call: PyMongo's ``bulk_write`` of the same operations; on SQL, one
transaction with one ``executemany`` per run (``INSERT``; ``UPDATE ... SET doc =
json_set(doc, '$.f', ?)`` / ``jsonb_set``; ``DELETE``), on the table asyncdb created. Both start
from the same data (reset between rounds); rounds alternate; the median counts.
Target (issue 15): asyncdb <= 1.3 x the driver.

    python benchmarks/bench_bulk_write.py [sqlite postgres mongo]  # + results/*.json

PostgreSQL and MongoDB are throwaway servers started by tests/servers (or the ones
``ASYNCDB_TEST_POSTGRES_URL`` / ``ASYNCDB_TEST_MONGO_URL`` name).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import orjson
from _report import print_table, save_results

import asyncdb
from asyncdb.backends.postgres.codec import encode_key as pg_key
from asyncdb.backends.sqlite.codec import encode_key as sqlite_key

BASE_DOCS = 5_000
OPS = 10_000
RUN = 50
ROUNDS = 5
TARGET = 1.3


def base_doc(i: int) -> dict[str, Any]:
    return {"id": f"d{i:06d}", "company": f"c{i % 31}", "n": i, "status": "open"}


def workload() -> list[tuple[str, list[Any]]]:
    """Runs of (kind, items): insert docs, set (key, value) pairs, delete keys; no key twice."""
    runs: list[tuple[str, list[Any]]] = []
    fresh, target = BASE_DOCS, 0
    kinds = ["insert", "set", "insert", "set", "delete"]
    done = 0
    while done < OPS:
        kind = kinds[(done // RUN) % len(kinds)]
        if kind == "insert":
            items: list[Any] = [base_doc(fresh + j) for j in range(RUN)]
            fresh += RUN
        elif kind == "set":
            items = [(f"d{target + j:06d}", f"s{j}") for j in range(RUN)]
            target += RUN
        else:
            items = [f"d{target + j:06d}" for j in range(RUN)]
            target += RUN
        runs.append((kind, items))
        done += RUN
    return runs


def asyncdb_ops(runs: list[tuple[str, list[Any]]]) -> list[Any]:
    ops: list[Any] = []
    for kind, items in runs:
        for item in items:
            if kind == "insert":
                ops.append(asyncdb.InsertOne(item))
            elif kind == "set":
                ops.append(asyncdb.UpdateOne({"id": item[0]}, {"$set": {"status": item[1]}}))
            else:
                ops.append(asyncdb.DeleteOne({"id": item}))
    return ops


Round = Callable[[], Awaitable[None]]


async def measure(reset: Round, ours: Round, raw: Round) -> tuple[float, float]:
    times: dict[str, list[float]] = {"asyncdb": [], "raw": []}
    for r in range(ROUNDS + 1):  # the first round warms up
        for name, run in (("asyncdb", ours), ("raw", raw)):
            await reset()
            began = time.perf_counter()
            await run()
            if r:
                times[name].append(time.perf_counter() - began)
    return statistics.median(times["asyncdb"]), statistics.median(times["raw"])


async def bench_sqlite() -> tuple[float, float]:
    import aiosqlite

    path = Path(tempfile.mkdtemp()) / "bulk.db"
    db = await asyncdb.connect(f"sqlite:///{path}")
    coll = db.collection("bulk")
    runs = workload()
    ops = asyncdb_ops(runs)
    conn = await aiosqlite.connect(path, isolation_level=None)

    async def reset() -> None:
        await coll.drop()
        await coll.insert_many([base_doc(i) for i in range(BASE_DOCS)])

    async def ours() -> None:
        await coll.bulk_write(ops)

    async def raw() -> None:
        await conn.execute("BEGIN IMMEDIATE")
        for kind, items in runs:
            if kind == "insert":
                rows = [(sqlite_key(d["id"]), orjson.dumps(d).decode()) for d in items]
                await conn.executemany("INSERT INTO bulk (k0, doc) VALUES (?, ?)", rows)
            elif kind == "set":
                await conn.executemany(
                    "UPDATE bulk SET doc = json_set(doc, '$.status', ?) WHERE k0 = ?",
                    [(v, sqlite_key(k)) for k, v in items],
                )
            else:
                await conn.executemany(
                    "DELETE FROM bulk WHERE k0 = ?", [(sqlite_key(k),) for k in items]
                )
        await conn.execute("COMMIT")

    try:
        return await measure(reset, ours, raw)
    finally:
        await conn.close()
        await db.close()


async def bench_postgres(url: str) -> tuple[float, float]:
    import asyncpg

    db = await asyncdb.connect(url)
    coll = db.collection("bulk")
    runs = workload()
    ops = asyncdb_ops(runs)
    conn = await asyncpg.connect(url)

    async def reset() -> None:
        await coll.drop()
        await coll.insert_many([base_doc(i) for i in range(BASE_DOCS)])

    async def ours() -> None:
        await coll.bulk_write(ops)

    async def raw() -> None:
        async with conn.transaction():
            for kind, items in runs:
                if kind == "insert":
                    rows = [(pg_key(d["id"]), orjson.dumps(d).decode()) for d in items]
                    await conn.executemany("INSERT INTO bulk (k0, body) VALUES ($1, $2)", rows)
                elif kind == "set":
                    await conn.executemany(
                        "UPDATE bulk SET body = jsonb_set(body::jsonb, '{status}', "
                        "to_jsonb($1::text))::text WHERE k0 = $2",
                        [(v, pg_key(k)) for k, v in items],
                    )
                else:
                    await conn.executemany(
                        "DELETE FROM bulk WHERE k0 = $1", [(pg_key(k),) for k in items]
                    )

    try:
        return await measure(reset, ours, raw)
    finally:
        await conn.close()
        await db.close()


async def bench_mongo(url: str) -> tuple[float, float]:
    from pymongo import AsyncMongoClient, DeleteOne, InsertOne, UpdateOne

    db = await asyncdb.connect(url)
    coll = db.collection("bulk")
    runs = workload()
    ops = asyncdb_ops(runs)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    raw_coll = client.get_default_database()["bulk_raw"]
    raw_ops: list[Any] = []
    for kind, items in runs:
        for item in items:
            if kind == "insert":
                raw_ops.append(InsertOne({"_id": item["id"], **item}))
            elif kind == "set":
                raw_ops.append(UpdateOne({"_id": item[0]}, {"$set": {"status": item[1]}}))
            else:
                raw_ops.append(DeleteOne({"_id": item}))

    async def reset() -> None:
        await coll.drop()
        await coll.insert_many([base_doc(i) for i in range(BASE_DOCS)])
        await raw_coll.drop()
        await raw_coll.insert_many([{"_id": d["id"], **d} for d in map(base_doc, range(BASE_DOCS))])

    async def ours() -> None:
        await coll.bulk_write(ops)

    async def raw() -> None:
        await raw_coll.bulk_write(raw_ops, ordered=True)

    try:
        return await measure(reset, ours, raw)
    finally:
        await client.close()
        await db.close()


async def main(which: list[str]) -> None:
    from tests.servers.mongo import SecantusServer
    from tests.servers.postgres import PostgresServer, with_database

    headers = ["backend", "asyncdb ms", "driver ms", "ratio", "target", "ok"]
    rows: list[list[Any]] = []
    for kind in which:
        if kind == "sqlite":
            ours, raw = await bench_sqlite()
        else:
            server: Any = PostgresServer() if kind == "postgres" else SecantusServer()
            server.start()  # adopts ASYNCDB_TEST_<BACKEND>_URL when set
            try:
                if kind == "postgres":
                    ours, raw = await bench_postgres(server.url)
                else:
                    url = with_database(server.url, "asyncdb_bench_bulk")
                    ours, raw = await bench_mongo(url)
            finally:
                server.stop()
        ratio = ours / raw
        rows.append([kind, round(ours * 1000, 1), round(raw * 1000, 1), round(ratio, 2), TARGET,
                     "yes" if ratio <= TARGET else "no"])  # fmt: skip
    print(f"bulk_write of {OPS:,} mixed operations over {BASE_DOCS:,} documents")
    print_table(headers, rows)
    save_results(
        "bench_bulk_write",
        {
            "ops": OPS,
            "base_docs": BASE_DOCS,
            "rows": [dict(zip(headers, r, strict=True)) for r in rows],
        },
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["sqlite", "postgres", "mongo"]))
