"""``asyncdb bench URL``: fixed workloads at fixed concurrencies for a fixed time, on any URL,
and with ``--raw`` the same workloads through the backend's own driver, side by side.

Workloads (over ``--docs`` documents of about 400 bytes in the collection ``asyncdb_bench``):
``read`` a point read by key; ``query`` a 3-clause filter (company, priority range, status;
limit 10) served by the (company, priority) index; ``insert`` one new document; ``update`` a
``$inc`` by key; ``mixed`` 70% reads, 20% updates, 10% inserts. Each (workload, concurrency)
runs ``--duration`` seconds after a short warm-up, with ``concurrency`` tasks each calling the
workload in a loop; every call is timed. Reported: ops/s and p50/p95/p99 in milliseconds.
``--raw`` (sqlite: aiosqlite, postgres: asyncpg, mongo: pymongo's async client, dynamodb:
aioboto3's low-level client, cosmos: azure-cosmos's async container calls, firestore:
google-cloud-firestore's AsyncClient, memory: plain dicts in this process, see
:class:`RawMemory`) runs the same calls, hand-written for the driver, on a table of its own
with the same documents and index.
``--plot FILE.png`` draws latency percentiles and throughput by concurrency (asyncdb beside
raw), and a JSON file (``--json``, default the plot's name with ``.json``) keeps every figure
with the versions and the hardware. Progress goes to stderr. The bench writes only its own
collection and table, and removes both at the end.

:func:`measure` is the timing core and :func:`interleaved` the ratio of several
implementations in one run (rounds in alternating order, medians); the scripts in
``benchmarks/`` use them too.

>>> # $ asyncdb bench postgresql://app@127.0.0.1/bench --workload read,query --raw --plot b.png
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

import asyncdb
from asyncdb.cli.doctor import DRIVERS, safe_url
from asyncdb.cli.output import OK, CommandError, Progress, add_output, dumps, emit_rows

WORKLOADS = ("read", "query", "insert", "update", "mixed")
RAW_BACKENDS = ("sqlite", "postgres", "mongo", "dynamodb", "cosmos", "firestore", "memory")
COLLECTION = "asyncdb_bench"
RAW_TABLE = "asyncdb_bench_raw"
COMPANIES = 50
STATUSES = ("open", "acknowledged", "resolved")


# --- the timing core --------------------------------------------------------------------------


@dataclass
class Run:
    """One (implementation, workload, concurrency): what :func:`measure` saw."""

    impl: str
    workload: str
    concurrency: int
    ops: int
    seconds: float
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_ms": round(statistics.median(self.latencies_ms), 4) if self.ops else 0.0,
            "p95_ms": round(self.percentile(0.95), 4),
            "p99_ms": round(self.percentile(0.99), 4),
        }


async def measure(
    call: Callable[[int], Awaitable[Any]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
    impl: str = "",
    workload: str = "",
) -> Run:
    """Run ``call(n)`` (n counts calls from 0) from ``concurrency`` tasks in a loop for
    ``warmup`` untimed seconds, then ``duration`` timed seconds; every call's latency kept.

    >>> async def nothing(n: int) -> None: ...
    >>> run = asyncio.run(measure(nothing, concurrency=2, duration=0.01))
    >>> run.ops > 0 and run.concurrency == 2
    True
    """
    counter = 0
    latencies: list[float] = []
    errors = 0
    perf = time.perf_counter

    async def worker(until: float, timed: bool) -> None:
        nonlocal counter, errors
        while perf() < until:
            n = counter
            counter += 1
            began = perf()
            try:
                await call(n)
            except Exception:  # counted and reported, never hidden: the run goes on
                errors += timed
                continue
            if timed:
                latencies.append(1000 * (perf() - began))

    if warmup > 0:
        until = perf() + warmup
        await asyncio.gather(*(worker(until, False) for _ in range(concurrency)))
    started = perf()
    until = started + duration
    await asyncio.gather(*(worker(until, True) for _ in range(concurrency)))
    seconds = perf() - started
    return Run(impl, workload, concurrency, len(latencies), seconds, errors, latencies)


@dataclass
class Comparison:
    """:func:`interleaved`'s answer: ops/s of every round of every label, and this process's
    CPU time per operation (µs) in each round."""

    concurrency: int
    rounds_ops_per_s: dict[str, list[float]]
    rounds_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # calls that raised, per label

    def ops_per_s(self, label: str) -> float:
        """The median round's ops/s."""
        return statistics.median(self.rounds_ops_per_s[label])

    def us_per_op(self, label: str) -> float:
        return 1e6 / self.ops_per_s(label)

    def ratio(self, label: str, base: str) -> float:
        """Time per operation of ``label`` over ``base`` (median rounds): 1.5 = 50% slower."""
        return self.ops_per_s(base) / self.ops_per_s(label)

    def cpu_ratio(self, label: str, base: str) -> float:
        """This process's CPU time per operation, ``label`` over ``base`` (median rounds)."""
        cpu = self.rounds_cpu_us
        return statistics.median(cpu[label]) / statistics.median(cpu[base])

    def best_ratio(self, label: str, base: str) -> float:
        """The same from each side's best round (other jobs on the machine only add time)."""
        return max(self.rounds_ops_per_s[base]) / max(self.rounds_ops_per_s[label])


