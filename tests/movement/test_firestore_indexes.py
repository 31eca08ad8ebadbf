"""DESIGN §8/§11: the composite indexes a Firestore destination needs are listed (the emulator
neither needs nor manages them): in a copy's report and by ``asyncdb firestore-indexes``, in
the ``firestore.indexes.json`` format that ``firebase deploy --only firestore:indexes`` reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import asyncdb
from asyncdb.movement.indexes import catalog_firestore_indexes
from movement.conftest import run_cli

SEGMENT = r"(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)+`)"
FIELD_PATH = re.compile(rf"{SEGMENT}(?:\.{SEGMENT})*")
SPEC = {"indexes": [("company", ("created_at", -1)), "status"]}


def assert_indexes_file(data: Any, collection: str) -> list[list[str]]:
    """``data`` is a valid firestore.indexes.json; returns each index's field paths."""
    assert set(data) == {"indexes", "fieldOverrides"} and data["fieldOverrides"] == []
    assert data["indexes"], "no composite index listed"
    out = []
    for index in data["indexes"]:
        assert set(index) == {"collectionGroup", "queryScope", "fields"}
        assert index["collectionGroup"] == collection
        assert index["queryScope"] == "COLLECTION"
        assert len(index["fields"]) >= 2  # a single field is indexed automatically
        for field in index["fields"]:
            assert FIELD_PATH.fullmatch(field["fieldPath"]), field
            rest = {k: v for k, v in field.items() if k != "fieldPath"}
            assert rest in ({"order": "ASCENDING"}, {"order": "DESCENDING"}) or rest == {
                "arrayConfig": "CONTAINS"
            }
        out.append([f["fieldPath"] for f in index["fields"]])
    return out


async def test_firestore_indexes_command_prints_the_catalog_indexes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    async with asyncdb.connect(url) as db:
        await db.collection("alerts", **SPEC).insert_one({"id": "a1", "company": "c"})
        await db.collection("other", indexes=[("x", "y")]).insert_one({"id": "o"})
    done = run_cli("firestore-indexes", url, "alerts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    paths = assert_indexes_file(json.loads(done.stdout), "alerts")
    # the compound index: equality on company, ordered by created_at (descending) and the key
    assert any(p[0] == "company" and "created_at" in p[1] and "id" in p[2] for p in paths)
    assert any(p[0] == "status" for p in paths)
    every = (await catalog_firestore_indexes(url))["indexes"]  # no names: the whole catalog
    assert {i["collectionGroup"] for i in every} == {"alerts", "other"}
    missing = run_cli("firestore-indexes", url, "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "nope" in missing.stderr


async def test_copy_to_firestore_reports_the_indexes_its_queries_need(
    tmp_path: Path, firestore_url: str
) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    async with asyncdb.connect(src) as db:
        await db.collection("alerts", **SPEC).insert_many(
            [{"id": f"a{i}", "company": f"c{i % 2}", "status": "open"} for i in range(10)]
        )
    written = tmp_path / "firestore.indexes.json"
    args = ["--firestore-indexes", str(written), "--output", "json", "--no-progress"]
    done = run_cli("copy", src, firestore_url, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verify"]["equal"] is True
    listed = report["firestore_indexes"]
    assert json.loads(written.read_text()) == listed  # the file firebase deploy reads
    assert_indexes_file(listed, "alerts")
    async with asyncdb.connect(firestore_url) as dst:
        alerts = dst.collection("alerts", **SPEC)
        for filter, sort in (
            ({"company": "c1"}, [("created_at", -1)]),
            ({"status": "open"}, [("id", 1)]),
            ({}, [("company", 1), ("created_at", -1)]),
        ):
            plan = await alerts.explain(filter, sort=sort)
            needed = plan.native.get("composite_indexes", [])
            assert needed and all(i in listed["indexes"] for i in needed)
        page = await alerts.find_page({"status": "open"}, limit=4)  # served by a listed index
        assert [d["id"] for d in page.items] == ["a0", "a1", "a2", "a3"]
