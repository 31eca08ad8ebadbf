"""The contract between the public API and a backend, and the logic every backend shares.

A backend is a :class:`Store` (one per ``connect``) that hands out a :class:`StoreCollection`
per collection spec. A store collection implements a few primitives: ``plan`` (pure),
``rows`` (candidate documents for a plan), ``insert_docs``, ``replace_docs``, ``delete_docs``
and ``atomic`` (a write section). Everything else (residual re-check, client-side sort within
``max_scan``, skip/limit, projection, updates as compare-and-write, upserts, keyset pages) is
implemented here once, and a backend overrides an operation only where its store does it natively.
"""

from __future__ import annotations

import collections
import gc
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from asyncdb.errors import DuplicateKey, NotSupported, QueryError, ScanRequired, UpdateError
from asyncdb.query.ast import (
    And,
    Cmp,
    Eq,
    FieldNode,
    In,
    MatchAll,
    Node,
    Nor,
    Not,
    Or,
    Path,
    Projection,
    Sort,
    SortKey,
    Update,
)
from asyncdb.query.evaluate import matches
from asyncdb.query.sort import sort_key
from asyncdb.query.update import apply_projection, apply_update, strict_equal, upsert_seed
from asyncdb.query.values import normalize_datetime
from asyncdb.resilience import Transient, classify_os_error
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query, UpdateResult

Doc = dict[str, Any]
KeyValue = str | int | datetime
KeyTuple = tuple[KeyValue, ...]

# The operation an observer (asyncdb.observe) is timing in this context, if any: the shared
# find logic below adds each document it reads from the store to its ``docs_read`` (the read
# amplification of a residual in ``db.metrics()``). Backends never look at it.
current_operation: ContextVar[Any] = ContextVar("asyncdb_current_operation", default=None)


class Session:
    """A write section or a user transaction, as a backend defines it. Backends subclass it."""

    in_transaction: bool = False


class Store(ABC):
    """One connected database. Subclasses register under URL schemes (entry point
    group ``asyncdb.backends``)."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # A network store's calls get the per-call deadline, and a timed-out call runs in a task of
    # its own, left to clean up in the background, so OperationTimeout is on time even when the
    # driver's clean-up waits on a slow server (a task and a timer per call, tens of µs). An
    # in-process store (memory, SQLite) gets neither: that would cost more than a point read.
    network: ClassVar[bool] = False
    # A network store whose calls, when cancelled at their deadline, return at once (their
    # clean-up goes on in the background by itself) sets this False: its calls then run in the
    # caller's task under ``asyncio.timeout``, without the task of their own that otherwise
    # keeps OperationTimeout on time (PostgreSQL: about 30 µs a call at concurrency 64).
    detach_calls: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        """Connect (pools, clients) for ``url``."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def collection(self, spec: CollectionSpec) -> StoreCollection: ...

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A user transaction: every write inside commits together or not at all."""
        raise NotSupported(f"{self.name} does not support transactions")

    async def ping(self) -> None:  # noqa: B027 (optional hook: in-process stores need none)
        """One cheap round trip to the server (``db.health()``); raises when it cannot. The
        default suits in-process stores."""

    async def server_version(self) -> str | None:
        """The server's version as it reports it (``asyncdb doctor``), or None when the
        service reports none. Read-only."""
        return None

    def pool_stats(self) -> dict[str, int] | None:
        """The connection pool's ``size``, ``in_use``, ``idle``, ``max_size`` and ``waits``
        (acquires that found no idle connection: they waited for a release or a new one),
        read-only, for ``db.metrics()`` and ``asyncdb doctor``; None for a store without a
        pool of its own."""
        return None

    def classify_error(self, exc: BaseException) -> Transient | None:
        """Whether ``exc`` is transient, and if so whether the request may have been applied
        (see asyncdb.resilience). Stores add their driver's errors; the default knows sockets."""
        return classify_os_error(exc)


# --- helpers shared by planners ---------------------------------------------------------------


def conjuncts(node: Node) -> tuple[Node, ...]:
    """The top-level AND terms of a filter."""
    if isinstance(node, MatchAll):
        return ()
    if isinstance(node, And):
        return tuple(t for c in node.children for t in conjuncts(c))
    return (node,)


