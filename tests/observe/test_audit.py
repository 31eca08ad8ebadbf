"""The audit trail: the events, their chain under concurrent writers and processes, tamper
detection, the sink policies and the kinds of sink."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

import asyncdb
from asyncdb.observe import verify_chain
from asyncdb.observe.audit import IDLE_S, CollectionSink

ROOT = Path(__file__).resolve().parents[2]


async def test_one_event_per_operation_with_the_documented_fields(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    url = f"sqlite:///{tmp_path / 'a.db'}"
    async with asyncdb.connect(url, audit=events.append) as db:
        alerts = db.collection("alerts", allow_scan=True)
        with asyncdb.audit_context(actor="u42", tenant="acme", request_id="r-7"):
            await alerts.insert_many([{"id": "a1", "p": 1}, {"id": "a2", "p": 2}])
            await alerts.find_one({"id": "a1"})  # reads are not audited unless asked
            await alerts.update_one({"id": "a1"}, {"$set": {"p": 5}})
            await alerts.update_many({"p": {"$lt": 3}}, {"$inc": {"p": 1}})
            with pytest.raises(asyncdb.DuplicateKey):
                await alerts.insert_one({"id": "a2"})
            assert await alerts.delete_many({"p": {"$gte": 0}}) == 2
        await alerts.insert_one({"id": "a3"})  # outside the context: no actor
    ops = [(e["op"], e["outcome"]) for e in events]
    assert ops == [
        ("insert_many", "ok"),
        ("update_one", "ok"),
        ("update_many", "ok"),
        ("insert_one", "failed"),
        ("delete_many", "ok"),
        ("insert_one", "ok"),
    ]
    first, update, many, failed, delete, last = events
    assert first["keys"] == ["a1", "a2"] and first["count"] == 2
    assert (first["actor"], first["tenant"], first["request_id"]) == ("u42", "acme", "r-7")
    assert first["backend"] == "sqlite" and first["collection"] == "alerts"
    assert update["keys"] == ["a1"] and update["query"] == '{"id": ?}'
    assert update["update"] == '{"$set": {"p": ?}}'
    assert (update["matched"], update["modified"]) == (1, 1)
    assert many["query"] == '{"p": {"$lt": ?}}' and "keys" not in many
    assert failed["error"] == "DuplicateKey" and "keys" not in failed
    assert delete["deleted"] == 2
    assert "actor" not in last
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e["prev_hash"] == p["hash"] for p, e in itertools.pairwise(events))
    assert all(isinstance(e["duration_ms"], float) and e["ts"].endswith("+00:00") for e in events)


async def test_reads_are_audited_when_asked_and_keys_can_be_counted_only(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    url = f"sqlite:///{tmp_path / 'r.db'}"
    async with asyncdb.connect(url, audit=events.append, audit_reads=True, audit_keys=False) as db:
        c = db.collection("c", allow_scan=True)
        await c.insert_one({"id": "x", "n": 1})
        await c.find_one({"id": "x"})
        await c.find({"n": 1}).to_list()
        await c.count_documents({})
    assert [(e["op"], e.get("count")) for e in events] == [
        ("insert_one", 1),
        ("find_one", 1),
        ("find", 1),
        ("count_documents", None),
    ]
    assert not any("keys" in e for e in events)


async def test_verify_detects_an_edited_a_deleted_and_reordered_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    async with asyncdb.connect(url, audit="audit_log") as db:
        c = db.collection("c")
        for i in range(6):
            await c.insert_one({"id": f"k{i}"})
    async with asyncdb.connect(url) as db:
        log = db.collection("audit_log")
        intact = await verify_chain(log)
        assert intact.ok and intact.events == 6 and intact.head_seq == 6
        await log.update_one({"id": f"{2:020d}"}, {"$set": {"keys": ["forged"]}})
        edited = await verify_chain(log)
        assert [p["problem"].split(":")[0] for p in edited.problems] == ["edited"]
        await log.delete_one({"id": f"{4:020d}"})
        gapped = await verify_chain(log)
        assert {p["problem"].split(":")[0] for p in gapped.problems} == {
            "edited",
            "deleted",
            "broken link",
        }
        # Swap the bodies of events 5 and 6 (each keeps the other's seq): out of order.
        five, six = await log.find_one({"id": f"{5:020d}"}), await log.find_one({"id": f"{6:020d}"})
        assert five is not None and six is not None
        await log.replace_one({"id": five["id"]}, {**six, "id": five["id"]})
        await log.replace_one({"id": six["id"]}, {**five, "id": six["id"]})
        swapped = await verify_chain(log)
        assert sum(p["problem"].startswith("moved") for p in swapped.problems) == 2
        # Removing the newest event is seen against the head recorded before.
        truncated_head = await verify_chain(log, head=intact.head_hash)
        assert any(p["problem"].startswith("head") for p in truncated_head.problems)


async def test_the_chain_holds_with_concurrent_writers_on_every_backend(backend_url: str) -> None:
    """Two connections (as two processes would) append to one audit collection at once: the
    loser of each race for seq n+1 meets DuplicateKey, re-reads and retries."""
    writers = 1 if backend_url == "memory://" else 2  # each memory:// connection is its own store
    dbs = [await asyncdb.connect(backend_url, audit="audit_log") for _ in range(writers)]
    try:

        async def write(db: asyncdb.Database, who: int) -> None:
            c = db.collection("c")
            await asyncio.gather(*(c.insert_one({"id": f"w{who}-{i}"}) for i in range(6)))

        for i, db in enumerate(dbs):  # tables first, one at a time: the race under test is
            await db.collection("c").insert_one({"id": f"first-{i}"})  # the chain's, not DDL's
        await asyncio.gather(*(write(db, i) for i, db in enumerate(dbs)))
        report = await verify_chain(dbs[0].collection("audit_log"))
    finally:
        for db in dbs:
            await db.close()
    assert report.ok, report.problems
    assert report.events == report.head_seq == 7 * writers


async def test_a_batch_cut_short_by_another_writer_goes_on_after_it(backend_url: str) -> None:
    """Events created one at a time (Cosmos DB's path, forced here on every backend): another
    writer takes a seq in the middle of a batch. The batch's events already stored stay, the
    rest chain after the other writer's event, and the chain verifies with each event once."""
    async with asyncdb.connect(backend_url) as db:
        log = db.collection("audit_cut")
        ours, theirs = CollectionSink(log), CollectionSink(log)  # two writers, two heads
        ours.one_by_one = True
        await ours.write([{"op": "insert", "who": "ours", "n": 0}])
        original = ours._insert
        tried: list[int] = []

        async def insert(sealed: list[dict[str, Any]], plain: bool = False) -> None:
            tried.append(int(sealed[0]["seq"]))
            await original(sealed, plain)
            if len(tried) == 2:  # our second event is stored: the other writer appends now
                await theirs.write([{"op": "insert", "who": "theirs", "n": 0}])

        ours._insert = insert  # type: ignore[method-assign]
        await ours.write([{"op": "insert", "who": "ours", "n": n} for n in range(1, 5)])
        report = await verify_chain(log)
        stored = await log.find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert tried == [2, 3, 4, 5, 6]  # seq 4 was taken: the last two events went to 5 and 6
    assert report.ok, report.problems
    assert report.events == report.head_seq == 6
    assert [(e["seq"], e["who"], e["n"]) for e in stored] == [
        (1, "ours", 0),
        (2, "ours", 1),
        (3, "ours", 2),
        (4, "theirs", 0),
        (5, "ours", 3),
        (6, "ours", 4),
    ]


async def test_concurrent_audited_reads_share_their_writes_and_keep_the_chain(
    backend_url: str,
) -> None:
    """Closed policy: 16 reads at once each return only once their event is stored; the
    events are written in far fewer writes than events, and the chain verifies (every event
    read back hashes as it was sealed)."""
    async with asyncdb.connect(backend_url, audit="audit_reads", audit_reads=True) as db:
        c = db.collection("c")
        await c.insert_many([{"id": f"k{i}", "n": i} for i in range(16)])  # one write each
        await c.find_one({"id": "k0"})
        for _ in range(3):
            docs = await asyncio.gather(*(c.find_one({"id": f"k{i}"}) for i in range(16)))
            assert [d["n"] for d in docs if d is not None] == list(range(16))
        audit = db.metrics()["audit"]
        report = await verify_chain(db.collection("audit_reads"))
        stored = await db.collection("audit_reads").find_one({"id": f"{50:020d}"})
    assert audit["events"] == 50 and audit["failures"] == 0
    assert audit["writes"] <= 2 + 3 * 4, audit  # 16 waiting reads: a few writes, not 16
    assert report.ok, report.problems
    assert report.events == report.head_seq == 50
    assert stored is not None and stored["op"] == "find_one" and stored["query"] == '{"id": ?}'


async def cancel_audited_calls(url: str, seed: int, groups: int = 40) -> dict[str, Any]:
    """Audited reads, upserts and inserts (each tagged with its own ``request_id``), in
    sequences of 1-60 calls per task and groups of 1-16 tasks at once, every task cancelled
    at a point of its own: before it runs, after some turns of the loop, or after a random
    fraction of a millisecond (inside a read, a write section, or the wait for its event).
    Returns the chain's report, the events by request, the writes that were applied and the
    calls that returned."""
    rng = random.Random(seed)
    async with asyncdb.connect(url, audit="audit_log", audit_reads=True) as db:
        c = db.collection("c")
        await c.insert_many([{"id": f"k{i}", "n": i} for i in range(8)])
        returned: set[str] = set()

        async def calls(rids: list[tuple[str, int]]) -> None:
            for rid, kind in rids:
                with asyncdb.audit_context(request_id=rid):
                    if kind == 0:
                        await c.find_one({"id": f"k{len(rid) % 8}"})
                    elif kind == 1:
                        await c.update_one({"id": f"w{rid}"}, {"$set": {"rid": rid}}, upsert=True)
                    else:
                        await c.insert_one({"id": f"w{rid}", "rid": rid})
                returned.add(rid)

        n = 0
        for _ in range(groups):
            tasks = []
            for _ in range(rng.choice([1, 1, 1, 2, 4, 16])):
                rids = []
                for _ in range(rng.randint(1, 60)):
                    rids.append((f"r{n}", rng.randrange(3)))
                    n += 1
                tasks.append((asyncio.create_task(calls(rids)), rng.randrange(300)))
            by_wall = rng.random() < 0.5
            turn = 0
            while not all(task.done() for task, _ in tasks):
                for task, at in tasks:
                    if at == turn:
                        task.cancel()
                await asyncio.sleep(rng.uniform(0, 0.0002) if by_wall else 0)
                turn += 1
            await asyncio.gather(*(task for task, _ in tasks), return_exceptions=True)
            if rng.random() < 0.5:  # the trail idle a while: the next caller is alone
                await asyncio.sleep(IDLE_S * 1.5)
        trail = db._observer.audit  # type: ignore[union-attr]
        await trail.flush()
        counted, failures, by_callers = trail.events, trail.failures, trail.stored_by_callers
    async with asyncdb.connect(url) as plain:  # not audited: nothing more is written
        log = plain.collection("audit_log")
        events = [e async for e in log.find({}, allow_scan=True, cache=False)]
        report = await verify_chain(log)
        written = plain.collection("c").find({"rid": {"$exists": True}}, allow_scan=True)
        applied = {d["rid"] async for d in written}
    tagged = [e for e in events if "request_id" in e]  # not the set-up insert's
    return {
        "report": report,
        "events": tagged,
        "stored": len(events),
        "per_request": Counter(e["request_id"] for e in tagged),
        "applied": applied,
        "returned": returned,
        "calls": n,
        "counted": counted,
        "failures": failures,
        "by_callers": by_callers,
    }


def check_exactly_once(run: dict[str, Any]) -> list[str]:
    """What is wrong with a run of :func:`cancel_audited_calls` (empty when nothing)."""
    problems = []
    if not run["report"].ok:
        problems.append(f"chain: {run['report'].problems[:3]}")
    twice = [rid for rid, n in run["per_request"].items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} requests with more than one event, e.g. {twice[:3]}")
    ok = {e["request_id"] for e in run["events"] if e["outcome"] == "ok"}
    if run["returned"] - ok:
        problems.append(f"returned without an ok event: {sorted(run['returned'] - ok)[:3]}")
    lost = run["applied"] - set(run["per_request"])
    if lost:
        problems.append(f"applied writes without an event: {sorted(lost)[:3]}")
    writes = {e["request_id"] for e in run["events"] if e["op"] != "find_one"}
    if {rid for rid in writes if rid in ok} - run["applied"]:
        problems.append("an ok write event for a write that is not there")
    if run["counted"] != run["stored"] or run["failures"]:
        problems.append(f"counted {run['counted']} events, stored {run['stored']}")
    return problems


@pytest.mark.parametrize("options", ["", "?inline_writes=0"])
async def test_cancelled_audited_calls_never_duplicate_nor_lose_an_event(
    tmp_path: Path, options: str
) -> None:
    """Closed policy, SQLite: a caller alone stores its event itself, on the loop's thread,
    in one step (nothing to interrupt); callers taking turns, or a busy writer connection,
    leave theirs to the writer task. Cancelled anywhere, no call leaves two events, none
    that returned lacks its event, no applied write lacks one, and the chain verifies."""
    url = f"sqlite:///{tmp_path / 'cancel.db'}{options}"
    run = await cancel_audited_calls(url, seed=18)
    assert check_exactly_once(run) == []
    assert len(run["returned"]) > 50 and len(run["events"]) < run["calls"]  # both happened
    if options:
        assert run["by_callers"] == 0
    else:
        assert run["by_callers"] > 20  # the callers' own path ran, cancellations among it


async def test_the_cancellation_check_finds_a_trail_whose_callers_await_their_insert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above fails on a trail that duplicates: one whose caller awaits its own
    insert (on the writer's thread) and, cancelled during it, hands its event to the writer
    so as not to lose it (the insert it left ran all the same). The chain still verifies:
    only the events by request show it."""
    from asyncdb.observe.audit import AuditTrail

    submit = AuditTrail.submit
    busy: set[int] = set()

    def awaiting_callers(self: AuditTrail, event: dict[str, Any], in_transaction: bool) -> Any:
        head = getattr(self.sink, "_head", None)
        idle = not self._queue and (self._writer is None or self._writer.done())
        if in_transaction or self.policy != "closed" or not idle or head is None or busy:
            return submit(self, event, in_transaction)

        async def own() -> None:
            busy.add(1)
            try:
                await self.sink.write([event])
            except asyncio.CancelledError:
                busy.clear()
                submit(self, event, False)  # "not lost": the writer writes it (again)
                raise
            busy.clear()
            self.events += 1

        return own()

    monkeypatch.setattr(AuditTrail, "submit", awaiting_callers)
    run = await cancel_audited_calls(f"sqlite:///{tmp_path / 'dup.db'}?inline_writes=0", seed=18)
    problems = check_exactly_once(run)
    assert run["report"].ok  # the chain of a duplicated event holds
    assert any("more than one event" in p for p in problems), problems


WRITER = """
import asyncio, sys
import asyncdb

async def main(url, who):
    async with asyncdb.connect(url, audit="audit_log") as db:
        c = db.collection("c")
        for i in range(15):
            await c.insert_one({"id": f"p{who}-{i}"})

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_the_chain_holds_with_several_processes_writing_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'procs.db'}"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(i)], env=env) for i in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]

    async def check() -> Any:
        async with asyncdb.connect(url) as db:
            return await verify_chain(db.collection("audit_log"))

    report = asyncio.run(check())
    assert report.ok, report.problems
    assert report.events == 45


async def test_closed_policy_raises_audit_error_with_the_applied_result(tmp_path: Path) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise OSError("the log shipper is down")

    url = f"sqlite:///{tmp_path / 'closed.db'}"
    async with asyncdb.connect(url, audit=broken) as db:
        c = db.collection("c")
        with pytest.raises(asyncdb.AuditError) as caught:
            await c.update_one({"id": "a"}, {"$set": {"n": 1}}, upsert=True)
        assert caught.value.result.upserted_id == "a"  # the write happened: nothing is hidden
        assert await c.find_one({"id": "a"}) == {"id": "a", "n": 1}
        with pytest.raises(asyncdb.DuplicateKey):  # the operation's own error comes first
            await c.insert_one({"id": "a"})
        assert db.metrics()["audit"]["failures"] == 2


async def test_open_policy_keeps_going_and_reports_the_sink_failure(tmp_path: Path) -> None:
    calls = 0

    async def flaky(event: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("the log shipper is down")

    url = f"sqlite:///{tmp_path / 'open.db'}"
    with capture_logs() as logs:
        async with asyncdb.connect(url, audit=flaky, audit_policy="open") as db:
            c = db.collection("c")
            assert await c.insert_one({"id": "a"}) == "a"
            await asyncio.sleep(0)
            assert await c.insert_one({"id": "b"}) == "b"
            await db._observer.audit.flush()  # type: ignore[union-attr]
            audit = db.metrics()["audit"]
    assert (audit["failures"], audit["events"], audit["policy"]) == (1, 1, "open")
    failed = [line for line in logs if line["event"] == "audit.sink_failed"]
    assert failed and failed[0]["error"] == "OSError" and failed[0]["policy"] == "open"


async def test_audit_into_a_collection_of_another_database_and_into_a_logger(
    tmp_path: Path,
) -> None:
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'audit.db'}") as audit_db:
        sink = audit_db.collection("events")
        async with asyncdb.connect("memory://", audit=sink) as db:
            await db.collection("c").insert_one({"id": "a"})
        stored = await sink.find({}, allow_scan=True).to_list()
        assert [(e["backend"], e["op"], e["keys"]) for e in stored] == [
            ("memory", "insert_one", ["a"])
        ]
        assert (await verify_chain(sink)).ok
    with capture_logs() as logs:
        async with asyncdb.connect("memory://", audit=structlog.get_logger("audit")) as db:
            await db.collection("c").insert_one({"id": "b"})
    audit_lines = [line for line in logs if line["event"] == "asyncdb.audit"]
    assert [(line["op"], line["keys"], line["seq"]) for line in audit_lines] == [
        ("insert_one", ["b"], 1)
    ]


async def test_a_transactions_events_and_its_outcome_are_audited(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'tx.db'}"
    async with asyncdb.connect(url, audit="audit_log") as db:
        async with db.transaction() as tx:
            await tx.collection("c").insert_one({"id": "a"})
            await tx.collection("c").update_one({"id": "a"}, {"$set": {"n": 1}})
        with pytest.raises(ZeroDivisionError):
            async with db.transaction() as tx:
                await tx.collection("c").insert_one({"id": "b"})
                1 / 0  # noqa: B018
        await db._observer.audit.flush()  # type: ignore[union-attr]
        log = db.collection("audit_log")
        report = await verify_chain(log)
        events = await log.find({}, sort=[("id", 1)], allow_scan=True).to_list()
    assert report.ok and report.events == 5
    ops = [(e["op"], e["outcome"], e.get("count")) for e in events]
    assert ops == [
        ("insert_one", "ok", 1),
        ("update_one", "ok", 1),
        ("transaction", "ok", 2),
        ("insert_one", "ok", 1),
        ("transaction", "rolled_back", 1),
    ]
    first, second = events[0]["tx"], events[3]["tx"]
    assert events[1]["tx"] == events[2]["tx"] == first != second == events[4]["tx"]
    assert events[4]["error"] == "ZeroDivisionError"


async def test_bad_audit_options_are_refused_before_any_io() -> None:
    with pytest.raises(asyncdb.ConfigurationError, match="audit_policy"):
        await asyncdb.connect("memory://", audit="log", audit_policy="sometimes")
    with pytest.raises(asyncdb.ConfigurationError, match="audit="):
        await asyncdb.connect("memory://", audit=42)
    with pytest.raises(asyncdb.ConfigurationError, match="slow_ms"):
        await asyncdb.connect("memory://", slow_ms="fast")


def test_audit_context_refuses_the_events_own_field_names() -> None:
    """A context field named like a field the trail writes (here the chain's seq, the
    outcome) would replace it in every event or break the chain: refused, nothing entered."""
    from asyncdb.observe.audit import current_context

    with asyncdb.audit_context(actor="u42"):
        for name in ["seq", "hash", "outcome", "ts", "op"]:
            with (
                pytest.raises(asyncdb.ConfigurationError, match=name),
                asyncdb.audit_context(**{name: "x"}),
            ):
                pass  # pragma: no cover (never entered)
            assert current_context() == {"actor": "u42"}
        with asyncdb.audit_context(request_id="r-1", ctx_op="x") as ctx:
            assert ctx == {"actor": "u42", "request_id": "r-1", "ctx_op": "x"}


async def test_every_field_the_trail_writes_is_one_audit_context_refuses(tmp_path: Path) -> None:
    """The refused names are exactly the trail's own: every field of every event below, from
    writes, reads, a failure and a transaction, is a context field or in EVENT_FIELDS."""
    from asyncdb.observe.audit import EVENT_FIELDS

    stored = f"sqlite:///{tmp_path / 'a.db'}"
    async with asyncdb.connect(stored, audit="audit", audit_reads=True) as db:
        items = db.collection("items", allow_scan=True)
        with asyncdb.audit_context(actor="u42", tenant="acme", request_id="r-1"):
            await items.insert_many([{"id": "a", "p": 1}, {"id": "b", "p": 2}])
            await items.find_one({"id": "a"})
            await items.find({"p": {"$gt": 0}}, comment="c").to_list()
            await items.update_many({"p": {"$lt": 3}}, {"$inc": {"p": 1}})
            with pytest.raises(asyncdb.DuplicateKey):
                await items.insert_one({"id": "a"})
            async with db.transaction() as tx:
                await tx.collection("items").delete_many({"p": {"$gte": 0}})
        events = await db.collection("audit").find({}, allow_scan=True).to_list()
    written = {name for event in events for name in event} - {"actor", "tenant", "request_id"}
    assert {"seq", "prev_hash", "hash", "outcome", "error", "tx", "comment"} <= written
    assert written <= EVENT_FIELDS, written - EVENT_FIELDS
