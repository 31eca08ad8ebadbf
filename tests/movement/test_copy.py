"""DESIGN §8: copy any backend to any backend, with the spec, through the bulk path; verify
finds every missing, extra and different document; errors stop or go to the dead-letter file."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import asyncdb
import asyncdb.movement.verifier as verify_module

WHEN = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def alerts(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"a{i:05d}",
            "company": f"c{i % 7}",
            "priority": i % 100 if i % 3 else float(i % 100),
            "amount": Decimal(f"{i}.10"),
            "created_at": WHEN + timedelta(minutes=i),
            "blob": bytes([i % 256]),
            "tags": ["x", {"n": i}],
            "expires_at": WHEN + timedelta(days=3650),
        }
        for i in range(n)
    ]


SPEC = {
    "key": "id",
    "indexes": [("company", ("created_at", -1)), "priority"],
    "ttl": "expires_at",
}


async def test_sqlite_to_postgres_copies_documents_and_spec(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    docs = alerts(1200)
    async with asyncdb.connect(src_url) as src:
        await src.collection("alerts", **SPEC).insert_many(docs)
        await src.collection("users", key=("org", "uid")).insert_many(
            [{"org": f"o{i % 3}", "uid": i, "name": f"u{i}"} for i in range(50)]
        )
    report = await asyncdb.copy(src_url, postgres_url, batch_size=100, workers=3)
    assert (report.read, report.written, report.failed) == (1250, 1250, 0)
    assert report.verify is not None and report.verify.equal
    async with asyncdb.connect(postgres_url) as dst:
        specs = {s.name: s for s in await dst.list_collections()}
        assert specs["alerts"].key == ("id",)
        assert specs["alerts"].ttl == "expires_at"
        assert [i.fields for i in specs["alerts"].indexes] == [
            (("company", 1), ("created_at", -1)),
            (("priority", 1),),
        ]
        assert specs["users"].key == ("org", "uid")
        got = (
            await dst.collection("alerts", **SPEC)
            .find({}, sort=[("id", 1)], allow_scan=True)
            .to_list()
        )
        assert got == docs
        assert [type(d["priority"]) for d in got] == [type(d["priority"]) for d in docs]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".asyncdb-copy-")]  # removed


async def test_verify_lists_missing_extra_and_different_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verify_module, "LEAF", 5)  # force the range refinement passes
    async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
        docs = [{"id": i, "v": i} for i in range(3000)]
        await a.collection("t").insert_many(docs)
        await b.collection("t").insert_many(docs)
        t = b.collection("t")
        await t.delete_one({"id": 17})
        await t.insert_one({"id": 5000, "v": 1})
        await t.update_one({"id": 42}, {"$set": {"v": 42.0}})  # same value, other type
        await t.update_one({"id": 43}, {"$rename": {"v": "w"}})
        report = await asyncdb.verify(a, b)
    assert not report.equal
    assert report.missing == {"t": [17]}
    assert report.extra == {"t": [5000]}
    assert report.different == {"t": [42, 43]}
    c = report.collections["t"]
    assert (c.source_count, c.destination_count) == (3000, 3000)
    assert c.passes >= 3


async def test_verify_notices_field_order() -> None:
    async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
        await a.collection("t").insert_one({"id": "x", "a": 1, "b": 2})
        await b.collection("t").insert_one({"id": "x", "b": 2, "a": 1})
        report = await asyncdb.verify(a, b)
    assert report.different == {"t": ["x"]}


def explode_on_a2(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["id"] == "a2":
        raise ValueError("cannot convert a2")
    if doc["id"] == "a3":
        return None  # dropped on purpose
    if doc["id"] == "a4":
        return {**doc, "when": datetime(2025, 1, 1)}  # naive: the destination refuses it
    return {**doc, "copied": True}


async def test_on_error_continue_writes_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    letters = tmp_path / "dead.jsonl"
    async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
        await a.collection("t").insert_many([{"id": f"a{i}", "n": i} for i in range(10)])
        report = await asyncdb.copy(
            a,
            b,
            transform=f"{__name__}:explode_on_a2",
            on_error="continue",
            dead_letter=letters,
            batch_size=4,
        )
        stored = await b.collection("t").find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert (report.read, report.written, report.skipped, report.failed) == (10, 7, 1, 2)
    assert [d["id"] for d in stored] == ["a0", "a1", "a5", "a6", "a7", "a8", "a9"]
    assert all(d["copied"] for d in stored)
    lines = [json.loads(line) for line in letters.read_text().splitlines()]
    assert [(x["key"], x["error"].split(":")[0]) for x in lines] == [
        ("a2", "ValueError"),
        ("a4", "QueryError"),
    ]
    assert lines[0]["document"] == {"id": "a2", "n": 2}
    assert report.verify is not None and report.verify.equal is False  # a2, a4 are missing
    assert report.verify.missing == {"t": ["a2", "a4"]}


async def test_on_error_stop_names_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
        await a.collection("t").insert_many([{"id": f"a{i}", "n": i} for i in range(10)])
        with pytest.raises(asyncdb.CopyError) as info:
            await asyncdb.copy(a, b, transform=explode_on_a2, batch_size=4)
    assert info.value.key == "a2"
    assert isinstance(info.value.cause, ValueError)


async def test_bad_arguments_fail_before_any_io() -> None:
    with pytest.raises(asyncdb.ConfigurationError, match="dead_letter"):
        await asyncdb.copy("memory://", "memory://", on_error="continue")
    with pytest.raises(asyncdb.ConfigurationError, match="segment"):
        await asyncdb.copy("memory://", "memory://", segment="3/2")
    with pytest.raises(asyncdb.ConfigurationError, match="module:function"):
        await asyncdb.copy("memory://", "memory://", transform="nocolon")
    async with asyncdb.connect("memory://") as a:
        await a.collection("t").insert_one({"id": "x"})
        with pytest.raises(asyncdb.ConfigurationError, match="in the catalog"):
            await asyncdb.copy(a, "memory://", key="other")


async def test_key_ranges_hold_mixed_key_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    keys: list[Any] = [*range(-5, 40), *(f"s{i:02d}" for i in range(40))]
    keys += [WHEN + timedelta(hours=i) for i in range(40)]
    docs = [{"k": k, "i": i} for i, k in enumerate(keys)]
    async with asyncdb.connect("memory://") as a:
        await a.collection("mixed", key="k").insert_many(docs)
        dst = f"sqlite:///{tmp_path / 'd.db'}"
        report = await asyncdb.copy(a, dst, workers=5, batch_size=7)
    assert report.written == len(docs)
    assert report.verify is not None and report.verify.equal
    async with asyncdb.connect(dst) as b:
        got = (
            await b.collection("mixed", key="k")
            .find({}, sort=[("k", 1)], allow_scan=True)
            .to_list()
        )
    assert got == docs  # BSON order: numbers, strings, dates; none lost at a range edge


class Crash(Exception):
    pass


def crash_after(n: int) -> Any:
    seen = [0]

    def fn(doc: dict[str, Any]) -> dict[str, Any]:
        seen[0] += 1
        if seen[0] > n:
            raise Crash("stop here")
        return doc

    return fn


async def _crash_then_resume(src: str, docs: list[dict[str, Any]]) -> None:
    async with asyncdb.connect("memory://") as dst:
        with pytest.raises(asyncdb.CopyError):
            await asyncdb.copy(
                src, dst, ["runs"], batch_size=10, workers=2, transform=crash_after(50)
            )
        partial = await dst.collection("runs").count_documents({}, allow_scan=True)
        assert 0 < partial < len(docs)
        report = await asyncdb.copy(src, dst, ["runs"], batch_size=10, workers=2, resume=True)
        assert report.resumed and report.read < len(docs)
        assert report.verify is not None and report.verify.equal
        got = await dst.collection("runs").find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert got == sorted(docs, key=lambda d: d["id"])


async def test_resume_continues_from_scan_segment_positions(
    dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    docs = [{"id": f"r{i:03d}", "n": i} for i in range(120)]
    async with asyncdb.connect(dynamodb_url) as db:
        await db.collection("runs").insert_many(docs)
    await _crash_then_resume(dynamodb_url, docs)  # LastEvaluatedKey survives the checkpoint


async def test_resume_continues_from_foreign_mongo_positions(
    mongo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bson import ObjectId
    from pymongo import AsyncMongoClient

    monkeypatch.chdir(tmp_path)
    client: Any = AsyncMongoClient(mongo_url)
    oids = [ObjectId() for _ in range(120)]
    await client.get_default_database().runs.insert_many(
        [{"_id": o, "n": i} for i, o in enumerate(oids)]
    )
    await client.close()
    await _crash_then_resume(mongo_url, [{"id": str(o), "n": i} for i, o in enumerate(oids)])
