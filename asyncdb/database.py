"""``connect()``, the backend registry and the :class:`Database` object."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asyncdb._paging import CursorSigner, query_digest
from asyncdb.backends.base import KeyTuple, Session, Store, StoreCollection
from asyncdb.cache import CacheConfig, ReadCache
from asyncdb.catalog import CATALOG_SPEC, RESERVED_PREFIX, spec_document, spec_from_document
from asyncdb.collection import Collection
from asyncdb.errors import ConfigurationError, NotSupported, WrongEventLoop
from asyncdb.observe.operation import ObservedCache
from asyncdb.observe.setup import ObserveOptions
from asyncdb.query.ast import Eq, MatchAll, Node, Sort, SortKey
from asyncdb.query.parse import parse_replacement
from asyncdb.resilience import Health, Resilience, RetryPolicy
from asyncdb.types import Capabilities, CollectionSpec, DocT, Index, Query, check_identifier

if TYPE_CHECKING:
    import sqlalchemy

    from asyncdb.backends.table.store import TableStore
    from asyncdb.observe.operation import Observer
    from asyncdb.security.keyring import KeyRing
    from asyncdb.settings import Settings

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

    def collection(self, name: str, **options: Any) -> Collection[Any]:
        """The collection ``name`` inside this transaction (with the options, and the model, it
        was opened with on the database, unless given here)."""
        existing = self._db._collections.get(name)
        if existing is not None and not options:
            model = self._db._models.get(name)
            if model is not None:  # typed: the same spec (key, indexes, allow_scan) and model
                bound = Collection[Any](self._db, existing, self._session, self._writes)
                layer = self._db._layers.get(name)  # encrypted too: sealed, then typed
                return self._db._typed(bound if layer is None else layer(bound), model)
        if existing is None or options:
            base = self._db.collection(name, **options)
            if options.get("model") is not None:  # typed: the same model, bound to this tx
                return base._bind(self._session, self._writes)
            store = base._store
        else:
            store = existing
        plain: Collection[Any] = Collection(self._db, store, self._session, self._writes)
        layer = self._db._layers.get(name)  # e.g. encryption: the same layer, bound to this tx
        return plain if layer is None else layer(plain)

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
        self._keyring: KeyRing | None = None
        # name -> the layer an encrypted collection puts over a plain handle of it
        self._layers: dict[str, Callable[[Collection], Collection]] = {}
        self._catalog: StoreCollection | None = None  # ensured on first use
        self._catalog_pending: dict[str, CollectionSpec] = {}  # written after a transaction
        self._models: dict[str, type[Any]] = {}  # the model a collection was last opened with
        # name -> what an encrypted collection seals (EncryptionSpec.describe()), for the catalog
        self._encryption: dict[str, dict[str, Any]] = {}
        self._observer: Observer | None = None  # metrics, slow warnings, audit, spans
        self._cache_reader: ReadCache | ObservedCache | None = None  # the cache, observed
        try:  # pools and clients belong to the loop that opened them
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # made outside a loop: bound to the first loop that uses it
        self._loop_thread = threading.get_ident()  # where _loop was seen running last

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; WrongEventLoop when it is not the one that opened this database.

        Cheap on every operation: while this database's loop runs in the calling thread, it is
        the running loop (a thread runs one loop at a time), known without
        ``asyncio.get_running_loop()``, which on Python 3.11 makes a ``getpid`` system call."""
        loop = self._loop
        if loop is not None and self._loop_thread == threading.get_ident() and loop.is_running():
            return loop
        running = asyncio.get_running_loop()
        if running is not loop:
            if loop is None:
                self._loop, self._loop_thread = running, threading.get_ident()
                return running
            raise WrongEventLoop(
                f"this {self.backend} Database was opened on another event loop; its pools "
                "and clients cannot be used from this one: open one Database per event loop "
                "(per worker process, per test loop), e.g. in the app's lifespan"
            )
        self._loop_thread = threading.get_ident()
        return running

    @property
    def cache(self) -> ReadCache | None:
        """The read-through cache (``db.cache.stats()``), or None without ``cache=``."""
        return self._cache

    @property
    def keyring(self) -> KeyRing | None:
        """The key ring given to ``connect(url, keyring=...)``, or None (read-only)."""
        return self._keyring

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
        *,
        encrypted: Mapping[str, Any] | None = None,
        allow_plaintext: bool = False,
        model: type[DocT] | None = None,
    ) -> Collection[DocT]:
        """A collection handle (cheap; the table is created on first use). With ``model=`` (a
        pydantic model, extra ``models``) it is a ``Collection[Model]``: writes validate
        before any I/O and reads return model instances (see asyncdb.models).

        ``encrypted={"ssn": "equality", "notes": "opaque"}`` (or ``{"*": "opaque"}``) seals
        those fields with the database's ``keyring`` (see :mod:`asyncdb.security`).

        >>> # alerts = db.collection("alerts", indexes=["status", ("company", "priority")])
        >>> # typed = db.collection("alerts", model=Alert)      # Collection[Alert]
        """
        if encrypted is not None:
            from asyncdb.security.collection import open_encrypted

            encrypted_collection: Collection[Any] = open_encrypted(
                self,
                name,
                encrypted,
                allow_plaintext=allow_plaintext,
                key=key,
                indexes=indexes,
                ttl=ttl,
                allow_scan=allow_scan,
                max_scan=max_scan,
            )
            return self._typed(encrypted_collection, model)
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
            return self._typed(Collection(self, existing), model)
        if existing is not None and name in self._ensured and (existing.spec.key != spec.key):
            raise ConfigurationError(
                f"collection {name!r} was opened with key {existing.spec.key}, not {spec.key}"
            )
        store_coll = self._store.collection(spec)
        self._collections[name] = store_coll
        if existing is not None:
            self._ensured.discard(name)
        return self._typed(Collection(self, store_coll), model)

    def _own_collection(self, name: str) -> Collection:
        """A collection of asyncdb's own (``_asyncdb...``: key ``id``, scans allowed), e.g. a
        copy's checkpoint in its destination; never in the catalog, so never copied."""
        if not name.startswith(RESERVED_PREFIX):
            raise ConfigurationError(f"{name!r} is not an asyncdb collection name")
        check_identifier(name, "collection name")
        existing = self._collections.get(name)
        if existing is None:
            existing = self._store.collection(CollectionSpec(name, ("id",), allow_scan=True))
            self._collections[name] = existing
        return Collection(self, existing)

    def _typed(self, plain: Collection[Any], model: type[DocT] | None) -> Collection[DocT]:
        """``plain`` itself, or its typed view with ``model=`` (asyncdb.models); the model is
        remembered for ``tx.collection(name)`` and the catalog."""
        if model is None:
            self._models.pop(plain.spec.name, None)
            return plain
        if plain.spec.name in self._layers and hasattr(plain, "encryption"):
            from asyncdb.security.typed import typed_encrypted  # validated, then sealed

            typed: Collection[DocT] = typed_encrypted(plain, model)  # type: ignore[arg-type]
        else:
            from asyncdb.models import model_collection  # pydantic is imported only here

            typed = model_collection(plain, model)  # a wrong model= is refused first
        self._models[plain.spec.name] = model
        return typed

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
        namespace = coll.namespace  # a table and a document collection of one name are apart
        if namespace in self._ensured:
            return
        self._check_loop()
        async with self._ensure_lock:
            if namespace not in self._ensured:
                # CREATE ... IF NOT EXISTS is idempotent: retried like a read.
                await self._resilience.call(coll.ensure, write=False, what="collection set-up")
                if not coll.table_mode and not coll.spec.name.startswith(RESERVED_PREFIX):
                    await self._catalog_record(coll.spec)
                self._ensured.add(namespace)

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
        self._check_loop()
        self._resilience.check_breaker()
        task = asyncio.current_task()
        self._resilience.transaction_tasks[task] += 1
        observer = self._observer
        session: Session | None = None
        try:
            async with self._store.transaction() as session:
                tx = Transaction(self, session)
                yield tx
        except BaseException as exc:
            if observer is not None and session is not None:  # its audited writes: rolled back
                await observer.transaction_ended(session, exc)
            raise
        finally:
            self._resilience.transaction_tasks[task] -= 1
            if not self._resilience.transaction_tasks[task]:
                del self._resilience.transaction_tasks[task]
        if self._cache is not None and tx._writes:  # committed: nothing on rollback
            await self._cache.invalidate(tx._writes)
        if observer is not None:
            await observer.transaction_ended(session, None)
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
        model = self._models.get(spec.name)
        document = spec_document(
            spec,
            model=None if model is None else f"{model.__module__}.{model.__qualname__}",
            encrypted=self._encryption.get(spec.name),
        )
        node, update = Eq(("name",), spec.name), parse_replacement(document)
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
            self._ensured.discard(coll.namespace)
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

    def metrics(self) -> dict[str, Any]:
        """Per collection and operation: ``count``, ``errors``, ``latency_ms`` (mean, max,
        p50/p95/p99 and the histogram's ``buckets_ms``/``counts``), ``docs_read`` (from the
        store) against ``docs_returned`` (the read amplification of a residual re-check),
        ``cache_hits``/``cache_misses`` and ``slow``; then the connection ``pool`` (``size``,
        ``in_use``, ``idle``, ``max_size``, ``waits``; None without a pool of the store's
        own), the ``capacity`` units consumed (DynamoDB: ``read``/``write``; else None), the
        ``cache`` stats and the ``audit`` trail's counters. No collections with
        ``connect(url, metrics=False)``.

        >>> # db.metrics()["collections"]["alerts"]["find_one"]["latency_ms"]["p99"]
        """
        observer = self._observer
        trail = observer.audit if observer is not None else None
        return {
            "backend": self.backend,
            "collections": (
                observer.metrics.snapshot()
                if observer is not None and observer.metrics is not None
                else {}
            ),
            "pool": self._store.pool_stats(),
            "capacity": self._store.capacity_stats(),
            "cache": self._cache.stats() if self._cache is not None else None,
            "audit": (
                None
                if trail is None
                else {
                    "events": trail.events,
                    "writes": trail.batches,
                    "failures": trail.failures,
                    "policy": trail.policy,
                }
            ),
        }

    async def close(self) -> None:
        """Close pools and clients (after writing the audit events still queued)."""
        if self._observer is not None and self._observer.audit is not None:
            await self._observer.audit.flush()
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


