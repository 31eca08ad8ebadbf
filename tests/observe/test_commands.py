"""The commands through the real console script (``python -m asyncdb``, this checkout first on
the path): doctor on every backend, find/explain/bench/audit verify on SQLite and the servers,
exit codes 0/1/2 and no traceback for an expected error."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import asyncdb

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "asyncdb", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


async def fill(url: str) -> None:
    async with asyncdb.connect(url) as db:
        alerts = db.collection("alerts", indexes=["company"])
        await alerts.delete_many({}, allow_scan=True)
        await alerts.insert_many(
            [{"id": f"a{i}", "company": "acme" if i % 2 else "globex", "p": i} for i in range(6)]
        )


def test_doctor_checks_every_backend(backend_url: str, backend_name: str) -> None:
    proc = cli("doctor", backend_url, "--samples", "3", "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = as_json(proc)
    checks = {c["check"]: c for c in report["checks"]}
    assert report["healthy"] is True
    assert list(checks) == [
        "connect",
        "server",
        "ping",
        "round trip",
        "capabilities",
        "catalog",
        "pool",
        "breaker",
    ]
    assert {c["status"] for c in checks.values()} <= {"ok", "warn"}
    assert checks["server"]["backend"] == backend_name
    assert checks["ping"]["p50_ms"] <= checks["ping"]["p99_ms"]
    assert checks["round trip"]["changed"] == [], checks["round trip"]
    assert set(checks["capabilities"]["names"]) == set(
        asyncdb.backend_for(backend_url).capabilities
    )
    if backend_name in ("postgres", "sqlite", "mongo"):
        assert checks["server"]["server_version"]
    if backend_name == "postgres":
        assert checks["pool"]["max_size"] >= 1


def test_doctor_checks_the_cache_and_reports_an_unreachable_server(
    tmp_path: Path, redis_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    proc = cli("doctor", url, "--cache", redis_url, "--samples", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cache_line = next(line for line in proc.stdout.splitlines() if line.startswith("cache"))
    assert "miss then hit: yes" in cache_line and " ok " in cache_line
    down = cli("doctor", "postgresql://postgres@127.0.0.1:1/nothing", "--timeout", "5")
    assert down.returncode == 1
    assert "UNHEALTHY" in down.stdout and "connect" in down.stdout
    usage = cli("doctor", "nosuch://host")
    assert usage.returncode == 2 and "no backend for scheme 'nosuch'" in usage.stderr


def test_doctor_on_a_server_that_does_not_answer_fails_its_checks_without_waiting_each_out() -> (
    None
):
    # MongoDB's client connects lazily: the ping is the first round trip (its server_version
    # was a raw pymongo traceback). A bad Cosmos key is refused before any request (it was
    # the driver's binascii.Error, with a traceback).
    url = "mongodb://127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=1000"
    proc = cli("doctor", url, "--timeout", "2", "--samples", "2", "--output", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = as_json(proc)
    checks = {c["check"]: c for c in report["checks"]}
    assert report["healthy"] is False
    assert checks["connect"]["status"] == "ok"
    assert checks["server"]["status"] == "fail" and "BackendError" in checks["server"]["detail"]
    assert checks["ping"]["status"] == "fail", checks
    assert (checks["round trip"]["status"], checks["catalog"]["status"]) == ("skip", "skip")
    assert checks["breaker"]["status"] == "ok"
    bad_key = cli(
        "doctor", "cosmos://127.0.0.1:1/db?key=not+base64&verify=false", "--output", "json"
    )
    assert bad_key.returncode == 1
    [connect] = as_json(bad_key)["checks"]
    assert connect["status"] == "fail" and "not base64" in connect["detail"]


def test_find_prints_each_output_format_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    asyncio.run(fill(url))
    base = ("find", url, "alerts", '{"company": "acme"}', "--index", "company")
    docs = as_json(cli(*base, "--output", "json", "--sort", '[["p", 1]]'))
    assert [d["id"] for d in docs] == ["a1", "a3", "a5"]
    lines = cli(*base, "--output", "jsonl", "--limit", "2", "--sort", '[["p", -1]]').stdout
    assert [json.loads(line)["p"] for line in lines.splitlines()] == [5, 3]
    rows = list(csv.DictReader(io.StringIO(cli(*base, "--output", "csv").stdout)))
    assert sorted(r["id"] for r in rows) == ["a1", "a3", "a5"] and rows[0]["company"] == "acme"
    table = cli(*base).stdout.splitlines()
    assert table[0] == "3 documents from 'alerts'"
    assert table[1].split()[:3] == ["id", "company", "p"]
    bad = cli("find", url, "alerts", '{"company": ')
    assert bad.returncode == 2 and "FILTER is not valid JSON" in bad.stderr
    scan = cli("find", url, "alerts", '{"p": 3}')
    assert scan.returncode == 2 and "ScanRequired" in scan.stderr


def test_find_and_explain_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    asyncio.run(fill(postgres_url))
    found = cli(
        "find", postgres_url, "alerts", '{"p": {"$gte": 4}}', "--allow-scan", "--output", "json"
    )
    assert sorted(d["id"] for d in as_json(found)) == ["a4", "a5"]
    sqlite_url = f"sqlite:///{tmp_path / 'e.db'}"
    asyncio.run(fill(sqlite_url))
    for url in (postgres_url, sqlite_url):
        plan = as_json(
            cli(
                "explain",
                url,
                "alerts",
                '{"company": "acme"}',
                "--index",
                "company",
                "--output",
                "json",
            )
        )
        assert plan["access_path"] == "index:ix_company"
        assert plan["exact"] == {"company": {"$eq": "acme"}} and plan["residual"] is None
        assert "sql" in plan["native"]


def test_bench_on_sqlite_side_by_side_with_a_plot_and_versions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    png = tmp_path / "bench.png"
    proc = cli(
        "bench",
        url,
        "--duration",
        "0.15",
        "--concurrency",
        "1,4",
        "--docs",
        "200",
        "--raw",
        "--plot",
        str(png),
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    report = as_json(proc)
    saved = json.loads(png.with_suffix(".json").read_text())
    assert saved["results"] == report["results"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    seen = {(r["impl"], r["workload"], r["concurrency"]) for r in report["results"]}
    workloads = ("read", "query", "insert", "update", "mixed")
    assert seen == {
        (i, w, c) for i in ("asyncdb", "raw aiosqlite") for w in workloads for c in (1, 4)
    }
    for r in report["results"]:
        assert r["ops"] > 0 and r["errors"] == 0 and r["p50_ms"] <= r["p99_ms"], r
    assert report["versions"]["aiosqlite"] and report["versions"]["server"].startswith("SQLite")
    assert report["hardware"]["cpus"] >= 1
    assert "bench: " in proc.stderr  # the progress line (plain: stderr is not a terminal)

    async def leftovers() -> list[str]:
        async with asyncdb.connect(url) as db:
            return [
                d["id"]
                for d in await db.collection("asyncdb_bench").find({}, allow_scan=True).to_list()
            ]

    import asyncio

    assert asyncio.run(leftovers()) == []  # the bench cleans up after itself


RAW_IMPL = {
    "postgres": "raw asyncpg",
    "mongo": "raw pymongo",
    "dynamodb": "raw aioboto3",
    "cosmos": "raw azure-cosmos",
    "firestore": "raw google-cloud-firestore",
    "memory": "raw dict",
}


@pytest.mark.parametrize("server", list(RAW_IMPL))
def test_bench_raw_driver_on_the_servers(server: str, request: pytest.FixtureRequest) -> None:
    url = "memory://" if server == "memory" else request.getfixturevalue(f"{server}_url")
    # The raw sides written last run every workload; the older ones the read and the update.
    new = server in ("cosmos", "firestore", "memory")
    proc = cli(
        "bench",
        url,
        "--workload",
        "read,query,insert,update" if new else "read,update",
        "--duration",
        "0.1",
        "--concurrency",
        "2",
        "--docs",
        "50",
        "--raw",
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    results = as_json(proc)["results"]
    assert {r["impl"] for r in results} == {"asyncdb", RAW_IMPL[server]}
    assert "no raw-driver workload" not in proc.stderr
    assert all(r["ops"] > 0 and r["errors"] == 0 for r in results), results


def test_bench_dry_run_and_usage_errors() -> None:
    dry = cli("bench", "memory://", "--dry-run", "--workload", "read")
    assert dry.returncode == 0 and "dry run: would load 2000 documents" in dry.stderr
    bad = cli("bench", "memory://", "--workload", "reads")
    assert bad.returncode == 2 and "unknown workload" in bad.stderr


@pytest.mark.parametrize("where", ["sqlite", "postgres"])
def test_audit_verify_exit_codes(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if where == "sqlite":
        url = f"sqlite:///{tmp_path / 'a.db'}"
    else:
        url = request.getfixturevalue("postgres_url")

    async def write() -> None:
        async with asyncdb.connect(url, audit="audit_log") as db:
            for i in range(3):
                await db.collection("c").insert_one({"id": f"k{i}"})

    async def forge() -> None:
        async with asyncdb.connect(url) as db:
            await db.collection("audit_log").update_one(
                {"id": f"{2:020d}"}, {"$set": {"op": "find"}}
            )

    asyncio.run(write())
    if where == "sqlite":
        ok = cli("audit", "verify", url, "audit_log", "--output", "json")
        assert ok.returncode == 0 and as_json(ok)["events"] == 3
    asyncio.run(forge())
    bad = cli("audit", "verify", url, "audit_log")
    assert bad.returncode == 1
    assert "1 PROBLEMS" in bad.stdout and "edited: hash does not match" in bad.stdout
