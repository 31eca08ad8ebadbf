"""Encrypted collections against the same collection without encryption, on SQLite and
PostgreSQL, in one run (a throwaway PostgreSQL from tests/servers/postgres.py):

* a point read by key (``find_one({"id": k})``): decrypting three fields (two "equality", one
  "opaque") per document;
* an equality query on an encrypted field (``find({"ssn": v})``, one match): blind-index lookup,
  decryption, re-check; the plain side queries an index on the plaintext ``ssn``;
* ``rotate_keys()`` throughput after promoting a new key, in documents per second.

Both collections hold the same documents and sit in the same database; rounds alternate the two
sides, the median of the per-round ratios counts. Target (issue 16): encrypted <= 1.3 x plain.

    python benchmarks/bench_security.py   # + results/bench_security.json
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import asyncpg
from _report import markdown_table, print_table, save_results

import asyncdb
from asyncdb.security import KeyRing
from tests.servers.postgres import PostgresServer

DOCS = 5_000
READS = 2_000  # per round and side
ROUNDS = 7
TARGET = 1.3
SPEC = {"ssn": "equality", "email": "equality", "notes": "opaque"}


def make_doc(i: int, rng: random.Random) -> dict[str, Any]:
    """A customer of about 400 bytes of JSON, three of its fields sensitive."""
    return {
        "id": f"cust-{i:06d}",
        "ssn": f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{i:04d}",
        "email": f"user{i}@example.com",
        "notes": "prefers email; " + "x" * rng.randint(100, 200),
        "company": f"company-{i % 97}",
        "tier": rng.choice(("free", "pro", "enterprise")),
        "score": rng.random(),
        "tags": rng.sample(["a", "b", "c", "d", "e"], 2),
        "address": {"city": "Lisbon", "zip": f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}"},
    }


async def timed(op: Callable[[Any], Awaitable[Any]], args: list[Any]) -> float:
    began = time.perf_counter()
    for a in args:
        await op(a)
    return time.perf_counter() - began


async def compare(
    sides: dict[str, Callable[[Any], Awaitable[Any]]], args: list[Any]
) -> dict[str, dict[str, float]]:
    """Each side against "plain": rounds alternate the sides; per side the median time per
    operation and the median of its per-round ratios to plain."""
    for op in sides.values():
        await timed(op, args[:200])  # warm up
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(ROUNDS):
        for name, op in sides.items():
            seconds[name].append(await timed(op, args))
    plain = seconds["plain"]
    return {
        name: {
            "us": 1e6 * statistics.median(s) / len(args),
            "ratio": statistics.median(a / p for a, p in zip(s, plain, strict=True)),
        }
        for name, s in seconds.items()
        if name != "plain"
    } | {"plain": {"us": 1e6 * statistics.median(plain) / len(args), "ratio": 1.0}}


async def bench(url: str) -> dict[str, Any]:
    ring = KeyRing.generate()
    async with asyncdb.connect(url, keyring=ring) as db:
        plain = db.collection("plain_customers", indexes=["ssn"])
        enc = db.collection("customers", encrypted=SPEC)
        one = db.collection("customers_ssn", encrypted={"ssn": "equality"})
        rng = random.Random(7)
        docs = [make_doc(i, rng) for i in range(DOCS)]
        for coll in (plain, enc, one):
            await coll.insert_many(docs)
        picks = [docs[rng.randrange(DOCS)] for _ in range(READS)]
        keys = [d["id"] for d in picks]
        ssns = [d["ssn"] for d in picks]
        assert await enc.find_one({"id": keys[0]}) == await plain.find_one({"id": keys[0]})
        assert (
            await enc.find({"ssn": ssns[0]}).to_list()
            == await plain.find({"ssn": ssns[0]}).to_list()
        )
        colls = {"3 fields": enc, "1 field": one, "plain": plain}
        out: dict[str, Any] = {
            "point_read": await compare(
                {n: (lambda k, c=c: c.find_one({"id": k})) for n, c in colls.items()}, keys
            ),
            "equality_query": await compare(
                {n: (lambda v, c=c: c.find({"ssn": v}).to_list()) for n, c in colls.items()},
                ssns,
            ),
        }
        ring.add("k2", os.urandom(32))
        ring.promote("k2")
        began = time.perf_counter()
        rotated = await enc.rotate_keys(batch_size=500)
        seconds = time.perf_counter() - began
        assert rotated == DOCS
        out["rotate_keys"] = {
            "documents": rotated,
            "seconds": seconds,
            "docs_per_s": rotated / seconds,
        }
        return out


async def main() -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await bench(f"sqlite:///{tmp}/bench.db")
    server = PostgresServer()
    server.start()
    try:
        admin = await asyncpg.connect(server.url)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        results["postgres"] = await bench(server.url.rsplit("/", 1)[0] + "/bench")
    finally:
        server.stop()
    rows = []
    for backend, r in results.items():
        for case in ("point_read", "equality_query"):
            for side in ("3 fields", "1 field"):
                c, plain_us = r[case][side], r[case]["plain"]["us"]
                ok = "yes" if c["ratio"] <= TARGET else "NO"
                name = f"{backend} {case}, {side} encrypted"
                rows.append([name, c["us"], plain_us, f"{c['ratio']:.2f}x", ok])
        rot = r["rotate_keys"]
        rows.append([f"{backend} rotate_keys", f"{rot['docs_per_s']:,.0f} docs/s", "", "", ""])
    headers = ["case", "encrypted us", "plain us", "encrypted/plain", f"<= {TARGET}x"]
    print_table(headers, rows)
    saved = save_results("bench_security", {"results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
