"""Table mode point read on SQLite: ``db.table(t).find_one({"id": k})`` against raw SQLAlchemy
Core (a prebuilt ``select(t).where(t.c.id == :k)`` on a pooled connection of the same AsyncEngine).

Fair by construction: the same engine, the same table, the same keys in the same order; both
take a pooled connection per read (what table mode does outside a transaction). Timed by the
``asyncdb bench`` harness (``_report.compare_point_reads``: rounds of a fixed duration per
reader, in alternating order; the median round counts). Table mode adds parsing, planning
(compiling the filter to Core), the row -> document conversion and the residual/limit plumbing.

    python benchmarks/bench_table_point_read.py  # + results/bench_table_point_read.json
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import sqlalchemy as sa
from _report import (
    compare_point_reads,
    markdown_table,
    point_read_headers,
    print_table,
    save_results,
)

import asyncdb

ROWS = 10_000
CONCURRENCY = (1, 16)
KEYS = 2_000  # read in order, over and over
ROUNDS = 7
SECONDS = 0.5
TARGET = 1.10  # a point read through asyncdb against the raw driver (DESIGN section 6)
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
        readers: dict[str, Reader] = {"asyncdb": table_read, "raw SQLAlchemy Core": raw_read}
        results, rows = await compare_point_reads(
            readers,
            lambda: [rng.randrange(ROWS) for _ in range(KEYS)],
            concurrencies=CONCURRENCY,
            rounds=ROUNDS,
            seconds=SECONDS,
            base="raw SQLAlchemy Core",
            target=TARGET,
        )
        await db.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    headers = point_read_headers(TARGET)
    print_table(headers, rows)
    saved = save_results("bench_table_point_read", {"rows": ROWS, "results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
