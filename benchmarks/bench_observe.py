"""The cost of observation on a point read by key: the same ``find_one({"id": k})`` with
nothing observed (``metrics=False, slow_ms=None``), with the defaults (``db.metrics()`` and the
slow-operation check on), and audited into a collection of the same database
(``audit="audit_log", audit_reads=True``: each read adds an event write) under both policies
("closed": the read waits for its event; "open": events are written in the background, in
batches). One run, rounds interleaved, the median round counts; timed with the ``asyncdb
bench`` core (:func:`asyncdb.cli.bench.measure`).

Targets (issue 18): metrics <= 1.05 x; audit to the same database <= 2 x (the write included).

    python benchmarks/bench_observe.py [--postgres] [URL ...]   # + results/bench_observe.json

With no URL, a SQLite file in a temporary directory; ``--postgres`` adds a throwaway PostgreSQL
server (tests/servers/postgres.py starts it).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _report import markdown_table, print_table, save_results

import asyncdb
from asyncdb.cli.bench import bench_doc, measure

DOCS = 2000
ROUNDS = 11
SECONDS = 0.5
CONCURRENCY = (1, 16)
CONFIGS: dict[str, dict[str, Any]] = {
    "nothing observed": {"metrics": False, "slow_ms": None},
    "metrics (default)": {},
    "audit, closed": {"audit": "audit_closed", "audit_reads": True},
    "audit, open": {"audit": "audit_open", "audit_reads": True, "audit_policy": "open"},
}
TARGETS = {"metrics (default)": 1.05, "audit, closed": 2.0, "audit, open": 2.0}


async def bench_url(url: str) -> dict[str, Any]:
    rng = random.Random(7)
    async with asyncdb.connect(url) as db:
        items = db.collection("observed_reads")
        await items.delete_many({}, allow_scan=True)
        for i in range(0, DOCS, 500):
            await items.insert_many([bench_doc(n, rng) for n in range(i, i + 500)])
        backend = db.backend
    dbs = {name: await asyncdb.connect(url, **options) for name, options in CONFIGS.items()}
    try:
        readers = {name: db.collection("observed_reads") for name, db in dbs.items()}

        def reader(name: str) -> Any:
            coll = readers[name]

            async def read(n: int) -> None:
                assert await coll.find_one({"id": f"b{(n * 7919) % DOCS:07d}"}) is not None

            return read

        results: dict[str, Any] = {}
        for concurrency in CONCURRENCY:
            ops: dict[str, list[float]] = {name: [] for name in CONFIGS}
            cpu: dict[str, list[float]] = {name: [] for name in CONFIGS}
            for name in CONFIGS:  # warm-up
                await measure(reader(name), concurrency=concurrency, duration=0.2)
            names = list(CONFIGS)
            for r in range(ROUNDS):
                for name in names[r % len(names) :] + names[: r % len(names)]:  # rotated order
                    cpu_began = time.process_time()
                    run = await measure(reader(name), concurrency=concurrency, duration=SECONDS)
                    # Events still queued are this configuration's cost: written before the
                    # next one runs, and their time counted.
                    began = time.perf_counter()
                    trail = dbs[name]._observer.audit if dbs[name]._observer else None
                    if trail is not None:
                        await trail.flush()
                    ops[name].append(run.ops / (run.seconds + time.perf_counter() - began))
                    cpu[name].append(1e6 * (time.process_time() - cpu_began) / run.ops)
            median = {name: statistics.median(v) for name, v in ops.items()}
            cpu_us = {name: statistics.median(v) for name, v in cpu.items()}
            base = median["nothing observed"]
            results[f"c{concurrency}"] = {
                "concurrency": concurrency,
                "ops_per_s": median,
                "us_per_read": {name: 1e6 / v for name, v in median.items()},
                "ratio_over_unobserved": {name: base / v for name, v in median.items()},
                "client_cpu_us_per_read": cpu_us,
                "cpu_ratio_over_unobserved": {
                    name: v / cpu_us["nothing observed"] for name, v in cpu_us.items()
                },
                "rounds_ops_per_s": ops,
            }
        audit = dbs["audit, closed"].metrics()["audit"]
    finally:
        for db in dbs.values():
            await db.close()
    async with asyncdb.connect(url) as db:
        await db.collection("observed_reads").delete_many({}, allow_scan=True)
        for name in ("audit_closed", "audit_open"):
            await db.collection(name).delete_many({}, allow_scan=True)
    return {"backend": backend, "results": results, "audit_events_closed": audit["events"]}


async def main(argv: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-observe-"))
    urls = [a for a in argv if not a.startswith("--")] or [f"sqlite:///{workdir / 'o.db'}"]
    server = None
    if "--postgres" in argv:
        from tests.servers.postgres import PostgresServer

        server = PostgresServer()
        server.start()
        urls.append(server.url)
    try:
        runs = [await bench_url(url) for url in urls]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if server is not None:
            server.stop()
    headers = [
        "backend",
        "concurrency",
        "configuration",
        "reads/s",
        "us/read",
        "x unobserved",
        "client CPU us/read",
        "CPU x unobserved",
    ]
    rows: list[list[Any]] = []
    for run in runs:
        for result in run["results"].values():
            for name in CONFIGS:
                rows.append(
                    [
                        run["backend"],
                        result["concurrency"],
                        name,
                        round(result["ops_per_s"][name]),
                        result["us_per_read"][name],
                        result["ratio_over_unobserved"][name],
                        result["client_cpu_us_per_read"][name],
                        result["cpu_ratio_over_unobserved"][name],
                    ]
                )
    print_table(headers, rows)
    print()
    print(markdown_table(headers, rows))
    meets = {
        f"{run['backend']} c{r['concurrency']} {name}": r["ratio_over_unobserved"][name] <= target
        for run in runs
        for r in run["results"].values()
        for name, target in TARGETS.items()
    }
    path = save_results(
        "bench_observe",
        {
            "docs": DOCS,
            "rounds": ROUNDS,
            "seconds": SECONDS,
            "targets": TARGETS,
            "runs": runs,
            "meets_target": meets,
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
