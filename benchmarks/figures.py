"""Every speed figure of the project in one table, read from each benchmark's JSON output
(``benchmarks/results/<name>.json``, written by the benchmark scripts): the measure, asyncdb,
what it is compared with (the raw driver as services use it, or the wire limit), the ratio, the
target and whether it is met, and the date and machine of the run.

    python benchmarks/figures.py            # prints the markdown table for the README
    python benchmarks/figures.py --check    # also exits 1 when a result file is missing

A result file whose layout this script does not know is listed as unreadable, never guessed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
Row = tuple[str, str, str, str, str, str]  # measure, asyncdb, against, ratio, target, met
X = "\u00d7"  # the multiplication sign of the README's ratios


def _us(value: float) -> str:
    return f"{value:,.0f} µs" if value >= 100 else f"{value:,.1f} µs"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _ratio_row(
    measure: str,
    mine: float,
    theirs: float,
    against: str,
    target: float,
    unit: str = "us",
    ratio: float | None = None,
) -> Row:
    """``ratio``: the benchmark's own (a median of per-round ratios, say), else mine/theirs."""
    ratio = mine / theirs if ratio is None else ratio
    fmt = _us if unit == "us" else (lambda v: f"{v:,.2f} {unit}")
    return (
        measure,
        fmt(mine),
        f"{fmt(theirs)} ({against})",
        f"{ratio:.2f}{X}",
        f"≤ {target:g}{X}",
        _met(ratio <= target),
    )


def point_reads(raw: str) -> Callable[[dict[str, Any]], Iterator[Row]]:
    """``results.c<N>.us_per_read`` of asyncdb against ``raw`` (the per-backend point reads)."""

    def rows(d: dict[str, Any]) -> Iterator[Row]:
        for name, r in d["results"].items():
            us = r.get("us_per_read") or {k: 1e6 / v for k, v in r["ops_per_s"].items()}
            mine = next(v for k, v in us.items() if k.startswith("asyncdb"))
            theirs = us[raw]
            yield _ratio_row(
                f"point read, concurrency {name[1:]}",
                mine,
                theirs,
                raw,
                1.10,
                ratio=r.get("ratio_asyncdb_over_raw"),
            )

    return rows


def postgres(d: dict[str, Any]) -> Iterator[Row]:
    r = d["results"]
    for c in ("c1", "c64"):
        us = r["point_read"][c]["us_per_op"]
        yield _ratio_row(
            f"point read, concurrency {c[1:]}",
            us["asyncdb"],
            us["raw asyncpg"],
            "asyncpg",
            1.10,
            ratio=r["point_read"][c].get("ratio_asyncdb_over_raw"),
        )
    for c in ("c1", "c64"):
        us = r["filter_query"][c]["us_per_op"]
        row = _ratio_row(
            f"3-clause filter (20 documents), concurrency {c[1:]}",
            us["asyncdb"],
            us["raw asyncpg"],
            "asyncpg",
            1.2,
            ratio=r["filter_query"][c].get("ratio_asyncdb_over_raw"),
        )
        yield row if c == "c64" else (*row[:4], "", "")  # the target is at concurrency 64
    b = r["bulk_insert"]
    yield _ratio_row(
        f"bulk insert {b['documents']:,} documents (best rounds)", b["asyncdb_s"],
        b["raw_copy_s"], "COPY", 1.3, "s", ratio=b.get("ratio"),
    )  # fmt: skip


def postgres_wire(d: dict[str, Any]) -> Iterator[Row]:
    r = d["results"]
    c1 = r["c1_vs_held_prepared"]["us_per_op"]
    yield _ratio_row(
        "point read, concurrency 1", c1["asyncdb"], c1["held prepared"],
        "one held connection, prepared statement", 1.25,
        ratio=r["c1_vs_held_prepared"].get("ratio"),
    )  # fmt: skip
    c64 = r["c64_vs_pool"]["us_per_op"]
    yield _ratio_row(
        "point read, concurrency 64", c64["asyncdb"], c64["pool.fetchrow"], "pool.fetchrow", 1.10,
        ratio=r["c64_vs_pool"].get("ratio"),
    )  # fmt: skip


