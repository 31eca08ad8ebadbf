"""The public collection API: ``insert_one``, ``find``, ``find_page``, ``update_one``, ...

Every call validates and parses its input first (a bad filter raises
:class:`~asyncdb.errors.QueryError` before any I/O), then hands the parsed query to the backend.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from asyncdb._streamed_insert import insert_streamed, streams
from asyncdb.backends.base import (
    GC_PAUSE_MIN,
    Doc,
    KeyTuple,
    Session,
    StoreCollection,
    check_key,
    close_stream,
    current_operation,
    gc_paused,
    key_lookup,
    key_of,
    new_id,
    with_key_tiebreak,
)
from asyncdb.bulk import (
    BulkProgress,
    BulkWriteResult,
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateMany,
    UpdateOne,
    WriteOp,
    key_filter,
    simple_update,
)
from asyncdb.cache import TOO_LARGE, ReadCache, shape_digest
from asyncdb.errors import BulkWriteError, NotSupported, QueryError
from asyncdb.observe.operation import observed, observed_find_list, observed_point_read
from asyncdb.options import (
    CallOptions,
    call_options,
    call_options_of,
    check_hint,
    resolve_hint,
)
from asyncdb.query.ast import MatchAll, Node, Projection, Sort, Update
from asyncdb.query.limits import PORTABLE
from asyncdb.query.parse import (
    parse_filter,
    parse_path,
    parse_projection,
    parse_replacement,
    parse_sort,
)
from asyncdb.query.pipeline import Pipeline, first_match, parse_pipeline, parse_update_spec
from asyncdb.query.plancache import ShapeEntry
from asyncdb.query.sort import sort_key
from asyncdb.query.update import apply_projection
from asyncdb.query.values import canonical, normalize_document, normalize_value
from asyncdb.types import CollectionSpec, DocT, Page, Plan, Query, UpdateResult

if TYPE_CHECKING:
    from asyncdb.database import Database
    from asyncdb.observe.operation import ObservedCache

T = TypeVar("T")
# find_one's parameters, by position (what the observer reports of a point read's arguments)
_FIND_ONE = ("filter", "projection", "sort", "allow_scan", "cache")
# What a projection may be (a projected read returns dicts, also on a typed collection).
ProjectionSpec = Mapping[str, Any] | list[str] | tuple[str, ...]
_END: Any = object()  # a find stream with no first document
# A find limited to this many documents, collected by to_list, is read whole in one call.
LIST_AT_ONCE = 1000
# True while the caller's documents are its own fresh dicts that nothing else holds or changes
# (a copy's batch read from its source): a document already in canonical form is then written
# as it is, without the validated copy that keeps an application's dicts apart.
owned_documents: ContextVar[bool] = ContextVar("asyncdb_owned_documents", default=False)


def _same_document(a: Any, b: Any) -> bool:
    """Equal values of equal types, ignoring field order (stores such as jsonb reorder keys):
    was a re-sent insert's document stored exactly as sent?"""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same_document(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(_same_document(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _check_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QueryError(f"{name} must be a non-negative integer", path=name)
    return value


def _limit(value: Any) -> int | None:
    """Like pymongo, a limit of 0 means no limit."""
    return _check_count("limit", value) or None


async def _retried_stream(
    coll: Collection,
    open_it: Callable[[], Awaitable[AsyncIterator[Doc]]],
    what: str,
    options: CallOptions | None = None,
) -> AsyncGenerator[Doc, None]:
    """A store's stream, opened under the retry policy until its first document (a read; past
    it, documents were handed out), the rest each under the per-call deadline on network
    stores."""

    async def open_stream() -> tuple[AsyncIterator[Doc], Any]:
        it = await open_it()
        try:
            return it, await anext(it)
        except StopAsyncIteration:
            return it, _END

    it, first = await coll._call(open_stream, write=False, what=what, options=options)
    # Closed as soon as this stream is (a consumer that stops early or raises), so the
    # backend's cursor gives its pooled connection back at once, not when collected.
    try:
        if first is _END:
            return
        yield first
        resilience = coll._db._resilience
        if not resilience.network:  # in-process stores take no per-call timer
            async for doc in it:
                yield doc
            return
        loop = coll._db._check_loop()
        while True:
            try:
                doc = await resilience.next_item(it, loop)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise resilience.timed_out(f"{what} (next document)") from exc
            yield doc
    finally:
        await close_stream(it)


def _match_filter(pipeline: Pipeline) -> Node:
    """The filter of a pipeline's leading ``$match`` (everything without one)."""
    match, _ = first_match(pipeline)
    return match.filter if match is not None else MatchAll()


def _with_options(
    operation: Callable[[], Awaitable[T]], options: CallOptions
) -> Callable[[], Awaitable[T]]:
    async def run() -> T:
        token = call_options.set(options)
        try:
            return await operation()
        finally:
            call_options.reset(token)

    return run


class _Stream:
    """A lazy stream of documents: ``async for`` it, or collect it with :meth:`to_list`."""

    def _stream(self) -> AsyncIterator[Doc]:
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[Doc]:
        return self._stream()

    async def to_list(self, length: int | None = None) -> list[Doc]:
        """All documents (or the first ``length``) as a list."""
        out: list[Doc] = []
        async for doc in self._stream():
            out.append(doc)
            if length is not None and len(out) >= length:
                break
        return out