def _keyring(value: Any) -> KeyRing | None:
    """``keyring=``: a KeyRing, or its JSON / base64 text (``KeyRing.from_json``, what
    ``Settings.keyring`` holds), checked before any I/O."""
    if value is None:
        return None
    from asyncdb.security.keyring import KeyRing

    if isinstance(value, str | bytes):
        return KeyRing.from_json(value)
    if not isinstance(value, KeyRing):
        raise ConfigurationError("keyring must be an asyncdb.KeyRing or its JSON text")
    return value


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
        keyring = _keyring(options.pop("keyring", None))
        policy = RetryPolicy.from_options(options)
        observe = ObserveOptions.pop(options)
        store_cls = _tables_store() if options.pop("tables_only", False) else backend_for(self._url)
        if options.get("replicas") is not None and store_cls.name != "postgres":
            raise NotSupported(
                f"read replicas are a PostgreSQL option; the {store_cls.name} backend has none"
                " (its store replicates and routes reads itself, or has no replicas)"
            )
        store = await store_cls.open(self._url, options)
        db = Database(store, self._url, cursor_secret=secret, policy=policy)
        db._keyring = keyring
        if cache is not None:
            try:
                db._cache = ReadCache(cache, self._url, cache_config)
            except ConfigurationError:
                await store.close()
                raise
        try:
            db._observer = observe.observer(db)
        except BaseException:
            await db.close()
            raise
        db._cache_reader = db._cache
        if db._observer is not None and db._cache is not None:
            db._cache_reader = ObservedCache(db._cache, db._observer.tracing)
        return db

    def __await__(self) -> Generator[Any, None, Database]:
        return self._open().__await__()

    def __repr__(self) -> str:
        # What asyncio.run(asyncdb.connect(url)) shows ("a coroutine was expected, got ..."):
        # a database belongs to the loop that opened it, so say how to use it instead.
        return (
            "<asyncdb.connect(...): not a coroutine; await it inside one, e.g. "
            "async def main(): db = await asyncdb.connect(url) ...; asyncio.run(main())>"
        )

    async def __aenter__(self) -> Database:
        self._db = await self._open()
        return self._db

    async def __aexit__(self, *exc: object) -> None:
        if self._db is not None:
            await self._db.close()


