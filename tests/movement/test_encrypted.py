"""DESIGN §8: a copy carries encrypted fields. Ciphertext moves as is (readable with the same key
ring on the destination, whose catalog records what is encrypted); between two different key
rings it is opened at the source and sealed again under the destination's keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import asyncdb

ENCRYPTED = {"ssn": "equality", "notes": "opaque"}


def users(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"u{i:03d}", "org": f"o{i % 3}", "ssn": f"123-45-{i:04d}", "notes": f"n{i}"}
        for i in range(n)
    ]


async def _raw(coll: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await coll.find({}, sort=[("id", 1)], allow_scan=True).to_list()
    return found


async def test_encrypted_fields_memory_to_postgres(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await _same_ring_copy("memory://", postgres_url)


async def test_encrypted_fields_sqlite_to_mongo(
    tmp_path: Path, mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await _same_ring_copy(f"sqlite:///{tmp_path / 'src.db'}", mongo_url)


async def _same_ring_copy(src_url: str, dst_url: str) -> None:
    """The fields arrive sealed, with the very ciphertext, readable with the same ring."""
    ring = asyncdb.KeyRing.generate()
    docs = users(40)
    async with asyncdb.connect(src_url, keyring=ring) as src:
        sealed = src.collection("users", encrypted=ENCRYPTED, indexes=["org"])
        await sealed.insert_many(docs)
        raw_src = await _raw(sealed.inner)
        report = await asyncdb.copy(src, dst_url)  # the destination side holds no key ring
        assert (report.written, report.failed) == (40, 0)
        assert report.verify is not None and report.verify.equal
    async with asyncdb.connect(dst_url, keyring=ring) as dst:
        [spec] = [s for s in await dst.list_collections() if s.name == "users"]
        assert spec.encrypted == ENCRYPTED
        opened = dst.collection("users", encrypted=spec.encrypted, indexes=["org"])
        assert await opened.find_one({"ssn": "123-45-0007"}) == docs[7]  # blind index
        assert await opened.find({"org": "o1"}, sort=[("id", 1)]).to_list() == docs[1::3]
        raw_dst = await _raw(opened.inner)
        assert raw_dst == raw_src  # the very ciphertext, blind indexes and key ids
        assert all(d["ssn"].startswith("ae1:") and d["ssn"] != "123" for d in raw_dst)


async def test_different_key_rings_reseal_under_the_destination_keys(tmp_path: Path) -> None:
    ring_a, ring_b = asyncdb.KeyRing.generate(), asyncdb.KeyRing.generate()
    docs = users(25)
    dst_url = f"sqlite:///{tmp_path / 'dst.db'}"
    async with (
        asyncdb.connect("memory://", keyring=ring_a) as src,
        asyncdb.connect(dst_url, keyring=ring_b) as dst,
    ):
        sealed = src.collection("users", encrypted=ENCRYPTED)
        await sealed.insert_many(docs)
        report = await asyncdb.copy(src, dst, checkpoint=tmp_path / "cp.json")
        assert report.written == 25
        assert report.verify is not None and report.verify.equal  # compared opened
        assert (await asyncdb.verify(src, dst)).equal
        raw_src, raw_dst = await _raw(sealed.inner), await _raw(dst.collection("users"))
        assert [d["ssn"] for d in raw_src] != [d["ssn"] for d in raw_dst]
        assert all(d["ssn"].startswith("ae1:") for d in raw_dst)
    async with asyncdb.connect(dst_url, keyring=ring_b) as again:
        opened = again.collection("users", encrypted=ENCRYPTED)
        assert await opened.find_one({"ssn": "123-45-0003"}) == docs[3]
    async with asyncdb.connect(dst_url, keyring=ring_a) as wrong:
        with pytest.raises(asyncdb.DecryptionError):
            await wrong.collection("users", encrypted=ENCRYPTED).find_one({"id": "u001"})


async def test_catalog_records_encryption_declared_after_a_plain_use() -> None:
    async with asyncdb.connect("memory://", keyring=asyncdb.KeyRing.generate()) as db:
        await db.collection("users").insert_one({"id": "u0", "org": "o"})
        [before] = await db.list_collections()
        assert before.encrypted is None
        await db.collection("users", encrypted=ENCRYPTED).insert_one({"id": "u1", "ssn": "1"})
        [after] = await db.list_collections()
        assert after.encrypted == ENCRYPTED
