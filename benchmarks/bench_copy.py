"""Copy and verify throughput, the physical floor under a copy, and the peak memory of a
verify.

1. ``asyncdb.copy`` (workers 4, batches of 500, the final verify off) for SQLite ->
   PostgreSQL, PostgreSQL -> MongoDB and MongoDB -> DynamoDB, each against the slower side's
   raw bulk path alone ("raw write"), fed prepared documents: asyncpg
   ``copy_records_to_table`` of (id, jsonb) rows; PyMongo ``insert_many``; aioboto3
   ``batch_write_item`` of 25 items from 4 concurrent tasks. Target: copy >= 0.5x raw write.
2. The floor, a "raw copy" per pair: the raw drivers alone, as a service would copy. It reads
   asyncdb's source table with the source's raw driver (a ``sqlite3`` cursor, an asyncpg
   cursor, a PyMongo cursor; pages of 500, each row decoded to a document) and writes the
   raw write's rows through the raw write's path at its concurrency (one streamed COPY; one
   ``insert_many`` task, a page at a time; 4 ``batch_write_item`` tasks), reading while it
   writes. ``raw copy / raw write`` says how much of the target the two sides' drivers and
   servers leave on this machine; ``copy / raw copy`` is asyncdb's own cost.
3. asyncdb's ``insert_many`` alone of the same documents (4 tasks, batches of 500): the
   destination's bulk path that bounds any copy.
4. ``asyncdb.verify`` of each pair: documents per second (both sides read).
5. Peak memory (tracemalloc) allocated by ``verify`` of two SQLite databases of N and 4N
   documents: it should not grow with N (ranges, not documents).

    python benchmarks/bench_copy.py   # servers from tests/servers (or ASYNCDB_TEST_*_URL)

Each pair fills its own source, warms every side once untimed (drivers, DynamoDB Local's JVM
and caches warm up on whichever side runs first), then runs ``BENCH_COPY_ROUNDS`` (default 3)
interleaved rounds of the four sides, their order reversed every other round, each into an
empty table made before timing; the medians count, the best rounds are shown too. Per side,
this process's CPU and the servers' (their process trees, from /proc) per document are shown.
``BENCH_COPY_DOCS`` (default 20,000; SQLite -> PostgreSQL: ``BENCH_COPY_PG_DOCS``, default
100,000, so that connecting and creating the tables do not dominate a throughput) and
``BENCH_VERIFY_DOCS`` (default 250,000: the 4N side of the memory measure; 0 skips it) set the
sizes. ``BENCH_COPY_PAIRS=sqlite`` (or ``postgres``, ``mongo``, comma-separated) runs those
pairs alone, with only the servers they need.
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
from collections.abc import AsyncIterator, Awaitable, Callable
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
DETAIL: dict[str, Any] = {}  # each pair's rounds, ratios and CPU, for the results file


def doc(i: int) -> dict[str, Any]:
    return {"id": f"d{i:07d}", "company": f"c{i % 31}", "n": i, "tags": ["a", "b"], "x": i / 3}


async def raw_postgres(url: str, docs: list[dict[str, Any]]) -> Measure:
    """asyncpg ``copy_records_to_table`` of (id, jsonb) rows made from prepared documents."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(RAW_PG_TABLE)
        done = span()
        rows = [(d["id"], orjson.dumps(d).decode()) for d in docs]
        await conn.copy_records_to_table("raw_copy", records=rows, columns=["id", "doc"])
        return done()
    finally:
        await conn.close()


RAW_PG_TABLE = (
    "DROP TABLE IF EXISTS raw_copy; CREATE TABLE raw_copy (id text PRIMARY KEY, doc jsonb)"
)
RAW_PAGE = 500  # a raw copy reads its source in pages of the copy's batch size


async def raw_copy_sqlite_postgres(sqlite_url: str, url: str) -> Measure:
    """The raw copy: a ``sqlite3`` cursor over asyncdb's SQLite table (pages of 500 on the
    loop's thread, each row decoded to a document and encoded again) streamed into one
    ``copy_records_to_table``, the raw write's path and concurrency."""
    import sqlite3

    import asyncpg

    source = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(RAW_PG_TABLE)
        done = span()
        cursor = source.execute('SELECT doc FROM "bench"')

        async def records() -> AsyncIterator[tuple[str, str]]:
            while page := cursor.fetchmany(RAW_PAGE):
                for (body,) in page:
                    d = orjson.loads(body)
                    yield d["id"], orjson.dumps(d).decode()

        await conn.copy_records_to_table("raw_copy", records=records(), columns=["id", "doc"])
        return done()
    finally:
        await conn.close()
        source.close()


