"""The SQLite store's own file format: rows an older asyncdb wrote are brought to this one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

import asyncdb


async def test_rows_written_before_nul_escaping_compare_correctly(tmp_path: Path) -> None:
    """An older asyncdb stored NUL and U+0001 as they are (flags without ESCAPED), and SQLite's
    JSON functions cut a string at its NUL: ``{"s": "a"}`` matched ``"a\\x00b"``. Rows written
    that way directly with sqlite3 are rewritten once when the table is first used, so
    filters, ``$in``, indexes, sorts and reads answer as for rows written now."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    async with asyncdb.connect(url) as db:
        await db.collection("t", indexes=["s"]).insert_one({"id": "plain", "s": "a"})
    old_rows = {
        "nul": {"id": "nul", "s": "a\x00b", "n": 1},
        "one": {"id": "one", "s": "a\x01\x02", "nested": ["\x00", {"x": "\x01\x01"}]},
        "end": {"id": "end", "s": "a\x00"},
    }
    with sqlite3.connect(path) as raw:  # as an older asyncdb left the file: no formats table
        raw.execute('DROP TABLE IF EXISTS "_asyncdb_formats"')
        raw.executemany(
            'INSERT INTO "t" ("k0", doc, tagged) VALUES (?, ?, 0)',
            [(key, orjson.dumps(doc).decode()) for key, doc in old_rows.items()],
        )
    async with asyncdb.connect(url) as db:
        t = db.collection("t", indexes=["s"], allow_scan=True)

        async def ids(flt: dict[str, object]) -> list[str]:
            return sorted(d["id"] for d in await t.find(flt).to_list())

        assert await ids({"s": "a"}) == ["plain"]
        assert await ids({"s": "a\x00b"}) == ["nul"]
        assert await ids({"s": {"$in": ["a\x00b", "a\x00"]}}) == ["end", "nul"]
        assert await ids({"s": {"$gt": "a", "$lt": "a\x01"}}) == ["end", "nul"]
        assert await ids({"nested": "\x00"}) == ["one"]
        assert [d["id"] for d in await t.find({}, sort=[("s", 1), ("id", 1)]).to_list()] == [
            "plain",
            "end",
            "nul",
            "one",
        ]
        for key, doc in old_rows.items():
            assert await t.find_one({"id": key}) == doc
    with sqlite3.connect(path) as raw:  # done once: recorded, every old row now escaped
        assert raw.execute('SELECT version FROM "_asyncdb_formats" WHERE collection = ?', ("t",))
        assert raw.execute("SELECT count(*) FROM t WHERE tagged & 4").fetchone() == (3,)
