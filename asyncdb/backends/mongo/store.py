"""``mongodb://host:port/db`` (and ``mongodb+srv://``): documents in MongoDB via PyMongo's async
API (``pymongo.AsyncMongoClient``), one client per database; pool and other client options come
from the URL's query string, the database name from its path.

Values: Decimal is stored as Decimal128 and read back as Decimal (a codec on the client),
bytes as binary subtype 0, datetimes as UTC milliseconds read back timezone-aware.

Writes that read first (updates, deletes, batches) run in a write section: an in-process lock
(so two tasks of this process never interleave on the same documents) around a multi-document
transaction (so a section is all or nothing, and conflicts with other clients are detected).
``db.transaction()`` is the same section held for the user's block.

>>> import asyncio, asyncdb
>>> async def main(url):
...     async with asyncdb.connect(url) as db:
...         alerts = db.collection("alerts", indexes=["status"])
...         await alerts.insert_many([{"id": "a", "status": "open"}, {"id": "b"}])
...         return [d["id"] async for d in alerts.find({"status": "open"})]
>>> # asyncio.run(main("mongodb://127.0.0.1:27017/app"))  # ['a']
"""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import UTC
from decimal import Decimal
from typing import Any, Self, TypeVar

import bson
from bson.codec_options import CodecOptions, TypeCodec, TypeDecoder, TypeRegistry
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import (
    AsyncMongoClient,
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateMany,
    UpdateOne,
)
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidURI,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.errors import (
    ConfigurationError as PyMongoConfigurationError,
)

from asyncdb.backends.base import Doc, KeyTuple, Session, Store, StoreCollection, key_lookup
from asyncdb.backends.mongo.planner import (
    Find,
    MongoPlanner,
    has_regex,
    native_positional,
    native_update,
    server_agrees,
    server_stages,
    sort_pushable,
    upsert_filter,
)
from asyncdb.bulk import BulkProgress, WriteOp
from asyncdb.errors import (
    AsyncDBError,
    BackendError,
    ConfigurationError,
    DuplicateKey,
    QueryError,
    TransactionError,
    UpdateError,
)
from asyncdb.options import current_options
from asyncdb.query.aggregate import EvaluationError
from asyncdb.query.ast import MatchAll, Node, Sort, Update
from asyncdb.query.limits import StoreLimits
from asyncdb.query.pipeline import Pipeline, first_match, split_find
from asyncdb.query.update import apply_update, strict_equal, upsert_seed
from asyncdb.resilience import (
    CONTENTION,
    MAYBE_APPLIED,
    NOT_APPLIED,
    ContentionBackoff,
    Transient,
    classify_os_error,
    error_chain,
)
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query, UpdateResult

Native = dict[str, Any]
T = TypeVar("T")
_DUPLICATE_CODES = frozenset({11000, 11001, 12582})
_WRITE_CONFLICT = 112
# BSONObjectTooLarge (an insert, or an update whose result is too large), and the code
# older servers give an update whose result is too large
_TOO_LARGE_CODES = frozenset({10334, 17419})
_TOO_LARGE_NAMES = frozenset({"BSONObjectTooLarge"})
_TOO_LARGE_TEXT = "Resulting document after update is larger than"
# documents per getMore: a streaming find holds one batch at a time (the driver's default
# grows batches to 16 MB)
_BATCH_SIZE = 256
_INTERNAL_ERROR = 1
# The server's own limit on a query with a $regex (a pattern that backtracks is kept in process,
# under its bound, by the planner).
REGEX_MAX_TIME_MS = 10_000


class _DecimalCodec(TypeCodec):
    """Decimal <-> Decimal128, so documents and filters carry Decimals unchanged."""

    python_type = Decimal
    bson_type = Decimal128

    def transform_python(self, value: Any) -> Any:
        return Decimal128(value)

    def transform_bson(self, value: Any) -> Any:
        return value.to_decimal()


def _bson_size(doc: Doc) -> int:
    """The BSON size of a document; a Decimal that Decimal128 cannot hold exactly (more than
    34 digits, or an exponent beyond its range) is a QueryError before any I/O."""
    try:
        return len(bson.encode(doc, codec_options=CODEC))
    except (decimal.Inexact, decimal.InvalidOperation, decimal.Overflow) as exc:
        raise QueryError(
            "decimal limit: MongoDB's Decimal128 holds 34 significant digits and exponents "
            f"from -6176 to 6111 ({type(exc).__name__})"
        ) from None


class _Int64Decoder(TypeDecoder):
    """Int64 -> int: integers beyond 32 bits come back as plain ints."""

    bson_type = Int64

    def transform_bson(self, value: Any) -> Any:
        return int(value)


CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict,
    tz_aware=True,
    tzinfo=UTC,
    type_registry=TypeRegistry([_DecimalCodec(), _Int64Decoder()]),
)