async def raw_mongo(url: str, docs: list[dict[str, Any]]) -> Measure:
    """PyMongo ``insert_many`` (unordered) of prepared documents, ``_id`` holding the key."""
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(url)
    try:
        coll = client.get_default_database().raw_copy
        await coll.drop()
        done = span()
        rows = [{"_id": d["id"], **{k: v for k, v in d.items() if k != "id"}} for d in docs]
        await coll.insert_many(rows, ordered=False)
        return done()
    finally:
        await client.close()


async def raw_copy_postgres_mongo(pg_url: str, url: str) -> Measure:
    """The raw copy: an asyncpg cursor over asyncdb's PostgreSQL table (pages of 500, each
    body decoded) feeding one writer task's unordered ``insert_many`` per page, the raw
    write's concurrency; the reader runs ahead by up to 4 pages."""
    import asyncpg
    from pymongo import AsyncMongoClient

    source = await asyncpg.connect(pg_url.replace("postgresql://", "postgres://", 1))
    client: Any = AsyncMongoClient(url)
    try:
        coll = client.get_default_database().raw_copy
        await coll.drop()
        await coll.insert_one({"_id": "warm"})  # the connection is up: connecting is not timed
        await coll.drop()
        done = span()
        pages: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(4)

        async def read() -> None:
            async with source.transaction():
                cursor = await source.cursor('SELECT body FROM "bench"')
                while rows := await cursor.fetch(RAW_PAGE):
                    page = []
                    for (body,) in rows:
                        d = orjson.loads(body)
                        d["_id"] = d.pop("id")
                        page.append(d)
                    await pages.put(page)
            await pages.put(None)

        async def write() -> None:
            while (page := await pages.get()) is not None:
                await coll.insert_many(page, ordered=False)

        await asyncio.gather(read(), write())
        return done()
    finally:
        await client.close()
        await source.close()


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


Chunks = asyncio.Queue[list[Any] | None]


async def _batch_writers(client: Any, table: str, chunks: Chunks) -> None:
    """4 tasks, each sending ``batch_write_item`` of the next chunk of 25 from ``chunks`` until
    it takes a ``None`` (unprocessed items sent again)."""

    async def worker() -> None:
        while (chunk := await chunks.get()) is not None:
            pending = chunk
            while pending:
                reply = await client.batch_write_item(RequestItems={table: pending})
                pending = reply.get("UnprocessedItems", {}).get(table, [])

    await asyncio.gather(*(worker() for _ in range(4)))


def _put(key: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"id": {"S": key}, "body": {"S": orjson.dumps(body).decode()}}}}


async def raw_dynamodb(url: str, docs: list[dict[str, Any]], table: str) -> Measure:
    """aioboto3 ``batch_write_item`` of 25 items from 4 tasks into ``table`` (empty, made by
    :func:`raw_dynamodb_tables`), fed prepared documents."""
    from asyncdb.movement.foreign import _dynamo_client

    async with asyncdb.connect(url) as db:
        cm, client, _ = await _dynamo_client(db)
    try:
        done = span()
        items = [_put(d["id"], d) for d in docs]
        chunks: Chunks = asyncio.Queue()
        for i in range(0, len(items), 25):
            chunks.put_nowait(items[i : i + 25])
        for _ in range(4):
            chunks.put_nowait(None)
        await _batch_writers(client, table, chunks)
        return done()
    finally:
        await cm.__aexit__(None, None, None)


async def raw_copy_mongo_dynamodb(mongo_url: str, url: str, table: str) -> Measure:
    """The raw copy: a PyMongo cursor over asyncdb's MongoDB collection (batches of 500),
    each document encoded as the raw write's item, feeding the raw write's 4
    ``batch_write_item`` tasks (chunks of 25) as it reads, up to 16 chunks ahead."""
    from pymongo import AsyncMongoClient

    from asyncdb.movement.foreign import _dynamo_client

    async with asyncdb.connect(url) as db:
        cm, client, _ = await _dynamo_client(db)
    source: Any = AsyncMongoClient(mongo_url)
    try:
        coll = source.get_default_database().bench
        await coll.find_one({})  # the connection is up: connecting is not timed
        done = span()
        chunks: Chunks = asyncio.Queue(16)

        async def read() -> None:
            chunk: list[Any] = []
            async for d in coll.find({}, batch_size=RAW_PAGE):
                chunk.append(_put(d.pop("_id"), d))
                if len(chunk) == 25:
                    await chunks.put(chunk)
                    chunk = []
            if chunk:
                await chunks.put(chunk)
            for _ in range(4):
                await chunks.put(None)

        await asyncio.gather(read(), _batch_writers(client, table, chunks))
        return done()
    finally:
        await source.close()
        await cm.__aexit__(None, None, None)


