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
import dataclasses
import gc
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import orjson

from asyncdb._tagged_json import DUMP_OPTIONS, tag
from asyncdb.bulk import BulkProgress, WriteOp
from asyncdb.errors import (
    DuplicateKey,
    KeyChanged,
    NotSupported,
    QueryError,
    ScanRequired,
    UpdateError,
)
from asyncdb.options import call_options, with_hint
from asyncdb.query.aggregate import stream_pipeline
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
from asyncdb.query.grouping import GroupShape, group_shape, merge_partials
from asyncdb.query.limits import (
    MAX_DEPTH,
    PORTABLE,
    StoreLimits,
    check_depth,
    filter_size,
    value_depth,
)
from asyncdb.query.pipeline import Pipeline, Pushdown, first_match, split_find, stage_name
from asyncdb.query.plancache import PlanCache, ShapeEntry
from asyncdb.query.sort import encode_value, path_values, sort_key
from asyncdb.query.update import apply_projection, apply_update, strict_equal, upsert_seed
from asyncdb.query.values import normalize_datetime
from asyncdb.resilience import ContentionBackoff, Transient, classify_os_error
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

    def capacity_stats(self) -> dict[str, float] | None:
        """Capacity units consumed so far (``read``, ``write``) where the service meters them
        per request (DynamoDB's RCU/WCU), for ``db.metrics()``; None elsewhere."""
        return None

    def classify_error(self, exc: BaseException) -> Transient | None:
        """Whether ``exc`` is transient, and if so whether the request may have been applied
        (see asyncdb.resilience). Stores add their driver's errors; the default knows sockets."""
        return classify_os_error(exc)

    # --- breadth: native statements ------------------------------------------------------------

    def native_writes(self, statement: Any) -> bool:
        """Pure: validate a native statement (a typed error before any I/O) and say whether it
        may write (conservative: True unless it is a plain read the store runs read-only)."""
        raise NotSupported(f"{self.name} has no native statement language")

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        """Run one native statement with bound parameters (``db.native``); ``writes`` is
        :meth:`native_writes`' verdict, and a statement judged read-only runs read-only."""
        raise NotSupported(f"{self.name} has no native statement language")


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


def _pinned(node: Node, field: str) -> list[Any] | None:
    """The values a filter allows a top-level field by equality or ``$in`` (None: any)."""
    allowed: list[Any] | None = None
    for term in conjuncts(node):
        if isinstance(term, Eq | In) and term.path == (field,):
            values = [term.value] if isinstance(term, Eq) else list(term.values)
            allowed = values if allowed is None else [v for v in allowed if v in values]
    return allowed


# What StoreCollection._apply_by_key returns besides a document or None (deleted).
_UNCHANGED = object()
_FAILED = object()
_ABSENT: Any = object()

_KEY_DESTROYING = frozenset(
    {"$unset", "$rename", "$push", "$addToSet", "$pull", "$pop", "$currentDate"}
)


def check_key_update(node: Node, update: Update, spec: CollectionSpec, upsert: bool) -> None:
    """Refuse before any I/O an update that would change a document's key (KeyChanged, as in
    MongoDB): one that removes or reshapes a key field, and an upsert whose update or
    replacement sets a key field the filter pins to other values. Setting a key to the value
    it has is allowed; the other cases are caught when the update is applied (``_keep_key``).

    >>> from asyncdb.query.parse import parse_filter, parse_update
    >>> check_key_update(parse_filter({"id": "a"}), parse_update({"$set": {"id": "a"}}),
    ...                  CollectionSpec("c"), True)
    """
    if update.replacement is not None:
        sets: list[tuple[Path, str, Any]] = [
            ((f,), "$set", update.replacement[f]) for f in spec.key if f in update.replacement
        ]
    else:
        sets = []
        for op in update.ops:
            targets = [op.path, op.value] if op.op == "$rename" else [op.path]
            for target in targets:
                if target[0] not in spec.key:
                    continue
                if op.op in _KEY_DESTROYING or len(target) > 1:
                    raise KeyChanged(f"{op.op} would change the key field", path=".".join(target))
            if op.op in ("$set", "$setOnInsert") and op.path[0] in spec.key:
                sets.append((op.path, op.op, op.value))
    if not upsert:
        return
    for path, op_name, value in sets:
        allowed = _pinned(node, path[0])
        if allowed is not None and not any(strict_equal(value, v) for v in allowed):
            raise KeyChanged(
                f"{op_name} would give the upserted document another key than its filter's",
                path=path[0],
            )


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


BULK_RUN = 1000  # bulk_write: operations by key applied per write section
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


