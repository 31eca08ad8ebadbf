"""DESIGN §8: backup / restore through a JSON Lines file (gzip for .gz): every portable value
type round-trips exactly on every backend; a truncated or altered file is refused before
anything is written."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conformance.support import assert_same
from conformance.test_values import PORTABLE

import asyncdb

DOCS = [{"id": name, "v": value, "in": {"x": [value]}} for name, value in PORTABLE.items()]


async def test_backup_restore_round_trips_every_portable_value(
    db: asyncdb.Database, tmp_path: Path
) -> None:
    values = db.collection("values", allow_scan=True)
    await values.insert_many(DOCS)
    path = tmp_path / "values.jsonl.gz"
    assert await asyncdb.backup(db, path) == {"values": len(DOCS)}
    with gzip.open(path, "rt") as f:
        header = json.loads(f.readline())["$header"]
    assert header["backend"] == db.backend
    assert header["collection"]["name"] == "values"
    await values.drop()
    assert await asyncdb.restore(path, db) == {"values": len(DOCS)}
    restored = db.collection("values", allow_scan=True)
    got = await restored.find({}, sort=[("id", 1)]).to_list()
    assert_same(sorted(DOCS, key=lambda d: d["id"]), got)
    assert [s.name for s in await db.list_collections()] == ["values"]


async def _backup_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    async with asyncdb.connect("memory://") as src:
        await src.collection("a", indexes=["n"]).insert_many(
            [{"id": f"x{i}", "n": i} for i in range(20)]
        )
        await src.collection("b").insert_many([{"id": "y", "n": 1.5}])
        await asyncdb.backup(src, path)
    return path


async def _restore_refused(path: Path, match: str) -> None:
    async with asyncdb.connect("memory://") as dst:
        with pytest.raises(asyncdb.BackupError, match=match):
            await asyncdb.restore(path, dst)
        assert await dst.list_collections() == []  # nothing written, not even a spec


async def test_restore_refuses_a_truncated_file(tmp_path: Path) -> None:
    path = await _backup_file(tmp_path, "t.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the end marker is gone
    await _restore_refused(path, "truncated")
    path.write_text("".join(lines)[:-7])  # cut inside the last line
    await _restore_refused(path, "cut short|truncated")
    gz = await _backup_file(tmp_path, "t.jsonl.gz")
    gz.write_bytes(gz.read_bytes()[:-20])
    await _restore_refused(gz, "not a complete backup|truncated")


async def test_restore_refuses_an_altered_file(tmp_path: Path) -> None:
    path = await _backup_file(tmp_path, "t.jsonl")
    text = path.read_text()
    await _restore_refused_text(path, text.replace('"n":7}', '"n":8}'), "does not match")
    await _restore_refused_text(path, text.replace('"n":1.5', '"n":1.50'), "altered")
    await _restore_refused_text(path, text.replace('"fields":[["n",1]]', '"fields":[]'), "match")
    lines = text.splitlines(keepends=True)
    await _restore_refused_text(path, "".join(lines[:3] + lines[4:]), "does not match")


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def _restore_refused_text(path: Path, text: str, match: str) -> None:
    _write(path, text)
    await _restore_refused(path, match)


async def test_restore_selects_collections_and_repeats(tmp_path: Path) -> None:
    path = await _backup_file(tmp_path, "t.jsonl")
    async with asyncdb.connect("memory://") as dst:
        assert await asyncdb.restore(path, dst, ["b"]) == {"b": 1}
        assert await asyncdb.restore(path, dst) == {"a": 20, "b": 1}
        assert await asyncdb.restore(path, dst) == {"a": 20, "b": 1}  # idempotent
        assert await dst.collection("a", indexes=["n"]).count_documents({"n": {"$gte": 0}}) == 20