async def insert_alone(url: str, docs: list[dict[str, Any]]) -> Measure:
    """asyncdb's ``insert_many`` of ``docs`` into an empty collection: 4 tasks, batches of 500
    (what a copy's writers do, without reading anything)."""
    async with asyncdb.connect(url) as db:
        coll = db.collection("bench_insert")
        await coll.drop()
        await coll.insert_one({"id": "warm"})  # the table exists: creation is not timed
        chunks = [docs[i : i + 500] for i in range(0, len(docs), 500)]
        done = span()

        async def worker(mine: list[list[dict[str, Any]]]) -> None:
            for chunk in mine:
                await coll.insert_many(chunk)

        await asyncio.gather(*(worker(chunks[w::4]) for w in range(4)))
        measure = done()
        await coll.drop()
        return measure


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids`` and all their
    descendants, the reaped ones included: the servers' share of a side's work."""
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(v) for v in fields[11:15]) / tick  # utime..cstime
    chosen, frontier = set(pids), list(pids)
    while frontier:
        here = frontier.pop()
        kids = [p for p, pp in parent.items() if pp == here and p not in chosen]
        chosen.update(kids)
        frontier += kids
    return sum(times.get(p, 0.0) for p in chosen)


SERVER_PIDS: list[int] = []  # the servers' processes, for tree_cpu
Measure = tuple[float, float, float]  # wall, this process's CPU, the servers' CPU (seconds)
Side = Callable[[], Awaitable[Measure]]


def span() -> Callable[[], Measure]:
    """Start timing one side's measured part; the returned function stops it."""
    server = tree_cpu(SERVER_PIDS)
    cpu, wall = time.process_time(), time.perf_counter()

    def done() -> Measure:
        measure = (time.perf_counter() - wall, time.process_time() - cpu)
        return (*measure, tree_cpu(SERVER_PIDS) - server)

    return done


