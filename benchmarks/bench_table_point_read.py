"""Table mode point read on SQLite: ``db.table(t).find_one({"id": k})`` against raw SQLAlchemy
Core (a prebuilt ``select(t).where(t.c.id == :k)`` on a pooled connection of the same AsyncEngine).

Fair by construction: the same engine, the same table, the same keys in the same order; both
take a pooled connection per read (what table mode does outside a transaction). Rounds
alternate; the median round counts. Table mode adds parsing, planning (compiling the filter to
Core), the row -> document conversion and the residual/limit plumbing.

    python benchmarks/bench_table_point_read.py  # + results/bench_table_point_read.json
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import sqlalchemy as sa
from _report import markdown_table, print_table, save_results

import asyncdb

ROWS = 10_000
READS = {1: 2_000, 16: 3_200}
ROUNDS = 5
METADATA = sa.MetaData()
USERS = sa.Table(
    "users",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(120), nullable=False),
    sa.Column("name", sa.String(80)),
    sa.Column("logins", sa.Integer),
    sa.Column("score", sa.Float),
    sa.Column("active", sa.Boolean),
)

Reader = Callable[[int], Awaitable[dict[str, Any] | None]]


async def run_round(read: Reader, keys: list[list[int]]) -> float:
    async def worker(mine: list[int]) -> None:
        for k in mine:
            if await read(k) is None:
                raise AssertionError(f"missing {k}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(mine) for mine in keys))
    return time.perf_counter() - started


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-bench-"))
    url = f"sqlite:///{workdir / 'tables.db'}"
    rng = random.Random(7)
    try:
        db = await asyncdb.connect(url, tables_only=True)
        users = db.table(USERS)
        engine = db._store.engine  # type: ignore[attr-defined]
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
        await users.insert_many(
            {"id": i, "email": f"u{i}@example.com", "name": f"user {i}", "logins": i % 50,
             "score": rng.random(), "active": i % 3 == 0}
            for i in range(ROWS)
        )  # fmt: skip

        by_id = sa.select(USERS).where(USERS.c.id == sa.bindparam("k"))  # built once, like ours

        async def raw_read(key: int) -> dict[str, Any] | None:
            async with engine.connect() as conn:
                row = (await conn.execute(by_id, {"k": key})).first()
            return None if row is None else {k: v for k, v in row._mapping.items() if v is not None}

        async def table_read(key: int) -> dict[str, Any] | None:
            return await users.find_one({"id": key})

        for key in rng.sample(range(ROWS), 50):
            assert await table_read(key) == await raw_read(key), key
        readers: dict[str, Reader] = {"asyncdb table": table_read, "raw SQLAlchemy Core": raw_read}
        results: dict[str, Any] = {}
        rows: list[list[Any]] = []
        for concurrency, total in READS.items():
            per_task = total // concurrency
            keys = [[rng.randrange(ROWS) for _ in range(per_task)] for _ in range(concurrency)]
            for read in readers.values():
                await run_round(read, [k[:20] for k in keys])
            seconds: dict[str, list[float]] = {name: [] for name in readers}
            for _ in range(ROUNDS):
                for name, read in readers.items():
                    seconds[name].append(await run_round(read, keys))
            reads = per_task * concurrency
            ops = {name: reads / statistics.median(s) for name, s in seconds.items()}
            ratio = ops["raw SQLAlchemy Core"] / ops["asyncdb table"]
            results[f"c{concurrency}"] = {
                "concurrency": concurrency,
                "reads_per_round": reads,
                "ops_per_s": ops,
                "round_seconds": seconds,
                "ratio_asyncdb_over_raw": ratio,
            }
            rows.append(
                [concurrency, round(ops["asyncdb table"]), round(ops["raw SQLAlchemy Core"]),
                 f"{ratio:.2f}x"]
            )  # fmt: skip
        await db.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    headers = ["concurrency", "table mode ops/s", "raw Core ops/s", "table/raw"]
    print_table(headers, rows)
    saved = save_results("bench_table_point_read", {"rows": ROWS, "results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
