"""Typed collections against plain ones: a point read by key and an insert through
``db.collection(name, model=Alert)`` against the same calls on ``db.collection(name)``
returning and taking dicts, on SQLite (a file) and PostgreSQL (a throwaway server).

Same database, same documents (the typed side's stored form is exactly the dicts the plain
side reads and writes), concurrency 1; typed and plain calls are interleaved one by one and the
median call counts (the machine's load drifts over both sides alike). The typed read validates
each document into an ``Alert`` (nested model, enum, datetime, list); the typed insert takes an
``Alert`` instance, so it dumps it first. Target (issue 13): typed time per call <= 1.2 x plain.

    python benchmarks/bench_models.py      # + results/bench_models.json
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
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import pydantic
from _report import markdown_table, print_table, save_results

import asyncdb
from tests.servers.postgres import PostgresServer

DOCS = 5_000
READS = 3_000  # per round (ROUNDS rounds of calls, interleaved)
INSERTS = 1_000  # per round
ROUNDS = 5
TARGET = 1.2


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Source(pydantic.BaseModel):
    region: str
    host: str
    pid: int


class Alert(pydantic.BaseModel):
    id: str | None = None
    company: str
    priority: int
    score: float
    status: Status
    title: str
    tags: list[str]
    source: Source
    created_at: pydantic.AwareDatetime
    description: str


def make_alert(i: int, rng: random.Random, prefix: str = "alert") -> Alert:
    """An alert of about 500 bytes of JSON, as in the other point-read benchmarks."""
    return Alert(
        id=f"{prefix}-{i:06d}",
        company=f"company-{i % 97}",
        priority=rng.randint(1, 100),
        score=rng.random(),
        status=rng.choice(list(Status)),
        title=f"Disk usage above {rng.randint(80, 99)}% on host-{rng.randint(1, 999)}",
        tags=rng.sample(["disk", "cpu", "memory", "network", "paging", "customer"], 3),
        source=Source(region="eu-west-1", host=f"host-{rng.randint(1, 999)}", pid=i),
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=i),
        description="x" * rng.randint(250, 350),
    )


Call = Callable[[Any], Awaitable[Any]]


async def interleaved(
    typed: Call, plain: Call, typed_args: list[Any], plain_args: list[Any]
) -> dict[str, list[int]]:
    """Per-call nanoseconds, typed and plain calls interleaved one by one (which goes first
    alternates), so a machine's load drifts over both sides alike."""
    samples: dict[str, list[int]] = {"typed": [], "plain": []}
    clock = time.perf_counter_ns
    for i, (ta, pa) in enumerate(zip(typed_args, plain_args, strict=True)):
        order = ((typed, ta, "typed"), (plain, pa, "plain"))
        for call, arg, side in order if i % 2 else order[::-1]:
            began = clock()
            await call(arg)
            samples[side].append(clock() - began)
    return samples


async def measure(db: asyncdb.Database, rng: random.Random) -> dict[str, Any]:
    typed = db.collection("alerts", model=Alert)
    plain = db.collection("alerts")
    await typed.insert_many([make_alert(i, rng) for i in range(DOCS)])
    key = "alert-000007"
    dumped = await plain.find_one({"id": key})
    assert dumped is not None and Alert.model_validate(dumped) == await typed.find_one({"id": key})

    async def typed_read(k: str) -> Any:
        return await typed.find_one({"id": k})

    async def plain_read(k: str) -> Any:
        return await plain.find_one({"id": k})

    async def typed_insert(alert: Alert) -> Any:
        return await typed.insert_one(alert)

    async def plain_insert(doc: dict[str, Any]) -> Any:
        return await plain.insert_one(doc)

    out: dict[str, Any] = {}
    for k in [f"alert-{i:06d}" for i in range(100)]:  # warm-up
        await typed_read(k)
        await plain_read(k)
    reads = [f"alert-{rng.randrange(DOCS):06d}" for _ in range(READS * ROUNDS)]
    typed_new = [make_alert(i, rng, "typed") for i in range(INSERTS * ROUNDS)]
    plain_new = [
        a.model_dump(mode="python")
        for a in (make_alert(i, rng, "plain") for i in range(INSERTS * ROUNDS))
    ]
    for name, typed_call, plain_call, typed_args, plain_args in (
        ("point read", typed_read, plain_read, reads, reads),
        ("insert", typed_insert, plain_insert, typed_new, plain_new),
    ):
        samples = await interleaved(typed_call, plain_call, typed_args, plain_args)
        us = {side: statistics.median(v) / 1000 for side, v in samples.items()}
        ratio = us["typed"] / us["plain"]
        out[name] = {
            "us_per_call_median": us,
            "us_per_call_mean": {side: statistics.fmean(v) / 1000 for side, v in samples.items()},
            "calls": len(typed_args),
            "ratio_typed_over_plain": ratio,
            "target": TARGET,
            "meets_target": ratio <= TARGET,
        }
    return out


async def main() -> None:
    rng = random.Random(7)
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-bench-models-"))
    server = PostgresServer()
    server.start()
    try:
        async with asyncdb.connect(f"sqlite:///{workdir / 'models.db'}") as db:
            results["sqlite"] = await measure(db, rng)
        async with asyncdb.connect(server.url) as db:
            results["postgres"] = await measure(db, rng)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for backend, ops in results.items():
        for name, r in ops.items():
            us = r["us_per_call_median"]
            rows.append(
                [
                    backend,
                    name,
                    us["typed"],
                    us["plain"],
                    f"{r['ratio_typed_over_plain']:.2f}x",
                    "yes" if r["meets_target"] else "NO",
                ]
            )
    headers = ["backend", "operation", "typed us/call", "dict us/call", "typed/dict", "<= 1.2x"]
    print()
    print_table(headers, rows)
    saved = save_results("bench_models", {"documents": DOCS, "rounds": ROUNDS, "results": results})
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