def parse_plan(d: dict[str, Any]) -> Iterator[Row]:
    for key, r in d["results"].items():
        planner, mode = key.split("/")
        median = r["parse_plan"]["median_us"]
        before = r.get("without_plan_cache", r.get("parse", {})).get("median_us")
        yield (
            f"parse + plan, 5 clauses, {mode}, {planner}",
            _us(median),
            "" if before is None else f"{_us(before)} (without the plan cache)",
            "",
            f"≤ {r['target_us']:g} µs",
            _met(r["meets_target"]),
        )


def cache(d: dict[str, Any]) -> Iterator[Row]:
    us = d["us_per_op"]
    yield _ratio_row(
        "cache hit, find_one by key", us["cache hit find_one by key"],
        us["raw GET + decode (doc)"], "Redis GET + orjson.loads", 1.15,
    )  # fmt: skip
    yield _ratio_row(
        "cache hit, find().to_list()", us["cache hit find().to_list()"],
        us["raw GET + decode (list)"], "Redis GET + orjson.loads", 1.15,
    )  # fmt: skip
    speedup = d["l1_speedup_vs_redis_hit"]
    yield (
        "in-process (L1) cache hit",
        _us(us["L1 hit find_one by key"]),
        f"{_us(us['cache hit find_one by key'])} (Redis hit)",
        f"{speedup:.0f}{X} faster",
        f"≥ 20{X} faster",
        _met(speedup >= 20),
    )
    calls = d["backend_calls_for_concurrent_misses"]
    yield (
        "100 concurrent misses on one key",
        f"{calls} backend call(s)",
        "",
        "",
        "1",
        _met(calls == 1),
    )


def bulk_write(d: dict[str, Any]) -> Iterator[Row]:
    for r in d["rows"]:
        yield _ratio_row(
            f"bulk_write {d['ops']:,} mixed operations, {r['backend']}",
            r["asyncdb ms"], r["driver ms"], "the driver's batch call", r["target"], "ms",
            ratio=r.get("ratio"),
        )  # fmt: skip


def models(d: dict[str, Any]) -> Iterator[Row]:
    for backend, ops in d["results"].items():
        for op, r in ops.items():
            us = r["us_per_call_median"]
            yield _ratio_row(
                f"typed {op} ({backend})", us["typed"], us["plain"], "the same call with dicts",
                r["target"], ratio=r.get("ratio_typed_over_plain"),
            )  # fmt: skip


def load(d: dict[str, Any]) -> Iterator[Row]:
    runs = d["results"]
    for processes in sorted({r["processes"] for r in runs}):
        mine = next(r for r in runs if r["processes"] == processes and r["kind"] == "asyncdb")
        raw = next(r for r in runs if r["processes"] == processes and r["kind"] != "asyncdb")
        checks = mine["error_count"] + mine["stale_count"] + mine["lost_count"]
        yield (
            f"mixed load, {processes} process(es) {X} {d['tasks_per_process']} tasks, cache on",
            f"{mine['ops_per_s']:,.0f} ops/s, p99 {mine['p99_us'] / 1000:,.0f} ms",
            f"{raw['ops_per_s']:,.0f} ops/s, p99 {raw['p99_us'] / 1000:,.0f} ms (raw asyncpg)",
            f"{mine['ops_per_s'] / raw['ops_per_s']:.2f}{X} throughput",
            "no error, stale read or lost write",
            _met(checks == 0),
        )


