"""DESIGN §8: foreign sources (a MongoDB database written by raw pymongo, an existing SQL table,
a DynamoDB table of native items) and DynamoDB's parallel scan shared by ``segment``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import asyncdb


async def test_foreign_mongo_database_written_by_pymongo(
    mongo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bson import Binary, Decimal128, Int64, ObjectId, Timestamp
    from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

    monkeypatch.chdir(tmp_path)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    raw = client.get_default_database()
    oids = [ObjectId() for _ in range(30)]
    await raw.alerts.insert_many(
        [
            {
                "_id": oid,
                "company": f"c{i % 3}",
                "n": Int64(i),
                "amount": Decimal128(f"{i}.50"),
                "at": datetime(2024, 5, 1, 12, i),  # naive, as MongoDB returns UTC
                "raw": Binary(b"\x00\x01"),
                "nested": {"owner": oids[0], "list": [Int64(1), 2.5]},
            }
            for i, oid in enumerate(oids)
        ]
    )
    await raw.alerts.insert_one({"_id": "bad", "seen": Timestamp(1, 1)})
    await raw.alerts.create_index([("company", ASCENDING), ("at", DESCENDING)])
    await client.close()

    dst = f"sqlite:///{tmp_path / 'dst.db'}"
    letters = tmp_path / "dead.jsonl"
    report = await asyncdb.copy(
        mongo_url, dst, on_error="continue", dead_letter=letters, batch_size=7
    )
    assert (report.read, report.written, report.failed) == (31, 30, 1)
    assert report.verify is not None and report.verify.equal
    dead = [json.loads(line) for line in letters.read_text().splitlines()]
    assert dead[0]["key"] == "bad" and "seen" in dead[0]["error"]
    assert "Timestamp" in dead[0]["error"]
    async with asyncdb.connect(dst) as db:
        (spec,) = await db.list_collections()
        assert spec.key == ("id",)
        assert [i.fields for i in spec.indexes] == [(("company", 1), ("at", -1))]
        alerts = db.collection("alerts", indexes=spec.indexes)
        first = await alerts.find_one({"id": str(oids[3])})
    assert first == {
        "id": str(oids[3]),
        "company": "c0",
        "n": 3,
        "amount": Decimal("3.50"),
        "at": datetime(2024, 5, 1, 12, 3, tzinfo=UTC),
        "raw": b"\x00\x01",
        "nested": {"owner": str(oids[0]), "list": [1, 2.5]},
    }


async def test_existing_sql_table_is_reflected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "legacy.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (uid INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT)")
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, ?)",
            [(i, f"u{i}", None if i % 4 else i) for i in range(1, 41)],
        )
    async with asyncdb.connect("memory://") as dst:
        report = await asyncdb.copy(f"sqlite:///{path}", dst, ["users"], batch_size=8, workers=2)
        assert report.written == 40 and report.verify is not None and report.verify.equal
        users = dst.collection("users", key="uid")
        assert await users.find_one({"uid": 4}) == {"uid": 4, "name": "u4", "age": 4}
        assert await users.find_one({"uid": 5}) == {"uid": 5, "name": "u5"}  # NULL: missing


def refuse_m005(doc: dict[str, Any]) -> dict[str, Any]:
    if doc.get("id") == "m005":
        raise ValueError("refused")
    return doc


async def test_native_dynamodb_items_and_parallel_scan_segments(
    dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncdb.movement.foreign import _dynamo_client

    monkeypatch.chdir(tmp_path)
    async with asyncdb.connect(dynamodb_url) as src:
        cm, client, prefix = await _dynamo_client(src)
        try:
            await client.create_table(
                TableName=prefix + "devices",
                KeySchema=[{"AttributeName": "serial", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "serial", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            for i in range(12):
                await client.put_item(
                    TableName=prefix + "devices",
                    Item={
                        "serial": {"S": f"s{i:02d}"},
                        "watts": {"N": str(i * 10)},
                        "ratio": {"N": "0.25"},
                        "labels": {"SS": ["b", "a"]},
                        "blob": {"B": b"\x07"},
                        "meta": {"M": {"ok": {"BOOL": True}, "none": {"NULL": True}}},
                    },
                )
        finally:
            await cm.__aexit__(None, None, None)
        await src.collection("metrics", indexes=["host"]).insert_many(
            [{"id": f"m{i:03d}", "host": f"h{i % 4}", "v": i / 2} for i in range(90)]
        )
    async with asyncdb.connect("memory://") as dst:
        await asyncdb.copy(dynamodb_url, dst, ["devices"], key="serial", workers=2)
        devices = dst.collection("devices", key="serial", allow_scan=True)
        assert await devices.find_one({"serial": "s03"}) == {
            "serial": "s03",
            "watts": 30,
            "ratio": Decimal("0.25"),
            "labels": ["a", "b"],
            "blob": b"\x07",
            "meta": {"ok": True, "none": None},
        }
        halves = [
            await asyncdb.copy(
                dynamodb_url,
                dst,
                ["metrics"],
                segment=f"{i}/2",
                workers=2,
                transform=refuse_m005,
                on_error="continue",
                dead_letter=tmp_path / "dead.jsonl",
            )
            for i in range(2)
        ]
        assert [h.read > 0 for h in halves] == [True, True]
        assert sum(h.read for h in halves) == 90
        assert sum(h.written for h in halves) == 89
        # each share verified itself, by key: the one holding m005 finds it missing
        assert sorted(str(h.verify.missing) for h in halves if h.verify) == [
            "{'metrics': ['m005']}",
            "{}",
        ]
        for h in halves:
            assert h.verify is not None
            assert h.verify.collections["metrics"].source_count == h.read
        full = await asyncdb.verify(dynamodb_url, dst, ["metrics"])
        assert (full.missing, full.extra, full.different) == ({"metrics": ["m005"]}, {}, {})