async def interleaved(
    calls: dict[str, Callable[[int], Awaitable[Any]]],
    *,
    concurrency: int,
    duration: float,
    rounds: int,
    warmup: float = 0.2,
    after: Callable[[str], Awaitable[None]] | None = None,
) -> Comparison:
    """Ratios in one run: each label timed by :func:`measure` for ``duration`` s per round,
    the labels' order reversed every other round (a slow minute of the machine falls on all of
    them), ``rounds`` rounds; compare the medians (:meth:`Comparison.ratio`). ``after(label)``
    runs after each measurement and its time counts (work the calls left queued).

    >>> async def nothing(n: int) -> None: ...
    >>> c = asyncio.run(interleaved({"a": nothing, "b": nothing}, concurrency=1,
    ...                             duration=0.01, rounds=3, warmup=0))
    >>> sorted(c.rounds_ops_per_s), len(c.rounds_ops_per_s["a"])
    (['a', 'b'], 3)
    """
    labels = list(calls)
    if warmup > 0:
        for label in labels:
            await measure(calls[label], concurrency=concurrency, duration=warmup)
            if after is not None:
                await after(label)
    ops: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    errors = dict.fromkeys(labels, 0)
    for r in range(rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            cpu_began = time.process_time()
            run = await measure(calls[label], concurrency=concurrency, duration=duration)
            began = time.perf_counter()
            if after is not None:
                await after(label)
            ops[label].append(run.ops / (run.seconds + time.perf_counter() - began))
            cpu[label].append(1e6 * (time.process_time() - cpu_began) / max(run.ops, 1))
            errors[label] += run.errors
    return Comparison(concurrency, ops, cpu, errors)


# --- the documents and workloads ------------------------------------------------------------


def bench_doc(i: int, rng: random.Random, prefix: str = "b") -> dict[str, Any]:
    return {
        "id": f"{prefix}{i:07d}",
        "company": f"c{i % COMPANIES:02d}",
        "priority": rng.randint(1, 100),
        "status": STATUSES[i % len(STATUSES)],
        "title": f"Disk usage above {rng.randint(80, 99)}% on host-{rng.randint(1, 999)}",
        "tags": rng.sample(["disk", "cpu", "memory", "network", "paging"], 2),
        "source": {"region": "eu-west-1", "host": f"host-{rng.randint(1, 999)}"},
        "counter": 0,
        "description": "x" * 200,
    }


class Target:
    """One implementation of the five workloads (asyncdb, or a raw driver)."""

    impl = "asyncdb"

    def __init__(self, docs: int, token: str) -> None:
        self.docs = docs
        self.token = token  # new keys of this run
        self.rng = random.Random(7)
        self.inserted = 0

    def key(self, n: int) -> str:
        return f"b{(n * 7919) % self.docs:07d}"

    def query_args(self, n: int) -> tuple[str, int, str]:
        return f"c{n % COMPANIES:02d}", 50 + n % 40, STATUSES[n % len(STATUSES)]

    def new_doc(self, n: int) -> dict[str, Any]:
        self.inserted += 1  # n restarts with each measurement; new keys must not
        return bench_doc(self.inserted, self.rng, prefix=f"n{self.token}-")

    async def setup(self, docs: list[dict[str, Any]]) -> None: ...
    async def read(self, n: int) -> Any: ...
    async def query(self, n: int) -> Any: ...
    async def insert(self, n: int) -> Any: ...
    async def update(self, n: int) -> Any: ...
    async def teardown(self) -> None: ...
    async def close(self) -> None: ...

    async def mixed(self, n: int) -> Any:
        slot = n % 10
        if slot < 7:
            return await self.read(n)
        if slot < 9:
            return await self.update(n)
        return await self.insert(n)

    def workload(self, name: str) -> Callable[[int], Awaitable[Any]]:
        call: Callable[[int], Awaitable[Any]] = getattr(self, name)
        return call


class AsyncDBTarget(Target):
    def __init__(self, db: asyncdb.Database, docs: int, token: str) -> None:
        super().__init__(docs, token)
        self.db = db
        self.coll = db.collection(COLLECTION, indexes=[("company", "priority")])

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        await self.coll.delete_many({}, allow_scan=True)
        for i in range(0, len(docs), 500):
            await self.coll.insert_many(docs[i : i + 500])

    async def read(self, n: int) -> Any:
        return await self.coll.find_one({"id": self.key(n)})

    async def query(self, n: int) -> Any:
        company, priority, status = self.query_args(n)
        return await self.coll.find(
            {"company": company, "priority": {"$gte": priority}, "status": status}, limit=10
        ).to_list()

    async def insert(self, n: int) -> Any:
        return await self.coll.insert_one(self.new_doc(n))

    async def update(self, n: int) -> Any:
        return await self.coll.update_one({"id": self.key(n)}, {"$inc": {"counter": 1}})

    async def teardown(self) -> None:
        await self.coll.delete_many({}, allow_scan=True)


class RawSQLite(Target):
    """aiosqlite on one connection: JSON text in a table of its own, JSON1 expressions."""

    impl = "raw aiosqlite"

    def __init__(self, url: str, docs: int, token: str) -> None:
        super().__init__(docs, token)
        self.path = urlsplit(url).path[1:] if url.startswith("sqlite:///") else ""
        self.conn: Any = None

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        import aiosqlite

        # Autocommit: each statement is its own transaction, as asyncdb's writes are.
        self.conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self.conn.execute("PRAGMA journal_mode=WAL")
        await self.conn.execute("PRAGMA synchronous=NORMAL")  # as asyncdb opens SQLite
        await self.conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        await self.conn.execute(f"CREATE TABLE {RAW_TABLE} (id TEXT PRIMARY KEY, doc TEXT)")
        await self.conn.execute(
            f"CREATE INDEX {RAW_TABLE}_cp ON {RAW_TABLE} "
            "(json_extract(doc, '$.company'), json_extract(doc, '$.priority'))"
        )
        await self.conn.execute("BEGIN")
        await self.conn.executemany(
            f"INSERT INTO {RAW_TABLE} VALUES (?, ?)",
            [(d["id"], orjson.dumps(d).decode()) for d in docs],
        )
        await self.conn.execute("COMMIT")

    async def read(self, n: int) -> Any:
        async with self.conn.execute(
            f"SELECT doc FROM {RAW_TABLE} WHERE id = ?", (self.key(n),)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else orjson.loads(row[0])

    async def query(self, n: int) -> Any:
        async with self.conn.execute(
            f"SELECT doc FROM {RAW_TABLE} WHERE json_extract(doc, '$.company') = ? "
            "AND json_extract(doc, '$.priority') >= ? AND json_extract(doc, '$.status') = ? "
            "LIMIT 10",
            self.query_args(n),
        ) as cur:
            return [orjson.loads(r[0]) for r in await cur.fetchall()]

    async def insert(self, n: int) -> Any:
        doc = self.new_doc(n)
        await self.conn.execute(
            f"INSERT INTO {RAW_TABLE} VALUES (?, ?)", (doc["id"], orjson.dumps(doc).decode())
        )

    async def update(self, n: int) -> Any:
        await self.conn.execute(
            f"UPDATE {RAW_TABLE} SET doc = json_set(doc, '$.counter', "
            "json_extract(doc, '$.counter') + 1) WHERE id = ?",
            (self.key(n),),
        )

    async def teardown(self) -> None:
        await self.conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class RawPostgres(Target):
    """asyncpg's pool: jsonb in a table of its own, an expression index."""

    impl = "raw asyncpg"

    def __init__(self, url: str, docs: int, token: str, pool_size: int) -> None:
        super().__init__(docs, token)
        parts = urlsplit(url)
        self.dsn = urlunsplit(parts._replace(scheme="postgresql", query=""))
        self.pool_size = pool_size
        self.pool: Any = None

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        async with self.pool.acquire() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
            await conn.execute(f"CREATE TABLE {RAW_TABLE} (id text PRIMARY KEY, doc jsonb)")
            await conn.execute(
                f"CREATE INDEX ON {RAW_TABLE} ((doc->>'company'), ((doc->>'priority')::int))"
            )
            await conn.copy_records_to_table(
                RAW_TABLE, records=[(d["id"], orjson.dumps(d).decode()) for d in docs]
            )
            await conn.execute(f"ANALYZE {RAW_TABLE}")

    async def read(self, n: int) -> Any:
        doc = await self.pool.fetchval(f"SELECT doc FROM {RAW_TABLE} WHERE id = $1", self.key(n))
        return None if doc is None else orjson.loads(doc)

    async def query(self, n: int) -> Any:
        rows = await self.pool.fetch(
            f"SELECT doc FROM {RAW_TABLE} WHERE doc->>'company' = $1 "
            "AND (doc->>'priority')::int >= $2 AND doc->>'status' = $3 LIMIT 10",
            *self.query_args(n),
        )
        return [orjson.loads(r[0]) for r in rows]

    async def insert(self, n: int) -> Any:
        doc = self.new_doc(n)
        await self.pool.execute(
            f"INSERT INTO {RAW_TABLE} VALUES ($1, $2)", doc["id"], orjson.dumps(doc).decode()
        )

    async def update(self, n: int) -> Any:
        await self.pool.execute(
            f"UPDATE {RAW_TABLE} SET doc = jsonb_set(doc, '{{counter}}', "
            "to_jsonb((doc->>'counter')::int + 1)) WHERE id = $1",
            self.key(n),
        )

    async def teardown(self) -> None:
        await self.pool.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


class RawMongo(Target):
    """pymongo's async client: a collection of its own with the same index."""

    impl = "raw pymongo"

    def __init__(self, url: str, docs: int, token: str) -> None:
        super().__init__(docs, token)
        parts = urlsplit(url)
        self.url = url
        self.database = parts.path.strip("/") or "asyncdb"
        self.client: Any = None
        self.coll: Any = None

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        from pymongo import AsyncMongoClient

        query = dict(parse_qsl(urlsplit(self.url).query))
        uri = urlunsplit(urlsplit(self.url)._replace(path="/"))
        self.client = AsyncMongoClient(
            uri, directConnection=query.get("directConnection", "false") == "true"
        )
        self.coll = self.client[self.database][RAW_TABLE]
        await self.coll.drop()
        await self.coll.create_index([("company", 1), ("priority", 1)])
        await self.coll.insert_many([{"_id": d["id"], **d} for d in docs])

    async def read(self, n: int) -> Any:
        return await self.coll.find_one({"_id": self.key(n)})

    async def query(self, n: int) -> Any:
        company, priority, status = self.query_args(n)
        cursor = self.coll.find(
            {"company": company, "priority": {"$gte": priority}, "status": status}
        ).limit(10)
        return await cursor.to_list()

    async def insert(self, n: int) -> Any:
        doc = self.new_doc(n)
        await self.coll.insert_one({"_id": doc["id"], **doc})

    async def update(self, n: int) -> Any:
        await self.coll.update_one({"_id": self.key(n)}, {"$inc": {"counter": 1}})

    async def teardown(self) -> None:
        await self.coll.drop()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class RawDynamo(Target):
    """aioboto3's low-level client: a table of its own with a (company, priority) GSI."""

    impl = "raw aioboto3"

    def __init__(self, url: str, docs: int, token: str) -> None:
        super().__init__(docs, token)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.region = query.get("region", "us-east-1")
        self.table = query.get("table_prefix", "") + RAW_TABLE
        self.endpoint = (
            f"http://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
            if parts.hostname
            else None
        )
        self.client: Any = None
        self._cm: Any = None

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        import aioboto3
        from boto3.dynamodb.types import (  # type: ignore[import-untyped]
            TypeDeserializer,
            TypeSerializer,
        )

        self._to = TypeSerializer().serialize
        self._from = TypeDeserializer().deserialize
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.endpoint is not None:  # DynamoDB Local takes any credentials
            kwargs.update(
                endpoint_url=self.endpoint,
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "asyncdblocal"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "asyncdblocal"),
            )
        self._cm = aioboto3.Session().client("dynamodb", **kwargs)
        self.client = await self._cm.__aenter__()
        await self.teardown()
        await self.client.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "company", "AttributeType": "S"},
                {"AttributeName": "priority", "AttributeType": "N"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "company_priority",
                    "KeySchema": [
                        {"AttributeName": "company", "KeyType": "HASH"},
                        {"AttributeName": "priority", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        await self.client.get_waiter("table_exists").wait(TableName=self.table)
        for i in range(0, len(docs), 25):
            requests = [{"PutRequest": {"Item": self._item(d)}} for d in docs[i : i + 25]]
            pending: dict[str, Any] = {self.table: requests}
            while pending:
                answer = await self.client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}

    def _item(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {k: self._to(v) for k, v in doc.items()}

    def _doc(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._from(v) for k, v in item.items()}

    async def read(self, n: int) -> Any:
        answer = await self.client.get_item(TableName=self.table, Key={"id": {"S": self.key(n)}})
        item = answer.get("Item")
        return None if item is None else self._doc(item)

    async def query(self, n: int) -> Any:
        company, priority, status = self.query_args(n)
        answer = await self.client.query(
            TableName=self.table,
            IndexName="company_priority",
            KeyConditionExpression="company = :c AND priority >= :p",
            FilterExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":c": {"S": company},
                ":p": {"N": str(priority)},
                ":s": {"S": status},
            },
        )
        return [self._doc(item) for item in answer.get("Items", [])[:10]]

    async def insert(self, n: int) -> Any:
        await self.client.put_item(
            TableName=self.table,
            Item=self._item(self.new_doc(n)),
            ConditionExpression="attribute_not_exists(id)",
        )

    async def update(self, n: int) -> Any:
        await self.client.update_item(
            TableName=self.table,
            Key={"id": {"S": self.key(n)}},
            UpdateExpression="ADD #c :one",
            ExpressionAttributeNames={"#c": "counter"},
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    async def teardown(self) -> None:
        try:
            await self.client.delete_table(TableName=self.table)
        except self.client.exceptions.ResourceNotFoundException:
            return
        await self.client.get_waiter("table_not_exists").wait(TableName=self.table)

    async def close(self) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(None, None, None)


class RawCosmos(Target):
    """azure-cosmos's async client: a container of its own partitioned by ``/id`` (the service
    indexes every path), ``read_item``, a parameterised ``SELECT TOP 10``, ``create_item``, and
    the increment as a read and an ``If-Match`` replace (what asyncdb sends for ``$inc``)."""

    impl = "raw azure-cosmos"

    def __init__(self, url: str, docs: int, token: str) -> None:
        super().__init__(docs, token)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        port = f":{parts.port}" if parts.port else ""
        self.endpoint = f"https://{parts.hostname}{port}"
        self.key_text = query.get("key", "")
        self.verify = query.get("verify", "true").lower() not in ("false", "0", "no")
        self.discovery = query.get("endpoint_discovery", "true").lower() not in ("false", "0", "no")
        self.database = parts.path.strip("/")
        self.client: Any = None
        self.container: Any = None

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        from azure.cosmos import PartitionKey
        from azure.cosmos.aio import CosmosClient

        self.client = CosmosClient(
            self.endpoint,
            credential=self.key_text,
            connection_verify=self.verify,
            enable_endpoint_discovery=self.discovery,
        )
        database = self.client.get_database_client(self.database)
        await self.teardown()
        self.container = await database.create_container(
            RAW_TABLE, partition_key=PartitionKey(path="/id")
        )
        for i in range(0, len(docs), 50):
            await asyncio.gather(*(self.container.create_item(d) for d in docs[i : i + 50]))

    async def read(self, n: int) -> Any:
        key = self.key(n)
        return await self.container.read_item(key, partition_key=key)

    async def query(self, n: int) -> Any:
        company, priority, status = self.query_args(n)
        items = self.container.query_items(
            "SELECT TOP 10 * FROM c WHERE c.company = @c AND c.priority >= @p AND c.status = @s",
            parameters=[
                {"name": "@c", "value": company},
                {"name": "@p", "value": priority},
                {"name": "@s", "value": status},
            ],
        )
        return [item async for item in items]

    async def insert(self, n: int) -> Any:
        await self.container.create_item(self.new_doc(n))

    async def update(self, n: int) -> Any:
        from azure.core import MatchConditions

        key = self.key(n)
        item = await self.container.read_item(key, partition_key=key)
        item["counter"] = item.get("counter", 0) + 1
        await self.container.replace_item(
            key, item, etag=item["_etag"], match_condition=MatchConditions.IfNotModified
        )

    async def teardown(self) -> None:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        with contextlib.suppress(CosmosResourceNotFoundError):
            await self.client.get_database_client(self.database).delete_container(RAW_TABLE)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class RawFirestore(Target):
    """google-cloud-firestore's AsyncClient: a collection of its own, ``document(id).get()``,
    three ``where`` filters with ``limit(10)``, ``create`` and ``update`` with
    ``Increment(1)`` (a server-side transform: one request, no read)."""

    impl = "raw google-cloud-firestore"

    def __init__(self, url: str, docs: int, token: str) -> None:
        super().__init__(docs, token)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.project = parts.netloc
        self.emulator = query.get("emulator_host") or os.environ.get("FIRESTORE_EMULATOR_HOST")
        self.database = query.get("database") or None
        self.client: Any = None
        self.coll: Any = None

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        from google.cloud.firestore import AsyncClient

        if self.emulator:
            from google.auth.credentials import AnonymousCredentials

            self.client = AsyncClient(
                project=self.project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                database=self.database,
            )
            self.client._emulator_host = self.emulator  # the driver reads only the environment
        else:
            self.client = AsyncClient(project=self.project, database=self.database)
        self.coll = self.client.collection(RAW_TABLE)
        await self.teardown()
        for i in range(0, len(docs), 500):
            batch = self.client.batch()
            for d in docs[i : i + 500]:
                batch.set(self.coll.document(d["id"]), d)
            await batch.commit()

    async def read(self, n: int) -> Any:
        snap = await self.coll.document(self.key(n)).get()
        return snap.to_dict() if snap.exists else None

    async def query(self, n: int) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        company, priority, status = self.query_args(n)
        q = (
            self.coll.where(filter=FieldFilter("company", "==", company))
            .where(filter=FieldFilter("status", "==", status))
            .where(filter=FieldFilter("priority", ">=", priority))
            .limit(10)
        )
        return [snap.to_dict() async for snap in q.stream()]

    async def insert(self, n: int) -> Any:
        doc = self.new_doc(n)
        await self.coll.document(doc["id"]).create(doc)

    async def update(self, n: int) -> Any:
        from google.cloud.firestore import Increment

        await self.coll.document(self.key(n)).update({"counter": Increment(1)})

    async def teardown(self) -> None:
        # Batched deletes of the collection's documents (recursive_delete's BulkWriter
        # throttles itself: a minute for a few hundred documents on the emulator).
        while snaps := [snap async for snap in self.coll.limit(500).stream()]:
            batch = self.client.batch()
            for snap in snaps:
                batch.delete(snap.reference)
            await batch.commit()

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()


class RawMemory(Target):
    """The floor of an in-process store: plain dicts in this process, no copies, no checks
    (a read returns the stored dict itself, an update adds 1 in place), and a (company ->
    documents) dict for the query. The ratio is what asyncdb's memory backend costs on top of
    Python dict work: parsing and checking the call, copying documents in and out (so a
    caller never shares the stored one), the query's plan and exact re-check."""

    impl = "raw dict"

    def __init__(self, docs: int, token: str) -> None:
        super().__init__(docs, token)
        self.rows: dict[str, dict[str, Any]] = {}
        self.by_company: dict[str, list[dict[str, Any]]] = {}

    async def setup(self, docs: list[dict[str, Any]]) -> None:
        for d in docs:
            self._put(dict(d))

    def _put(self, doc: dict[str, Any]) -> None:
        self.rows[doc["id"]] = doc
        self.by_company.setdefault(doc["company"], []).append(doc)

    async def read(self, n: int) -> Any:
        return self.rows.get(self.key(n))

    async def query(self, n: int) -> Any:
        company, priority, status = self.query_args(n)
        found = []
        for doc in self.by_company.get(company, ()):
            if doc["priority"] >= priority and doc["status"] == status:
                found.append(doc)
                if len(found) == 10:
                    break
        return found

    async def insert(self, n: int) -> Any:
        self._put(self.new_doc(n))

    async def update(self, n: int) -> Any:
        self.rows[self.key(n)]["counter"] += 1

    async def teardown(self) -> None:
        self.rows.clear()
        self.by_company.clear()


def raw_target(backend: str, url: str, docs: int, token: str, pool_size: int) -> Target | None:
    if backend == "sqlite":
        return RawSQLite(url, docs, token)
    if backend == "postgres":
        return RawPostgres(url, docs, token, pool_size)
    if backend == "mongo":
        return RawMongo(url, docs, token)
    if backend == "dynamodb":
        return RawDynamo(url, docs, token)
    if backend == "cosmos":
        return RawCosmos(url, docs, token)
    if backend == "firestore":
        return RawFirestore(url, docs, token)
    if backend == "memory":
        return RawMemory(docs, token)
    return None


# --- the command ------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrencies must be positive integers")
    return values


def _workloads(text: str) -> list[str]:
    names = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}"
        )
    return names


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="fixed workloads at fixed concurrencies, any URL")
    p.add_argument("url", help="database URL")
    p.add_argument(
        "--workload", type=_workloads, default=list(WORKLOADS), help="comma-separated workloads"
    )
    p.add_argument("--concurrency", type=_int_list, default=[1, 16, 64], help="e.g. 1,16,64")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--docs", type=int, default=2000, help="documents loaded first")
    p.add_argument("--raw", action="store_true", help="also run the raw driver side by side")
    p.add_argument("--plot", metavar="FILE.png", help="write a PNG plot")
    p.add_argument("--json", metavar="FILE.json", help="write the figures (default: plot.json)")
    p.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    add_output(p)


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_kb"] = int(line.split()[1])
                break
    except OSError:
        pass
    return info


