"""OpenTelemetry spans and metrics of ``connect(url, tracing=True)``, with the SDK's in-memory
exporter, on every backend: names and attributes of the stable database conventions, the
operation histogram, child spans for cache lookups and retries, trace ids in audit events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from resilience.tcp_proxy import TcpProxy
from servers.base import ThrowawayServer

import asyncdb
from asyncdb.observe.tracing import SYSTEM_NAMES

from .conftest import Telemetry


async def test_spans_follow_the_database_conventions_on_every_backend(
    backend_url: str, backend_name: str, telemetry: Telemetry
) -> None:
    events: list[dict[str, Any]] = []
    async with asyncdb.connect(backend_url, tracing=True, audit=events.append) as db:
        people = db.collection("people", allow_scan=True)
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("request") as parent:
            await people.insert_one({"id": "p1", "city": "Oslo", "age": 31})
            assert (await people.find_one({"id": "p1"}))["age"] == 31
            assert len(await people.find({"city": "Oslo"}).to_list()) == 1
            await people.update_one({"id": "p1"}, {"$inc": {"age": 1}})
            assert await people.count_documents({"city": "Oslo"}) == 1
            assert await people.delete_one({"id": "p1"}) == 1
            with pytest.raises(asyncdb.DuplicateKey):
                await people.insert_many([{"id": "d"}, {"id": "d"}])
    system = SYSTEM_NAMES[backend_name]
    spans = {s.name: s for s in telemetry.spans.get_finished_spans() if s.name != "request"}
    expected = ["insert_one", "find_one", "find", "update_one", "count_documents", "delete_one"]
    for op in [*expected, "insert_many"]:
        span = spans[f"{op} people"]
        attrs = dict(span.attributes or {})
        assert span.kind is trace.SpanKind.CLIENT
        assert attrs["db.system.name"] == system
        assert attrs["db.operation.name"] == op
        assert attrs["db.collection.name"] == "people"
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    for op in ("find", "count_documents", "find_one"):
        text = spans[f"{op} people"].attributes["db.query.text"]
        assert "Oslo" not in text and "p1" not in text
    assert spans["find people"].attributes["db.response.returned_rows"] == 1
    failed = spans["insert_many people"]
    assert failed.attributes["error.type"] == "DuplicateKey"
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert spans["insert_one people"].status.status_code is trace.StatusCode.UNSET
    # The operation histogram, per operation, with the same attributes (and error.type).
    points = [
        p
        for p in telemetry.metric_points("db.client.operation.duration")
        if p["attributes"].get("db.system.name") == system
    ]
    ops = {p["attributes"]["db.operation.name"] for p in points}
    assert set(expected) <= ops
    assert any(p["attributes"].get("error.type") == "DuplicateKey" for p in points)
    # Audit events carry the trace id of the request and the span id of their operation.
    trace_id = format(parent.get_span_context().trace_id, "032x")
    assert {e["trace_id"] for e in events} == {trace_id}
    insert = next(e for e in events if e["op"] == "insert_one")
    assert insert["span_id"] == format(
        spans["insert_one people"].get_span_context().span_id, "016x"
    )


async def test_a_cache_lookup_is_a_child_span_that_says_hit_or_miss(
    tmp_path: Any, redis_url: str, telemetry: Telemetry
) -> None:
    url = f"sqlite:///{tmp_path / 'cached.db'}"
    async with asyncdb.connect(url, cache=redis_url, tracing=True) as db:
        items = db.collection("items")
        await items.insert_one({"id": "a", "n": 1})
        for _ in range(2):
            assert await items.find_one({"id": "a"}) == {"id": "a", "n": 1}
        stats = db.metrics()["collections"]["items"]["find_one"]
    lookups = [s for s in telemetry.spans.get_finished_spans() if s.name == "cache find_one"]
    assert [s.attributes["asyncdb.cache.hit"] for s in lookups] == [False, True]
    reads = [s for s in telemetry.spans.get_finished_spans() if s.name == "find_one items"]
    assert {s.parent.span_id for s in lookups} == {r.get_span_context().span_id for r in reads}
    assert (stats["cache_hits"], stats["cache_misses"]) == (1, 1)
    assert (stats["docs_read"], stats["docs_returned"]) == (1, 2)


async def test_a_retried_read_has_a_retry_span_and_pool_metrics_are_exported(
    postgres_server: ThrowawayServer, telemetry: Telemetry
) -> None:
    proxy = await TcpProxy(postgres_server.port).start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres?min_size=0&max_size=4"
    try:
        async with asyncdb.connect(url, tracing=True, timeout=10) as db:
            items = db.collection("traced_retries")
            await items.delete_many({}, allow_scan=True)
            await items.insert_many([{"id": str(i), "n": i} for i in range(10)])
            proxy.latency = 0.5

            async def cut_soon() -> None:
                await asyncio.sleep(0.2)
                proxy.latency = 0.0
                proxy.cut()

            cutter = asyncio.create_task(cut_soon())
            docs = await items.find({}, allow_scan=True).to_list()
            await cutter
            assert len(docs) == 10
            pool = db.metrics()["pool"]
            states = {
                p["attributes"].get("db.client.connection.state")
                for p in telemetry.metric_points("db.client.connection.count")
            }
            await items.delete_many({}, allow_scan=True)
    finally:
        await proxy.stop()
    spans = telemetry.spans.get_finished_spans()
    find = next(s for s in spans if s.name == "find traced_retries")
    retries = [s for s in spans if s.name == "retry find"]
    assert retries and all(r.parent.span_id == find.get_span_context().span_id for r in retries)
    assert retries[0].attributes["asyncdb.attempt"] == 2
    assert pool is not None and pool["max_size"] == 4 and pool["size"] >= 1
    assert {"idle", "used"} <= states
