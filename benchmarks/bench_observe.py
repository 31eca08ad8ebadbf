"""The cost of observation on a point read and a write by key: the same ``find_one({"id":
k})`` and ``update_one({"id": k}, {"$inc": ...})`` with nothing observed (``metrics=False,
slow_ms=None``), with the defaults (``db.metrics()`` and the slow-operation check on), and
audited into a collection of the same database (``audit="audit_log", audit_reads=True``: each
operation adds an event write) under both policies ("closed": the call waits for its event;
"open": events are written in the background, in batches). One run, rounds interleaved, the
median round counts: :func:`asyncdb.cli.bench.interleaved`, the ``asyncdb bench`` harness.

The metrics' cost is also measured as CPU time (``metrics_cpu_ratio``): the same point reads
on one database with metrics off, off again (the A/A control: the method's own error) and on,
in a fresh random order each of 301 rounds of 100 reads, ``time.process_time``, the median of
the rounds' ratios. ``BENCH_OBSERVE_ONLY=metrics`` runs that part alone.

Targets: metrics <= 1.05 x; audit to the same database <= 2 x (the write included).

    python benchmarks/bench_observe.py [--postgres] [URL ...]   # + results/bench_observe.json

With no URL, a SQLite file in a temporary directory; ``--postgres`` adds a throwaway PostgreSQL
server (tests/servers/postgres.py starts it). ``BENCH_OBSERVE_OPS=read`` measures reads only,
``BENCH_OBSERVE_CONFIGS="audit, closed"`` one configuration (";" between several).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _report import markdown_table, postgres_database, print_table, save_results

import asyncdb
from asyncdb.cli.bench import bench_doc, interleaved

DOCS = 2000
ROUNDS = 11
SECONDS = 0.5
CONCURRENCY = (1, 16)
OPS = tuple(os.environ.get("BENCH_OBSERVE_OPS", "read,write").split(","))
CONFIGS: dict[str, dict[str, Any]] = {
    "nothing observed": {"metrics": False, "slow_ms": None},
    "metrics (default)": {},
    "audit, closed": {"audit": "audit_closed", "audit_reads": True},
    "audit, open": {"audit": "audit_open", "audit_reads": True, "audit_policy": "open"},
}
TARGETS_ALL = {"metrics (default)": 1.05, "audit, closed": 2.0, "audit, open": 2.0}
TARGETS = dict(TARGETS_ALL)
if os.environ.get("BENCH_OBSERVE_CONFIGS"):  # e.g. "audit, closed" (";"-separated)
    TARGETS = {n: TARGETS[n] for n in os.environ["BENCH_OBSERVE_CONFIGS"].split(";")}


def operation(coll: Any, op: str) -> Any:
    if op == "read":

        async def read(n: int) -> None:
            assert await coll.find_one({"id": f"b{(n * 7919) % DOCS:07d}"}) is not None

        return read

    async def write(n: int) -> None:
        result = await coll.update_one(
            {"id": f"b{(n * 7919) % DOCS:07d}"}, {"$inc": {"counter": 1}}
        )
        assert result.matched_count == 1

    return write


async def compare(url: str, name: str) -> dict[str, Any]:
    """One configuration against the unobserved operations, on a collection of its own
    (SQLite: a file of its own, so one configuration's audit writes never grow another's WAL)."""
    rng = random.Random(7)
    async with asyncdb.connect(url) as db:
        items = db.collection("observed_reads")
        await items.delete_many({}, allow_scan=True)
        for i in range(0, DOCS, 500):
            await items.insert_many([bench_doc(n, rng) for n in range(i, i + 500)])
        backend = db.backend
    pair = {"nothing observed": CONFIGS["nothing observed"], name: CONFIGS[name]}
    dbs = {label: await asyncdb.connect(url, **options) for label, options in pair.items()}

    async def flush(label: str) -> None:
        # Events still queued are this configuration's cost: written before the next round
        # runs, and their time counted.
        observer = dbs[label]._observer
        if observer is not None and observer.audit is not None:
            await observer.audit.flush()

    try:
        results: dict[str, Any] = {}
        for op in OPS:
            calls = {
                label: operation(db.collection("observed_reads"), op) for label, db in dbs.items()
            }
            for concurrency in CONCURRENCY:
                c = await interleaved(
                    calls, concurrency=concurrency, duration=SECONDS, rounds=ROUNDS, after=flush
                )
                base = "nothing observed"
                results[f"{op} c{concurrency}"] = {
                    "op": op,
                    "concurrency": concurrency,
                    "ops_per_s": {label: c.ops_per_s(label) for label in pair},
                    "us_per_op": {label: c.us_per_op(label) for label in pair},
                    "ratio_over_unobserved": c.ratio(name, base),
                    "best_round_ratio": c.best_ratio(name, base),
                    "cpu_ratio_over_unobserved": c.cpu_ratio(name, base),
                    "rounds_ops_per_s": c.rounds_ops_per_s,
                    "rounds_cpu_us": c.rounds_cpu_us,
                }
    finally:
        for db in dbs.values():
            await db.close()
    async with asyncdb.connect(url) as db:
        for coll in ("observed_reads", "audit_closed", "audit_open"):
            await db.collection(coll).delete_many({}, allow_scan=True)
    return {"backend": backend, "configuration": name, "results": results}


async def observer_cost_us() -> dict[str, float]:
    """The observation's own CPU time per call, where no store's time is in it: the same
    in-process point read (memory://) on one database with its observer removed (metrics
    off) and in place (the default), alternating, 101 rounds of 500 calls each
    (``time.process_time``), the medians and the median of the rounds' differences."""
    async with asyncdb.connect("memory://", **CONFIGS["metrics (default)"]) as db:
        observer = db._observer
        items = db.collection("items")
        await items.insert_many([{"id": f"k{i}", "n": i} for i in range(100)])
        keys = [{"id": f"k{i % 100}"} for i in range(500)]
        cpu: dict[str, list[float]] = {"nothing observed": [], "metrics (default)": []}
        try:
            for r in range(101):
                for name in list(cpu) if r % 2 else list(cpu)[::-1]:
                    db._observer = observer if name == "metrics (default)" else None
                    began = time.process_time()
                    for key in keys:
                        await items.find_one(key)
                    cpu[name].append(1e6 * (time.process_time() - began) / len(keys))
        finally:
            db._observer = observer
    off, on = cpu["nothing observed"], cpu["metrics (default)"]
    return {
        "point_read_us_unobserved": statistics.median(off),
        "point_read_us_metrics": statistics.median(on),
        "metrics_us_per_operation": statistics.median(b - a for a, b in zip(off, on, strict=True)),
    }


