"""SQLite point reads by key on the loop's thread: the same answers as the reader thread gives,
the latest commit, no wait on a locked database, and the loop stays responsive."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import asyncdb
from asyncdb.backends.sqlite import store as sqlite_store
from asyncdb.errors import ConfigurationError

DOCS: list[dict[str, Any]] = [
    {"id": "plain", "n": 1, "s": "text", "tags": ["a", "b"], "nested": {"x": 1.5}},
    {"id": "tagged", "when": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "b": b"\x00\xff"},
    {"id": "nul", "s": "a\x00b\x01", "list": ["\x00", {"k": "\x01"}]},
    {"id": "unicode-é", "s": "ünïcode"},
    {"id": 7, "int_key": True},
]


async def test_inline_point_reads_answer_exactly_as_the_reader_thread(tmp_path: Path) -> None:
    """Every kind of stored value (tagged dates and bytes, escaped NUL, non-ASCII keys that
    take the parsed path, integer keys) and a missing key read the same with inline reads on
    and off, on one file."""
    url = f"sqlite:///{tmp_path / 'same.db'}"
    async with asyncdb.connect(url) as db:
        await db.collection("t").insert_many(DOCS)
    answers = []
    for inline in ("1", "0"):
        async with asyncdb.connect(f"{url}?inline_reads={inline}") as db:
            t = db.collection("t")
            assert (db._store._inline is not None) is (inline == "1")  # type: ignore[attr-defined]
            answers.append([await t.find_one({"id": d["id"]}) for d in DOCS])
            assert await t.find_one({"id": "missing"}) is None
    assert answers[0] == answers[1] == DOCS

    async with asyncdb.connect(url) as db:  # a compound key
        pairs = db.collection("pairs", key=["a", "b"])
        await pairs.insert_one({"a": "x", "b": 2, "v": "one"})
        assert await pairs.find_one({"a": "x", "b": 2}) == {"a": "x", "b": 2, "v": "one"}
        assert await pairs.find_one({"a": "x", "b": 3}) is None


async def test_an_inline_point_read_sees_every_write_that_returned(tmp_path: Path) -> None:
    """Writes of this database, of another database on the same file and of a raw sqlite3
    connection are each seen by the very next point read; an open transaction's writes only
    inside it, and after its commit everywhere."""
    path = tmp_path / "latest.db"
    async with (
        asyncdb.connect(f"sqlite:///{path}") as db,
        asyncdb.connect(f"sqlite:///{path}") as other,
    ):
        t, t2 = db.collection("t"), other.collection("t")
        await t.insert_one({"id": "a", "v": 0})
        for i in range(1, 30):
            await (t if i % 2 else t2).update_one({"id": "a"}, {"$set": {"v": i}})
            assert await t.find_one({"id": "a"}) == {"id": "a", "v": i}
            assert await t2.find_one({"id": "a"}) == {"id": "a", "v": i}
        with sqlite3.connect(path) as raw:
            raw.execute("""UPDATE t SET doc = '{"id":"a","v":"raw"}' WHERE k0 = 'a'""")
        assert await t.find_one({"id": "a"}) == {"id": "a", "v": "raw"}

        entered, finish = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with db.transaction() as tx:
                await tx.collection("t").update_one({"id": "a"}, {"$set": {"v": "tx"}})
                assert await tx.collection("t").find_one({"id": "a"}) == {"id": "a", "v": "tx"}
                entered.set()
                await finish.wait()

        task = asyncio.create_task(writer())
        await entered.wait()
        assert await t.find_one({"id": "a"}) == {"id": "a", "v": "raw"}  # not committed yet
        assert await t2.find_one({"id": "a"}) == {"id": "a", "v": "raw"}
        finish.set()
        await task
        assert await t.find_one({"id": "a"}) == {"id": "a", "v": "tx"}
        assert await t2.find_one({"id": "a"}) == {"id": "a", "v": "tx"}
        await t.delete_one({"id": "a"})
        assert await t2.find_one({"id": "a"}) is None


async def test_a_failed_inline_read_raises_what_the_reader_thread_raises(tmp_path: Path) -> None:
    """A table dropped underneath by another connection: the point read's error is the same
    typed error, with the same text, with inline reads on and off."""
    path = tmp_path / "dropped.db"
    errors = []
    for inline in (True, False):
        async with asyncdb.connect(f"sqlite:///{path}", inline_reads=inline) as db:
            t = db.collection(f"t{int(inline)}")
            await t.insert_one({"id": "a"})
            assert await t.find_one({"id": "a"}) == {"id": "a"}
            with sqlite3.connect(path) as raw:
                raw.execute(f"DROP TABLE t{int(inline)}")
            with pytest.raises(asyncdb.AsyncDBError) as caught:
                await t.find_one({"id": "a"})
            errors.append((type(caught.value), str(caught.value).replace("t1", "t0")))
            assert db._resilience.breaker.state == "closed"  # type: ignore[attr-defined]
    assert errors[0] == errors[1]


async def test_a_loop_of_point_reads_lets_other_tasks_run_and_can_be_cancelled(
    tmp_path: Path,
) -> None:
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'fair.db'}") as db:
        t = db.collection("t")
        await t.insert_one({"id": "a"})
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        reads = 10 * sqlite_store.INLINE_YIELD
        for _ in range(reads):
            assert await t.find_one({"id": "a"}) == {"id": "a"}
        assert ticks - before >= reads // sqlite_store.INLINE_YIELD - 1
        ticking.cancel()

        async def forever() -> None:
            while True:
                await t.find_one({"id": "a"})

        reader = asyncio.create_task(forever())
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(reader, 5)


async def test_a_run_of_slow_point_reads_sends_them_to_the_reader_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage that answers slowly (here: every lookup counts as slow) moves point reads off
    the loop for a while; the answers stay the same."""
    monkeypatch.setattr(sqlite_store, "INLINE_SLOW_S", -1.0)
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'slow.db'}") as db:
        t = db.collection("t")
        await t.insert_one({"id": "a", "v": 1})
        store = db._store  # type: ignore[attr-defined]
        for _ in range(sqlite_store.INLINE_SLOW_RUN - 1):
            assert await t.find_one({"id": "a"}) == {"id": "a", "v": 1}
        assert store._inline_paused_until == 0.0  # one slow read alone changes nothing
        assert await t.find_one({"id": "a"}) == {"id": "a", "v": 1}
        assert store._inline_paused_until > time.perf_counter()
        counted = store._inline_count
        await t.update_one({"id": "a"}, {"$set": {"v": 2}})
        assert await t.find_one({"id": "a"}) == {"id": "a", "v": 2}
        assert store._inline_count == counted  # read on the reader thread


async def test_inline_reads_option_is_checked_before_any_io(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    with pytest.raises(ConfigurationError, match="inline_reads"):
        await asyncdb.connect(f"sqlite:///{path}?inline_reads=maybe")
    assert not path.exists()
    async with asyncdb.connect(f"sqlite:///{path}", inline_reads=False) as db:
        assert db._store._inline is None  # type: ignore[attr-defined]
    async with asyncdb.connect("sqlite:///:memory:") as db:  # one connection: nothing inline
        assert db._store._inline is None  # type: ignore[attr-defined]
        await db.collection("t").insert_one({"id": "a"})
        assert await db.collection("t").find_one({"id": "a"}) == {"id": "a"}
