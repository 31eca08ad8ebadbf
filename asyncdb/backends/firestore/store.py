"""``firestore://project-id?emulator_host=host:port``: one Firestore collection per asyncdb
collection, one document per asyncdb document, the key encoded into the document id.

Writes are optimistic and atomic: a write section (one update, delete or upsert) or a user
transaction reads documents while remembering each one's ``update_time``, buffers its writes
(later reads inside it see them), and commits them in one atomic commit where every write carries
a precondition: ``exists=False`` for a new document, ``update_time`` as read for a replaced or
deleted one. A user transaction also verifies every document it read and did not write (an empty
update, or for a missing document a delete, with the same precondition), so a commit fails if
anything it read has changed. A failed precondition retries a single operation from the start;
in a user transaction it raises :class:`~asyncdb.TransactionError` for the caller to retry
(Firestore's own transactions lock documents read, and 20 concurrent ones on one document wait
for a lock timeout each round on the emulator). Known limit: a query inside a transaction does
not lock its range, so a document inserted concurrently that would have matched is not detected.

``insert_many`` of up to 500 documents is one atomic commit of creates; a larger one is committed
in batches of 500 after checking that no key exists, and a batch that still meets an existing
key deletes the batches written before it and raises DuplicateKey.

>>> import asyncdb
>>> # db = await asyncdb.connect("firestore://demo-test?emulator_host=127.0.0.1:8080")
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from google.api_core import exceptions as gexc
from google.api_core import retry_async
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore import AsyncClient
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_query import And as FsAnd
from google.cloud.firestore_v1.base_query import BaseFilter, FieldFilter
from google.cloud.firestore_v1.base_query import Or as FsOr
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import common
from google.cloud.firestore_v1.types import document as document_pb
from google.cloud.firestore_v1.types import write as write_pb

from asyncdb.backends.base import (
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    key_lookup,
    key_of,
    path_bytes,
)
from asyncdb.backends.firestore.codec import SORT_ASC, decode_doc, doc_id, encode_doc, sort_field
from asyncdb.backends.firestore.planner import FirestorePlanner, FirestoreQuery, Tree
from asyncdb.bulk import BulkProgress, WriteOp
from asyncdb.errors import (
    BackendError,
    ConfigurationError,
    DuplicateKey,
    NotSupported,
    QueryError,
    TransactionError,
)
from asyncdb.query.ast import MatchAll, Node, Sort, Update
from asyncdb.query.limits import StoreLimits, value_depth
from asyncdb.resilience import (
    CONTENTION,
    MAYBE_APPLIED,
    ContentionBackoff,
    DocumentTurns,
    Transient,
    WriteStamp,
    classify_os_error,
    error_chain,
)
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query, UpdateResult

BATCH_LIMIT = 500  # writes in one Firestore commit
# A document's write stamp (asyncdb.resilience.WriteStamp), a hidden field the decoder drops
# ("$w" is no field path, so no sort field has this name). The SDK resends a commit on
# UNAVAILABLE (a connection lost before the reply); the resend fails its precondition, and the
# stamps read back tell whether the first attempt is the one that committed.
STAMP = SORT_ASC + "$w"


def _too_large(exc: BaseException) -> bool:
    """A request over a size limit (gRPC's message size, Firestore's document or request
    size): it cannot succeed, so it is neither retried nor a sign of an outage."""
    text = str(exc).lower()
    return isinstance(exc, gexc.ResourceExhausted | gexc.InvalidArgument) and (
        "larger than" in text or "too large" in text or "exceeds" in text or "size" in text
    )


def _commit_retry(resends: list[Exception]) -> retry_async.AsyncRetry:
    """The SDK's own commit retry (UNAVAILABLE and RESOURCE_EXHAUSTED), without the requests
    that are too large (those fail at once), noting in ``resends`` each error it resends after:
    only a resent commit can meet its own first attempt."""
    return retry_async.AsyncRetry(
        predicate=lambda exc: (
            isinstance(exc, gexc.ServiceUnavailable | gexc.ResourceExhausted)
            and not _too_large(exc)
        ),
        initial=0.1,
        maximum=60.0,
        multiplier=1.3,
        timeout=60.0,
        on_error=resends.append,
    )


def _refused_as_too_large(exc: BaseException, what: str) -> QueryError:
    return QueryError(
        f"{what}: Firestore refused it as too large (1 MiB a document, 10 MiB a request): {exc}"
    )


class WriteConflict(TransactionError):
    """A precondition failed at commit: something read has changed since."""


@dataclass
class _Pending:
    collection: str
    doc: Doc | None  # the new content; None deletes
    stored: dict[str, Any] | None = None  # ``doc`` as written (codec form, hidden fields)


class FirestoreSession(Session):
    """Reads remembered (path -> update_time, None when read as missing) and buffered writes."""

    def __init__(self, *, transaction: bool) -> None:
        self.in_transaction = transaction
        self.versions: dict[str, datetime | None] = {}
        self.stamps: dict[str, str | None] = {}  # path -> write stamp as read
        self.pending: dict[str, _Pending] = {}
        self.open = True
        self.token = WriteStamp.token()  # carried by every document this session writes

    def check(self) -> None:
        if not self.open:
            raise TransactionError("this transaction has already finished")

    def remember(
        self, path: str, update_time: datetime | None, data: Mapping[str, Any] | None = None
    ) -> None:
        if path not in self.versions:
            self.versions[path] = update_time
            self.stamps[path] = None if data is None else data.get(STAMP)

    def stamped(self, path: str, stored: dict[str, Any]) -> dict[str, Any]:
        """``stored`` (a document in codec form) with the stamp of this session's write."""
        stored[STAMP] = WriteStamp.decode(self.stamps.get(path)).next(self.token).encode()
        return stored

    def has_pending(self, collection: str) -> bool:
        return any(p.collection == collection for p in self.pending.values())

    def writes(self) -> list[write_pb.Write]:
        """The commit: buffered writes with their preconditions, and in a transaction the
        verification of every document read and not written."""
        out: list[write_pb.Write] = []
        for path, pending in self.pending.items():
            known = path in self.versions
            version = self.versions.get(path)
            if pending.doc is None:
                if known and version is None:
                    if self.in_transaction:
                        out.append(_verify_missing(path))
                    continue  # created and deleted inside: nothing to write
                write = write_pb.Write(delete=path)
            else:
                write = write_pb.Write(
                    update=document_pb.Document(
                        name=path, fields=_helpers.encode_dict(pending.stored)
                    )
                )
            if not known or version is None:
                write.current_document = common.Precondition(exists=False)
            else:
                write.current_document = common.Precondition(update_time=version)
            out.append(write)
        if self.in_transaction:
            for path, version in self.versions.items():
                if path in self.pending:
                    continue
                if version is None:
                    out.append(_verify_missing(path))
                else:
                    out.append(
                        write_pb.Write(
                            update=document_pb.Document(name=path),
                            update_mask=common.DocumentMask(field_paths=[]),
                            current_document=common.Precondition(update_time=version),
                        )
                    )
        return out


