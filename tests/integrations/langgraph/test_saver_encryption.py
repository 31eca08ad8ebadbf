"""AsyncDBSaver on a database with a key ring: checkpoint and write blobs are sealed with
associated data naming their thread, namespace and checkpoint, on memory, SQLite and
PostgreSQL (the sealing is above ``Collection``, the same on every backend)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from conformance.conftest import BACKENDS, SELECTED
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBSaver

SECRET = "patient-7f3a-diagnosis-confidential"
ENC_BACKENDS = [b for b in ("memory", "sqlite", "postgres") if b in SELECTED]


@pytest.fixture(params=ENC_BACKENDS)
def enc_url(request: pytest.FixtureRequest) -> str:
    return BACKENDS[request.param](request)


@pytest.fixture(params=[b for b in ("sqlite", "postgres") if b in SELECTED])
def reopenable_url(request: pytest.FixtureRequest) -> str:
    return BACKENDS[request.param](request)  # memory:// is a new store per connect


@pytest.fixture
def ring() -> asyncdb.KeyRing:
    return asyncdb.KeyRing.generate()


@pytest.fixture
async def enc_db(enc_url: str, ring: asyncdb.KeyRing) -> AsyncIterator[asyncdb.Database]:
    database = await asyncdb.connect(enc_url, keyring=ring)
    try:
        yield database
    finally:
        await database.close()


async def _put(
    saver: AsyncDBSaver, thread_id: str, value: Any, ns: str = "", parent: str | None = None
) -> dict[str, Any]:
    config = generate_config(thread_id, checkpoint_ns=ns)
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent
    checkpoint = generate_checkpoint(channel_values={"note": value})
    checkpoint["channel_versions"] = {"note": 1}
    stored: dict[str, Any] = await saver.aput(config, checkpoint, generate_metadata(), {"note": 1})
    return stored


def _raw(db: asyncdb.Database, name: str) -> asyncdb.Collection:
    """A plain collection of the saver's documents, opened without the saver."""
    second = "bk" if name == "chunks" else "ck"
    return db.collection(f"langgraph_{name}", key=("thread_id", second))


async def test_round_trip_sealed_at_rest_and_write_bound_to_its_place(
    enc_db: asyncdb.Database, ring: asyncdb.KeyRing
) -> None:
    saver = AsyncDBSaver(enc_db)
    tid = str(uuid4())
    stored = await _put(saver, tid, SECRET, ns="sub")
    await saver.aput_writes(stored, [("note", SECRET + "-w"), ("other", 2)], task_id="t1")
    tup = await saver.aget_tuple(stored)
    assert tup is not None
    assert tup.checkpoint["channel_values"]["note"] == SECRET
    assert [(c, v) for _, c, v in tup.pending_writes or []] == [
        ("note", SECRET + "-w"),
        ("other", 2),
    ]
    docs = await _raw(enc_db, "checkpoints").find({"thread_id": tid}).to_list()
    buckets = await _raw(enc_db, "writes").find({"thread_id": tid}).to_list()
    assert len(docs) == 1 and len(buckets) == 1
    assert SECRET.encode() not in repr(docs + buckets).encode()
    assert ring.key_id_of(docs[0]["b"]) == ring.primary
    # swap two writes' blobs inside the bucket: each names its own channel and index
    w = buckets[0]["w"]
    w[0]["b"], w[1]["b"] = w[1]["b"], w[0]["b"]
    await _raw(enc_db, "writes").replace_one({"thread_id": tid, "ck": buckets[0]["ck"]}, buckets[0])
    with pytest.raises(asyncdb.DecryptionError):
        await saver.aget_tuple(stored)


