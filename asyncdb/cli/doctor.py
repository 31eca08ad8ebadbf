"""``asyncdb doctor URL [--cache REDIS_URL]``: is this database usable, and how fast?

Checks, each ``ok``, ``warn``, ``fail`` or ``skip`` (a check that needs the server, after the
ping failed): connect (time), server (backend, server version,
driver), ping latency (p50/p95/p99 of ``db.health()`` round trips), a write/read/delete round
trip of a probe document in the collection ``asyncdb_doctor`` with the latency of its point
reads (skipped with ``--read-only``) and whether every portable type came back unchanged,
capabilities, the catalog (``list_collections``), the connection pool, the circuit breaker
and, with ``--cache``, the read-through cache (a miss, then a hit). Exit 0 when nothing
failed, 1 when a check failed (unhealthy), 2 on a usage error.

>>> # $ asyncdb doctor postgresql://app@127.0.0.1:5432/app --cache redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncdb
from asyncdb.cli.output import OK, PROBLEM, add_output, emit_rows

PROBE_COLLECTION = "asyncdb_doctor"
DRIVERS = {
    "postgres": "asyncpg",
    "sqlite": "aiosqlite",
    "mongo": "pymongo",
    "dynamodb": "aioboto3",
    "cosmos": "azure-cosmos",
    "firestore": "google-cloud-firestore",
}
_SECRET_PARAMS = frozenset({"key", "password", "secret", "token", "aws_secret_access_key"})


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor", help="check connectivity, versions, latency, capabilities, catalog, cache"
    )
    p.add_argument("url", help="database URL")
    p.add_argument("--cache", metavar="REDIS_URL", help="also check this read-through cache")
    p.add_argument("--samples", type=int, default=20, help="round trips per latency check")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds for each check")
    p.add_argument(
        "--read-only", action="store_true", help="skip the probe document's write round trip"
    )
    add_output(p)


def safe_url(url: str) -> str:
    """``url`` without its password or key (for reports and logs).

    >>> safe_url("cosmos://h:8081/db?key=abc&verify=false")
    'cosmos://h:8081/db?key=***&verify=false'
    """
    parts = urlsplit(url)
    out = url
    if parts.password:
        out = out.replace(f":{parts.password}@", ":***@", 1)
    if parts.query and any(k.lower() in _SECRET_PARAMS for k, _ in parse_qsl(parts.query)):
        query = urlencode(
            [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)],
            safe="*",
        )
        out = out[: out.index("?") + 1] + query
    return out


def _ms_stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
    }


def _check(name: str, status: str, detail: str, **values: Any) -> dict[str, Any]:
    return {"check": name, "status": status, "detail": detail, **values}


def _failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


# Checks that need the server: skipped once the ping found it unreachable (each would only
# wait for its own timeout).
_NEEDS_SERVER = frozenset({"round_trip", "catalog"})


class Doctor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.checks: list[dict[str, Any]] = []

    async def _timed(self, coro: Any) -> Any:
        return await asyncio.wait_for(coro, self.args.timeout)

    async def run(self) -> list[dict[str, Any]]:
        args = self.args
        started = time.perf_counter()
        try:
            # slow_ms=None: the probes' own latencies are what the checks report
            db = await self._timed(asyncdb.connect(args.url, timeout=args.timeout, slow_ms=None))
        except asyncdb.ConfigurationError as exc:
            if "no backend for scheme" in str(exc) or "no scheme" in str(exc):
                raise
            self.checks.append(_check("connect", "fail", _failure(exc, args.timeout)))
            return self.checks
        except Exception as exc:  # whatever the driver raised: a failed check, not a traceback
            self.checks.append(_check("connect", "fail", _failure(exc, args.timeout)))
            return self.checks
        try:
            ms = 1000 * (time.perf_counter() - started)
            self.checks.append(_check("connect", "ok", f"{ms:.1f} ms", ms=round(ms, 3)))
            for step in (
                self.server,
                self.latency,
                self.round_trip,
                self.capabilities,
                self.catalog,
                self.pool,
            ):
                name = "ping" if step.__name__ == "latency" else step.__name__.replace("_", " ")
                if step.__name__ in _NEEDS_SERVER and self._unreachable():
                    self.checks.append(_check(name, "skip", "skipped: the ping failed"))
                    continue
                try:
                    await self._timed(step(db))
                except Exception as exc:  # a failed check, whatever the driver raised
                    self.checks.append(_check(name, "fail", _failure(exc, args.timeout)))
            # The breaker's state needs no round trip (db.health() would wait out another one).
            state = db._resilience.breaker.state
            self.checks.append(
                _check(
                    "breaker",
                    "ok" if state == "closed" else "fail",
                    f"circuit breaker {state}",
                    state=state,
                )
            )
        finally:
            await db.close()
        if args.cache:
            try:
                await self._timed(self.cache())
            except Exception as exc:  # a failed check, whatever the driver raised
                self.checks.append(_check("cache", "fail", _failure(exc, args.timeout)))
        return self.checks

    def _unreachable(self) -> bool:
        return any(c["check"] == "ping" and c["status"] == "fail" for c in self.checks)

    async def server(self, db: asyncdb.Database) -> None:
        version = await db._store.server_version()
        driver = DRIVERS.get(db.backend)
        driver_version = None
        if driver is not None:
            try:
                driver_version = metadata.version(driver)
            except metadata.PackageNotFoundError:
                driver_version = None
        detail = f"{db.backend}, server {version or 'version not reported by the service'}"
        if driver:
            detail += f", driver {driver} {driver_version or '?'}"
        self.checks.append(
            _check(
                "server",
                "ok",
                detail + f", asyncdb {asyncdb.__version__}",
                backend=db.backend,
                server_version=version,
                driver=driver,
                driver_version=driver_version,
                asyncdb=asyncdb.__version__,
            )
        )

    async def latency(self, db: asyncdb.Database) -> None:
        samples: list[float] = []
        for _ in range(max(1, self.args.samples)):
            health = await db.health()
            if not health.ok:
                self.checks.append(_check("ping", "fail", f"{health.error}"))
                return
            samples.append(health.latency_ms)
        stats = _ms_stats(samples)
        self.checks.append(
            _check(
                "ping",
                "ok",
                f"p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms, p99 {stats['p99_ms']} ms",
                samples=len(samples),
                **stats,
            )
        )

    async def round_trip(self, db: asyncdb.Database) -> None:
        if self.args.read_only:
            self.checks.append(_check("round trip", "ok", "skipped (--read-only)"))
            return
        probe = db.collection(PROBE_COLLECTION)
        key = f"probe-{time.time_ns()}"
        doc = {
            "id": key,
            "int": 2**53 + 1,
            "float": 0.1,
            "decimal": Decimal("1.10"),
            "text": "naïve ✓",
            "bytes": b"\x00\xff",
            "when": datetime(2025, 3, 14, 9, 30, 1, 123000, tzinfo=UTC),
            "list": [1, "a", None],
            "nested": {"a": {"b": True}},
        }
        started = time.perf_counter()
        await probe.insert_one(doc)
        write_ms = 1000 * (time.perf_counter() - started)
        samples: list[float] = []
        back = None
        try:
            for _ in range(max(1, self.args.samples)):
                began = time.perf_counter()
                back = await probe.find_one({"id": key})
                samples.append(1000 * (time.perf_counter() - began))
        finally:
            await probe.delete_one({"id": key})
        stats = _ms_stats(samples)
        changed = sorted(k for k in doc if back is None or back.get(k) != doc[k])
        if changed and db.backend == "dynamodb":
            # DynamoDB keeps one number type: a documented deviation, not a fault.
            changed = [k for k in changed if k not in ("decimal", "float", "int")]
        status = "ok" if not changed else "warn"
        detail = (
            f"write {write_ms:.1f} ms, point read p50 {stats['p50_ms']} ms, "
            f"p99 {stats['p99_ms']} ms"
        )
        detail += ", every type round-tripped" if not changed else f", changed: {changed}"
        self.checks.append(
            _check(
                "round trip",
                status,
                detail,
                write_ms=round(write_ms, 3),
                changed=changed,
                **stats,
            )
        )

    async def capabilities(self, db: asyncdb.Database) -> None:
        caps = list(db.capabilities)
        self.checks.append(_check("capabilities", "ok", ", ".join(caps) or "none", names=caps))

    async def catalog(self, db: asyncdb.Database) -> None:
        lister = getattr(db, "list_collections", None)
        if lister is None:
            self.checks.append(_check("catalog", "ok", "not available in this version"))
            return
        specs = await lister()
        names = [getattr(s, "name", str(s)) for s in specs]
        self.checks.append(
            _check(
                "catalog",
                "ok",
                f"{len(names)} collection{'' if len(names) == 1 else 's'}: {', '.join(names)}",
                names=names,
            )
        )

    async def pool(self, db: asyncdb.Database) -> None:
        stats = db._store.pool_stats()
        if stats is None:
            self.checks.append(_check("pool", "ok", "no connection pool of its own"))
            return
        status = "warn" if stats["in_use"] >= stats["max_size"] else "ok"
        detail = (
            f"size {stats['size']} of {stats['max_size']}, in use {stats['in_use']}, "
            f"waits {stats['waits']}"
        )
        self.checks.append(_check("pool", status, detail, **stats))

    async def cache(self) -> None:
        args = self.args
        async with asyncdb.connect(args.url, cache=args.cache, timeout=args.timeout) as db:
            assert db.cache is not None
            if args.read_only:
                await db.collection(PROBE_COLLECTION).find_one({"id": "asyncdb-doctor-cache"})
                stats = db.cache.stats()
                ok = stats["errors"] == 0 and stats["breaker"] == "closed"
                detail = f"redis reachable: {ok}, breaker {stats['breaker']}"
                self.checks.append(_check("cache", "ok" if ok else "fail", detail))
                return
            probe = db.collection(PROBE_COLLECTION)
            key = f"cache-probe-{time.time_ns()}"
            await probe.insert_one({"id": key, "n": 1})
            try:
                await probe.find_one({"id": key})
                began = time.perf_counter()
                await probe.find_one({"id": key})
                hit_ms = 1000 * (time.perf_counter() - began)
            finally:
                await probe.delete_one({"id": key})
            stats = db.cache.stats()
        healthy = stats["hits"] >= 1 and stats["errors"] == 0
        detail = (
            f"miss then hit: {'yes' if stats['hits'] >= 1 else 'no'}, hit {hit_ms:.2f} ms, "
            f"redis mean {stats['redis_mean_ms']:.2f} ms, errors {stats['errors']}, "
            f"breaker {stats['breaker']}"
        )
        self.checks.append(
            _check(
                "cache",
                "ok" if healthy else "fail",
                detail,
                hit_ms=round(hit_ms, 3),
                hits=stats["hits"],
                misses=stats["misses"],
                errors=stats["errors"],
                breaker=stats["breaker"],
            )
        )


def run(args: argparse.Namespace) -> int:
    checks = asyncio.run(Doctor(args).run())
    healthy = all(c["status"] != "fail" for c in checks)
    emit_rows(
        args,
        checks,
        ["check", "status", "detail"],
        title=f"asyncdb doctor {safe_url(args.url)}: {'healthy' if healthy else 'UNHEALTHY'}",
        document={"url": safe_url(args.url), "healthy": healthy, "checks": checks},
    )
    if not healthy and args.output == "table":
        print("unhealthy: see the checks marked fail", file=sys.stderr)
    return OK if healthy else PROBLEM