# The point read's decoding: the driver's one C pass without type decoders (with decoders in
# the registry, pymongo decodes every reply twice: into raw documents, then again under a copy
# of the codec options made per reply), then Int64 and Decimal128 narrowed in place exactly as
# CODEC's decoders do (_narrowed).
PLAIN_CODEC: CodecOptions[dict[str, Any]] = CODEC.with_options(type_registry=None)


def _narrowed(value: dict[str, Any] | list[Any]) -> bool:
    """Replace, in place and at any depth, every Int64 by its int and every Decimal128 by its
    Decimal, as CODEC's decoders would have decoded them; False when a value is of a kind the
    walk does not enter (a DBRef holds fields of its own), so the caller decodes with CODEC."""
    items = value.items() if type(value) is dict else enumerate(value)
    for k, v in items:
        t = type(v)
        if t is dict or t is list:
            if not _narrowed(v):
                return False
        elif t is Int64:
            value[k] = int(v)  # type: ignore[index]
        elif t is Decimal128:
            value[k] = v.to_decimal()  # type: ignore[index]
        elif t is DBRef:
            return False
    return True


def _driver_error(
    exc: PyMongoError | DocumentTooLarge, what: str, session: Session | None = None
) -> Exception:
    """Map a driver error to the asyncdb hierarchy. The server aborts a transaction on any error
    inside it, so ``session`` (when one) is marked failed: its next use says so plainly."""
    if isinstance(session, MongoSession) and session.failed is None:
        session.failed = f"{what}: {exc}"
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None) or {}
    if isinstance(exc, DocumentTooLarge) or _too_large(code, details.get("codeName"), str(exc)):
        return QueryError(f"{what}: MongoDB refused it as too large (16 MB a document): {exc}")
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors") or [{}]
        code = errors[0].get("code")
        if _too_large(code, errors[0].get("codeName"), str(errors[0].get("errmsg", ""))):
            return QueryError(
                f"{what}: MongoDB refused it as too large (16 MB a document):"
                f" {str(errors[0].get('errmsg', ''))[:200]}"
            )
        if code in _DUPLICATE_CODES:
            return DuplicateKey(f"{what}: {errors[0].get('errmsg', exc)}")
    if isinstance(exc, DuplicateKeyError) or code in _DUPLICATE_CODES:
        return DuplicateKey(f"{what}: {exc}")
    if isinstance(exc, PyMongoError) and _write_conflict(exc):
        return _WriteConflict(f"{what}: a concurrent write conflicted ({exc}); retry")
    return BackendError(f"{what}: {exc}")


def _too_large(code: Any, name: Any, message: str) -> bool:
    """Did the server refuse a document (inserted, or the result of an update) as larger than
    16 MB? By code, by code name, or by the message update errors carry on every version."""
    return code in _TOO_LARGE_CODES or name in _TOO_LARGE_NAMES or _TOO_LARGE_TEXT in message


def _write_conflict(exc: PyMongoError) -> bool:
    """A write conflict: the server rolled the write back (WiredTiger lost a race)."""
    return getattr(exc, "code", None) == _WRITE_CONFLICT or (
        isinstance(exc, OperationFailure) and exc.has_error_label("TransientTransactionError")
    )


class _WriteConflict(TransactionError):
    """A write lost a conflict with a concurrent one (the server rolled it back)."""


class _NotCommitted(BackendError):
    """A write section's transaction lost its connection before asyncdb sent its commit: the
    server never commits it on its own (it was aborted), so the write provably did not apply
    and may be sent again."""


class MongoSession(Session):
    """A write section or user transaction: a client session with a transaction open."""

    def __init__(self, session: AsyncClientSession, *, transaction: bool) -> None:
        self.session = session
        self.in_transaction = transaction
        self.open = True
        # the error after which the server aborted this transaction (None: still running)
        self.failed: str | None = None

    def check(self) -> AsyncClientSession:
        if not self.open:
            raise TransactionError("this transaction has already finished")
        if self.failed is not None:
            raise TransactionError(
                f"the server aborted this transaction after an error ({self.failed}); "
                "nothing of it is written: leave the block and retry"
            )
        return self.session


