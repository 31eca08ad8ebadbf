"""Parse + plan cost of a 5-clause filter, per backend planner (DESIGN section 6).

cold: a new shape every call (field names vary, so nothing keyed on the shape can help);
warm: one shape, different values every call. Targets: cold <= 100 us, warm <= 10 us (median).
Measured as ``find`` runs it: the plan cache (asyncdb.query.plancache) keyed on the raw filter,
then the planner's binder for the shape (the plan compiled once, the new values bound into it);
memory and SQLite through their store collections, the others without their servers (the
planners are pure), each with the lean plan ``find`` runs; beside it, the same calls without
the plan cache (``parse_filter`` + the planner).

    python benchmarks/bench_parse_plan.py   # also writes benchmarks/results/bench_parse_plan.json
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _report import markdown_table, percentiles_us, print_table, save_results

import asyncdb
from asyncdb.query.parse import parse_filter
from asyncdb.query.plancache import PlanCache
from asyncdb.types import Query

BACKENDS = {"memory": "memory://", "sqlite": "sqlite:///:memory:"}
INDEXES: list[Any] = ["company", ("company", "priority"), "status", "created_at"]
COLD_N = 5_000
WARM_N = 20_000
TARGET_US = {"cold": 100.0, "warm": 10.0}
BASE = datetime(2025, 1, 1, tzinfo=UTC)
STATUSES = ("open", "acknowledged", "resolved")


def five_clauses(i: int, *, vary_names: bool) -> dict[str, Any]:
    """``company`` (indexed) = ..., ``status`` $in, ``priority`` range, ``tags`` element,
    ``created_at`` < date; with ``vary_names`` the last four field names are new each time."""
    s = f"_{i}" if vary_names else ""
    return {
        "company": f"company-{i % 50}",
        f"status{s}": {"$in": [STATUSES[i % 3], STATUSES[(i + 1) % 3]]},
        f"priority{s}": {"$gte": i % 100, "$lt": 100 + i % 7},
        f"tags{s}": f"tag-{i % 11}",
        f"created_at{s}": {"$lt": BASE + timedelta(seconds=i)},
    }


def measure(fn: Callable[[dict[str, Any]], object], specs: list[dict[str, Any]]) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for spec in specs:
        t0 = clock()
        fn(spec)
        samples.append(clock() - t0)
    return samples


PlanOf = Callable[[dict[str, Any]], asyncdb.Plan]


def through_cache(store: Any) -> PlanOf:
    """What ``find`` runs on a store collection: the plan cache, then the planner's binder."""

    def plan(spec: dict[str, Any]) -> asyncdb.Plan:
        node, shape = store.plans.parse(spec)
        query = Query(node)
        return store.execution_plan(query) if shape is None else store.shaped_plan(query, shape)

    return plan


Binder = Callable[[Query], Callable[[Query], asyncdb.Plan] | None]


def pure(planner: Callable[[Query], asyncdb.Plan], binder: Binder) -> tuple[PlanOf, PlanOf]:
    """A planner measured without its server: through a plan cache and the planner's binder
    of each shape (as ``StoreCollection.shaped_plan`` runs them), and without a plan cache."""
    cache = PlanCache()

    def cached(spec: dict[str, Any]) -> asyncdb.Plan:
        node, shape = cache.parse(spec)
        query = Query(node)
        if shape is None:
            return planner(query)
        bound = shape.binders.get("find", shape)
        if bound is shape:
            bound = shape.binders["find"] = binder(query)
        return planner(query) if bound is None else bound(query)  # type: ignore[operator]

    return cached, lambda spec: planner(Query(parse_filter(spec)))


async def planners(dbs: list[asyncdb.Database]) -> dict[str, tuple[PlanOf, PlanOf]]:
    """Per planner: (plan through the cache, plan without it), on realistic indexes."""
    found: dict[str, tuple[PlanOf, PlanOf]] = {}
    spec = None
    for name, url in BACKENDS.items():
        db = await asyncdb.connect(url)
        dbs.append(db)
        coll = db.collection("alerts", indexes=INDEXES)
        store = coll._store
        spec = coll.spec
        found[name] = (
            through_cache(store),
            lambda s, store=store: store.execution_plan(Query(parse_filter(s))),
        )
    assert spec is not None
    # The other planners are pure: measured without a server, on the same declared indexes.
    from asyncdb.backends.cosmos import planner as cosmos
    from asyncdb.backends.dynamodb import planner as dynamodb
    from asyncdb.backends.firestore.planner import FirestorePlanner
    from asyncdb.backends.mongo.planner import MongoPlanner
    from asyncdb.backends.postgres.planner import PostgresPlanner

    postgres, mongo = PostgresPlanner(spec), MongoPlanner(spec)
    firestore = FirestorePlanner(spec)
    found["postgres"] = pure(lambda q: postgres.plan(q, explain=False), postgres.binder)
    found["mongo"] = pure(lambda q: mongo.plan(q, explain=False), mongo.binder)
    found["firestore"] = pure(lambda q: firestore.plan(q, explain=False), firestore.binder)
    found["cosmos"] = pure(
        lambda q, spec=spec: cosmos.plan_query(spec, q, explain=False),
        lambda q, spec=spec: cosmos.binder(spec, q),
    )
    found["dynamodb"] = pure(
        lambda q, spec=spec: dynamodb.build_plan(q, spec, explain=False),
        lambda q, spec=spec: dynamodb.binder(spec, q),
    )
    return found


async def main() -> None:
    dbs: list[asyncdb.Database] = []
    plans = await planners(dbs)
    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    # Values shared by every backend's run, generated outside the timed region.
    cold_specs = [five_clauses(i, vary_names=True) for i in range(COLD_N)]
    warm_specs = [five_clauses(i, vary_names=False) for i in range(WARM_N)]
    for backend, (cached, uncached) in plans.items():
        print(f"{backend}: {cached(warm_specs[0]).access_path} access")
        for mode, specs in (("cold", cold_specs), ("warm", warm_specs)):
            for spec in specs[:1000]:  # warm the interpreter (not the shapes, for cold)
                parse_filter(spec)
            gc.collect()
            total = percentiles_us(measure(cached, specs))
            before = percentiles_us(measure(uncached, specs))
            target = TARGET_US[mode]
            ok = total["median_us"] <= target
            results[f"{backend}/{mode}"] = {
                "parse_plan": total,
                "without_plan_cache": before,
                "target_us": target,
                "meets_target": ok,
            }
            rows.append(
                [
                    backend,
                    mode,
                    total["median_us"],
                    total["p95_us"],
                    before["median_us"],
                    f"<= {target:g}",
                    "yes" if ok else "NO",
                ]
            )

    headers = [
        "planner",
        "shape",
        "parse+plan med us",
        "p95 us",
        "without the plan cache med us",
        "target",
        "met",
    ]
    print()
    print_table(headers, rows)
    path = save_results(
        "bench_parse_plan",
        {
            "filter": five_clauses(0, vary_names=False),
            "cold_n": COLD_N,
            "warm_n": WARM_N,
            "results": results,
        },
    )
    print(f"\nsaved {path}\n")
    print(
        "Parsing + planning a 5-clause filter (median over "
        f"{COLD_N:,} cold / {WARM_N:,} warm calls, `python benchmarks/bench_parse_plan.py`):\n"
    )
    print(markdown_table(headers, rows))
    for db in dbs:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