def versions(backend: str, server: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"asyncdb": asyncdb.__version__, "server": server}
    for name in {DRIVERS.get(backend, ""), "orjson"} - {""}:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    token = f"{os.getpid()}-{time.time_ns() % 10**9}"
    rng = random.Random(42)
    docs = [bench_doc(i, rng) for i in range(args.docs)]
    pool_size = max(args.concurrency)
    async with asyncdb.connect(args.url) as db:
        targets: list[Target] = [AsyncDBTarget(db, args.docs, token)]
        note = None
        if args.raw:
            raw = raw_target(db.backend, args.url, args.docs, token, min(pool_size, 64))
            if raw is None:
                note = (
                    f"--raw: no raw-driver workload for {db.backend} (there are for "
                    f"{', '.join(RAW_BACKENDS)}); asyncdb alone was measured"
                )
                print(f"asyncdb bench: {note}", file=sys.stderr)
            else:
                targets.append(raw)
        server = await db._store.server_version()
        steps = len(targets) * len(args.workload) * len(args.concurrency)
        progress = Progress(steps, "bench")
        runs: list[Run] = []
        try:
            for target in targets:
                try:
                    await target.setup(docs)
                except asyncdb.AsyncDBError:
                    raise
                except Exception as exc:  # a raw driver's own error: said, not a traceback
                    raise CommandError(
                        f"setting up {target.impl} failed: {type(exc).__name__}: {exc}"
                    ) from exc
            for workload in args.workload:
                for concurrency in args.concurrency:
                    for target in targets:
                        run = await measure(
                            target.workload(workload),
                            concurrency=concurrency,
                            duration=args.duration,
                            warmup=min(0.5, args.duration / 5),
                            impl=target.impl,
                            workload=workload,
                        )
                        runs.append(run)
                        progress.step(
                            f"{workload} c{concurrency} {target.impl}: "
                            f"{run.ops_per_s:,.0f} ops/s, p99 {run.percentile(0.99):.2f} ms"
                        )
        finally:
            progress.close()
            for target in targets:  # every target closed, whatever failed
                try:
                    await target.teardown()
                except asyncdb.AsyncDBError as exc:
                    print(f"asyncdb bench: clean-up of {target.impl}: {exc}", file=sys.stderr)
                finally:
                    await target.close()
    return {
        "benchmark": "asyncdb bench",
        "url": safe_url(args.url),
        "backend": db.backend,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "documents": args.docs,
        "versions": versions(db.backend, server),
        "hardware": hardware(),
        "note": note,
        "results": [r.summary() for r in runs],
    }


