"""The floor under an audited point read's cost under the closed policy (the call returns once
its event is stored): with no asyncdb at all, a raw point read against the same raw read
followed by the durable insert of one audit-event-sized row, in series, as a caller alone
(concurrency 1) must do them. Whatever asyncdb adds comes on top; ``bench_observe.py``'s
"audit, closed" ratio can be no lower than this one's.

- SQLite on the loop's thread (sqlite3, as asyncdb's point read and its event insert run
  there): ``SELECT doc, tagged ... WHERE k0 = ?`` against it plus one autocommitted ``INSERT``
  (WAL, ``synchronous=NORMAL``, asyncdb's table layout).
- SQLite through aiosqlite (a hop to the connection's thread per statement).
- PostgreSQL through asyncpg (``--postgres``: a throwaway server): ``fetchrow`` against it plus
  one autocommitted ``INSERT`` (one round trip each).

One run, rounds interleaved, the median round counts (:func:`asyncdb.cli.bench.interleaved`).

    python benchmarks/bench_audit_floor.py [--postgres]   # + results/bench_audit_floor.json
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _report import postgres_database, print_table, save_results

from asyncdb.cli.bench import interleaved

DOCS = 2000
ROUNDS = 11
SECONDS = 0.5
DOC = (
    '{"id": "b0000001", "title": "Disk usage above 90% on host-1", "description": "'
    + ("x" * 200)
    + '"}'
)
# an audit event as the trail stores it (about 450 bytes of JSON)
EVENT = (
    '{"seq": 1, "ts": "2026-12-02T13:00:00.000000+00:00", "actor": "u42", "tenant": "acme", '
    '"backend": "sqlite", "collection": "observed_reads", "op": "find_one", "keys": ["b0000001"],'
    ' "count": 1, "query": "{\\"id\\": ?}", "outcome": "ok", "duration_ms": 0.031, '
    '"prev_hash": "' + "0" * 64 + '", "hash": "' + "1" * 64 + '", "id": "00000000000000000001"}'
)
TABLE = "(k0, doc TEXT NOT NULL, tagged INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (k0))"


def _keys() -> Any:
    return (f"b{(n * 7919) % DOCS:07d}" for n in itertools.count())


async def sqlite_floor(workdir: Path) -> dict[str, Any]:
    import aiosqlite

    path = workdir / "floor.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute(f"CREATE TABLE items {TABLE}")
    setup.execute(f"CREATE TABLE events {TABLE}")
    setup.executemany(
        "INSERT INTO items VALUES (?, ?, 0)", [(f"b{i:07d}", DOC) for i in range(DOCS)]
    )
    setup.close()
    read_conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    write_conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    write_conn.execute("PRAGMA synchronous = NORMAL")
    a_read = await aiosqlite.connect(path, isolation_level=None)
    a_write = await aiosqlite.connect(path, isolation_level=None)
    await a_write.execute("PRAGMA synchronous = NORMAL")
    get = "SELECT doc, tagged FROM items WHERE k0 = ?"
    put = "INSERT INTO events VALUES (?, ?, 0)"
    keys, seq = _keys(), itertools.count()

    async def inline_read(n: int) -> None:
        assert read_conn.execute(get, (next(keys),)).fetchall()

    async def inline_read_insert(n: int) -> None:
        assert read_conn.execute(get, (next(keys),)).fetchall()
        write_conn.execute(put, (f"{next(seq):020d}", EVENT))

    async def thread_read(n: int) -> None:
        assert await a_read.execute_fetchall(get, (next(keys),))

    async def thread_read_insert(n: int) -> None:
        assert await a_read.execute_fetchall(get, (next(keys),))
        await a_write.execute(put, (f"{next(seq):020d}", EVENT))

    try:
        inline = await interleaved(
            {"read": inline_read, "read + insert": inline_read_insert},
            concurrency=1,
            duration=SECONDS,
            rounds=ROUNDS,
        )
        threads = await interleaved(
            {"read": thread_read, "read + insert": thread_read_insert},
            concurrency=1,
            duration=SECONDS,
            rounds=ROUNDS,
        )
    finally:
        read_conn.close()
        write_conn.close()
        await a_read.close()
        await a_write.close()
    return {"sqlite3 on the loop's thread": inline, "aiosqlite": threads}


async def postgres_floor(url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute("DROP TABLE IF EXISTS items, events")
    await conn.execute("CREATE TABLE items (k0 text PRIMARY KEY, doc jsonb NOT NULL)")
    await conn.execute("CREATE TABLE events (k0 text PRIMARY KEY, doc jsonb NOT NULL)")
    await conn.executemany(
        "INSERT INTO items VALUES ($1, $2)", [(f"b{i:07d}", DOC) for i in range(DOCS)]
    )
    keys, seq = _keys(), itertools.count()
    get = "SELECT doc FROM items WHERE k0 = $1"
    put = "INSERT INTO events VALUES ($1, $2)"

    async def read(n: int) -> None:
        assert await conn.fetchrow(get, next(keys)) is not None

    async def read_insert(n: int) -> None:
        assert await conn.fetchrow(get, next(keys)) is not None
        await conn.execute(put, f"{next(seq):020d}", EVENT)

    try:
        c = await interleaved(
            {"read": read, "read + insert": read_insert},
            concurrency=1,
            duration=SECONDS,
            rounds=ROUNDS,
        )
    finally:
        await conn.execute("DROP TABLE IF EXISTS items, events")
        await conn.close()
    return {"asyncpg (one connection)": c}


async def main(argv: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-floor-"))
    servers = contextlib.AsyncExitStack()
    try:
        runs = {f"sqlite, {k}": v for k, v in (await sqlite_floor(workdir)).items()}
        if "--postgres" in argv:
            url = await servers.enter_async_context(postgres_database("floor"))
            runs.update({f"postgres, {k}": v for k, v in (await postgres_floor(url)).items()})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        await servers.aclose()
    headers = [
        "side",
        "us/op read",
        "us/op read + insert",
        "x (median)",
        "CPU us read",
        "CPU us read + insert",
        "CPU x",
    ]
    rows = []
    results = {}
    for name, c in runs.items():
        rows.append(
            [
                name,
                c.us_per_op("read"),
                c.us_per_op("read + insert"),
                c.ratio("read + insert", "read"),
                statistics.median(c.rounds_cpu_us["read"]),
                statistics.median(c.rounds_cpu_us["read + insert"]),
                c.cpu_ratio("read + insert", "read"),
            ]
        )
        results[name] = {
            "us_per_op": {k: c.us_per_op(k) for k in ("read", "read + insert")},
            "ratio": c.ratio("read + insert", "read"),
            "cpu_ratio": c.cpu_ratio("read + insert", "read"),
            "rounds_ops_per_s": c.rounds_ops_per_s,
            "rounds_cpu_us": c.rounds_cpu_us,
        }
    print_table(headers, rows)
    path = save_results(
        "bench_audit_floor", {"rounds": ROUNDS, "seconds": SECONDS, "runs": results}
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
