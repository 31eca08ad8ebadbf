"""DESIGN §8 (scale): a copy from or to DynamoDB can be held to a number of read and write
capacity units per second (``--max-rcu`` / ``--max-wcu``), counted from the ConsumedCapacity
DynamoDB returns, so it does not starve the table's production traffic."""

from __future__ import annotations

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
