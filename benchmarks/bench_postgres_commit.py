"""PostgreSQL: what proving a lost COMMIT costs. One run, one throwaway server, the same
collection; each write is timed with the store's ``prove_commits`` on (a write section's
statement reports its transaction id in its reply; with ``exactly_once_native=1`` a native
``$set`` also runs in a write section of its own: BEGIN, the statement, COMMIT) and off (the
statements as before: a native ``$set`` is one autocommitted statement), in alternating rounds,
best round of each side.

* ``$set`` of one field by key (the native one-statement update);
* ``$inc`` by key (read, apply, write back in a write section);
* ``delete_many`` of one document by an indexed filter (one statement in a write section).

    python benchmarks/bench_postgres_commit.py   # + results/bench_postgres_commit.json
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _report import markdown_table, postgres_database, print_table, save_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import asyncdb

DOCS = 2_000
CALLS = 1_000  # per round and side
ROUNDS = 9

Write = Callable[[int], Awaitable[Any]]


async def timed(write: Write, offset: int) -> float:
    """Mean microseconds of CALLS sequential calls."""
    began = time.perf_counter()
    for i in range(CALLS):
        await write(offset + i)
    return (time.perf_counter() - began) / CALLS * 1e6


async def main() -> None:
    results: dict[str, Any] = {}
    async with postgres_database("bench_commit") as url:
        db = await asyncdb.connect(f"{url}?min_size=4&max_size=4")
        store: Any = db._store
        items = db.collection("items", indexes=["g"])
        await items.insert_many([{"id": f"k{i}", "n": 0, "g": i, "v": ""} for i in range(DOCS)])
        doomed = db.collection("doomed", indexes=["g"])
        next_doomed = [0]

        async def set_one(i: int) -> Any:
            return await items.update_one({"id": f"k{i % DOCS}"}, {"$set": {"v": f"v{i}"}})

        async def inc_one(i: int) -> Any:
            return await items.update_one({"id": f"k{i % DOCS}"}, {"$inc": {"n": 1}})

        async def delete_by_filter(i: int) -> Any:
            g = next_doomed[0]
            next_doomed[0] += 1
            return await doomed.delete_many({"g": g})

        # (name, write, exactly_once_native on the "after" side)
        cases: list[tuple[str, Write, bool]] = [
            ("$set by key (native, default)", set_one, False),
            ("$set by key (native, exactly_once_native=1)", set_one, True),
            ("$inc by key (read-modify-write)", inc_one, False),
            ("delete_many, indexed filter", delete_by_filter, False),
        ]
        for name, write, native in cases:
            sides: dict[bool, list[float]] = {True: [], False: []}
            for round_no in range(ROUNDS):
                for prove in (round_no % 2 == 0, round_no % 2 != 0):
                    if write is delete_by_filter:
                        start = next_doomed[0]
                        await doomed.insert_many(
                            [{"id": f"d{start + i}", "g": start + i} for i in range(CALLS)]
                        )
                    store.prove_commits = prove
                    store.exactly_once_native = prove and native
                    sides[prove].append(await timed(write, round_no * CALLS))
            store.prove_commits, store.exactly_once_native = True, False
            before, after = min(sides[False]), min(sides[True])
            results[name] = {
                "before_us": before,
                "after_us": after,
                "ratio": after / before,
                "rounds_before_us": sides[False],
                "rounds_after_us": sides[True],
                "median_round_ratio": statistics.median(
                    a / b for a, b in zip(sides[True], sides[False], strict=True)
                ),
            }
        await db.close()
    headers = ["write (sequential)", "before us", "after us", "after/before"]
    rows = [
        [name, r["before_us"], r["after_us"], f"{r['ratio']:.2f}x"] for name, r in results.items()
    ]
    print_table(headers, rows)
    saved = save_results("bench_postgres_commit", {"results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
