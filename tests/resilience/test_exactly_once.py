"""Exactly-once writes through a loopback TCP proxy in front of each network backend's real
server: the proxy forwards a write and drops its reply (``cut_after``), cuts it halfway
(``cut_within``), or delays replies past the call's timeout. Whatever the driver or asyncdb
resends, every write is applied once and reported as applied (the right result and returned
document), or reported as not applied; never applied twice.

The marker that picks the write out of the traffic is a value only the write carries
(``MARK``: reads send keys, not values), for a delete the request's own name, or on an
encrypted connection (Cosmos DB's HTTPS) the size of a request that carries a document (every
document here has a ``PAD``-sized field; reads are small)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from servers.base import ThrowawayServer
from tcp_proxy import Marker, NthRequest, TcpProxy

import asyncdb
from asyncdb import OperationTimeout

MARK = b"MARKWRITE"
PAD = 30_000  # characters of padding per document: a write request is at least this large


@dataclass(frozen=True)
class Faults:
    """How the writes of one backend are picked out of its traffic."""

    write: Marker  # a request carrying a document (insert, replace)
    increment: Marker  # the request that applies an ``$inc``
    delete: Marker | None  # the request that deletes, if it can be picked out
    returning: Marker | None = None  # the $inc of find_one_and_update, if not ``increment``

    @property
    def returning_increment(self) -> Marker:
        return self.increment if self.returning is None else self.returning


FAULTS = {
    "dynamodb": Faults(write=MARK, increment=MARK, delete=b"DeleteItem"),
    # a delete's commit names its document (the query that found it named none)
    "firestore": Faults(write=MARK, increment=MARK, delete=b"gone"),
    # HTTPS: a write is picked out by its size; a delete by its place (the query, then the
    # DELETE: test_a_cosmos_delete_whose_reply_is_lost_counts_its_document_once)
    "cosmos": Faults(write=PAD // 2, increment=PAD // 2, delete=None),
    "mongo": Faults(write=MARK, increment=MARK, delete=b"deletes\x00"),
    # the statements of a write section, before its COMMIT (test_postgres_proxy.py cuts that)
    # an $inc is one statement (no document text): cut its statement, sent in its own section
    # (find_one_and_update reads, applies and writes the document back: its text is cut)
    "postgres": Faults(write=MARK, increment=b"json_each", delete=b"DELETE FROM", returning=MARK),
}
DELETES = sorted(name for name, faults in FAULTS.items() if faults.delete is not None)


@dataclass
class Proxied:
    backend: str
    url: str
    proxy: TcpProxy
    faults: Faults


@pytest.fixture(params=sorted(FAULTS))
def target(request: pytest.FixtureRequest) -> tuple[str, str, int]:
    """The backend, the URL of a fresh database on its server, and the server's port."""
    backend: str = request.param
    url: str = request.getfixturevalue(f"{backend}_url")
    server: ThrowawayServer = request.getfixturevalue(f"{backend}_server")
    return backend, url, server.port


@pytest.fixture
async def proxied(target: tuple[str, str, int]) -> AsyncIterator[Proxied]:
    backend, url, port = target
    proxy = await TcpProxy(port).start()
    direct = f"127.0.0.1:{port}"
    assert direct in url
    if backend == "cosmos":  # the account reports the server's own address: stay on ours
        url += "&endpoint_discovery=false"
    try:
        yield Proxied(
            backend, url.replace(direct, f"127.0.0.1:{proxy.port}"), proxy, FAULTS[backend]
        )
    finally:
        await proxy.stop()


def doc(key: str, **fields: object) -> dict[str, object]:
    return {"id": key, "tag": MARK.decode(), "pad": "p" * PAD, **fields}


