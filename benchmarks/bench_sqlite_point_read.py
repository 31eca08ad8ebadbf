"""Point read by key on SQLite: asyncdb ``find_one({"id": k})`` against raw aiosqlite.

Fair by construction: both read the same table of the same file (the one asyncdb created), the
same keys in the same order, through one connection each (asyncdb's short-read connection, one
raw ``aiosqlite`` connection), warmed up first. Raw is ``SELECT doc FROM t WHERE k0 = ?`` plus
``orjson.loads``; the documents hold only JSON types, so asyncdb's decode is that same
``orjson.loads``. Concurrency 1 is one task; concurrency 64 is ``asyncio.gather`` of 64 tasks,
each doing its share of the reads. Rounds alternate asyncdb and raw; the median round counts.
Target (DESIGN section 6): asyncdb time per read <= 1.10 x raw.

    python benchmarks/bench_sqlite_point_read.py  # + results/bench_sqlite_point_read.json
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

import aiosqlite
import orjson
from _report import markdown_table, print_table, save_results

import asyncdb

DOCS = 10_000
READS = {1: 5_000, 64: 12_800}  # per round, split evenly over the tasks
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


async def run_round(read: Reader, keys: list[list[str]]) -> float:
    """Seconds to do every read: one task per key list, all at once."""

    async def worker(mine: list[str]) -> None:
        for k in mine:
            if await read(k) is None:
                raise AssertionError(f"missing {k}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(mine) for mine in keys))
    return time.perf_counter() - started


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

        results: dict[str, Any] = {}
        rows: list[list[Any]] = []
        for concurrency, total in READS.items():
            per_task = total // concurrency
            keys = [
                [f"alert-{rng.randrange(DOCS):06d}" for _ in range(per_task)]
                for _ in range(concurrency)
            ]
            await run_round(asyncdb_read, [k[:20] for k in keys])  # warm-up
            await run_round(raw_read, [k[:20] for k in keys])
            seconds: dict[str, list[float]] = {name: [] for name in readers}
            for _ in range(ROUNDS):
                for name, read in readers.items():
                    seconds[name].append(await run_round(read, keys))
            reads = per_task * concurrency
            ops = {name: reads / statistics.median(s) for name, s in seconds.items()}
            ratio = ops["raw aiosqlite"] / ops["asyncdb"]
            best_ratio = min(seconds["asyncdb"]) / min(seconds["raw aiosqlite"])
            results[f"c{concurrency}"] = {
                "concurrency": concurrency,
                "reads_per_round": reads,
                "rounds": ROUNDS,
                "ops_per_s": ops,
                "us_per_read": {name: 1e6 / v for name, v in ops.items()},
                "round_seconds": seconds,
                "ratio_asyncdb_over_raw": ratio,
                "ratio_best_rounds": best_ratio,
                "target": TARGET,
                "meets_target": ratio <= TARGET,
            }
            rows.append(
                [
                    concurrency,
                    round(ops["asyncdb"]),
                    round(ops["raw aiosqlite"]),
                    1e6 / ops["asyncdb"],
                    1e6 / ops["raw aiosqlite"],
                    f"{ratio:.2f}x",
                    "yes" if ratio <= TARGET else "NO",
                ]
            )
        await raw.close()
        await db.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    headers = [
        "concurrency",
        "asyncdb ops/s",
        "raw ops/s",
        "asyncdb us/read",
        "raw us/read",
        "asyncdb/raw",
        f"<= {TARGET:.2f}x",
    ]
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
