"""``AsyncDBSaver``: a LangGraph checkpointer over any asyncdb Database.

>>> # saver = AsyncDBSaver(db)
>>> # graph = builder.compile(checkpointer=saver)
>>> # await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})

Layout (four collections, every one keyed by ``thread_id`` first, so every read of a thread is
a key-prefix query on every backend and deleting a thread is one ``delete_many`` each):

- ``<prefix>checkpoints`` key ``(thread_id, ck)``, ``ck = "<hex(ns)>|<checkpoint_id>"``: the
  serialized checkpoint (``b``, or chunks), the serialized metadata and, for pushed-down
  ``list(filter=...)``, its scalar top-level entries under ``md``. Indexes: ``run_id``
  (``delete_for_runs``) and ``(kind, saved_at)`` (``expire_threads``).
- ``<prefix>writes`` key ``(thread_id, ck)``: one bucket per checkpoint, its pending writes in
  ``w`` (appended with ``$push``, atomic per document everywhere; a write value beyond a small
  inline size goes to chunks). A checkpoint and its writes are two point reads, in parallel.
- ``<prefix>chunks`` key ``(thread_id, bk)``: blobs beyond the store's item limit (``_chunks``).
- ``<prefix>heads`` key ``(thread_id, nk)``: the newest checkpoint id per namespace (``$max``),
  kept only where the planner cannot push ``sort ck desc, limit 1`` (DynamoDB, Firestore,
  Cosmos, memory), so "newest checkpoint" is point reads there.

The namespace is hex-encoded inside keys: it may be ``""`` (keys must be non-empty) and may
contain any character, while ``|`` separates the parts and sorts after every hex digit.

Encryption: when the database has a key ring (``connect(url, keyring=ring)``), every checkpoint
blob and pending-write blob is sealed with ``KeyRing.seal`` before it is stored (and chunked:
chunks hold ciphertext), with associated data binding the thread, namespace and checkpoint id
(and, for a write, its task, index and channel) and the serializer's type tag. A blob moved to
another checkpoint, thread or namespace, a flipped bit, or a key that is unknown or disabled
raises ``DecryptionError`` on read. Sealed documents carry ``"e": 1``; a document without it
(written with no key ring) is refused by a saver whose database has one, unless the saver was
built with ``allow_plaintext=True``. Metadata stays plaintext, so ``list(filter=...)`` is still
pushed down.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from asyncdb import Database, DecryptionError, DuplicateKey, QueryError
from asyncdb.integrations.langgraph._chunks import (
    Chunks,
    chunk_limit,
    next_key,
    republish,
    upsert,
)
from asyncdb.integrations.langgraph._sync import LoopBridge

PRUNE_STRATEGIES = ("keep_latest", "delete")
_PAGE = 50  # checkpoints whose writes are fetched in one query by list()
_MD_KEY_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _nsh(checkpoint_ns: str) -> str:
    return checkpoint_ns.encode().hex()


def _ck(checkpoint_ns: str, checkpoint_id: str) -> str:
    return f"{_nsh(checkpoint_ns)}|{checkpoint_id}"


def _range(prefix: str) -> dict[str, str]:
    return {"$gte": prefix, "$lt": next_key(prefix)}


def _cp_aad(thread_id: str, ns: str, checkpoint_id: str, t: str) -> bytes:
    """The associated data of a checkpoint blob (JSON: unambiguous for any strings)."""
    return orjson.dumps(["langgraph/cp/v1", thread_id, ns, checkpoint_id, t])


def _w_aad(thread_id: str, ns: str, checkpoint_id: str, entry: Mapping[str, Any]) -> bytes:
    """The associated data of a pending write's blob: its checkpoint, task, index, channel."""
    return orjson.dumps(
        [
            "langgraph/w/v1",
            thread_id,
            ns,
            checkpoint_id,
            entry["task_id"],
            entry["idx"],
            entry["channel"],
            entry["t"],
        ]
    )


