"""The multi-process load test in short form (DESIGN.md section 12; the full one is
``benchmarks/bench_load.py``): two worker processes, each with its own Database on one
PostgreSQL and one Redis cache, run mixed reads and ``$inc`` writes at once. No operation
fails, no read after a task's own write returned shows an older value (across processes and the
cache), and every counter ends equal to the increments made to it (no lost write)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_load import run_load


def test_two_processes_lose_no_write_and_read_nothing_stale(
    postgres_url: str, redis_url: str
) -> None:
    result = run_load(
        "asyncdb", postgres_url, redis_url, processes=2, tasks=8, seconds=1.5, start_delay=2.0
    )
    assert result["error_count"] == 0, result["errors"]
    assert result["stale_count"] == 0, result["stale"]
    assert result["lost_count"] == 0, result["lost_writes"]
    assert result["increments"] > 0  # writes really ran
    assert result["ops"] > 20
