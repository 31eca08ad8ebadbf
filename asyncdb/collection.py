"""The public collection API: ``insert_one``, ``find``, ``find_page``, ``update_one``, ...

Every call validates and parses its input first (a bad filter raises
:class:`~asyncdb.errors.QueryError` before any I/O), then hands the parsed query to the backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from asyncdb.backends.base import (
    GC_PAUSE_MIN,
    Doc,
    KeyTuple,
    Session,
    StoreCollection,
    check_key,
    current_operation,
    gc_paused,
    key_lookup,
    key_of,
    new_id,
    with_key_tiebreak,
)
from asyncdb.cache import TOO_LARGE, ReadCache, shape_digest
from asyncdb.errors import NotSupported, QueryError
from asyncdb.observe.operation import observed
from asyncdb.query.ast import Node, Projection, Sort
from asyncdb.query.parse import (
    parse_filter,
    parse_projection,
    parse_replacement,
    parse_sort,
    parse_update,
)
from asyncdb.query.sort import sort_key
from asyncdb.query.update import apply_projection
from asyncdb.query.values import normalize_document, normalize_value
from asyncdb.types import CollectionSpec, Page, Plan, Query, UpdateResult

if TYPE_CHECKING:
    from asyncdb.database import Database
    from asyncdb.observe.operation import ObservedCache

T = TypeVar("T")
_END: Any = object()  # a find stream with no first document


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


class Cursor:
    """The lazy result of :meth:`Collection.find`. Iterate it (``async for``) to stream
    documents in constant memory, or collect them with :meth:`to_list`.

    >>> # docs = await alerts.find({"status": "open"}, sort=[("ts", -1)], limit=10).to_list()
    """

    def __init__(
        self,
        collection: Collection,
        node: Node,
        sort: Sort,
        skip: int,
        limit: int | None,
        projection: Projection | None,
        allow_scan: bool | None,
        use_cache: bool = True,
    ) -> None:
        self._collection = collection
        self._node = node
        self._sort = sort
        self._skip = skip
        self._limit = limit
        self._projection = projection
        self._allow_scan = allow_scan
        self._use_cache = use_cache
        self._started = False

    def sort(self, spec: Any) -> Cursor:
        self._sort = with_key_tiebreak(parse_sort(spec), self._collection.spec)
        return self

    def skip(self, n: int) -> Cursor:
        self._skip = _check_count("skip", n) or 0
        return self

    def limit(self, n: int | None) -> Cursor:
        self._limit = _limit(n)
        return self

    def _query(self) -> Query:
        return Query(self._node, self._sort, self._skip, self._limit, self._projection)

    async def _stream(self) -> AsyncIterator[Doc]:
        coll = self._collection
        await coll._ready()
        cache = coll._read_cache(self._use_cache)
        if cache is not None:
            query = self._query()
            max_items = cache.config.max_items

            async def load_once() -> Any:
                it = await coll._store.find(query, None, allow_scan=self._allow_scan)
                docs: list[Doc] = []
                async for doc in it:
                    docs.append(doc)
                    if len(docs) > max_items:  # too large to cache: stream it below instead
                        aclose = getattr(it, "aclose", None)
                        if aclose is not None:
                            await aclose()
                        return TOO_LARGE
                return docs

            def load() -> Awaitable[Any]:
                return coll._call(load_once, write=False, what="find")

            digest = coll._shape("find", query, self._allow_scan)
            docs = await cache.read_query(coll.spec.name, digest, load)
            if docs is not TOO_LARGE:
                for doc in docs:
                    yield doc
                return
        query = self._query()

        async def open_stream() -> tuple[AsyncIterator[Doc], Any]:
            # Retried (a read) until the first document: past it, documents were handed out.
            it = await coll._store.find(query, coll._session, allow_scan=self._allow_scan)
            try:
                return it, await anext(it)
            except StopAsyncIteration:
                return it, _END

        it, first = await coll._call(open_stream, write=False, what="find")
        if first is _END:
            return
        yield first
        resilience = coll._db._resilience
        if not resilience.network:  # in-process stores take no per-call timer
            async for doc in it:
                yield doc
            return
        while True:
            try:
                doc = await resilience.next_item(it)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise resilience.timed_out("find (next document)") from exc
            yield doc

    def _observed_stream(self) -> AsyncIterator[Doc]:
        observer = self._collection._db._observer
        if observer is None or current_operation.get() is not None:
            return self._stream()
        return observer.stream(self._collection, self._node, self._stream())

    def __aiter__(self) -> AsyncIterator[Doc]:
        return self._observed_stream()

    async def to_list(self, length: int | None = None) -> list[Doc]:
        """All documents (or the first ``length``) as a list."""
        out: list[Doc] = []
        stream = self._observed_stream()
        async for doc in stream:
            out.append(doc)
            if length is not None and len(out) >= length:
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator
                break
        return out


class Collection:
    """A collection of documents in one database. Obtain it with ``db.collection(name)``."""

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

    def _call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        write: bool,
        what: str,
        insert_check: Callable[[], Awaitable[bool]] | None = None,
    ) -> Awaitable[T]:
        """``operation`` under the database's timeout, retry policy and breaker."""
        observer = self._db._observer
        if observer is not None and observer.tracing is not None:
            operation = observer.tracing.attempts(operation, what)  # a span per retry
        return self._db._resilience.call(
            operation,
            write=write,
            in_transaction=self._session is not None,
            insert_check=insert_check,
            what=what,
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

    def _prepare(self, docs: list[Any]) -> tuple[list[Doc], list[KeyTuple]]:
        """Validated, normalised copies of ``docs`` (nothing shared with the caller's dicts)
        and their keys; a bad document or key is a QueryError before any I/O."""
        spec = self.spec
        generate_id = spec.key == ("id",)
        prepared: list[Doc] = []
        keys: list[KeyTuple] = []
        add_doc, add_key = prepared.append, keys.append
        with gc_paused(len(docs) >= GC_PAUSE_MIN):  # synchronous, only copies are made here
            for doc in docs:
                if type(doc) is not dict and not isinstance(doc, Mapping):
                    raise QueryError(f"a document must be a mapping, not {type(doc).__name__}")
                one: Doc = normalize_document(doc)
                if generate_id and "id" not in one:
                    one = {"id": new_id(), **one}
                add_key(check_key(one, spec))
                add_doc(one)
        return prepared, keys

    # --- cache ------------------------------------------------------------------------------

    def _read_cache(self, use_cache: bool) -> ReadCache | ObservedCache | None:
        """The cache for a read, or None: reads in a transaction, on TTL collections (a cached
        document could outlive its expiry) and with ``cache=False`` go to the backend."""
        cache = self._db._cache
        if cache is None:
            return None
        if not use_cache or self._session is not None or self.spec.ttl is not None:
            cache.note_bypass()
            return None
        return self._db._cache_reader or cache

    def _shape(self, kind: str, query: Query, allow_scan: bool | None, extra: Any = None) -> str:
        return shape_digest(kind, self.spec, query, allow_scan, extra)

    async def _written(self, keys: list[KeyTuple] | None) -> None:
        """Invalidate the cache after a write (keys None: the written documents are unknown).
        Inside a transaction the invalidation waits for the commit."""
        cache = self._db._cache
        if cache is None:
            return
        if self._tx_writes is not None:
            self._tx_writes.append((self.spec.name, keys))
        else:
            await cache.invalidate([(self.spec.name, keys)])

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
    async def insert_one(self, doc: Mapping[str, Any]) -> Any:
        """Insert one document and return its key (an ``"id"`` is generated if missing).

        >>> # key = await alerts.insert_one({"title": "disk full", "priority": 80})
        """
        if self._store.table_mode:  # the table's own key rules
            return (await self._insert_rows([doc]))[0]
        [prepared], [key] = self._prepare([doc])
        await self._ready()
        try:
            await self._call(
                lambda: self._store.insert([prepared], self._session),
                write=True,
                what="insert",
                insert_check=self._stored_as_sent([prepared]),
            )
        finally:
            await self._written([key])
        return key[0] if self.spec.single_key else key

    @observed("insert_many")
    async def insert_many(self, docs: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Insert all documents or none; returns their keys in order."""
        if self._store.table_mode:  # the table's own key rules
            return await self._insert_rows(list(docs))
        # The caller's iterable is consumed first: a generator's code must not run in _prepare.
        prepared, keys = self._prepare(docs if type(docs) is list else list(docs))
        if not prepared:
            return []
        await self._ready()
        try:
            await self._call(
                lambda: self._store.insert(prepared, self._session),
                write=True,
                what="insert",
                insert_check=self._stored_as_sent(prepared),
            )
        finally:
            await self._written(keys)
        # A copy: _written may keep ``keys`` until the transaction commits.
        return [k[0] for k in keys] if self.spec.single_key else list(keys)

    async def _insert_rows(self, docs: list[Any]) -> list[Any]:
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
        update: Mapping[str, Any],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
    ) -> UpdateResult:
        """Apply an update (``$set``, ``$inc``, ...) to the first matching document."""
        node, parsed = parse_filter(filter), parse_update(update)
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
        update: Mapping[str, Any],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
    ) -> UpdateResult:
        """Apply an update to every matching document (each atomically)."""
        node, parsed = parse_filter(filter), parse_update(update)
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
        doc: Mapping[str, Any],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
    ) -> UpdateResult:
        """Replace the first matching document whole (its key stays)."""
        node, parsed = parse_filter(filter), parse_replacement(doc)
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
            )
        except BaseException:
            await self._written(self._written_keys(node, upsert, None))
            raise
        await self._written(self._written_keys(node, upsert, result))
        return result

    @observed("find_one_and_update")
    async def find_one_and_update(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any],
        return_document: Literal["before", "after"] = "after",
        *,
        upsert: bool = False,
        sort: Any = None,
        projection: Any = None,
        allow_scan: bool | None = None,
    ) -> Doc | None:
        """Update the first match atomically and return it as it was ``"before"`` or is
        ``"after"`` the update (None if nothing matched)."""
        if return_document not in ("before", "after"):
            raise QueryError('return_document must be "before" or "after"', path="return_document")
        node, parsed = parse_filter(filter), parse_update(update)
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
            )
        except BaseException:
            await self._written(self._written_keys(node, upsert, None))
            raise
        await self._written(self._written_keys(node, upsert, result))
        return None if doc is None else apply_projection(proj, doc, self.spec.key)

    @observed("delete_one")
    async def delete_one(
        self, filter: Mapping[str, Any] | None, *, allow_scan: bool | None = None
    ) -> int:
        """Delete the first matching document; returns 0 or 1."""
        node = parse_filter(filter)
        await self._ready()
        try:
            return await self._call(
                lambda: self._store.delete(
                    node, multi=False, session=self._session, allow_scan=allow_scan
                ),
                write=True,
                what="delete",
            )
        finally:
            await self._written(key_lookup(node, self.spec))

    @observed("delete_many")
    async def delete_many(
        self, filter: Mapping[str, Any] | None, *, allow_scan: bool | None = None
    ) -> int:
        """Delete every matching document; returns how many."""
        node = parse_filter(filter)
        await self._ready()
        try:
            return await self._call(
                lambda: self._store.delete(
                    node, multi=True, session=self._session, allow_scan=allow_scan
                ),
                write=True,
                what="delete",
            )
        finally:
            await self._written(key_lookup(node, self.spec))

    # --- reads ------------------------------------------------------------------------------

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
    ) -> Cursor:
        """A lazy cursor over the matching documents; ties in ``sort`` are broken by key."""
        node = parse_filter(filter)
        sort_spec = parse_sort(sort)
        if sort_spec:
            sort_spec = with_key_tiebreak(sort_spec, self.spec)
        proj = parse_projection(projection, self.spec.key)
        return Cursor(
            self,
            node,
            sort_spec,
            _check_count("skip", skip) or 0,
            _limit(limit),
            proj,
            allow_scan,
            cache,
        )

    @observed("find_one")
    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
    ) -> Doc | None:
        """The first matching document, or None. A filter that is exactly the key
        (``{"id": k}``) is a point read that skips parsing and planning."""
        if projection is None and sort is None:
            key = self._exact_key(filter)
            if key is not None:
                if self.spec.name not in self._db._ensured:
                    await self._ready()
                if self._db._cache is not None:
                    read_cache = self._read_cache(cache)
                    if read_cache is not None:
                        store = self._store
                        cached: Doc | None = await read_cache.read_doc(
                            self.spec.name,
                            key,
                            lambda: self._call(
                                lambda: store.get(key, None), write=False, what="get"
                            ),
                        )
                        return cached
                return await self._call(
                    lambda: self._store.get(key, self._session), write=False, what="get"
                )
        docs = await self.find(
            filter, projection, sort, 0, 1, allow_scan=allow_scan, cache=cache
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
            if not ((t is str and value) or t is int):
                return None
            key.append(value)
        return tuple(key)

    @observed("count_documents")
    async def count_documents(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
    ) -> int:
        """How many documents match."""
        node = parse_filter(filter)
        await self._ready()
        visible = self._store.visible(node)
        read_cache = self._read_cache(cache) if self._db._cache is not None else None
        if read_cache is not None:
            digest = self._shape("count", Query(visible), allow_scan)
            store = self._store
            count: int = await read_cache.read_query(
                self.spec.name,
                digest,
                lambda: self._call(
                    lambda: store.count(visible, None, allow_scan=allow_scan),
                    write=False,
                    what="count",
                ),
            )
            return count
        return await self._call(
            lambda: self._store.count(visible, self._session, allow_scan=allow_scan),
            write=False,
            what="count",
        )

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
    ) -> Page:
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
        node = parse_filter(filter)
        sort_spec = with_key_tiebreak(parse_sort(sort), self.spec)
        proj = parse_projection(projection, self.spec.key)
        digest = self._db._query_digest(self.spec.name, node, sort_spec)
        after = None if cursor is None else self._db._signer.decode(cursor, digest)
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
            return self._call(load_once, write=False, what="find_page")

        read_cache = self._read_cache(cache) if self._db._cache is not None else None
        if read_cache is None:
            page = await load()
        else:
            shape = self._shape("page", query, allow_scan, proj)
            page = await read_cache.read_query(self.spec.name, shape, load)
        return Page(items=page["items"], next_cursor=page["next_cursor"])

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
    ) -> Plan:
        """How this backend would run the query: native form, exact/approximate/residual parts,
        access path. Runs nothing, unless ``server_plan=True`` asks the store for its own plan
        (``Plan.server_plan``: PostgreSQL's ``EXPLAIN``, SQLite's ``EXPLAIN QUERY PLAN``;
        ``NotSupported`` elsewhere); ``analyze=True`` runs the query to time it
        (``EXPLAIN ANALYZE``).

        >>> # print(await alerts.explain({"priority": {"$gt": 50}}, server_plan=True))
        """
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

    @observed("purge_expired")
    async def purge_expired(self) -> int:
        """Delete the documents whose TTL field lies in the past (they are never returned)."""
        await self._ready()
        return await self._call(self._store.purge_expired, write=True, what="purge_expired")

    def __repr__(self) -> str:
        return f"<Collection {self.spec.name!r} on {self._db.backend}>"
