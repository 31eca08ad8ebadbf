"""Point read by key on the Firestore emulator: asyncdb ``find_one({"id": k})`` against the raw
``google-cloud-firestore`` AsyncClient (``document(id).get()`` + ``to_dict()``).

Fair by construction: both read the same documents (the ones asyncdb wrote) from one emulator,
the same keys in the same order, each through its own AsyncClient, warmed up first. Raw reads
the document id asyncdb derives from the key (``codec.doc_id``) and returns ``to_dict()``;
asyncdb also decodes (drops the hidden fields, restores field order). Concurrency 1 is one task,
64 is ``asyncio.gather`` of 64 tasks. Rounds of ``SECONDS`` per reader, their order reversed
every other round, through the ``asyncdb bench`` harness (``asyncdb.cli.bench.interleaved``);
the median round counts. Target (DESIGN
section 6): asyncdb time per read <= 1.10 x raw. The emulator is a JVM on the same machine, so
absolute numbers say little; the ratio is the figure.

    python benchmarks/bench_firestore_point_read.py  # + results/firestore.json
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the emulator's test bed

from _report import (
    compare_point_reads,
    markdown_table,
    point_read_headers,
    print_table,
    save_results,
)
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore import AsyncClient
from servers.firestore import FirestoreEndpoint
from servers.pool import POOL

import asyncdb
from asyncdb.backends.firestore.codec import doc_id

DOCS = 2_000
CONCURRENCY = (1, 64)
KEYS = 2_000  # random keys, read in order, over and over
SECONDS = 0.5  # per round and reader
ROUNDS = 5
TARGET = 1.10
SERVICES = ("api", "auth", "db", "payments", "queue", "search")

Reader = Callable[[str], Awaitable[dict[str, Any] | None]]


def make_doc(i: int, rng: random.Random) -> dict[str, Any]:
    """An alert of about 500 bytes: strings, numbers, a list, a nested object."""
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


async def main() -> None:
    server = POOL.server("firestore")
    rng = random.Random(7)
    try:
        url = server.url
        endpoint = FirestoreEndpoint.from_url(url)
        await asyncio.to_thread(endpoint.reset)
        db = await asyncdb.connect(url)
        items = db.collection("items")
        started = time.perf_counter()
        for start in range(0, DOCS, 500):
            await items.insert_many([make_doc(i, rng) for i in range(start, start + 500)])
        print(f"loaded {DOCS:,} documents in {time.perf_counter() - started:.1f} s")

        raw = AsyncClient(project=endpoint.project, credentials=AnonymousCredentials())
        raw._emulator_host = endpoint.emulator_host
        raw_items = raw.collection("items")

        async def raw_read(key: str) -> dict[str, Any] | None:
            snap = await raw_items.document(doc_id((key,))).get()
            return snap.to_dict() if snap.exists else None

        async def asyncdb_read(key: str) -> dict[str, Any] | None:
            return await items.find_one({"id": key})

        for key in [f"alert-{i:06d}" for i in rng.sample(range(DOCS), 20)]:
            got, want = await asyncdb_read(key), await raw_read(key)
            assert got is not None and want is not None and got["title"] == want["title"]
        readers: dict[str, Reader] = {"asyncdb": asyncdb_read, "raw firestore": raw_read}
        results, rows = await compare_point_reads(
            readers,
            lambda: [f"alert-{rng.randrange(DOCS):06d}" for _ in range(KEYS)],
            concurrencies=CONCURRENCY,
            rounds=ROUNDS,
            seconds=SECONDS,
            base="raw firestore",
            target=TARGET,
        )
        raw.close()
        await db.close()
    finally:
        POOL.stop_all()

    headers = point_read_headers(TARGET)
    print()
    print_table(headers, rows)
    saved = save_results("firestore", {"documents": DOCS, "results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