async def interleaved_rounds(
    sides: dict[str, Side], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """One untimed warm-up of every side (drivers, JIT and caches warm up on whichever side
    runs first), then ``rounds`` rounds of all sides, the order reversed every other round. Per
    side and round: wall seconds, this process's CPU seconds and the servers' CPU seconds."""
    out: dict[str, dict[str, list[float]]] = {
        k: {"wall": [], "client_cpu": [], "server_cpu": []} for k in sides
    }
    for label in sides:
        await sides[label]()
    for r in range(rounds):
        for label in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            wall, cpu, server = await sides[label]()
            out[label]["wall"].append(wall)
            out[label]["client_cpu"].append(cpu)
            out[label]["server_cpu"].append(server)
    return out


async def run_pair(
    src: str,
    dst: str,
    n: int,
    raw: Side,
    raw_copy: Side,
    rounds: int,
) -> list[list[Any]]:
    """One measured pair (the source holds ``n`` documents): warm, interleaved rounds of the
    raw write alone, the raw copy, ``asyncdb.copy`` and asyncdb's ``insert_many`` alone; the
    medians count, the best rounds are shown too. Then one verify."""
    docs = [doc(i) for i in range(n)]

    async def copy() -> Measure:
        async with asyncdb.connect(dst) as db:
            await db.collection("bench").drop()
        done = span()
        report = await asyncdb.copy(src, dst, verify=False, workers=4, batch_size=500)
        measure = done()
        assert report.written == n
        return measure

    async def alone() -> Measure:
        return await insert_alone(dst, docs)

    sides = {"raw_write": raw, "raw_copy": raw_copy, "copy": copy, "insert_many": alone}
    times = await interleaved_rounds(sides, rounds)
    started = time.perf_counter()
    assert (await asyncdb.verify(src, dst)).equal
    verify_s = time.perf_counter() - started
    med = {k: statistics.median(v["wall"]) for k, v in times.items()}
    best = {k: min(v["wall"]) for k, v in times.items()}
    name = f"{src.split(':')[0]} -> {dst.split(':')[0]}"
    ratios = {
        "copy/raw_write": med["raw_write"] / med["copy"],
        "raw_copy/raw_write": med["raw_write"] / med["raw_copy"],
        "copy/raw_copy": med["raw_copy"] / med["copy"],
        "insert_many/raw_write": med["raw_write"] / med["insert_many"],
        "copy/insert_many": med["insert_many"] / med["copy"],
    }
    per_doc = {
        k: {
            "client_cpu_us": 1e6 * statistics.median(v["client_cpu"]) / n,
            "server_cpu_us": 1e6 * statistics.median(v["server_cpu"]) / n,
        }
        for k, v in times.items()
    }
    DETAIL[name] = {
        "docs": n,
        "rounds": rounds,
        "rounds_seconds": times,
        "ratios_median": ratios,
        "ratios_best_rounds": {
            "copy/raw_write": best["raw_write"] / best["copy"],
            "raw_copy/raw_write": best["raw_write"] / best["raw_copy"],
            "copy/raw_copy": best["raw_copy"] / best["copy"],
        },
        "cpu_per_doc_median": per_doc,
    }
    ratio = ratios["copy/raw_write"]
    head = f"copy {name} ({n:,}, median of {rounds}, warm, interleaved)"
    rows = [
        [head, f"{n / med['copy']:,.0f} docs/s", f"{n / med['raw_write']:,.0f} docs/s",
         round(ratio, 2), f">= {TARGET}", "yes" if ratio >= TARGET else "no"],
        ["  raw copy (raw drivers: read source, raw bulk write)",
         f"{n / med['raw_copy']:,.0f} docs/s", f"{n / med['raw_write']:,.0f} docs/s",
         round(ratios["raw_copy/raw_write"], 2), "floor", ""],
        ["  copy / raw copy", "", "", round(ratios["copy/raw_copy"], 2), "", ""],
        [f"  asyncdb insert_many alone ({n:,}, 4 tasks x 500)",
         f"{n / med['insert_many']:,.0f} docs/s", f"{n / med['raw_write']:,.0f} docs/s",
         round(ratios["insert_many/raw_write"], 2), "bound", ""],
        ["  copy / insert_many alone", "", "", round(ratios["copy/insert_many"], 2), "", ""],
        ["  best rounds: copy / raw write, raw copy / raw write", "", "",
         f"{best['raw_write'] / best['copy']:.2f}, {best['raw_write'] / best['raw_copy']:.2f}",
         "", ""],
    ]  # fmt: skip
    for k, v in per_doc.items():
        rows.append(
            [f"  CPU per doc, {k}: client / servers", f"{v['client_cpu_us']:.1f} us",
             f"{v['server_cpu_us']:.1f} us", "", "", ""]
        )  # fmt: skip
    rows.append([f"verify {name}", f"{n / verify_s:,.0f} docs/s", "", "", "", ""])
    return rows


async def fill(url: str, n: int) -> None:
    """The source collection ``bench`` of ``n`` documents (emptied first)."""
    async with asyncdb.connect(url) as db:
        bench = db.collection("bench")
        await bench.drop()
        for start in range(0, n, 50_000):
            await bench.insert_many([doc(i) for i in range(start, min(n, start + 50_000))])


async def sqlite_postgres(sqlite: str, pg: str, n: int, rounds: int) -> list[list[Any]]:
    await fill(sqlite, n)
    docs = [doc(i) for i in range(n)]

    async def raw() -> Measure:
        return await raw_postgres(pg, docs)

    async def raw_copy() -> Measure:
        return await raw_copy_sqlite_postgres(sqlite, pg)

    return await run_pair(sqlite, pg, n, raw, raw_copy, rounds)


async def postgres_mongo(pg: str, mongo: str, n: int, rounds: int) -> list[list[Any]]:
    await fill(pg, n)
    docs = [doc(i) for i in range(n)]

    async def raw() -> Measure:
        return await raw_mongo(mongo, docs)

    async def raw_copy() -> Measure:
        return await raw_copy_postgres_mongo(pg, mongo)

    return await run_pair(pg, mongo, n, raw, raw_copy, rounds)


async def mongo_dynamodb(mongo: str, dynamo: str, n: int, rounds: int) -> list[list[Any]]:
    """Each raw side writes into an empty table made before any timing (DynamoDB Local
    deletes and creates tables slowly)."""
    await fill(mongo, n)
    docs = [doc(i) for i in range(n)]
    write_tables = [f"raw_copy_w{r}" for r in range(rounds + 1)]
    copy_tables = [f"raw_copy_c{r}" for r in range(rounds + 1)]
    await raw_dynamodb_tables(dynamo, write_tables + copy_tables)
    free_w, free_c = iter(write_tables), iter(copy_tables)

    async def raw() -> Measure:
        return await raw_dynamodb(dynamo, docs, next(free_w))

    async def raw_copy() -> Measure:
        return await raw_copy_mongo_dynamodb(mongo, dynamo, next(free_c))

    return await run_pair(mongo, dynamo, n, raw, raw_copy, rounds)


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
        if s.process is not None and s.process.popen is not None:
            SERVER_PIDS.append(s.process.popen.pid)
    try:
        pg = started["postgres"].url if "postgres" in started else ""
        dynamo = started["dynamodb"].url if "dynamodb" in started else ""
        mongo = (
            with_database(started["mongo"].url, "asyncdb_bench_copy") if "mongo" in started else ""
        )
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            sqlite = f"sqlite:///{tmp}/src.db"
            if "sqlite" in PAIRS:
                rows += await sqlite_postgres(sqlite, pg, PG_DOCS, ROUNDS)
            if "postgres" in PAIRS:
                rows += await postgres_mongo(pg, mongo, DOCS, ROUNDS)
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
            "load_average": os.getloadavg(),
            "pairs": DETAIL,
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
