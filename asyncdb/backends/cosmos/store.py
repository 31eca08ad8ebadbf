"""``cosmos://host:port/database?key=...&verify=false``: Azure Cosmos DB (NoSQL API).

One ``azure.cosmos.aio.CosmosClient`` per connected database. A collection is a container
partitioned on ``/pk`` (the encoded first key field); an item's ``id`` is the encoded key
(see codec.py). Reads run the SQL of planner.py; point reads by key use ``read_item``.

Writes:
- updates are atomic per document: read the item, apply the update, ``replace_item`` with
  ``If-Match: <etag>``; on 412 (another writer won) re-read and re-check the filter, so a
  concurrent update never overwrites or double-applies (``conditional_writes``).
- ``insert_many`` is all or nothing by compensation: items are created one by one and, if one
  fails, the ones already created are deleted before the error is raised. It is not isolated:
  a concurrent reader may briefly see part of a failed batch. (Real Cosmos DB offers a
  transactional batch within one partition; the test server lacks it, so it is not used.)
- no user transactions: ``transactions`` is not claimed and ``db.transaction()`` raises
  ``NotSupported``.
- ``update_many`` runs its per-document compare-and-set writes concurrently
  (``_WRITE_CONCURRENCY``); ``delete_one``/``delete_many`` query, then delete each item with
  ``If-Match`` on the ETag the query returned, concurrently: on 412 the item is re-read and
  deleted only if it still matches, so a document changed after the query is never deleted
  blindly. ``count_documents`` is one ``SELECT VALUE COUNT(1)`` when nothing is re-checked.

Not used, and why:
- PATCH (set/remove/incr): each item holds the document twice, ``raw`` (its exact text, one
  JSON string: the only copy that keeps types such as int vs float, dates, bytes, Decimal) and
  ``v`` (the queryable copy). A patch on ``v`` cannot edit inside ``raw``; keeping both
  consistent means ``set /raw`` to the whole new text, computed from the read we already did,
  so it saves no round trip and only the bytes of ``v``, while ``incr`` would make ``raw`` and
  ``v`` disagree under a concurrent writer unless guarded by the same ETag anyway. The
  ETag-guarded replace is exact and costs the same round trips, so it stays.
- continuation tokens for ``find_page``: sort is never pushed (Cosmos' mixed-type order is not
  BSON order) and pages are in key order, which Cosmos' unsorted query order is not, so every
  page needs the in-process sort; a server continuation would return the wrong next page.
- transactional batch for ``insert_many``: see above (cosmosdb-server does not make it atomic).

TTL: expired documents are never returned (the shared ``visible()`` filter, re-checked in
process) and ``purge_expired`` deletes them. With ``native_ttl=true`` in the URL (real Cosmos
DB), containers get ``defaultTtl=-1`` and each item a ``ttl`` in seconds, so the service also
deletes them; cosmosdb-server ignores both.

Gaps of the test server (cosmosdb-server) are listed in tests/servers/cosmos.py (SERVER_GAPS).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import orjson
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import (
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from asyncdb.backends.base import (
    BULK_RUN,
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    check_key,
    expired_filter,
    expiry_filter,
    key_lookup,
    key_of,
    native_params,
    new_id,
    sql_reads_only,
)
from asyncdb.backends.cosmos.codec import (
    ID,
    PARTITION,
    RAW,
    TTL,
    decode_item,
    decode_key_part,
    encode_item,
    encode_key,
    encode_key_part,
)
from asyncdb.backends.cosmos.planner import MAX_ID_LENGTH, CosmosQuery, binder, plan_query
from asyncdb.bulk import BulkProgress, WriteOp
from asyncdb.errors import (
    BackendError,
    ConfigurationError,
    DuplicateKey,
    QueryError,
    UpdateError,
)
from asyncdb.query.ast import Node, Sort, Update
from asyncdb.query.evaluate import matches
from asyncdb.query.limits import StoreLimits
from asyncdb.query.update import apply_update, strict_equal, upsert_seed
from asyncdb.resilience import (
    MAYBE_APPLIED,
    NOT_APPLIED,
    ContentionBackoff,
    DocumentTurns,
    Transient,
    WriteStamp,
    classify_os_error,
    error_chain,
)
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query, UpdateResult

# How many item writes one insert_many keeps in flight.
_WRITE_CONCURRENCY = 16
_FROM = re.compile(r"\bFROM\s+([A-Za-z0-9_-]+)", re.IGNORECASE)
# The projection of every planned query (planner.py); count swaps it for COUNT(1).
_SELECTED = f"SELECT c.{ID}, c._etag, c.{RAW} FROM c"
# How many ETags of recently read items a collection keeps for conditional updates.
_SEEN_ETAGS = 4096
# An item's write stamp (asyncdb.resilience.WriteStamp): the Cosmos SDK resends a write whose
# connection dropped before the reply; the resend then fails its If-Match (or meets its own
# item, 409) and the stamp read back tells whether the first attempt landed.
STAMP = "ws"
_STAMPED = f"c._etag, c.{RAW}, c.{STAMP} FROM c"


class CosmosSession(Session):
    """A write section: Cosmos offers no multi-item isolation here (see the module docstring)."""


def _error(exc: CosmosHttpResponseError, what: str) -> Exception:
    return BackendError(f"{what}: HTTP {exc.status_code}: {exc.message}")


def _holds(item: dict[str, Any], written: dict[str, Any]) -> bool:
    """Whether ``item`` (read back) holds the write ``written`` (its stamp)."""
    return WriteStamp.decode(item.get(STAMP)).proves(WriteStamp.decode(written[STAMP]))


# How many times the DELETE of the current ``_delete_if_unchanged`` went out: aiohttp itself
# resends a DELETE (an idempotent method) whose reused connection dropped before the reply,
# unseen by the SDK, and the SDK resends after some connection errors; a 404 after a resend
# is then the first attempt's own delete (as botocore's resend count tells on DynamoDB).
_DELETES_SENT: ContextVar[list[int] | None] = ContextVar("asyncdb_cosmos_deletes", default=None)


async def _delete_headers_sent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    sent = _DELETES_SENT.get()
    if sent is not None and params.method == "DELETE":
        sent[0] += 1


_DELETE_TRACE = aiohttp.TraceConfig()
_DELETE_TRACE.on_request_headers_sent.append(_delete_headers_sent)
_DELETE_TRACE.freeze()


def _maybe_missing(exc: CosmosHttpResponseError) -> bool:
    """404; or a 500, which cosmosdb-server answers for a missing item (confirm by a query)."""
    return exc.status_code in (404, 500)


class CosmosStore(Store):
    """A Cosmos DB database reached through ``azure.cosmos.aio``."""

    name = "cosmos"
    network = True
    capabilities = Capabilities(
        transactions=False,
        conditional_writes=True,
        ttl=True,
        secondary_indexes=True,  # Cosmos indexes every path by default
        unique_indexes=False,
        server_side_sort=False,
        regex_pushdown=False,
        keyset_pagination=True,
        bulk_insert=False,
    )

    def __init__(self, client: CosmosClient, database: DatabaseProxy, native_ttl: bool) -> None:
        self.client = client
        self.database = database
        self.native_ttl = native_ttl
        self.turns = DocumentTurns()  # this process's writers of one document take turns

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        database = unquote(parts.path.strip("/"))
        if not parts.hostname or not database:
            raise ConfigurationError("cosmos:// needs a host and a database: cosmos://host:port/db")
        key = query.get("key") or options.get("key")
        if not key:
            raise ConfigurationError("cosmos:// needs the account key: ?key=...")
        try:
            base64.b64decode(key, validate=True)
        except binascii.Error:
            raise ConfigurationError(
                "the Cosmos DB account key is not base64 (in a URL, write +, / and = as "
                "%2B, %2F and %3D)"
            ) from None
        verify = query.get("verify", "true").lower() not in ("false", "0", "no")
        native_ttl = query.get("native_ttl", "false").lower() in ("true", "1", "yes")
        port = f":{parts.port}" if parts.port else ""
        # endpoint_discovery=false: requests go to the URL's host only, not to the endpoints
        # the account reports (a proxy or a tunnel in front of the service)
        discovery = query.get("endpoint_discovery", "true").lower() not in ("false", "0", "no")
        # the SDK's own aiohttp session, plus a trace of the DELETEs it sends (_DELETES_SENT)
        session = aiohttp.ClientSession(
            trust_env=True,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trace_configs=[_DELETE_TRACE],
        )
        client = CosmosClient(
            f"https://{parts.hostname}{port}",
            credential=key,
            connection_verify=verify,
            enable_endpoint_discovery=discovery,
            transport=AioHttpTransport(
                session=session, session_owner=True, connection_verify=verify
            ),
        )
        try:
            proxy = await client.create_database_if_not_exists(database)
        except CosmosHttpResponseError as exc:
            await client.close()
            raise _error(exc, f"opening database {database!r}") from exc
        except AzureError as exc:  # no answer: refused, timed out, TLS
            await client.close()
            raise BackendError(
                f"cannot reach Cosmos DB at {parts.hostname}{port}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            await client.close()
            raise
        return cls(client, proxy, native_ttl)

    async def ping(self) -> None:
        """A read of the database resource."""
        await self.database.read()

    def classify_error(self, exc: BaseException) -> Transient | None:
        """429 (throttled; the ``x-ms-retry-after-ms`` hint is honoured): not applied. 503 and
        408: maybe applied."""
        for err in error_chain(exc):
            if isinstance(err, CosmosHttpResponseError):
                if err.status_code == 429:
                    headers = getattr(err, "headers", None) or {}
                    try:
                        after = float(headers.get("x-ms-retry-after-ms", "")) / 1000
                    except (TypeError, ValueError):
                        after = None
                    return Transient(maybe_applied=False, retry_after=after, contention=True)
                if err.status_code in (408, 503):
                    return MAYBE_APPLIED
            if isinstance(err, ServiceRequestError):  # the request was not sent
                return NOT_APPLIED
            if isinstance(err, ServiceResponseError):
                return MAYBE_APPLIED
        return classify_os_error(exc)

    async def close(self) -> None:
        await self.client.close()

    def collection(self, spec: CollectionSpec) -> CosmosCollection:
        return CosmosCollection(self, spec)

    # --- breadth: native queries ---------------------------------------------------------------

    def native_writes(self, statement: Any) -> bool:
        """Cosmos DB SQL only reads (``SELECT``); the container is the name after ``FROM``
        (in Cosmos DB SQL that name is only an alias, so it may as well say which container)."""
        if not sql_reads_only(statement, "Cosmos DB SQL") or _FROM.search(statement) is None:
            raise QueryError(
                "a native Cosmos DB statement is a SELECT naming its container after FROM, "
                "e.g. SELECT * FROM alerts a WHERE a.company = @company"
            )
        return False

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        """The query on the container named after FROM, across partitions; ``params`` maps
        ``@name`` to its value."""
        bound = native_params(params, mapping=True)
        if isinstance(bound, tuple) and bound:
            raise QueryError("Cosmos DB SQL parameters are named: pass a mapping of @name")
        match = _FROM.search(statement)
        assert match is not None
        container = self.database.get_container_client(match.group(1))
        parameters = [
            {"name": k if k.startswith("@") else f"@{k}", "value": v}
            for k, v in (bound.items() if isinstance(bound, dict) else ())
        ]
        try:
            return [
                dict(item) if isinstance(item, dict) else {"$1": item}  # SELECT VALUE ...
                async for item in container.query_items(query=statement, parameters=parameters)
            ]
        except CosmosHttpResponseError as exc:
            raise _error(exc, "native query") from exc


_POINT_READS = 50  # keys read one by one; more are read by queries of _IDS_CHUNK ids
_IDS_CHUNK = 5000


class CosmosCollection(StoreCollection):
    """One container."""

    store: CosmosStore
    # An item of 2 MB of JSON (both copies of the document); an id of 255 characters (the key,
    # encoded: see codec.encode_key).
    limits = StoreLimits(
        document_bytes=2 * 1024 * 1024, key_bytes=MAX_ID_LENGTH, filter_terms=100
    )  # longer queries overflow the query engine

    def stored_size(self, doc: Doc) -> int:
        return len(orjson.dumps(self._item(doc)))

    def key_size(self, key: KeyTuple) -> int:
        return len(encode_key(key))

    def __init__(self, store: CosmosStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec
        self._container: ContainerProxy | None = None
        # item id -> (ETag, raw) of the last read; "<etag>\n<write stamp>" when read with it
        self._seen: dict[str, tuple[str, str]] = {}

    @property
    def container(self) -> ContainerProxy:
        if self._container is None:
            self._container = self.store.database.get_container_client(self.spec.name)
        return self._container

    async def ensure(self) -> None:
        ttl = -1 if self.spec.ttl is not None and self.store.native_ttl else None
        try:
            self._container = await self.store.database.create_container_if_not_exists(
                id=self.spec.name, partition_key=PartitionKey(path=f"/{PARTITION}"), default_ttl=ttl
            )
        except CosmosHttpResponseError as exc:
            raise _error(exc, f"creating container {self.spec.name!r}") from exc

    def plan(self, query: Query) -> Plan:
        return plan_query(self.spec, query)

    def execution_plan(self, query: Query) -> Plan:
        """The lean plan (no filter rendering, which only ``explain()`` needs)."""
        return self.bounded_plan(query, lambda q: plan_query(self.spec, q, explain=False))

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        return binder(self.spec, query)

    # reads -----------------------------------------------------------------------------------

    async def _read_item(
        self, item_id: str, partition: str, *, again: bool = True
    ) -> dict[str, Any] | None:
        try:
            item: dict[str, Any] = await self.container.read_item(item_id, partition_key=partition)
        except CosmosHttpResponseError as exc:
            if exc.status_code == 404:
                return None
            if not _maybe_missing(exc):
                raise _error(exc, f"reading {item_id!r} from {self.spec.name!r}") from exc
            if await self._exists(item_id, partition):
                # A 500 for an item that exists: cosmosdb-server answers so for an item another
                # request is writing at that moment. A read changes nothing: read it once more.
                if again:
                    return await self._read_item(item_id, partition, again=False)
                raise _error(exc, f"reading {item_id!r} from {self.spec.name!r}") from exc
            return None
        return item

    async def _exists(self, item_id: str, partition: str) -> bool:
        """Whether an item exists, by query: tells a missing item from a real server error."""
        sql = f"SELECT VALUE c.{ID} FROM c WHERE c.{ID} = @id AND c.{PARTITION} = @pk"
        parameters: list[dict[str, Any]] = [
            {"name": "@id", "value": item_id},
            {"name": "@pk", "value": partition},
        ]
        try:
            async for _ in self.container.query_items(query=sql, parameters=parameters):
                return True
        except CosmosHttpResponseError as exc:
            raise _error(exc, f"looking up {item_id!r} in {self.spec.name!r}") from exc
        return False

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        native = plan.payload
        assert isinstance(native, CosmosQuery)
        if native.ids is not None and len(native.ids) > _POINT_READS:
            # many keys: a query per chunk of ids instead of a read per key
            for start in range(0, len(native.ids), _IDS_CHUNK):
                chunk = [i for i, _ in native.ids[start : start + _IDS_CHUNK]]
                try:
                    async for found in self.container.query_items(
                        query=f"SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.{ID})",
                        parameters=[{"name": "@ids", "value": chunk}],
                    ):
                        yield self._remember(found)
                except CosmosHttpResponseError as exc:
                    raise _error(exc, f"reading keys of {self.spec.name!r}") from exc
            return
        if native.ids is not None:
            for item_id, partition in native.ids:
                item = await self._read_item(item_id, partition)
                if item is not None:
                    yield self._remember(item)
            return
        # a write section's read also takes the write stamps (a plain find, which may stream
        # thousands of items, leaves them out)
        stamped = session is not None
        sql = native.sql.replace(f"c._etag, c.{RAW} FROM c", _STAMPED, 1) if stamped else native.sql
        try:
            async for item in self.container.query_items(
                query=sql, parameters=native.parameter_list()
            ):
                yield self._remember(item, stamped=stamped)
        except CosmosHttpResponseError as exc:
            raise _error(exc, f"querying {self.spec.name!r} ({native.sql})") from exc

    def _remember(self, item: dict[str, Any], *, stamped: bool = True) -> Doc:
        """Decode ``item`` and keep its ETag (and write stamp, when ``stamped``: read with it),
        so an update or delete of what was just read can be conditional without reading it
        again (a stale ETag only costs a 412 and a read)."""
        if len(self._seen) >= _SEEN_ETAGS:
            self._seen.clear()
        meta = f"{item['_etag']}\n{item.get(STAMP) or ''}" if stamped else item["_etag"]
        self._seen[item[ID]] = (meta, item[RAW])
        return decode_item(item)

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        item_id = encode_key(key)
        if len(item_id) > MAX_ID_LENGTH:
            return None  # no item has such an id (inserts refuse it): nothing to read
        item = await self._read_item(item_id, encode_key_part(key[0]))
        if item is None:
            return None
        doc = decode_item(item)
        expiry = expiry_filter(self.spec)
        return doc if expiry is None or matches(expiry, doc) else None

    async def count(
        self, node: Node, session: Session | None, *, allow_scan: bool | None = None
    ) -> int:
        """``SELECT VALUE COUNT(1)`` when the server evaluates the whole filter exactly (one
        round trip, no documents sent); otherwise count what ``find`` yields."""
        query = Query(self.visible(node))
        plan = self.execution_plan(query)
        native = plan.payload
        assert isinstance(native, CosmosQuery)
        if plan.residual_node is not None or native.ids is not None:
            return await super().count(node, session, allow_scan=allow_scan)
        self.check_scan(plan, query, allow_scan)
        sql = native.sql.replace(_SELECTED, "SELECT VALUE COUNT(1) FROM c", 1)
        try:
            async for n in self.container.query_items(
                query=sql, parameters=native.parameter_list()
            ):
                counted: Any = n  # a number: the SDK types every query result as a dict
                return int(counted)
        except CosmosHttpResponseError as exc:
            raise _error(exc, f"counting in {self.spec.name!r} ({sql})") from exc
        return 0

    # writes ----------------------------------------------------------------------------------

    def _item(self, doc: Doc, stamp: WriteStamp | None = None) -> dict[str, Any]:
        item = encode_item(doc, self.spec.key)
        item[STAMP] = (stamp or WriteStamp.NEW.next(WriteStamp.token())).encode()
        if self.store.native_ttl and self.spec.ttl is not None:
            expires = doc.get(self.spec.ttl)
            if isinstance(expires, datetime):
                seconds = (expires - datetime.now(UTC)).total_seconds()
                item[TTL] = max(1, math.ceil(seconds))
        return item

    async def _create(self, item: dict[str, Any]) -> None:
        try:
            await self.container.create_item(item)
        except CosmosResourceExistsError as exc:
            existing = await self._read_item(item[ID], item[PARTITION])
            if existing is not None and _holds(existing, item):
                return  # the SDK resent a create whose reply was lost: it was written once
            key = tuple(decode_key_part(part) for part in item[ID].split(","))
            shown = key[0] if self.spec.single_key else key
            raise DuplicateKey(f"key {shown!r} exists in {self.spec.name!r}", key=shown) from exc
        except CosmosHttpResponseError as exc:
            raise _error(exc, f"inserting into {self.spec.name!r}") from exc

    async def _create_over_expired(self, item: dict[str, Any]) -> None:
        """Create ``item``; in a TTL collection an expired document holding its key gives way
        (expired documents are gone for the user). One round trip unless the key is taken."""
        for _attempt in range(3):
            try:
                await self._create(item)
                return
            except DuplicateKey:
                if self.spec.ttl is None:
                    raise
                existing = await self._read_item(item[ID], item[PARTITION])
                if existing is None:
                    continue  # deleted meanwhile: create again
                if not matches(expired_filter(self.spec.ttl), decode_item(existing)):
                    raise
                try:
                    await self.container.delete_item(
                        item[ID],
                        partition_key=item[PARTITION],
                        etag=existing["_etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                except CosmosHttpResponseError as exc:
                    if exc.status_code != 412 and not _maybe_missing(exc):
                        raise _error(exc, f"deleting expired {item[ID]!r}") from exc
        await self._create(item)

    async def insert(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        """Validate, then create every item (an expired holder of a key is replaced on the
        conflict, so a TTL collection needs no lookup before each insert)."""
        keys = [check_key(doc, self.spec) for doc in docs]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise DuplicateKey(f"the batch holds the key {dup!r} twice", key=dup)
        await self.insert_docs(docs, session)
        return keys

    async def _delete_item(self, item_id: str, partition: str) -> None:
        try:
            await self.container.delete_item(item_id, partition_key=partition)
        except CosmosHttpResponseError as exc:
            if exc.status_code != 404 and (
                not _maybe_missing(exc) or await self._exists(item_id, partition)
            ):
                raise _error(exc, f"deleting {item_id!r} from {self.spec.name!r}") from exc

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        items = [self._item(doc) for doc in docs]  # encode all before any write
        created: list[dict[str, Any]] = []
        gate = asyncio.Semaphore(_WRITE_CONCURRENCY)

        async def create(item: dict[str, Any]) -> None:
            async with gate:
                await self._create_over_expired(item)
                created.append(item)

        results = await asyncio.gather(*(create(i) for i in items), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # compensate: all or nothing, though not isolated from concurrent readers
            await asyncio.gather(*(self._delete_item(i[ID], i[PARTITION]) for i in created))
            raise failures[0]

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        for _old, new in pairs:
            try:
                await self.container.replace_item(
                    encode_key(key_of(new, self.spec)), self._item(new)
                )
            except CosmosHttpResponseError as exc:
                raise _error(exc, f"replacing in {self.spec.name!r}") from exc

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        gate = asyncio.Semaphore(_WRITE_CONCURRENCY)

        async def delete(doc: Doc) -> None:
            key = key_of(doc, self.spec)
            async with gate:
                await self._delete_item(encode_key(key), encode_key_part(key[0]))

        await asyncio.gather(*(delete(doc) for doc in docs))

    async def _delete_if_unchanged(self, key: KeyTuple, node: Node) -> bool:
        """Delete one document with If-Match on the ETag it was read with; when it changed since
        (412), re-read it and delete it only if it still matches ``node``. True if deleted."""
        item_id, partition = encode_key(key), encode_key_part(key[0])
        seen = self._seen.pop(item_id, None)
        etag = seen[0].partition("\n")[0] if seen is not None else None
        backoff = ContentionBackoff(f"a delete from {self.spec.name!r}")
        while True:
            if etag is None:
                item = await self._read_item(item_id, partition)
                if item is None or not matches(node, decode_item(item)):
                    return False
                etag = item["_etag"]
            sent = [0]
            counting = _DELETES_SENT.set(sent)
            try:
                await self.container.delete_item(
                    item_id,
                    partition_key=partition,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except CosmosHttpResponseError as exc:
                if exc.status_code == 412:
                    etag = None  # changed since the query: re-check before deleting
                    await backoff.lost()
                    continue
                if exc.status_code == 404 or (
                    _maybe_missing(exc) and not await self._exists(item_id, partition)
                ):
                    # gone: deleted by this delete's own first attempt when it was sent more
                    # than once (aiohttp or the SDK resent it after its connection dropped),
                    # else by someone else meanwhile
                    return sent[0] > 1
                raise _error(exc, f"deleting {item_id!r} from {self.spec.name!r}") from exc
            finally:
                _DELETES_SENT.reset(counting)
            return True

    async def delete(
        self,
        node: Node,
        *,
        multi: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        raw: bool = False,
    ) -> int:
        """Query, then ETag-conditional deletes issued concurrently: a document changed between
        the query and its delete is re-read and re-checked, never deleted blindly."""
        checked = node if raw else self.visible(node)
        query = Query(checked, limit=None if multi else 1)
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        gate = asyncio.Semaphore(_WRITE_CONCURRENCY)
        backoff = ContentionBackoff(f"a delete from {self.spec.name!r}")
        while True:
            docs = [doc async for doc in self._execute(plan, query, session, allow_scan)]

            async def one(doc: Doc) -> bool:
                async with gate:
                    return await self._delete_if_unchanged(key_of(doc, self.spec), checked)

            deleted = sum(await asyncio.gather(*(one(d) for d in docs)))
            if docs and not deleted and not multi:
                await backoff.lost()
                continue  # our pick changed or went away: choose again
            return deleted

    @asynccontextmanager
    async def _section(self, session: Session | None) -> AsyncIterator[Session]:
        yield session if session is not None else CosmosSession()

    def atomic(self, session: Session | None) -> Any:
        return self._section(session)

    async def find_and_delete(
        self,
        node: Node,
        *,
        sort: Sort = (),
        session: Session | None,
        allow_scan: bool | None = None,
    ) -> Doc | None:
        """Pick, then delete by key if it still matches (the ETag-checked delete); a lost
        race picks again."""
        return await self._find_and_delete_checked(
            node, sort=sort, session=session, allow_scan=allow_scan
        )

    async def drop(self) -> None:
        """Delete the container (its items and indexing policy)."""
        try:
            await self.store.database.delete_container(self.spec.name)
        except CosmosResourceNotFoundError:
            pass
        except CosmosHttpResponseError as exc:
            raise _error(exc, f"dropping container {self.spec.name!r}") from exc
        self._container = None
        self._seen.clear()

    async def _compare_and_update(
        self, key: KeyTuple, node: Node, update: Update, now: datetime
    ) -> tuple[Doc, Doc] | None:
        """Update one document with If-Match on its ETag, re-reading on a lost race.

        Returns (before, after), or None when the document no longer matches ``node``.
        """
        item_id, partition = encode_key(key), encode_key_part(key[0])
        seen = self._seen.pop(item_id, None)
        backoff = ContentionBackoff(f"an update of {self.spec.name!r}")
        token = WriteStamp.token()
        item: dict[str, Any] | None = None
        if seen is not None and "\n" in seen[0]:  # read with its stamp (else: read again)
            etag, _, stamp = seen[0].partition("\n")
            item = {"_etag": etag, RAW: seen[1], STAMP: stamp or None}
        while True:
            if item is None:
                item = await self._read_item(item_id, partition)
            if item is None:
                return None
            before = decode_item(item)
            if not matches(node, before):
                return None
            after = self._keep_key(before, apply_update(update, before, now=now))
            if strict_equal(before, after):
                return before, before
            written = self._item(after, WriteStamp.decode(item.get(STAMP)).next(token))
            try:
                await self.container.replace_item(
                    item_id,
                    written,
                    etag=item["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except CosmosHttpResponseError as exc:
                if exc.status_code != 412 and not _maybe_missing(exc):
                    raise _error(exc, f"updating {item_id!r} in {self.spec.name!r}") from exc
                # changed or deleted meanwhile (the re-read tells which), or the SDK resent
                # this replace after a lost reply and the first attempt landed (its stamp)
                item = await self._read_item(item_id, partition)
                if item is not None and _holds(item, written):
                    return before, after
                await backoff.lost()
                item = None  # read again after the pause: an attempt on a fresh version
                continue
            return before, after

    # --- breadth: unordered bulk_write runs by key, concurrently ----------------------------

    async def bulk_batch(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
        session: Session | None,
    ) -> int:
        """Outside a transaction, an unordered run of updates and deletes by key goes out
        concurrently: per document, its operations applied in order in process to the item
        read and written back once with If-Match on its ETag (re-read and redone when another
        writer won the race), so each document changes atomically. An ordered run (a failure
        must stop every later operation, which concurrent writes cannot honour without a
        transactional batch, which cosmosdb-server lacks) and other operations go the shared
        way."""
        if (
            session is None
            and not ordered
            and self.spec.ttl is None
            and self._update_by_one_key(ops[progress.next])
        ):
            return await self._bulk_concurrently(ops, progress)
        return await super().bulk_batch(ops, progress, ordered=ordered, session=session)

    async def _bulk_concurrently(self, ops: list[WriteOp], progress: BulkProgress) -> int:
        start = progress.next
        by_key: dict[KeyTuple, list[tuple[int, WriteOp]]] = {}
        taken = 0
        for i, op in enumerate(ops[start : start + BULK_RUN]):
            key = self._update_by_one_key(op)
            if key is None:
                break
            by_key.setdefault(key, []).append((start + i, op))
            taken = i + 1
        now = datetime.now(UTC)
        gate = asyncio.Semaphore(_WRITE_CONCURRENCY)

        async def one(key: KeyTuple, steps: list[tuple[int, WriteOp]]) -> BulkProgress:
            async with gate:
                return await self._bulk_key(key, steps, now)

        for counts in await asyncio.gather(*(one(k, s) for k, s in by_key.items())):
            progress.matched += counts.matched
            progress.modified += counts.modified
            progress.deleted += counts.deleted
            progress.errors.extend(counts.errors)
        progress.errors.sort(key=lambda e: e[0])
        progress.next = start + taken
        return taken

    async def _bulk_key(
        self, key: KeyTuple, steps: list[tuple[int, WriteOp]], now: datetime
    ) -> BulkProgress:
        """One document's operations of a run, applied in order and written once (If-Match)."""
        item_id, partition = encode_key(key), encode_key_part(key[0])
        backoff = ContentionBackoff(f"a bulk write to {self.spec.name!r}")
        token = WriteStamp.token()
        while True:
            counts = BulkProgress()
            try:
                item = await self._read_item(item_id, partition)
            except BackendError as exc:  # unordered: this document's operations failed
                counts.errors.extend((index, exc) for index, _ in steps)
                return counts
            before = None if item is None else decode_item(item)
            doc = before
            for index, op in steps:
                assert op.node is not None
                if doc is None or not matches(self.visible(op.node), doc):
                    continue
                if op.kind == "delete":
                    doc = None
                    counts.deleted += 1
                    continue
                assert op.update is not None
                try:
                    new = self._keep_key(doc, apply_update(op.update, doc, now=now))
                except (UpdateError, QueryError) as exc:
                    counts.errors.append((index, exc))
                    continue
                counts.matched += 1
                if not strict_equal(doc, new):
                    counts.modified += 1
                    doc = new
            if item is None or doc is before:
                return counts  # nothing to write
            try:
                if doc is None:
                    await self.container.delete_item(
                        item_id,
                        partition_key=partition,
                        etag=item["_etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return counts
                written = self._item(doc, WriteStamp.decode(item.get(STAMP)).next(token))
                await self.container.replace_item(
                    item_id,
                    written,
                    etag=item["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return counts
            except CosmosHttpResponseError as exc:
                if exc.status_code != 412 and not _maybe_missing(exc):
                    error = _error(exc, f"bulk write of {item_id!r} in {self.spec.name!r}")
                    counts = BulkProgress()
                    counts.errors.extend((index, error) for index, _ in steps)
                    return counts
                # changed or deleted meanwhile (read again and redo this document's
                # operations), or a resend whose first attempt landed (its stamp)
                if doc is not None:
                    again = await self._read_item(item_id, partition)
                    if again is not None and _holds(again, written):
                        return counts
                await backoff.lost()

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
        """Per-document compare-and-set updates (ETag ``If-Match``); upsert when none matched."""
        what = f"an update of {self.spec.name!r}"
        pinned = None if multi else key_lookup(node, self.spec)
        async with self.store.turns.of(self.spec.name, pinned, what):
            return await self._update_cas(
                node, update, multi, upsert, session, allow_scan, sort, return_document, what
            )

    async def _update_cas(
        self,
        node: Node,
        update: Update,
        multi: bool,
        upsert: bool,
        session: Session | None,
        allow_scan: bool | None,
        sort: Sort,
        return_document: str | None,
        what: str,
    ) -> tuple[UpdateResult, Doc | None]:
        now = datetime.now(UTC)
        visible = self.visible(node)
        own = session if session is not None else CosmosSession()
        gate = asyncio.Semaphore(_WRITE_CONCURRENCY)
        backoff = ContentionBackoff(what)
        while True:
            docs = await self._matching(
                node, own, limit=None if multi else 1, allow_scan=allow_scan, sort=sort
            )
            for doc in docs:  # every update error before any write
                self._keep_key(doc, apply_update(update, doc, now=now))

            async def one(doc: Doc) -> tuple[Doc, Doc] | None:
                async with gate:
                    return await self._compare_and_update(
                        key_of(doc, self.spec), visible, update, now
                    )

            # independent per-document CAS writes: concurrent, results kept in query order
            outcomes = await asyncio.gather(*(one(d) for d in docs))
            done = [o for o in outcomes if o is not None]
            if docs and not done and not multi:
                await backoff.lost()
                continue  # our pick changed under us: choose again
            break
        if done:
            modified = sum(1 for before, after in done if after is not before)
            result = UpdateResult(len(done), modified)
            chosen = None
            if return_document == "before":
                chosen = done[0][0]
            elif return_document == "after":
                chosen = done[0][1]
            return result, chosen
        if not upsert:
            return UpdateResult(0, 0), None
        seed = upsert_seed(node)
        new = apply_update(update, seed, is_insert=True, now=now)
        if update.replacement is not None:
            new = {**{k: seed[k] for k in self.spec.key if k in seed}, **new}
        if self.spec.key == ("id",) and "id" not in new:
            new = {"id": new_id(), **new}
        new = self._keep_key(seed, new)
        await self.insert([new], own)
        upserted = key_of(new, self.spec)
        upserted_id = upserted[0] if self.spec.single_key else upserted
        return UpdateResult(0, 0, upserted_id), (new if return_document == "after" else None)