def check_batch_keys(keys: list[KeyTuple]) -> None:
    """A batch about to be inserted must not hold a key twice: DuplicateKey naming the first
    such key, before any I/O."""
    if len(set(keys)) != len(keys):
        counts = collections.Counter(keys)  # linear: keys.count per key was quadratic
        dup = next(k for k in keys if counts[k] > 1)
        raise DuplicateKey(f"the batch holds the key {dup!r} twice", key=dup)


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


_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
_READ_ONLY_SQL = frozenset({"select", "values", "explain", "show", "table"})


def sql_reads_only(statement: Any, language: str = "SQL") -> bool:
    """Pure: whether a native SQL/PartiQL statement is a plain read (its first keyword is
    SELECT, VALUES, EXPLAIN, SHOW or TABLE); anything else may write. A statement that is not a
    non-empty string is a QueryError. ``WITH`` counts as a write (a CTE may modify data).

    >>> sql_reads_only("(SELECT 1)"), sql_reads_only("WITH d AS (DELETE ...) SELECT 1")
    (True, False)
    """
    if not isinstance(statement, str) or not statement.strip():
        raise QueryError(f"a native statement must be a non-empty {language} string")
    rest = statement[_LEADING_NOISE.match(statement).end() :]  # type: ignore[union-attr]
    word = rest.split(None, 1)[0].lower() if rest.split() else ""
    return word.rstrip(";") in _READ_ONLY_SQL


def native_params(params: Any, *, mapping: bool) -> Any:
    """Bound parameters of a native statement: None, a sequence (a tuple), or, where the
    store names them (``mapping``), a mapping (a dict). Anything else is a QueryError."""
    if params is None:
        return ()
    if isinstance(params, list | tuple):
        return tuple(params)
    if mapping and isinstance(params, Mapping):
        return dict(params)
    kinds = "a sequence or a mapping" if mapping else "a sequence"
    raise QueryError(f"native statement parameters must be {kinds}, not {type(params).__name__}")


def distinct_values(docs: list[Doc], path: Path) -> list[Any]:
    """The distinct values ``path`` reaches in ``docs`` (arrays unwound one level; missing
    fields and empty arrays give none) under BSON equality, in BSON order. Of BSON-equal values
    the one with the smallest ``repr`` is kept (``1`` before ``1.0``), so the answer does not
    depend on the order a store returns documents in."""
    seen: dict[bytes, Any] = {}
    for doc in docs:
        for value in path_values(doc, path):
            code = encode_value(value)
            other = seen.get(code, value)
            # BSON-equal spellings (1, 1.0, Decimal("1")): the same one whatever the scan order
            seen[code] = value if repr(value) <= repr(other) else other
    return [seen[k] for k in sorted(seen)]


def path_bytes(value: Any, prefix: int = 0) -> int:
    """The UTF-8 size of the longest dotted field path inside ``value``."""
    if type(value) is dict:
        return max(
            (
                path_bytes(v, prefix + len(k.encode()) + (1 if prefix else 0))
                for k, v in value.items()
            ),
            default=prefix,
        )
    if type(value) is list:
        return max((path_bytes(v, prefix) for v in value), default=prefix)
    return prefix


async def close_stream(it: AsyncIterator[Any]) -> None:
    """Close an async generator now (its ``finally`` runs: a cursor's connection goes back)
    instead of when it is collected; other iterators need nothing."""
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


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


async def _iterate(docs: list[Doc]) -> AsyncIterator[Doc]:
    for doc in docs:
        yield doc


# --- the shared collection logic --------------------------------------------------------------


