"""Hot-document contention: 200 concurrent ``$inc`` of one document on every backend. Every
call either succeeds or raises :class:`asyncdb.Contention` (nothing applied), so the final count
equals the number of successes; no call ends in a bare timeout or a transaction error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import asyncdb
from asyncdb import Contention

# writers per backend: 200, but 100 on DynamoDB Local, whose ~15 ms per request on a loaded
# 2-core machine makes 200 read-and-write turns on one item take about the call timeout
WRITERS = {
    "memory": 200,
    "sqlite": 200,
    "postgres": 200,
    "mongo": 200,
    "firestore": 200,
    "cosmos": 200,
    "dynamodb": 100,
}
TIMEOUT = 10.0  # the call timeout: every increment ends within it, applied or Contention


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