def _settings_url(url: str | None, settings: Settings | None, options: dict[str, Any]) -> str:
    """The URL to open, with ``settings``' options merged under ``options`` (explicit keyword
    arguments win). Without a URL and settings, ``asyncdb.Settings()`` reads ASYNCDB_URL."""
    if settings is None and url is not None:
        return url
    if settings is None:
        try:
            from asyncdb.settings import Settings
        except ImportError:  # without the models extra: the one variable that is needed
            import os

            env_url = os.environ.get("ASYNCDB_URL")
            if not env_url:
                raise ConfigurationError("no database URL: pass one or set ASYNCDB_URL") from None
            return env_url
        settings = Settings()
    chosen, settings_options = settings.connect_options(url)
    for name, value in settings_options.items():
        options.setdefault(name, value)
    return chosen


def connect(
    url: str | None = None, *, settings: Settings | None = None, **options: Any
) -> _Connect:
    """Connect to a database by URL, or by ``settings=asyncdb.Settings()`` (or, with
    neither, by the ASYNCDB_* environment variables: see :class:`asyncdb.Settings`).

    ``memory://``, ``sqlite:///app.db`` (``sqlite:///:memory:``), ``postgresql://...``, ...
    ``keyring=asyncdb.KeyRing...`` gives the keys of encrypted collections.
    ``tables_only=True`` opens a sqlite/postgresql database for table mode alone
    (``db.table(t)``; ``db.transaction()`` then covers tables, ``db.collection()`` is refused).
    ``timeout``, ``retries``, ``retry_base_delay``, ``retry_max_delay``, ``breaker_threshold``
    and ``breaker_cooldown`` set the resilience policy (see :mod:`asyncdb.resilience`).
    ``audit``, ``audit_reads``, ``audit_keys``, ``audit_policy``, ``tracing``, ``metrics`` and
    ``slow_ms`` set what is observed (see :mod:`asyncdb.observe`).

    >>> import asyncio, asyncdb
    >>> async def main():
    ...     async with asyncdb.connect("memory://") as db:
    ...         alerts = db.collection("alerts", allow_scan=True)
    ...         await alerts.insert_one({"id": "a1", "priority": 80})
    ...         return await alerts.find_one({"priority": {"$gt": 50}})
    >>> asyncio.run(main())
    {'id': 'a1', 'priority': 80}
    """
    return _Connect(_settings_url(url, settings, options), options)
