"""``AsyncDBStore``: LangGraph's long-term memory store (``BaseStore``) on any asyncdb Database.

>>> # store = AsyncDBStore(db, ttl={"default_ttl": 60, "refresh_on_read": True})
>>> # await store.aput(("users", "u1"), "prefs", {"theme": "dark", "score": 9})
>>> # await store.asearch(("users",), filter={"score": {"$gte": 9}})

Items live in one collection keyed ``(ns0, sk)``: ``ns0`` is the namespace's first label and
``sk`` its other labels, each followed by ``"."``, then ``"."`` and the item key. Labels never
contain ``"."`` nor are empty (LangGraph rejects both), so the first ``".."`` ends the
namespace, and every namespace under a prefix ``(a, b, ...)`` is the key range
``ns0 = a, "b." <= sk < "b/"``: a search within a prefix is a key-prefix query on every
backend (DynamoDB ``Query``, Firestore and Cosmos partition queries, a primary-key range in SQL).

``filter`` is asyncdb's query language (DESIGN section 2) applied to the item's value and pushed
down through the backend's planner, so numbers compare as numbers (``9 < 10``, never
``'9' > '10'``). Results are in key order (namespace, then key), which makes ``offset`` stable.
TTLs are minutes; an expired item is never returned (the collection's TTL field hides it) and
``asweep_ttl`` / ``start_ttl_sweeper`` delete it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from asyncdb import AsyncDBError, Database, DuplicateKey, NotSupported, QueryError
from asyncdb.integrations.langgraph._chunks import next_key
from asyncdb.integrations.langgraph._sync import LoopBridge

_LOGICAL = ("$and", "$or", "$nor")
_log = structlog.get_logger("asyncdb.integrations.langgraph")


def item_key(namespace: Sequence[str], key: str) -> dict[str, str]:
    """The asyncdb key of an item."""
    return {"ns0": namespace[0], "sk": "".join(f"{label}." for label in namespace[1:]) + "." + key}


def prefix_filter(prefix: Sequence[str]) -> dict[str, Any]:
    """The asyncdb filter of every item whose namespace starts with ``prefix`` (a key range)."""
    if not prefix:
        return {}
    query: dict[str, Any] = {"ns0": prefix[0]}
    if len(prefix) > 1:
        start = "".join(f"{label}." for label in prefix[1:])
        query["sk"] = {"$gte": start, "$lt": next_key(start)}
    return query


def value_filter(filter: Mapping[str, Any]) -> dict[str, Any]:
    """A LangGraph ``filter`` on item values as an asyncdb filter on the ``value`` field."""
    if not isinstance(filter, Mapping):
        raise QueryError("filter must be a mapping", path="filter")
    out: dict[str, Any] = {}
    for k, v in filter.items():
        if k in _LOGICAL:
            if not isinstance(v, list | tuple):
                raise QueryError(f"{k} takes a list of filters", path=k)
            out[k] = [value_filter(f) for f in v]
        elif isinstance(k, str) and k.startswith("$"):
            raise QueryError(f"unknown top-level operator {k!r}", path=k)
        else:
            out[f"value.{k}"] = v
    return out


def _matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


class AsyncDBStore(BaseStore):
    """A LangGraph ``BaseStore`` over any asyncdb :class:`~asyncdb.Database`, natively async.

    ``ttl`` is LangGraph's ``TTLConfig`` (minutes): ``default_ttl``, ``refresh_on_read``
    (default True) and ``sweep_interval_minutes`` (used by :meth:`start_ttl_sweeper`).
    ``index`` (vector search) is not supported: asyncdb has no exact vector path on every
    backend, so it raises ``NotSupported``. A natural-language ``query`` in a search is ignored
    (``score`` is None), as in LangGraph's ``InMemoryStore`` without an index.
    """

    supports_ttl = True

    def __init__(
        self,
        db: Database,
        *,
        ttl: TTLConfig | None = None,
        index: IndexConfig | None = None,
        collection: str = "langgraph_store",
        max_scan: int = 100_000,
    ) -> None:
        if index is not None:
            raise NotSupported(
                "AsyncDBStore has no vector search (index=): no backend path is exact everywhere"
            )
        self.db = db
        self.ttl_config = ttl
        self.items = db.collection(
            collection, key=("ns0", "sk"), ttl="expires_at", max_scan=max_scan
        )
        self._bridge = LoopBridge(type(self).__name__)
        self._sweeper: asyncio.Task[None] | None = None

    # --- batch -------------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations; reads see the store as it was before this batch's puts, and of
        several puts of one item the last wins."""
        self._bridge.seen()
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        results: list[Result] = [None] * len(ops)
        reads: list[tuple[int, Any]] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                reads.append((i, self._get(op)))
            elif isinstance(op, SearchOp):
                reads.append((i, self._search(op)))
            elif isinstance(op, ListNamespacesOp):
                reads.append((i, self._list_namespaces(op)))
            elif isinstance(op, PutOp):
                puts.pop((tuple(op.namespace), op.key), None)
                puts[(tuple(op.namespace), op.key)] = op
            else:
                raise QueryError(f"unknown store operation {type(op).__name__}")
        done = await asyncio.gather(*(coro for _, coro in reads))
        for (i, _), result in zip(reads, done, strict=True):
            results[i] = result
        if puts:
            await asyncio.gather(*(self._put(op) for op in puts.values()))
        return results

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Sync twin of :meth:`abatch`, from threads other than the database's event loop."""
        return self._bridge.run("batch", self.abatch(ops))

    # --- operations --------------------------------------------------------------------------

    @staticmethod
    def _item(doc: dict[str, Any], cls: type[Item] = Item) -> Any:
        return cls(
            namespace=tuple(doc["ns"]),
            key=doc["key"],
            value=doc["value"],
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )

    async def _refresh(self, docs: list[dict[str, Any]]) -> None:
        """Push the expiry of items with a TTL to ``ttl`` minutes from now."""
        now = datetime.now(UTC)
        await asyncio.gather(
            *(
                self.items.update_one(
                    {"ns0": d["ns0"], "sk": d["sk"]},
                    {"$set": {"expires_at": now + timedelta(minutes=d["ttl"])}},
                )
                for d in docs
                if d.get("ttl") is not None
            )
        )

    async def _get(self, op: GetOp) -> Item | None:
        if not op.namespace:
            return None
        doc = await self.items.find_one(item_key(op.namespace, op.key))
        if doc is None:
            return None
        if op.refresh_ttl:
            await self._refresh([doc])
        item: Item = self._item(doc)
        return item

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        if isinstance(op.limit, bool) or not isinstance(op.limit, int) or op.limit < 0:
            raise QueryError("limit must be a non-negative integer", path="limit")
        if isinstance(op.offset, bool) or not isinstance(op.offset, int) or op.offset < 0:
            raise QueryError("offset must be a non-negative integer", path="offset")
        if op.limit == 0:
            return []
        query = prefix_filter(op.namespace_prefix)
        if op.filter:
            query = {"$and": [query, value_filter(op.filter)]} if query else value_filter(op.filter)
        docs = await self.items.find(
            query,
            sort=[("ns0", 1), ("sk", 1)],
            skip=op.offset,
            limit=op.limit,
            allow_scan=True if not op.namespace_prefix else None,
        ).to_list()
        if op.refresh_ttl:
            await self._refresh(docs)
        return [self._item(d, SearchItem) for d in docs]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        if isinstance(op.limit, bool) or not isinstance(op.limit, int) or op.limit < 0:
            raise QueryError("limit must be a non-negative integer", path="limit")
        if isinstance(op.offset, bool) or not isinstance(op.offset, int) or op.offset < 0:
            raise QueryError("offset must be a non-negative integer", path="offset")
        conditions = tuple(op.match_conditions or ())
        fixed: list[str] = []  # the prefix's leading labels without wildcards narrow the read
        for c in conditions:
            if c.match_type == "prefix":
                for label in c.path:
                    if label == "*":
                        break
                    fixed.append(label)
                break
        query = prefix_filter(fixed)
        seen: set[tuple[str, ...]] = set()
        async for doc in self.items.find(
            query, projection=["ns"], allow_scan=True if not fixed else None
        ):
            ns = tuple(doc["ns"])
            if all(_matches(ns, c) for c in conditions):
                seen.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(seen)[op.offset : op.offset + op.limit]

    async def _put(self, op: PutOp) -> None:
        key = item_key(op.namespace, op.key)
        if op.value is None:
            await self.items.delete_one(key)
            return
        if not op.namespace:
            raise QueryError("a put needs a non-empty namespace", path="namespace")
        now = datetime.now(UTC)
        fields: dict[str, Any] = {
            "ns": list(op.namespace),
            "key": op.key,
            "value": dict(op.value),
            "updated_at": now,
        }
        unset: dict[str, str] = {}
        if op.ttl is not None:
            fields["ttl"] = op.ttl
            fields["expires_at"] = now + timedelta(minutes=op.ttl)
        else:
            unset = {"ttl": "", "expires_at": ""}
        try:  # a new item is one insert; an existing one keeps its created_at
            await self.items.insert_one({**key, **fields, "created_at": now})
        except DuplicateKey:
            update: dict[str, Any] = {"$set": fields}
            if unset:
                update["$unset"] = unset
            result = await self.items.update_one(key, update)
            if result.matched_count == 0:  # deleted (or expired) meanwhile: insert it anew
                with contextlib.suppress(DuplicateKey):
                    await self.items.replace_one(
                        key, {**key, **fields, "created_at": now}, upsert=True
                    )

    # --- TTL ---------------------------------------------------------------------------------

    async def asweep_ttl(self) -> int:
        """Delete the expired items now; returns how many."""
        self._bridge.seen()
        return await self.items.purge_expired()

    def sweep_ttl(self) -> int:
        """Sync twin of :meth:`asweep_ttl`."""
        return self._bridge.run("sweep_ttl", self.asweep_ttl())

    async def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Sweep every ``sweep_interval_minutes`` (default: the TTL config's, else 5) in a
        background task of this event loop, until :meth:`stop_ttl_sweeper`."""
        self._bridge.seen()
        if self._sweeper is not None and not self._sweeper.done():
            return self._sweeper
        interval = sweep_interval_minutes
        if interval is None:
            interval = (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        if interval <= 0:
            raise QueryError("sweep_interval_minutes must be positive")

        async def sweep_forever() -> None:
            while True:
                await asyncio.sleep(interval * 60)
                try:
                    await self.asweep_ttl()
                except AsyncDBError as exc:  # the next sweep tries again
                    _log.warning("ttl_sweep_failed", error=str(exc))

        self._sweeper = asyncio.get_running_loop().create_task(sweep_forever())
        return self._sweeper

    async def stop_ttl_sweeper(self) -> None:
        """Stop the background sweeper (if running)."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["AsyncDBStore", "item_key", "prefix_filter", "value_filter"]
