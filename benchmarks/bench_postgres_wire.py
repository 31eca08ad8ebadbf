"""PostgreSQL point reads against the wire limit, one run, one throwaway server:

* concurrency 1: ``find_one`` by key against one held asyncpg connection running a prepared
  statement (``conn.prepare`` once, ``stmt.fetchrow`` per read: no pool, no reset), target
  <= 1.25x;
* concurrency 64: against raw ``pool.fetchrow`` on a pool of the same size, target <= 1.10x;
* both also against ``pool.fetchrow`` at concurrency 1, for scale.

Rounds alternate between the sides; the median of the per-round ratios is reported.

    python benchmarks/bench_postgres_wire.py   # + results/bench_postgres_wire.json
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from _report import markdown_table, postgres_database, print_table, save_results
from bench_postgres import run_round

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import asyncdb
from asyncdb.backends.postgres.codec import encode_key

DOCS = 10_000
POOL = 16
ROUNDS = 9
READS = {1: 2_000, 64: 6_400}
TARGETS = {1: 1.25, 64: 1.10}

Reader = Callable[[str], Awaitable[Any]]


async def compare(readers: dict[str, Reader], concurrency: int, total: int) -> dict[str, Any]:
    rng = random.Random(concurrency)
    per = total // concurrency
    keys = [[f"k{rng.randrange(DOCS):06d}" for _ in range(per)] for _ in range(concurrency)]
    for read in readers.values():
        await run_round(read, [k[:20] for k in keys])  # warm-up
    seconds: dict[str, list[float]] = {n: [] for n in readers}
    names = list(readers)
    for r in range(ROUNDS):
        for name in names if r % 2 == 0 else names[::-1]:
            seconds[name].append(await run_round(readers[name], keys))
    reads = per * concurrency
    base = names[1]
    return {
        "us_per_op": {n: 1e6 * statistics.median(s) / reads for n, s in seconds.items()},
        "ratio": statistics.median(
            a / b for a, b in zip(seconds["asyncdb"], seconds[base], strict=True)
        ),
        "against": base,
    }


async def main() -> None:
    results: dict[str, Any] = {}
    async with postgres_database("bench") as url:
        db = await asyncdb.connect(f"{url}?min_size={POOL}&max_size={POOL}")
        items = db.collection("items")
        await items.insert_many([{"id": f"k{i:06d}", "n": i, "t": "x" * 40} for i in range(DOCS)])
        get_sql = 'SELECT body, tagged FROM "items" WHERE "k0" = $1'
        held = await asyncpg.connect(url)
        prepared = await held.prepare(get_sql)
        pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)

        async def ours(key: str) -> Any:
            return await items.find_one({"id": key})

        async def wire(key: str) -> Any:
            row = await prepared.fetchrow(encode_key(key))
            return orjson.loads(row[0])

        async def raw_pool(key: str) -> Any:
            row = await pool.fetchrow(get_sql, encode_key(key))
            return orjson.loads(row[0])

        assert await ours("k000001") == await wire("k000001") == await raw_pool("k000001")
        results["c1_vs_held_prepared"] = await compare(
            {"asyncdb": ours, "held prepared": wire, "pool.fetchrow": raw_pool}, 1, READS[1]
        )
        results["c64_vs_pool"] = await compare(
            {"asyncdb": ours, "pool.fetchrow": raw_pool}, 64, READS[64]
        )
        await pool.close()
        await held.close()
        await db.close()
    rows = []
    for name, concurrency in (("c1_vs_held_prepared", 1), ("c64_vs_pool", 64)):
        r = results[name]
        us = r["us_per_op"]
        rows.append(
            [
                f"point read c{concurrency}",
                us["asyncdb"],
                us[r["against"]],
                r["against"],
                f"{r['ratio']:.2f}x",
                f"<= {TARGETS[concurrency]:.2f}x",
                "yes" if r["ratio"] <= TARGETS[concurrency] else "NO",
            ]
        )
    c1 = results["c1_vs_held_prepared"]["us_per_op"]
    headers = ["case", "asyncdb us", "limit us", "limit", "ratio", "target", "met"]
    print_table(headers, rows)
    print(f"\n(pool.fetchrow at c1: {c1['pool.fetchrow']:.1f} us)")
    saved = save_results("bench_postgres_wire", {"results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
