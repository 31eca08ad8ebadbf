"""Field and record encryption on every backend, against the real servers (DESIGN section 7).

What is stored holds no plaintext (read through a plain collection of the same name and, for
SQLite, PostgreSQL and MongoDB, through the raw driver); ciphertexts moved between documents,
fields and collections, flipped bits, foreign rings and plaintext injections raise
DecryptionError; Tink's four rotation phases keep reads and equality queries right; an 8-bit blind
index (many collisions) never changes a query's answer; updates, upserts, pages, projections,
transactions and concurrent writers work on encrypted fields.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st

import asyncdb
from asyncdb.query.evaluate import matches
from asyncdb.query.parse import parse_filter
from asyncdb.security import EncryptedCollection, KeyRing

from .support import assert_same, id_set
from .test_differential import FILTER_EXAMPLES, run_examples

FIELDS = {
    "ssn": "equality",
    "email": "equality",
    "tags": "equality",
    "notes": "opaque",
    "profile.dob": "opaque",
    "blob": "opaque",
    "amount": "opaque",
}
RECORD = {"*": "opaque", "status": "plain", "email": "equality"}
MARKERS = ("MARK-ssn-7f3a", "mark-email@example.com", "MARK-tag-1", "MARK-notes", "MARK-rec")
SECRET_NUMBERS = ("31415.9265", "271828182")
SECRET_BYTES = b"MARK-bytes\x00\xff"


def people() -> list[dict[str, Any]]:
    """Every portable value type sits in an encrypted field."""
    return [
        {
            "id": "u1",
            "ssn": "MARK-ssn-7f3a",
            "email": "mark-email@example.com",
            "tags": ["MARK-tag-1", "b"],
            "notes": {"text": "MARK-notes", "n": 271828182, "ok": True, "none": None},
            "profile": {"dob": datetime(1990, 5, 17, 13, 45, 12, 345000, tzinfo=UTC), "x": 1},
            "blob": SECRET_BYTES,
            "amount": Decimal("31415.9265"),
            "age": 41,
        },
        {"id": "u2", "ssn": "222", "email": None, "tags": [], "notes": 2.5, "age": 30},
        {"id": "u3", "ssn": 333, "notes": [1, "two", [3.0]], "age": 29},
    ]


async def raw_text(backend: str, url: str, db: asyncdb.Database, name: str) -> str:
    """Everything stored for collection ``name``, as text: through a plain asyncdb collection,
    and through the driver itself on SQLite, PostgreSQL and MongoDB."""
    plain = db.collection(name, allow_scan=True)
    parts = [repr(await plain.find({}).to_list())]
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
        parts.append(repr(rows))
        assert rows, "the raw SQLite table is empty"
    elif backend == "postgres":
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(f'SELECT * FROM "{name}"')
        finally:
            await conn.close()
        parts.append(repr([tuple(r.values()) for r in rows]))
        assert rows, "the raw PostgreSQL table is empty"
    elif backend == "mongo":
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        try:
            docs = await client.get_default_database()[name].find({}).to_list()
        finally:
            await client.close()
        parts.append(repr(docs))
        assert docs, "the raw MongoDB collection is empty"
    return "\n".join(parts)


def raw_view(db: asyncdb.Database, coll: asyncdb.Collection) -> asyncdb.Collection:
    """The plain collection under an encrypted one, with the same indexes (on DynamoDB a write
    through a handle without them would drop the item from its blind-index GSI)."""
    assert isinstance(coll, EncryptedCollection)
    return db.collection(coll.name, indexes=coll.inner.spec.indexes)


def assert_no_plaintext(text: str) -> None:
    for marker in (*MARKERS, *SECRET_NUMBERS):
        assert marker not in text, f"plaintext {marker!r} found in the store"
    assert base64.b64encode(SECRET_BYTES).decode() not in text
    assert repr(SECRET_BYTES)[2:-1] not in text
    assert "1990-05-17" not in text


@pytest.fixture
async def ring() -> KeyRing:
    return KeyRing.generate()


async def test_every_value_type_round_trips_and_the_store_holds_no_plaintext(
    backend_name: str, backend_url: str, ring: KeyRing
) -> None:
    async with asyncdb.connect(backend_url, keyring=ring) as db:
        users = db.collection("users", encrypted=FIELDS)
        vault = db.collection("vault", encrypted=RECORD)
        docs = people()
        await users.insert_many(docs)
        record = {
            "id": "v1",
            "email": "mark-email@example.com",
            "status": "open",
            "deep": {"a": ["MARK-rec", SECRET_BYTES], "when": datetime(2026, 1, 2, tzinfo=UTC)},
        }
        await vault.insert_one(record)
        for doc in docs:
            assert_same(doc, await users.find_one({"id": doc["id"]}))
        assert_same(record, await vault.find_one({"id": "v1"}))
        assert_same(docs[0], await users.find_one({"ssn": "MARK-ssn-7f3a"}))
        assert await id_set(users, {"tags": "MARK-tag-1"}) == {"u1"}  # an element of the array
        assert await id_set(users, {"email": None}) == {"u2", "u3"}  # null and missing
        assert await id_set(users, {"ssn": {"$in": [333.0, "222"]}}) == {"u2", "u3"}
        assert await id_set(users, {"ssn": {"$ne": "222"}}) == {"u1", "u3"}
        assert await id_set(users, {"email": {"$exists": False}}) == {"u3"}
        assert_same(record, await vault.find_one({"email": "mark-email@example.com"}))
        assert await id_set(vault, {"status": "open"}) == {"v1"}  # a plain exception
        assert_no_plaintext(await raw_text(backend_name, backend_url, db, "users"))
        assert_no_plaintext(await raw_text(backend_name, backend_url, db, "vault"))
        plan = await users.explain({"ssn": "MARK-ssn-7f3a", "age": {"$gt": 3}})
        assert "MARK" not in str(plan) and "_enc_bi_ssn" in str(plan)


async def test_moved_flipped_foreign_or_plaintext_ciphertext_raises_decryption_error(
    backend_url: str, ring: KeyRing
) -> None:
    async with asyncdb.connect(backend_url, keyring=ring) as db:
        users = db.collection("users", encrypted=FIELDS)
        copies = db.collection("users_copy", encrypted=FIELDS)
        vault = db.collection("vault", encrypted=RECORD)
        plain = raw_view(db, users)
        plain_vault = raw_view(db, vault)
        await users.insert_many(
            [{"id": f"u{i}", "ssn": f"MARK-ssn-{i}", "email": f"e{i}@x.io"} for i in range(6)]
        )
        await vault.insert_many([{"id": "a", "x": "MARK-rec"}, {"id": "b", "x": "MARK-rec"}])
        raw = {d["id"]: d async for d in plain.find({}, allow_scan=True)}

        async def refused(coll: asyncdb.Collection, key: str, field: str) -> None:
            with pytest.raises(asyncdb.DecryptionError) as info:
                await coll.find_one({"id": key})
            assert info.value.field == field and info.value.key_id == "k1"
            assert "MARK" not in str(info.value)

        await plain.update_one({"id": "u0"}, {"$set": {"ssn": raw["u1"]["ssn"]}})  # document
        await refused(users, "u0", "ssn")
        await plain.update_one({"id": "u1"}, {"$set": {"ssn": raw["u1"]["email"]}})  # field
        await refused(users, "u1", "ssn")
        await db.collection("users_copy").insert_one(raw["u2"])  # collection
        await refused(copies, "u2", "ssn")
        text = raw["u3"]["email"]
        flipped = text[:20] + ("A" if text[20] != "A" else "B") + text[21:]
        await plain.update_one({"id": "u3"}, {"$set": {"email": flipped}})  # a flipped bit
        await refused(users, "u3", "email")
        await plain.update_one({"id": "u4"}, {"$set": {"ssn": "MARK-plain"}})  # plaintext
        await refused(users, "u4", "ssn")
        vault_raw = await plain_vault.find_one({"id": "a"})
        assert vault_raw is not None
        await plain_vault.update_one({"id": "b"}, {"$set": {"_enc": vault_raw["_enc"]}})
        await refused(vault, "b", "*")
        with pytest.raises(asyncdb.DecryptionError):  # found by token, then refused
            await users.find_one({"ssn": "MARK-ssn-0"})
        assert await users.find_one({"id": "u5"}) == {
            "id": "u5",
            "ssn": "MARK-ssn-5",
            "email": "e5@x.io",
        }
        db._keyring = KeyRing.generate()  # another ring with the same key id
        with pytest.raises(asyncdb.DecryptionError) as info:
            await db.collection("users", encrypted=FIELDS).find_one({"id": "u5"})
        assert info.value.key_id == "k1"


async def test_four_phase_rotation_keeps_reads_and_equality_queries_correct(
    backend_url: str,
) -> None:
    ring = KeyRing.generate()
    k1_only = KeyRing.from_json(ring.export())  # a reader that never learns k2
    spec = {"ssn": "equality", "n": "opaque"}
    async with asyncdb.connect(backend_url, keyring=k1_only) as db:
        old_reader = db.collection("users", encrypted=spec)
        db._keyring = ring
        users = db.collection("users", encrypted=spec)
        plain = raw_view(db, users)

        async def key_ids() -> dict[str, str]:
            return {d["id"]: d["_enc_key"] async for d in plain.find({}, allow_scan=True)}

        async def check(expected: dict[str, str]) -> None:
            for key, ssn in expected.items():
                assert (await users.find_one({"id": key}) or {}).get("ssn") == ssn
            for ssn in set(expected.values()):
                want = {k for k, v in expected.items() if v == ssn}
                assert await id_set(users, {"ssn": ssn}) == want, ssn

        # phase 1: k1 primary
        await users.insert_one({"id": "d1", "ssn": "A", "n": 1})
        await check({"d1": "A"})
        # phase 2: k2 added (opens, does not seal): every reader must learn it before phase 3
        ring.add("k2", os.urandom(32))
        await users.insert_one({"id": "d2", "ssn": "B", "n": 2})
        assert await key_ids() == {"d1": "k1", "d2": "k1"}
        await check({"d1": "A", "d2": "B"})
        assert (await old_reader.find_one({"id": "d2"}) or {}).get("ssn") == "B"
        snapshot = await plain.find_one({"id": "d1"})
        # phase 3: k2 primary; a query ORs the tokens of both keys
        ring.promote("k2")
        await users.insert_one({"id": "d3", "ssn": "A", "n": 3})
        await users.update_one({"id": "d2"}, {"$inc": {"n": 1}})
        assert await key_ids() == {"d1": "k1", "d2": "k2", "d3": "k2"}
        await check({"d1": "A", "d2": "B", "d3": "A"})
        with pytest.raises(asyncdb.DecryptionError) as info:
            await old_reader.find_one({"id": "d3"})
        assert info.value.key_id == "k2"
        seen: list[int] = []
        assert await users.rotate_keys(batch_size=1, progress=seen.append) == 1
        assert seen == [1] and await users.rotate_keys() == 0  # resumable: nothing left
        assert set((await key_ids()).values()) == {"k2"}
        # phase 4: k1 disabled; everything was re-sealed under k2
        ring.disable("k1")
        await check({"d1": "A", "d2": "B", "d3": "A"})
        assert await users.find_one({"id": "d2"}) == {"id": "d2", "ssn": "B", "n": 3}
        assert snapshot is not None
        await plain.replace_one({"id": "d1"}, snapshot)  # data left under the disabled key
        with pytest.raises(asyncdb.DecryptionError, match="disabled") as info:
            await users.find_one({"id": "d1"})
        assert info.value.key_id == "k1"


async def test_updates_upserts_pages_transactions_and_concurrent_writers(
    db: asyncdb.Database,
) -> None:
    ring = KeyRing.generate()
    db._keyring = ring  # the `db` fixture connects without one
    users = db.collection("users", encrypted={"ssn": "equality", "n": "opaque", "log": "opaque"})
    await users.insert_many([{"id": f"u{i}", "ssn": f"s{i % 3}", "n": 0} for i in range(9)])
    result = await users.update_many(
        {"ssn": "s1"}, {"$inc": {"n": 5}, "$push": {"log": "x"}, "$set": {"seen": True}}
    )
    assert (result.matched_count, result.modified_count) == (3, 3)
    assert await users.find_one({"id": "u4"}) == {
        "id": "u4",
        "ssn": "s1",
        "n": 5,
        "log": ["x"],
        "seen": True,
    }
    await users.update_one({"id": "u4"}, {"$unset": {"log": ""}, "$set": {"ssn": "s9"}})
    assert await id_set(users, {"ssn": "s9"}) == {"u4"}
    assert "u4" not in await id_set(users, {"ssn": "s1"})
    upserted = await users.update_one({"ssn": "new"}, {"$set": {"n": 1}}, upsert=True)
    assert upserted.upserted_id is not None
    assert await users.find_one({"ssn": "new"}, projection={"n": 1}) == {
        "id": upserted.upserted_id,
        "n": 1,
    }
    after = await users.find_one_and_update({"id": "u0"}, {"$inc": {"n": 2}})
    assert after is not None and after["n"] == 2
    pages: list[str] = []
    cursor = None
    while True:
        page = await users.find_page({"ssn": {"$in": ["s0", "s2"]}}, limit=2, cursor=cursor)
        pages += [d["id"] for d in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(pages) == ["u0", "u2", "u3", "u5", "u6", "u8"]
    assert await users.count_documents({"ssn": "s0"}) == 3
    assert await users.delete_many({"ssn": "s0"}) == 3
    assert await users.count_documents({"ssn": "s0"}) == 0
    # concurrent writers on one encrypted counter: the compare-and-set loses no update
    await asyncio.gather(*(users.update_one({"id": "u1"}, {"$inc": {"n": 1}}) for _ in range(8)))
    assert (await users.find_one({"id": "u1"}) or {}).get("n") == 13
    # rotation while writers update: nothing lost, everything under the new key
    ring.add("k2", os.urandom(32))
    ring.promote("k2")
    await asyncio.gather(
        users.rotate_keys(batch_size=2),
        *(users.update_one({"id": "u2"}, {"$inc": {"n": 1}}) for _ in range(4)),
    )
    assert await users.rotate_keys() == 0
    assert (await users.find_one({"id": "u2"}) or {}).get("n") == 4
    if "transactions" in db.capabilities:
        db.collection("users")  # a plain handle opened meanwhile must not change the layer
        async with db.transaction() as tx:
            await tx.collection("users").update_one({"id": "u7"}, {"$set": {"n": 70}})
        assert (await users.find_one({"id": "u7"}) or {}).get("n") == 70
        assert "u7" in await id_set(users, {"ssn": "s1"})  # still found by its blind index
        raw = await db.collection("users").find_one({"id": "u7"})
        assert raw is not None and str(raw["n"]).startswith("ae1:")


def _colliding_pool(ring: KeyRing) -> tuple[list[Any], int]:
    """Values whose 8-bit tokens collide in groups, and how many share a token with another."""
    from asyncdb.security.codec import DocumentCodec
    from asyncdb.security.spec import EncryptionSpec

    spec = EncryptionSpec.parse({"v": {"mode": "equality", "bits": 8}}, "fp", ("id",))
    codec = DocumentCodec(spec, ring)
    by_token: dict[str, list[Any]] = {}
    for value in [*range(400), *(f"s{i}" for i in range(200))]:
        by_token.setdefault(codec.token(spec.rules[0], value, "k1"), []).append(value)
    groups = [vs[:3] for vs in by_token.values() if len(vs) >= 3][:6]
    pool = [v for g in groups for v in g] + [1.0, None, [1, 2]]
    return pool, sum(len(g) for g in groups)


FIXED_RING_JSON = KeyRing({"k1": bytes(range(32))}, "k1").export()
# 6 examples per backend in CI; ASYNCDB_TEST_EXAMPLES=2000 (the deeper local hunt) gives 66.
COLLISION_EXAMPLES = max(6, FILTER_EXAMPLES // 30)


def test_an_8_bit_index_returns_exactly_the_matching_plaintexts(backend_url: str) -> None:
    ring = KeyRing.from_json(FIXED_RING_JSON)
    pool, colliding = _colliding_pool(ring)
    assert colliding >= 12  # the index really collides: false positives reach the re-check
    values = st.sampled_from(pool)
    case = st.tuples(
        st.lists(values, min_size=1, max_size=14),
        st.lists(
            st.tuples(st.sampled_from(["$eq", "$in", "$ne", "$nin"]), values, values),
            min_size=3,
            max_size=3,
        ),
    )

    async def check(db: asyncdb.Database, example: Any) -> int:
        db._keyring = ring
        coll = db.collection(
            "fp", encrypted={"v": {"mode": "equality", "bits": 8}}, allow_scan=True
        )
        await coll.delete_many({})
        stored, queries = example
        docs = [{"id": f"d{i}", "v": v} for i, v in enumerate(stored)]
        await coll.insert_many(docs)
        for op, a, b in queries:
            arg = [a, b] if op in ("$in", "$nin") else a
            flt = {"v": {op: arg}}
            node = parse_filter(flt)
            expected = {d["id"] for d in docs if matches(node, d)}
            assert await id_set(coll, flt) == expected, flt
        return len(queries)

    examples = COLLISION_EXAMPLES
    assert run_examples(backend_url, case, check, examples) >= 3 * examples


async def test_a_typed_encrypted_collection_validates_seals_and_returns_models(
    backend_name: str, backend_url: str
) -> None:
    """``model=`` with ``encrypted=``: writes validated by the model before any I/O, then
    sealed; every read path opens, then returns model instances; a transaction keeps both."""
    import pydantic

    class Person(pydantic.BaseModel):
        id: str
        ssn: str
        notes: str = ""
        n: int = 0

    ring = KeyRing.generate()
    async with asyncdb.connect(backend_url, keyring=ring) as db:
        people = db.collection(
            "typed_people", model=Person, encrypted={"ssn": "equality", "notes": "opaque"}
        )
        assert isinstance(people, EncryptedCollection)
        await people.insert_many(
            [Person(id=f"p{i}", ssn=f"MARK-ssn-{i % 2}", notes="MARK-notes") for i in range(4)]
        )
        with pytest.raises(asyncdb.ValidationError):
            await people.insert_one({"id": "bad", "ssn": 5, "n": "many"})
        with pytest.raises(asyncdb.ValidationError):
            await people.update_one({"id": "p0"}, {"$set": {"n": "many"}})
        one = await people.find_one({"id": "p1"})  # the point read
        assert one == Person(id="p1", ssn="MARK-ssn-1", notes="MARK-notes")
        found = await people.find({"ssn": "MARK-ssn-0"}, sort=[("id", 1)]).to_list()
        assert [type(p) for p in found] == [Person, Person]
        assert [p.id for p in found] == ["p0", "p2"]
        page = await people.find_page({"ssn": "MARK-ssn-1"}, limit=10)
        assert sorted(p.id for p in page.items) == ["p1", "p3"]
        assert all(isinstance(p, Person) for p in page.items)
        after = await people.find_one_and_update({"id": "p2"}, {"$inc": {"n": 2}})
        assert after == Person(id="p2", ssn="MARK-ssn-0", notes="MARK-notes", n=2)
        gone = await people.find_one_and_delete({"ssn": "MARK-ssn-1"}, sort=[("id", -1)])
        assert gone is not None and gone.id == "p3"
        assert await people.distinct("ssn", allow_scan=True) == ["MARK-ssn-0", "MARK-ssn-1"]
        projected = await people.find_one({"id": "p1"}, projection={"ssn": 1})
        assert projected == {"id": "p1", "ssn": "MARK-ssn-1"}  # projected: a dict
        if "transactions" in db.capabilities:
            async with db.transaction() as tx:
                inside = tx.collection("typed_people")
                await inside.update_one({"id": "p0"}, {"$set": {"notes": "MARK-notes-2"}})
                got = await inside.find_one({"ssn": "MARK-ssn-0", "id": "p0"})
                assert isinstance(got, Person) and got.notes == "MARK-notes-2"
            assert (await people.find_one({"id": "p0"})) == Person(
                id="p0", ssn="MARK-ssn-0", notes="MARK-notes-2"
            )
        text = await raw_text(backend_name, backend_url, db, "typed_people")
        assert "MARK-ssn" not in text and "MARK-notes" not in text
