"""DESIGN §4: a claimed capability works; an unclaimed one is refused, never half-done.

Every field of ``asyncdb.Capabilities`` has a probe here (a new field without one fails
``test_every_capability_has_a_probe``). Capabilities are of two kinds:

* features -- ``transactions``, ``conditional_writes``, ``ttl``, ``secondary_indexes``,
  ``unique_indexes``, ``keyset_pagination``: unclaimed, the API that needs it raises
  ``asyncdb.NotSupported``.
* optimisations -- ``server_side_sort``, ``regex_pushdown``, ``bulk_insert``: claimed, the store
  does the work (``explain()`` shows it pushed down); unclaimed, the shared code does it in
  process with the same answers, and ``explain()`` shows it there (a client sort bounded by
  ``max_scan``, the regex in the residual).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import pytest

import asyncdb

from .support import assert_same, id_set, ids

Check = Callable[[asyncdb.Database], Awaitable[None]]


@dataclass(frozen=True)
class Probe:
    claimed: Check
    unclaimed: Check


# --- transactions -----------------------------------------------------------------------------


async def transactions_work(db: asyncdb.Database) -> None:
    coll = db.collection("cap_tx", allow_scan=True)
    async with db.transaction() as tx:
        await tx.collection("cap_tx").insert_one({"id": "kept"})
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as tx:
            await tx.collection("cap_tx").insert_one({"id": "dropped"})
            await tx.collection("cap_tx").delete_one({"id": "kept"})
            _ = 1 / 0
    assert await id_set(coll) == {"kept"}


async def transactions_refused(db: asyncdb.Database) -> None:
    with pytest.raises(asyncdb.NotSupported):
        async with db.transaction():
            pass


# --- conditional writes -----------------------------------------------------------------------


async def conditional_writes_work(db: asyncdb.Database) -> None:
    coll = db.collection("cap_cas")
    await coll.insert_one({"id": "job", "version": 0})
    results = await asyncio.gather(
        *(
            coll.update_one({"id": "job", "version": 0}, {"$set": {"version": 1, "by": i}})
            for i in range(10)
        )
    )
    assert sum(r.modified for r in results) == 1
    doc = await coll.find_one({"id": "job"})
    assert doc is not None and doc["version"] == 1


async def conditional_writes_refused(db: asyncdb.Database) -> None:
    # without compare-and-set, an update whose filter must still hold at write time is refused
    coll = db.collection("cap_cas")
    await coll.insert_one({"id": "job", "version": 0})
    with pytest.raises(asyncdb.NotSupported):
        await coll.update_one({"id": "job", "version": 0}, {"$set": {"version": 1}})


# --- ttl --------------------------------------------------------------------------------------


async def ttl_works(db: asyncdb.Database) -> None:
    coll = db.collection("cap_ttl", ttl="exp", allow_scan=True)
    now = datetime.now(UTC)
    await coll.insert_many(
        [
            {"id": "old", "exp": now - timedelta(minutes=1)},
            {"id": "new", "exp": now + timedelta(hours=1)},
        ]
    )
    assert await id_set(coll) == {"new"}
    assert await coll.find_one({"id": "old"}) is None


async def ttl_refused(db: asyncdb.Database) -> None:
    with pytest.raises(asyncdb.NotSupported):
        db.collection("cap_ttl", ttl="exp")


# --- indexes ----------------------------------------------------------------------------------


async def secondary_indexes_work(db: asyncdb.Database) -> None:
    coll = db.collection("cap_ix", indexes=["colour", ("shape", "size"), [("ts", -1)]])
    await coll.insert_many(
        [{"id": f"k{i}", "colour": i % 3, "shape": "sq", "size": i, "ts": i} for i in range(9)]
    )
    assert await ids(coll, {"colour": 1}, sort=[("id", 1)]) == ["k1", "k4", "k7"]
    assert await ids(coll, {"shape": "sq", "size": {"$gte": 7}}, sort=[("size", 1)]) == ["k7", "k8"]
    assert await ids(coll, {"ts": {"$lt": 2}}, sort=[("ts", -1)]) == ["k1", "k0"]
    assert (await coll.explain({"colour": 1})).access_path == "index:ix_colour"
    assert (await coll.explain({"shape": "sq"})).access_path == "index:ix_shape_size"


async def secondary_indexes_refused(db: asyncdb.Database) -> None:
    with pytest.raises(asyncdb.NotSupported):
        db.collection("cap_ix", indexes=["colour"])


async def unique_indexes_work(db: asyncdb.Database) -> None:
    coll = db.collection("cap_ux", indexes=[{"fields": ["email"], "unique": True}], allow_scan=True)
    await coll.insert_many([{"id": "a", "email": "a@x"}, {"id": "b", "email": "b@x"}])
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_one({"id": "c", "email": "a@x"})
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_many([{"id": "d", "email": "d@x"}, {"id": "e", "email": "d@x"}])
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.update_one({"id": "b"}, {"$set": {"email": "a@x"}})
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.replace_one({"id": "b"}, {"email": "a@x"})
    assert_same(
        [{"id": "a", "email": "a@x"}, {"id": "b", "email": "b@x"}],
        await coll.find({}, sort=[("id", 1)]).to_list(),
    )
    # swapping values in one update_many is fine: uniqueness holds afterwards
    await coll.update_one({"id": "a"}, {"$set": {"email": "c@x"}})
    await coll.insert_one({"id": "f", "email": "a@x"})
    assert await id_set(coll, {"email": "a@x"}) == {"f"}


async def unique_indexes_refused(db: asyncdb.Database) -> None:
    with pytest.raises(asyncdb.NotSupported):
        db.collection("cap_ux", indexes=[{"fields": ["email"], "unique": True}])


# --- keyset pagination ------------------------------------------------------------------------


async def keyset_pagination_works(db: asyncdb.Database) -> None:
    coll = db.collection("cap_page", allow_scan=True)
    await coll.insert_many([{"id": f"k{i}", "n": -i} for i in range(7)])
    first = await coll.find_page({}, sort=[("n", 1)], limit=4)
    assert [d["id"] for d in first.items] == ["k6", "k5", "k4", "k3"]
    rest = await coll.find_page({}, sort=[("n", 1)], limit=4, cursor=first.next_cursor)
    assert [d["id"] for d in rest.items] == ["k2", "k1", "k0"]
    assert rest.next_cursor is None


async def keyset_pagination_refused(db: asyncdb.Database) -> None:
    coll = db.collection("cap_page", allow_scan=True)
    with pytest.raises(asyncdb.NotSupported):
        await coll.find_page({}, limit=4)


# --- server-side sort ---------------------------------------------------------------------------


async def _sort_collection(db: asyncdb.Database) -> asyncdb.Collection:
    coll = db.collection("cap_sort", indexes=["g", "n"], max_scan=5)
    await coll.insert_many([{"id": f"k{i:02d}", "g": 1, "n": (i * 7) % 20} for i in range(20)])
    return coll


async def server_side_sort_works(db: asyncdb.Database) -> None:
    coll = await _sort_collection(db)
    expected = [f"k{i:02d}" for i in sorted(range(20), key=lambda i: -((i * 7) % 20))]
    # more matches than max_scan: fine, because the store sorts, not the client
    assert await ids(coll, {"g": 1}, sort=[("n", -1)]) == expected
    plan = await coll.explain({"g": 1}, sort=[("n", -1)])
    assert plan.sort_pushed and not plan.client_sort


async def server_side_sort_absent(db: asyncdb.Database) -> None:
    coll = await _sort_collection(db)
    expected = [f"k{i:02d}" for i in sorted(range(20), key=lambda i: -((i * 7) % 20))]
    plan = await coll.explain({"g": 1}, sort=[("n", -1)])
    assert plan.client_sort and not plan.sort_pushed
    # a client-side sort of more than max_scan documents is refused, not cut short
    with pytest.raises(asyncdb.ScanRequired):
        await coll.find({"g": 1}, sort=[("n", -1)]).to_list()
    assert await ids(coll, {"g": 1}, sort=[("n", -1)], allow_scan=True) == expected
    assert await ids(coll, {"g": 1}, sort=[("n", -1)], limit=3, allow_scan=True) == expected[:3]


# --- regex pushdown -----------------------------------------------------------------------------

REGEX_FILTER = {"g": 1, "s": {"$regex": "^ab", "$options": "i"}}


async def _regex_collection(db: asyncdb.Database) -> asyncdb.Collection:
    coll = db.collection("cap_regex", indexes=["g"])
    words = ["abc", "ABD", "xab", "a\nb", "ab", 5]
    await coll.insert_many([{"id": f"k{i}", "g": 1, "s": w} for i, w in enumerate(words)])
    return coll


async def regex_pushdown_works(db: asyncdb.Database) -> None:
    coll = await _regex_collection(db)
    assert await id_set(coll, REGEX_FILTER) == {"k0", "k1", "k4"}
    plan = await coll.explain(REGEX_FILTER)
    assert "$regex" in repr(plan.exact) + repr(plan.approximate), plan


async def regex_pushdown_absent(db: asyncdb.Database) -> None:
    coll = await _regex_collection(db)
    assert await id_set(coll, REGEX_FILTER) == {"k0", "k1", "k4"}
    plan = await coll.explain(REGEX_FILTER)
    assert "$regex" in repr(plan.residual), plan
    assert "$regex" not in repr(plan.exact), plan


# --- bulk insert ----------------------------------------------------------------------------------


async def bulk_insert_exact(db: asyncdb.Database) -> None:
    """Native or row by row, a large insert_many is all or nothing and complete.

    Row by row it is 600 documents, one request each (the Cosmos emulator makes about 30 a
    second on a loaded 2-core machine, and the whole insert_many has the 30 s operation
    deadline): still more than any store's batch limit (DynamoDB's 25 and 100, Cosmos's 100,
    Firestore's 500)."""
    coll = db.collection("cap_bulk", indexes=["g"])
    n = 2000 if "bulk_insert" in db.capabilities else 600
    docs = [{"id": f"k{i:05d}", "g": 1, "n": i} for i in range(n)]
    with pytest.raises(asyncdb.DuplicateKey):
        await coll.insert_many([*docs, {"id": "k00000", "g": 1}])
    assert await coll.count_documents({"g": 1}) == 0
    keys = await coll.insert_many(docs)
    assert keys == [d["id"] for d in docs]
    assert await coll.count_documents({"g": 1}) == n
    assert_same(docs[567], await coll.find_one({"id": "k00567"}))


