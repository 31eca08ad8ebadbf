"""Hot-document contention: 200 concurrent ``$inc`` of one document on every backend, from one
connection (its writers take turns) and from several (their compare-and-set writes and
transactions race at the server). Every call either succeeds or raises
:class:`asyncdb.Contention` (nothing applied), so the final count equals the number of
successes; no call ends in a bare timeout or a transaction error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import asyncdb
from asyncdb import Contention

# writers per backend: 200, but 100 on DynamoDB Local and cosmosdb-server, whose 15-25 ms a
# request on a loaded 2-core machine makes 200 read-and-write turns on one document take about
# the call timeout
WRITERS = {
    "memory": 200,
    "sqlite": 200,
    "postgres": 200,
    "mongo": 200,
    "firestore": 200,
    "cosmos": 100,
    "dynamodb": 100,
}
TIMEOUT = 15.0  # the call timeout: every increment ends within it, applied or Contention


@pytest.fixture(params=list(WRITERS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    backend: str = request.param
    if backend == "memory":
        return backend, "memory://"
    if backend == "sqlite":
        return backend, f"sqlite:///{tmp_path / 'hot.db'}"
    found: str = request.getfixturevalue(f"{backend}_url")
    return backend, found


async def test_concurrent_increments_of_one_document_all_count_or_report_contention(
    target: tuple[str, str],
) -> None:
    backend, url = target
    writers = WRITERS[backend]
    async with asyncdb.connect(url, timeout=TIMEOUT) as db:
        hot = db.collection("hot")
        await hot.insert_one({"id": "k", "n": 0})

        async def increment() -> bool:
            try:
                result = await hot.update_one({"id": "k"}, {"$inc": {"n": 1}})
            except Contention:
                return False
            assert (result.matched_count, result.modified_count) == (1, 1)
            return True

        began = time.monotonic()
        outcomes = await asyncio.gather(*(increment() for _ in range(writers)))
        took = time.monotonic() - began
        stored = (await hot.find_one({"id": "k"}) or {})["n"]
        assert stored == sum(outcomes), (stored, sum(outcomes))
        assert took < TIMEOUT + 5.0
        # the store's documented throughput allows these here: all of them complete
        assert sum(outcomes) == writers, f"{writers - sum(outcomes)} ended in Contention"


CLIENTS = 3  # connections racing for one document: no turns between them


# every memory:// connection is a database of its own: nothing to race for
@pytest.mark.parametrize("target", [b for b in WRITERS if b != "memory"], indirect=True)
async def test_increments_racing_from_several_connections_count_or_report_contention(
    target: tuple[str, str],
) -> None:
    backend, url = target
    writers = WRITERS[backend] // 4
    dbs = [await asyncdb.connect(url, timeout=TIMEOUT) for _ in range(CLIENTS)]
    try:
        hot = [db.collection("hot") for db in dbs]
        await hot[0].insert_one({"id": "k", "n": 0})
        failures: list[Exception] = []

        async def increment(i: int) -> bool:
            try:
                await hot[i % CLIENTS].update_one({"id": "k"}, {"$inc": {"n": 1}})
            except Exception as exc:  # each one is checked below
                failures.append(exc)
                return False
            return True

        outcomes = await asyncio.gather(*(increment(i) for i in range(writers)))
        stored = (await hot[0].find_one({"id": "k"}) or {})["n"]
        assert stored == sum(outcomes), (stored, sum(outcomes))
        assert all(isinstance(exc, Contention) for exc in failures), failures[:3]
        assert sum(outcomes) >= writers // 2  # back-off lets most through
    finally:
        for db in dbs:
            await db.close()
