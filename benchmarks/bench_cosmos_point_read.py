"""Point read by key on Cosmos DB (cosmosdb-server): asyncdb ``find_one({"id": k})`` against the
raw ``azure.cosmos.aio`` driver.

Both read the same container (the one asyncdb created) through their own ``CosmosClient``, the
same keys in the same order, warmed up first. Raw is ``container.read_item(id, partition_key)``
(the driver's own JSON decode); asyncdb does the same request plus decoding its exact copy of
the document (``json.loads`` of ``raw``). Concurrency 1 is one task; concurrency 64 is
``asyncio.gather`` of 64 tasks. Rounds of ``SECONDS`` per reader, their order reversed every
other round, through the ``asyncdb bench`` harness (``asyncdb.cli.bench.interleaved``); the
median round counts.
Target (DESIGN section 6): asyncdb time per read <= 1.10 x raw. The server is started by the
test-bed pool (tests/servers), as in the conformance suite.

    python benchmarks/bench_cosmos_point_read.py  # + results/bench_cosmos_point_read.json
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _report import (
    compare_point_reads,
    markdown_table,
    point_read_headers,
    print_table,
    save_results,
)
from azure.cosmos.aio import CosmosClient

import asyncdb
from asyncdb.backends.cosmos.codec import encode_key, encode_key_part
from tests.servers.cosmos import CosmosEndpoint
from tests.servers.pool import POOL

DOCS = 500
CONCURRENCY = (1, 64)
KEYS = 2_000  # random keys, read in order, over and over
SECONDS = 0.5  # per round and reader
ROUNDS = 5
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
    rng = random.Random(7)
    server = POOL.server("cosmos")
    try:
        async with server.fresh() as url:
            await measure(url, rng)
    finally:
        POOL.stop_all()


async def measure(url: str, rng: random.Random) -> None:
    db = await asyncdb.connect(url)
    items = db.collection("items")
    started = time.perf_counter()
    for start in range(0, DOCS, 100):
        await items.insert_many(make_doc(i, rng) for i in range(start, start + 100))
    print(f"loaded {DOCS:,} documents in {time.perf_counter() - started:.1f} s")

    endpoint = CosmosEndpoint.from_url(url)
    raw_client = CosmosClient(
        endpoint.endpoint_url, credential=endpoint.key, connection_verify=endpoint.verify
    )
    container = raw_client.get_database_client(endpoint.database).get_container_client("items")

    async def raw_read(key: str) -> dict[str, Any] | None:
        item: dict[str, Any] = await container.read_item(
            encode_key((key,)), partition_key=encode_key_part(key)
        )
        return item

    async def asyncdb_read(key: str) -> dict[str, Any] | None:
        return await items.find_one({"id": key})

    sample = [f"alert-{i:06d}" for i in rng.sample(range(DOCS), 20)]
    for key in sample:  # same document, and both clients warm
        raw_item = await raw_read(key)
        assert raw_item is not None and json.loads(raw_item["raw"]) == await asyncdb_read(key)
    readers: dict[str, Reader] = {"asyncdb": asyncdb_read, "raw azure-cosmos": raw_read}

    results, rows = await compare_point_reads(
        readers,
        lambda: [f"alert-{rng.randrange(DOCS):06d}" for _ in range(KEYS)],
        concurrencies=CONCURRENCY,
        rounds=ROUNDS,
        seconds=SECONDS,
        base="raw azure-cosmos",
        target=TARGET,
    )
    await raw_client.close()
    await db.close()

    headers = point_read_headers(TARGET)
    print()
    print_table(headers, rows)
    saved = save_results("bench_cosmos_point_read", {"documents": DOCS, "results": results})
    print(f"\nsaved {saved}\n")
    print(
        f"Point read by key on cosmosdb-server, {DOCS:,} documents, "
        f"median of {ROUNDS} alternating rounds (`python benchmarks/bench_cosmos_point_read.py`):\n"
    )
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