PROBES: dict[str, Probe] = {
    "transactions": Probe(transactions_work, transactions_refused),
    "conditional_writes": Probe(conditional_writes_work, conditional_writes_refused),
    "ttl": Probe(ttl_works, ttl_refused),
    "secondary_indexes": Probe(secondary_indexes_work, secondary_indexes_refused),
    "unique_indexes": Probe(unique_indexes_work, unique_indexes_refused),
    "keyset_pagination": Probe(keyset_pagination_works, keyset_pagination_refused),
    "server_side_sort": Probe(server_side_sort_works, server_side_sort_absent),
    "regex_pushdown": Probe(regex_pushdown_works, regex_pushdown_absent),
    "bulk_insert": Probe(bulk_insert_exact, bulk_insert_exact),
}

CAPABILITY_NAMES = [f.name for f in fields(asyncdb.Capabilities)]


def test_every_capability_has_a_probe() -> None:
    assert sorted(PROBES) == sorted(CAPABILITY_NAMES)


@pytest.mark.parametrize("name", CAPABILITY_NAMES)
async def test_capability_claim_matches_behaviour(db: asyncdb.Database, name: str) -> None:
    probe = PROBES[name]
    if name in db.capabilities:
        await probe.claimed(db)
    else:
        await probe.unclaimed(db)


async def test_capabilities_iterate_exactly_the_claimed_names(db: asyncdb.Database) -> None:
    caps = db.capabilities
    assert isinstance(caps, asyncdb.Capabilities)
    claimed = set(caps)
    assert claimed <= set(CAPABILITY_NAMES)
    for name in CAPABILITY_NAMES:
        assert (name in caps) == (name in claimed) == bool(getattr(caps, name))