def _verify_missing(path: str) -> write_pb.Write:
    return write_pb.Write(delete=path, current_document=common.Precondition(exists=False))


def _driver_error(exc: gexc.GoogleAPICallError, what: str) -> Exception:
    return BackendError(f"{what}: {exc.message if hasattr(exc, 'message') else exc}")


def to_filter(tree: Tree) -> BaseFilter:
    """The driver's filter for a planner tree."""
    if tree[0] == "f":
        _, name, op, value = tree
        return FieldFilter(FieldPath(name).to_api_repr(), op, value)
    parts = [to_filter(p) for p in tree[1]]
    return FsOr(parts) if tree[0] == "or" else FsAnd(parts)


class FirestoreStore(Store):
    """The Firestore backend (see the module docstring)."""

    name = "firestore"
    network = True
    capabilities = Capabilities(
        transactions=True,
        conditional_writes=True,
        ttl=True,
        secondary_indexes=True,
        unique_indexes=False,
        server_side_sort=True,
        regex_pushdown=False,
        keyset_pagination=True,
        bulk_insert=True,
    )

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.owners: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.turns = DocumentTurns()  # this process's writers of one document take turns

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        parts = urlsplit(url)
        project = parts.netloc
        if not project:
            raise ConfigurationError("a Firestore URL names its project: firestore://project-id")
        query = dict(parse_qsl(parts.query))
        for key in [*query, *options]:
            if key not in ("emulator_host", "database"):
                raise ConfigurationError(f"unknown Firestore option {key!r}")
        merged = {**query, **options}
        emulator = merged.get("emulator_host") or os.environ.get("FIRESTORE_EMULATOR_HOST")
        database = merged.get("database") or None
        if emulator:
            client = AsyncClient(
                project=project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                database=database,
            )
            client._emulator_host = emulator  # the driver reads it from the environment only
        else:
            client = AsyncClient(project=project, database=database)
        return cls(client)

    async def ping(self) -> None:
        """A read of one (absent) document."""
        await self.client.collection("asyncdb_ping").document("ping").get()

    def classify_error(self, exc: BaseException) -> Transient | None:
        """ABORTED (a contention abort, rolled back) and RESOURCE_EXHAUSTED: not applied.
        UNAVAILABLE and DEADLINE_EXCEEDED: maybe applied."""
        for err in error_chain(exc):
            if _too_large(err):
                return None
            if isinstance(err, gexc.Aborted | gexc.TooManyRequests):
                return CONTENTION
            if isinstance(err, gexc.ServiceUnavailable | gexc.DeadlineExceeded):
                return MAYBE_APPLIED
        return classify_os_error(exc)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # AsyncClient.close() only closes an HTTP session: the gRPC channel is closed here.
        api = self.client._firestore_api_internal
        if api is not None:
            with suppress(Exception):  # closing twice or a channel that never connected
                await api.transport.close()
        self.client.close()  # type: ignore[no-untyped-call]

    def collection(self, spec: CollectionSpec) -> FirestoreCollection:
        # Firestore's collection id rules: no "/", not "." or "..", not matching __.*__; the
        # first two cannot pass asyncdb's own names ([A-Za-z0-9_-]), the last is checked here.
        if _RESERVED_ID.fullmatch(spec.name):
            raise ConfigurationError(f"Firestore reserves collection ids like {spec.name!r}")
        return FirestoreCollection(self, spec)

    def check_not_owner(self) -> None:
        """Work outside the transaction this task holds would not see its writes: say so."""
        task = asyncio.current_task()
        if task is not None and task in self.owners:
            raise TransactionError(
                "this task has a transaction open: use tx.collection(name) inside it"
            )

    async def commit(self, session: FirestoreSession) -> None:
        writes = session.writes()
        session.open = False
        if not writes:
            return
        batch = self.client.batch()
        batch._add_write_pbs(writes)
        resends: list[Exception] = []
        try:
            await batch.commit(retry=_commit_retry(resends))
        except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound, gexc.Aborted) as exc:
            if resends and await self.committed(session.pending):
                return  # the SDK resent the commit and met its own writes: committed once
            raise WriteConflict(f"the transaction conflicted with another write: {exc}") from None
        except gexc.GoogleAPICallError as exc:
            if _too_large(exc):
                raise _refused_as_too_large(exc, "commit") from None
            raise _driver_error(exc, "commit failed") from None

    async def committed(self, pending: Mapping[str, _Pending]) -> bool:
        """Whether a resent commit that failed a precondition had already been applied: one of
        its documents (a commit is atomic) holds the stamp it wrote; a commit of deletes only,
        when every one of its documents is gone."""
        written = [(path, p.stored) for path, p in pending.items() if p.stored is not None]
        paths = [path for path, _stored in written[:1]] or list(pending)
        refs = [self.client.document(path.split("/documents/", 1)[1]) for path in paths]
        try:
            snaps = [snap async for snap in self.client.get_all(refs)]
        except gexc.GoogleAPICallError as exc:
            raise _driver_error(exc, "reading back a conflicting commit failed") from None
        if not written:
            return bool(snaps) and not any(snap.exists for snap in snaps)
        _path, stored = written[0]
        snap = snaps[0]
        if not snap.exists:
            return False
        current = WriteStamp.decode((snap.to_dict() or {}).get(STAMP))
        return current.proves(WriteStamp.decode(stored[STAMP]))

    @asynccontextmanager
    async def section(
        self, session: Session | None, *, transaction: bool
    ) -> AsyncIterator[FirestoreSession]:
        """A write section or a user transaction; inside an open one, that one."""
        if session is not None:
            assert isinstance(session, FirestoreSession)
            session.check()
            yield session
            return
        self.check_not_owner()
        own = FirestoreSession(transaction=transaction)
        task = asyncio.current_task()
        if transaction and task is not None:
            self.owners.add(task)
        try:
            try:
                yield own
            except BaseException:
                own.open = False
                raise
            await self.commit(own)
        finally:
            if transaction and task is not None:
                self.owners.discard(task)

    def transaction(self) -> Any:
        return self.section(None, transaction=True)

    def native_writes(self, statement: Any) -> bool:
        raise NotSupported(
            "Firestore has no textual statement language: its queries are the SDK's structured "
            "queries, which asyncdb's filters already compile to"
        )