def conjoin(nodes: list[Node] | tuple[Node, ...]) -> Node:
    if not nodes:
        return MatchAll()
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def is_key_value(value: Any) -> bool:
    return (type(value) is str and value != "") or type(value) is int or type(value) is datetime


def key_lookup(node: Node, spec: CollectionSpec) -> list[KeyTuple] | None:
    """The keys a filter pins down by equality on every key field (``$in`` on one), else None."""
    choices: dict[str, list[KeyValue]] = {}
    for term in conjuncts(node):
        if isinstance(term, Eq) and len(term.path) == 1 and term.path[0] in spec.key:
            if not is_key_value(term.value):
                # {id: 1.0} equals the key 1 (numbers compare by value): leave such filters to
                # the general path, which evaluates them exactly, rather than pin no key.
                return None
            prev = choices.get(term.path[0])
            values = [term.value] if prev is None else [v for v in prev if v == term.value]
            choices[term.path[0]] = values
        elif isinstance(term, In) and len(term.path) == 1 and term.path[0] in spec.key:
            values = [v for v in term.values if is_key_value(v)]
            if len(values) != len(term.values):
                return None
            prev = choices.get(term.path[0])
            choices[term.path[0]] = values if prev is None else [v for v in prev if v in values]
    if set(choices) != set(spec.key):
        return None
    keys: list[KeyTuple] = [()]
    for field in spec.key:
        keys = [(*k, v) for k in keys for v in dict.fromkeys(choices[field])]
    return keys


def indexed_path(node: Node, spec: CollectionSpec) -> str | None:
    """The name of a declared index whose leading field the filter constrains, if any."""
    constrained: set[Path] = set()
    for term in conjuncts(node):
        if isinstance(term, Eq | Cmp | In) and term.path:
            constrained.add(term.path)
    if spec.key and (spec.key[0],) in constrained:
        return "key-prefix"
    for index in spec.indexes:
        if index.paths[0] in constrained:
            return f"index:{index.name}"
    return None


def field_heads(node: Node | None) -> set[str]:
    """The top-level fields a filter reads."""
    if node is None:
        return set()
    if isinstance(node, And | Or | Nor):
        return set().union(*(field_heads(c) for c in node.children))
    if isinstance(node, FieldNode):
        return {node.path[0]}
    return set()


def projected_fields(
    projection: Projection | None, spec: CollectionSpec, needed: set[str]
) -> tuple[bool, tuple[str, ...]] | None:
    """What a store may return instead of whole documents for ``projection``: whole top-level
    fields, a superset of what ``apply_projection`` (run again in process) and the in-process
    steps (``needed``: the fields the residual, the sort and a keyset position read) use.
    ``(True, fields)`` keeps only those fields (the key fields always among them), ``(False,
    fields)`` drops them; None: whole documents."""
    if projection is None:
        return None
    if projection.include:
        fields = {p[0] for p in projection.paths} | set(spec.key) | needed
        return True, tuple(sorted(fields))
    dropped = {
        p[0]
        for p in projection.paths
        if len(p) == 1 and p[0] not in spec.key and p[0] not in needed
    }
    return (False, tuple(sorted(dropped))) if dropped else None


def sort_served_by_index(sort: Sort, spec: CollectionSpec) -> bool:
    if not sort:
        return True
    lead = sort[0].path
    return lead == (spec.key[0],) or any(index.paths[0] == lead for index in spec.indexes)


def with_key_tiebreak(sort: Sort, spec: CollectionSpec) -> Sort:
    """``sort`` made total by appending the key fields (ascending) it lacks."""
    have = {k.path for k in sort}
    extra = tuple(SortKey((k,), 1) for k in spec.key if (k,) not in have)
    return sort + extra


def key_of(doc: Mapping[str, Any], spec: CollectionSpec) -> KeyTuple:
    key = spec.key
    if len(key) == 1:
        return (doc[key[0]],)
    return tuple([doc[k] for k in key])


def new_id() -> str:
    """A time-ordered random id (UUIDv7 layout), so generated keys sort by creation."""
    millis = int(datetime.now(UTC).timestamp() * 1000)
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (
        (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & (2**62 - 1))
    )
    return str(uuid.UUID(int=value))


GC_PAUSE_MIN = 256  # batches smaller than this are not worth pausing the collector for


@contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """The cyclic garbage collector off (when ``pause``) for a synchronous stretch that builds
    many long-lived containers (a bulk insert's copies of its documents): each collection would
    traverse the growing batch again, which made GC a fifth of a 100k-document insert. Never
    hold it across an await or around user code; collection resumes afterwards (nothing is
    lost, only deferred)."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check_key(doc: Mapping[str, Any], spec: CollectionSpec) -> KeyTuple:
    """Validate the key fields of a document about to be written; returns its key."""
    fields = spec.key
    if len(fields) == 1 and type(doc) is dict:  # the usual case, checked inline
        value = doc.get(fields[0], doc)  # the document itself: the field is absent
        t = type(value)
        if (t is str and value != "") or t is int or t is datetime:
            return (value,)
    values = []
    for field in spec.key:
        if field not in doc:
            raise QueryError("the document lacks its key field", path=field)
        value = doc[field]
        t = type(value)
        if not ((t is str and value != "") or t is int or t is datetime):  # is_key_value
            raise QueryError(
                "key values must be non-empty strings, integers or datetimes", path=field
            )
        values.append(value)
    return tuple(values)


def expired_filter(ttl: str, now: datetime | None = None) -> Cmp:
    """Documents whose TTL field holds a date at or before now are expired."""
    path = tuple(ttl.split("."))
    return Cmp(path, "$lte", normalize_datetime(now or datetime.now(UTC)))


def expiry_filter(spec: CollectionSpec, now: datetime | None = None) -> Node | None:
    """The visible documents of a TTL collection: not expired (expired ones are never returned)."""
    if spec.ttl is None:
        return None
    expired = expired_filter(spec.ttl, now)
    return Not(expired.path, expired)


# --- the shared collection logic --------------------------------------------------------------


class StoreCollection(ABC):
    """One collection of one store. Subclasses implement the primitives below."""

    store: Store
    spec: CollectionSpec
    # Table mode (a relational table's own key rules): no "id" is ever invented, and an
    # autoincrement key left out is assigned by the database (``assigns_keys``).
    table_mode: ClassVar[bool] = False

    def assigns_keys(self, docs: list[Doc]) -> bool:
        """Check the keys of documents about to be inserted (a QueryError before any I/O) and
        say whether the store assigns some of them (table mode; never for documents)."""
        return False

    # primitives ---------------------------------------------------------------------------

    @abstractmethod
    async def ensure(self) -> None:
        """Create the table/container and its indexes if missing (idempotent)."""

    @abstractmethod
    def plan(self, query: Query) -> Plan:
        """Pure: split the query into native, approximate and residual parts."""

    @abstractmethod
    def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        """The candidate documents of ``plan`` (a superset of matches), in the plan's order."""

    @abstractmethod
    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        """Insert all or nothing; :class:`DuplicateKey` if a key exists."""

    @abstractmethod
    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        """Write ``new`` over ``old`` (same key) for each pair, inside ``session``."""

    @abstractmethod
    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        """Delete these documents (by key), inside ``session``."""

    @abstractmethod
    def atomic(self, session: Session | None) -> AbstractAsyncContextManager[Session]:
        """A write section: reads and writes inside it are atomic; reuses an open transaction."""

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        """The visible document with this key, or None (the point-read path). Backends with a
        cheaper native lookup override it; the answer must equal ``find_one`` on the key."""
        node = conjoin([Eq((f,), v) for f, v in zip(self.spec.key, key, strict=True)])
        async for doc in await self.find(Query(node, limit=1), session):
            return doc
        return None

    async def purge_expired(self) -> int:
        """Delete documents whose TTL has passed. Returns how many were deleted."""
        if self.spec.ttl is None:
            return 0
        expired = expired_filter(self.spec.ttl)
        return await self.delete(expired, multi=True, session=None, allow_scan=True, raw=True)

    # shared operations --------------------------------------------------------------------

    def visible(self, node: Node) -> Node:
        expiry = expiry_filter(self.spec)
        return node if expiry is None else conjoin([*conjuncts(node), expiry])

    def check_scan(self, plan: Plan, query: Query, allow_scan: bool | None) -> None:
        allowed = self.spec.allow_scan if allow_scan is None else allow_scan
        if allowed or not plan.scan:
            return
        bounded = (
            isinstance(query.filter, MatchAll)
            and query.limit is not None
            and query.skip + query.limit <= self.spec.max_scan
            and sort_served_by_index(query.sort, self.spec)
        )
        if not bounded:
            raise ScanRequired(
                f"this query on {self.spec.name!r} needs a full scan ({plan.native}); "
                "declare an index for it, or pass allow_scan=True (to the call or the collection)"
            )

    async def find(
        self, query: Query, session: Session | None, *, allow_scan: bool | None = None
    ) -> AsyncIterator[Doc]:
        """Stream the documents of ``query``: pushed filter, residual, sort, skip, limit."""
        query = Query(
            self.visible(query.filter),
            query.sort,
            query.skip,
            query.limit,
            query.projection,
            query.after,
        )
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        return self._execute(plan, query, session, allow_scan)

    def execution_plan(self, query: Query) -> Plan:
        """The plan ``find`` runs; a backend may skip the parts only ``explain()`` shows."""
        return self.plan(query)

    async def _execute(
        self, plan: Plan, query: Query, session: Session | None, allow_scan: bool | None
    ) -> AsyncIterator[Doc]:
        residual = plan.residual_node
        source = self.rows(plan, session)
        operation = current_operation.get()
        if plan.client_sort:
            source = self._sorted(source, residual, query, allow_scan, operation)
            residual = operation = None  # _sorted counted the documents read
        skip = 0 if plan.limit_pushed else query.skip
        limit = None if plan.limit_pushed else query.limit
        if limit == 0:
            return
        after = None if plan.limit_pushed or plan.sort_pushed else query.after
        sent = 0
        async for doc in source:
            if operation is not None:
                operation.docs_read += 1
            if residual is not None and not matches(residual, doc):
                continue
            if after is not None and sort_key(doc, query.sort) <= after:
                continue
            if skip:
                skip -= 1
                continue
            yield apply_projection(query.projection, doc, self.spec.key)
            sent += 1
            if limit is not None and sent >= limit:
                return

    async def _sorted(
        self,
        source: AsyncIterator[Doc],
        residual: Node | None,
        query: Query,
        allow_scan: bool | None,
        operation: Any = None,
    ) -> AsyncIterator[Doc]:
        cap = (
            None
            if (self.spec.allow_scan if allow_scan is None else allow_scan)
            else (self.spec.max_scan)
        )
        keyed: list[tuple[bytes, Doc]] = []
        async for doc in source:
            if operation is not None:
                operation.docs_read += 1
            if residual is not None and not matches(residual, doc):
                continue
            keyed.append((sort_key(doc, query.sort), doc))
            if cap is not None and len(keyed) > cap:
                raise ScanRequired(
                    f"sorting this query on {self.spec.name!r} in process needs more than "
                    f"max_scan={cap} documents; pass allow_scan=True or narrow the filter"
                )
        keyed.sort(key=lambda kd: kd[0])
        for _, doc in keyed:
            yield doc

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        n = 0
        async for _ in await self.find(Query(node), session, allow_scan=allow_scan):
            n += 1
        return n

    async def _matching(
        self,
        node: Node,
        session: Session,
        *,
        limit: int | None,
        allow_scan: bool | None,
        sort: Sort = (),
    ) -> list[Doc]:
        return [
            doc
            async for doc in await self.find(
                Query(node, sort=sort, limit=limit), session, allow_scan=allow_scan
            )
        ]

    async def insert(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        spec = self.spec
        with gc_paused(len(docs) >= GC_PAUSE_MIN):  # synchronous: one key tuple per document
            keys = [check_key(doc, spec) for doc in docs]
        if len(set(keys)) != len(keys):
            counts = collections.Counter(keys)  # linear: keys.count per key was quadratic
            dup = next(k for k in keys if counts[k] > 1)
            raise DuplicateKey(f"the batch holds the key {dup!r} twice", key=dup)
        if self.spec.ttl is None:
            await self.insert_docs(docs, session)
            return keys
        # An expired document is gone for the user, so it must not hold its key against a new one.
        async with self.atomic(session) as s:
            await self._purge_expired_keys(keys, s)
            await self.insert_docs(docs, s)
        return keys

    async def _purge_expired_keys(self, keys: list[KeyTuple], session: Session) -> None:
        assert self.spec.ttl is not None
        expired = expired_filter(self.spec.ttl)
        if self.spec.single_key:
            lookups: list[Node] = [In((self.spec.key[0],), tuple(k[0] for k in keys))]
        else:
            lookups = [
                And(tuple(Eq((f,), v) for f, v in zip(self.spec.key, k, strict=True))) for k in keys
            ]
        for lookup in lookups:
            node = And((*conjuncts(lookup), expired))
            await self.delete(node, multi=True, session=session, allow_scan=True, raw=True)

    async def update(
        self,
        node: Node,
        update: Update,
        *,
        multi: bool,
        upsert: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        sort: Sort = (),
        return_document: str | None = None,
    ) -> tuple[UpdateResult, Doc | None]:
        """Update one or many documents atomically per document; upsert when nothing matched.

        Returns the result and, with ``return_document`` "before"/"after", that document.
        """
        now = datetime.now(UTC)
        async with self.atomic(session) as s:
            docs = await self._matching(
                node, s, limit=None if multi else 1, allow_scan=allow_scan, sort=sort
            )
            pairs: list[tuple[Doc, Doc]] = []
            for doc in docs:
                new = apply_update(update, doc, now=now)
                new = self._keep_key(doc, new)
                if not strict_equal(doc, new):
                    pairs.append((doc, new))
            if pairs:
                await self.replace_docs(pairs, s)
            if docs:
                result = UpdateResult(len(docs), len(pairs))
                chosen: Doc | None = None
                if return_document == "before":
                    chosen = docs[0]
                elif return_document == "after":
                    chosen = pairs[0][1] if pairs else docs[0]
                return result, chosen
            if not upsert:
                return UpdateResult(0, 0), None
            seed = upsert_seed(node)
            new = apply_update(update, seed, is_insert=True, now=now)
            if update.replacement is not None:
                new = {**{k: seed[k] for k in self.spec.key if k in seed}, **new}
            if self.spec.key == ("id",) and "id" not in new and not self.table_mode:
                new = {"id": new_id(), **new}
            (upserted,) = await self.insert([new], s)
            if any(new.get(f) is None for f in self.spec.key):  # the database assigned it
                new = {**new, **dict(zip(self.spec.key, upserted, strict=True))}
            upserted_id = upserted[0] if self.spec.single_key else upserted
            return UpdateResult(0, 0, upserted_id), (new if return_document == "after" else None)

    def _keep_key(self, old: Doc, new: Doc) -> Doc:
        for field in self.spec.key:
            if field not in new:
                new = {field: old[field], **new}
            elif not strict_equal(new[field], old[field]):
                raise UpdateError("the key field cannot change", path=field)
        return new

    async def delete(
        self,
        node: Node,
        *,
        multi: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        raw: bool = False,
    ) -> int:
        async with self.atomic(session) as s:
            query = Query(node if raw else self.visible(node), limit=None if multi else 1)
            plan = self.execution_plan(query)
            self.check_scan(plan, query, allow_scan)
            docs = [doc async for doc in self._execute(plan, query, s, allow_scan)]
            if docs:
                await self.delete_docs(docs, s)
            return len(docs)

    async def query_plan(self, plan: Plan, *, analyze: bool = False) -> list[str]:
        """The store's own plan for ``plan`` (its ``EXPLAIN``), by line."""
        raise NotSupported(f"{self.store_name()} does not show its own query plans")

    def store_name(self) -> str:
        return type(self).__name__.removesuffix("Collection").lower() or "this backend"

    def explain(self, query: Query) -> Plan:
        return self.plan(
            Query(
                self.visible(query.filter),
                query.sort,
                query.skip,
                query.limit,
                query.projection,
                query.after,
            )
        )


__all__ = [
    "Doc",
    "KeyTuple",
    "Session",
    "Store",
    "StoreCollection",
    "check_key",
    "conjoin",
    "conjuncts",
    "current_operation",
    "expired_filter",
    "expiry_filter",
    "field_heads",
    "indexed_path",
    "is_key_value",
    "key_lookup",
    "key_of",
    "new_id",
    "projected_fields",
    "sort_served_by_index",
    "with_key_tiebreak",
]