def plot(report: dict[str, Any], path: str) -> None:
    """Latency percentiles (top) and throughput (bottom) by concurrency, one column per
    workload, asyncdb solid and the raw driver dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    impls = list(dict.fromkeys(r["impl"] for r in results))
    fig, axes = plt.subplots(2, len(workloads), figsize=(3.6 * len(workloads), 6.4), squeeze=False)
    colors = {"p50_ms": "tab:blue", "p95_ms": "tab:orange", "p99_ms": "tab:red"}
    for col, workload in enumerate(workloads):
        top, bottom = axes[0][col], axes[1][col]
        for i, impl in enumerate(impls):
            rows = sorted(
                (r for r in results if r["workload"] == workload and r["impl"] == impl),
                key=lambda r: r["concurrency"],
            )
            if not rows:
                continue
            xs = [r["concurrency"] for r in rows]
            style = "-" if i == 0 else "--"
            for metric, color in colors.items():
                top.plot(
                    xs,
                    [r[metric] for r in rows],
                    style,
                    color=color,
                    marker="o",
                    label=f"{impl} {metric[:3]}",
                )
            bottom.plot(
                xs, [r["ops_per_s"] for r in rows], style, marker="o", color="k", label=impl
            )
        top.set_title(workload)
        concurrencies = sorted({r["concurrency"] for r in results})
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
            ax.minorticks_off()
        top.set_yscale("log")
        top.set_ylabel("latency (ms)") if col == 0 else None
        bottom.set_ylabel("ops/s") if col == 0 else None
        bottom.set_xlabel("concurrency")
        top.grid(True, which="both", alpha=0.3)
        bottom.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=6)
    axes[1][0].legend(fontsize=7)
    v = report["versions"]
    fig.suptitle(
        f"asyncdb bench on {report['backend']} (server {v.get('server') or '?'}, "
        f"asyncdb {v['asyncdb']}, {report['duration_s']} s per point, "
        f"{report['hardware'].get('cpus')} CPUs)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.docs < 1:
        raise CommandError("--duration must be positive and --docs at least 1")
    if args.dry_run:
        print(
            f"dry run: would load {args.docs} documents into {COLLECTION!r} on "
            f"{safe_url(args.url)} and run {', '.join(args.workload)} at concurrency "
            f"{', '.join(map(str, args.concurrency))} for {args.duration} s each"
            + (" (and through the raw driver)" if args.raw else ""),
            file=sys.stderr,
        )
        return OK
    report = asyncio.run(bench(args))
    json_path = args.json or (str(Path(args.plot).with_suffix(".json")) if args.plot else None)
    if json_path:
        Path(json_path).write_text(dumps(report, indent=2) + "\n")
    if args.plot:
        plot(report, args.plot)
    rows = report["results"]
    emit_rows(
        args,
        rows,
        ["workload", "concurrency", "impl", "ops_per_s", "p50_ms", "p95_ms", "p99_ms", "ops"],
        title=f"asyncdb bench on {report['backend']} ({args.duration} s per point)",
        document=report,
    )
    return OK


__all__ = ["Comparison", "Run", "bench_doc", "interleaved", "measure"]