async def test_moved_or_flipped_blob_and_disabled_key_raise(
    enc_db: asyncdb.Database, ring: asyncdb.KeyRing
) -> None:
    saver = AsyncDBSaver(enc_db)
    tid = str(uuid4())
    a = await _put(saver, tid, "value-a")
    b = await _put(saver, tid, "value-b", parent=a["configurable"]["checkpoint_id"])
    other = await _put(saver, str(uuid4()), "value-c")
    raw = _raw(enc_db, "checkpoints")
    doc_a, doc_b = sorted(
        await raw.find({"thread_id": tid}).to_list(), key=lambda d: d["checkpoint_id"]
    )
    # swap the blobs of two checkpoints of one thread
    await raw.update_one({"thread_id": tid, "ck": doc_a["ck"]}, {"$set": {"b": doc_b["b"]}})
    await raw.update_one({"thread_id": tid, "ck": doc_b["ck"]}, {"$set": {"b": doc_a["b"]}})
    for config in (a, b):
        with pytest.raises(asyncdb.DecryptionError):
            await saver.aget_tuple(config)
    # a blob moved to another thread
    otid = other["configurable"]["thread_id"]
    [doc_o] = await raw.find({"thread_id": otid}).to_list()
    await raw.update_one({"thread_id": otid, "ck": doc_o["ck"]}, {"$set": {"b": doc_a["b"]}})
    with pytest.raises(asyncdb.DecryptionError):
        await saver.aget_tuple(other)
    # a whole document (blob, ids and all) copied under another checkpoint's key
    forged = {**doc_a, "ck": doc_a["ck"][:-1] + "z"}
    await raw.insert_one(forged)
    with pytest.raises(asyncdb.DecryptionError, match="another checkpoint's key"):
        await saver.aget_tuple(
            {"configurable": {**a["configurable"], "checkpoint_id": forged["ck"].split("|")[1]}}
        )
    # a flipped bit in the last byte (the tag)
    await raw.update_one({"thread_id": tid, "ck": doc_a["ck"]}, {"$set": {"b": doc_a["b"]}})
    assert (await saver.aget_tuple(a)) is not None  # restored: opens again
    flipped = doc_a["b"][:-1] + bytes([doc_a["b"][-1] ^ 1])
    await raw.update_one({"thread_id": tid, "ck": doc_a["ck"]}, {"$set": {"b": flipped}})
    with pytest.raises(asyncdb.DecryptionError):
        await saver.aget_tuple(a)
    # the key disabled: nothing it sealed opens
    await raw.update_one({"thread_id": tid, "ck": doc_a["ck"]}, {"$set": {"b": doc_a["b"]}})
    ring.add("k2", os.urandom(32))
    ring.promote("k2")
    ring.disable("k1")
    with pytest.raises(asyncdb.DecryptionError) as err:
        await saver.aget_tuple(a)
    assert err.value.key_id == "k1"


async def test_rotation_keeps_old_checkpoints_readable_and_copy_reseals(
    enc_db: asyncdb.Database, ring: asyncdb.KeyRing
) -> None:
    saver = AsyncDBSaver(enc_db)
    tid = str(uuid4())
    old = await _put(saver, tid, "before-rotation")
    await saver.aput_writes(old, [("note", "w-before")], task_id="t1")
    ring.add("k2", os.urandom(32))
    ring.promote("k2")
    new = await _put(saver, tid, "after-rotation", parent=old["configurable"]["checkpoint_id"])
    got_old, got_new = await saver.aget_tuple(old), await saver.aget_tuple(new)
    assert got_old is not None and got_new is not None
    assert got_old.checkpoint["channel_values"]["note"] == "before-rotation"
    assert [v for _, _, v in got_old.pending_writes or []] == ["w-before"]
    assert got_new.checkpoint["channel_values"]["note"] == "after-rotation"
    keys = {
        d["checkpoint_id"]: ring.key_id_of(d["b"])
        for d in await _raw(enc_db, "checkpoints").find({"thread_id": tid}).to_list()
    }
    assert keys == {
        old["configurable"]["checkpoint_id"]: "k1",
        new["configurable"]["checkpoint_id"]: "k2",
    }
    # a copied thread is sealed again for its own thread id (under the primary)
    dst = str(uuid4())
    await saver.acopy_thread(tid, dst)
    copied = await saver.aget_tuple({"configurable": {**old["configurable"], "thread_id": dst}})
    assert copied is not None and copied.checkpoint["channel_values"]["note"] == "before-rotation"
    assert [v for _, _, v in copied.pending_writes or []] == ["w-before"]
    docs = await _raw(enc_db, "checkpoints").find({"thread_id": dst}).to_list()
    assert {ring.key_id_of(d["b"]) for d in docs} == {"k2"}


