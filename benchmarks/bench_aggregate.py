"""``$group`` by two fields with ``$sum``/``$avg`` over 100k documents, on PostgreSQL and SQLite,
in one run: asyncdb pushed down to GROUP BY, the hand-written GROUP BY SQL a user would write
against the same table (aiosqlite, asyncpg), and asyncdb's in-process path (the same group with
its fields written as ``$ifNull`` expressions, which the pushdown does not take: every document
is read and grouped in Python). BENCH_ROUNDS (5) alternating rounds, best of each.

    python benchmarks/bench_aggregate.py   # + results/bench_aggregate.json
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from _report import markdown_table, print_table, save_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import asyncdb
from tests.servers.postgres import PostgresServer

DOCS = int(os.environ.get("BENCH_AGG_DOCS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TARGET = 1.30
PUSHED = [
    {
        "$group": {
            "_id": {"company": "$company", "severity": "$severity"},
            "total": {"$sum": "$amount"},
            "mean_qty": {"$avg": "$qty"},
            "n": {"$count": {}},
        }
    }
]
IN_PROCESS = [
    {
        "$group": {
            "_id": {"company": "$company", "severity": "$severity"},
            "total": {"$sum": {"$ifNull": ["$amount", None]}},
            "mean_qty": {"$avg": {"$ifNull": ["$qty", None]}},
            "n": {"$count": {}},
        }
    }
]
SQLITE_SQL = (
    "SELECT json_extract(doc, '$.company'), json_extract(doc, '$.severity'), "
    "sum(json_extract(doc, '$.amount')), avg(json_extract(doc, '$.qty')), count(*) "
    'FROM "events" GROUP BY 1, 2'
)
POSTGRES_SQL = (
    "SELECT doc ->> 'company', doc ->> 'severity', sum((doc ->> 'amount')::bigint), "
    "avg((doc ->> 'qty')::bigint), count(*) FROM \"events\" GROUP BY 1, 2"
)

Runner = Callable[[], Awaitable[int]]


def make_doc(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": i,
        "company": f"company-{rng.randrange(50):02d}",
        "severity": rng.choice(["low", "medium", "high", "critical"]),
        "amount": rng.randrange(10_000),
        "qty": rng.randrange(1, 100),
        "title": f"event {i} on host-{rng.randrange(500)}",
    }


async def best(runners: dict[str, Runner]) -> dict[str, float]:
    """Best wall time of each runner over ROUNDS alternating rounds; every runner must find
    the same number of groups."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    groups: dict[str, int] = {}
    for _ in range(ROUNDS):
        for name, run in runners.items():
            started = time.perf_counter()
            groups[name] = await run()
            times[name].append(time.perf_counter() - started)
    assert len(set(groups.values())) == 1, groups
    return {name: min(t) for name, t in times.items()}


async def check_same(coll: asyncdb.Collection) -> None:
    pushed = await coll.aggregate(PUSHED, allow_scan=True).to_list()
    local = await coll.aggregate(IN_PROCESS, allow_scan=True).to_list()

    def key(r: dict[str, Any]) -> Any:
        return (r["_id"]["company"], r["_id"]["severity"])

    assert sorted(pushed, key=key) == sorted(local, key=key)
    plan = await coll.explain(pipeline=PUSHED)
    assert "group by" in plan.native, plan


async def bench_sqlite(docs: list[dict[str, Any]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        db = await asyncdb.connect(f"sqlite:///{path}")
        coll = db.collection("events")
        await coll.insert_many(docs)
        await check_same(coll)
        raw = await aiosqlite.connect(path)

        async def hand_written() -> int:
            async with raw.execute(SQLITE_SQL) as cur:
                return len(await cur.fetchall())

        try:
            return await best(_runners(coll, hand_written))
        finally:
            await raw.close()
            await db.close()


async def bench_postgres(docs: list[dict[str, Any]]) -> dict[str, float]:
    server = PostgresServer()
    server.start()
    try:
        url = server.url
        admin = await asyncpg.connect(url)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        url = url.rsplit("/", 1)[0] + "/bench"
        db = await asyncdb.connect(url)
        coll = db.collection("events")
        await coll.insert_many(docs)
        await check_same(coll)
        raw = await asyncpg.connect(url)
        await raw.execute('ANALYZE "events"')

        async def hand_written() -> int:
            return len(await raw.fetch(POSTGRES_SQL))

        try:
            return await best(_runners(coll, hand_written))
        finally:
            await raw.close()
            await db.close()
    finally:
        server.stop()


def _runners(coll: asyncdb.Collection, hand_written: Runner) -> dict[str, Runner]:
    async def pushed() -> int:
        return len(await coll.aggregate(PUSHED, allow_scan=True).to_list())

    async def in_process() -> int:
        return len(await coll.aggregate(IN_PROCESS, allow_scan=True).to_list())

    return {"asyncdb pushed": pushed, "hand-written SQL": hand_written, "in process": in_process}


async def main() -> None:
    rng = random.Random(11)
    docs = [make_doc(i, rng) for i in range(DOCS)]
    results: dict[str, Any] = {"documents": DOCS, "rounds": ROUNDS}
    rows = []
    for name, bench in (("sqlite", bench_sqlite), ("postgres", bench_postgres)):
        t = await bench(docs)
        ratio = t["asyncdb pushed"] / t["hand-written SQL"]
        results[name] = {**{k: round(v * 1000, 2) for k, v in t.items()}, "ratio": ratio}
        rows.append(
            [
                name,
                t["asyncdb pushed"] * 1000,
                t["hand-written SQL"] * 1000,
                t["in process"] * 1000,
                f"{ratio:.2f}x",
                f"{t['in process'] / t['hand-written SQL']:.1f}x",
                "yes" if ratio <= TARGET else "NO",
            ]
        )
    headers = [
        "backend",
        "asyncdb pushed ms",
        "hand-written SQL ms",
        "asyncdb in process ms",
        "pushed/SQL",
        "in process/SQL",
        f"<= {TARGET}x",
    ]
    print(f"$group by two fields, $sum + $avg + $count, {DOCS:,} documents, best of {ROUNDS}")
    print_table(headers, rows)
    saved = save_results("bench_aggregate", {"results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
