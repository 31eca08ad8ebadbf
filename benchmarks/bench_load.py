"""Multi-process load on PostgreSQL + Redis (DESIGN section 12): asyncdb with the read-through
cache on, against the same load on raw asyncpg, at 1, 2 and 4 processes x 64 tasks.

Each task owns a few counter documents and loops: 20% writes (``$inc`` of one of its own
counters), 40% reads of its own counters, 40% reads of a few hot documents every task reads
(cache hits). Every answer is checked: a read of an own counter must show every increment the
task made (no stale read after a write returned, across processes and the cache), a hot document
its loaded value; at the end every counter must equal the increments made to it (no lost write).
Each process opens its own ``Database`` (its own pools and Redis clients), as a service's
workers do. Reported per process count: operations per second (all processes together),
p50/p99 latency per operation, errors and stale reads; asyncdb scales with processes when its
throughput grows with them as the raw driver's does (the stores are the shared part).

    python benchmarks/bench_load.py            # 1, 2, 4 processes, 10 s each + JSON
    python benchmarks/bench_load.py --quick    # 2 processes, 2 s (what CI runs in short form)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import asyncpg

import asyncdb

TASKS = 64
OWN = 4  # counters per task
HOT = 8  # documents every task reads
WRITE_SHARE, OWN_READ_SHARE = 0.2, 0.4  # the rest reads the hot documents
POOL = 8  # connections per process
# Redis calls time out after this (the default, 50 ms, opens the cache's breaker on a machine
# loaded by the load itself; the cache then falls back to the store, which is correct but is
# not the load being measured)
CACHE_TIMEOUT = 1.0


@dataclass
class Outcome:
    """What one process did."""

    ops: int = 0
    errors: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    latencies_us: list[float] = field(default_factory=list)
    increments: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def own_key(process: int, task: int, i: int) -> str:
    return f"c-{process}-{task}-{i}"


def hot_key(i: int) -> str:
    return f"hot-{i}"


async def _asyncdb_worker(
    pg_url: str, redis_url: str, process: int, tasks: int, seconds: float, start_at: float
) -> Outcome:
    db = await asyncdb.connect(
        f"{pg_url}?min_size=1&max_size={POOL}", cache=redis_url, cache_timeout=CACHE_TIMEOUT
    )
    counters = db.collection("counters")
    out = Outcome()

    async def read_own(key: str) -> int:
        doc = await counters.find_one({"id": key})
        return -1 if doc is None else int(doc["n"])

    async def inc(key: str) -> None:
        await counters.update_one({"id": key}, {"$inc": {"n": 1}})

    async def read_hot(key: str) -> Any:
        doc = await counters.find_one({"id": key})
        return None if doc is None else doc["v"]

    try:
        await _drive(out, process, tasks, seconds, start_at, read_own, inc, read_hot)
    finally:
        await db.close()
    return out


async def _raw_worker(
    pg_url: str, redis_url: str, process: int, tasks: int, seconds: float, start_at: float
) -> Outcome:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=POOL)
    out = Outcome()
    read_sql = "SELECT n, v FROM raw_counters WHERE id = $1"
    inc_sql = "UPDATE raw_counters SET n = n + 1 WHERE id = $1"

    async def read_own(key: str) -> int:
        row = await pool.fetchrow(read_sql, key)
        return -1 if row is None else int(row["n"])

    async def inc(key: str) -> None:
        await pool.execute(inc_sql, key)

    async def read_hot(key: str) -> Any:
        row = await pool.fetchrow(read_sql, key)
        return None if row is None else row["v"]

    try:
        await _drive(out, process, tasks, seconds, start_at, read_own, inc, read_hot)
    finally:
        await pool.close()
    return out


async def _drive(
    out: Outcome,
    process: int,
    tasks: int,
    seconds: float,
    start_at: float,
    read_own: Any,
    inc: Any,
    read_hot: Any,
) -> None:
    for i in range(HOT):  # connections and clients warm before the clock starts
        await read_hot(hot_key(i))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    clock = time.perf_counter
    ends = clock() + seconds

    async def task(t: int) -> None:
        rng = random.Random(process * 1000 + t)
        made = [0] * OWN  # increments this task made, per own counter
        lat = out.latencies_us
        while clock() < ends:
            draw = rng.random()
            i = rng.randrange(OWN)
            key = own_key(process, t, i)
            began = clock()
            try:
                if draw < WRITE_SHARE:
                    await inc(key)
                    made[i] += 1
                elif draw < WRITE_SHARE + OWN_READ_SHARE:
                    seen = await read_own(key)
                    if seen != made[i]:
                        out.stale.append(f"{key}: read {seen}, made {made[i]}")
                else:
                    h = rng.randrange(HOT)
                    value = await read_hot(hot_key(h))
                    if value != f"hot value {h}":
                        out.stale.append(f"{hot_key(h)}: read {value!r}")
            except Exception as exc:  # counted and reported: the load must see none
                out.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            lat.append((clock() - began) * 1e6)
            out.ops += 1
        for i, n in enumerate(made):
            out.increments[own_key(process, t, i)] = n

    began = clock()
    await asyncio.gather(*(task(t) for t in range(tasks)))
    out.seconds = clock() - began


def _run_worker(kind: str, *args: Any) -> Outcome:
    worker = _asyncdb_worker if kind == "asyncdb" else _raw_worker
    return asyncio.run(worker(*args))


async def prepare(pg_url: str, redis_url: str, processes: int, tasks: int) -> None:
    """Counters at 0 for every task of every process, and the hot documents, for both sides
    (asyncdb's collection made here once, not raced by the workers; written through the cache,
    so the entries of an earlier load are invalidated)."""
    db = await asyncdb.connect(pg_url, cache=redis_url, cache_timeout=CACHE_TIMEOUT)
    counters = db.collection("counters")
    await counters.delete_many({}, allow_scan=True)
    docs: list[dict[str, Any]] = [{"id": hot_key(i), "v": f"hot value {i}"} for i in range(HOT)]
    docs += [
        {"id": own_key(p, t, i), "n": 0}
        for p in range(processes)
        for t in range(tasks)
        for i in range(OWN)
    ]
    await counters.insert_many(docs)
    await db.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS raw_counters")
        await conn.execute("CREATE TABLE raw_counters (id text PRIMARY KEY, n bigint, v text)")
        await conn.copy_records_to_table(
            "raw_counters",
            records=[(d["id"], d.get("n"), d.get("v")) for d in docs],
            columns=["id", "n", "v"],
        )
    finally:
        await conn.close()


async def final_counts(pg_url: str, kind: str) -> dict[str, int]:
    """Every counter as stored, read past the cache."""
    if kind == "asyncdb":
        db = await asyncdb.connect(pg_url)
        try:
            docs = (
                await db.collection("counters").find({"n": {"$gte": 0}}, allow_scan=True).to_list()
            )
        finally:
            await db.close()
        return {d["id"]: d["n"] for d in docs}
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT id, n FROM raw_counters WHERE n IS NOT NULL")
    finally:
        await conn.close()
    return {r["id"]: r["n"] for r in rows}


def run_load(
    kind: str,
    pg_url: str,
    redis_url: str,
    processes: int,
    tasks: int,
    seconds: float,
    start_delay: float | None = None,
) -> dict[str, Any]:
    """One load: ``processes`` worker processes x ``tasks`` tasks for ``seconds``, then the
    checks. Returns throughput, latency percentiles, errors, stale reads and lost writes.
    The workers start together ``start_delay`` seconds after they are launched (a late one
    still runs its ``seconds``, and its answers are checked all the same)."""
    asyncio.run(prepare(pg_url, redis_url, processes, tasks))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        delay = 3.0 + processes if start_delay is None else start_delay
        start_at = time.time() + delay  # every worker connected and warm by then
        futures = [
            pool.submit(_run_worker, kind, pg_url, redis_url, p, tasks, seconds, start_at)
            for p in range(processes)
        ]
        outcomes = [f.result() for f in futures]
    counts = asyncio.run(final_counts(pg_url, kind))
    made: dict[str, int] = {}
    for o in outcomes:
        made.update(o.increments)
    lost = {k: (counts.get(k), n) for k, n in made.items() if counts.get(k) != n}
    latencies = sorted(x for o in outcomes for x in o.latencies_us)
    ops = sum(o.ops for o in outcomes)
    wall = max(o.seconds for o in outcomes)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] if latencies else 0.0

    return {
        "kind": kind,
        "processes": processes,
        "tasks_per_process": tasks,
        "seconds": wall,
        "ops": ops,
        "ops_per_s": ops / wall if wall else 0.0,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "median_us": statistics.median(latencies) if latencies else 0.0,
        "increments": sum(made.values()),
        "errors": [e for o in outcomes for e in o.errors][:20],
        "error_count": sum(len(o.errors) for o in outcomes),
        "stale": [s for o in outcomes for s in o.stale][:20],
        "stale_count": sum(len(o.stale) for o in outcomes),
        "lost_writes": dict(list(lost.items())[:20]),
        "lost_count": len(lost),
    }


def main() -> None:
    from _report import markdown_table, print_table, save_results

    from tests.servers.postgres import PostgresServer
    from tests.servers.redis import RedisServer

    quick = "--quick" in sys.argv
    counts = (2,) if quick else (1, 2, 4)
    seconds = 2.0 if quick else 10.0
    pg, redis_server = PostgresServer(), RedisServer()
    pg.start()
    redis_server.start()
    results: list[dict[str, Any]] = []
    try:

        async def create() -> str:
            admin = await asyncpg.connect(pg.url)
            await admin.execute("DROP DATABASE IF EXISTS load")
            await admin.execute("CREATE DATABASE load")
            await admin.close()
            return pg.url.rsplit("/", 1)[0] + "/load"

        pg_url = asyncio.run(create())
        for processes in counts:
            for kind in ("asyncdb", "raw asyncpg"):
                result = run_load(kind, pg_url, redis_server.url, processes, TASKS, seconds)
                results.append(result)
                print(
                    f"{kind}: {processes} x {TASKS} tasks: {result['ops_per_s']:,.0f} ops/s, "
                    f"p50 {result['p50_us']:,.0f} us, p99 {result['p99_us']:,.0f} us, "
                    f"errors {result['error_count']}, stale {result['stale_count']}, "
                    f"lost writes {result['lost_count']}"
                )
    finally:
        redis_server.stop()
        pg.stop()
    headers = [
        "processes",
        "asyncdb ops/s",
        "raw ops/s",
        "asyncdb/raw throughput",
        "asyncdb p50 / p99 us",
        "raw p50 / p99 us",
        "errors, stale, lost",
    ]
    rows = []
    for processes in counts:
        a = next(r for r in results if r["processes"] == processes and r["kind"] == "asyncdb")
        r = next(r for r in results if r["processes"] == processes and r["kind"] != "asyncdb")
        rows.append(
            [
                processes,
                round(a["ops_per_s"]),
                round(r["ops_per_s"]),
                f"{a['ops_per_s'] / r['ops_per_s']:.2f}x",
                f"{a['p50_us']:,.0f} / {a['p99_us']:,.0f}",
                f"{r['p50_us']:,.0f} / {r['p99_us']:,.0f}",
                f"{a['error_count'] + r['error_count']}, {a['stale_count'] + r['stale_count']}, "
                f"{a['lost_count'] + r['lost_count']}",
            ]
        )
    print()
    print_table(headers, rows)
    path = save_results(
        "bench_load",
        {"tasks_per_process": TASKS, "seconds_per_load": seconds, "results": results},
    )
    print(f"\nsaved {path}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
