"""Verify of 1,000,000 documents: time and peak memory, against a 100,000-document verify.

Two SQLite files of N documents each (and, with ``BENCH_VERIFY_PG=1``, SQLite against
PostgreSQL) are compared by ``asyncdb.verify`` in a fresh process per measure, which reports:
wall time, documents per second (each side read once), the peak resident set during the verify
above the resident set at its start (Linux: VmHWM reset through ``/proc/self/clear_refs``), the
growth of the process's peak (``resource.getrusage`` ``ru_maxrss``) and, for
the SQLite pair, the peak of Python allocations during a second, traced verify (tracemalloc;
``BENCH_VERIFY_TRACEMALLOC=0`` skips it). Memory should stay flat from 100k to 1M:
the verify folds digests into 1,024 key-hash ranges and holds no per-document state.

    python benchmarks/bench_verify_1m.py    # BENCH_VERIFY_SIZES=100000,1000000 (default)
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from _report import print_table, save_results

import asyncdb

SIZES = [int(n) for n in os.environ.get("BENCH_VERIFY_SIZES", "100000,1000000").split(",")]
WITH_PG = os.environ.get("BENCH_VERIFY_PG") == "1"
TRACED = os.environ.get("BENCH_VERIFY_TRACEMALLOC", "1") == "1"  # SQLite pairs, a second run
CHUNK = 50_000


def doc(i: int) -> dict[str, Any]:
    return {"id": f"d{i:07d}", "company": f"c{i % 31}", "n": i, "tags": ["a", "b"], "x": i / 3}


async def fill(url: str, n: int) -> None:
    async with asyncdb.connect(url) as db:
        coll = db.collection("bench")
        await coll.drop()
        for start in range(0, n, CHUNK):
            await coll.insert_many([doc(i) for i in range(start, min(n, start + CHUNK))])


def _reset_peak() -> bool:
    """Linux: reset the resident-set high-water mark (VmHWM) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


async def child(a_url: str, b_url: str, traced: bool) -> dict[str, Any]:
    """The measure itself, in its own process (ru_maxrss is a process's peak): one verify timed
    untraced, then (``traced``) one more under tracemalloc for the peak of Python allocations."""
    async with asyncdb.connect(a_url) as a, asyncdb.connect(b_url) as b:
        await a.list_collections()
        await b.list_collections()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reset = _reset_peak()
        rss_start = _status_kb("VmRSS")
        started = time.perf_counter()
        report = await asyncdb.verify(a, b)
        seconds = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm = _status_kb("VmHWM") if reset else None
        peak = None
        if traced:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            again = await asyncdb.verify(a, b)
            peak = (tracemalloc.get_traced_memory()[1] - base) / 1e6
            tracemalloc.stop()
            assert again.equal
    result = report.collections["bench"]
    return {
        "equal": report.equal,
        "documents": result.source_count,
        "seconds": seconds,
        "tracemalloc_peak_mb": peak,
        "maxrss_growth_mb": (rss_after - rss_before) / 1024,  # ru_maxrss is in KiB on Linux
        # the peak RSS during the verify above the RSS at its start (VmHWM reset before it)
        "peak_rss_growth_mb": None
        if hwm is None or rss_start is None
        else (hwm - rss_start) / 1024,
        "maxrss_before_mb": rss_before / 1024,
        "maxrss_mb": rss_after / 1024,
    }


def measure(a_url: str, b_url: str, traced: bool) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", a_url, b_url, "traced" if traced else "untraced"],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["equal"], result
    return result


async def main() -> None:
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    pg_server: Any = None
    if WITH_PG:
        from tests.servers.postgres import PostgresServer

        pg_server = PostgresServer()
        pg_server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in SIZES:
                a, b = f"sqlite:///{tmp}/a{n}.db", f"sqlite:///{tmp}/b{n}.db"
                await fill(a, n)
                await fill(b, n)
                pairs = [("SQLite <-> SQLite", a, b, TRACED)]
                if pg_server is not None:
                    await fill(pg_server.url, n)
                    pairs.append(("SQLite <-> PostgreSQL", a, pg_server.url, False))
                for name, x, y, traced in pairs:
                    r = measure(x, y, traced)
                    print(name, n, r, flush=True)
                    peak, rss = r["tracemalloc_peak_mb"], r["peak_rss_growth_mb"]
                    assert r["documents"] == n
                    results.append({"pair": name, **r})
                    rows.append(
                        [f"verify {name} ({n:,} docs)", f"{r['seconds']:.1f} s",
                         f"{n / r['seconds']:,.0f} docs/s",
                         "" if peak is None else f"{peak:.2f} MB",
                         "" if rss is None else f"{rss:.1f} MB",
                         f"{r['maxrss_growth_mb']:.1f} MB", f"{r['maxrss_mb']:.0f} MB"]
                    )  # fmt: skip
    finally:
        if pg_server is not None:
            pg_server.stop()
    headers = ["measure", "time", "throughput", "tracemalloc peak", "peak RSS over start",
               "ru_maxrss growth", "ru_maxrss"]  # fmt: skip
    print_table(headers, rows)
    save_results("bench_verify_1m", {"sizes": SIZES, "results": results})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        traced = sys.argv[4] == "traced"
        print(json.dumps(asyncio.run(child(sys.argv[2], sys.argv[3], traced))))
    else:
        asyncio.run(main())
