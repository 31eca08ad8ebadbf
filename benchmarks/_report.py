"""What every benchmark script prints and saves: an aligned table, a markdown table for the
README, and ``benchmarks/results/<name>.json``; the shared timing of point reads; a throwaway
PostgreSQL server with an empty database (:func:`postgres_database`)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncdb.cli.bench import interleaved

RESULTS = Path(__file__).resolve().parent / "results"
_CHECKOUT = str(Path(__file__).resolve().parents[1])


def percentiles_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p95 and mean of per-call samples (nanoseconds), in microseconds."""
    ordered = sorted(samples_ns)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return {
        "median_us": statistics.median(ordered) / 1000,
        "p95_us": p95 / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
        "n": len(ordered),
    }


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = _cells(rows)
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        cols = zip(row, widths, numeric, strict=True)
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in cols).rstrip()

    print(fmt(headers))
    print(fmt(["-" * w for w in widths]))
    for row in cells:
        print(fmt(row))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _cells(rows)]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, **environment(), **data}, indent=2, default=str) + "\n"
    )
    return path


async def compare_point_reads(
    readers: dict[str, Callable[[Any], Awaitable[Any]]],
    make_keys: Callable[[], Sequence[Any]],
    *,
    concurrencies: Sequence[int],
    rounds: int,
    seconds: float,
    base: str,
    target: float,
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Point reads by each reader at each concurrency (``make_keys()`` read in order, over and
    over), through the ``asyncdb bench`` harness (:func:`asyncdb.cli.bench.interleaved`:
    ``rounds`` rounds of ``seconds`` per reader, in alternating order, medians), ``asyncdb``
    against ``base``: the results by ``c{concurrency}`` and the rows of
    :func:`point_read_headers`. A read that finds nothing is an error; any error fails."""
    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for concurrency in concurrencies:
        keys = make_keys()

        def calls(
            read: Callable[[Any], Awaitable[Any]], keys: Sequence[Any]
        ) -> Callable[[int], Awaitable[None]]:
            async def one(n: int) -> None:
                key = keys[n % len(keys)]
                if await read(key) is None:
                    raise AssertionError(f"missing {key!r}")

            return one

        c = await interleaved(
            {name: calls(read, keys) for name, read in readers.items()},
            concurrency=concurrency,
            duration=seconds,
            rounds=rounds,
        )
        assert not any(c.errors.values()), f"reads failed: {c.errors}"
        ratio = c.ratio("asyncdb", base)
        results[f"c{concurrency}"] = {
            "concurrency": concurrency,
            "rounds": rounds,
            "seconds_per_round": seconds,
            "ops_per_s": {name: c.ops_per_s(name) for name in readers},
            "us_per_read": {name: c.us_per_op(name) for name in readers},
            "rounds_ops_per_s": c.rounds_ops_per_s,
            "ratio_asyncdb_over_raw": ratio,
            "ratio_best_rounds": c.best_ratio("asyncdb", base),
            "target": target,
            "meets_target": ratio <= target,
        }
        rows.append(
            [
                concurrency,
                round(c.ops_per_s("asyncdb")),
                round(c.ops_per_s(base)),
                c.us_per_op("asyncdb"),
                c.us_per_op(base),
                f"{ratio:.2f}x",
                "yes" if ratio <= target else "NO",
            ]
        )
    return results, rows


def point_read_headers(target: float) -> list[str]:
    return [
        "concurrency",
        "asyncdb ops/s",
        "raw ops/s",
        "asyncdb us/read",
        "raw us/read",
        "asyncdb/raw",
        f"<= {target:.2f}x",
    ]


@contextlib.asynccontextmanager
async def postgres_database(name: str = "bench") -> AsyncIterator[str]:
    """A throwaway PostgreSQL server (tests/servers/postgres.py: loopback, fsync off) with an
    empty database ``name``: its URL. The server stops on exit."""
    import asyncpg

    if _CHECKOUT not in sys.path:  # the test bed's servers
        sys.path.insert(0, _CHECKOUT)
    from tests.servers.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        admin = await asyncpg.connect(server.url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        yield server.url.rsplit("/", 1)[0] + "/" + name
    finally:
        server.stop()
