"""The key ranges a copy plans over an asyncdb collection: disjoint, covering every key, of
about equal size, found in one key-sorted read of the keys (constant memory: a sample of at
most PLAN_SAMPLE keys whose stride doubles); on a paged store (SQLite), found by its count and
key-sorted skip reads, in shares of exactly equal size."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import asyncdb
from asyncdb.movement.sources import PLAN_SAMPLE, CollectionSource

WHEN = datetime(2025, 3, 14, tzinfo=UTC)


STORES = ["memory", "sqlite"]  # the sampled planner; the paged store's skip planner


async def plan(
    docs: list[dict[str, Any]], n: int, store: str = "memory"
) -> tuple[list[dict[str, Any]], list[int]]:
    """The parts of ``n`` planned over ``docs``, and how many documents each part holds."""
    url = "memory://" if store == "memory" else "sqlite:///:memory:"
    async with asyncdb.connect(url) as db:
        coll = db.collection("events", allow_scan=True)
        if docs:
            await coll.insert_many(docs)
        source = CollectionSource(coll, store)
        parts = await source.parts(n)
        sizes = [len([d async for d in source.documents(p)]) for p in parts]
    return parts, sizes


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("total", [0, 1, 3, 1000, 5000])
async def test_parts_cover_every_key_once_in_about_equal_shares(total: int, store: str) -> None:
    parts, sizes = await plan([{"id": f"k{i:05d}"} for i in range(total)], 4, store)
    assert sum(sizes) == total  # disjoint and covering
    assert parts[0]["lo"] is None and parts[-1]["hi"] is None
    assert all(a["hi"] == b["lo"] for a, b in itertools.pairwise(parts))
    assert all(p["plain"] for p in parts)
    if total >= 1000:
        stride = 1
        while -(-total // stride) > PLAN_SAMPLE + 1:
            stride *= 2  # the sample's stride once total keys were seen
        assert len(parts) == 4
        assert all(abs(size - total / 4) <= stride for size in sizes), sizes
        if store == "sqlite":  # split at exactly total * i // 4
            assert sizes == [total // 4] * 4, sizes


@pytest.mark.parametrize("store", STORES)
async def test_mixed_key_types_plan_plain_false_and_still_cover_every_key(store: str) -> None:
    docs: list[dict[str, Any]] = [{"id": i} for i in range(30)]
    docs += [{"id": f"s{i:02d}"} for i in range(30)]
    docs += [{"id": WHEN + timedelta(seconds=i)} for i in range(30)]
    parts, sizes = await plan(docs, 3, store)
    assert sum(sizes) == 90 and len(parts) == 3
    assert not any(p["plain"] for p in parts)
    if store == "sqlite":  # one key type per part: the split points are the first of each
        assert [p["lo"] for p in parts[1:]] == [("s00",), (WHEN,)]
    one_type, _ = await plan([{"id": i} for i in range(30)], 3, store)
    assert all(p["plain"] for p in one_type)