# cut_after: the server got the request, its reply is lost; cut_within: the connection drops
# halfway through the request, so the server gets only part of it
@pytest.mark.parametrize("fault", ["cut_after", "cut_within"])
async def test_an_increment_whose_connection_drops_is_applied_once(
    proxied: Proxied, fault: str
) -> None:
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        items = db.collection("counters")
        await items.insert_one(doc("k", n=0))
        setattr(proxied.proxy, fault, proxied.faults.increment)
        result = await items.update_one({"id": "k"}, {"$inc": {"n": 1}})
        assert proxied.proxy.cuts_done == 1
        assert (result.matched_count, result.modified_count) == (1, 1)
        assert (await items.find_one({"id": "k"}) or {})["n"] == 1


async def test_an_insert_whose_reply_is_lost_is_stored_once_and_not_a_duplicate(
    proxied: Proxied,
) -> None:
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        items = db.collection("inserted")
        await items.insert_one({"id": "warm"})
        proxied.proxy.cut_after = proxied.faults.write
        assert await items.insert_one(doc("x", n=1)) == "x"
        assert proxied.proxy.cuts_done == 1
        assert await items.find_one({"id": "x"}) == doc("x", n=1)
        proxied.proxy.cut_after = proxied.faults.write
        assert await items.insert_many([doc("y", n=1), doc("z", n=2)]) == ["y", "z"]
        assert await items.count_documents({}, allow_scan=True) == 4
        with pytest.raises(asyncdb.DuplicateKey):  # someone else's key stays a duplicate
            await items.insert_one(doc("x", n=2))


async def test_a_replace_and_a_find_one_and_update_whose_replies_are_lost_apply_once(
    proxied: Proxied,
) -> None:
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        items = db.collection("replaced")
        await items.insert_one(doc("r", n=0))
        proxied.proxy.cut_after = proxied.faults.write
        result = await items.replace_one({"id": "r"}, doc("r", n=5, v="new"))
        assert (result.matched_count, result.modified_count) == (1, 1)
        proxied.proxy.cut_after = proxied.faults.returning_increment
        after = await items.find_one_and_update({"id": "r"}, {"$inc": {"n": 1}})
        assert proxied.proxy.cuts_done == 2
        assert after == doc("r", n=6, v="new")
        assert await items.find_one({"id": "r"}) == doc("r", n=6, v="new")


@pytest.mark.parametrize("target", DELETES, indirect=True)
async def test_a_delete_whose_reply_is_lost_counts_its_document_once(proxied: Proxied) -> None:
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        items = db.collection("deleted", allow_scan=True)
        gone = "gone"
        await items.insert_many([doc(gone, n=5), doc("b", n=6)])
        assert proxied.faults.delete is not None
        proxied.proxy.cut_after = proxied.faults.delete
        assert await items.delete_one({"n": 5}) == 1  # found by a query, deleted by key
        assert proxied.proxy.cuts_done == 1
        assert await items.find_one({"id": gone}) is None
        assert await items.find_one({"id": "b"}) == doc("b", n=6)


@pytest.mark.parametrize("target", ["cosmos"], indirect=True)
async def test_a_cosmos_delete_whose_reply_is_lost_counts_its_document_once(
    proxied: Proxied,
) -> None:
    # aiohttp resends the DELETE itself on a new connection, and the resend meets a 404: the
    # count is the first attempt's, since the DELETE went out twice
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        items = db.collection("deleted", allow_scan=True)
        await items.insert_many([doc("gone", n=5), doc("b", n=6)])
        assert await items.delete_one({"n": 7}) == 0  # the same query, warmed: no DELETE
        proxied.proxy.cut_after = NthRequest(2)  # the query, then the DELETE
        assert await items.delete_one({"n": 5}) == 1
        assert proxied.proxy.cuts_done == 1
        assert await items.find_one({"id": "gone"}) is None
        assert await items.find_one({"id": "b"}) == doc("b", n=6)
        await items.insert_one(doc("again", n=8))  # another writer's delete still counts 0
        await db.collection("deleted").delete_one({"id": "again"})
        assert await items.delete_one({"id": "again"}) == 0


