"""``connect()``, the backend registry and the :class:`Database` object."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asyncdb._paging import CursorSigner, query_digest
from asyncdb.backends.base import KeyTuple, Session, Store, StoreCollection
from asyncdb.cache import CacheConfig, ReadCache
from asyncdb.catalog import CATALOG_SPEC, RESERVED_PREFIX, spec_document, spec_from_document
from asyncdb.collection import Collection
from asyncdb.errors import ConfigurationError, NotSupported
from asyncdb.query.ast import Eq, MatchAll, Node, Sort, SortKey
from asyncdb.query.parse import parse_replacement
from asyncdb.resilience import Health, Resilience, RetryPolicy
from asyncdb.types import Capabilities, CollectionSpec, Index, Query, check_identifier

if TYPE_CHECKING:
    import sqlalchemy

    from asyncdb.backends.table.store import TableStore

# Built-in schemes, used when the package's entry points are not installed (a source checkout).
_BUILTIN: dict[str, str] = {
    "memory": "asyncdb.backends.memory.store:MemoryStore",
    "sqlite": "asyncdb.backends.sqlite.store:SQLiteStore",
    "mongodb": "asyncdb.backends.mongo.store:MongoStore",
    "firestore": "asyncdb.backends.firestore.store:FirestoreStore",
    "cosmos": "asyncdb.backends.cosmos.store:CosmosStore",
    "postgresql": "asyncdb.backends.postgres.store:PostgresStore",
    "dynamodb": "asyncdb.backends.dynamodb.store:DynamoStore",
}
_ALIASES = {"postgres": "postgresql", "mongodb+srv": "mongodb"}


def _load(target: str) -> type[Store]:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Store)):
        raise ConfigurationError(f"{target} is not an asyncdb Store")
    return cls


def backend_for(url: str) -> type[Store]:
    """The :class:`Store` class registered for the URL's scheme (entry point group
    ``asyncdb.backends``, so third parties can add schemes)."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ConfigurationError(f"no scheme in database URL {url!r}")
    scheme = _ALIASES.get(scheme, scheme)
    for ep in entry_points(group="asyncdb.backends"):
        if ep.name == scheme:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Store)):
                raise ConfigurationError(f"entry point {ep.value} is not an asyncdb Store")
            return cls
    if scheme in _BUILTIN:
        return _load(_BUILTIN[scheme])
    raise ConfigurationError(
        f"no backend for scheme {scheme!r}; install the matching extra "
        "(asyncdb-unified[postgres], [mongo], ...) or register one"
    )


class Transaction:
    """The handle of ``async with db.transaction() as tx``: ``tx.collection(name)`` gives
    collections whose reads and writes belong to the transaction."""

    def __init__(self, db: Database, session: Session) -> None:
        self._db = db
        self._session = session
        # Cache invalidations of this transaction's writes, run after it commits.
        self._writes: list[tuple[str, list[KeyTuple] | None]] = []

    def collection(self, name: str, **options: Any) -> Collection:
        """The collection ``name`` inside this transaction (with the options it was opened with
        on the database, unless given here)."""
        existing = self._db._collections.get(name)
        if existing is not None and not options:
            return Collection(self._db, existing, self._session, self._writes)
        base = self._db.collection(name, **options)
        return Collection(self._db, base._store, self._session, self._writes)

    def table(self, table: sqlalchemy.Table, **options: Any) -> Collection:
        """The collection over ``table`` inside this transaction. Only a tables-only database
        (``connect(url, tables_only=True)``) has table transactions: elsewhere the table engine
        is not the connection this transaction runs on, so it raises NotSupported."""
        from asyncdb.backends.table.store import TableStore

        if not isinstance(self._db._store, TableStore):
            raise NotSupported(
                "db.transaction() of a document database cannot include tables (they run on "
                "their own engine): open the database with connect(url, tables_only=True)"
            )
        base = self._db.table(table, **options)
        return Collection(self._db, base._store, self._session, self._writes)


