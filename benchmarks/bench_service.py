"""The example service's ``GET /alerts/{id}`` under uvicorn at concurrency 64: the asyncdb
example (examples/alerts_service, typed collection, PostgreSQL, no cache) against the same
endpoint written by hand on raw asyncpg (benchmarks/raw_alerts_app.py), both one uvicorn worker
on one throwaway PostgreSQL server, the same alerts, the same ids in the same order.

The load comes from this process: 64 tasks on one aiohttp session (64 keep-alive connections),
for each server. Rounds come in pairs (one per server, which goes first alternates); reported:
the median requests/s and the median of the pairs' ratios, and the server process's CPU time per
request (from /proc), whose ratio is the capacity ratio: on a shared, loaded machine wall-clock
throughput swings with the other load, CPU time per request does not. Target (issue 13):
asyncdb requests/s >= 0.9 x raw asyncpg's.

    python benchmarks/bench_service.py      # + results/bench_service.json
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import aiohttp
import asyncpg
from _report import markdown_table, print_table, save_results
from alerts_service.app import alerts_of
from alerts_service.models import Alert, Severity

import asyncdb
from tests.integrations.service import uvicorn_server
from tests.servers.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
ALERTS = 2_000
CONCURRENCY = 64
REQUESTS = 2_000  # per round
ROUNDS = 8  # pairs of rounds
TARGET = 0.9


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(base: str, ids: list[str]) -> float:
    """Requests per second of GET /alerts/{id} over ``ids``, CONCURRENCY at a time."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base, connector=connector) as http:
        shares = [ids[i::CONCURRENCY] for i in range(CONCURRENCY)]

        async def worker(mine: list[str]) -> None:
            for alert_id in mine:
                async with http.get(f"/alerts/{alert_id}") as r:
                    if r.status != 200:
                        raise AssertionError(f"{base}: {r.status} {await r.text()}")
                    await r.read()

        await asyncio.gather(*(worker(ids[:2]) for _ in range(CONCURRENCY)))  # connect all
        began = time.perf_counter()
        await asyncio.gather(*(worker(mine) for mine in shares))
        return len(ids) / (time.perf_counter() - began)


async def fill(url: str) -> list[str]:
    rng = random.Random(7)
    async with asyncdb.connect(url) as db:
        alerts = alerts_of(db)
        batch = [
            Alert(
                company_id=f"company-{i % 7}",
                title=f"Disk usage above {rng.randint(80, 99)}% on host-{rng.randint(1, 999)}",
                severity=rng.choice(list(Severity)),
                priority=rng.randint(0, 100),
                tags=rng.sample(["disk", "cpu", "memory", "network", "paging"], 2),
            )
            for i in range(ALERTS)
        ]
        ids: list[str] = await alerts.insert_many(batch)
    raw = await asyncpg.connect(url)
    await raw.execute("CREATE TABLE raw_alerts (id text PRIMARY KEY, doc jsonb NOT NULL)")
    await raw.copy_records_to_table(
        "raw_alerts", records=[(a.id, a.model_dump_json()) for a in batch]
    )
    await raw.close()
    return ids


async def main() -> None:
    server = PostgresServer()
    server.start()
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        admin = await asyncpg.connect(server.url)
        await admin.execute("CREATE DATABASE bench_service")
        await admin.close()
        url = server.url.rsplit("/", 1)[0] + "/bench_service"
        ids = await fill(url)
        env = {"ASYNCDB_URL": url, "ASYNCDB_CACHE_URL": "", "RAW_PG_DSN": url}
        rng = random.Random(11)
        with (
            uvicorn_server("alerts_service.app:app", env, log=workdir / "bench_asyncdb.log") as a,
            uvicorn_server(
                "raw_alerts_app:app",
                env,
                log=workdir / "bench_raw.log",
                app_dir=ROOT / "benchmarks",
            ) as r,
        ):
            servers = {"asyncdb example": a, "raw asyncpg": r}
            sample = ids[:3]
            for alert_id in sample:  # the same answer from both
                async with aiohttp.ClientSession() as http:
                    bodies = []
                    for base in servers.values():
                        async with http.get(f"{base}/alerts/{alert_id}") as resp:
                            bodies.append(await resp.json())
                    assert bodies[0] == bodies[1], bodies
            rps: dict[str, list[float]] = {name: [] for name in servers}
            cpu_us: dict[str, list[float]] = {name: [] for name in servers}
            ratios: list[float] = []
            for base in servers.values():  # warm-up
                await load(base, [rng.choice(ids) for _ in range(500)])
            for i in range(ROUNDS):
                round_ids = [rng.choice(ids) for _ in range(REQUESTS)]
                order = list(servers.items())
                for name, base in order if i % 2 else order[::-1]:
                    before = cpu_seconds(base.pid)
                    rps[name].append(await load(base, round_ids))
                    cpu_us[name].append(1e6 * (cpu_seconds(base.pid) - before) / REQUESTS)
                ratios.append(rps["asyncdb example"][-1] / rps["raw asyncpg"][-1])
    finally:
        server.stop()
    median = {name: statistics.median(v) for name, v in rps.items()}
    ratio = statistics.median(ratios)
    cpu = {name: statistics.median(v) for name, v in cpu_us.items()}
    capacity = cpu["raw asyncpg"] / cpu["asyncdb example"]
    results: dict[str, Any] = {
        "requests_per_round": REQUESTS,
        "rounds": ROUNDS,
        "concurrency": CONCURRENCY,
        "alerts": ALERTS,
        "round_requests_per_s": rps,
        "median_requests_per_s": median,
        "pair_ratios": ratios,
        "round_server_cpu_us_per_request": cpu_us,
        "median_server_cpu_us_per_request": cpu,
        "capacity_ratio_asyncdb_over_raw": capacity,
        "ratio_asyncdb_over_raw": ratio,
        "target": TARGET,
        "meets_target": ratio >= TARGET,
        "capacity_meets_target": capacity >= TARGET,
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
    }
    headers = [
        "server",
        "requests/s (median)",
        "vs raw (median pair)",
        "server CPU us/request",
        "capacity vs raw",
    ]
    rows = [[name, round(median[name]), "", cpu[name], ""] for name in median]
    rows[0][2], rows[0][4] = f"{ratio:.2f}x", f"{capacity:.2f}x"
    rows[1][2], rows[1][4] = "1.00x", "1.00x"
    print()
    print_table(headers, rows)
    saved = save_results("bench_service", results)
    print(f"\nsaved {saved}\n")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