def load_scaling(d: dict[str, Any]) -> Iterator[Row]:
    """Throughput at the most processes over one process, asyncdb against the raw driver."""
    runs = d["results"]
    counts = sorted({r["processes"] for r in runs})
    if len(counts) < 2:
        return

    def ops(kind: str, processes: int) -> float:
        return float(
            next(
                r["ops_per_s"]
                for r in runs
                if r["processes"] == processes and (r["kind"] == "asyncdb") == (kind == "asyncdb")
            )
        )

    low, high = counts[0], counts[-1]
    mine = ops("asyncdb", high) / ops("asyncdb", low)
    raw = ops("raw", high) / ops("raw", low)
    yield (
        f"throughput at {high} processes / at {low}",
        f"{mine:.2f}{X}",
        f"{raw:.2f}{X} (raw asyncpg)",
        f"{mine / raw:.2f}",
        "scales as raw (≥ 0.9)",
        _met(mine / raw >= 0.9),
    )


def key_range(d: dict[str, Any]) -> Iterator[Row]:
    us = d["results"]["us_per_query"]
    mine = next(v for k, v in us.items() if k.startswith("asyncdb"))
    raw = next(v for k, v in us.items() if "raw" in k)
    yield (
        "range on the second key field (20 of 100k documents)",
        _us(mine),
        f"{_us(raw)} (asyncpg, same statement)",
        f"{mine / raw:.2f}{X}",
        "",
        "",
    )


# benchmark name -> (script, backend, rows)
KNOWN: dict[str, tuple[str, str, Callable[[dict[str, Any]], Iterator[Row]]]] = {
    "bench_postgres": ("bench_postgres.py", "PostgreSQL", postgres),
    "bench_postgres_wire": ("bench_postgres_wire.py", "PostgreSQL", postgres_wire),
    "bench_postgres_key_range": ("bench_postgres_key_range.py", "PostgreSQL", key_range),
    "bench_sqlite_point_read": (
        "bench_sqlite_point_read.py",
        "SQLite",
        point_reads("raw aiosqlite"),
    ),
    "bench_mongo": ("bench_mongo.py", "MongoDB wire (SecantusDB)", point_reads("raw pymongo")),
    "firestore": (
        "bench_firestore_point_read.py",
        "Firestore emulator",
        point_reads("raw firestore"),
    ),
    "bench_cosmos_point_read": (
        "bench_cosmos_point_read.py",
        "Cosmos DB (cosmosdb-server)",
        point_reads("raw azure-cosmos"),
    ),
    "bench_table_point_read": (
        "bench_table_point_read.py",
        "SQLite table mode",
        point_reads("raw SQLAlchemy Core"),
    ),
    "bench_parse_plan": ("bench_parse_plan.py", "every planner", parse_plan),
    "bench_cache": ("bench_cache.py", "Redis", cache),
    "bench_bulk_write": ("bench_bulk_write.py", "SQL, MongoDB", bulk_write),
    "bench_models": ("bench_models.py", "SQLite, PostgreSQL", models),
    "bench_load": ("bench_load.py", "PostgreSQL + Redis", lambda d: [*load(d), *load_scaling(d)]),
}


def table() -> tuple[list[str], list[str]]:
    """The markdown lines of the table, and the benchmarks whose results are missing."""
    lines = [
        "| benchmark | backend | measure | asyncdb | against | ratio | target | met | run |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    missing = []
    for name, (script, backend, rows) in KNOWN.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            missing.append(script)
            continue
        data = json.loads(path.read_text())
        run = (
            f"{data.get('when', '?')[:10]}, {data.get('cpus', '?')} CPUs {data.get('machine', '')}"
        )
        try:
            found = list(rows(data))
        except (KeyError, StopIteration, TypeError, ZeroDivisionError) as exc:
            found = [("(unreadable result file)", "", "", "", "", f"{type(exc).__name__}")]
        for row in found:
            lines.append(f"| `{script}` | {backend} | " + " | ".join(row) + f" | {run} |")
    return lines, missing


def main() -> None:
    lines, missing = table()
    print("\n".join(lines))
    if missing:
        print(f"\nno results yet: {', '.join(missing)}", file=sys.stderr)
        if "--check" in sys.argv:
            sys.exit(1)


if __name__ == "__main__":
    main()