class Database:
    """A connected database. Create with ``await asyncdb.connect(url)``."""

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        cursor_secret: bytes | str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._resilience = Resilience(
            store.name,
            store.classify_error,
            policy or RetryPolicy(),
            network=store.network,
            detach=store.detach_calls,
        )
        self.url = url
        self._collections: dict[str, StoreCollection] = {}
        self._ensured: set[str] = set()
        self._ensure_lock = asyncio.Lock()
        self._signer = CursorSigner(cursor_secret)
        self._digests: dict[tuple[str, str, str], str] = {}
        self._tables: TableStore | None = None
        self._cache: ReadCache | None = None
        self._catalog: StoreCollection | None = None  # ensured on first use
        self._catalog_pending: dict[str, CollectionSpec] = {}  # written after a transaction

    @property
    def cache(self) -> ReadCache | None:
        """The read-through cache (``db.cache.stats()``), or None without ``cache=``."""
        return self._cache

    @property
    def backend(self) -> str:
        return self._store.name

    @property
    def capabilities(self) -> Capabilities:
        """What this backend does natively (``"transactions" in db.capabilities``)."""
        return self._store.capabilities

    def collection(
        self,
        name: str,
        key: str | Sequence[str] = "id",
        indexes: Sequence[Any] = (),
        ttl: str | None = None,
        allow_scan: bool = False,
        max_scan: int = 10_000,
    ) -> Collection:
        """A collection handle (cheap; the table is created on first use).

        >>> # alerts = db.collection("alerts", indexes=["status", ("company", "priority")])
        """
        check_identifier(name, "collection name")
        if name.startswith(RESERVED_PREFIX):
            raise ConfigurationError(
                f"collection names starting with {RESERVED_PREFIX!r} are reserved for asyncdb"
            )
        keys = (key,) if isinstance(key, str) else tuple(key)
        if not keys:
            raise ConfigurationError("a collection needs at least one key field")
        for k in keys:
            check_identifier(k, "key field")
        parsed_indexes = tuple(Index.of(i) for i in indexes)
        if ttl is not None:
            for part in ttl.split("."):
                check_identifier(part, "ttl field")
            if "ttl" not in self.capabilities:
                raise NotSupported(f"{self.backend} does not support TTL collections")
        if parsed_indexes and "secondary_indexes" not in self.capabilities:
            raise NotSupported(f"{self.backend} does not support secondary indexes")
        if any(i.unique for i in parsed_indexes) and "unique_indexes" not in self.capabilities:
            raise NotSupported(f"{self.backend} does not support unique indexes")
        if isinstance(max_scan, bool) or not isinstance(max_scan, int) or max_scan < 1:
            raise ConfigurationError("max_scan must be a positive integer")
        spec = CollectionSpec(name, keys, parsed_indexes, ttl, bool(allow_scan), max_scan)
        existing = self._collections.get(name)
        if existing is not None and existing.spec == spec:
            return Collection(self, existing)
        if existing is not None and name in self._ensured and (existing.spec.key != spec.key):
            raise ConfigurationError(
                f"collection {name!r} was opened with key {existing.spec.key}, not {spec.key}"
            )
        store_coll = self._store.collection(spec)
        self._collections[name] = store_coll
        if existing is not None:
            self._ensured.discard(name)
        return Collection(self, store_coll)

    def table(
        self, table: sqlalchemy.Table, *, allow_scan: bool = False, max_scan: int = 10_000
    ) -> Collection:
        """The collection API over an existing SQLAlchemy ``Table`` (table mode, on
        ``sqlite://`` and ``postgresql://`` databases): the primary key is the key, documents
        are column name -> value, NULL columns are missing fields. Creates nothing.

        >>> # users = db.table(users_table)          # a sqlalchemy.Table
        >>> # await users.update_one({"id": 7}, {"$inc": {"logins": 1}})
        """
        from asyncdb.backends.table.store import TableStore

        if isinstance(self._store, TableStore):
            tables = self._store
        else:
            if self._tables is None:
                self._tables = TableStore.for_url(self.url)  # lazy: no I/O until first use
            tables = self._tables
        return Collection(self, tables.table(table, allow_scan=allow_scan, max_scan=max_scan))

    async def _ensure(self, coll: StoreCollection) -> None:
        if coll.spec.name in self._ensured:
            return
        async with self._ensure_lock:
            if coll.spec.name not in self._ensured:
                # CREATE ... IF NOT EXISTS is idempotent: retried like a read.
                await self._resilience.call(coll.ensure, write=False, what="collection set-up")
                if not coll.table_mode:
                    await self._catalog_record(coll.spec)
                self._ensured.add(coll.spec.name)

    def _query_digest(self, collection: str, node: Node, sort: Sort) -> str:
        key = (collection, repr(node), repr(sort))
        digest = self._digests.get(key)
        if digest is None:
            digest = query_digest(*key)
            if len(self._digests) > 4096:
                self._digests.clear()
            self._digests[key] = digest
        return digest

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """All writes inside commit together, or none if the block raises.

        >>> # async with db.transaction() as tx:
        >>> #     await tx.collection("accounts").update_one({"id": "a"}, {"$inc": {"n": -5}})
        """
        if "transactions" not in self.capabilities:
            raise NotSupported(f"{self.backend} does not support transactions")
        self._resilience.check_breaker()
        task = asyncio.current_task()
        self._resilience.transaction_tasks[task] += 1
        try:
            async with self._store.transaction() as session:
                tx = Transaction(self, session)
                yield tx
        finally:
            self._resilience.transaction_tasks[task] -= 1
            if not self._resilience.transaction_tasks[task]:
                del self._resilience.transaction_tasks[task]
        if self._cache is not None and tx._writes:  # committed: nothing on rollback
            await self._cache.invalidate(tx._writes)
        await self._catalog_flush()

    # --- the catalog, drop, native statements ----------------------------------------------

    def _in_transaction(self) -> bool:
        return asyncio.current_task() in self._resilience.transaction_tasks

    async def _catalog_ready(self) -> StoreCollection:
        if self._catalog is None:
            catalog = self._store.collection(CATALOG_SPEC)
            await self._resilience.call(catalog.ensure, write=False, what="catalog set-up")
            self._catalog = catalog
        return self._catalog

    async def _catalog_record(self, spec: CollectionSpec) -> None:
        """Write ``spec`` to the catalog (an idempotent upsert by name). Inside a transaction
        the write waits until it ends: the catalog is not part of the user's transaction."""
        if self._in_transaction():
            self._catalog_pending[spec.name] = spec
            return
        catalog = await self._catalog_ready()
        node, update = Eq(("name",), spec.name), parse_replacement(spec_document(spec))
        await self._resilience.call(
            lambda: catalog.update(node, update, multi=False, upsert=True, session=None),
            write=False,  # idempotent: retried like a read
            what="catalog write",
        )

    async def _catalog_flush(self) -> None:
        if self._in_transaction():
            return
        while self._catalog_pending:
            _, spec = self._catalog_pending.popitem()
            await self._catalog_record(spec)

    async def list_collections(self) -> list[CollectionSpec]:
        """The specs of the collections asyncdb created in this database (name, key,
        indexes, ttl), read from its catalog, by name. Every ``db.collection(...)`` records its
        spec when it is first used; ``drop()`` removes it.

        >>> # [s.name for s in await db.list_collections()]   # ['alerts', 'customers']
        """
        await self._catalog_flush()
        catalog = await self._catalog_ready()

        async def read() -> list[dict[str, Any]]:
            query = Query(MatchAll(), sort=(SortKey(("name",), 1),))
            return [doc async for doc in await catalog.find(query, None, allow_scan=True)]

        docs = await self._resilience.call(read, write=False, what="list_collections")
        return [spec_from_document(doc) for doc in docs]

    async def _drop(self, coll: StoreCollection) -> None:
        name = coll.spec.name
        async with self._ensure_lock:
            # dropping what is already gone is a no-op: retried like a read
            await self._resilience.call(coll.drop, write=False, what="drop")
            self._ensured.discard(name)
            self._catalog_pending.pop(name, None)
            catalog = await self._catalog_ready()
            node = Eq(("name",), name)
            await self._resilience.call(
                lambda: catalog.delete(node, multi=False, session=None, allow_scan=True),
                write=False,
                what="catalog write",
            )

    async def native(self, statement: Any, params: Any = None) -> list[dict[str, Any]]:
        """Run one statement in the store's own language, with bound parameters only: SQL on
        PostgreSQL (``$1`` placeholders, ``params`` a sequence) and SQLite (``?`` or
        ``:name``), PartiQL on DynamoDB (``?``, ``params`` a sequence of plain values), Cosmos
        DB SQL (``@name``, ``params`` a mapping), a MongoDB command document (``params`` not
        used). Rows come back as dicts, in the driver's own types.

        This is an escape hatch outside asyncdb's semantics: no query-language checks, no
        BSON rules, no TTL filtering, no key mapping, no catalog. A statement that may write
        drops every cached entry of this database before it returns. The memory and
        Firestore backends raise NotSupported (neither has a statement language).

        >>> # rows = await db.native("SELECT count(*) AS n FROM alerts WHERE doc->>'s' = $1", ["x"])
        """
        store = self._store
        writes = store.native_writes(statement)  # validates it too, before any I/O
        try:
            return await self._resilience.call(
                lambda: store.native(statement, params, writes=writes),
                write=writes,
                what="native",
            )
        finally:
            if writes and self._cache is not None:
                names = set(self._collections)
                if self._catalog is not None:
                    with contextlib.suppress(Exception):  # the catalog adds names of others
                        names.update(s.name for s in await self.list_collections())
                await self._cache.invalidate([(name, None) for name in sorted(names)])

    async def health(self) -> Health:
        """One round trip to the backend (``Store.ping``) within ``timeout``: ok, latency,
        breaker state, the cache's stats (with ``cache=``), and the error when not ok. It
        bypasses the breaker (it is how to see whether the backend is back) and never raises
        for a backend failure.

        >>> # h = await db.health(); h.ok, h.latency_ms, h.breaker
        """
        resilience = self._resilience
        began = time.perf_counter()
        error: str | None = None
        try:
            async with asyncio.timeout(resilience.policy.timeout):
                await self._store.ping()
        except TimeoutError:
            error = str(resilience.timed_out("ping"))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        return Health(
            backend=self.backend,
            ok=error is None,
            latency_ms=1000 * (time.perf_counter() - began),
            breaker=resilience.breaker.state,
            cache=self._cache.stats() if self._cache is not None else None,
            error=error,
        )

    async def close(self) -> None:
        """Close pools and clients."""
        if self._cache is not None:
            await self._cache.close()
        await self._store.close()
        if self._tables is not None:
            await self._tables.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Database {self.backend}>"