async def test_large_blob_chunks_hold_ciphertext(enc_db: asyncdb.Database) -> None:
    saver = AsyncDBSaver(enc_db)
    saver.chunks.limit = 64 * 1024  # as on DynamoDB: the blob is split into chunk documents
    tid = str(uuid4())
    stored = await _put(saver, tid, SECRET * 10_000)
    chunks = await _raw(enc_db, "chunks").find({"thread_id": tid}).to_list()
    assert len(chunks) > 1
    assert all(SECRET.encode() not in c["d"] for c in chunks)
    tup = await saver.aget_tuple(stored)
    assert tup is not None and tup.checkpoint["channel_values"]["note"] == SECRET * 10_000
    first, second = sorted(chunks, key=lambda c: c["bk"])[:2]
    chunks_coll = _raw(enc_db, "chunks")
    await chunks_coll.update_one(
        {"thread_id": tid, "bk": first["bk"]}, {"$set": {"d": second["d"]}}
    )
    with pytest.raises(asyncdb.DecryptionError):
        await saver.aget_tuple(stored)


async def test_plaintext_checkpoints_refused_unless_allowed(
    reopenable_url: str, ring: asyncdb.KeyRing
) -> None:
    url = reopenable_url
    tid = str(uuid4())
    async with asyncdb.connect(url) as plain_db:
        stored = await _put(AsyncDBSaver(plain_db), tid, SECRET)
        async with asyncdb.connect(url, keyring=ring) as enc_db:
            with pytest.raises(asyncdb.DecryptionError, match="allow_plaintext"):
                await AsyncDBSaver(enc_db).aget_tuple(stored)
            lenient = AsyncDBSaver(enc_db, allow_plaintext=True)
            tup = await lenient.aget_tuple(stored)
            assert tup is not None and tup.checkpoint["channel_values"]["note"] == SECRET
            sealed = await _put(lenient, tid, "new", parent=stored["configurable"]["checkpoint_id"])
            assert (await AsyncDBSaver(enc_db).aget_tuple(sealed)) is not None
        # and a saver without the ring refuses what was sealed
        with pytest.raises(asyncdb.DecryptionError, match="no keyring"):
            await AsyncDBSaver(plain_db).aget_tuple(sealed)


@pytest.mark.parametrize("name", [b for b in ("sqlite",) if b in SELECTED])
async def test_official_conformance_suite_reaches_full_with_a_keyring(
    name: str, request: pytest.FixtureRequest
) -> None:
    ring = asyncdb.KeyRing.generate()
    async with asyncdb.connect(BACKENDS[name](request), keyring=ring) as db:

        @checkpointer_test(name="AsyncDBSaver[sqlite, keyring]")
        async def factory() -> AsyncIterator[AsyncDBSaver]:
            saver = AsyncDBSaver(db)
            await saver.setup()
            yield saver

        report = await validate(factory)
        stored = await _raw(db, "checkpoints").find({}, allow_scan=True).to_list()
    failures = {n: r.failures for n, r in report.results.items() if r.failures}
    assert failures == {}
    assert {n for n, r in report.results.items() if r.detected and r.passed} == {
        c.value for c in ALL_CAPABILITIES
    }
    assert report.conformance_level() == "FULL"
    assert stored and all(d.get("e") == 1 for d in stored)  # the suite's blobs were sealed