class StoreCollection(ABC):
    """One collection of one store. Subclasses implement the primitives below."""

    store: Store
    spec: CollectionSpec
    # Table mode (a relational table's own key rules): no "id" is ever invented, and an
    # autoincrement key left out is assigned by the database (``assigns_keys``).
    table_mode: ClassVar[bool] = False
    # The write section (``atomic``) locks what it reads (a lock, a transaction): bulk_write may
    # then apply a run of updates by key as one read and one batch write.
    locking_sections: ClassVar[bool] = False
    # A point read outside a transaction (``get``) that, cancelled at its deadline, returns at
    # once, nothing of its clean-up waiting on the server, sets this False: it then runs in
    # the caller's task even where the store's other calls get a task of their own
    # (``Store.detach_calls``), saving a task, a timer and three loop iterations a read.
    detach_point_reads: ClassVar[bool] = True
    # What the store can hold beyond the portable limits (asyncdb.query.limits), checked
    # before any write by check_document.
    limits: ClassVar[StoreLimits] = PORTABLE
    # An insert_many of at least this many documents, outside a transaction, on a collection
    # without TTL, may go to ``insert_streamed`` (its documents validated while the earlier ones
    # are sent); None: never.
    streamed_insert_min: ClassVar[int | None] = None

    @property
    def namespace(self) -> str:
        """What keys this collection's set-up status and cache entries on its database: a
        table (table mode) and a document collection of the same name are apart (collection
        names cannot hold ``:``)."""
        return f"table:{self.spec.name}" if self.table_mode else self.spec.name

    def stored_size(self, doc: Doc) -> int:
        """The size of ``doc`` as the store measures it against ``limits.document_bytes``."""
        return len(orjson.dumps(doc, default=tag, option=DUMP_OPTIONS))

    def stored_depth(self, doc: Doc) -> int:
        """The nesting of ``doc`` as the store keeps it, against ``limits.depth``."""
        return value_depth(doc)

    def stored_path_bytes(self, doc: Doc) -> int:
        """The longest field path of ``doc`` as the store keeps it, against
        ``limits.path_bytes``."""
        return path_bytes(doc)

    def key_size(self, key: KeyTuple) -> int:
        """The size of a key as the store keeps it, against ``limits.key_bytes``."""
        return sum(len(v.encode()) if type(v) is str else 8 for v in key)

    def check_update(self, node: Node, update: Update, upsert: bool) -> None:
        """Refuse, before any I/O, an update that would change the key (check_key_update) or
        whose operands alone are beyond this store's document size."""
        check_key_update(node, update, self.spec, upsert)
        limit = self.limits.document_bytes
        if limit is None:
            return
        operands: Any = update.replacement
        if operands is None:
            operands = [op.value for op in update.ops]
        size = len(orjson.dumps(operands, default=tag, option=DUMP_OPTIONS))
        if size > limit:
            raise QueryError(
                f"document size limit: {self.store.name} holds documents of at most {limit} "
                f"bytes, and this update's values alone are {size}"
            )

    def check_document(self, doc: Doc, key: KeyTuple | None = None) -> None:
        """Refuse, before any write, a document this store cannot hold: a QueryError naming
        the limit (key size, nesting, field paths, size). ``key``: its key, when known."""
        limits = self.limits
        if limits is PORTABLE:
            return
        quick = limits.key_quick  # short keys fit without being encoded
        if quick is not None:
            if key is None:
                key = key_of(doc, self.spec)
            for value in key:
                if type(value) is str and len(value) > quick:
                    self._check_key_size(key, limits.key_bytes or 0)
                    break
        if limits.measured:
            self._check_stored(doc, limits)

    def _check_key_size(self, key: KeyTuple, limit: int) -> None:
        size = self.key_size(key)
        if size > limit:
            raise QueryError(
                f"key size limit: {self.store.name} holds keys of at most {limit} bytes, "
                f"this one is {size}",
                path=",".join(self.spec.key),
            )

    def _check_stored(self, doc: Doc, limits: StoreLimits) -> None:
        name = self.store.name
        if limits.depth < MAX_DEPTH:
            check_depth(self.stored_depth(doc), "", limits.depth, name)
        if limits.path_bytes is not None:
            longest = self.stored_path_bytes(doc)
            if longest > limits.path_bytes:
                raise QueryError(
                    f"field path limit: {name} holds field paths of at most "
                    f"{limits.path_bytes} bytes, this document has one of {longest}"
                )
        if limits.document_bytes is not None:
            size = self.stored_size(doc)
            if size > limits.document_bytes:
                raise QueryError(
                    f"document size limit: {name} holds documents of at most "
                    f"{limits.document_bytes} bytes, this one is {size} as stored",
                    path=",".join(str(v) for v in key_of(doc, self.spec))[:100],
                )

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

    def insert_now(self, docs: list[Doc]) -> bool:
        """Insert ``docs`` (prepared, their keys checked; outside any transaction) as one
        autocommitted statement run to its end on the caller's thread, without yielding to the
        loop: True when they are stored; False when the store cannot do that now, and then
        nothing was written. No await lies between its start and its outcome, so a caller
        cancelled around it never leaves a write whose outcome is unknown. Raises
        :class:`DuplicateKey` (nothing written) if a key exists. Most stores cannot: False."""
        return False

    async def insert_autocommitted(self, docs: list[Doc]) -> bool:
        """Insert ``docs`` (prepared, their keys checked; outside any transaction) as one
        autocommitted statement (all or nothing: no write section around it): True when
        stored; False when the store has no such statement (nothing written: take
        ``insert``). :class:`DuplicateKey` if a key exists."""
        return False

    async def insert_streamed(self, chunks: Iterator[list[Doc]]) -> None:
        """Insert all the documents of ``chunks`` or none, outside a transaction: each chunk is
        drawn (prepared by the caller) while the earlier ones are sent, and an exception raised
        by ``chunks`` ends the insert with nothing written. :class:`DuplicateKey` if a key exists
        (the batch's own repeated keys included). Stores that set ``streamed_insert_min``
        implement it."""
        raise NotImplementedError

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
        self,
        query: Query,
        session: Session | None,
        *,
        allow_scan: bool | None = None,
        shape: ShapeEntry | None = None,
    ) -> AsyncIterator[Doc]:
        """Stream the documents of ``query``: pushed filter, residual, sort, skip, limit.
        ``shape``: the plan cache's entry of the raw filter ``query.filter`` was built from
        (``self.plans.parse``), whose planner binder then plans it."""
        query, plan = self._visible_plan(query, allow_scan, shape)
        return self._execute(plan, query, session, allow_scan)

    def _visible_plan(
        self, query: Query, allow_scan: bool | None, shape: ShapeEntry | None
    ) -> tuple[Query, Plan]:
        """``query`` with the store's visibility filter (TTL) added, and its checked plan."""
        query = Query(
            self.visible(query.filter),
            query.sort,
            query.skip,
            query.limit,
            query.projection,
            query.after,
        )
        plan = self.execution_plan(query) if shape is None else self.shaped_plan(query, shape)
        self.check_scan(plan, query, allow_scan)
        return query, plan

    async def find_list(
        self,
        query: Query,
        session: Session | None,
        *,
        allow_scan: bool | None = None,
        shape: ShapeEntry | None = None,
    ) -> list[Doc]:
        """``find``'s documents collected (a bounded read). When the store pushed all of the
        plan (no residual filter, no sort or limit left to apply here, no projection), a store
        with ``row_list`` decodes its rows in one pass, without a generator per document."""
        full, plan = self._visible_plan(query, allow_scan, shape)
        if (
            plan.residual_node is None
            and not plan.client_sort
            and plan.limit_pushed
            and full.projection is None
            and full.limit != 0
        ):
            docs = await self.row_list(plan, session)
            if docs is not None:
                operation = current_operation.get()
                if operation is not None:
                    operation.docs_read += len(docs)
                return docs
        it = self._execute(plan, full, session, allow_scan)
        try:
            return [doc async for doc in it]
        finally:
            await close_stream(it)

    async def row_list(self, plan: Plan, session: Session | None) -> list[Doc] | None:
        """Every document of a plan the store runs whole (its rows decoded in one pass), or
        None: then ``find_list`` streams it."""
        return None

    def execution_plan(self, query: Query) -> Plan:
        """The plan ``find`` runs; a backend may skip the parts only ``explain()`` shows."""
        return self.bounded_plan(query, self.plan)

    @property
    def plans(self) -> PlanCache:
        """Parsed filters and planner binders of recently seen raw filter shapes."""
        cache: PlanCache | None = self.__dict__.get("_plan_cache")
        if cache is None:
            cache = self.__dict__["_plan_cache"] = PlanCache()
        return cache

    @property
    def spec_text(self) -> str:
        """``repr(self.spec)``, made once (part of every cached read's digest)."""
        text: str | None = self.__dict__.get("_spec_text")
        if text is None:
            text = self.__dict__["_spec_text"] = repr(self.spec)
        return text

    def shaped_plan(self, query: Query, shape: ShapeEntry) -> Plan:
        """``execution_plan(query)`` through the binder the planner gave for this raw shape and
        these sort, skip, limit, projection and keyset settings."""
        rest = (
            query.sort,
            query.skip > 0,
            query.limit is not None,
            query.projection,
            query.after is not None,
        )
        binder = shape.binders.get(rest, shape)
        if binder is shape:
            limit = self.limits.filter_terms
            whole = limit is None or filter_size(query.filter) <= limit
            binder = shape.binders[rest] = self.plan_binder(query) if whole else None
        if binder is None:
            return self.execution_plan(query)
        planned: Plan = binder(query)
        return planned

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        """A function equal to ``execution_plan`` on every query of ``query``'s raw shape (see
        :mod:`asyncdb.query.plancache`) that binds the new values into what was compiled for
        the shape, or None (then the shape's queries are planned from the rebuilt filter)."""
        return None

    def bounded_plan(self, query: Query, plan_of: Callable[[Query], Plan]) -> Plan:
        """``plan_of(query)``, unless the filter has more terms than one native query of this
        store carries (``limits.filter_terms``): then the store gets the conjuncts that fit (a
        superset), and the whole filter, skip and limit are applied in process."""
        limit = self.limits.filter_terms
        if limit is None or filter_size(query.filter) <= limit:
            return plan_of(query)
        if key_lookup(query.filter, self.spec) is not None:
            return plan_of(query)  # read by key, the rest re-checked: no long native filter
        kept: list[Node] = []
        room = limit
        for term in conjuncts(query.filter):
            size = filter_size(term)
            if size <= room:
                kept.append(term)
                room -= size
        weak = conjoin(kept) if kept else MatchAll()
        plan = plan_of(dataclasses.replace(query, filter=weak, skip=0, limit=None, projection=None))
        return dataclasses.replace(
            plan,
            residual=query.filter.to_mongo(),
            residual_node=query.filter,
            limit_pushed=False,
        )

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
        try:
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
        finally:  # stopped early, or a residual raised: the store's stream closes now
            await close_stream(source)

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
        try:
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
        finally:
            await close_stream(source)
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
        check_batch_keys(keys)
        if self.spec.ttl is None:
            await self.insert_docs(docs, session)
            return keys
        # An expired document is gone for the user, so it must not hold its key against a new one.
        async with self.atomic(session) as s:
            await self._purge_expired_keys(keys, s)
            await self.insert_docs(docs, s)
        return keys

    async def insert_new(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        """``insert`` of documents whose keys the caller knows are not stored
        (``insert_many(..., assume_new=True)``): a store whose duplicate-key check is a read
        of its own before the write may skip it, and then overwrites a key that is stored
        after all. Here (a store whose check is free, or none to skip) it is ``insert``."""
        return await self.insert(docs, session)

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
            new = self._keep_key(seed, new)
            (upserted,) = await self.insert([new], s)
            if any(new.get(f) is None for f in self.spec.key):  # the database assigned it
                new = {**new, **dict(zip(self.spec.key, upserted, strict=True))}
            upserted_id = upserted[0] if self.spec.single_key else upserted
            return UpdateResult(0, 0, upserted_id), (new if return_document == "after" else None)

    def _keep_key(self, old: Doc, new: Doc) -> Doc:
        """``new``, the result of an update of ``old``, checked before it is written: its key
        is ``old``'s (a KeyChanged otherwise, as in MongoDB; an upsert's seed may lack key
        fields, which the update then sets) and it fits the limits."""
        for field in self.spec.key:
            if field not in old:
                continue
            if field not in new:
                new = {field: old[field], **new}
            elif not strict_equal(new[field], old[field]):
                raise KeyChanged("an update cannot change the key field", path=field)
        check_depth(value_depth(new), "", MAX_DEPTH)
        self.check_document(new)
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

    # aggregation -------------------------------------------------------------------------

    async def aggregate(
        self, pipeline: Pipeline, session: Session | None, *, allow_scan: bool | None = None
    ) -> AsyncIterator[Doc]:
        """Stream a pipeline's results. The leading ``$match`` (and a ``$sort``/``$skip``/
        ``$limit`` right after it) runs through ``find``, under the scan policy, and the rest in
        process (``asyncdb.query.aggregate``); on a store with ``group_statement`` a ``$group``
        right after the ``$match`` runs as one ``GROUP BY`` where that is exact. Backends
        override it to run more natively."""
        pushed = self._group_pushdown(pipeline)
        if pushed is not None:
            shape, query, plan = pushed
            self.check_scan(plan, query, allow_scan)
            sql, params = self.group_statement(shape, plan)
            groups = merge_partials(shape, await self.fetch_groups(shape, sql, params, session))
            if groups is not None:
                return stream_pipeline(shape.rest, _iterate(groups))
        down = split_find(pipeline)
        query = self._pushdown_query(down)
        source = await self.find(query, session, allow_scan=allow_scan)
        return stream_pipeline(down.rest, source)

    def group_statement(self, shape: GroupShape, plan: Plan) -> tuple[str, list[Any]]:
        """SQL stores: the ``GROUP BY`` statement of ``shape`` over ``plan``'s filter (see
        asyncdb/query/grouping.py for the partial rows it returns)."""
        raise NotSupported(f"{self.store_name()} does not group natively")

    async def fetch_groups(
        self, shape: GroupShape, sql: str, params: list[Any], session: Session | None
    ) -> Sequence[Sequence[Any]]:
        """Run ``group_statement``'s SQL: the partial rows of ``merge_partials``."""
        raise NotSupported(f"{self.store_name()} does not group natively")

    def _group_pushdown(self, pipeline: Pipeline) -> tuple[GroupShape, Query, Plan] | None:
        if type(self).group_statement is StoreCollection.group_statement:
            return None
        match, rest = first_match(pipeline)
        shape = group_shape(rest)
        if shape is None:
            return None
        query = Query(self.visible(match.filter if match is not None else MatchAll()))
        plan = self.execution_plan(query)
        return None if plan.residual_node is not None else (shape, query, plan)

    def _pushdown_query(self, down: Pushdown) -> Query:
        sort = with_key_tiebreak(down.sort, self.spec) if down.sort else ()
        return Query(down.filter, sort, down.skip, down.limit)

    def explain_aggregate(self, pipeline: Pipeline) -> Plan:
        """The plan of ``aggregate``: what the store runs, and the stages run in process."""
        pushed = self._group_pushdown(pipeline)
        if pushed is not None:
            shape, query, _ = pushed
            plan = self.explain(query)
            sql, params = self.group_statement(shape, plan)
            stages = [stage_name(s) for s in shape.rest]
            # the $group itself runs in process instead when the data is not provably exact
            native = {"group by": sql, "params": params, "in process": stages}
            return dataclasses.replace(plan, native=native)
        down = split_find(pipeline)
        plan = self.explain(self._pushdown_query(down))
        stages = [stage_name(s) for s in down.rest]
        return dataclasses.replace(plan, native={**plan.native, "in process": stages})

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

    # --- breadth: find-and-delete, distinct, counts, bulk writes, drop -------------------------

    async def find_and_delete(
        self,
        node: Node,
        *,
        sort: Sort = (),
        session: Session | None,
        allow_scan: bool | None = None,
    ) -> Doc | None:
        """Delete the first visible match (in ``sort`` order) atomically and return it as it
        was, or None. Inside the store's write section: exact where the section locks what it
        reads (memory, SQL, MongoDB); stores whose section is a compare-and-set override it."""
        async with self.atomic(session) as s:
            docs = await self._matching(node, s, limit=1, allow_scan=allow_scan, sort=sort)
            if not docs:
                return None
            await self.delete_docs(docs, s)
            return docs[0]

    async def _find_and_delete_checked(
        self,
        node: Node,
        *,
        sort: Sort,
        session: Session | None,
        allow_scan: bool | None,
    ) -> Doc | None:
        """``find_and_delete`` for stores whose section is a compare-and-set (a version, an
        ETag): pick the first match, then delete it by key only if it still matches (the
        store's conditional delete); a lost race picks again. The document returned is the one
        read, which matched then and still matched when it was deleted."""
        backoff = ContentionBackoff(f"a find_one_and_delete on {self.spec.name!r}")
        while True:
            query = Query(node, sort=sort, limit=1)
            docs = [d async for d in await self.find(query, session, allow_scan=allow_scan)]
            if not docs:
                return None
            doc = docs[0]
            key = key_of(doc, self.spec)
            same = conjoin(
                [*conjuncts(node), *(Eq((f,), v) for f, v in zip(self.spec.key, key, strict=True))]
            )
            if await self.delete(same, multi=False, session=session, allow_scan=True):
                return doc
            await backoff.lost()  # another writer took it or changed it: pick again

    async def distinct(
        self,
        field: str,
        node: Node,
        session: Session | None,
        *,
        allow_scan: bool | None = None,
    ) -> list[Any]:
        """The distinct values of ``field`` among the visible matches: arrays unwound one
        level, BSON equality (1, 1.0 and Decimal("1") are one value, "1" another), BSON order.
        Streams the matches with only the field's head projected."""
        path = tuple(field.split("."))
        projection = Projection(True, ((path[0],),))
        query = Query(node, projection=projection)
        return distinct_values(
            [doc async for doc in await self.find(query, session, allow_scan=allow_scan)], path
        )

    async def estimated_count(self) -> int:
        """A cheap count of the collection's documents. The default counts them exactly (its
        count primitive: a count aggregation where the store has one)."""
        return await self.count(MatchAll(), None, allow_scan=True)

    async def drop(self) -> None:
        """Remove the collection: its documents, indexes and hidden fields. The default deletes
        every document (stores where a collection is only its documents); stores with tables,
        containers or GSIs override it."""
        await self.delete(MatchAll(), multi=True, session=None, allow_scan=True, raw=True)

    async def bulk_write(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
        session: Session | None,
    ) -> None:
        """Apply ``ops[progress.next:]`` in order, each atomically per document, recording
        counts and per-operation failures in ``progress``; ordered stops at the first failure.
        Runs of inserts go to the store's batch insert in one call (all or nothing: on a
        duplicate key the run is redone one by one to find which failed); a backend with a
        native batch for more kinds overrides :meth:`bulk_batch`."""
        while progress.next < len(ops):
            if ordered and progress.errors:
                return
            taken = await self.bulk_batch(ops, progress, ordered=ordered, session=session)
            if not taken:
                await self._bulk_one(ops[progress.next], progress, session)
                progress.next += 1

    async def bulk_batch(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
        session: Session | None,
    ) -> int:
        """Apply a run of operations starting at ``progress.next`` natively and advance past
        it; returns how many were taken (0: the caller applies the next one by itself)."""
        start = progress.next
        if session is None and self.locking_sections and self._by_one_key(ops[start]):
            try:
                return await self._bulk_by_key(ops, progress, ordered=ordered)
            except (DuplicateKey, QueryError):
                # A unique index, or a store's own document check, refused a batch write (it
                # was rolled back): the run one operation at a time, each failure its own.
                return await self._bulk_each(ops, progress, ordered=ordered)
        end = start
        while end < len(ops) and ops[end].kind == "insert":
            end += 1
        if end - start < 2 or session is not None:
            return 0  # in a transaction a failed batch could abort it: one by one
        docs = [op.doc for op in ops[start:end]]
        try:
            await self.insert(docs, None)  # type: ignore[arg-type]
        except (DuplicateKey, QueryError):
            return 0  # nothing of it was written
        progress.inserted += end - start
        progress.next = end
        return end - start

    def _by_one_key(self, op: WriteOp) -> KeyTuple | None:
        """The one key an operation of a run applied in process writes: an insert's (not on
        a TTL collection, where an expired document must first be purged), or the one an
        update or delete without upsert pins down; else None."""
        if op.kind == "insert":
            return op.key if self.spec.ttl is None else None
        if op.upsert:
            return None
        assert op.node is not None
        keys = op.pinned if op.pinned_known else key_lookup(op.node, self.spec)
        return keys[0] if keys is not None and len(keys) == 1 else None

    def _apply_by_key(
        self, op: WriteOp, doc: Doc | None, now: datetime, counts: BulkProgress, index: int
    ) -> Any:
        """An update or delete of a key run applied to its document (None: absent), counted in
        ``counts``: the document after it, None when deleted, ``_UNCHANGED`` when it did not
        match or changed nothing, ``_FAILED`` when its error was recorded at ``index``."""
        assert op.node is not None
        if doc is None:
            return _UNCHANGED
        if op.by_key and self.spec.ttl is None:
            pass  # the document read by the pinned key is the one the key equality matches
        elif not matches(self.visible(op.node), doc):
            return _UNCHANGED
        if op.kind == "delete":
            counts.deleted += 1
            return None
        assert op.update is not None
        if op.flat:
            return self._apply_flat(op.update, doc, counts)
        try:
            new = self._keep_key(doc, apply_update(op.update, doc, now=now))
        except (UpdateError, QueryError) as exc:
            counts.errors.append((index, exc))
            return _FAILED
        counts.matched += 1
        if strict_equal(doc, new):
            return _UNCHANGED
        counts.modified += 1
        return new

    def _apply_flat(self, update: Update, doc: Doc, counts: BulkProgress) -> Any:
        """``_apply_by_key`` of a ``flat`` update (``$set`` of scalars and ``$unset`` of
        top-level fields outside the key): what apply_update and _keep_key give, without the
        deep copy and whole-document comparison. The key stays as it is, and the nesting
        check has nothing to refuse: a scalar at the top level is one level deep, and the
        stored document was checked when it was written (a document written by a native
        statement is outside asyncdb's semantics)."""
        new = doc.copy()  # the values it shares are scalars or left untouched
        changed = False
        for op in update.ops:
            name = op.path[0]
            if op.op == "$unset":
                if name in new:
                    del new[name]
                    changed = True
                continue
            old = new.get(name, _ABSENT)
            if old is _ABSENT or not strict_equal(old, op.value):
                changed = True
            new[name] = op.value
        self.check_document(new)
        counts.matched += 1
        if not changed:
            return _UNCHANGED
        counts.modified += 1
        return new

    def _update_by_one_key(self, op: WriteOp) -> KeyTuple | None:
        """``_by_one_key`` of an update or delete (None for an insert): the native runs of the
        stores that write each document under its own check take no inserts."""
        return None if op.kind == "insert" else self._by_one_key(op)

    async def _bulk_by_key(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
    ) -> int:
        """A run of inserts, updates and deletes by key in one write section: the documents
        read in one query, the operations applied in order in process (a later one sees an
        earlier one's result; an insert of a key that exists fails as DuplicateKey), then one
        batch delete, one batch rewrite of the changed documents and one batch insert (in that
        order: a unique value a deleted document held may be taken by another)."""
        start = progress.next
        run: list[tuple[WriteOp, KeyTuple]] = []
        for op in ops[start : start + BULK_RUN]:
            key = self._by_one_key(op)
            if key is None:
                break
            run.append((op, key))
        now = datetime.now(UTC)
        counts = BulkProgress()
        async with self.atomic(None) as s:
            wanted = list(dict.fromkeys(key for _, key in run))
            found = await self._docs_by_keys(wanted, s)
            before = {key_of(doc, self.spec): doc for doc in found}
            current: dict[KeyTuple, Doc | None] = dict(before)
            done = 0
            for i, (op, key) in enumerate(run):
                doc = current.get(key)
                done = i + 1
                if op.kind == "insert":
                    if doc is not None:
                        error = DuplicateKey(f"key {key!r} exists in {self.spec.name!r}", key=key)
                        counts.errors.append((start + i, error))
                        if ordered:
                            break
                        continue
                    current[key] = op.doc
                    counts.inserted += 1
                    continue
                after = self._apply_by_key(op, doc, now, counts, start + i)
                if after is _FAILED:
                    if ordered:
                        break
                    continue
                if after is not _UNCHANGED:
                    current[key] = after
            pairs: list[tuple[Doc, Doc]] = []
            gone: list[Doc] = []
            added: list[Doc] = []
            for k, d in current.items():
                old = before.get(k)
                if d is None:
                    if old is not None:
                        gone.append(old)
                elif old is None:
                    added.append(d)
                elif d is not old:
                    pairs.append((old, d))
            if gone:
                await self.delete_docs(gone, s)
            if pairs:
                await self.replace_docs(pairs, s)
            if added:
                await self.insert_docs(added, s)
        progress.inserted += counts.inserted
        progress.matched += counts.matched
        progress.modified += counts.modified
        progress.deleted += counts.deleted
        progress.errors.extend(counts.errors)
        progress.next = start + done
        return done

    async def _bulk_each(self, ops: list[WriteOp], progress: BulkProgress, *, ordered: bool) -> int:
        """The run a batch could not take (a unique index refused it, rolled back), one
        operation at a time; returns how many were taken."""
        start = progress.next
        end = start
        while end < len(ops) and end - start < BULK_RUN and self._by_one_key(ops[end]):
            if ordered and progress.errors:
                break
            await self._bulk_one(ops[end], progress, None)
            end += 1
            progress.next = end
        return end - start

    async def _docs_by_keys(self, keys: list[KeyTuple], session: Session) -> list[Doc]:
        """The visible documents with these keys (at most ``BULK_RUN``), in any order: one
        query. A store with a cheaper lookup by key overrides it."""
        return await self._matching(self._keys_filter(keys), session, limit=None, allow_scan=True)

    def _keys_filter(self, keys: list[KeyTuple]) -> Node:
        if self.spec.single_key:
            return In((self.spec.key[0],), tuple(k[0] for k in keys))
        return Or(
            tuple(
                And(tuple(Eq((f,), v) for f, v in zip(self.spec.key, k, strict=True))) for k in keys
            )
        )

    async def _bulk_one(self, op: WriteOp, progress: BulkProgress, session: Session | None) -> None:
        if op.hint is None:
            return await self._bulk_apply(op, progress, session)
        token = call_options.set(with_hint(op.hint))  # the operation's own hint=
        try:
            return await self._bulk_apply(op, progress, session)
        finally:
            call_options.reset(token)

    async def _bulk_apply(
        self, op: WriteOp, progress: BulkProgress, session: Session | None
    ) -> None:
        index = progress.next
        try:
            if op.kind == "insert":
                assert op.doc is not None
                await self.insert([op.doc], session)
                progress.inserted += 1
            elif op.kind == "update":
                assert op.node is not None and op.update is not None
                result, _ = await self.update(
                    op.node, op.update, multi=op.multi, upsert=op.upsert, session=session
                )
                progress.matched += result.matched_count
                progress.modified += result.modified_count
                if result.upserted_id is not None:
                    progress.upserted[index] = result.upserted_id
            else:
                assert op.node is not None
                progress.deleted += await self.delete(op.node, multi=op.multi, session=session)
        except (DuplicateKey, UpdateError, QueryError, ScanRequired) as exc:
            progress.errors.append((index, exc))


__all__ = [
    "Doc",
    "KeyTuple",
    "Session",
    "Store",
    "StoreCollection",
    "check_key",
    "check_key_update",
    "close_stream",
    "conjoin",
    "conjuncts",
    "current_operation",
    "distinct_values",
    "expired_filter",
    "expiry_filter",
    "field_heads",
    "indexed_path",
    "is_key_value",
    "key_lookup",
    "key_of",
    "native_params",
    "new_id",
    "projected_fields",
    "sort_served_by_index",
    "sql_reads_only",
    "with_key_tiebreak",
]
