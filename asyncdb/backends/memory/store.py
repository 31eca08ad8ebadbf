"""``memory://``: documents in process memory, evaluated by the reference evaluator.

Writes are serialised by one lock; a transaction holds it until commit and keeps an undo log,
so a rollback restores every document it touched. Reads outside a transaction wait while one is
open, so they never see uncommitted writes.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Self

from asyncdb.backends.base import (
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    indexed_path,
    key_lookup,
    key_of,
)
from asyncdb.errors import DuplicateKey, NotSupported, TransactionError
from asyncdb.query.ast import MatchAll, SortKey
from asyncdb.query.sort import sort_key
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query

_ABSENT: Any = object()


class MemorySession(Session):
    def __init__(self, *, transaction: bool) -> None:
        self.in_transaction = transaction
        self.undo: list[tuple[dict[KeyTuple, Doc], KeyTuple, Any]] = []

    def remember(self, table: dict[KeyTuple, Doc], key: KeyTuple) -> None:
        self.undo.append((table, key, table.get(key, _ABSENT)))

    def rollback(self) -> None:
        for table, key, old in reversed(self.undo):
            if old is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = old
        self.undo.clear()


class MemoryStore(Store):
    name = "memory"
    capabilities = Capabilities(
        transactions=True,
        conditional_writes=True,
        ttl=True,
        secondary_indexes=True,
        unique_indexes=True,
        # Filters and sorts run in process (the residual, a client sort bounded by max_scan),
        # which is what these two flags deny: nothing is pushed to a store.
        server_side_sort=False,
        regex_pushdown=False,
        keyset_pagination=True,
        bulk_insert=True,
    )

    def __init__(self) -> None:
        self.tables: dict[str, dict[KeyTuple, Doc]] = {}
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None

    def check_not_owner(self) -> None:
        """Waiting for the lock this task holds would hang forever: say what to do instead."""
        if self.owner is not None and self.owner is asyncio.current_task():
            raise TransactionError(
                "this task has a transaction open: use tx.collection(name) inside it"
            )

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        return cls()

    async def close(self) -> None:
        self.tables.clear()

    def collection(self, spec: CollectionSpec) -> MemoryCollection:
        return MemoryCollection(self, spec)

    @asynccontextmanager
    async def _section(
        self, session: Session | None, *, transaction: bool
    ) -> AsyncIterator[Session]:
        if session is not None:
            yield session
            return
        self.check_not_owner()
        async with self.lock:
            self.owner = asyncio.current_task()
            own = MemorySession(transaction=transaction)
            try:
                yield own
            except BaseException:
                own.rollback()
                raise
            finally:
                self.owner = None

    def transaction(self) -> Any:
        return self._section(None, transaction=True)

    def native_writes(self, statement: Any) -> bool:
        raise NotSupported(
            "the memory backend has no statement language of its own: its queries are "
            "asyncdb's filters, evaluated in process"
        )


class MemoryCollection(StoreCollection):
    store: MemoryStore
    locking_sections = True

    def __init__(self, store: MemoryStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec

    @property
    def table(self) -> dict[KeyTuple, Doc]:
        table: dict[KeyTuple, Doc] = self.store.tables.setdefault(self.spec.name, {})
        return table

    async def ensure(self) -> None:
        self.store.tables.setdefault(self.spec.name, {})

    def plan(self, query: Query) -> Plan:
        return self._plan(query, True)

    def execution_plan(self, query: Query) -> Plan:
        """The plan without the residual rendered back to the query language (``explain``)."""
        return self._plan(query, False)

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        if key_lookup(query.filter, self.spec) is not None:
            return None  # the keys are the plan's payload: planned from the filter
        fixed = self._plan(query, False)
        if fixed.residual_node is None:
            return lambda q: fixed
        backend, name, access, native = (
            fixed.backend,
            fixed.collection,
            fixed.access_path,
            fixed.native,
        )
        client_sort = fixed.client_sort

        def bind(q: Query) -> Plan:
            return Plan(
                backend, name, access, native, None, None, None, False, False, client_sort, q.filter
            )

        return bind

    def _plan(self, query: Query, explain: bool) -> Plan:
        keys = key_lookup(query.filter, self.spec)
        if keys is not None:
            access = "key"
        else:
            index = indexed_path(query.filter, self.spec)
            access = index if index is not None else "scan"
        residual = None if isinstance(query.filter, MatchAll) else query.filter
        return Plan(
            backend="memory",
            collection=self.spec.name,
            access_path=access,
            native={"keys": keys} if keys is not None else {"scan": self.spec.name},
            exact=None,
            approximate=None,
            residual=residual.to_mongo() if explain and residual is not None else None,
            sort_pushed=False,
            limit_pushed=False,
            client_sort=bool(query.sort),
            residual_node=residual,
            payload=keys,
        )

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        if session is None:
            self.store.check_not_owner()
            async with self.store.lock:  # wait for an open transaction; copy a snapshot
                snapshot = list(self._select(plan.payload))
        else:
            snapshot = list(self._select(plan.payload))
        for doc in snapshot:
            yield copy.deepcopy(doc)

    def _select(self, keys: list[KeyTuple] | None) -> Iterator[Doc]:
        table = self.table
        if keys is None:
            yield from table.values()
            return
        for key in keys:
            doc = table.get(key)
            if doc is not None:
                yield doc

    def _check_unique(self, doc: Doc, others: Iterator[tuple[KeyTuple, Doc]]) -> None:
        unique = [index for index in self.spec.indexes if index.unique]
        if not unique:
            return
        candidates = list(others)
        for index in unique:
            order = tuple(_asc(p) for p in index.paths)
            probe = sort_key(doc, order)
            for _key, other in candidates:
                if sort_key(other, order) == probe:
                    raise DuplicateKey(f"unique index {index.name} already holds this value")

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        async with self.atomic(session) as s:
            assert isinstance(s, MemorySession)
            table = self.table
            # Check the whole batch before writing any of it: inside a user transaction there is
            # no rollback when the caller catches DuplicateKey, so nothing may be half-written.
            for i, doc in enumerate(docs):
                key = key_of(doc, self.spec)
                if key in table:
                    raise DuplicateKey(f"key {key!r} exists in {self.spec.name!r}", key=key)
                earlier = ((key_of(d, self.spec), d) for d in docs[:i])
                self._check_unique(doc, itertools.chain(table.items(), earlier))
            for doc in docs:
                key = key_of(doc, self.spec)
                s.remember(table, key)
                table[key] = copy.deepcopy(doc)

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        assert isinstance(session, MemorySession)
        table = self.table
        keys = [key_of(new, self.spec) for _old, new in pairs]
        replaced = set(keys)
        for i, (_old, new) in enumerate(pairs):  # all checks first, as in insert_docs
            untouched = ((k, d) for k, d in table.items() if k not in replaced)
            others = ((k, n) for k, (_o, n) in zip(keys, pairs, strict=True) if k != keys[i])
            self._check_unique(new, itertools.chain(untouched, others))
        for key, (_old, new) in zip(keys, pairs, strict=True):
            session.remember(table, key)
            table[key] = copy.deepcopy(new)

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        assert isinstance(session, MemorySession)
        table = self.table
        for doc in docs:
            key = key_of(doc, self.spec)
            session.remember(table, key)
            table.pop(key, None)

    def atomic(self, session: Session | None) -> Any:
        return self.store._section(session, transaction=False)

    async def drop(self) -> None:
        self.store.check_not_owner()
        async with self.store.lock:
            self.store.tables.pop(self.spec.name, None)

    async def estimated_count(self) -> int:
        """The table's size (expired documents included until they are purged)."""
        return len(self.table)


def _asc(path: tuple[str, ...]) -> SortKey:
    return SortKey(path, 1)
