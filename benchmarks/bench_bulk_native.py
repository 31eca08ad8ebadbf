"""bulk_write of updates and deletes by key on DynamoDB, Firestore and Cosmos DB: the native
runs (DynamoDB: BatchGetItem + one conditional TransactWriteItems per 100 operations; Firestore:
one batched commit with preconditions per run; Cosmos DB, unordered: one If-Match write per
document, concurrently) against the path before them (``StoreCollection.bulk_batch``: each
operation one update or delete call), in the same run, on the local servers of the test bed.

    python benchmarks/bench_bulk_native.py   # + results/bench_bulk_native.json

BENCH_BULK_OPS (1000) operations over as many documents (each document updated then, for one
in four, deleted), BENCH_ROUNDS (3) alternating rounds, the median of each.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test bed's servers

from _report import markdown_table, print_table, save_results
from servers.base import ThrowawayServer
from servers.cosmos import CosmosServer
from servers.dynamodb import DynamoDBLocalServer
from servers.firestore import FirestoreEmulator

import asyncdb
from asyncdb.backends.base import StoreCollection

OPS = int(os.environ.get("BENCH_BULK_OPS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def requests(round_no: int) -> list[Any]:
    """Per document an update, and for every fourth one a delete after it."""
    ops: list[Any] = []
    docs = OPS * 4 // 5
    for i in range(docs):
        ops.append(asyncdb.UpdateOne({"id": f"d{i}"}, {"$inc": {"n": 1}, "$set": {"r": round_no}}))
        if i % 4 == 0 and len(ops) < OPS:
            ops.append(asyncdb.DeleteOne({"id": f"d{i}"}))
    return ops[:OPS]


@asynccontextmanager
async def one_at_a_time(coll: asyncdb.Collection) -> AsyncIterator[None]:
    """The path before the native runs: the shared bulk_batch (inserts batched, the rest one
    operation at a time)."""
    cls: Any = type(coll._store)
    native = cls.bulk_batch
    cls.bulk_batch = StoreCollection.bulk_batch
    try:
        yield
    finally:
        cls.bulk_batch = native


async def bench(url: str, name: str) -> dict[str, float]:
    times: dict[str, list[float]] = {"native": [], "one at a time": []}
    async with asyncdb.connect(url, timeout=600) as db:  # the slow path takes long on Cosmos
        for round_no in range(ROUNDS):
            for path in times:
                coll = db.collection(f"bulk_{path.replace(' ', '_')}_{round_no}")
                await coll.insert_many(
                    [{"id": f"d{i}", "n": 0, "pad": "x" * 200} for i in range(OPS)]
                )
                ops = requests(round_no)
                ordered = name != "cosmos"  # Cosmos DB's native runs are unordered ones
                started = time.perf_counter()
                if path == "native":
                    res = await coll.bulk_write(ops, ordered=ordered)
                else:
                    async with one_at_a_time(coll):
                        res = await coll.bulk_write(ops, ordered=ordered)
                times[path].append(time.perf_counter() - started)
                assert res.modified_count + res.deleted_count == len(ops), res
    return {k: statistics.median(v) for k, v in times.items()}


async def main() -> None:
    servers: list[tuple[str, Callable[[], ThrowawayServer]]] = [
        ("dynamodb", DynamoDBLocalServer),
        ("firestore", FirestoreEmulator),
        ("cosmos", CosmosServer),
    ]
    rows = []
    results: dict[str, Any] = {"operations": OPS, "rounds": ROUNDS}
    for name, make in servers:
        server = make()
        server.start()
        try:
            async with server.fresh() as url:
                t = await bench(url, name)
        finally:
            server.stop()
        ratio = t["one at a time"] / t["native"]
        results[name] = {**{k: round(v * 1000, 1) for k, v in t.items()}, "speedup": ratio}
        rows.append([name, t["native"] * 1000, t["one at a time"] * 1000, f"{ratio:.1f}x"])
    headers = ["backend", "native ms", "one at a time ms", "speed-up"]
    print(f"bulk_write of {OPS:,} updates and deletes by key, median of {ROUNDS}")
    print_table(headers, rows)
    saved = save_results("bench_bulk_native", {"results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