class Cursor(Generic[DocT]):
    """The lazy result of :meth:`Collection.find`. Iterate it (``async for``) to stream
    documents in constant memory, or collect them with :meth:`to_list`.

    >>> # docs = await alerts.find({"status": "open"}, sort=[("ts", -1)], limit=10).to_list()
    """

    def __init__(
        self,
        collection: Collection[Any],
        node: Node,
        sort: Sort,
        skip: int,
        limit: int | None,
        projection: Projection | None,
        allow_scan: bool | None,
        use_cache: bool = True,
        options: CallOptions | None = None,
        shape: ShapeEntry | None = None,
    ) -> None:
        self._collection = collection
        self._options = options
        self._node = node
        self._entry = shape
        self._too_large = False
        self._sort = sort
        self._skip = skip
        self._limit = limit
        self._projection = projection
        self._allow_scan = allow_scan
        self._use_cache = use_cache
        self._started = False

    def sort(self, spec: Any) -> Cursor[DocT]:
        self._sort = with_key_tiebreak(parse_sort(spec), self._collection.spec)
        return self

    def skip(self, n: int) -> Cursor[DocT]:
        self._skip = _check_count("skip", n) or 0
        return self

    def limit(self, n: int | None) -> Cursor[DocT]:
        self._limit = _limit(n)
        return self

    def _query(self) -> Query:
        return Query(self._node, self._sort, self._skip, self._limit, self._projection)

    async def _cached(self, cache: ReadCache | ObservedCache) -> Any:
        """The cached result (a list of documents), or TOO_LARGE to stream from the store."""
        coll = self._collection
        query = self._query()
        max_items = cache.config.max_items

        async def load_once() -> Any:
            it = await coll._store.find(query, None, allow_scan=self._allow_scan, shape=self._entry)
            docs: list[Doc] = []
            async for doc in it:
                docs.append(doc)
                if len(docs) > max_items:  # too large to cache: stream it instead
                    aclose = getattr(it, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    return TOO_LARGE
            return docs

        def load() -> Awaitable[Any]:
            return coll._call(load_once, write=False, what="find", options=self._options)

        digest = coll._shape("find", query, self._allow_scan)
        return await cache.read_query(coll._store.namespace, digest, load)

    async def _stream(self) -> AsyncIterator[Doc]:
        coll = self._collection
        await coll._ready()
        cache = None if self._too_large else coll._read_cache(self._use_cache)
        if cache is not None:
            docs = await self._cached(cache)
            if docs is not TOO_LARGE:
                for doc in docs:
                    yield doc
                return
        query = self._query()

        def open_find() -> Awaitable[AsyncIterator[Doc]]:
            return coll._store.find(
                query, coll._session, allow_scan=self._allow_scan, shape=self._entry
            )

        stream = _retried_stream(coll, open_find, "find", self._options)
        try:
            async for doc in stream:
                yield doc
        finally:
            await stream.aclose()

    async def _whole(self, cache: ReadCache | ObservedCache) -> list[Doc]:
        coll = self._collection
        if coll._store.namespace not in coll._db._ensured:
            await coll._ready()
        docs = await self._cached(cache)
        if docs is TOO_LARGE:
            self._too_large = True  # streamed from the store, the cache looked up once
            return [doc async for doc in self._stream()]
        result: list[Doc] = docs
        return result

    def _observed_stream(self) -> AsyncIterator[Doc]:
        observer = self._collection._db._observer
        if observer is None or current_operation.get() is not None:
            return self._stream()
        comment = None if self._options is None else self._options.comment
        return observer.stream(self._collection, self._node, self._stream(), comment)

    def __aiter__(self) -> AsyncIterator[DocT]:
        stream = self._observed_stream()
        if self._projection is None:
            loaded: AsyncIterator[DocT] = self._collection._load_stream(stream)
            return loaded
        return stream  # type: ignore[return-value]  # projected: dicts (see find)

    async def to_list(self, length: int | None = None) -> list[DocT]:
        """All documents (or the first ``length``) as a list."""
        coll = self._collection
        observer = coll._db._observer
        if (
            type(self) is Cursor  # a layer's cursor (encryption) streams through its _stream
            and length is None
            and self._limit is not None
            and self._limit <= LIST_AT_ONCE
            and coll._db._cache is None
            and (observer is None or observer.quiet)
        ):
            return await self._collected()
        if length is None and coll._db._cache is not None and type(self)._stream is Cursor._stream:
            # A cached result is served whole: no generator per document on a hit.
            cache = coll._read_cache(self._use_cache)
            if cache is not None:
                if observer is None or current_operation.get() is not None:
                    docs = await self._whole(cache)
                else:
                    comment = None if self._options is None else self._options.comment
                    docs = await observer.collect(
                        coll, self._node, lambda: self._whole(cache), comment
                    )
                if self._projection is not None:
                    return docs  # type: ignore[return-value]  # projected: dicts (see find)
                return coll._load_list(docs)
        out: list[DocT] = []
        stream = self.__aiter__()
        async for doc in stream:
            out.append(doc)
            if length is not None and len(out) >= length:
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator
                break
        return out

    async def _collected(self) -> list[DocT]:
        """A bounded find read whole in one call (one deadline, retried as a read: nothing was
        handed out yet), without the per-document layers of the stream."""
        coll = self._collection
        await coll._ready()
        query = self._query()

        def collect() -> Awaitable[list[Doc]]:
            return coll._store.find_list(
                query, coll._session, allow_scan=self._allow_scan, shape=self._entry
            )

        docs: list[Doc] = await observed_find_list(
            coll,
            self._node,
            coll._call(collect, write=False, what="find", options=self._options),
        )
        if self._projection is None:
            return coll._load_list(docs)
        return docs  # type: ignore[return-value]  # projected: dicts (see find)


class AggregateCursor(_Stream):
    """The lazy result of :meth:`Collection.aggregate`: iterate it (``async for``) to stream the
    results, or collect them with :meth:`to_list`. Nothing runs until it is iterated.

    >>> # pipeline = [{"$group": {"_id": "$company", "n": {"$sum": 1}}}]
    >>> # rows = await alerts.aggregate(pipeline).to_list()
    """

    def __init__(
        self,
        collection: Collection[Any],
        pipeline: Pipeline,
        allow_scan: bool | None,
        options: CallOptions | None = None,
    ) -> None:
        self._collection = collection
        self._pipeline = pipeline
        self._allow_scan = allow_scan
        self._options = options

    async def _stream(self) -> AsyncIterator[Doc]:
        coll = self._collection
        await coll._ready()

        def open_pipeline() -> Awaitable[AsyncIterator[Doc]]:
            return coll._store.aggregate(self._pipeline, coll._session, allow_scan=self._allow_scan)

        stream = _retried_stream(coll, open_pipeline, "aggregate", self._options)
        try:
            async for doc in stream:
                yield doc
        finally:
            await stream.aclose()


class Collection(Generic[DocT]):
    """A collection of documents in one database. Obtain it with ``db.collection(name)``:
    ``Collection[dict[str, Any]]``, or ``Collection[Model]`` with ``model=`` (asyncdb.models)."""

    def __init__(
        self,
        db: Database,
        store: StoreCollection,
        session: Session | None = None,
        tx_writes: list[tuple[str, list[KeyTuple] | None]] | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._session = session
        self._tx_writes = tx_writes  # a transaction's writes, invalidated after it commits
        self.spec: CollectionSpec = store.spec

    @property
    def name(self) -> str:
        return self.spec.name

    async def _ready(self) -> None:
        await self._db._ensure(self._store)

    def _bind(
        self, session: Session | None, tx_writes: list[tuple[str, list[KeyTuple] | None]]
    ) -> Collection[DocT]:
        """This collection inside a transaction (a copy: a typed collection stays typed)."""
        bound = copy.copy(self)
        bound._session = session
        bound._tx_writes = tx_writes
        return bound

    # Stored documents as this collection returns them: here the dicts themselves; the model
    # layer (asyncdb.models.ModelCollection) overrides these to validate into model instances.
    def _load(self, doc: Doc) -> DocT:
        return doc  # type: ignore[return-value]

    def _load_list(self, docs: list[Doc]) -> list[DocT]:
        return docs  # type: ignore[return-value]

    def _load_stream(self, docs: AsyncIterator[Doc]) -> AsyncIterator[DocT]:
        return docs  # type: ignore[return-value]

    def _call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        write: bool,
        what: str,
        insert_check: Callable[[], Awaitable[bool]] | None = None,
        options: CallOptions | None = None,
        own_task: bool = True,
    ) -> Awaitable[T]:
        """``operation`` under the database's timeout, retry policy and breaker (with the
        call's ``hint``/``comment`` options current for the store, when given)."""
        loop = self._db._check_loop()
        if options is not None:
            operation = _with_options(operation, options)
        observer = self._db._observer
        if observer is not None and observer.tracing is not None:
            operation = observer.tracing.attempts(operation, what)  # a span per retry
        return self._db._resilience.call(
            operation,
            write=write,
            in_transaction=self._session is not None,
            insert_check=insert_check,
            what=what,
            loop=loop,
            own_task=own_task,
        )

    def _stored_as_sent(self, docs: list[Doc]) -> Callable[[], Awaitable[bool]]:
        """After a re-sent insert met DuplicateKey: is every document stored exactly as sent
        (then the first attempt applied it)?"""

        async def check() -> bool:
            for doc in docs:
                stored = await self._store.get(key_of(doc, self.spec), None)
                if stored is None or not _same_document(stored, doc):
                    return False
            return True

        return check

    def _prepare(self, docs: list[Any], *, plain: bool = False) -> tuple[list[Doc], list[KeyTuple]]:
        """Validated, normalised copies of ``docs`` (nothing shared with the caller's dicts)
        and their keys; a bad document or key is a QueryError before any I/O. ``plain``: the
        caller vouches that every document is a fresh dict already in canonical form
        (:func:`~asyncdb.query.values.canonical` holds; the audit trail's plain events): its
        values are not walked again, its key and the store's limits still are."""
        spec = self.spec
        generate_id = spec.key == ("id",)
        prepared: list[Doc] = []
        keys: list[KeyTuple] = []
        add_doc, add_key = prepared.append, keys.append
        # the store's own limits (none beyond the portable ones on memory and SQLite)
        check_document = None if self._store.limits is PORTABLE else self._store.check_document
        owned = owned_documents.get()
        vouched = plain and type(self) is Collection  # a layered one transforms its docs
        with gc_paused(len(docs) >= GC_PAUSE_MIN):  # synchronous, only copies are made here
            for doc in docs:
                if type(doc) is not dict and not isinstance(doc, Mapping):
                    raise QueryError(f"a document must be a mapping, not {type(doc).__name__}")
                if vouched:
                    one: Doc = cast(Doc, doc)
                else:
                    one = doc if owned and canonical(doc) else normalize_document(doc)
                if generate_id and "id" not in one:
                    one = {"id": new_id(), **one}
                key = check_key(one, spec)
                if check_document is not None:
                    check_document(one, key)
                add_key(key)
                add_doc(one)
        return prepared, keys

    def _insert_now(self, docs: list[Doc]) -> bool:
        """Insert ``docs`` (from :meth:`_prepare`) at once, in the caller's step of the loop,
        where the store can (``StoreCollection.insert_now``: one autocommitted statement, no
        await between its start and its outcome): True when stored; False when not (nothing
        written: take ``insert_many``). Only outside a transaction, on a collection already
        set up, without a read cache to invalidate (that would await) and without table mode.
        DuplicateKey if a key exists (nothing written)."""
        if (
            self._session is not None
            or self._db._cache is not None
            or self._store.table_mode
            or self._store.namespace not in self._db._ensured
        ):
            return False
        resilience = self._db._resilience
        breaker = resilience.breaker
        if resilience.network or breaker.failures or breaker.state != "closed":
            return False  # the general path: the resilience layer sees the call
        self._db._check_loop()
        return self._store.insert_now(docs)

    async def _insert_autocommitted(self, docs: list[Any], *, plain: bool = False) -> None:
        """``insert_many(docs)`` as one autocommitted statement where the store has one
        (``StoreCollection.insert_autocommitted``: no write section around it), else
        ``insert_many`` itself; a plain collection only (a layered one, encrypted or typed,
        transforms its documents on the way), outside a transaction, without table mode."""
        store = self._store
        if type(self) is not Collection or self._session is not None or store.table_mode:
            await self.insert_many(docs)
            return
        prepared, keys = self._prepare(docs, plain=plain)  # the general path's checks
        await self._ready()
        try:
            if not await store.insert_autocommitted(prepared):
                await self._call(
                    lambda: store.insert(prepared, None),
                    write=True,
                    what="insert",
                    insert_check=self._stored_as_sent(prepared),
                )
        finally:
            await self._written(keys)

    # --- cache ------------------------------------------------------------------------------

    def _read_cache(self, use_cache: bool) -> ReadCache | ObservedCache | None:
        """The cache for a read, or None: reads in a transaction, on TTL collections (a cached
        document could outlive its expiry) and with ``cache=False`` go to the backend."""
        cache = self._db._cache
        if cache is None:
            return None
        self._db._check_loop()
        if not use_cache or self._session is not None or self.spec.ttl is not None:
            cache.note_bypass()
            return None
        return self._db._cache_reader or cache

    def _shape(self, kind: str, query: Query, allow_scan: bool | None, extra: Any = None) -> str:
        return shape_digest(kind, self._store.spec_text, query, allow_scan, extra)

    async def _written(self, keys: list[KeyTuple] | None) -> None:
        """Invalidate the cache after a write (keys None: the written documents are unknown).
        Inside a transaction the invalidation waits for the commit."""
        cache = self._db._cache
        if cache is None:
            return
        if self._tx_writes is not None:
            self._tx_writes.append((self._store.namespace, keys))
        else:
            await cache.invalidate([(self._store.namespace, keys)])

    def _written_keys(self, node: Node, upsert: bool, result: UpdateResult | None) -> Any:
        """The keys a filter-based write touched, or None when unknown."""
        keys = key_lookup(node, self.spec)
        if keys is None or not upsert:
            return keys
        if result is None:
            return None  # failed upsert: it may have inserted any key
        if result.upserted_id is not None:
            upserted = result.upserted_id
            keys = [*keys, upserted if isinstance(upserted, tuple) else (upserted,)]
        return keys

    # --- writes -----------------------------------------------------------------------------

    @observed("insert_one")
    async def insert_one(self, doc: DocT | Mapping[str, Any], *, comment: Any = None) -> Any:
        """Insert one document and return its key (an ``"id"`` is generated if missing).

        >>> # key = await alerts.insert_one({"title": "disk full", "priority": 80})
        """
        options = call_options_of(None, comment, self.spec)
        if self._store.table_mode:  # the table's own key rules
            return (await self._insert_rows([doc], options))[0]
        [prepared], [key] = self._prepare([doc])
        await self._ready()
        try:
            await self._call(
                lambda: self._store.insert([prepared], self._session),
                write=True,
                what="insert",
                insert_check=self._stored_as_sent([prepared]),
                options=options,
            )
        finally:
            await self._written([key])
        return key[0] if self.spec.single_key else key

    @observed("insert_many")
    async def insert_many(
        self,
        docs: Iterable[DocT | Mapping[str, Any]],
        ordered: bool = True,
        *,
        comment: Any = None,
        assume_new: bool = False,
    ) -> list[Any]:
        """Insert all documents or none; returns their keys in order. ``ordered=False``
        inserts every document it can and raises :class:`~asyncdb.BulkWriteError` for the
        rest (as ``bulk_write`` of ``InsertOne`` operations).

        ``assume_new=True``: the caller knows none of the keys is stored (it found the
        collection empty and writes each key once, as a fresh ``asyncdb.copy`` does). A store
        whose duplicate-key check is a read before the write (DynamoDB's BatchGetItem) skips
        it, and a key stored after all is then overwritten instead of raising
        :class:`~asyncdb.DuplicateKey`; the other stores check as usual. The batch's own
        repeated keys still raise DuplicateKey, and the insert is still all or nothing.
        Ordered inserts outside a transaction only (ignored otherwise)."""
        if type(assume_new) is not bool:
            raise QueryError("assume_new must be True or False", path="assume_new")
        options = call_options_of(None, comment, self.spec)
        if ordered is not True:
            return await self._insert_unordered(docs, ordered, options)
        if self._store.table_mode:  # the table's own key rules
            return await self._insert_rows(list(docs), options)
        # The caller's iterable is consumed first: a generator's code must not run in _prepare.
        batch = docs if type(docs) is list else list(docs)
        if streams(self, batch):  # a large batch: validated while the store sends it
            return await insert_streamed(self, batch, options)
        prepared, keys = self._prepare(batch)
        if not prepared:
            return []
        await self._ready()
        store = self._store
        insert = store.insert_new if assume_new and self._session is None else store.insert
        try:
            await self._call(
                lambda: insert(prepared, self._session),
                write=True,
                what="insert",
                insert_check=self._stored_as_sent(prepared),
                options=options,
            )
        finally:
            await self._written(keys)
        # A copy: _written may keep ``keys`` until the transaction commits.
        return [k[0] for k in keys] if self.spec.single_key else list(keys)

    async def _insert_unordered(
        self, docs: Iterable[Any], ordered: Any, options: CallOptions | None
    ) -> list[Any]:
        if ordered is not False:
            raise QueryError("ordered must be True or False", path="ordered")
        ops = [self._write_op(i, InsertOne(doc)) for i, doc in enumerate(docs)]
        if not ops:
            return []
        await self._bulk_write_ops(ops, ordered=False, options=options)
        keys = [op.key for op in ops]
        return [k[0] if k is not None and self.spec.single_key else k for k in keys]

    async def _insert_rows(self, docs: list[Any], options: CallOptions | None) -> list[Any]:
        """Table mode's insert: no ``"id"`` is invented. A key the table does not assign is a
        QueryError before any I/O; an autoincrement key left out is assigned by the database and
        returned (the column's value). An insert with an assigned key is not resent after a
        maybe-applied failure (no ``insert_check``): the retry could not recognise the first
        attempt's row by its key and would insert a second one."""
        prepared: list[Doc] = []
        for doc in docs:
            if not isinstance(doc, Mapping):
                raise QueryError(f"a document must be a mapping, not {type(doc).__name__}")
            prepared.append(normalize_value(doc))
        assigned = self._store.assigns_keys(prepared)
        if not prepared:
            return []
        await self._ready()
        keys: list[KeyTuple] | None = None
        try:
            keys = await self._call(
                lambda: self._store.insert(prepared, self._session),
                write=True,
                what="insert",
                insert_check=None if assigned else self._stored_as_sent(prepared),
                options=options,
            )
        finally:
            if keys is None and not assigned:  # failed, or confirmed after a re-send
                keys = [key_of(d, self.spec) for d in prepared]
            await self._written(keys)  # None: the assigned keys are unknown
        assert keys is not None
        return [k[0] if self.spec.single_key else k for k in keys]

    @observed("update_one")
    async def update_one(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> UpdateResult:
        """Apply an update (``$set``, ``$inc``, ...) to the first matching document. Paths may
        use ``$``, ``$[]`` and ``$[<identifier>]`` (with ``array_filters``); a list of stages is
        a pipeline update (``[{"$set": {"total": {"$add": ["$a", "$b"]}}}]``)."""
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        parsed = parse_update_spec(update, node, array_filters)
        self._store.check_update(node, parsed, upsert)
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        try:
            result, _ = await self._call(
                lambda: self._store.update(
                    node,
                    parsed,
                    multi=False,
                    upsert=upsert,
                    session=self._session,
                    allow_scan=allow_scan,
                ),
                write=True,
                what="update",
                options=options,
            )
        except BaseException:
            await self._written(self._written_keys(node, upsert, None))
            raise
        await self._written(self._written_keys(node, upsert, result))
        return result

    @observed("update_many")
    async def update_many(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> UpdateResult:
        """Apply an update to every matching document (each atomically); positional paths
        and pipeline updates as in :meth:`update_one`."""
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        parsed = parse_update_spec(update, node, array_filters)
        self._store.check_update(node, parsed, upsert)
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        try:
            result, _ = await self._call(
                lambda: self._store.update(
                    node,
                    parsed,
                    multi=True,
                    upsert=upsert,
                    session=self._session,
                    allow_scan=allow_scan,
                ),
                write=True,
                what="update",
                options=options,
            )
        except BaseException:
            await self._written(self._written_keys(node, upsert, None))
            raise
        await self._written(self._written_keys(node, upsert, result))
        return result

    @observed("replace_one")
    async def replace_one(
        self,
        filter: Mapping[str, Any] | None,
        doc: DocT | Mapping[str, Any],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> UpdateResult:
        """Replace the first matching document whole (its key stays)."""
        # A typed collection (asyncdb.models) hands over the dumped mapping.
        node, parsed = parse_filter(filter), parse_replacement(cast("Mapping[str, Any]", doc))
        self._store.check_update(node, parsed, upsert)
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        try:
            result, _ = await self._call(
                lambda: self._store.update(
                    node,
                    parsed,
                    multi=False,
                    upsert=upsert,
                    session=self._session,
                    allow_scan=allow_scan,
                ),
                write=True,
                what="update",
                options=options,
            )
        except BaseException:
            await self._written(self._written_keys(node, upsert, None))
            raise
        await self._written(self._written_keys(node, upsert, result))
        return result

    @overload
    async def find_one_and_update(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any],
        return_document: Literal["before", "after"] = "after",
        *,
        upsert: bool = False,
        sort: Any = None,
        projection: None = None,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | None: ...

    @overload
    async def find_one_and_update(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any],
        return_document: Literal["before", "after"] = "after",
        *,
        upsert: bool = False,
        sort: Any = None,
        projection: ProjectionSpec,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    @observed("find_one_and_update")
    async def find_one_and_update(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        return_document: Literal["before", "after"] = "after",
        *,
        upsert: bool = False,
        sort: Any = None,
        projection: Any = None,
        allow_scan: bool | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | Doc | None:
        """Update the first match atomically and return it as it was ``"before"`` or is
        ``"after"`` the update (None if nothing matched); positional paths and pipeline
        updates as in :meth:`update_one`."""
        if return_document not in ("before", "after"):
            raise QueryError('return_document must be "before" or "after"', path="return_document")
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        parsed = parse_update_spec(update, node, array_filters)
        self._store.check_update(node, parsed, upsert)
        return await self._write_and_return(
            node,
            parsed,
            upsert,
            sort,
            projection,
            return_document,
            allow_scan,
            call_options_of(hint, comment, self.spec, node),
        )

    async def _write_and_return(
        self,
        node: Node,
        parsed: Update,
        upsert: bool,
        sort: Any,
        projection: Any,
        return_document: Literal["before", "after"],
        allow_scan: bool | None,
        options: CallOptions | None,
    ) -> DocT | Doc | None:
        """``find_one_and_update``/``_replace``: apply ``parsed`` to the first match (by
        ``sort``) and return it as it was before or is after, projected."""
        sort_spec = parse_sort(sort)
        if sort_spec:  # ties go to the lowest key, as in find()
            sort_spec = with_key_tiebreak(sort_spec, self.spec)
        proj = parse_projection(projection, self.spec.key)
        await self._ready()
        try:
            result, doc = await self._call(
                lambda: self._store.update(
                    node,
                    parsed,
                    multi=False,
                    upsert=upsert,
                    session=self._session,
                    allow_scan=allow_scan,
                    sort=sort_spec,
                    return_document=return_document,
                ),
                write=True,
                what="update",
                options=options,
            )
        except BaseException:
            await self._written(self._written_keys(node, upsert, None))
            raise
        await self._written(self._written_keys(node, upsert, result))
        if doc is None:
            return None
        return self._load(doc) if proj is None else apply_projection(proj, doc, self.spec.key)

    @observed("delete_one")
    async def delete_one(
        self,
        filter: Mapping[str, Any] | None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> int:
        """Delete the first matching document; returns 0 or 1."""
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        try:
            return await self._call(
                lambda: self._store.delete(
                    node, multi=False, session=self._session, allow_scan=allow_scan
                ),
                write=True,
                what="delete",
                options=options,
            )
        finally:
            await self._written(key_lookup(node, self.spec))

    @observed("delete_many")
    async def delete_many(
        self,
        filter: Mapping[str, Any] | None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> int:
        """Delete every matching document; returns how many."""
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        try:
            return await self._call(
                lambda: self._store.delete(
                    node, multi=True, session=self._session, allow_scan=allow_scan
                ),
                write=True,
                what="delete",
                options=options,
            )
        finally:
            await self._written(key_lookup(node, self.spec))

    # --- reads ------------------------------------------------------------------------------

    @overload
    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: None = None,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Cursor[DocT]: ...

    @overload
    def find(
        self,
        filter: Mapping[str, Any] | None,
        projection: ProjectionSpec,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Cursor[Doc]: ...

    @overload
    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: ProjectionSpec,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Cursor[Doc]: ...

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Cursor[DocT] | Cursor[Doc]:
        """A lazy cursor over the matching documents; ties in ``sort`` are broken by key.
        A projected read yields dicts, also on a typed collection.

        ``hint`` (an index name or key pattern of a declared index, or ``"_id_"``) and
        ``comment`` are MongoDB's options, taken by every read and write (see
        asyncdb/options.py for what each store does with them)."""
        node, shape = self._store.plans.parse(filter)
        sort_spec = parse_sort(sort)
        if sort_spec:
            sort_spec = with_key_tiebreak(sort_spec, self.spec)
        proj = parse_projection(projection, self.spec.key)
        return Cursor[DocT](
            self,
            node,
            sort_spec,
            _check_count("skip", skip) or 0,
            _limit(limit),
            proj,
            allow_scan,
            cache,
            call_options_of(hint, comment, self.spec, node),
            shape,
        )

    @overload
    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: None = None,
        *,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | None: ...

    @overload
    async def find_one(
        self,
        filter: Mapping[str, Any] | None,
        projection: ProjectionSpec,
        *,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    @overload
    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: ProjectionSpec,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | Doc | None:
        """The first matching document, or None. A filter that is exactly the key
        (``{"id": k}``) is a point read that skips parsing and planning."""
        db = self._db
        if (
            projection is None
            and sort is None
            and hint is None
            and comment is None
            and db._cache is None
        ):
            # The point read's own path: no cache, and no span to make (an audit event is
            # made by the observer's point_read, as find_one's general path would make it).
            observer = db._observer
            key = self._exact_key(filter)
            quiet = observer is None or observer.quiet
            if (
                key is not None
                and self._store.namespace in db._ensured
                and (
                    quiet
                    or (
                        observer is not None
                        and observer.tracing is None
                        and type(self) is Collection  # its _load is the identity
                        and current_operation.get() is None  # else not observed at all
                    )
                )
            ):
                assert filter is not None
                resilience = db._resilience
                breaker = resilience.breaker
                if resilience.network or breaker.failures or breaker.state != "closed":
                    read = self._point_read(key)
                else:
                    db._check_loop()
                    read = self._direct_read(key)
                if quiet:
                    doc = await observed_point_read(self, read, filter, _FIND_ONE, observer)
                    return None if doc is None else self._load(doc)
                assert observer is not None
                found: DocT | None = await observer.point_read(self, read, filter, _FIND_ONE)
                return found
        return await self._find_one(
            filter,
            projection,
            sort=sort,
            allow_scan=allow_scan,
            cache=cache,
            hint=hint,
            comment=comment,
        )

    def _point_read(self, key: KeyTuple) -> Awaitable[Doc | None]:
        store, session = self._store, self._session
        return self._call(
            lambda: store.get(key, session),
            write=False,
            what="get",
            own_task=store.detach_point_reads,
        )

    async def _direct_read(self, key: KeyTuple) -> Doc | None:
        """The point read on an in-process store whose breaker is closed with no failure
        counted: there the resilience layer sets no deadline and records nothing on success,
        so the read runs directly, and only a failure is handed to it (as its first attempt:
        retried, mapped and counted exactly as under :meth:`_call`)."""
        store, session = self._store, self._session
        try:
            return await store.get(key, session)
        except Exception as exc:
            return await self._db._resilience.call(
                lambda: store.get(key, session),
                write=False,
                in_transaction=session is not None,
                what="get",
                failed=exc,
            )

    @observed("find_one")
    async def _find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | Doc | None:
        if projection is None and sort is None and hint is None and comment is None:
            key = self._exact_key(filter)
            if key is not None:
                if self._store.namespace not in self._db._ensured:
                    await self._ready()
                if self._db._cache is not None:
                    read_cache = self._read_cache(cache)
                    if read_cache is not None:
                        store = self._store
                        cached: Doc | None = await read_cache.read_doc(
                            self._store.namespace,
                            key,
                            lambda: self._call(
                                lambda: store.get(key, None),
                                write=False,
                                what="get",
                                own_task=store.detach_point_reads,
                            ),
                        )
                        return None if cached is None else self._load(cached)
                resilience = self._db._resilience
                breaker = resilience.breaker
                if resilience.network or breaker.failures or breaker.state != "closed":
                    doc = await self._point_read(key)
                else:  # as find_one's own path: the resilience layer sees only a failure
                    doc = await self._direct_read(key)
                return None if doc is None else self._load(doc)
        docs: list[Any] = await self.find(
            filter,
            projection,
            sort,
            0,
            1,
            allow_scan=allow_scan,
            cache=cache,
            hint=hint,
            comment=comment,
        ).to_list()
        return docs[0] if docs else None

    def _exact_key(self, filter: Any) -> KeyTuple | None:
        """The key tuple when ``filter`` is a plain dict of exactly the key fields with
        string or integer values (the point-read fast path), else None."""
        if type(filter) is not dict or len(filter) != len(self.spec.key):
            return None
        key: list[Any] = []
        for field in self.spec.key:
            value: Any = filter.get(field)
            t = type(value)
            if not ((t is str and value and value.isascii()) or t is int):
                return None  # other text is validated by the parser first
            key.append(value)
        return tuple(key)

    @observed("count_documents")
    async def count_documents(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> int:
        """How many documents match."""
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        visible = self._store.visible(node)
        read_cache = self._read_cache(cache) if self._db._cache is not None else None
        if read_cache is not None:
            digest = self._shape("count", Query(visible), allow_scan)
            store = self._store
            count: int = await read_cache.read_query(
                self._store.namespace,
                digest,
                lambda: self._call(
                    lambda: store.count(visible, None, allow_scan=allow_scan),
                    write=False,
                    what="count",
                    options=options,
                ),
            )
            return count
        return await self._call(
            lambda: self._store.count(visible, self._session, allow_scan=allow_scan),
            write=False,
            what="count",
            options=options,
        )

    @overload
    async def find_page(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Any = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        projection: None = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Page[DocT]: ...

    @overload
    async def find_page(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Any = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        projection: ProjectionSpec,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Page[Doc]: ...

    @observed("find_page")
    async def find_page(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Any = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        projection: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Page[DocT] | Page[Doc]:
        """One page of results and an opaque cursor for the next one (keyset pagination:
        documents inserted meanwhile never make a page repeat or skip an existing document).

        >>> # page = await alerts.find_page({"status": "open"}, sort=[("ts", -1)], limit=50)
        >>> # more = await alerts.find_page({"status": "open"}, sort=[("ts", -1)], limit=50,
        >>> #                               cursor=page.next_cursor)
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise QueryError("limit must be a positive integer", path="limit")
        if "keyset_pagination" not in self._db.capabilities:
            raise NotSupported(f"{self._db.backend} does not support keyset pagination")
        node = self._store.plans.parse(filter)[0]  # equal to parse_filter's
        sort_spec = with_key_tiebreak(parse_sort(sort), self.spec)
        proj = parse_projection(projection, self.spec.key)
        digest = self._db._query_digest(self.spec.name, node, sort_spec)
        after = None if cursor is None else self._db._signer.decode(cursor, digest)
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        query = Query(node, sort_spec, 0, limit + 1, None, after)

        async def load_once() -> dict[str, Any]:
            it = await self._store.find(query, self._session, allow_scan=allow_scan)
            docs = [doc async for doc in it]
            next_cursor = None
            if len(docs) > limit:
                docs = docs[:limit]
                next_cursor = self._db._signer.encode(digest, sort_key(docs[-1], sort_spec))
            items = [apply_projection(proj, d, self.spec.key) for d in docs]
            return {"items": items, "next_cursor": next_cursor}

        def load() -> Awaitable[dict[str, Any]]:
            return self._call(load_once, write=False, what="find_page", options=options)

        read_cache = self._read_cache(cache) if self._db._cache is not None else None
        if read_cache is None:
            page = await load()
        else:
            shape = self._shape("page", query, allow_scan, proj)
            page = await read_cache.read_query(self._store.namespace, shape, load)
        items = page["items"] if proj is not None else self._load_list(page["items"])
        return Page(items=items, next_cursor=page["next_cursor"])

    def aggregate(
        self,
        pipeline: Iterable[Mapping[str, Any]],
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> AggregateCursor:
        """Run an aggregation pipeline (the stages, accumulators and expressions of DESIGN
        section 2); a stage outside them is a QueryError naming its path before any I/O. The
        leading ``$match`` goes to the store like a ``find`` (so a full scan raises ScanRequired
        unless ``allow_scan``), MongoDB runs the whole pipeline, other stores run the rest in
        process, streaming, with memory bounded by the number of groups.

        The results are dicts, also on a typed collection: a pipeline reshapes documents
        (``$group``, ``$project``, ``$unwind`` ...), so they are no longer the model's.

        >>> # cur = alerts.aggregate([{"$match": {"status": "open"}},
        >>> #                         {"$group": {"_id": "$company", "n": {"$sum": 1}}},
        >>> #                         {"$sort": {"n": -1}}])
        >>> # async for row in cur: print(row["_id"], row["n"])
        """
        stages = list(pipeline) if not isinstance(pipeline, list | tuple) else pipeline
        parsed = parse_pipeline(stages)
        options = call_options_of(hint, comment, self.spec, _match_filter(parsed))
        return AggregateCursor(self, parsed, allow_scan, options)

    async def explain(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        projection: Any = None,
        *,
        server_plan: bool = False,
        analyze: bool = False,
        pipeline: Iterable[Mapping[str, Any]] | None = None,
        hint: Any = None,
    ) -> Plan:
        """How this backend would run the query: native form, exact/approximate/residual parts,
        access path. Runs nothing, unless ``server_plan=True`` asks the store for its own plan
        (``Plan.server_plan``: PostgreSQL's ``EXPLAIN``, SQLite's ``EXPLAIN QUERY PLAN``;
        ``NotSupported`` elsewhere); ``analyze=True`` runs the query to time it
        (``EXPLAIN ANALYZE``).

        >>> # print(await alerts.explain({"priority": {"$gt": 50}}, server_plan=True))

        With ``pipeline=[...]`` it explains an ``aggregate``: the ``find`` the store runs and
        the stages run natively (MongoDB) or in process (``Plan.native["in process"]``).
        """
        if pipeline is None:
            node: Node = parse_filter(filter)
        else:
            stages = list(pipeline) if not isinstance(pipeline, list | tuple) else pipeline
            node = _match_filter(parse_pipeline(stages))
        options = call_options_of(hint, None, self.spec, node)
        if options is not None:  # the plan as the hinted call would run
            token = call_options.set(options)
            try:
                return await self.explain(
                    filter,
                    sort,
                    skip,
                    limit,
                    projection,
                    server_plan=server_plan,
                    analyze=analyze,
                    pipeline=pipeline,
                )
            finally:
                call_options.reset(token)
        if pipeline is not None:
            stages = list(pipeline) if not isinstance(pipeline, list | tuple) else pipeline
            return self._store.explain_aggregate(parse_pipeline(stages))
        node = parse_filter(filter)
        sort_spec = parse_sort(sort)
        if sort_spec:
            sort_spec = with_key_tiebreak(sort_spec, self.spec)
        query = Query(
            node,
            sort_spec,
            _check_count("skip", skip) or 0,
            _limit(limit),
            parse_projection(projection, self.spec.key),
        )
        plan = self._store.explain(query)
        if not (server_plan or analyze):
            return plan
        await self._ready()
        store = self._store
        lines = await self._call(
            lambda: store.query_plan(plan, analyze=analyze), write=False, what="explain"
        )
        return dataclasses.replace(plan, server_plan=tuple(lines))

    async def rotate_keys(
        self, batch_size: int = 500, *, progress: Callable[[int], Any] | None = None
    ) -> int:
        """Re-seal an encrypted collection under the key ring's primary key (see
        :mod:`asyncdb.security`); a collection opened without ``encrypted=`` has none."""
        raise NotSupported(
            f"collection {self.spec.name!r} is not encrypted: open it with encrypted=... "
            "on a database connected with keyring=..."
        )

    @observed("purge_expired")
    async def purge_expired(self) -> int:
        """Delete the documents whose TTL field lies in the past (they are never returned)."""
        await self._ready()
        return await self._call(self._store.purge_expired, write=True, what="purge_expired")

    # --- breadth: find_one_and_replace/delete, distinct, counts, bulk writes, drop -------------

    @overload
    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any] | None,
        doc: DocT | Mapping[str, Any],
        upsert: bool = False,
        sort: Any = None,
        projection: None = None,
        return_document: Literal["before", "after"] = "after",
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | None: ...

    @overload
    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any] | None,
        doc: DocT | Mapping[str, Any],
        upsert: bool,
        sort: Any,
        projection: ProjectionSpec,
        return_document: Literal["before", "after"] = "after",
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    @overload
    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any] | None,
        doc: DocT | Mapping[str, Any],
        upsert: bool = False,
        sort: Any = None,
        *,
        projection: ProjectionSpec,
        return_document: Literal["before", "after"] = "after",
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    @observed("find_one_and_replace")
    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any] | None,
        doc: DocT | Mapping[str, Any],
        upsert: bool = False,
        sort: Any = None,
        projection: Any = None,
        return_document: Literal["before", "after"] = "after",
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | Doc | None:
        """Replace the first match (in ``sort`` order) whole, atomically, and return it as it
        was ``"before"`` or is ``"after"`` (None if nothing matched and nothing was upserted).
        On a typed collection it is a model instance, or a dict when projected.

        >>> # old = await alerts.find_one_and_replace({"id": "a"}, {"title": "new"},
        >>> #                                         return_document="before")
        """
        if return_document not in ("before", "after"):
            raise QueryError('return_document must be "before" or "after"', path="return_document")
        # A typed collection (asyncdb.models) hands over the dumped mapping.
        node, parsed = parse_filter(filter), parse_replacement(cast("Mapping[str, Any]", doc))
        self._store.check_update(node, parsed, upsert)
        return await self._write_and_return(
            node,
            parsed,
            upsert,
            sort,
            projection,
            return_document,
            allow_scan,
            call_options_of(hint, comment, self.spec, node),
        )

    @overload
    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any] | None,
        sort: Any = None,
        projection: None = None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | None: ...

    @overload
    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any] | None,
        sort: Any,
        projection: ProjectionSpec,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    @overload
    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any] | None,
        sort: Any = None,
        *,
        projection: ProjectionSpec,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None: ...

    @observed("find_one_and_delete")
    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any] | None,
        sort: Any = None,
        projection: Any = None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> DocT | Doc | None:
        """Delete the first match (in ``sort`` order) atomically and return it as it was
        (a model instance on a typed collection, a dict when projected), or None when nothing
        matched.

        >>> # oldest = await jobs.find_one_and_delete({"state": "queued"}, sort=[("ts", 1)])
        """
        node = parse_filter(filter)
        sort_spec = parse_sort(sort)
        if sort_spec:
            sort_spec = with_key_tiebreak(sort_spec, self.spec)
        proj = parse_projection(projection, self.spec.key)
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        found: Doc | None = None
        try:
            found = await self._call(
                lambda: self._store.find_and_delete(
                    node, sort=sort_spec, session=self._session, allow_scan=allow_scan
                ),
                write=True,
                what="delete",
                options=options,
            )
        finally:
            keys = key_lookup(node, self.spec)
            if keys is None and found is not None:
                keys = [key_of(found, self.spec)]
            await self._written(keys)
        if found is None:
            return None
        return self._load(found) if proj is None else apply_projection(proj, found, self.spec.key)

    @observed("distinct")
    async def distinct(
        self,
        field: str,
        filter: Mapping[str, Any] | None = None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> list[Any]:
        """The distinct values of ``field`` among the matching documents, as MongoDB gives
        them: an array contributes its elements (one level deep), 1, 1.0 and Decimal("1") are
        one value ("1" another), missing fields none; in BSON order. The values are stored
        values, also on a typed collection (an enum field gives its values, not members).

        >>> # await alerts.distinct("tags", {"company": "acme"})   # ['db', 'disk', 'net']
        """
        path = parse_path(field, "distinct")
        node = parse_filter(filter)
        options = call_options_of(hint, comment, self.spec, node)
        await self._ready()
        return await self._call(
            lambda: self._store.distinct(
                ".".join(path), node, self._session, allow_scan=allow_scan
            ),
            write=False,
            what="distinct",
            options=options,
        )

    @observed("estimated_document_count")
    async def estimated_document_count(self, *, comment: Any = None) -> int:
        """The number of documents from the store's cheap count, without a filter.

        How stale it may be depends on the store: MongoDB's collection metadata and SQLite's
        ``count(*)`` are current; PostgreSQL's planner statistics (``pg_class.reltuples``, used
        only for tables the statistics put above a million rows; a ``count(*)`` below) are as old
        as the last ``ANALYZE``/autovacuum; DynamoDB's ``DescribeTable`` item count is refreshed
        about every six hours; Cosmos DB and Firestore run a count aggregation (current). It may
        include documents past their TTL that the store has not removed yet, except where the
        store counts by a query (the memory backend, Cosmos DB, Firestore).

        >>> # n = await alerts.estimated_document_count()
        """
        options = call_options_of(None, comment, self.spec)
        await self._ready()
        return await self._call(
            self._store.estimated_count, write=False, what="count", options=options
        )

    def _write_op(self, index: int, request: Any) -> WriteOp:
        """One bulk_write request, validated and parsed (a QueryError naming its index)."""
        try:
            t = type(request)
            if t is InsertOne and not self._store.table_mode:
                return self._insert_op(request.document)
            if (t is UpdateOne or t is DeleteOne) and request.collation is None:
                fast = self._key_op(request)
                if fast is not None:
                    return fast
            if isinstance(request, InsertOne):
                if self._store.table_mode:
                    if not isinstance(request.document, Mapping):
                        raise QueryError("a document must be a mapping")
                    return WriteOp("insert", doc=normalize_value(request.document))
                return self._insert_op(request.document)
            if not isinstance(
                request, UpdateOne | UpdateMany | ReplaceOne | DeleteOne | DeleteMany
            ):
                raise QueryError(
                    "not a write operation: use asyncdb.InsertOne, UpdateOne, UpdateMany, "
                    f"ReplaceOne, DeleteOne or DeleteMany, not {type(request).__name__}"
                )
            if request.collation is not None:
                raise NotSupported("collation is not supported")
            node = parse_filter(request.filter)
            hint = resolve_hint(request.hint, self.spec)
            check_hint(hint, node)
            pinned = key_lookup(node, self.spec)
            if isinstance(request, DeleteOne | DeleteMany):
                multi = isinstance(request, DeleteMany)
                return WriteOp(
                    "delete", node=node, multi=multi, hint=hint, pinned=pinned, pinned_known=True
                )
            if isinstance(request, ReplaceOne):
                parsed = parse_replacement(request.replacement)
            else:
                parsed = parse_update_spec(request.update, node, request.array_filters)
            self._store.check_update(node, parsed, bool(request.upsert))
            return WriteOp(
                "update",
                node=node,
                update=parsed,
                multi=isinstance(request, UpdateMany),
                upsert=bool(request.upsert),
                hint=hint,
                pinned=pinned,
                pinned_known=True,
            )
        except QueryError as exc:
            raise QueryError(f"bulk_write operation {index}: {exc}") from None

    def _insert_op(self, document: Any) -> WriteOp:
        """``_prepare`` of one document, inline (the hot path of a bulk insert)."""
        if type(document) is not dict and not isinstance(document, Mapping):
            raise QueryError(f"a document must be a mapping, not {type(document).__name__}")
        one: Doc = normalize_document(document)
        if "id" not in one and self.spec.key == ("id",):
            one = {"id": new_id(), **one}
        key = check_key(one, self.spec)
        if self._store.limits is not PORTABLE:
            self._store.check_document(one, key)
        return WriteOp("insert", doc=one, key=key)

    def _key_op(self, request: UpdateOne | DeleteOne) -> WriteOp | None:
        """An UpdateOne/DeleteOne by key (``key_filter``) with a ``simple_update``, parsed
        without the general parser (the same WriteOp it gives); None for any other."""
        if request.hint is not None:
            return None
        found = key_filter(request.filter, self.spec.key)
        if found is None:
            return None
        node, key = found
        if type(request) is DeleteOne:
            return WriteOp("delete", node=node, pinned=[key], pinned_known=True, by_key=True)
        assert isinstance(request, UpdateOne)
        if request.array_filters is not None:
            return None
        simple = simple_update(request.update, self.spec.key)
        if simple is None:
            return None
        parsed, flat = simple
        upsert = bool(request.upsert)
        store = self._store
        if type(store).check_update is not StoreCollection.check_update or (
            store.limits.document_bytes is not None
        ):
            store.check_update(node, parsed, upsert)  # a store's own checks (its size limit)
        return WriteOp(
            "update",
            node=node,
            update=parsed,
            upsert=upsert,
            pinned=[key],
            pinned_known=True,
            by_key=True,
            flat=flat,
        )

    def _bulk_keys(self, ops: list[WriteOp], progress: BulkProgress) -> list[KeyTuple] | None:
        """The keys a bulk write may have touched, or None when some are unknown."""
        keys: list[KeyTuple] = []
        for op in ops[: progress.next + 1]:  # past ``next`` nothing ran
            if op.kind == "insert":
                if op.key is None:
                    return None  # table mode: the store may assign it
                keys.append(op.key)
                continue
            assert op.node is not None
            found = op.pinned if op.pinned_known else key_lookup(op.node, self.spec)
            if found is None:
                return None
            keys.extend(found)
        for upserted in progress.upserted.values():
            keys.append(upserted if isinstance(upserted, tuple) else (upserted,))
        return keys

    @observed("bulk_write")
    async def bulk_write(
        self, requests: Iterable[Any], ordered: bool = True, *, comment: Any = None
    ) -> BulkWriteResult:
        """Apply a list of write operations (``asyncdb.InsertOne``, ``UpdateOne``,
        ``UpdateMany``, ``ReplaceOne``, ``DeleteOne``, ``DeleteMany``) in order, each atomically
        per document, in the store's native batches where it has them. Every operation is
        validated before any I/O. ``ordered=True`` stops at the first failure; ``False``
        applies every operation it can. A failure raises :class:`~asyncdb.BulkWriteError`
        with ``.errors`` ``[(index, error)]`` and ``.result`` (what was applied).

        >>> # res = await alerts.bulk_write([asyncdb.InsertOne({"id": "a"}),
        >>> #                                asyncdb.DeleteMany({"status": "closed"})])
        """
        if not isinstance(ordered, bool):
            raise QueryError("ordered must be True or False", path="ordered")
        requests = requests if type(requests) is list else list(requests)
        with gc_paused(len(requests) >= GC_PAUSE_MIN):  # synchronous: only parsed copies
            ops = [self._write_op(i, r) for i, r in enumerate(requests)]
        if not ops:
            raise QueryError("bulk_write needs at least one operation")
        options = call_options_of(None, comment, self.spec)
        return await self._bulk_write_ops(ops, ordered=ordered, options=options)

    async def _bulk_write_ops(
        self, ops: list[WriteOp], *, ordered: bool, options: CallOptions | None = None
    ) -> BulkWriteResult:
        """``bulk_write`` of operations already parsed (by ``_write_op``)."""
        await self._ready()
        progress = BulkProgress()
        try:
            await self._call(
                lambda: self._store.bulk_write(
                    ops, progress, ordered=ordered, session=self._session
                ),
                write=True,
                what="bulk_write",
                options=options,
            )
        finally:
            await self._written(self._bulk_keys(ops, progress))
        if progress.errors:
            raise BulkWriteError(progress.errors, progress.result())
        return progress.result()

    @observed("drop")
    async def drop(self) -> None:
        """Remove the collection: its documents, indexes (GSIs on DynamoDB), hidden fields,
        cached entries and catalog entry. The handle stays usable: the next call creates the
        collection again, empty.

        >>> # await alerts.drop()
        """
        if self._session is not None:
            raise NotSupported("drop() inside a transaction is not supported")
        await self._db._drop(self._store)
        await self._written(None)

    def __repr__(self) -> str:
        return f"<Collection {self.spec.name!r} on {self._db.backend}>"
