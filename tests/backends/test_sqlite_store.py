"""The SQLite store's own file format: rows an older asyncdb wrote are brought to this one."""

from __future__ import annotations

import asyncio
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


async def test_insert_now_stores_what_the_general_insert_stores_or_nothing(
    tmp_path: Path,
) -> None:
    """``Collection._insert_now`` (one autocommitted INSERT on the loop's thread): the rows
    read back as ``insert_many``'s do; a taken key is DuplicateKey with nothing written; while
    a transaction holds the writer, or another process writes, it declines (False) and writes
    nothing; ``inline_writes=0``, a cache or a transaction-bound collection always decline."""
    path = tmp_path / "now.db"
    docs = [
        {"id": "a", "n": 1, "f": 1.5, "s": "é\x00", "t": ["x", "y"], "d": {"z": None}},
        {"id": "b", "big": 2**62, "flag": True},
    ]
    async with asyncdb.connect(f"sqlite:///{path}") as db:
        now, general = db.collection("now"), db.collection("general")
        await now.insert_one({"id": "first"})  # set up (the inline path needs it ensured)
        await general.insert_one({"id": "first"})
        prepared, _ = now._prepare(docs)
        assert now._insert_now(prepared) is True
        await general.insert_many(docs)
        for key in ("a", "b"):
            assert await now.find_one({"id": key}) == await general.find_one({"id": key})
        with sqlite3.connect(path) as raw:
            rows = raw.execute(
                'SELECT k0, doc, tagged FROM "now" WHERE k0 != ? ORDER BY k0', ("first",)
            )
            same = raw.execute(
                'SELECT k0, doc, tagged FROM "general" WHERE k0 != ? ORDER BY k0', ("first",)
            )
            assert rows.fetchall() == same.fetchall()  # the same stored text and flags
        again, _ = now._prepare([{"id": "c"}, {"id": "a", "n": 2}])
        try:
            now._insert_now(again)
            raise AssertionError("a taken key must be DuplicateKey")
        except asyncdb.DuplicateKey:
            pass
        assert await now.find_one({"id": "c"}) is None  # nothing of the statement stayed
        assert (await now.find_one({"id": "a"}) or {})["n"] == 1
        one, _ = now._prepare([{"id": "d"}])
        async with db.transaction() as tx:
            await tx.collection("now").insert_one({"id": "in-tx"})
            assert now._insert_now(one) is False  # the writer is held
            assert tx.collection("now")._insert_now(one) is False
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        try:
            assert now._insert_now(one) is False
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await now.find_one({"id": "d"}) is None
        assert now._insert_now(one) is True
        assert await now.find_one({"id": "d"}) == {"id": "d"}
    async with asyncdb.connect(f"sqlite:///{path}?inline_writes=0") as db:
        off = db.collection("now")
        await off.find_one({"id": "a"})
        e, _ = off._prepare([{"id": "e"}])
        assert off._insert_now(e) is False


async def test_a_write_cancelled_while_its_begin_is_queued_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    """A write section cancelled while its ``BEGIN IMMEDIATE`` waits on the connection's
    thread: the BEGIN runs all the same, and later autocommitted statements on that connection
    (the audit trail's inserts) joined the transaction it left open, to be rolled back with it
    by the next write. Now it is rolled back at once: what follows is stored."""
    path = tmp_path / "begin.db"
    async with asyncdb.connect(f"sqlite:///{path}?inline_writes=0", audit="log") as db:
        c = db.collection("c")
        await c.insert_one({"id": "first"})
        for turns in range(4):
            task = asyncio.create_task(c.update_one({"id": "x"}, {"$inc": {"n": 1}}, upsert=True))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await c.insert_one({"id": f"after-{turns}"})
        events = db.metrics()["audit"]["events"]
    with sqlite3.connect(path) as raw:
        stored = raw.execute('SELECT count(*) FROM "log"').fetchone()[0]
        keys = {k for (k,) in raw.execute('SELECT k0 FROM "c"')}
    assert stored == events  # every event counted as written is in the file
    assert {f"after-{t}" for t in range(4)} <= keys
