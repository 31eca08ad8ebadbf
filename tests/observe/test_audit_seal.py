"""The sealing of audit events: a plain event (``_plain_body``: canonical for the chain and
for the stores) is sealed and stored exactly as the general path seals and stores it, for
any ``audit_context`` values; the stores then keep it as it is."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.errors import QueryError
from asyncdb.observe import audit, verify_chain
from asyncdb.query.values import canonical, normalize_document

PREV = "ab" * 32


def reference_seal(event: dict[str, Any], seq: int, prev_hash: str) -> dict[str, Any]:
    """seal as it was: the body as built, hashed by its canonical form."""
    body = {"seq": seq, **event, "prev_hash": prev_hash}
    return {"id": f"{seq:020d}", **body, "hash": audit._digest(body)}


def typed(value: Any) -> Any:
    """``value`` with every type spelled out (1 == 1.0 == True are told apart)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def normalized(doc: dict[str, Any]) -> Any:
    try:
        return typed(normalize_document(doc))
    except QueryError as exc:
        return ("error", str(exc))


texts = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["é", "a\x00b", "\x01", "\ud800", "$x", "", "?"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.sampled_from([1.0, 0.0, -0.0, 2.5, 2.0**53, float("inf")]),
    texts,
    st.sampled_from([Decimal("1.5"), datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), b"x"]),
)
context_values = st.one_of(
    scalars,
    st.lists(texts, max_size=3),
    st.lists(scalars, max_size=3),
    st.tuples(texts),
    st.dictionaries(texts, scalars, max_size=2),
)
names = st.one_of(
    st.text(min_size=1, max_size=3),
    st.sampled_from(["actor", "tenant", "id", "hash", "seq", "prev_hash", "$x", "a.b", "", "ts"]),
)
BASE = {
    "ts": "2026-12-02T10:00:00.000001+00:00",
    "backend": "sqlite",
    "collection": "items",
    "op": "find_one",
    "keys": ["k1"],
    "count": 1,
    "query": '{"id": ?}',
    "outcome": "ok",
    "duration_ms": 0.125,
}


@settings(max_examples=400)
@given(st.dictionaries(names, context_values, max_size=4), st.integers(1, 10**6))
def test_a_plain_event_is_sealed_as_the_general_path_seals_it(
    context: dict[str, Any], seq: int
) -> None:
    event = {"ts": BASE["ts"], **context, **{k: v for k, v in BASE.items() if k != "ts"}}
    event.update(context)  # the context may override the event's own fields too
    try:
        expected = reference_seal(event, seq, PREV)
    except TypeError:  # text orjson refuses (a lone surrogate): the general path's error
        with pytest.raises(TypeError):
            audit._seal(event, seq, PREV)
        return
    link, plain = audit._seal(event, seq, PREV)
    assert typed(link) == typed(expected)
    if "id" not in event and "hash" not in event:  # (a context's "id" replaces the key)
        assert link["hash"] == audit.event_hash(link)
    if plain:
        # stored as it is: the validation would neither change nor refuse it
        assert canonical(link)
        assert normalized(link) == typed(link)
        for name, value in event.items():  # nothing shared with the caller's context
            if isinstance(value, list):
                assert link[name] is not value


def test_the_events_own_fields_are_plain() -> None:
    assert audit._seal(BASE, 1, PREV)[1]
    assert audit._seal({**BASE, "actor": "u42", "roles": ["a", "b"]}, 1, PREV)[1]
    for odd in [{"actor": "é"}, {"n": 1.0}, {"n": 2**63}, {"id": "x"}, {"t": ("a",)}, {"$x": 1}]:
        assert not audit._seal({**BASE, **odd}, 1, PREV)[1], odd


CONTEXTS: list[dict[str, Any]] = [
    {"actor": "u42", "tenant": "acme", "roles": ["admin", "ops"]},
    {"actor": "é", "n": 1.0, "big": 2**62, "flag": False, "none": None},
    {"request": {"id": "r-1", "at": datetime(2024, 1, 2, tzinfo=UTC)}, "d": Decimal("2.5")},
    {"t": ("a", "b"), "mixed": [1, "a", 2.5]},
]


@pytest.mark.parametrize("policy", ["closed", "open"])
async def test_plain_and_general_events_are_stored_alike(
    tmp_path: Path, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same operations audited twice, the second time with every event on the general
    path: the stored events are the same documents, types included (but for ts and duration),
    and both chains verify."""

    async def run(url: str) -> list[dict[str, Any]]:
        async with asyncdb.connect(url, audit="audit", audit_reads=True, audit_policy=policy) as db:
            items = db.collection("items")
            await items.insert_one({"id": "k1", "n": 1})
            for context in CONTEXTS:
                with asyncdb.audit_context(**context):
                    await items.find_one({"id": "k1"})
                    await items.update_one({"id": "k1"}, {"$inc": {"n": 1}})
        async with asyncdb.connect(url) as db:
            trail = db.collection("audit")
            assert (await verify_chain(trail)).ok
            events = await trail.find({}, sort=[("id", 1)], allow_scan=True).to_list()
        return [
            {k: v for k, v in e.items() if k not in ("ts", "duration_ms", "hash", "prev_hash")}
            for e in events
        ]

    fast = await run(f"sqlite:///{tmp_path / 'fast.db'}")
    with monkeypatch.context() as patched:
        patched.setattr(audit, "_plain_body", lambda *args: None)
        general = await run(f"sqlite:///{tmp_path / 'general.db'}")
    assert len(fast) == len(general) == 1 + 2 * len(CONTEXTS)
    assert typed(fast) == typed(general)


@pytest.mark.parametrize("keys", [True, False])
async def test_an_audited_point_read_makes_the_general_paths_event(
    tmp_path: Path, keys: bool
) -> None:
    """find_one by exact key under an audit trail (Observer.point_read) makes the event and
    the metrics find_one's general path makes, found or not, inside an audit context."""
    events: list[dict[str, Any]] = []
    url = f"sqlite:///{tmp_path / 'p.db'}"
    async with asyncdb.connect(url, audit=events.append, audit_reads=True, audit_keys=keys) as db:
        items = db.collection("items")
        await items.insert_one({"id": "k1", "n": 1})
        general = {
            "projection": None,
            "sort": None,
            "allow_scan": None,
            "cache": True,
            "hint": None,
            "comment": None,
        }
        pairs = []
        with asyncdb.audit_context(actor="u42", roles=["a"]):
            for key in ("k1", "nope"):
                fast = await items.find_one({"id": key})
                slow = await items._find_one({"id": key}, **general)  # find_one's general path
                assert fast == slow
                pairs.append((events[-2], events[-1]))
        stats = db.metrics()["collections"]["items"]["find_one"]
    assert [e["op"] for pair in pairs for e in pair] == ["find_one"] * 4
    for fast_event, slow_event in pairs:
        drop = ("ts", "duration_ms", "seq", "prev_hash", "hash")
        assert {k: v for k, v in fast_event.items() if k not in drop} == {
            k: v for k, v in slow_event.items() if k not in drop
        }
    assert pairs[0][0]["keys" if keys else "count"] == (["k1"] if keys else 1)
    assert stats["count"] == 4 and stats["docs_returned"] == 2
