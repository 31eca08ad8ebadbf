"""PostgreSQL: a range on the second key field under an equal first one (``{"tenant": t,
"seq": {"$gte": a, "$lt": b}}``, 20 documents of 100,000), one run, one throwaway server:
asyncdb's ``find`` (key-column bounds beside the JSON conditions) against raw asyncpg running
the same statement without the key-column bounds (JSON path conditions only, as the planner
sent it before), and raw asyncpg running asyncdb's statement. Median of alternating rounds.

    python benchmarks/bench_postgres_key_range.py   # + results/bench_postgres_key_range.json
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from _report import postgres_database, print_table, save_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import asyncdb

TENANTS = 20
PER_TENANT = 5_000
ROUNDS = 7
QUERIES = 200


async def main() -> None:
    results: dict[str, Any] = {}
    async with postgres_database("bench") as url:
        db = await asyncdb.connect(url)
        events = db.collection("events", key=("tenant", "seq"))
        for t in range(TENANTS):
            await events.insert_many(
                {"tenant": f"t{t:02d}", "seq": s, "v": s % 7} for s in range(PER_TENANT)
            )
        await db.native("ANALYZE events")
        rng = random.Random(5)
        filters = [
            {"tenant": f"t{rng.randrange(TENANTS):02d}", "seq": {"$gte": s, "$lt": s + 20}}
            for s in (rng.randrange(PER_TENANT - 20) for _ in range(QUERIES))
        ]
        plans = [await events.explain(f) for f in filters]
        sql = plans[0].native["sql"]
        # The same statement without the key-column bounds: the JSON conditions alone.
        json_only = re.sub(r'"k\d" (=|>=|<=) \$\d+::bytea AND ', "", sql)
        assert json_only != sql and '"k0"' not in json_only.split("WHERE")[1]
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)

        def kept(params: list[Any]) -> list[Any]:  # the JSON-only statement's parameters
            return [p for p in params if not isinstance(p, bytes)]

        renumber = iter(range(1, 100))
        json_only = re.sub(r"\$\d+", lambda _: f"${next(renumber)}", json_only)

        async def ours() -> int:
            n = 0
            for f in filters:
                n += len(await events.find(f).to_list())
            return n

        async def raw_bounded() -> int:
            n = 0
            for p in plans:
                rows = await pool.fetch(sql, *p.native["params"])
                n += len([orjson.loads(r[0]) for r in rows])
            return n

        async def raw_json_only() -> int:
            n = 0
            for p in plans:
                rows = await pool.fetch(json_only, *kept(p.native["params"]))
                n += len([orjson.loads(r[0]) for r in rows])
            return n

        sides = {"asyncdb": ours, "raw, key bounds": raw_bounded, "raw, JSON only": raw_json_only}
        counts = {name: await run() for name, run in sides.items()}  # warm-up, and equal
        assert len(set(counts.values())) == 1 and counts["asyncdb"] == 20 * QUERIES, counts
        seconds: dict[str, list[float]] = {n: [] for n in sides}
        names = list(sides)
        for r in range(ROUNDS):
            for name in names if r % 2 == 0 else names[::-1]:
                started = time.perf_counter()
                await sides[name]()
                seconds[name].append(time.perf_counter() - started)
        us = {n: 1e6 * statistics.median(s) / QUERIES for n, s in seconds.items()}
        results = {"us_per_query": us, "documents": TENANTS * PER_TENANT, "sql": sql}
        await pool.close()
        await db.close()
    rows = [[name, value] for name, value in results["us_per_query"].items()]
    print_table(["side", "µs per query (20 documents)"], rows)
    print(f"\nsaved {save_results('bench_postgres_key_range', {'results': results})}")


if __name__ == "__main__":
    asyncio.run(main())