_RESERVED_ID = re.compile("__.*__", re.DOTALL)
_GET_CHUNK = 500  # documents one batch get asks for


def _firestore_size(value: Any) -> int:
    """The storage size Firestore counts for a value (its documented rules)."""
    t = type(value)
    if t is str:
        return len(value.encode()) + 1
    if t is dict:
        return sum(len(k.encode()) + 1 + _firestore_size(v) for k, v in value.items())
    if t is list:
        return sum(map(_firestore_size, value))
    if t is bytes:
        return len(value)
    if value is None or t is bool:
        return 1
    return 8  # numbers, timestamps


class FirestoreCollection(StoreCollection):
    """One Firestore collection."""

    store: FirestoreStore
    # A document of 1 MiB as Firestore counts it, maps and arrays at most 20 levels deep (as
    # stored: an array inside an array is a map holding an array).
    limits = StoreLimits(document_bytes=1024 * 1024, depth=20, path_bytes=1500)

    def stored_size(self, doc: Doc) -> int:
        name = len(self.spec.name.encode()) + len(doc_id(key_of(doc, self.spec)).encode()) + 18
        return name + _firestore_size(self._encode(doc)) + 32

    def stored_depth(self, doc: Doc) -> int:
        return value_depth(self._encode(doc))

    def stored_path_bytes(self, doc: Doc) -> int:
        return path_bytes(self._encode(doc))

    def __init__(self, store: FirestoreStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec
        self.planner = FirestorePlanner(spec)
        self.ref = store.client.collection(spec.name)

    async def ensure(self) -> None:
        """Firestore collections exist with their first document; what is checked is that every
        stored document carries the hidden sort keys of this spec's key and index fields (an
        index declared on existing data): ``order_by`` would skip one lacking them."""
        try:
            if not [snap async for snap in self.ref.select([]).limit(1).stream()]:
                return  # empty (the common first use): one cheap query
            total = await self._count(self.ref)
            for path in self.planner.sort_paths:
                for direction in (1, -1):
                    name = FieldPath(sort_field(path, direction)).to_api_repr()
                    having = self.ref.where(filter=FieldFilter(name, ">=", b""))
                    if await self._count(having) != total:
                        await self._backfill()
                        return
        except gexc.GoogleAPICallError as exc:
            raise _driver_error(exc, f"cannot check {self.spec.name!r}") from None

    @staticmethod
    async def _count(query: Any) -> int:
        result = await query.count(alias="n").get()
        return int(result[0][0].value)

    async def _backfill(self) -> None:
        """Rewrite the documents lacking a hidden sort key (unless changed meanwhile)."""
        wanted = [sort_field(p, d) for p in self.planner.sort_paths for d in (1, -1)]
        writes: list[write_pb.Write] = []
        async for snap in self.ref.stream():
            data = snap.to_dict() or {}
            if all(name in data for name in wanted):
                continue
            doc = decode_doc(data)
            writes.append(
                write_pb.Write(
                    update=document_pb.Document(
                        name=snap.reference._document_path,
                        fields=_helpers.encode_dict(self._encode(doc)),
                    ),
                    current_document=common.Precondition(update_time=snap.update_time),
                )
            )
        for write in writes:  # one by one: a document changed meanwhile was rewritten anyway
            batch = self.store.client.batch()
            batch._add_write_pbs([write])
            with suppress(gexc.FailedPrecondition, gexc.NotFound):
                await batch.commit()

    def plan(self, query: Query) -> Plan:
        return self.planner.plan(query)

    def execution_plan(self, query: Query) -> Plan:
        """The lean plan (no residual rendering, which only ``explain()`` needs)."""
        return self.bounded_plan(query, lambda q: self.planner.plan(q, explain=False))

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        return self.planner.binder(query)

    def _encode(self, doc: Doc) -> dict[str, Any]:
        return encode_doc(doc, self.planner.sort_paths)

    def _path(self, ident: str) -> str:
        return f"{self.store.client._database_string}/documents/{self.spec.name}/{ident}"

    def _doc_path(self, doc: Doc) -> str:
        return self._path(doc_id(key_of(doc, self.spec)))

    async def _snapshots(self, payload: FirestoreQuery) -> AsyncIterator[Any]:
        try:
            if payload.ids is not None:
                ids = payload.ids
                for start in range(0, len(ids), _GET_CHUNK):  # a request holds at most 4 MB
                    refs = [self.ref.document(i) for i in ids[start : start + _GET_CHUNK]]
                    async for snap in self.store.client.get_all(refs):
                        yield snap
                return
            query: Any = self.ref
            if payload.where is not None:
                query = query.where(filter=to_filter(payload.where))
            order = [FieldPath(field).to_api_repr() for field in payload.order_by]
            for field in order:
                query = query.order_by(field)
            if payload.start_after is not None:
                query = query.start_after(dict(zip(order, payload.start_after, strict=True)))
            if payload.offset:
                query = query.offset(payload.offset)
            if payload.limit is not None:
                query = query.limit(payload.limit)
            async for snap in query.stream():
                yield snap
        except gexc.GoogleAPICallError as exc:
            raise _driver_error(exc, f"query on {self.spec.name!r} failed") from None

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        payload: FirestoreQuery = plan.payload
        if session is None:
            self.store.check_not_owner()
            async for snap in self._snapshots(payload):
                if snap.exists:
                    yield decode_doc(snap.to_dict())
            return
        assert isinstance(session, FirestoreSession)
        session.check()
        pending = {path: p for path, p in session.pending.items() if p.collection == self.spec.name}
        seen: set[str] = set()
        async for snap in self._snapshots(payload):
            path = snap.reference._document_path
            data = snap.to_dict() if snap.exists else None
            session.remember(path, snap.update_time if snap.exists else None, data)
            if path in pending:
                seen.add(path)
                new = pending[path].doc
                if new is not None:
                    yield dict(new)
            elif data is not None:
                yield decode_doc(data)
        wanted = None if payload.ids is None else {self._path(i) for i in payload.ids}
        for path, p in pending.items():
            if path in seen or p.doc is None or (wanted is not None and path not in wanted):
                continue
            yield dict(p.doc)

    async def _execute(
        self, plan: Plan, query: Query, session: Session | None, allow_scan: bool | None
    ) -> AsyncIterator[Doc]:
        if isinstance(session, FirestoreSession) and session.has_pending(self.spec.name):
            # Buffered writes may change what matches: re-check everything, sort in process.
            payload: FirestoreQuery = plan.payload
            residual = None if isinstance(query.filter, MatchAll) else query.filter
            plan = dataclasses.replace(
                plan,
                residual_node=residual,
                sort_pushed=False,
                limit_pushed=False,
                client_sort=bool(query.sort),
                payload=FirestoreQuery(ids=payload.ids, where=payload.where),
                # the residual is now the whole filter: the native part only narrows
            )
        async for doc in super()._execute(plan, query, session, allow_scan):
            yield doc

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        """The point read: one document get by id (with a TTL, the planned query)."""
        if self.spec.ttl is not None or session is not None:
            return await super().get(key, session)
        self.store.check_not_owner()
        try:
            snap = await self.ref.document(doc_id(key)).get()
        except gexc.GoogleAPICallError as exc:
            raise _driver_error(exc, f"read of {self.spec.name!r} failed") from None
        if not snap.exists:
            return None
        doc: Doc = decode_doc(snap.to_dict() or {})
        # {id: 1.0} never reaches here (not a key value); a stored key equals the asked one.
        return doc

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        """Firestore's count aggregation when nothing is left to re-check (outside sessions:
        a transaction's reads are validated at commit, so it reads the documents)."""
        query = Query(self.visible(node))
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        payload: FirestoreQuery = plan.payload
        if session is not None or plan.residual_node is not None or payload.ids is not None:
            return await super().count(node, session, allow_scan=allow_scan)
        self.store.check_not_owner()
        native: Any = self.ref
        if payload.where is not None:
            native = native.where(filter=to_filter(payload.where))
        try:
            return await self._count(native)
        except gexc.GoogleAPICallError as exc:
            raise _driver_error(exc, f"count on {self.spec.name!r} failed") from None

    async def _existing(self, paths: list[str], session: FirestoreSession) -> set[str]:
        """Which of these documents exist (buffered writes first), remembered in the session."""
        found: set[str] = set()
        unknown: list[str] = []
        for path in paths:
            pending = session.pending.get(path)
            if pending is not None:
                if pending.doc is not None:
                    found.add(path)
            elif path in session.versions:  # read in this session already
                if session.versions[path] is not None:
                    found.add(path)
            else:
                unknown.append(path)
        if unknown:
            refs = [self.ref.document(p.rsplit("/", 1)[1]) for p in unknown]
            try:
                async for snap in self.store.client.get_all(refs):
                    path = snap.reference._document_path
                    data = snap.to_dict() if snap.exists else None
                    session.remember(path, snap.update_time if snap.exists else None, data)
                    if snap.exists:
                        found.add(path)
            except gexc.GoogleAPICallError as exc:
                raise _driver_error(exc, f"read of {self.spec.name!r} failed") from None
        return found

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        paths = [self._doc_path(doc) for doc in docs]
        if session is not None:
            assert isinstance(session, FirestoreSession)
            session.check()
            existing = await self._existing(paths, session)
            for doc, path in zip(docs, paths, strict=True):
                if path in existing:
                    key = key_of(doc, self.spec)
                    raise DuplicateKey(f"key {key!r} exists in {self.spec.name!r}", key=key)
            for doc, path in zip(docs, paths, strict=True):
                stored = session.stamped(path, self._encode(doc))
                session.pending[path] = _Pending(self.spec.name, doc, stored)
            return
        self.store.check_not_owner()
        stamp = WriteStamp.NEW.next(WriteStamp.token()).encode()
        writes = [
            write_pb.Write(
                update=document_pb.Document(
                    name=path, fields=_helpers.encode_dict({**self._encode(doc), STAMP: stamp})
                ),
                current_document=common.Precondition(exists=False),
            )
            for doc, path in zip(docs, paths, strict=True)
        ]
        if len(writes) > BATCH_LIMIT:
            probe = FirestoreSession(transaction=False)
            existing = await self._existing(paths, probe)
            if existing:
                raise DuplicateKey(f"a key of the batch exists in {self.spec.name!r}")
        done: list[tuple[str, Any]] = []
        for start in range(0, len(writes), BATCH_LIMIT):
            chunk = writes[start : start + BATCH_LIMIT]
            batch = self.store.client.batch()
            batch._add_write_pbs(chunk)
            resends: list[Exception] = []
            try:
                results = await batch.commit(retry=_commit_retry(resends))
            except gexc.AlreadyExists as exc:
                first = chunk[0].update.name
                landed = {first: _Pending("", {}, {STAMP: stamp})}
                if resends and await self.store.committed(landed):
                    continue  # the SDK resent this batch after a lost reply: written once
                await self._undo(done)
                msg = f"a key of the batch exists in {self.spec.name!r}: {exc}"
                raise DuplicateKey(msg) from None
            except gexc.GoogleAPICallError as exc:
                await self._undo(done)
                if _too_large(exc):
                    raise _refused_as_too_large(exc, f"insert into {self.spec.name!r}") from None
                raise _driver_error(exc, f"insert into {self.spec.name!r} failed") from None
            done.extend((w.update.name, r.update_time) for w, r in zip(chunk, results, strict=True))

    async def _undo(self, done: list[tuple[str, Any]]) -> None:
        """Delete the documents of the batches already written (unless changed since)."""
        for start in range(0, len(done), BATCH_LIMIT):
            writes = [
                write_pb.Write(delete=path, current_document=common.Precondition(update_time=t))
                for path, t in done[start : start + BATCH_LIMIT]
            ]
            batch = self.store.client.batch()
            batch._add_write_pbs(writes)
            try:
                await batch.commit()
            except gexc.GoogleAPICallError:
                for write in writes:  # one by one: skip only the ones changed since
                    single = self.store.client.batch()
                    single._add_write_pbs([write])
                    with suppress(gexc.GoogleAPICallError):
                        await single.commit()

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        assert isinstance(session, FirestoreSession)
        session.check()
        for _old, new in pairs:
            path = self._doc_path(new)
            stored = session.stamped(path, self._encode(new))
            session.pending[path] = _Pending(self.spec.name, new, stored)

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        assert isinstance(session, FirestoreSession)
        session.check()
        for doc in docs:
            session.pending[self._doc_path(doc)] = _Pending(self.spec.name, None)

    async def find_and_delete(
        self,
        node: Node,
        *,
        sort: Sort = (),
        session: Session | None,
        allow_scan: bool | None = None,
    ) -> Doc | None:
        """Outside a transaction: pick, then delete by key if it still matches (a lost race
        picks again)."""
        if session is not None:
            return await super().find_and_delete(
                node, sort=sort, session=session, allow_scan=allow_scan
            )
        return await self._find_and_delete_checked(
            node, sort=sort, session=None, allow_scan=allow_scan
        )

    def atomic(self, session: Session | None) -> Any:
        return self.store.section(session, transaction=False)

    # --- single operations retried when a precondition fails --------------------------------

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
        if session is not None:
            return await super().update(
                node,
                update,
                multi=multi,
                upsert=upsert,
                session=session,
                allow_scan=allow_scan,
                sort=sort,
                return_document=return_document,
            )
        what = f"an update of {self.spec.name!r}"
        pinned = None if multi else key_lookup(node, self.spec)
        async with self.store.turns.of(self.spec.name, pinned, what):
            return await self._update_cas(
                node, update, multi, upsert, allow_scan, sort, return_document, what
            )

    async def _update_cas(
        self,
        node: Node,
        update: Update,
        multi: bool,
        upsert: bool,
        allow_scan: bool | None,
        sort: Sort,
        return_document: str | None,
        what: str,
    ) -> tuple[UpdateResult, Doc | None]:
        backoff = ContentionBackoff(what)
        while True:
            try:
                return await super().update(
                    node,
                    update,
                    multi=multi,
                    upsert=upsert,
                    session=None,
                    allow_scan=allow_scan,
                    sort=sort,
                    return_document=return_document,
                )
            except WriteConflict:
                await backoff.lost()

    async def delete(
        self,
        node: Node,
        *,
        multi: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        raw: bool = False,
    ) -> int:
        backoff = ContentionBackoff(f"a delete from {self.spec.name!r}")
        while True:
            try:
                return await super().delete(
                    node, multi=multi, session=session, allow_scan=allow_scan, raw=raw
                )
            except WriteConflict:
                if session is not None:
                    raise
                await backoff.lost()

    async def bulk_batch(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
        session: Session | None,
    ) -> int:
        """Outside a transaction, a run of updates and deletes by key is one write section:
        the documents read by key (``get_all``), the operations applied in order in process,
        and one batched commit of the changed documents, each with the update time read as its
        precondition: all of the run or none, read and redone when another writer won a race.
        Other operations go the shared way."""
        if session is None and self.spec.ttl is None and self._by_one_key(ops[progress.next]):
            backoff = ContentionBackoff(f"a bulk write to {self.spec.name!r}")
            while True:
                try:
                    return await self._bulk_by_key(ops, progress, ordered=ordered)
                except WriteConflict:  # nothing of the run was committed
                    await backoff.lost()
        return await super().bulk_batch(ops, progress, ordered=ordered, session=session)

    async def insert(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        backoff = ContentionBackoff(f"an insert into {self.spec.name!r}")
        while True:
            try:
                return await super().insert(docs, session)
            except WriteConflict:
                if session is not None:
                    raise
                await backoff.lost()


__all__ = ["FirestoreCollection", "FirestoreSession", "FirestoreStore", "to_filter"]