CPU_ROUNDS = 301
CPU_CALLS = 100
SIDES = ("metrics off", "metrics off (control)", "metrics on")


async def metrics_cpu_ratio(url: str) -> dict[str, Any]:
    """The metrics' cost as CPU time, resolved on a shared machine: the same point reads
    (``CPU_CALLS`` per side and round, one caller) on one database, with metrics off, off
    again (the A/A control: its ratio is the method's own error) and on (the default), in an
    order drawn afresh each round, ``CPU_ROUNDS`` short rounds; this process's CPU time per
    read (``time.process_time``: other jobs' time is not in it, SQLite's thread's is), and the
    median of the rounds' ratios over "metrics off" (each ratio of reads a few milliseconds
    apart: a slow stretch of the machine falls on both).

    One database for every side (its connections, statements and pages shared alike): metrics
    off is its observer removed, which is what ``connect(url, metrics=False, slow_ms=None)``
    leaves (checked below); metrics on is the observer ``connect(url)`` makes."""
    rng = random.Random(7)
    async with asyncdb.connect(url) as db:
        items = db.collection("metered_reads")
        await items.delete_many({}, allow_scan=True)
        await items.insert_many([bench_doc(n, rng) for n in range(DOCS)])
    async with asyncdb.connect(url, **CONFIGS["nothing observed"]) as off:
        assert off._observer is None  # what the "off" sides below run with
    db = await asyncdb.connect(url, **CONFIGS["metrics (default)"])
    observer = db._observer
    assert observer is not None and observer.quiet and observer.metrics is not None
    coll = db.collection("metered_reads")
    keys = [{"id": f"b{(n * 7919) % DOCS:07d}"} for n in range(CPU_CALLS)]
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    order = list(SIDES)
    draw = random.Random(11)
    try:
        for _ in range(20):  # warm: tables known, statements prepared, both paths run
            for side in SIDES:
                db._observer = observer if side == "metrics on" else None
                for key in keys:
                    await coll.find_one(key)
        gc.collect()
        for _ in range(CPU_ROUNDS):
            draw.shuffle(order)
            for side in order:
                db._observer = observer if side == "metrics on" else None
                began = time.process_time()
                for key in keys:
                    await coll.find_one(key)
                cpu[side].append(1e6 * (time.process_time() - began) / len(keys))
        db._observer = observer
        counted = db.metrics()["collections"]["metered_reads"]["find_one"]["count"]
        expected = (20 + CPU_ROUNDS) * len(keys)
        assert counted == expected, (counted, expected)  # metrics on, and only there
        backend = db.backend
        await coll.delete_many({}, allow_scan=True)
    finally:
        db._observer = observer
        await db.close()

    def ratios(side: str) -> dict[str, Any]:
        each = sorted(a / b for a, b in zip(cpu[side], cpu["metrics off"], strict=True))
        quart = len(each) // 4
        return {"median": statistics.median(each), "quartiles": [each[quart], each[-1 - quart]]}

    return {
        "backend": backend,
        "rounds": CPU_ROUNDS,
        "calls_per_round": CPU_CALLS,
        "cpu_us_per_read": {side: statistics.median(v) for side, v in cpu.items()},
        "metrics_over_off": ratios("metrics on"),
        "control_over_off": ratios("metrics off (control)"),
        "target": TARGETS_ALL["metrics (default)"],
    }


