"""Point read by key on MongoDB: asyncdb ``find_one({"id": k})`` against raw pymongo
``AsyncMongoClient.find_one({"_id": k})``, on a throwaway SecantusDB started the way the tests
start it (tests/servers/mongo.py), or on ``ASYNCDB_TEST_MONGO_URL`` when set.

Fair by construction: both read the same collection (the one asyncdb filled), the same keys in
the same order, each through its own client with the same pool settings, warmed up first. Raw
decodes with pymongo's default codec; asyncdb's codec adds UTC-aware datetimes and the Decimal
and Int64 decoders (which these documents do not exercise). Concurrency 1 is one task;
concurrency 64 is ``asyncio.gather`` of 64 tasks, each doing its share. Rounds of ``SECONDS``
per reader, their order reversed every other round, through the ``asyncdb bench`` harness
(``asyncdb.cli.bench.interleaved``); the median round counts. Target (DESIGN section 6):
asyncdb <= 1.10 x raw.

    python benchmarks/bench_mongo.py  # + results/bench_mongo.json
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # its server fixtures

import orjson
from _report import (
    compare_point_reads,
    markdown_table,
    point_read_headers,
    print_table,
    save_results,
)
from pymongo import AsyncMongoClient
from servers.mongo import SecantusServer, with_database

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
    server = SecantusServer()
    external = os.environ.get(server.env_var(), "").strip()
    server.start()  # adopts ASYNCDB_TEST_MONGO_URL when set
    try:
        await measure(with_database(server.url, "asyncdb_bench_mongo"), drop=not external)
    finally:
        server.stop()


async def measure(url: str, *, drop: bool) -> None:
    rng = random.Random(7)
    db = await asyncdb.connect(url)
    raw_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        items = db.collection("items")
        await items.delete_many({}, allow_scan=True)
        started = time.perf_counter()
        for start in range(0, DOCS, 1000):
            await items.insert_many(make_doc(i, rng) for i in range(start, start + 1000))
        print(f"loaded {DOCS:,} documents in {time.perf_counter() - started:.1f} s ({url})")
        raw = raw_client.get_default_database()["items"]

        async def raw_read(key: str) -> dict[str, Any] | None:
            return await raw.find_one({"_id": key})

        async def asyncdb_read(key: str) -> dict[str, Any] | None:
            return await items.find_one({"id": key})

        sample = [f"alert-{i:06d}" for i in rng.sample(range(DOCS), 50)]
        for key in sample:  # same answers (raw has _id besides), and both clients warm
            raw_doc = await raw_read(key)
            assert raw_doc is not None and raw_doc.pop("_id") == key
            assert await asyncdb_read(key) == raw_doc, key
        readers: dict[str, Reader] = {"asyncdb": asyncdb_read, "raw pymongo": raw_read}

        results, rows = await compare_point_reads(
            readers,
            lambda: [f"alert-{rng.randrange(DOCS):06d}" for _ in range(KEYS)],
            concurrencies=CONCURRENCY,
            rounds=ROUNDS,
            seconds=SECONDS,
            base="raw pymongo",
            target=TARGET,
        )
        if drop:
            await raw_client.drop_database(raw.database.name)
    finally:
        await raw_client.close()
        await db.close()

    headers = point_read_headers(TARGET)
    print()
    print_table(headers, rows)
    doc_bytes = len(orjson.dumps(make_doc(0, random.Random(7))))
    saved = save_results(
        "bench_mongo", {"documents": DOCS, "doc_bytes": doc_bytes, "results": results}
    )
    print(f"\nsaved {saved}\n")
    print(
        f"Point read by key on MongoDB wire (SecantusDB), {DOCS:,} documents of ~{doc_bytes} B, "
        f"median of {ROUNDS} alternating rounds (`python benchmarks/bench_mongo.py`):\n"
    )
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
