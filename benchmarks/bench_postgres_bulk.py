"""PostgreSQL bulk insert and the 20-document query, one run, one throwaway server:

* bulk insert of 100k documents: ``insert_many`` against asyncpg's COPY of the same rows
  (``bulk_insert_rounds`` of bench_postgres.py: alternating rounds, fresh tables), target
  <= 1.3x;
* the 3-clause filter returning 20 documents, at concurrency 1 and 64, against raw
  ``pool.fetch`` of the statement asyncdb sends (explain's SQL), target <= 1.2x at 64.

    python benchmarks/bench_postgres_bulk.py   # + results/bench_postgres_bulk.json
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from _report import markdown_table, print_table, save_results
from bench_postgres import (
    BULK,
    BULK_ROUNDS,
    DOCS,
    FILTER,
    POOL,
    TARGET_BULK,
    bulk_insert_rounds,
    compare,
    make_doc,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import asyncdb
from tests.servers.postgres import PostgresServer

TARGET_QUERY = 1.20


async def main() -> None:
    server = PostgresServer()
    server.start()
    results: dict[str, Any] = {}
    try:
        admin = await asyncpg.connect(server.url)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        url = server.url.rsplit("/", 1)[0] + "/bench"
        db = await asyncdb.connect(f"{url}?min_size={POOL}&max_size={POOL}")
        pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)
        rng = random.Random(7)
        items = db.collection("items", indexes=["status"])
        await items.insert_many([make_doc(i, rng) for i in range(DOCS)])

        plan = await items.explain(FILTER, limit=20)
        sql, params = plan.native["sql"], plan.native["params"]

        async def raw_filter(_: str) -> Any:
            return [orjson.loads(r[0]) for r in await pool.fetch(sql, *params)]

        async def asyncdb_filter(_: str) -> Any:
            return await items.find(FILTER, limit=20).to_list()

        assert await asyncdb_filter("") == await raw_filter("")
        results["filter_query"] = await compare(
            {"asyncdb": asyncdb_filter, "raw asyncpg": raw_filter}, lambda r: ""
        )
        print("filter_query", results["filter_query"], flush=True)

        bulk_docs = [make_doc(i, rng) for i in range(BULK)]
        results["bulk_insert"] = await bulk_insert_rounds(db, pool, bulk_docs, BULK_ROUNDS)
        print("bulk_insert", results["bulk_insert"], flush=True)
        await pool.close()
        await db.close()
    finally:
        server.stop()
    b = results["bulk_insert"]
    rows = [
        [
            f"bulk insert {BULK:,} (best of {b['rounds']})",
            f"{b['asyncdb_s']:.2f} s",
            f"{b['raw_copy_s']:.2f} s (COPY)",
            f"{b['ratio']:.2f}x (median round {b['median_round_ratio']:.2f}x)",
            f"<= {TARGET_BULK}x",
            "yes" if b["ratio"] <= TARGET_BULK else "NO",
        ]
    ]
    for c in ("c1", "c64"):
        q = results["filter_query"][c]
        ratio = q["ratio_asyncdb_over_raw"]
        rows.append(
            [
                f"20-document filter {c}",
                f"{q['us_per_op']['asyncdb']:.0f} us",
                f"{q['us_per_op']['raw asyncpg']:.0f} us",
                f"{ratio:.2f}x",
                f"<= {TARGET_QUERY}x" if c == "c64" else "",
                ("yes" if ratio <= TARGET_QUERY else "NO") if c == "c64" else "",
            ]
        )
    headers = ["case", "asyncdb", "raw", "ratio", "target", "met"]
    print_table(headers, rows)
    print(
        f"\nbulk CPU in this process: asyncdb {b['asyncdb_cpu_s']:.2f} s, "
        f"COPY {b['raw_copy_cpu_s']:.2f} s"
    )
    saved = save_results("bench_postgres_bulk", {"results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