class MongoStore(Store):
    """The MongoDB backend (see the module docstring)."""

    name = "mongo"
    network = True
    capabilities = Capabilities(
        transactions=True,
        conditional_writes=True,
        ttl=True,
        secondary_indexes=True,
        unique_indexes=True,
        server_side_sort=True,
        regex_pushdown=True,
        keyset_pagination=True,
        bulk_insert=True,
    )

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.client = client
        self.db = client.get_database(database, codec_options=CODEC)
        self.lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        try:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                url, tz_aware=True, tzinfo=UTC, connect=False, **dict(options)
            )
        except (InvalidURI, PyMongoConfigurationError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad MongoDB URL or option: {exc}") from None
        try:
            database = client.get_default_database().name
        except PyMongoConfigurationError:
            await client.close()
            raise ConfigurationError(
                "a MongoDB URL names its database in the path: mongodb://host:27017/app"
            ) from None
        return cls(client, database)

    async def ping(self) -> None:
        """The ``ping`` command."""
        await self.db.command("ping")

    async def server_version(self) -> str | None:
        try:
            info = await self.db.command("buildInfo")
        except PyMongoError as exc:
            raise _driver_error(exc, "buildInfo") from None
        return str(info.get("version")) if info.get("version") else None

    def classify_error(self, exc: BaseException) -> Transient | None:
        """No server selectable, a server error labelled RetryableWriteError (not primary,
        shutting down) or TransientTransactionError: not applied. AutoReconnect (a network
        error, the reply lost): maybe applied."""
        for err in error_chain(exc):
            if isinstance(err, _NotCommitted | ServerSelectionTimeoutError):
                return NOT_APPLIED
            if isinstance(err, AutoReconnect):
                return MAYBE_APPLIED
            if isinstance(err, PyMongoError) and err.has_error_label("TransientTransactionError"):
                return MAYBE_APPLIED if err.has_error_label("NetworkError") else CONTENTION
            if isinstance(err, PyMongoError) and err.has_error_label("RetryableWriteError"):
                return MAYBE_APPLIED if err.has_error_label("NetworkError") else NOT_APPLIED
        return classify_os_error(exc)

    async def close(self) -> None:
        await self.client.close()

    def collection(self, spec: CollectionSpec) -> MongoCollection:
        return MongoCollection(self, spec)

    def check_not_owner(self) -> None:
        """Work outside the transaction this task holds would wait for it (or not see its
        writes): say what to do instead, as the other backends do."""
        if self._owner is not None and self._owner is asyncio.current_task():
            raise TransactionError(
                "this task has a transaction open: use tx.collection(name) inside it"
            )

    @asynccontextmanager
    async def section(
        self, session: Session | None, *, transaction: bool
    ) -> AsyncIterator[MongoSession]:
        """A write section: ``session`` itself, or a new transaction under the write lock."""
        if session is not None:
            assert isinstance(session, MongoSession)
            session.check()
            yield session
            return
        self.check_not_owner()
        async with self.lock:
            self._owner = asyncio.current_task()
            own: MongoSession | None = None
            try:
                async with self.client.start_session() as client_session:
                    own = MongoSession(client_session, transaction=transaction)
                    try:
                        await client_session.start_transaction()
                    except PyMongoError as exc:
                        raise _driver_error(exc, "cannot begin a transaction") from None
                    try:
                        yield own
                    except BaseException as exc:
                        with suppress(PyMongoError):
                            await client_session.abort_transaction()
                        if not transaction and isinstance(exc, Exception):
                            lost = self.classify_error(exc)
                            if lost is not None and lost.maybe_applied:
                                raise _NotCommitted(f"{exc} (before its commit)") from exc
                        raise
                    if own.failed is not None:
                        with suppress(PyMongoError):
                            await client_session.abort_transaction()
                        own.check()  # raises the TransactionError that names the error
                    try:
                        await client_session.commit_transaction()
                    except PyMongoError as exc:
                        raise _driver_error(exc, "commit failed") from None
            finally:
                if own is not None:
                    own.open = False
                self._owner = None

    def transaction(self) -> Any:
        return self.section(None, transaction=True)

    # --- breadth: native commands --------------------------------------------------------------

    def native_writes(self, statement: Any) -> bool:
        """A command document (a mapping whose first key names the command); the reads below
        (an aggregate without ``$out``/``$merge``) are run as they are, anything else may write."""
        if not isinstance(statement, Mapping) or not statement:
            raise QueryError("a native MongoDB statement is a command document (a mapping)")
        name = str(next(iter(statement)))
        if name == "aggregate":
            stages = statement.get("pipeline") or []
            return any(
                isinstance(st, Mapping) and ("$out" in st or "$merge" in st) for st in stages
            )
        return name not in _READ_COMMANDS

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        """``db.command(statement)``; its reply as the one row (its values travel in the
        document itself, which the driver encodes as BSON, so ``params`` must be None)."""
        if params is not None:
            raise QueryError("a MongoDB command carries its values itself: pass params=None")
        self.check_not_owner()
        try:
            reply = await self.db.command(dict(statement))
        except PyMongoError as exc:
            raise _driver_error(exc, "native command") from None
        return [dict(reply)]


_READ_COMMANDS = frozenset(
    {
        "find", "count", "distinct", "listCollections", "listIndexes", "collStats",
        "dbStats", "ping", "buildInfo", "serverStatus", "explain", "hello", "isMaster",
        "connectionStatus", "hostInfo", "getParameter",
    }
)  # fmt: skip


def _sent(*, hint: bool = True) -> dict[str, Any]:
    """The current call's ``comment=`` (and ``hint=``, as the index name) as driver options."""
    options = current_options()
    if options is None:
        return {}
    out: dict[str, Any] = {}
    if options.comment is not None:
        out["comment"] = options.comment
    if hint and options.hint is not None:
        out["hint"] = options.hint.name  # the key: "_id_"; a declared index: its name
    return out


def _op_hint(op: WriteOp) -> str | None:
    """A bulk operation's own ``hint`` (its index name), as PyMongo's write models take it."""
    return None if op.hint is None else str(op.hint.name)


def _session_of(session: Session | None) -> AsyncClientSession | None:
    if session is None:
        return None
    assert isinstance(session, MongoSession)
    return session.check()


class MongoCollection(StoreCollection):
    """One MongoDB collection; the key is ``_id`` (see planner.py)."""

    store: MongoStore
    limits = StoreLimits(document_bytes=16 * 1024 * 1024)  # a BSON document: 16 MiB
    # ``get`` is one ``find_one`` on ``_id`` (a TTL collection's too: limit 1, one batch), so
    # the server keeps no cursor, and outside a session pymongo's clean-up of a cancelled read
    # is local: the connection's transport is aborted (``PyMongoProtocol.close``) and the pool
    # forgets it; no killCursors, no abortTransaction, nothing that waits on a slow server.
    detach_point_reads = False

    def stored_size(self, doc: Doc) -> int:
        return _bson_size(self.encode(doc))

    def check_update(self, node: Node, update: Update, upsert: bool) -> None:
        super().check_update(node, update, upsert)
        if update.replacement is not None:
            _bson_size(update.replacement)
        else:
            _bson_size({"v": [op.value for op in update.ops if op.op != "$rename"]})

    def __init__(self, store: MongoStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec
        self.planner = MongoPlanner(spec)
        self.coll: AsyncCollection[dict[str, Any]] = store.db[spec.name]
        self.plain_coll = self.coll.with_options(codec_options=PLAIN_CODEC)  # for ``get``
        self.key_field = spec.key[0] if spec.single_key else None

    # --- documents <-> BSON ----------------------------------------------------------------

    def encode(self, doc: Doc) -> Doc:
        """The stored form: ``_id`` holds the key, and the document follows unchanged (its key
        fields included, so field order survives and filters can address them)."""
        if "_id" in doc:
            if self.spec.key == ("_id",):
                return doc
            raise QueryError("the field name _id is reserved for the key on MongoDB", path="_id")
        out = {"_id": self.stored_key_of(doc)}
        out.update(doc)
        return out

    def decode(self, raw: Doc) -> Doc:
        if self.spec.key != ("_id",):
            del raw["_id"]
        return raw

    def stored_key(self, key: KeyTuple) -> Any:
        if self.key_field is not None:
            return key[0]
        return dict(zip(self.spec.key, key, strict=True))

    def stored_key_of(self, doc: Doc) -> Any:
        return self.stored_key(tuple(doc[k] for k in self.spec.key))

    # --- primitives ------------------------------------------------------------------------

    async def ensure(self) -> None:
        try:
            for index in self.spec.indexes:
                fields = [
                    (self.planner.native_path(p), d)
                    for p, (_, d) in zip(index.paths, index.fields, strict=True)
                ]
                await self.coll.create_index(fields, unique=index.unique, name=index.name)
            if not self.spec.single_key:
                # filters and sorts address the key fields at the top level
                await self.coll.create_index(
                    [(k, 1) for k in self.spec.key], name="asyncdb_key_fields"
                )
            if self.spec.ttl is not None:
                # the server deletes expired documents lazily; reads filter them out meanwhile
                await self.coll.create_index(
                    [(self.spec.ttl, 1)], expireAfterSeconds=0, name="asyncdb_ttl"
                )
        except PyMongoError as exc:
            raise _driver_error(exc, f"cannot create the indexes of {self.spec.name!r}") from None

    def plan(self, query: Query) -> Plan:
        return self.planner.plan(query)

    def execution_plan(self, query: Query) -> Plan:
        """The lean plan (no filter rendering, which only ``explain()`` needs)."""
        return self.bounded_plan(query, lambda q: self.planner.plan(q, explain=False))

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        return self.planner.binder(query)

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        find: Find = plan.payload
        if session is None:
            self.store.check_not_owner()
        try:
            cursor = self.coll.find(
                find.filter,
                find.projection,
                sort=find.sort or None,
                skip=find.skip,
                limit=find.limit,
                session=_session_of(session),
                batch_size=_BATCH_SIZE,
                max_time_ms=REGEX_MAX_TIME_MS if has_regex(find.filter) else None,
                **_sent(),
            )
            async with cursor:
                async for raw in cursor:
                    yield self.decode(raw)
        except PyMongoError as exc:
            raise _driver_error(exc, f"query on {self.spec.name!r} failed", session) from None

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        encoded = [self.encode(doc) for doc in docs]
        if session is None and len(encoded) == 1:
            self.store.check_not_owner()
            try:
                await self.coll.insert_one(encoded[0], **_sent(hint=False))
            except (PyMongoError, DocumentTooLarge) as exc:
                raise _driver_error(exc, f"insert into {self.spec.name!r}") from None
            return
        async with self.store.section(session, transaction=False) as s:
            client_session = s.check()
            if session is not None:
                # Inside a caller's transaction a failed write would abort all of it: find an
                # existing key first, so DuplicateKey leaves the transaction usable.
                ids = [d["_id"] for d in encoded]
                try:
                    found = await self.coll.find_one(
                        {"_id": {"$in": ids}}, {"_id": 1}, session=client_session
                    )
                except PyMongoError as exc:
                    raise _driver_error(exc, f"insert into {self.spec.name!r}", s) from None
                if found is not None:
                    raise DuplicateKey(
                        f"key {found['_id']!r} exists in {self.spec.name!r}", key=found["_id"]
                    )
            try:
                await self.coll.insert_many(
                    encoded, ordered=True, session=client_session, **_sent(hint=False)
                )
            except (PyMongoError, DocumentTooLarge) as exc:
                raise _driver_error(exc, f"insert into {self.spec.name!r}", s) from None

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        async with self.store.section(session, transaction=False) as s:
            try:
                if len(pairs) == 1:
                    new = self.encode(pairs[0][1])
                    await self.coll.replace_one(
                        {"_id": new["_id"]}, new, session=s.check(), **_sent(hint=False)
                    )
                else:
                    ops = [
                        ReplaceOne({"_id": n["_id"]}, n)
                        for n in map(self.encode, (p[1] for p in pairs))
                    ]
                    await self.coll.bulk_write(
                        ops, ordered=True, session=s.check(), **_sent(hint=False)
                    )
            except (PyMongoError, DocumentTooLarge) as exc:
                raise _driver_error(exc, f"update of {self.spec.name!r}", s) from None

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        ids = [self.stored_key_of(doc) for doc in docs]
        async with self.store.section(session, transaction=False) as s:
            try:
                await self.coll.delete_many(
                    {"_id": {"$in": ids}}, session=s.check(), **_sent(hint=False)
                )
            except PyMongoError as exc:
                raise _driver_error(exc, f"delete from {self.spec.name!r}", s) from None

    def atomic(self, session: Session | None) -> Any:
        return self.store.section(session, transaction=False)

    # --- native shortcuts ------------------------------------------------------------------

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        """The point read: ``find_one`` on ``_id`` (with a TTL, the expiry condition too)."""
        if self.spec.ttl is not None:
            return await super().get(key, session)
        if session is None:
            self.store.check_not_owner()
        by_id = {"_id": self.stored_key(key)}
        try:
            raw = await self.plain_coll.find_one(by_id, session=_session_of(session))
            if raw is not None and not _narrowed(raw):
                raw = await self.coll.find_one(by_id, session=_session_of(session))
        except PyMongoError as exc:
            raise _driver_error(exc, f"query on {self.spec.name!r} failed", session) from None
        return None if raw is None else self.decode(raw)

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        query = Query(self.visible(node))
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        if plan.residual_node is not None:
            return await super().count(node, session, allow_scan=allow_scan)
        if session is None:
            self.store.check_not_owner()
        find: Find = plan.payload
        try:
            return await self.coll.count_documents(
                find.filter, session=_session_of(session), **_sent()
            )
        except PyMongoError as exc:
            raise _driver_error(exc, f"count on {self.spec.name!r} failed", session) from None

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
        """On the server in one round trip when the filter is exact there and the update is
        one the server applies exactly as asyncdb (``native_update``); else read, apply and
        write back in a transaction (the shared implementation)."""
        native = native_update(update, self.spec) if self.spec.ttl is None else None
        query = Query(self.visible(node), sort=sort, limit=None if multi else 1)
        plan = self.execution_plan(query)
        where: Native | None = plan.payload.filter if plan.residual_node is None else None
        if upsert:
            where = upsert_filter(node, self.spec) if where is not None else None
        if native is None and where is not None and update.positional and not return_document:
            done = await self._positional(node, update, where, multi, upsert, sort, session)
            if done is not None:
                return done
        if native is None or where is None or (sort and not sort_pushable(sort)):
            return await self._settled(
                lambda: super(MongoCollection, self).update(
                    node,
                    update,
                    multi=multi,
                    upsert=upsert,
                    session=session,
                    allow_scan=allow_scan,
                    sort=sort,
                    return_document=return_document,
                ),
                session,
                f"an update of {self.spec.name!r}",
            )
        self.check_scan(plan, query, allow_scan)
        if session is None:
            self.store.check_not_owner()
        backoff = ContentionBackoff(f"an update of {self.spec.name!r}")
        while True:
            try:
                return await self._native_update(
                    node, update, native, where, multi, upsert, sort, return_document, session
                )
            except (PyMongoError, DocumentTooLarge) as exc:
                # outside a transaction a write conflict (a lost race for the document, rolled
                # back by the server) is retried with back-off, as MongoDB itself does
                if (
                    session is not None
                    or not isinstance(exc, PyMongoError)
                    or not _write_conflict(exc)
                ):
                    error = _driver_error(exc, f"update of {self.spec.name!r}", session)
                    # the server refused it (not a lost connection): was the result too large?
                    if (
                        type(error) is BackendError
                        and session is None
                        and isinstance(exc, OperationFailure)
                    ):
                        await self._refuse_growth(update, where, sort, error)
                    raise error from None
                await backoff.lost()

    async def _positional(
        self,
        node: Node,
        update: Update,
        where: Native,
        multi: bool,
        upsert: bool,
        sort: Sort,
        session: Session | None,
    ) -> tuple[UpdateResult, Doc | None] | None:
        """A positional update of one document by key on the server (``native_positional``),
        or None: it runs in process (also when the guarded filter matched nothing: the
        document may be missing, or hold a non-array where MongoDB fails the update)."""
        if multi or upsert or sort or self.spec.ttl is not None:
            return None
        keys = key_lookup(node, self.spec)
        native = native_positional(update, self.spec, self.planner)
        if native is None or keys is None or len(keys) != 1:
            return None
        spec, array_filters, guard = native
        if session is None:
            self.store.check_not_owner()
        guarded = {"$and": [where, guard]} if where else guard
        try:
            one = await self.coll.update_one(
                guarded,
                spec,
                array_filters=array_filters or None,
                session=_session_of(session),
                **_sent(),
            )
        except (PyMongoError, DocumentTooLarge) as exc:
            if session is None and isinstance(exc, PyMongoError) and _write_conflict(exc):
                return None  # lost a race: the in-process path retries with back-off
            raise _driver_error(exc, f"update of {self.spec.name!r}", session) from None
        if not one.matched_count:
            return None
        return UpdateResult(one.matched_count, one.modified_count), None

    async def _native_update(
        self,
        node: Node,
        update: Update,
        native: Native,
        where: Native,
        multi: bool,
        upsert: bool,
        sort: Sort,
        return_document: str | None,
        session: Session | None,
    ) -> tuple[UpdateResult, Doc | None]:
        """One native update (the server applies it); a driver error is raised as is."""
        client_session = _session_of(session)
        if multi:
            many = await self.coll.update_many(
                where, native, upsert=upsert, session=client_session, **_sent()
            )
            return self._native_result(
                many.matched_count, many.modified_count, many.upserted_id
            ), None
        if not sort and return_document is None:
            one = await self.coll.update_one(
                where, native, upsert=upsert, session=client_session, **_sent()
            )
            return self._native_result(one.matched_count, one.modified_count, one.upserted_id), None
        # the document before the update; the one after is the applier's (the server's
        # is the same for these updates)
        before = await self.coll.find_one_and_update(
            where,
            native,
            sort=self.planner.native_sort(sort) or None,
            upsert=upsert,
            return_document=ReturnDocument.BEFORE,
            session=client_session,
            **_sent(),
        )
        if before is None:
            if not upsert:
                return UpdateResult(0, 0), None
            result = self._native_result(0, 0, where["_id"])
            new = apply_update(update, upsert_seed(node), is_insert=True)
            return result, new if return_document == "after" else None
        old = self.decode(before)
        new = apply_update(update, old)
        modified = int(not strict_equal(old, new))
        chosen = old if return_document == "before" else new
        return UpdateResult(1, modified), chosen

    async def _refuse_growth(
        self, update: Update, where: Native, sort: Sort, error: BackendError
    ) -> None:
        """A native update refused with an error that does not say why (a findAndModify whose
        result is over 16 MB can come back as a bare internal error): if applying the update
        to the document it matched gives one MongoDB cannot hold, it is that QueryError, as
        for an insert. One read, only after the write failed (nothing was applied); outside
        transactions, whose documents a read of its own would not see."""
        try:
            raw = await self.coll.find_one(where, sort=self.planner.native_sort(sort) or None)
        except PyMongoError:
            return
        if raw is None:
            return
        try:
            self.check_document(apply_update(update, self.decode(raw)))
        except QueryError as exc:
            raise QueryError(f"{exc} (the update's result; the server said: {error})") from None
        except AsyncDBError:
            return

    async def _settled(
        self, write: Callable[[], Awaitable[T]], session: Session | None, what: str
    ) -> T:
        """``write`` (outside a transaction, a write section of its own), retried with back-off
        while it loses a write conflict to another client's section; in a transaction the
        conflict is the caller's (it retries the transaction)."""
        if session is not None:
            return await write()
        backoff = ContentionBackoff(what)
        while True:
            try:
                return await write()
            except _WriteConflict:
                await backoff.lost()

    @staticmethod
    def _native_result(matched: int, modified: int, upserted: Any) -> UpdateResult:
        if upserted is None:
            return UpdateResult(matched, modified)
        return UpdateResult(0, 0, upserted)

    async def delete(
        self,
        node: Node,
        *,
        multi: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        raw: bool = False,
    ) -> int:
        query = Query(node if raw else self.visible(node))
        plan = self.execution_plan(query)
        if not multi or plan.residual_node is not None:
            return await self._settled(
                lambda: super(MongoCollection, self).delete(
                    node, multi=multi, session=session, allow_scan=allow_scan, raw=raw
                ),
                session,
                f"a delete from {self.spec.name!r}",
            )
        self.check_scan(plan, query, allow_scan)
        find: Find = plan.payload
        if session is None:
            self.store.check_not_owner()
        try:
            result = await self.coll.delete_many(
                find.filter, session=_session_of(session), **_sent()
            )
        except PyMongoError as exc:
            raise _driver_error(exc, f"delete from {self.spec.name!r}", session) from None
        return int(result.deleted_count)

    # --- breadth: native bulk writes ----------------------------------------------------------

    def _bulk_model(self, op: WriteOp) -> Any:
        """The PyMongo write model of ``op`` when the server applies it exactly as asyncdb
        (the rules of ``update``/``delete`` above), else None."""
        if op.kind == "insert":
            assert op.doc is not None
            return InsertOne(self.encode(op.doc))
        assert op.node is not None
        plan = self.execution_plan(Query(self.visible(op.node), limit=None if op.multi else 1))
        if plan.residual_node is not None:
            return None
        where: Native = plan.payload.filter
        if op.kind == "delete":
            return (DeleteMany if op.multi else DeleteOne)(where, hint=_op_hint(op))
        assert op.update is not None
        native = native_update(op.update, self.spec)
        if op.upsert:
            upsert_where = upsert_filter(op.node, self.spec)
            if upsert_where is None:
                return None
            where = upsert_where
        if native is None:
            return None
        return (UpdateMany if op.multi else UpdateOne)(
            where, native, upsert=op.upsert, hint=_op_hint(op)
        )

    async def bulk_batch(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
        session: Session | None,
    ) -> int:
        """A run of operations the server applies exactly as asyncdb goes out as one
        ``bulk_write`` (the driver splits it by the server's batch limits); per-operation
        failures come back as its write errors. Outside transactions and TTL collections (there
        a failed write would abort the transaction, and inserts purge expired keys first)."""
        if session is not None or self.spec.ttl is not None:
            return 0
        start = progress.next
        models: list[Any] = []
        for op in ops[start:]:
            model = self._bulk_model(op)
            if model is None:
                break
            models.append(model)
        if not models:
            return 0
        self.store.check_not_owner()
        try:
            done = await self.coll.bulk_write(models, ordered=ordered, **_sent(hint=False))
            reply: Any = done.bulk_api_result
            failures: list[dict[str, Any]] = []
        except BulkWriteError as exc:
            reply = exc.details
            failures = list(reply.get("writeErrors") or ())
        except PyMongoError as exc:
            raise _driver_error(exc, f"bulk write to {self.spec.name!r}") from None
        progress.inserted += int(reply.get("nInserted", 0))
        progress.matched += int(reply.get("nMatched", 0))
        progress.modified += int(reply.get("nModified", 0))
        progress.deleted += int(reply.get("nRemoved", 0))
        for upserted in reply.get("upserted") or ():
            progress.upserted[start + int(upserted["index"])] = upserted["_id"]
        for failure in failures:
            index = start + int(failure["index"])
            code, message = int(failure.get("code", 0)), str(failure.get("errmsg", ""))
            if code in _DUPLICATE_CODES:
                error: Exception = DuplicateKey(f"bulk write to {self.spec.name!r}: {message}")
            elif _too_large(code, failure.get("codeName"), message):
                error = QueryError(
                    f"bulk write to {self.spec.name!r}: MongoDB refused the result as too large "
                    f"(16 MB a document): {message[:200]}"
                )
            else:
                error = UpdateError(f"bulk write to {self.spec.name!r}: {message}")
            progress.errors.append((index, error))
        if ordered and failures:
            progress.next = progress.errors[-1][0] + 1
        else:
            progress.next = start + len(models)
        return len(models)

    async def drop(self) -> None:
        """The collection with its indexes (``drop``)."""
        self.store.check_not_owner()
        try:
            await self.coll.drop()
        except PyMongoError as exc:
            raise _driver_error(exc, f"cannot drop {self.spec.name!r}") from None

    async def estimated_count(self) -> int:
        """``estimatedDocumentCount``: the collection's metadata count (current, but it may
        include documents past their TTL that the server has not removed yet)."""
        self.store.check_not_owner()
        try:
            return int(await self.coll.estimated_document_count(**_sent(hint=False)))
        except PyMongoError as exc:
            raise _driver_error(exc, f"count on {self.spec.name!r} failed") from None

    # --- aggregation: the whole pipeline on the server where it answers as asyncdb ---------

    def _native_pipeline(self, pipeline: Pipeline) -> list[dict[str, Any]] | None:
        """The server's pipeline: the leading ``$match`` as the planner sends a find's filter
        (the key as ``_id``), ``_id`` dropped (the pipeline sees asyncdb's document), then the
        other stages as parsed. None when the filter leaves a residual or a stage is one where
        SecantusDB answers differently (``server_agrees``): then only the find runs here."""
        match, rest = first_match(pipeline)
        node = match.filter if match is not None else MatchAll()
        plan = self.execution_plan(Query(self.visible(node)))
        if plan.residual_node is not None or not server_agrees(rest, self.planner):
            return None
        find: Find = plan.payload
        native: list[dict[str, Any]] = [{"$match": find.filter}] if find.filter else []
        if self.spec.key != ("_id",):
            native.append({"$project": {"_id": 0}})
        return native + server_stages(rest)

    async def aggregate(
        self, pipeline: Pipeline, session: Session | None, *, allow_scan: bool | None = None
    ) -> AsyncIterator[Doc]:
        native = self._native_pipeline(pipeline)
        if native is None:
            return await super().aggregate(pipeline, session, allow_scan=allow_scan)
        query = self._pushdown_query(split_find(pipeline))
        query = Query(self.visible(query.filter), query.sort, query.skip, query.limit)
        self.check_scan(self.execution_plan(query), query, allow_scan)
        if session is None:
            self.store.check_not_owner()
        return self._run_pipeline(pipeline, native, session, allow_scan)

    async def _run_pipeline(
        self,
        pipeline: Pipeline,
        native: list[dict[str, Any]],
        session: Session | None,
        allow_scan: bool | None,
    ) -> AsyncIterator[Doc]:
        sent = False
        try:
            cursor = await self.coll.aggregate(
                native, session=_session_of(session), batchSize=_BATCH_SIZE, **_sent()
            )
            async with cursor:
                async for raw in cursor:
                    sent = True
                    yield raw
            return
        except OperationFailure as exc:
            if exc.has_error_label("TransientTransactionError") or exc.has_error_label(
                "RetryableWriteError"
            ):
                raise _driver_error(exc, f"aggregate on {self.spec.name!r}", session) from None
            if exc.code != _INTERNAL_ERROR or sent:
                # an expression the data does not fit ($add of a string, $divide by zero)
                message = (exc.details or {}).get("errmsg", str(exc))
                raise EvaluationError(f"the pipeline failed on the server: {message}") from None
        except PyMongoError as exc:
            raise _driver_error(exc, f"aggregate on {self.spec.name!r}", session) from None
        # SecantusDB fails a 64-bit overflow in $sum/$avg with InternalError where MongoDB
        # widens to a double: before any result was sent, the pipeline runs in process instead.
        async for doc in await super().aggregate(pipeline, session, allow_scan=allow_scan):
            yield doc

    def explain_aggregate(self, pipeline: Pipeline) -> Plan:
        native = self._native_pipeline(pipeline)
        if native is None:
            return super().explain_aggregate(pipeline)
        match, _ = first_match(pipeline)
        node = match.filter if match is not None else MatchAll()
        plan = self.explain(Query(node))
        return dataclasses.replace(plan, native={"aggregate": native, "in process": []})

    async def server_explain(self, plan: Plan) -> dict[str, Any]:
        """The server's own ``explain`` of a plan's native ``find``."""
        find: Find = plan.payload
        cursor = self.coll.find(
            find.filter, sort=find.sort or None, skip=find.skip, limit=find.limit
        )
        try:
            return dict(await cursor.explain())
        except PyMongoError as exc:
            raise _driver_error(exc, f"explain on {self.spec.name!r} failed") from None


__all__ = ["CODEC", "MongoCollection", "MongoSession", "MongoStore"]