def _scalar_md(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata entries a store can filter on natively: scalar values under plain names."""
    return {
        k: v
        for k, v in metadata.items()
        if isinstance(k, str)
        and 0 < len(k) <= 128
        and set(k) <= _MD_KEY_OK
        and (v is None or isinstance(v, str | int | float | bool))
    }


class AsyncDBSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer over any asyncdb :class:`~asyncdb.Database`, natively async.

    >>> # async with asyncdb.connect("postgresql://...") as db:
    >>> #     graph = builder.compile(checkpointer=AsyncDBSaver(db))

    ``prefix`` names its collections (``langgraph_checkpoints``, ...). With a key ring on the
    database, blobs are encrypted (see the module docstring); ``allow_plaintext=True`` also
    reads checkpoints saved before the database had one. The sync methods
    (``get_tuple``, ``list``, ``put``, ...) work from threads other than the database's event
    loop, as LangGraph's official async savers do.
    """

    def __init__(
        self,
        db: Database,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = "langgraph_",
        max_scan: int = 100_000,
        allow_plaintext: bool = False,
    ) -> None:
        super().__init__(serde=serde)
        self.db = db
        self.allow_plaintext = bool(allow_plaintext)
        self.checkpoints = db.collection(
            f"{prefix}checkpoints",
            key=("thread_id", "ck"),
            indexes=["run_id", ("kind", "saved_at")],
            max_scan=max_scan,
        )
        self.writes = db.collection(f"{prefix}writes", key=("thread_id", "ck"), max_scan=max_scan)
        self.heads = db.collection(f"{prefix}heads", key=("thread_id", "nk"), max_scan=max_scan)
        self.chunks = Chunks(
            db.collection(f"{prefix}chunks", key=("thread_id", "bk"), max_scan=max_scan),
            chunk_limit(db.backend),
        )
        # A write value kept inside its checkpoint's bucket; larger ones go to chunks, so that
        # a bucket of dozens of writes stays within one item (DynamoDB: 400 KB).
        self._inline_write = max(1024, self.chunks.limit // 32)
        self._bridge = LoopBridge(type(self).__name__)
        self._use_heads: bool | None = None
        self._known_heads: set[tuple[str, str]] = set()
        self._last_bucket: tuple[str, str] | None = None
        self._buckets_by_query = db.backend == "cosmos"

    # --- layout ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the collections now (they are otherwise created on first use), as
        LangGraph's official savers' ``setup()`` does for their tables."""
        self._bridge.seen()
        probe = {"thread_id": "setup", "ck": "setup"}
        await self.checkpoints.find_one(probe)
        await self.writes.find_one(probe)
        await self.heads.find_one({"thread_id": "setup", "nk": "setup"})
        await self.chunks.coll.find_one({"thread_id": "setup", "bk": "setup"})

    async def _heads_needed(self) -> bool:
        """Whether "newest checkpoint of a namespace" needs the heads collection here: the
        planner is asked (no I/O) whether it pushes ``sort ck desc, limit 1`` to the store."""
        if self._use_heads is None:
            plan = await self.checkpoints.explain(
                {"thread_id": "t", "ck": _range("|")}, sort=[("ck", -1)], limit=1
            )
            self._use_heads = not (plan.sort_pushed and plan.limit_pushed)
        return self._use_heads

    async def _advance_head(self, thread_id: str, nk: str, checkpoint_id: str) -> None:
        """Raise the namespace's head to ``checkpoint_id`` (``$max``: concurrent puts and
        late background saves never lower it). A head this saver has not seen yet is created
        by an insert first, which is one request where an upsert may first look the key up."""
        key = {"thread_id": thread_id, "nk": nk}
        if (thread_id, nk) not in self._known_heads:
            if len(self._known_heads) > 10_000:
                self._known_heads.clear()
            self._known_heads.add((thread_id, nk))
            try:
                await self.heads.insert_one({**key, "latest": checkpoint_id})
                return
            except DuplicateKey:
                pass
        await self.heads.update_one(key, {"$max": {"latest": checkpoint_id}}, upsert=True)

    def _seal(self, doc: dict[str, Any], data: bytes, aad: bytes) -> bytes:
        """``data`` sealed under the database's key ring (``doc`` is marked sealed), or
        unchanged without one."""
        ring = self.db.keyring
        if ring is None:
            return data
        doc["e"] = 1
        return ring.seal(data, aad)

    def _open(self, doc: Mapping[str, Any], data: bytes, aad: bytes) -> bytes:
        """The plaintext of a stored blob; ``DecryptionError`` when it does not open, when it
        is sealed and the database has no key ring, or when it is plaintext and the database
        has one (unless ``allow_plaintext``)."""
        ring = self.db.keyring
        if doc.get("e"):
            if ring is None:
                raise DecryptionError("a sealed checkpoint blob, but the database has no keyring")
            return ring.open(data, aad)
        if ring is not None and not self.allow_plaintext:
            raise DecryptionError(
                "a checkpoint blob saved without encryption (pass allow_plaintext=True to "
                "AsyncDBSaver to read data not yet encrypted)"
            )
        return data

    @staticmethod
    def _check_place(doc: Mapping[str, Any]) -> None:
        """A sealed document's ``ns``/``checkpoint_id`` must be those of its key: the AAD uses
        them, so a whole document copied under another key would otherwise still open."""
        if doc.get("e") and doc["ck"] != _ck(doc["ns"], doc["checkpoint_id"]):
            raise DecryptionError("a checkpoint document stored under another checkpoint's key")

    def _open_checkpoint(self, doc: Mapping[str, Any], blob: bytes) -> bytes:
        self._check_place(doc)
        aad = _cp_aad(doc["thread_id"], doc["ns"], doc["checkpoint_id"], doc["t"])
        return self._open(doc, blob, aad)

    # --- reading -----------------------------------------------------------------------------

    async def _load_writes(
        self, bucket: dict[str, Any] | None, channels: set[str] | None = None
    ) -> list[PendingWrite]:
        """A bucket's writes in ``writes_sort_key`` order. A write saved twice keeps its first
        value, except the special channels (errors, interrupts, ...), which keep their last."""
        if bucket is None:
            return []
        entries: dict[tuple[str, int], dict[str, Any]] = {}
        for e in bucket.get("w", []):
            k = (e["task_id"], e["idx"])
            if k not in entries or e["idx"] < 0:
                entries[k] = e
        ordered = sorted(
            entries.values(), key=lambda e: writes_sort_key(e["task_path"], e["task_id"], e["idx"])
        )
        thread_id, ns, cid = bucket["thread_id"], bucket["ns"], bucket["checkpoint_id"]
        out: list[PendingWrite] = []
        for e in ordered:
            if channels is not None and e["channel"] not in channels:
                continue
            owner = f"{bucket['ck']}|{e['task_id']}|{e['idx']}"
            blob = await self.chunks.get({**e, "thread_id": thread_id}, owner)
            if e.get("e"):
                self._check_place({**bucket, "e": 1})
            raw = self._open(e, blob, _w_aad(thread_id, ns, cid, e))
            out.append((e["task_id"], e["channel"], self.serde.loads_typed((e["t"], raw))))
        return out

    def _bucket_key(self, ck: str) -> Any:
        """The filter value that finds a write bucket: its key, or on Cosmos the same key as a
        one-key range, a query: cosmosdb-server answers a missing item's point read with a
        500, which costs half a second to confirm, and most checkpoints have no writes yet."""
        return {"$gte": ck, "$lte": ck} if self._buckets_by_query else ck

    async def _bucket(self, thread_id: str, ck: str) -> dict[str, Any] | None:
        if not self._buckets_by_query:
            return await self.writes.find_one({"thread_id": thread_id, "ck": ck})
        found = await self.writes.find(
            {"thread_id": thread_id, "ck": self._bucket_key(ck)}
        ).to_list()
        return found[0] if found else None

    async def _by_id(self, thread_id: str, ns: str, checkpoint_id: str) -> CheckpointTuple | None:
        """A checkpoint and its writes: two point reads, in parallel."""
        key = {"thread_id": thread_id, "ck": _ck(ns, checkpoint_id)}
        doc, bucket = await asyncio.gather(
            self.checkpoints.find_one(key), self._bucket(thread_id, key["ck"])
        )
        return None if doc is None else await self._tuple(doc, await self._load_writes(bucket))

    async def _tuple(self, doc: dict[str, Any], writes: list[PendingWrite]) -> CheckpointTuple:
        thread_id, ns, cid = doc["thread_id"], doc["ns"], doc["checkpoint_id"]
        try:
            blob = await self.chunks.get(doc, doc["ck"])
        except LookupError:
            # saved again meanwhile, the chunks of this version deleted: the version now stored
            again = await self.checkpoints.find_one({"thread_id": thread_id, "ck": doc["ck"]})
            if again is None or again.get("cg") == doc.get("cg"):
                raise
            doc = again
            blob = await self.chunks.get(doc, doc["ck"])
        raw = self._open_checkpoint(doc, blob)
        checkpoint = self.serde.loads_typed((doc["t"], raw))
        metadata = self.serde.loads_typed((doc["mt"], doc["mb"]))
        parent = doc.get("parent_id")
        return CheckpointTuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}},
            checkpoint,
            metadata,
            (
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            writes,
        )

    async def _latest(self, thread_id: str, ns: str) -> CheckpointTuple | None:
        """The newest checkpoint of a namespace with its writes."""
        if await self._heads_needed():
            head = await self.heads.find_one({"thread_id": thread_id, "nk": "n" + _nsh(ns)})
            if head is None:
                return None
            found = await self._by_id(thread_id, ns, head["latest"])
            if found is not None:
                return found
            # The head's checkpoint was deleted (delete_for_runs, prune) or is being saved:
            # the newest one stored.
        docs = await self.checkpoints.find(
            {"thread_id": thread_id, "ck": _range(_nsh(ns) + "|")}, sort=[("ck", -1)], limit=1
        ).to_list()
        if not docs:
            return None
        bucket = await self._bucket(thread_id, docs[0]["ck"])
        return await self._tuple(docs[0], await self._load_writes(bucket))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, else the newest of its
        thread and namespace) with its pending writes, or None."""
        self._bridge.seen()
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            return await self._by_id(thread_id, ns, checkpoint_id)
        return await self._latest(thread_id, ns)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, when it has one),
        whose metadata matches ``filter``, older than ``before``, at most ``limit``. Without a
        config every thread is listed (a scan, as in LangGraph's own savers)."""
        self._bridge.seen()
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise QueryError("limit must be an integer", path="limit")
        if limit is not None and limit <= 0:
            return
        query: dict[str, Any] = {}
        residual: dict[str, Any] = {}
        for k, v in (filter or {}).items():
            if k in _scalar_md({k: v}):
                query[f"md.{k}"] = v
            else:
                residual[k] = v
        before_id = get_checkpoint_id(before) if before else None
        sort: list[tuple[str, int]] = [("checkpoint_id", -1)]
        allow_scan = config is None
        if config is not None:
            conf = config["configurable"]
            query["thread_id"] = str(conf["thread_id"])
            ns = conf.get("checkpoint_ns")
            if ns is not None:
                nsh = _nsh(ns)
                cond: dict[str, str] = _range(nsh + "|")
                if before_id:
                    cond = {"$gte": nsh + "|", "$lt": f"{nsh}|{before_id}"}
                query["ck"] = cond
                sort = [("ck", -1)]
                before_id = None
            if cid := get_checkpoint_id(config):
                query["checkpoint_id"] = cid
        if before_id:
            if "checkpoint_id" in query:
                query = {"$and": [query, {"checkpoint_id": {"$lt": before_id}}]}
            else:
                query["checkpoint_id"] = {"$lt": before_id}
        cursor = self.checkpoints.find(
            query,
            sort=sort,
            limit=None if residual else limit,
            allow_scan=allow_scan or None,
        )
        page: list[dict[str, Any]] = []
        remaining = limit
        async for doc in cursor:
            if residual:
                metadata = self.serde.loads_typed((doc["mt"], doc["mb"]))
                if any(metadata.get(k) != v for k, v in residual.items()):
                    continue
            page.append(doc)
            if remaining is not None:
                remaining -= 1
            if len(page) >= _PAGE or remaining == 0:
                for tup in await self._load_page(page):
                    yield tup
                page = []
                if remaining == 0:
                    return
        for tup in await self._load_page(page):
            yield tup

    async def _load_page(self, docs: list[dict[str, Any]]) -> list[CheckpointTuple]:
        """Tuples of listed checkpoints, their write buckets read by key in parallel."""
        buckets = await asyncio.gather(*(self._bucket(d["thread_id"], d["ck"]) for d in docs))
        return [
            await self._tuple(d, await self._load_writes(b))
            for d, b in zip(docs, buckets, strict=True)
        ]

    # --- writing -----------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (its blob first when chunked, the checkpoint document last)."""
        self._bridge.seen()
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        parent_id = conf.get("checkpoint_id")
        cid = checkpoint["id"]
        ck = _ck(ns, cid)
        meta = get_serializable_checkpoint_metadata(config, metadata)
        t, raw = self.serde.dumps_typed(checkpoint)
        mt, mb = self.serde.dumps_typed(meta)
        doc: dict[str, Any] = {
            "thread_id": thread_id,
            "ck": ck,
            "ns": ns,
            "checkpoint_id": cid,
            "parent_id": parent_id,
            "t": t,
            "mt": mt,
            "mb": mb,
            "md": _scalar_md(meta),
            "kind": "cp",
            "saved_at": datetime.now(UTC),
        }
        if isinstance(meta.get("run_id"), str) and meta["run_id"]:
            doc["run_id"] = meta["run_id"]
        if "counters_since_delta_snapshot" in meta:
            doc["delta"] = True
        await self.chunks.put(
            thread_id, ck, doc, self._seal(doc, raw, _cp_aad(thread_id, ns, cid, t))
        )
        if await self._heads_needed():  # a reader that meets the head first falls back
            replaced, _ = await asyncio.gather(
                republish(self.checkpoints, doc),
                self._advance_head(thread_id, "n" + _nsh(ns), cid),
            )
        else:
            replaced = await republish(self.checkpoints, doc)  # saved again: the new version
        # replaces it, and the chunks of the version it replaced go
        await self.chunks.drop_replaced(thread_id, ck, replaced, doc)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}}

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Save a task's pending writes for a checkpoint. A write saved again is kept as first
        saved, except the special channels (errors, interrupts, ...), which are replaced."""
        self._bridge.seen()
        if not writes:
            return
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        cid = conf["checkpoint_id"]
        ck = _ck(ns, cid)
        entries: list[dict[str, Any]] = []
        for i, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, i)
            t, raw = self.serde.dumps_typed(value)
            entry: dict[str, Any] = {
                "task_id": task_id,
                "task_path": task_path,
                "idx": idx,
                "channel": channel,
                "t": t,
            }
            await self.chunks.put(
                thread_id,
                f"{ck}|{task_id}|{idx}",
                entry,
                self._seal(entry, raw, _w_aad(thread_id, ns, cid, entry)),
                inline=self._inline_write,
            )
            entries.append(entry)
        key = {"thread_id": thread_id, "ck": ck}
        if (thread_id, ck) != self._last_bucket:  # a checkpoint's first writes: one insert
            self._last_bucket = (thread_id, ck)
            try:
                await self.writes.insert_one({**key, "ns": ns, "checkpoint_id": cid, "w": entries})
                return
            except DuplicateKey:
                pass
        await self.writes.update_one(
            key,
            {"$push": {"w": {"$each": entries}}, "$set": {"ns": ns, "checkpoint_id": cid}},
            upsert=True,
        )

    # --- deleting, copying, retention --------------------------------------------------------

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and chunk of a thread (all namespaces)."""
        self._bridge.seen()
        key = {"thread_id": str(thread_id)}
        await self.checkpoints.delete_many(key)  # readers stop finding the thread first
        await asyncio.gather(
            self.writes.delete_many(key),
            self.chunks.coll.delete_many(key),
            self.heads.delete_many(key),
        )

    async def _delete_checkpoints(self, thread_id: str, docs: list[dict[str, Any]]) -> None:
        """Delete these checkpoints of one thread with their writes and chunks."""
        for d in docs:
            await self.checkpoints.delete_one({"thread_id": thread_id, "ck": d["ck"]})
            await self._delete_parts(thread_id, d["ck"])

    async def _delete_parts(self, thread_id: str, ck: str) -> None:
        """The writes and chunks of a deleted checkpoint."""
        await self.writes.delete_many({"thread_id": thread_id, "ck": self._bucket_key(ck)})
        await self.chunks.delete_owned(thread_id, ck)
        await self.chunks.coll.delete_many({"thread_id": thread_id, "bk": _range(ck + "|")})

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (with their writes) that the given runs saved."""
        self._bridge.seen()
        if isinstance(run_ids, str):
            raise TypeError("run_ids must be a sequence of run IDs, not a str")
        ids = sorted({str(r) for r in run_ids})
        for start in range(0, len(ids), 100):
            found = await self.checkpoints.find(
                {"run_id": {"$in": ids[start : start + 100]}},
                projection=["thread_id", "ck"],
            ).to_list()
            by_thread: dict[str, list[dict[str, Any]]] = {}
            for d in found:
                by_thread.setdefault(d["thread_id"], []).append(d)
            for thread_id, docs in by_thread.items():
                await self._delete_checkpoints(thread_id, docs)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another thread id (writes first,
        checkpoints and heads last, so a reader of the target never sees half). Each blob is
        read and stored again under the target thread: with a key ring it is opened and sealed
        anew, since its associated data names the thread."""
        self._bridge.seen()
        src, dst = str(source_thread_id), str(target_thread_id)
        async for bucket in self.writes.find({"thread_id": src}):
            ns, cid = bucket["ns"], bucket["checkpoint_id"]
            entries: list[dict[str, Any]] = []
            for e in bucket.get("w", []):
                owner = f"{bucket['ck']}|{e['task_id']}|{e['idx']}"
                raw = self._open(
                    e,
                    await self.chunks.get({**e, "thread_id": src}, owner),
                    _w_aad(src, ns, cid, e),
                )
                entry = {k: e[k] for k in ("task_id", "task_path", "idx", "channel", "t")}
                sealed = self._seal(entry, raw, _w_aad(dst, ns, cid, entry))
                await self.chunks.put(dst, owner, entry, sealed, inline=self._inline_write)
                entries.append(entry)
            await upsert(self.writes, {**bucket, "thread_id": dst, "w": entries})
        async for d in self.checkpoints.find({"thread_id": src}):
            raw = self._open_checkpoint(d, await self.chunks.get(d, d["ck"]))
            doc = {k: v for k, v in d.items() if k not in ("b", "cn", "cg", "e")}
            doc["thread_id"] = dst
            aad = _cp_aad(dst, d["ns"], d["checkpoint_id"], d["t"])
            await self.chunks.put(dst, d["ck"], doc, self._seal(doc, raw, aad))
            await upsert(self.checkpoints, doc)
        if await self._heads_needed():
            async for h in self.heads.find({"thread_id": src}):
                await self._advance_head(dst, h["nk"], h["latest"])

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep only the newest checkpoint of each namespace (with its
        writes); ``"delete"``: delete the threads. A thread that uses a ``DeltaChannel`` is
        refused by ``keep_latest`` (``NotImplementedError``), as in LangGraph's PostgresSaver:
        dropping its ancestors would lose the channel's history."""
        self._bridge.seen()
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"Unknown prune strategy: {strategy!r}")
        ids = [str(t) for t in thread_ids]
        if strategy == "delete":
            for t in ids:
                await self.adelete_thread(t)
            return
        listed: dict[str, list[dict[str, Any]]] = {}
        for t in ids:
            listed[t] = await self.checkpoints.find(
                {"thread_id": t}, projection=["thread_id", "ck", "ns", "delta"]
            ).to_list()
        delta = sorted(t for t, docs in listed.items() if any(d.get("delta") for d in docs))
        if delta:
            raise NotImplementedError(
                f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(delta)}"
            )
        for t, docs in listed.items():
            newest: dict[str, str] = {}
            for d in docs:
                newest[d["ns"]] = max(newest.get(d["ns"], ""), d["ck"])
            await self._delete_checkpoints(t, [d for d in docs if d["ck"] != newest[d["ns"]]])

    async def aexpire_threads(self, older_than: timedelta) -> int:
        """Delete the threads whose newest checkpoint was saved more than ``older_than`` ago,
        with their writes and chunks; returns how many. Only checkpoints saved before the
        cutoff are deleted, each with its own writes and chunks, never the rest of a thread by
        its id: a checkpoint saved to a thread while it expires (a thread idle that long,
        resumed at that moment) is kept with its chunks and writes, and the thread is then not
        counted.

        >>> # await saver.aexpire_threads(older_than=timedelta(days=30))
        """
        self._bridge.seen()
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise QueryError("older_than must be a non-negative timedelta", path="older_than")
        cutoff = datetime.now(UTC) - older_than
        candidates: set[str] = set()
        async for d in self.checkpoints.find(
            {"kind": "cp", "saved_at": {"$lt": cutoff}}, projection=["thread_id"]
        ):
            candidates.add(d["thread_id"])
        expired = 0
        for t in sorted(candidates):
            recent = await self.checkpoints.find_one(
                {"thread_id": t, "saved_at": {"$gte": cutoff}}, projection=["thread_id"]
            )
            if recent is not None:
                continue
            stale = {"thread_id": t, "saved_at": {"$lt": cutoff}}
            old = await self.checkpoints.find(stale, projection=["ck"]).to_list()
            await self.checkpoints.delete_many(stale)  # readers stop finding them first
            for i in range(0, len(old), 16):
                await asyncio.gather(*(self._delete_parts(t, d["ck"]) for d in old[i : i + 16]))
            if await self.checkpoints.find_one({"thread_id": t}, projection=["thread_id"]):
                continue  # saved to while it expired: kept
            await self.heads.delete_many({"thread_id": t})
            expired += 1
        return expired

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Per channel, the writes along ``config``'s parent chain (oldest first) back to the
        nearest ancestor that stores the channel's value (its ``seed``). Walks checkpoint
        documents by key and reads only the requested channels' writes."""
        self._bridge.seen()
        if not channels:
            return {}
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        cid = get_checkpoint_id(config)
        parent: str | None = None
        if cid:
            target = await self.checkpoints.find_one({"thread_id": thread_id, "ck": _ck(ns, cid)})
            parent = target.get("parent_id") if target else None
        elif (newest := await self._latest(thread_id, ns)) and newest.parent_config:
            parent = newest.parent_config["configurable"]["checkpoint_id"]
        collected: dict[str, list[PendingWrite]] = {c: [] for c in channels}
        seeds: dict[str, Any] = {}
        remaining = set(channels)
        while parent and remaining:
            doc = await self.checkpoints.find_one({"thread_id": thread_id, "ck": _ck(ns, parent)})
            if doc is None:
                break
            bucket = await self._bucket(thread_id, doc["ck"])
            for w in reversed(await self._load_writes(bucket, remaining)):
                collected[w[1]].append(w)
            raw = self._open_checkpoint(doc, await self.chunks.get(doc, doc["ck"]))
            values = self.serde.loads_typed((doc["t"], raw))["channel_values"]
            for ch in list(remaining):
                if ch in values:
                    seeds[ch] = values[ch]
                    remaining.discard(ch)
            parent = doc.get("parent_id")
        result: dict[str, DeltaChannelHistory] = {}
        for ch in channels:
            entry: DeltaChannelHistory = {"writes": list(reversed(collected[ch]))}
            if ch in seeds:
                entry["seed"] = seeds[ch]
            result[ch] = entry
        return result

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as LangGraph's own savers write them: a zero-padded counter and a random
        fraction, so they compare as strings."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # --- sync twins (from threads other than the database's event loop) -----------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._bridge.run("get_tuple", self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self._bridge.iterate(
            "list", self.alist(config, filter=filter, before=before, limit=limit)
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._bridge.run("put", self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._bridge.run("put_writes", self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._bridge.run("delete_thread", self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._bridge.run("delete_for_runs", self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._bridge.run("copy_thread", self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._bridge.run("prune", self.aprune(thread_ids, strategy=strategy))

    def expire_threads(self, older_than: timedelta) -> int:
        """Sync twin of :meth:`aexpire_threads`."""
        return self._bridge.run("expire_threads", self.aexpire_threads(older_than))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._bridge.run(
            "get_delta_channel_history",
            self.aget_delta_channel_history(config=config, channels=channels),
        )


__all__ = ["AsyncDBSaver"]
