"""DESIGN §8 (scale): a copy from or to DynamoDB can be held to a number of read and write
capacity units per second (``--max-rcu`` / ``--max-wcu``), counted from the ConsumedCapacity
DynamoDB returns, so it does not starve the table's production traffic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import asyncdb

DOCS = [{"id": f"d{i:03d}", "pad": "x" * 1500} for i in range(40)]  # ~1.5 KB items


async def test_capacity_limits_pace_a_dynamodb_copy(
    tmp_path: Path, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dst_url = dynamodb_url.replace("table_prefix=", "table_prefix=cp")
    async with asyncdb.connect(dynamodb_url) as src:
        await src.collection("items").insert_many(DOCS)
    max_rcu, max_wcu = 8.0, 9.0
    report = await asyncdb.copy(
        dynamodb_url,
        dst_url,
        batch_size=10,
        workers=2,
        verify=False,
        max_rcu=max_rcu,
        max_wcu=max_wcu,
    )
    assert report.written == len(DOCS)
    assert report.capacity is not None
    read, write = report.capacity["read"], report.capacity["write"]
    assert read > 0 and write > 0
    # the buckets start with one second of units; the rest was waited for
    assert report.seconds >= 0.9 * max((read - max_rcu) / max_rcu, (write - max_wcu) / max_wcu)
    assert (await asyncdb.verify(dynamodb_url, dst_url)).equal


async def test_capacity_limits_need_a_dynamodb_side() -> None:
    with pytest.raises(asyncdb.ConfigurationError, match="DynamoDB"):
        await asyncdb.copy("memory://", "memory://", max_wcu=5)
    with pytest.raises(asyncdb.ConfigurationError, match="max_rcu"):
        await asyncdb.copy("memory://", "memory://", max_rcu=0)


async def _sampled(db: asyncdb.Database, samples: list[tuple[float, float]]) -> None:
    """The database's consumed read units over time, every 20 ms (until cancelled)."""
    while True:
        samples.append((time.monotonic(), float(db.metrics()["capacity"]["read"])))
        await asyncio.sleep(0.02)


def _worst_second(samples: list[tuple[float, float]]) -> float:
    """The most read units consumed within any one second of the samples."""
    worst, start = 0.0, 0
    for t, units in samples:
        while samples[start][0] < t - 1.0:
            start += 1
        worst = max(worst, units - samples[start][1])
    return worst


async def test_the_final_verify_keeps_to_the_read_capacity_limit(
    tmp_path: Path, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite -> DynamoDB: every DynamoDB read is the destination's (the final verify's), seen
    # in db.metrics(). Unpaced, the verify reads the table in well under a second.
    monkeypatch.chdir(tmp_path)
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    docs = [{"id": f"v{i:04d}", "pad": "y" * 400} for i in range(1500)]
    async with asyncdb.connect(src_url) as src:
        await src.collection("items").insert_many(docs)
    max_rcu = 40.0
    async with asyncdb.connect(dynamodb_url.replace("table_prefix=", "table_prefix=vp")) as dst:
        await asyncdb.copy(src_url, dst, verify=False)  # written unpaced; now measured alone
        await dst.collection("items").drop()
        samples: list[tuple[float, float]] = []
        sampler = asyncio.create_task(_sampled(dst, samples))
        try:
            report = await asyncdb.copy(src_url, dst, max_rcu=max_rcu)
        finally:
            sampler.cancel()
        samples.append((time.monotonic(), float(dst.metrics()["capacity"]["read"])))
        assert report.verify is not None and report.verify.equal
        read = samples[-1][1] - samples[0][1]
        assert read > 4 * max_rcu  # enough reads for the limit to matter
        # One second holds the bucket (one second of units), that second's refill, and the
        # answer that took the bucket below zero (a page of 200 items: at most 100 KB here).
        page = 200 * 0.5 / 4 * 2  # units of a consistent read of 200 items of 0.5 KB, x2
        assert _worst_second(samples) <= 2 * max_rcu + page
        assert report.seconds >= (read - max_rcu - page) / max_rcu

        # asyncdb.verify takes the same limit
        samples.clear()
        sampler = asyncio.create_task(_sampled(dst, samples))
        try:
            began = time.monotonic()
            result = await asyncdb.verify(src_url, dst, max_rcu=max_rcu)
            seconds = time.monotonic() - began
        finally:
            sampler.cancel()
        samples.append((time.monotonic(), float(dst.metrics()["capacity"]["read"])))
        assert result.equal
        read = samples[-1][1] - samples[0][1]
        assert _worst_second(samples) <= 2 * max_rcu + page
        assert seconds >= (read - max_rcu - page) / max_rcu
    with pytest.raises(asyncdb.ConfigurationError, match="DynamoDB"):
        await asyncdb.verify(src_url, src_url, max_rcu=5)