async def main(argv: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-observe-"))
    urls = [a for a in argv if not a.startswith("--")] or [f"sqlite:///{workdir / 'o.db'}"]
    servers = contextlib.AsyncExitStack()
    if "--postgres" in argv:
        urls.append(await servers.enter_async_context(postgres_database("observe")))
    cost = await observer_cost_us()
    print(
        f"observation's own cost: {cost['metrics_us_per_operation']:.2f} us per operation "
        f"(memory:// point read {cost['point_read_us_unobserved']:.2f} -> "
        f"{cost['point_read_us_metrics']:.2f} us CPU, medians of 101 alternating rounds)"
    )
    try:
        metrics_cpu = []
        for i, url in enumerate(urls):
            fresh = f"sqlite:///{workdir / f'm{i}.db'}" if url.startswith("sqlite") else url
            m = await metrics_cpu_ratio(fresh)
            metrics_cpu.append(m)
            print(
                f"metrics' CPU cost on a {m['backend']} point read: "
                f"{m['metrics_over_off']['median']:.3f}x (quartiles "
                f"{m['metrics_over_off']['quartiles'][0]:.3f}-"
                f"{m['metrics_over_off']['quartiles'][1]:.3f}; control "
                f"{m['control_over_off']['median']:.3f}x; "
                f"{m['cpu_us_per_read']['metrics off']:.1f} -> "
                f"{m['cpu_us_per_read']['metrics on']:.1f} us CPU; median of {CPU_ROUNDS} "
                f"interleaved rounds of {CPU_CALLS} reads)"
            )
        if os.environ.get("BENCH_OBSERVE_ONLY") == "metrics":
            return  # that part alone: nothing saved
        runs = []
        for url in urls:
            for i, name in enumerate(TARGETS):
                fresh = f"sqlite:///{workdir / f'o{i}.db'}" if url.startswith("sqlite") else url
                runs.append(await compare(fresh, name))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        await servers.aclose()
    headers = [
        "backend",
        "op",
        "concurrency",
        "configuration",
        "ops/s",
        "us/op unobserved",
        "us/op",
        "x unobserved (median)",
        "x unobserved (best rounds)",
        "client CPU x",
    ]
    rows: list[list[Any]] = []
    for run in runs:
        name = run["configuration"]
        for result in run["results"].values():
            rows.append(
                [
                    run["backend"],
                    result["op"],
                    result["concurrency"],
                    name,
                    round(result["ops_per_s"][name]),
                    result["us_per_op"]["nothing observed"],
                    result["us_per_op"][name],
                    result["ratio_over_unobserved"],
                    result["best_round_ratio"],
                    result["cpu_ratio_over_unobserved"],
                ]
            )
    print_table(headers, rows)
    print()
    print(markdown_table(headers, rows))
    meets = {
        f"{run['backend']} {r['op']} c{r['concurrency']} {run['configuration']}": r[
            "ratio_over_unobserved"
        ]
        <= TARGETS[run["configuration"]]
        for run in runs
        for r in run["results"].values()
    }
    path = save_results(
        "bench_observe",
        {
            "observer_cost": cost,
            "metrics_cpu": metrics_cpu,
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
