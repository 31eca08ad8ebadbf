"""No literal leaks: every operation runs on every backend with seeded values in documents,
filters and updates, audited (reads too) into a collection and a callable, traced, timed as
slow; then every output (audit events as stored, spans with their attributes and events,
metric data points, asyncdb's own log lines, ``db.metrics()``) is searched for the seeds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

import asyncdb

from .conftest import Telemetry

SEEDS = {
    "email": "seed.ana-3f9a@pii.example",
    "ssn": "SSN-987-65-4321",
    "note": "Zyxwvut confidential note",
    "ssn2": "SSN-111-22-3333",
    "note2": "Qwerty second secret",
    "score": 98765.4321,
}


def seeded(i: int) -> dict[str, Any]:
    return {
        "id": f"k{i}",
        "email": SEEDS["email"] if i == 1 else f"user{i}@example.org",
        "ssn": SEEDS["ssn"],
        "note": SEEDS["note"],
        "score": SEEDS["score"],
        "tags": [SEEDS["note"], "x"],
    }


def _span_dump(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "status": span.status.description,
    }


async def test_no_seeded_value_reaches_any_output_on_every_backend(
    backend_url: str, telemetry: Telemetry
) -> None:
    with capture_logs() as logs:
        async with asyncdb.connect(
            backend_url, audit="audit_log", audit_reads=True, tracing=True, slow_ms=0
        ) as db:
            people = db.collection("people", allow_scan=True)
            with asyncdb.audit_context(actor="u42", tenant="acme"):
                await people.insert_one(seeded(1))
                await people.insert_many([seeded(2), seeded(3)])
                assert (await people.find_one({"id": "k1"}))["email"] == SEEDS["email"]
                assert await people.find_one({"email": SEEDS["email"]}) is not None
                found = await people.find({"email": {"$in": [SEEDS["email"], "nobody"]}}).to_list()
                assert len(found) == 1
                assert await people.count_documents({"note": {"$regex": "^Zyxwvut"}}) == 3
                assert await people.count_documents({"score": {"$gte": SEEDS["score"]}}) == 3
                if "keyset_pagination" in db.capabilities:
                    page = await people.find_page({"ssn": SEEDS["ssn"]}, limit=2)
                    assert len(page.items) == 2
                await people.update_one(
                    {"email": SEEDS["email"]}, {"$set": {"note": SEEDS["note2"]}}
                )
                await people.update_many({"ssn": SEEDS["ssn"]}, {"$push": {"tags": SEEDS["note2"]}})
                await people.replace_one({"id": "k2"}, {**seeded(2), "note": SEEDS["note2"]})
                doc = await people.find_one_and_update(
                    {"ssn": SEEDS["ssn"], "id": "k3"}, {"$set": {"ssn": SEEDS["ssn2"]}}
                )
                assert doc is not None and doc["ssn"] == SEEDS["ssn2"]
                with pytest.raises(asyncdb.DuplicateKey):
                    await people.insert_one({**seeded(1), "note": SEEDS["note2"]})
                with pytest.raises(asyncdb.QueryError):
                    await people.find_one({"email": {"$bogus": SEEDS["email"]}})
                assert await people.delete_one({"email": SEEDS["email"]}) == 1
                assert (
                    await people.delete_many({"ssn": {"$in": [SEEDS["ssn"], SEEDS["ssn2"]]}}) == 2
                )
            metrics = db.metrics()
            events = await db.collection("audit_log").find({}, allow_scan=True).to_list()
    spans = [_span_dump(s) for s in telemetry.spans.get_finished_spans()]
    points = telemetry.metric_points("db.client.operation.duration")
    outputs = {
        "audit events as stored": events,
        "spans": spans,
        "metric points": points,
        "log lines": logs,
        "db.metrics()": metrics,
    }
    # Each output is really there (the search below can fail): events for every operation,
    # failed ones included, spans with query text, slow-operation lines with query shapes.
    assert len(events) >= 14 and all(e["actor"] == "u42" for e in events)
    assert {"DuplicateKey", "QueryError"} <= {e.get("error") for e in events}
    assert any("db.query.text" in s["attributes"] for s in spans)
    slow = [line for line in logs if line["event"] == "asyncdb.slow_operation"]
    assert any(line["query"] == '{"email": {"$in": ?}}' for line in slow)
    text = {name: json.dumps(value, default=str) for name, value in outputs.items()}
    for name, dumped in text.items():
        for seed in SEEDS.values():
            assert str(seed) not in dumped, f"{seed!r} leaked into {name}"


async def test_the_audit_collection_holds_no_seeded_value(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'audited.db'}"
    async with asyncdb.connect(url, audit="audit_log", audit_reads=True) as db:
        people = db.collection("people", allow_scan=True)
        await people.insert_one(seeded(1))
        await people.update_one({"email": SEEDS["email"]}, {"$set": {"note": SEEDS["note2"]}})
        await people.find({"score": SEEDS["score"]}).to_list()
    async with asyncdb.connect(url) as db:
        stored = await db.collection("audit_log", allow_scan=True).find({}).to_list()
    assert [e["op"] for e in stored] == ["insert_one", "update_one", "find"]
    dumped = json.dumps(stored, default=str)
    for seed in SEEDS.values():
        assert str(seed) not in dumped
