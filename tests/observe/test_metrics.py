"""``db.metrics()`` and the slow-operation warning."""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

import asyncdb
from asyncdb.observe.metrics import BUCKETS_MS, OperationStats


async def test_metrics_count_operations_errors_latency_and_documents() -> None:
    async with asyncdb.connect("memory://") as db:
        items = db.collection("items", allow_scan=True)
        await items.insert_many([{"id": f"i{n}", "n": n} for n in range(10)])
        for _ in range(3):
            assert await items.find_one({"id": "i1"}) is not None
        assert len(await items.find({"n": {"$gte": 8}}).to_list()) == 2
        # a bounded find collected by to_list is read in one call: observed the same way
        assert len(await items.find({"n": {"$lt": 3}}, limit=5).to_list()) == 3
        with contextlib.suppress(asyncdb.DuplicateKey):
            await items.insert_one({"id": "i1"})
        snapshot = db.metrics()
    ops = snapshot["collections"]["items"]
    assert set(ops) == {"insert_many", "find_one", "find", "insert_one"}
    point = ops["find_one"]
    assert (point["count"], point["errors"]) == (3, 0)
    assert sum(point["latency_ms"]["counts"]) == 3
    assert 0 < point["latency_ms"]["p50"] <= point["latency_ms"]["p99"]
    assert (point["docs_read"], point["docs_returned"]) == (3, 3)
    # The memory store scans and re-checks in process: 10 read for 2 returned, then 10 for 3.
    assert ops["find"]["count"] == 2
    assert (ops["find"]["docs_read"], ops["find"]["docs_returned"]) == (20, 5)
    assert (ops["insert_one"]["count"], ops["insert_one"]["errors"]) == (1, 1)
    assert snapshot["pool"] is None and snapshot["audit"] is None


async def test_point_reads_are_all_counted_across_batches_and_snapshots(tmp_path: Path) -> None:
    """Point reads are counted in batches: every read shows in each snapshot, found or not,
    however many come between two snapshots."""
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'm.db'}") as db:
        items = db.collection("items")
        await items.insert_many([{"id": f"i{n}"} for n in range(10)])
        for n in range(1300):  # more than one batch (PENDING_MAX)
            await items.find_one({"id": f"i{n % 13}"})  # i10..i12 do not exist
        first = db.metrics()["collections"]["items"]["find_one"]
        await items.find_one({"id": "i0"})
        second = db.metrics()["collections"]["items"]["find_one"]
    assert first["count"] == 1300 == sum(first["latency_ms"]["counts"])
    assert first["docs_read"] == first["docs_returned"] == 1000
    assert first["latency_ms"]["max"] >= first["latency_ms"]["mean"] > 0
    assert second["count"] == 1301 and second["docs_returned"] == 1001


async def test_metrics_can_be_turned_off() -> None:
    async with asyncdb.connect("memory://", metrics=False) as db:
        await db.collection("items").insert_one({"id": "a"})
        assert db.metrics()["collections"] == {}


async def test_a_slow_operation_is_a_structured_warning_with_shape_and_access_path(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    with capture_logs() as logs:
        async with asyncdb.connect(url, slow_ms=0) as db:
            items = db.collection("items", indexes=["company"])
            await items.insert_one({"id": "a", "company": "acme", "p": 5})
            await items.find({"company": "acme", "p": {"$gt": 3}}).to_list()
            slow = db.metrics()["collections"]["items"]["find"]["slow"]
        async with asyncdb.connect(url, slow_ms=None) as quiet:
            await quiet.collection("items", indexes=["company"]).find({"company": "x"}).to_list()
    lines = [line for line in logs if line["event"] == "asyncdb.slow_operation"]
    find = next(line for line in lines if line["op"] == "find")
    assert find["log_level"] == "warning" and find["collection"] == "items"
    # A cursor's shape is that of its parsed filter (the normal form: equivalent filters agree).
    assert find["query"] == '{"$and": [{"company": {"$eq": ?}}, {"p": {"$gt": ?}}]}'
    assert find["access_path"] == "index:ix_company" and find["backend"] == "sqlite"
    assert "acme" not in str(lines)
    assert slow == 1
    assert sum(line["op"] == "find" for line in lines) == 1  # none from slow_ms=None


async def test_pool_size_use_and_waits_on_postgres(postgres_url: str) -> None:
    async with asyncdb.connect(postgres_url, min_size=1, max_size=2) as db:
        items = db.collection("items")
        await items.insert_one({"id": "a"})
        await asyncio.gather(*(items.find_one({"id": "a"}) for _ in range(20)))
        pool = db.metrics()["pool"]
    assert pool["max_size"] == 2 and 1 <= pool["size"] <= 2
    assert pool["in_use"] == pool["size"] - pool["idle"]
    assert pool["waits"] > 0  # 20 reads at once on 2 connections


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.floats(min_value=0, max_value=20.0),
                st.sampled_from([b / 1000 for b in BUCKETS_MS] + [0.0, 1e-9, 11.0]),
            ),
            st.booleans(),
        ),
        max_size=40,
    ),
    st.integers(0, 40),
)
def test_folded_point_reads_count_as_reads_recorded_one_by_one(
    reads: list[tuple[float, bool]], before: int
) -> None:
    """``fold`` (the point reads' batch) counts exactly what recording each read would:
    count, buckets (a read on a bound falls in that bound's bucket), max, mean, documents."""
    folded, one_by_one = OperationStats(), OperationStats()
    for n, (seconds, found) in enumerate(reads):
        one_by_one.record(seconds, False)
        if n < before:  # counted before the batch
            folded.record(seconds, False)
        else:
            (folded.pending if found else folded.pending_missed).append(seconds)
            one_by_one.docs_read += found
            one_by_one.docs_returned += found
    a, b = folded.snapshot(), one_by_one.snapshot()
    assert a["latency_ms"]["counts"] == b["latency_ms"]["counts"]
    assert (a["count"], a["docs_read"], a["docs_returned"]) == (
        b["count"],
        b["docs_read"],
        b["docs_returned"],
    )
    assert a["latency_ms"]["max"] == b["latency_ms"]["max"]
    assert math.isclose(a["latency_ms"]["mean"], b["latency_ms"]["mean"], abs_tol=1e-9)
    assert not folded.pending and not folded.pending_missed
