"""Point read by key on SQLite: asyncdb ``find_one({"id": k})`` against raw aiosqlite.

Fair by construction: both read the same table of the same file (the one asyncdb created), the
same keys in the same order, through one connection each (asyncdb's short-read connection, one
raw ``aiosqlite`` connection), warmed up first. Raw is ``SELECT doc FROM t WHERE k0 = ?`` plus
``orjson.loads``; the documents hold only JSON types, so asyncdb's decode is that same
``orjson.loads``. Concurrency 1 is one task; concurrency 64 is ``asyncio.gather`` of 64 tasks,
each reading its share of the keys. Rounds of ``SECONDS`` per reader, their order reversed
every other round, through the ``asyncdb bench`` harness (``asyncdb.cli.bench.interleaved``);
the median round counts.
Target (DESIGN section 6): asyncdb time per read <= 1.10 x raw.

    python benchmarks/bench_sqlite_point_read.py  # + results/bench_sqlite_point_read.json
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import aiosqlite
import orjson
from _report import (
    compare_point_reads,
    markdown_table,
    point_read_headers,
    print_table,
    save_results,
)

import asyncdb

DOCS = 10_000
CONCURRENCY = (1, 64)
KEYS = 5_000  # random keys, read in order, over and over
SECONDS = 0.5  # per round and reader
ROUNDS = 7
TARGET = 1.10
SERVICES = ("api", "auth", "db", "payments", "queue", "search")


def make_doc(i: int, rng: random.Random) -> dict[str, Any]:
    """An alert of about 500 bytes of JSON: strings, numbers, a list, a nested object."""
    return {
        "id": f"alert-{i:06d}",
        "company": f"company-{i % 97}",
        "service": SERVICES[i % len(SERVICES)],
        "priority": rng.randint(1, 100),
        "score": rng.random(),
        "status": rng.choice(("open", "acknowledged", "resolved")),
        "title": f"Disk usage above {rng.randint(80, 99)}% on host-{rng.randint(1, 999)}",
        "tags": rng.sample(["disk", "cpu", "memory", "network", "paging", "customer"], 3),
        "source": {"region": "eu-west-1", "host": f"host-{rng.randint(1, 999)}", "pid": i},
        "description": "x" * rng.randint(250, 350),
    }


Reader = Callable[[str], Awaitable[dict[str, Any] | None]]


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-bench-"))
    path = workdir / "points.db"
    rng = random.Random(7)
    try:
        db = await asyncdb.connect(f"sqlite:///{path}")
        items = db.collection("items")
        started = time.perf_counter()
        for start in range(0, DOCS, 1000):
            await items.insert_many(make_doc(i, rng) for i in range(start, start + 1000))
        print(f"loaded {DOCS:,} documents in {time.perf_counter() - started:.1f} s ({path})")

        raw = await aiosqlite.connect(str(path), isolation_level=None)
        sql = 'SELECT doc FROM "items" WHERE "k0" = ?'

        async def raw_read(key: str) -> dict[str, Any] | None:
            rows = await raw.execute_fetchall(sql, (key,))
            for (text,) in rows:
                doc: dict[str, Any] = orjson.loads(text)
                return doc
            return None

        async def asyncdb_read(key: str) -> dict[str, Any] | None:
            return await items.find_one({"id": key})

        sample = [f"alert-{i:06d}" for i in rng.sample(range(DOCS), 50)]
        for key in sample:  # same answers, and both connections warm
            assert await asyncdb_read(key) == await raw_read(key), key
        readers: dict[str, Reader] = {"asyncdb": asyncdb_read, "raw aiosqlite": raw_read}

        results, rows = await compare_point_reads(
            readers,
            lambda: [f"alert-{rng.randrange(DOCS):06d}" for _ in range(KEYS)],
            concurrencies=CONCURRENCY,
            rounds=ROUNDS,
            seconds=SECONDS,
            base="raw aiosqlite",
            target=TARGET,
        )
        await raw.close()
        await db.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    headers = point_read_headers(TARGET)
    print()
    print_table(headers, rows)
    doc_bytes = len(orjson.dumps(make_doc(0, random.Random(7))))
    saved = save_results(
        "bench_sqlite_point_read", {"documents": DOCS, "doc_bytes": doc_bytes, "results": results}
    )
    print(f"\nsaved {saved}\n")
    print(
        f"Point read by key on SQLite, {DOCS:,} documents of ~{doc_bytes} B, one connection each, "
        f"median of {ROUNDS} alternating rounds (`python benchmarks/bench_sqlite_point_read.py`):\n"
    )
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