async def test_a_write_delayed_past_the_timeout_is_never_applied_twice(proxied: Proxied) -> None:
    async with asyncdb.connect(proxied.url, timeout=0.5, breaker_threshold=100) as db:
        items = db.collection("slow")
        await items.insert_one(doc("s", n=0))
        proxied.proxy.latency = 1.5
        with pytest.raises(OperationTimeout):
            await items.update_one({"id": "s"}, {"$inc": {"n": 1}})
        proxied.proxy.latency = 0.0
        await asyncio.sleep(1.5)  # the delayed request has reached the server by now
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        n = (await db.collection("slow").find_one({"id": "s"}) or {})["n"]
        assert n in (0, 1)


@pytest.mark.parametrize("target", ["mongo"], indirect=True)
async def test_a_mongo_commit_whose_reply_is_lost_is_applied_once(proxied: Proxied) -> None:
    # pymongo resends commitTransaction with the same transaction number; the server answers
    # the resend from the committed transaction instead of applying it again
    async with asyncdb.connect(proxied.url, timeout=20) as db:
        items = db.collection("committed")
        await items.insert_one(doc("c", n=0))
        proxied.proxy.cut_after = b"commitTransaction"
        result = await items.update_one({"id": "c"}, {"$inc": {"n": 1}})
        assert proxied.proxy.cuts_done == 1
        assert (result.matched_count, result.modified_count) == (1, 1)
        assert (await items.find_one({"id": "c"}) or {})["n"] == 1


# PostgreSQL: every write that is not an insert goes out in a write section whose statement
# reports its transaction id (a one-statement $set/$unset with exactly_once_native=1, a
# one-statement $inc always); when the
# reply to COMMIT is lost (cut_after: the server committed) or the COMMIT itself is cut
# (cut_within: the server rolls back), asyncdb asks the server with txid_status and reports the
# result or sends the write again
PG_WRITES = ["inc", "set", "unset", "replace", "find_one_and_update", "delete_many"]


@pytest.mark.parametrize("target", ["postgres"], indirect=True)
@pytest.mark.parametrize("fault", ["cut_after", "cut_within"])
@pytest.mark.parametrize("write", PG_WRITES)
async def test_a_postgres_write_whose_commit_is_lost_is_applied_once(
    proxied: Proxied, fault: str, write: str
) -> None:
    url = proxied.url
    if write in ("set", "unset"):  # one statement: in a write section only when asked
        url += "?exactly_once_native=1"
    async with asyncdb.connect(url, timeout=20) as db:
        items = db.collection("committed", allow_scan=True)
        await items.insert_many([doc("c", n=0, w=1, g=1), doc("d", n=0, g=1), doc("e", g=2)])
        setattr(proxied.proxy, fault, b"COMMIT\x00")
        after = doc("c", n=1, w=1, g=1)
        if write == "inc":  # one statement, in a write section of its own (not idempotent)
            result = await items.update_one({"id": "c"}, {"$inc": {"n": 1}})
        elif write == "set":  # one native statement
            result = await items.update_one({"id": "c"}, {"$set": {"n": 1}})
        elif write == "unset":
            result = await items.update_one({"id": "c"}, {"$unset": {"w": ""}, "$set": {"n": 1}})
            after = doc("c", n=1, g=1)
        elif write == "replace":
            result = await items.replace_one({"id": "c"}, after)
        elif write == "find_one_and_update":
            assert await items.find_one_and_update({"id": "c"}, {"$inc": {"n": 1}}) == after
        else:
            assert await items.delete_many({"g": 1}) == 2
        assert proxied.proxy.cuts_done == 1
        if write in ("inc", "set", "unset", "replace"):
            assert (result.matched_count, result.modified_count) == (1, 1)
        if write == "delete_many":
            assert [d["id"] for d in await items.find({}).to_list()] == ["e"]
        else:
            assert await items.find_one({"id": "c"}) == after
