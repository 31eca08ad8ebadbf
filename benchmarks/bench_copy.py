"""Copy and verify throughput, and the peak memory of a verify.

1. ``asyncdb.copy`` SQLite -> PostgreSQL of ``DOCS`` documents (workers 4, batches of 500, the
   final verify off) against the slower side's raw bulk path alone: asyncpg
   ``copy_records_to_table`` of the same documents as (id, jsonb) rows. Target: copy >= 0.5x.
2. ``asyncdb.verify`` of the two sides: documents per second (both sides read).
3. Peak memory (tracemalloc) allocated by ``verify`` of two memory:// databases of N and 4N
   documents: it should not grow with N (ranges, not documents).

    python benchmarks/bench_copy.py   # PostgreSQL: tests/servers or ASYNCDB_TEST_POSTGRES_URL
"""

from __future__ import annotations

import asyncio
import os
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
TARGET = 0.5


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


async def verify_memory(n: int) -> int:
    async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
        docs = [doc(i) for i in range(n)]
        await a.collection("t").insert_many(docs)
        await b.collection("t").insert_many(docs)
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        report = await asyncdb.verify(a, b)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert report.equal
        return peak


async def main() -> None:
    from tests.servers.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        docs = [doc(i) for i in range(DOCS)]
        raw = await raw_postgres(server.url, docs)
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            src = f"sqlite:///{tmp}/src.db"
            async with asyncdb.connect(src) as db:
                await db.collection("t").insert_many(docs)
            started = time.perf_counter()
            report = await asyncdb.copy(src, server.url, verify=False, workers=4, batch_size=500)
            ours = time.perf_counter() - started
            assert report.written == DOCS
            started = time.perf_counter()
            equal = (await asyncdb.verify(src, server.url)).equal
            verify_s = time.perf_counter() - started
            assert equal
    finally:
        server.stop()
    small, large = await verify_memory(DOCS // 4), await verify_memory(DOCS)
    ratio = raw / ours
    rows = [
        ["copy sqlite->postgres", f"{DOCS / ours:,.0f} docs/s", f"{DOCS / raw:,.0f} docs/s (COPY)",
         round(ratio, 2), f">= {TARGET}", "yes" if ratio >= TARGET else "no"],
        ["verify sqlite<->postgres", f"{DOCS / verify_s:,.0f} docs/s", "", "", "", ""],
        [f"verify peak memory {DOCS // 4:,} / {DOCS:,} docs", f"{small / 1e6:.2f} MB",
         f"{large / 1e6:.2f} MB", round(large / max(small, 1), 2), "~1", ""],
    ]  # fmt: skip
    headers = ["measure", "asyncdb", "raw", "ratio", "target", "ok"]
    print_table(headers, rows)
    save_results(
        "bench_copy", {"docs": DOCS, "rows": [dict(zip(headers, r, strict=True)) for r in rows]}
    )


if __name__ == "__main__":
    asyncio.run(main())
