"""Encrypted collections without a server: refusals before any I/O, configuration errors,
plaintext migration with allow_plaintext, and the read cache holding only ciphertext (Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

import asyncdb
from asyncdb.security import KeyRing

SPEC = {"ssn": "equality", "notes": "opaque", "address.zip": "equality"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"ssn": {"$gt": "1"}}, "ssn"),
        ({"ssn": {"$regex": "^1"}}, "ssn"),
        ({"ssn": {"$type": "string"}}, "ssn"),
        ({"ssn": {"$size": 1}}, "ssn"),
        ({"ssn": {"$all": ["1"]}}, "ssn"),
        ({"ssn": {"$not": {"$lt": "5"}}}, "ssn"),
        ({"$or": [{"age": 1}, {"notes": "x"}]}, "notes"),
        ({"notes": {"$exists": True}}, "notes"),
        ({"ssn.part": 1}, "ssn.part"),
        ({"address": {"zip": "1"}}, "address"),
        ({"address.zip": {"$lte": "9"}}, "address.zip"),
        ({"_enc_key": "k1"}, "_enc_key"),
    ],
)
async def test_conditions_encrypted_fields_cannot_answer_are_refused_before_any_io(
    tmp_path: Path, query: dict[str, Any], field: str
) -> None:
    db = await asyncdb.connect(f"sqlite:///{tmp_path / 'x.db'}", keyring=KeyRing.generate())
    users = db.collection("users", encrypted=SPEC, allow_scan=True)
    await db.close()  # any I/O now fails with another error: the QueryError comes first
    for call in (
        lambda: users.find(query).to_list(),
        lambda: users.count_documents(query),
        lambda: users.update_many(query, {"$set": {"a": 1}}),
        lambda: users.delete_many(query),
    ):
        with pytest.raises(asyncdb.QueryError) as info:
            await call()
        assert info.value.path == field


async def test_sorting_by_an_encrypted_field_is_refused(tmp_path: Path) -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        users = db.collection("users", encrypted=SPEC, allow_scan=True)
        with pytest.raises(asyncdb.QueryError, match="sort") as info:
            users.find({}, sort=[("ssn", 1)])
        assert info.value.path == "ssn"
        with pytest.raises(asyncdb.QueryError):
            users.find({}).sort([("address", 1)])
        with pytest.raises(asyncdb.QueryError, match="reserved"):
            await users.insert_one({"id": "a", "_enc_v": 1})
        with pytest.raises(asyncdb.QueryError, match="reserved"):
            await users.update_one({"id": "a"}, {"$set": {"_enc_key": "k9"}})


def test_bad_specs_are_configuration_errors() -> None:
    async def open_(spec: Any, **kw: Any) -> None:
        async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
            db.collection("c", encrypted=spec, **kw)

    import asyncio

    for spec, kw, match in [
        ({"id": "opaque"}, {}, "key field"),
        ({"a": "fancy"}, {}, "mode"),
        ({"a": "equality", "a.b": "opaque"}, {}, "overlap"),
        ({"a": {"mode": "equality", "bits": 0}}, {}, "bits"),
        ({"a": "plain"}, {}, "record"),
        ({"*": "opaque", "a.b": "plain"}, {}, "top-level"),
        ({"ssn": "equality"}, {"indexes": ["ssn"]}, "blind index"),
        ({"exp": "opaque"}, {"ttl": "exp"}, "ttl"),
    ]:
        with pytest.raises(asyncdb.ConfigurationError, match=match):
            asyncio.run(open_(spec, **kw))

    async def no_ring() -> None:
        async with asyncdb.connect("memory://") as db:
            db.collection("c", encrypted={"a": "opaque"})

    with pytest.raises(asyncdb.ConfigurationError, match="keyring"):
        asyncio.run(no_ring())


async def test_allow_plaintext_reads_old_data_and_rotate_keys_seals_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrate.db'}"
    async with asyncdb.connect(url, keyring=KeyRing.generate()) as db:
        plain = db.collection("people")
        await plain.insert_many([{"id": f"p{i}", "ssn": f"s{i}", "notes": "n"} for i in range(5)])
        strict = db.collection("people", encrypted={"ssn": "equality", "notes": "opaque"})
        with pytest.raises(asyncdb.DecryptionError, match="plaintext") as info:
            await strict.find_one({"id": "p1"})
        assert info.value.field == "ssn" and "s1" not in str(info.value)
        people = db.collection(
            "people",
            encrypted={"ssn": "equality", "notes": "opaque"},
            allow_plaintext=True,
            allow_scan=True,
        )
        assert await people.find_one({"ssn": "s3"}) == {"id": "p3", "ssn": "s3", "notes": "n"}
        await people.insert_one({"id": "p9", "ssn": "s3", "notes": "new"})
        assert {d["id"] async for d in people.find({"ssn": "s3"})} == {"p3", "p9"}
        assert await people.rotate_keys(batch_size=2) == 5
        raw = (
            await db.collection("people", indexes=people.inner.spec.indexes)
            .find({}, allow_scan=True)
            .to_list()
        )
        assert all(d["ssn"].startswith("ae1:") and d["_enc_key"] == "k1" for d in raw)
        assert await strict.find_one({"id": "p1"}) == {"id": "p1", "ssn": "s1", "notes": "n"}


async def test_the_read_cache_holds_only_ciphertext(tmp_path: Path, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'cached.db'}"
    # a generous per-call timeout: on a loaded machine 50 ms Redis calls fail open (no hits)
    ring = KeyRing.generate()
    async with asyncdb.connect(url, cache=redis_url, cache_timeout=5.0, keyring=ring) as db:
        users = db.collection("users", encrypted={"ssn": "equality", "notes": "opaque"})
        await users.insert_one({"id": "u1", "ssn": "MARK-ssn", "notes": "MARK-notes"})
        for _ in range(2):
            assert (await users.find_one({"id": "u1"}) or {}).get("ssn") == "MARK-ssn"
            assert [d["id"] async for d in users.find({"ssn": "MARK-ssn"})] == ["u1"]
        assert db.cache is not None and db.cache.stats()["hits"] >= 2
        client = redis.asyncio.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter()]
            values = [await client.get(k) for k in keys if await client.type(k) == b"string"]
        finally:
            await client.aclose()
        text = repr(values)
        assert "ae1:" in text and "MARK" not in text and "MARK" not in repr(keys)


async def test_dotted_equality_fields_and_record_field_order() -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        users = db.collection("users", encrypted=SPEC)
        doc = {"id": "u1", "address": {"city": "Porto", "zip": "4000-1"}, "ssn": "1"}
        await users.insert_one(doc)
        assert await users.find_one({"address.zip": "4000-1"}) == doc
        assert await users.find_one({"address.city": "Porto", "address.zip": "4000-1"}) == doc
        raw = await db.collection("users").find_one({"id": "u1"})
        assert raw is not None and raw["address"]["city"] == "Porto"
        assert raw["address"]["zip"].startswith("ae1:")
        with pytest.raises(asyncdb.QueryError, match="inside an array"):
            await users.insert_one({"id": "u2", "address": [{"zip": "1"}]})
        vault = db.collection("vault", encrypted={"*": "opaque", "kind": "plain"})
        record = {"b": 1, "id": "v1", "kind": "x", "a": [2]}
        await vault.insert_one(record)
        got = await vault.find_one({"id": "v1"})
        assert got == record and list(got or {}) == list(record)  # field order kept


async def test_sort_skip_limit_and_projection_apply_after_the_recheck() -> None:
    ring = KeyRing({"k1": bytes(32)}, "k1")
    async with asyncdb.connect("memory://", keyring=ring) as db:
        spec = {"v": {"mode": "equality", "bits": 1}}  # 1 bit: half of all values collide
        coll = db.collection("c", encrypted=spec, allow_scan=True)
        await coll.insert_many([{"id": f"d{i:02d}", "v": i % 4, "n": -i} for i in range(20)])
        got = await coll.find({"v": 1}, {"n": 1}, sort=[("n", 1)], skip=1, limit=3).to_list()
        assert got == [{"id": "d13", "n": -13}, {"id": "d09", "n": -9}, {"id": "d05", "n": -5}]
        assert await coll.count_documents({"v": {"$in": [1, 2]}}) == 10
        assert await coll.count_documents({"v": {"$nin": [1, 2]}, "n": {"$lt": -10}}) == 5
        assert await coll.delete_many({"v": 3}) == 5
        assert await coll.count_documents({}) == 15


async def test_rotate_keys_on_a_plain_collection_is_not_supported() -> None:
    async with asyncdb.connect("memory://") as db:
        with pytest.raises(asyncdb.NotSupported, match="not encrypted"):
            await db.collection("plain").rotate_keys()


async def test_record_level_updates_upserts_and_key_changes() -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        vault = db.collection("vault", encrypted={"*": "opaque", "email": "equality"})
        result = await vault.update_one(
            {"email": "a@x.io"}, {"$set": {"secret": 1}, "$inc": {"n": 2}}, upsert=True
        )
        key = result.upserted_id
        assert await vault.find_one({"email": "a@x.io"}) == {
            "id": key,
            "email": "a@x.io",
            "secret": 1,
            "n": 2,
        }
        await vault.update_one({"id": key}, {"$rename": {"secret": "hidden"}, "$push": {"l": 1}})
        assert await vault.find_one({"id": key}) == {
            "id": key,
            "email": "a@x.io",
            "n": 2,
            "hidden": 1,
            "l": [1],
        }
        with pytest.raises(asyncdb.UpdateError, match="key"):
            await vault.update_one({"id": key}, {"$set": {"id": "other"}})
        with pytest.raises(asyncdb.QueryError, match="opaque"):
            await vault.find_one({"n": 2})
        raw = await db.collection("vault").find_one({"id": key})
        assert raw is not None and set(raw) == {"id", "_enc", "_enc_bi_email", "_enc_key", "_enc_v"}
        assert raw["_enc_v"] == 2


async def test_rotate_keys_raises_decryption_error_for_data_under_a_disabled_key() -> None:
    ring = KeyRing.generate()
    async with asyncdb.connect("memory://", keyring=ring) as db:
        users = db.collection("users", encrypted={"ssn": "equality"})
        await users.insert_many([{"id": f"u{i}", "ssn": str(i)} for i in range(3)])
        ring.add("k2", bytes(32))
        ring.promote("k2")
        ring.disable("k1")  # too early: nothing was re-sealed yet
        with pytest.raises(asyncdb.DecryptionError, match="disabled") as info:
            await users.rotate_keys()
        assert info.value.key_id == "k1"
        ring.enable("k1")
        assert await users.rotate_keys() == 3


async def test_a_composite_key_is_bound_into_the_ciphertext() -> None:
    ring = KeyRing.generate()
    async with asyncdb.connect("memory://", keyring=ring) as db:
        spec = {"ssn": "equality"}
        orders = db.collection("orders", key=("tenant", "id"), encrypted=spec, allow_scan=True)
        await orders.insert_many([{"tenant": t, "id": 1, "ssn": f"{t}-1"} for t in ("a", "b")])
        assert await orders.find_one({"ssn": "b-1"}) == {"tenant": "b", "id": 1, "ssn": "b-1"}
        plain = db.collection("orders", key=("tenant", "id"), indexes=orders.inner.spec.indexes)
        a = await plain.find_one({"tenant": "a", "id": 1})
        assert a is not None
        await plain.update_one({"tenant": "b", "id": 1}, {"$set": {"ssn": a["ssn"]}})
        with pytest.raises(asyncdb.DecryptionError):  # same id, other tenant
            await orders.find_one({"tenant": "b", "id": 1})
        await orders.delete_one({"tenant": "b", "id": 1})
        ring.add("k2", bytes(32))
        ring.promote("k2")
        assert await orders.rotate_keys(batch_size=1) == 1
        assert await orders.find_one({"ssn": "a-1"}) == {"tenant": "a", "id": 1, "ssn": "a-1"}


async def test_positional_pipeline_and_unordered_writes_on_encrypted_fields() -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        spec = {"items": "opaque", "total": "opaque", "ssn": "equality"}
        orders = db.collection("orders", encrypted=spec, allow_scan=True)
        await orders.insert_one({"id": "o1", "ssn": "s", "items": [{"q": 1}, {"q": 7}], "n": 2})
        await orders.update_one(
            {"id": "o1"}, {"$inc": {"items.$[big].q": 10}}, array_filters=[{"big.q": {"$gt": 5}}]
        )
        await orders.update_one({"id": "o1"}, [{"$set": {"total": {"$add": ["$n", 40]}}}])
        assert await orders.find_one({"id": "o1"}) == {
            "id": "o1",
            "ssn": "s",
            "items": [{"q": 1}, {"q": 17}],
            "n": 2,
            "total": 42,
        }
        with pytest.raises(asyncdb.BulkWriteError):
            await orders.insert_many([{"id": "o1"}, {"id": "o2", "ssn": "t"}], ordered=False)
        assert await orders.find_one({"ssn": "t"}) == {"id": "o2", "ssn": "t"}
        assert await orders.estimated_document_count() == 2
        with pytest.raises(asyncdb.NotSupported):
            orders.aggregate([{"$match": {}}])
        await orders.drop()
        assert await orders.count_documents({}) == 0


async def test_find_one_and_replace_and_find_one_and_delete_on_encrypted_fields() -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        jobs = db.collection("jobs", encrypted={"owner": "equality", "body": "opaque"})
        await jobs.insert_many(
            [{"id": f"j{i}", "owner": "ana", "body": f"b{i}", "ts": 10 - i} for i in range(3)]
        )
        before = await jobs.find_one_and_replace(
            {"owner": "ana"},
            {"owner": "bo", "body": "new", "ts": 0},
            sort=[("ts", 1)],
            return_document="before",
        )
        assert before == {"id": "j2", "owner": "ana", "body": "b2", "ts": 8}
        assert await jobs.find_one({"owner": "bo"}) == {
            "id": "j2",
            "owner": "bo",
            "body": "new",
            "ts": 0,
        }
        oldest = await jobs.find_one_and_delete(
            {"owner": "ana"}, sort=[("ts", 1)], projection={"body": 1}
        )
        assert oldest == {"id": "j1", "body": "b1"}
        assert await jobs.find_one_and_delete({"owner": "nobody"}) is None
        assert [d["id"] async for d in jobs.find({"owner": "ana"})] == ["j0"]


async def test_distinct_over_encrypted_and_plain_fields() -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        users = db.collection(
            "users", encrypted={"ssn": "equality", "tags": "opaque"}, allow_scan=True
        )
        await users.insert_many(
            [
                {"id": "a", "ssn": "1", "tags": ["x", "y"], "team": "red"},
                {"id": "b", "ssn": 1.0, "tags": ["y"], "team": "blue"},
                {"id": "c", "ssn": "1", "tags": [], "team": "red"},
            ]
        )
        assert await users.distinct("tags") == ["x", "y"]
        assert await users.distinct("ssn") == [1.0, "1"]
        assert await users.distinct("team", {"ssn": "1"}) == ["red"]
        assert await users.distinct("team") == ["blue", "red"]
        with pytest.raises(asyncdb.QueryError, match="reserved"):
            await users.distinct("_enc_key")


async def test_bulk_write_seals_and_reports_like_the_plain_collection() -> None:
    async with asyncdb.connect("memory://", keyring=KeyRing.generate()) as db:
        users = db.collection("users", encrypted={"ssn": "equality"}, allow_scan=True)
        result = await users.bulk_write(
            [
                asyncdb.InsertOne({"id": "a", "ssn": "1"}),
                asyncdb.UpdateOne({"ssn": "1"}, {"$set": {"ssn": "2"}}),
                asyncdb.UpdateOne({"ssn": "3"}, {"$set": {"n": 1}}, upsert=True),
                asyncdb.ReplaceOne({"id": "a"}, {"ssn": "4"}),
                asyncdb.DeleteMany({"ssn": "3"}),
            ]
        )
        assert (result.inserted_count, result.matched_count, result.modified_count) == (1, 2, 2)
        assert result.deleted_count == 1 and list(result.upserted_ids) == [2]
        assert await users.find_one({"ssn": "4"}) == {"id": "a", "ssn": "4"}
        raw = await db.collection("users").find_one({"id": "a"})
        assert raw is not None and raw["ssn"].startswith("ae1:")
        with pytest.raises(asyncdb.BulkWriteError) as info:
            await users.bulk_write(
                [asyncdb.InsertOne({"id": "a"}), asyncdb.InsertOne({"id": "b", "ssn": "5"})],
                ordered=False,
            )
        assert [i for i, _ in info.value.errors] == [0] and info.value.result.inserted_count == 1
        with pytest.raises(asyncdb.QueryError, match="operation 1"):
            await users.bulk_write([asyncdb.DeleteOne({}), asyncdb.DeleteOne({"ssn": {"$gt": 1}})])
        assert await users.count_documents({}) == 2  # nothing ran: refused before any I/O