def _tables_store() -> type[Store]:
    from asyncdb.backends.table.store import TableStore

    return TableStore


class _Connect:
    """``await connect(url)`` or ``async with connect(url) as db``."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self._url = url
        self._options = options
        self._db: Database | None = None

    async def _open(self) -> Database:
        options = dict(self._options)
        cache = options.pop("cache", None)
        cache_config = CacheConfig.from_options(options)
        secret = options.pop("cursor_secret", None)
        policy = RetryPolicy.from_options(options)
        store_cls = _tables_store() if options.pop("tables_only", False) else backend_for(self._url)
        if options.get("replicas") is not None and store_cls.name != "postgres":
            raise NotSupported(
                f"read replicas are a PostgreSQL option; the {store_cls.name} backend has none"
                " (its store replicates and routes reads itself, or has no replicas)"
            )
        store = await store_cls.open(self._url, options)
        db = Database(store, self._url, cursor_secret=secret, policy=policy)
        if cache is not None:
            try:
                db._cache = ReadCache(cache, self._url, cache_config)
            except ConfigurationError:
                await store.close()
                raise
        return db

    def __await__(self) -> Generator[Any, None, Database]:
        return self._open().__await__()

    async def __aenter__(self) -> Database:
        self._db = await self._open()
        return self._db

    async def __aexit__(self, *exc: object) -> None:
        if self._db is not None:
            await self._db.close()


def connect(url: str, **options: Any) -> _Connect:
    """Connect to a database by URL.

    ``memory://``, ``sqlite:///app.db`` (``sqlite:///:memory:``), ``postgresql://...``, ...
    ``tables_only=True`` opens a sqlite/postgresql database for table mode alone
    (``db.table(t)``; ``db.transaction()`` then covers tables, ``db.collection()`` is refused).
    ``timeout``, ``retries``, ``retry_base_delay``, ``retry_max_delay``, ``breaker_threshold``
    and ``breaker_cooldown`` set the resilience policy (see :mod:`asyncdb.resilience`).

    >>> import asyncio, asyncdb
    >>> async def main():
    ...     async with asyncdb.connect("memory://") as db:
    ...         alerts = db.collection("alerts", allow_scan=True)
    ...         await alerts.insert_one({"id": "a1", "priority": 80})
    ...         return await alerts.find_one({"priority": {"$gt": 50}})
    >>> asyncio.run(main())
    {'id': 'a1', 'priority': 80}
    """
    return _Connect(url, options)
