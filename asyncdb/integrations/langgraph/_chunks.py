"""Blobs larger than a store's item limit, split into chunk documents and reassembled.

A blob is written as ``count`` chunk documents keyed ``(thread_id, "<owner>#<gen>#<i>")``
*before* the document that references it (the checkpoint or the write) is published with
``{"cn": count, "cg": gen}``. Readers only follow published documents, so they never see half a
blob; ``gen`` is fresh for every write, so re-publishing a document never mixes the chunks of
two versions. A document published again (``republish``) returns the version it replaced, whose
chunks of another generation are then deleted (``drop_replaced``); a reader that still held that
version finds a chunk missing and reads the document again. A crash between the chunks and the
publish leaves orphan chunks that belong to no document; ``delete_thread`` removes them with the
thread (retention deletes checkpoints one by one with their own chunks: a chunk not yet
published cannot be told from an orphan).

DynamoDB items hold 400 KB, Firestore documents 1 MiB, Cosmos items 2 MB, MongoDB documents
16 MB; the limits below leave room for the base64 or tagged-JSON form those stores keep bytes in.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from asyncdb import Collection, DuplicateKey

# Raw bytes per chunk (and the largest blob kept inline), per backend. DynamoDB and Cosmos keep
# bytes as base64 inside JSON text (4/3 larger); Firestore and MongoDB keep them native.
CHUNK_LIMITS: dict[str, int] = {
    "dynamodb": 240_000,
    "firestore": 700_000,
    "cosmos": 1_000_000,
    "mongo": 8_000_000,
}
DEFAULT_CHUNK_LIMIT = 32_000_000  # SQLite, PostgreSQL (jsonb) and memory have no small limit


def chunk_limit(backend: str) -> int:
    return CHUNK_LIMITS.get(backend, DEFAULT_CHUNK_LIMIT)


async def upsert(coll: Collection, doc: dict[str, Any]) -> None:
    """Insert ``doc``, or replace the document with its key. The insert comes first: it is
    the common case, and one request where an upsert may first look the key up."""
    try:
        await coll.insert_one(doc)
    except DuplicateKey:
        await coll.replace_one({k: doc[k] for k in coll.spec.key}, doc)


async def republish(coll: Collection, doc: dict[str, Any]) -> dict[str, Any] | None:
    """``upsert`` that returns the document it replaced (None when it inserted): the insert
    first, and only when the key exists one ``find_one_and_replace``."""
    try:
        await coll.insert_one(doc)
        return None
    except DuplicateKey:
        key = {k: doc[k] for k in coll.spec.key}
        return await coll.find_one_and_replace(key, doc, upsert=True, return_document="before")


def next_key(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Chunks:
    """The chunk documents of one collection (``key=("thread_id", "bk")``)."""

    def __init__(self, coll: Collection, limit: int) -> None:
        self.coll = coll
        self.limit = limit

    async def put(
        self,
        thread_id: str,
        owner: str,
        doc: dict[str, Any],
        data: bytes,
        *,
        inline: int | None = None,
    ) -> None:
        """Store ``data`` in ``doc["b"]`` when it has at most ``inline`` bytes (default: the
        chunk size), else as chunks referenced by ``doc["cn"]``/``"cg"``."""
        if len(data) <= (self.limit if inline is None else inline):
            doc["b"] = data
            return
        gen = secrets.token_hex(4)
        parts = [data[i : i + self.limit] for i in range(0, len(data), self.limit)]
        await asyncio.gather(
            *(
                upsert(self.coll, {"thread_id": thread_id, "bk": f"{owner}#{gen}#{i:06d}", "d": p})
                for i, p in enumerate(parts)
            )
        )
        doc["cn"] = len(parts)
        doc["cg"] = gen

    async def get(self, doc: dict[str, Any], owner: str) -> bytes:
        """The blob of a published document (inline or reassembled from its chunks)."""
        if "cn" not in doc:
            data: bytes = doc["b"]
            return data
        prefix = f"{owner}#{doc['cg']}#"
        found = await self.coll.find(
            {"thread_id": doc["thread_id"], "bk": {"$gte": prefix, "$lt": next_key(prefix)}}
        ).to_list()
        by_key = {d["bk"]: d["d"] for d in found}
        parts = [by_key.get(f"{prefix}{i:06d}") for i in range(doc["cn"])]
        if any(p is None for p in parts):
            raise LookupError(f"a chunk of {owner!r} is missing (deleted while being read)")
        return b"".join(p for p in parts if p is not None)

    async def drop_replaced(
        self, thread_id: str, owner: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> None:
        """Delete the chunks of ``old``, the version of a document ``new`` replaced, unless
        they are ``new``'s own (no chunks, or the same generation)."""
        if old is None or "cg" not in old or old.get("cg") == new.get("cg"):
            return
        prefix = f"{owner}#{old['cg']}#"
        await self.coll.delete_many(
            {"thread_id": thread_id, "bk": {"$gte": prefix, "$lt": next_key(prefix)}}
        )

    async def delete_owned(self, thread_id: str, owner: str) -> None:
        """Delete every chunk of ``owner`` (all generations)."""
        prefix = f"{owner}#"
        await self.coll.delete_many(
            {"thread_id": thread_id, "bk": {"$gte": prefix, "$lt": next_key(prefix)}}
        )
