"""``dynamodb://host:port?region=us-east-1&table_prefix=app_``: DynamoDB through aioboto3.

One aioboto3 session and low-level client per store, opened in ``open`` and closed in ``close``.
Without a host the client uses AWS's endpoint and the usual credential chain; with a host
(DynamoDB Local) and no credentials configured, fixed dummy ones are used (Local checks that a
request is signed, not by whom).

Writes are conditional on the item's version attribute (``._v``): an update is a
compare-and-set, retried on ``ConditionalCheckFailed``; an insert is ``attribute_not_exists``.
``insert_many`` of at most 100 documents is one ``TransactWriteItems``; a larger one checks
every key with ``BatchGetItem`` first, then writes with ``BatchWriteItem`` in chunks of 25
(``UnprocessedItems`` retried with exponential backoff and jitter), and deletes what it wrote if
a chunk still fails. That is all-or-nothing against duplicates and failures, but not isolated
from a concurrent writer of the same keys between the check and the write.

A transaction buffers its writes (reads inside it see them) and records the version of every
item it read; the commit is one ``TransactWriteItems`` whose conditions re-check those versions
(at most 100 items), so a conflicting writer makes it fail with :class:`TransactionError`
carrying DynamoDB's cancellation reasons, and outside readers never see uncommitted writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # type: ignore[import-untyped]

from asyncdb.backends.base import (
    _FAILED,
    _UNCHANGED,
    Doc,
    KeyTuple,
    Session,
    Store,
    StoreCollection,
    check_batch_keys,
    check_key,
    expired_filter,
    key_lookup,
    key_of,
    native_params,
    sql_reads_only,
)
from asyncdb.bulk import BulkProgress, WriteOp
from asyncdb.errors import (
    AsyncDBError,
    BackendError,
    ConfigurationError,
    DuplicateKey,
    QueryError,
    TransactionError,
)
from asyncdb.options import hinted
from asyncdb.query.ast import Node, Update
from asyncdb.query.evaluate import matches
from asyncdb.query.limits import StoreLimits
from asyncdb.query.update import apply_update, strict_equal
from asyncdb.resilience import (
    MAYBE_APPLIED,
    NOT_APPLIED,
    STAMP_HISTORY,
    ContentionBackoff,
    DocumentTurns,
    Transient,
    WriteStamp,
    classify_botocore,
    classify_os_error,
    error_chain,
    together,
)
from asyncdb.types import Capabilities, CollectionSpec, Plan, Query, check_identifier

from .capacity import CapacityMeter
from .codec import (
    BODY,
    SORTABLE_STRING_MAX,
    TTL_SHADOW,
    VERSION,
    decode_body,
    encode_body,
    native,
    sortable,
    ttl_epoch,
)
from .planner import (
    DynamoRequest,
    TableLayout,
    build_plan,
    index_attributes,
    key_attributes,
)
from .planner import binder as plan_binder

DUMMY_CREDENTIALS = {"aws_access_key_id": "asyncdblocal", "aws_secret_access_key": "asyncdblocal"}
MAX_TRANSACTION_ITEMS = 100
BATCH_WRITE_ITEMS = 25
BATCH_GET_ITEMS = 100
MAX_RETRIES = 12
PAGE_ITEMS = 200
KEPT_ITEM_BYTES = 8 * 1024 * 1024  # the items size checks encoded, kept for their inserts
OPEN_TIMEOUT = 15.0  # seconds for connect's first round trip (botocore would wait minutes)
# The item's write stamp (asyncdb.resilience.WriteStamp): its version and the tokens of its
# last writes, so a conditional write that botocore (or asyncdb) resent after a lost reply and
# that then failed its version check can tell whether its first attempt is the one that landed.
STAMP = "._w"
# A failed condition returns the item as it was (no second read to check a stamp).
ALL_OLD = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


class _Conflict(Exception):
    """A conditional write lost a race; the caller re-reads and retries."""


class DynamoSession(Session):
    """A write section. In a transaction it buffers writes and remembers read versions."""

    def __init__(self, *, transaction: bool) -> None:
        self.in_transaction = transaction
        self.versions: dict[tuple[str, KeyTuple], int | None] = {}  # read set: key -> version
        self.writes: dict[tuple[str, KeyTuple], Doc | None] = {}  # buffered: None = deleted
        self.stamps: dict[tuple[str, KeyTuple], str | None] = {}  # write stamps as read
        self.token = WriteStamp.token()  # carried by every item this section writes
        self.collections: dict[str, DynamoCollection] = {}


class DynamoStore(Store):
    """DynamoDB (or DynamoDB Local) through aioboto3's low-level client."""

    name = "dynamodb"
    network = True
    capabilities = Capabilities(
        transactions=True,
        conditional_writes=True,
        ttl=True,
        secondary_indexes=True,
        unique_indexes=False,
        server_side_sort=False,
        regex_pushdown=False,
        keyset_pagination=True,
        bulk_insert=True,
    )

    def __init__(self, client: Any, client_cm: Any, prefix: str) -> None:
        self.client = client
        self._client_cm = client_cm
        self.prefix = prefix
        self.owners: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.turns = DocumentTurns()  # this process's writers of one document take turns
        self.capacity = CapacityMeter()  # consumed RCU/WCU, as DynamoDB reports them
        if client is not None:
            self.capacity.install(client)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` without waiting for it; ``close`` waits for it."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @classmethod
    async def open(cls, url: str, options: Mapping[str, Any]) -> Self:
        import aioboto3
        from botocore.config import Config as BotoConfig

        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        region = str(options.get("region") or query.get("region") or "us-east-1")
        prefix = str(options.get("table_prefix") or query.get("table_prefix") or "")
        if prefix:
            check_identifier(prefix.rstrip("_-") or "x", "table prefix")
        session = aioboto3.Session()
        kwargs: dict[str, Any] = {"region_name": region}
        if parts.hostname:
            scheme = "https" if query.get("tls") in ("1", "true") else "http"
            port = f":{parts.port}" if parts.port else ""
            kwargs["endpoint_url"] = f"{scheme}://{parts.hostname}{port}"
            key_id = options.get("aws_access_key_id") or query.get("aws_access_key_id")
            secret = options.get("aws_secret_access_key") or query.get("aws_secret_access_key")
            if key_id and secret:
                kwargs.update(aws_access_key_id=key_id, aws_secret_access_key=secret)
            elif await asyncio.to_thread(_no_credentials):
                kwargs.update(DUMMY_CREDENTIALS)
        elif parts.netloc:
            raise ConfigurationError(f"bad dynamodb URL {url!r}")
        # No client-side parameter validation: every request is built here from checked
        # values (table and index names by check_table_names, items by the encoder, PartiQL
        # parameters by TypeSerializer), and DynamoDB validates each request itself (a
        # ValidationException, which is typed); botocore's check of each request was 40-50%
        # of the CPU of a batch write (benchmarks/bench_dynamodb.py).
        kwargs["config"] = BotoConfig(parameter_validation=False)
        client_cm = session.client("dynamodb", **kwargs)
        client = await client_cm.__aenter__()
        try:
            # connect now (signing setup, TCP, a bad endpoint) rather than inside the first
            # write; any answer will do (a policy without ListTables answers AccessDenied)
            async with asyncio.timeout(OPEN_TIMEOUT):
                with contextlib.suppress(client.exceptions.ClientError):
                    await client.list_tables(Limit=1)
        except Exception as exc:
            await client_cm.__aexit__(None, None, None)
            raise BackendError(f"cannot reach DynamoDB at {url!r}: {exc!r}") from exc
        except BaseException:
            await client_cm.__aexit__(None, None, None)
            raise
        return cls(client, client_cm, prefix)

    def capacity_stats(self) -> dict[str, float] | None:
        return self.capacity.stats()

    def classify_error(self, exc: BaseException) -> Transient | None:
        """Throttling (classify_botocore), a connection that could not be made (not applied),
        and one lost or timed out after the request was sent (maybe applied)."""
        from botocore.exceptions import (
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        verdict = classify_botocore(exc)
        if verdict is not None:
            return verdict
        for err in error_chain(exc):
            if isinstance(err, ConnectTimeoutError | EndpointConnectionError):
                return NOT_APPLIED
            if isinstance(err, ConnectionClosedError | ReadTimeoutError):
                return MAYBE_APPLIED
        return classify_os_error(exc)

    async def ping(self) -> None:
        """``ListTables`` of one name (any answer of the service will do, AccessDenied too)."""
        try:
            with contextlib.suppress(self.client.exceptions.ClientError):
                await self.client.list_tables(Limit=1)
        except Exception as exc:
            raise BackendError(f"cannot reach DynamoDB: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._client_cm is not None:
            cm, self._client_cm = self._client_cm, None
            await cm.__aexit__(None, None, None)

    # --- breadth: PartiQL ----------------------------------------------------------------------

    def native_writes(self, statement: Any) -> bool:
        return not sql_reads_only(statement, "PartiQL")

    async def native(self, statement: Any, params: Any, *, writes: bool) -> list[dict[str, Any]]:
        """``ExecuteStatement`` with ``?`` parameters (plain values, serialised by boto3's
        TypeSerializer; floats as Decimal), every page; items as plain values (numbers as
        Decimal, as boto3 gives them)."""
        args = native_params(params, mapping=False)
        serializer, deserializer = TypeSerializer(), TypeDeserializer()
        try:
            bound = [serializer.serialize(_boto_value(v)) for v in args]
        except (TypeError, ValueError) as exc:
            raise QueryError(f"a PartiQL parameter cannot be sent: {exc}") from None
        self.check_not_owner()
        request: dict[str, Any] = {"Statement": statement}
        if bound:
            request["Parameters"] = bound
        rows: list[dict[str, Any]] = []
        client = self.client
        try:
            while True:
                reply = await _retrying(client.execute_statement, **request)
                for item in reply.get("Items", ()):
                    rows.append({k: deserializer.deserialize(v) for k, v in item.items()})
                token = reply.get("NextToken")
                if not token:
                    return rows
                request["NextToken"] = token
        except client.exceptions.ClientError as exc:
            raise BackendError(f"native statement: {exc}") from None

    def collection(self, spec: CollectionSpec) -> DynamoCollection:
        check_table_names(spec, f"{self.prefix}{spec.name}")
        return DynamoCollection(self, spec)

    def check_not_owner(self) -> None:
        """A plain read or write from a task with an open transaction would bypass it."""
        task = asyncio.current_task()
        if task is not None and task in self.owners:
            raise TransactionError(
                "this task has a transaction open: use tx.collection(name) inside it"
            )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DynamoSession]:
        self.check_not_owner()
        task = asyncio.current_task()
        assert task is not None
        session = DynamoSession(transaction=True)
        self.owners.add(task)
        try:
            yield session
        finally:
            self.owners.discard(task)
        await self._commit(session)

    def transaction(self) -> Any:
        return self._transaction()

    async def _commit(self, session: DynamoSession) -> None:
        ops: list[dict[str, Any]] = []
        for (table, key), new in session.writes.items():
            coll = session.collections[table]
            seen = session.versions.get((table, key))
            if new is None and seen is None:  # inserted and deleted inside: still absent
                ops.append(coll.check_op(key, None))
            else:
                prior = session.stamps.get((table, key))
                ops.append(coll.write_op(key, new, seen, token=session.token, prior=prior))
        for (table, key), seen in session.versions.items():
            if (table, key) not in session.writes:
                ops.append(session.collections[table].check_op(key, seen))
        if not ops:
            return
        if len(ops) > MAX_TRANSACTION_ITEMS:
            raise TransactionError(
                f"this transaction touches {len(ops)} items; DynamoDB commits at most "
                f"{MAX_TRANSACTION_ITEMS} together"
            )
        try:
            await _retrying(self.client.transact_write_items, TransactItems=ops)
        except self.client.exceptions.TransactionCanceledException as exc:
            if _transaction_landed(exc, ops, session.token):
                return  # a resend met the commit's own writes: it was committed once
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            raise TransactionError(
                f"the transaction was cancelled (conflict), reasons: {reasons}"
            ) from exc
        except self.client.exceptions.TransactionConflictException as exc:
            raise TransactionError("the transaction conflicted with another one") from exc
        except AsyncDBError:
            raise
        except Exception as exc:  # the commit runs outside any call: no driver error escapes
            raise TransactionError(
                f"the commit failed ({exc!r}); if its reply was lost it may have been applied"
            ) from exc


def _attribute_size(value: dict[str, Any]) -> int:
    """The size DynamoDB counts for one attribute value (an upper bound for numbers)."""
    kind, body = next(iter(value.items()))
    if kind in ("S", "N"):
        return len(body.encode()) if kind == "S" else len(body)
    if kind == "B":
        return len(body)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _attribute_size(v) for k, v in body.items())
    if kind == "L":
        return 3 + sum(1 + _attribute_size(v) for v in body)
    return len(str(body))


# The largest hidden write stamp an item carries (a document's size is counted with it).
_SIZING_STAMP = WriteStamp(2**53, tuple("f" * 16 for _ in range(STAMP_HISTORY)))


class DynamoCollection(StoreCollection):
    """One collection as one DynamoDB table."""

    store: DynamoStore
    # An item of 400 KB (names and values, as DynamoDB counts them); a key string of
    # SORTABLE_STRING_MAX bytes (its sortable form fits the 2048-byte partition key and the
    # 1024-byte sort key).
    limits = StoreLimits(
        document_bytes=400 * 1024, key_bytes=SORTABLE_STRING_MAX, filter_terms=30
    )  # a FilterExpression holds 4 KB

    def stored_size(self, doc: Doc) -> int:
        item = self.encode(doc, _SIZING_STAMP)
        size = sum(len(name.encode()) + _attribute_size(v) for name, v in item.items())
        self._keep_encoded(doc, item, size)
        return size

    def _keep_encoded(self, doc: Doc, item: dict[str, Any], size: int) -> None:
        """Keep the item a size check encoded, for the insert that follows it (``_item``):
        the newest ones, up to KEPT_ITEM_BYTES in all."""
        kept = self._encoded
        old = kept.pop(id(doc), None)
        if old is not None:
            self._encoded_bytes -= old[2]
        kept[id(doc)] = (doc, item, size)  # holding ``doc`` keeps its id unique
        self._encoded_bytes += size
        while self._encoded_bytes > KEPT_ITEM_BYTES:
            _, _, dropped = kept.pop(next(iter(kept)))
            self._encoded_bytes -= dropped

    def _item(self, doc: Doc, stamp: WriteStamp) -> dict[str, Any]:
        """``encode(doc, stamp)``, from the item its size check encoded when it is kept (the
        document was prepared, checked and is now inserted, unchanged: asyncdb's own copy)."""
        kept = self._encoded.pop(id(doc), None)
        if kept is None:
            return self.encode(doc, stamp)
        self._encoded_bytes -= kept[2]
        if kept[0] is not doc:  # cannot happen while the entry holds its document
            return self.encode(doc, stamp)
        item = kept[1]
        item[VERSION] = {"N": str(stamp.number)}  # the only attributes the stamp sets
        item[STAMP] = {"S": stamp.encode()}
        return item

    def key_size(self, key: KeyTuple) -> int:
        parts = [len(v.encode()) if type(v) is str else 0 for v in key]
        if len(parts) > 2:  # the parts after the first share the sort key
            return max(parts[0], sum(parts[1:]) + len(parts) - 2)
        return max(parts)

    def __init__(self, store: DynamoStore, spec: CollectionSpec) -> None:
        self.store = store
        self.spec = spec
        self.layout = TableLayout.of(spec)
        self.table = f"{store.prefix}{spec.name}"
        # items encoded by size checks, by id(document) (see _keep_encoded)
        self._encoded: dict[int, tuple[Doc, dict[str, Any], int]] = {}
        self._encoded_bytes = 0

    # --- table -----------------------------------------------------------------------------

    async def ensure(self) -> None:
        client = self.store.client
        try:  # create first: a new table (the common case here) costs one round trip
            reply = await client.create_table(**table_definition(self.spec, self.table))
            status, created = reply["TableDescription"]["TableStatus"], True
        except client.exceptions.ResourceInUseException:  # it exists (or is being created)
            described = await client.describe_table(TableName=self.table)
            status, created = described["Table"]["TableStatus"], False
        if status != "ACTIVE":
            waiter = client.get_waiter("table_exists")
            config = {"Delay": 1, "MaxAttempts": 600}
            await waiter.wait(TableName=self.table, WaiterConfig=config)
        if self.spec.ttl is not None and created:
            # Reads filter expired documents themselves: DynamoDB's own deletion is a clean-up
            # that may start later, so the first write does not wait for it.
            self.store.in_background(self._enable_ttl())

    async def _enable_ttl(self) -> None:
        client = self.store.client
        with contextlib.suppress(client.exceptions.ClientError):  # DynamoDB Local may lack it
            await client.update_time_to_live(
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_SHADOW},
            )

    async def drop(self) -> None:
        """``DeleteTable`` (its GSIs go with it), waiting until it is gone so the next use can
        create it again."""
        client = self.store.client
        self.store.check_not_owner()
        try:
            await client.delete_table(TableName=self.table)
        except client.exceptions.ResourceNotFoundException:
            return
        waiter = client.get_waiter("table_not_exists")
        await waiter.wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 600})

    async def estimated_count(self) -> int:
        """``DescribeTable``'s ItemCount: DynamoDB refreshes it about every six hours."""
        described = await _retrying(self.store.client.describe_table, TableName=self.table)
        return int(described["Table"].get("ItemCount", 0))

    async def find_and_delete(
        self,
        node: Node,
        *,
        sort: Any = (),
        session: Session | None,
        allow_scan: bool | None = None,
    ) -> Doc | None:
        """Outside a transaction: pick, then delete by key if it still matches (the
        version-checked delete); a lost race picks again."""
        if session is not None:
            return await super().find_and_delete(
                node, sort=sort, session=session, allow_scan=allow_scan
            )
        self.store.check_not_owner()
        return await self._find_and_delete_checked(
            node, sort=sort, session=None, allow_scan=allow_scan
        )

    # --- encoding ----------------------------------------------------------------------------

    def encode(self, doc: Doc, stamp: WriteStamp) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for name, value in doc.items():
            # key fields hold their sortable form (what filters on them compare with)
            item[name] = native(value) if name not in self.spec.key else {"S": sortable(value)}
        item.update(key_attributes(key_of(doc, self.spec), self.layout))
        item.update(index_attributes(doc, self.layout))
        item[BODY] = {"S": encode_body(doc)}
        item[VERSION] = {"N": str(stamp.number)}
        item[STAMP] = {"S": stamp.encode()}
        if self.spec.ttl is not None:
            at: Any = doc
            for part in self.spec.ttl.split("."):
                at = at.get(part) if isinstance(at, dict) else None
            epoch = ttl_epoch(at)
            if epoch is not None:
                item[TTL_SHADOW] = {"N": str(epoch)}
        return item

    def key(self, key: KeyTuple) -> dict[str, Any]:
        return key_attributes(key, self.layout)

    # --- reads -------------------------------------------------------------------------------

    def plan(self, query: Query) -> Plan:
        return build_plan(hinted(query), self.spec)

    def execution_plan(self, query: Query) -> Plan:
        """The lean plan (no filter rendering, which only ``explain()`` needs)."""
        return self.bounded_plan(query, lambda q: build_plan(hinted(q), self.spec, explain=False))

    def plan_binder(self, query: Query) -> Callable[[Query], Plan] | None:
        bind = plan_binder(self.spec, query)
        if bind is None:
            return None
        spec = self.spec

        def run(q: Query) -> Plan:
            forced = hinted(q)  # a call's hint= picks the GSI: planned from the filter
            return bind(q) if forced is q else build_plan(forced, spec, explain=False)

        return run

    async def _items(self, request: DynamoRequest) -> AsyncIterator[dict[str, Any]]:
        client = self.store.client
        if request.operation in ("GetItem", "BatchGetItem"):
            for item in await self._get_many(list(request.keys)):
                if item is not None:
                    yield item
            return
        # bounded pages: a 1 MB page of parsed items would defeat streaming in constant memory
        base: dict[str, Any] = {"TableName": self.table, "Limit": PAGE_ITEMS}
        if request.filter is not None:
            base["FilterExpression"] = request.filter
        if request.index is not None:
            base["IndexName"] = request.index
        else:
            base["ConsistentRead"] = True
        conditions: tuple[str | None, ...] = request.key_conditions or (None,)
        for condition in conditions:
            params = dict(base)
            if condition is not None:
                params["KeyConditionExpression"] = condition
            names = _used_names(request, condition)
            values = _used_values(request, condition)
            if names:
                params["ExpressionAttributeNames"] = names
            if values:
                params["ExpressionAttributeValues"] = values
            call = client.query if condition is not None else client.scan
            while True:
                page = await _retrying(call, **params)
                for item in page.get("Items", ()):
                    yield item
                last = page.get("LastEvaluatedKey")
                if not last:  # an empty page before this is normal
                    break
                params["ExclusiveStartKey"] = last

    async def _get_many(self, keys: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        client = self.store.client
        if len(keys) == 1:
            got = await _retrying(
                client.get_item, TableName=self.table, Key=keys[0], ConsistentRead=True
            )
            return [got.get("Item")]
        found: dict[str, dict[str, Any]] = {}

        async def chunk(pending: list[dict[str, Any]]) -> None:
            attempt = 0
            while pending:
                request = {self.table: {"Keys": pending, "ConsistentRead": True}}
                reply = await _retrying(client.batch_get_item, RequestItems=request)
                for item in reply.get("Responses", {}).get(self.table, []):
                    found[self._key_id(item)] = item
                pending = reply.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if pending:
                    attempt += 1
                    await _backoff(attempt)

        chunks = [keys[i : i + BATCH_GET_ITEMS] for i in range(0, len(keys), BATCH_GET_ITEMS)]
        if len(chunks) == 1:
            await chunk(chunks[0])
        else:  # the chunks at once: the lookup before a large insert costs one round trip
            await together(chunk(c) for c in chunks)
        return [found.get(self._key_id(k)) for k in keys]

    def _key_id(self, item: Mapping[str, Any]) -> str:
        hash_value: str = item[self.layout.hash_attr]["S"]
        if self.layout.range_attr is None:
            return hash_value
        range_value: str = item[self.layout.range_attr]["S"]
        return hash_value + "\x00" + range_value

    async def rows(self, plan: Plan, session: Session | None) -> AsyncIterator[Doc]:
        request: DynamoRequest = plan.payload
        if isinstance(session, _VersionedSection):
            async for item in self._items(request):
                doc = decode_body(item[BODY]["S"])
                at = (self.table, key_of(doc, self.spec))
                session.versions[at] = int(item[VERSION]["N"])
                session.stamps[at] = _stamp_text(item)
                yield doc
            return
        if session is None or not session.in_transaction:
            if session is None:
                self.store.check_not_owner()
            async for item in self._items(request):
                yield decode_body(item[BODY]["S"])
            return
        assert isinstance(session, DynamoSession)
        session.collections[self.table] = self
        seen: set[KeyTuple] = set()
        async for item in self._items(request):
            doc = decode_body(item[BODY]["S"])
            key = key_of(doc, self.spec)
            seen.add(key)
            if (self.table, key) not in session.versions:
                session.versions[(self.table, key)] = int(item[VERSION]["N"])
                session.stamps[(self.table, key)] = _stamp_text(item)
            if (self.table, key) in session.writes:
                doc = session.writes[(self.table, key)]  # type: ignore[assignment]
                if doc is None:
                    continue
            yield doc
        # buffered inserts and updates the store does not know yet; the residual re-checks
        residual = plan.residual_node
        for (table, key), new in list(session.writes.items()):
            if table != self.table or key in seen or new is None:
                continue
            if residual is None or matches(residual, new):
                yield new

    async def get(self, key: KeyTuple, session: Session | None) -> Doc | None:
        if (session is not None and session.in_transaction) or self.spec.ttl is not None:
            return await super().get(key, session)
        if session is None:
            self.store.check_not_owner()
        (item,) = await self._get_many([self.key(key)])
        return None if item is None else decode_body(item[BODY]["S"])

    # --- writes ------------------------------------------------------------------------------

    def write_op(
        self,
        key: KeyTuple,
        new: Doc | None,
        seen: int | None,
        *,
        token: str = "",
        prior: str | None = None,
    ) -> dict[str, Any]:
        """A TransactWriteItems entry: put ``new`` (or delete) if the version is still ``seen``;
        a put carries the write stamp of ``token`` after ``prior`` (the stamp read)."""
        names = {"#v": VERSION}
        if new is None:
            return {
                "Delete": {
                    "TableName": self.table,
                    "Key": self.key(key),
                    "ConditionExpression": "#v = :v",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":v": {"N": str(seen)}},
                    **ALL_OLD,
                }
            }
        item = self.encode(new, _next_stamp(seen, prior, token))
        if seen is None:
            return {
                "Put": {
                    "TableName": self.table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(#v)",
                    "ExpressionAttributeNames": names,
                    **ALL_OLD,
                }
            }
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {":v": {"N": str(seen)}},
                **ALL_OLD,
            }
        }

    def check_op(self, key: KeyTuple, seen: int | None) -> dict[str, Any]:
        """A ConditionCheck that the item read is unchanged (or still absent)."""
        check: dict[str, Any] = {
            "TableName": self.table,
            "Key": self.key(key),
            "ExpressionAttributeNames": {"#v": VERSION},
        }
        if seen is None:
            check["ConditionExpression"] = "attribute_not_exists(#v)"
        else:
            check["ConditionExpression"] = "#v = :v"
            check["ExpressionAttributeValues"] = {":v": {"N": str(seen)}}
        return {"ConditionCheck": check}

    async def _existing(self, keys: list[KeyTuple]) -> dict[KeyTuple, int]:
        """The versions of those keys that exist in the store."""
        items = await self._get_many([self.key(k) for k in keys])
        return {
            k: int(item[VERSION]["N"])
            for k, item in zip(keys, items, strict=True)
            if item is not None
        }

    async def insert(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        if self.spec.ttl is None or (session is not None and session.in_transaction):
            return await super().insert(docs, session)
        # Outside a transaction an expired document's key is reused by the conditional write
        # itself (see _replaceable), instead of a purge query before every insert.
        keys = [check_key(doc, self.spec) for doc in docs]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise DuplicateKey(f"the batch holds the key {dup!r} twice", key=dup)
        await self.insert_docs(docs, session)
        return keys

    async def insert_docs(self, docs: list[Doc], session: Session | None) -> None:
        keys = [key_of(d, self.spec) for d in docs]
        if session is not None and session.in_transaction:
            assert isinstance(session, DynamoSession)
            session.collections[self.table] = self
            unknown = [k for k in keys if (self.table, k) not in session.writes]
            existing = await self._existing(unknown) if unknown else {}
            for k in keys:
                buffered = session.writes.get((self.table, k), "absent")
                if buffered not in ("absent", None) or (buffered == "absent" and k in existing):
                    raise DuplicateKey(f"key {k!r} exists in {self.spec.name!r}", key=k)
            for k, doc in zip(keys, docs, strict=True):
                if (self.table, k) not in session.versions:
                    session.versions[(self.table, k)] = existing.get(k)
                session.writes[(self.table, k)] = doc
            return
        if session is None:
            self.store.check_not_owner()
        if len(docs) <= MAX_TRANSACTION_ITEMS:
            await self._insert_transactionally(keys, docs)
        else:
            await self._insert_in_batches(keys, docs)

    async def _insert_transactionally(self, keys: list[KeyTuple], docs: list[Doc]) -> None:
        """One conditional put, or one TransactWriteItems of puts: each only if no item has
        the key, or (TTL) only over the version of an expired one."""
        client = self.store.client
        expected: dict[KeyTuple, int | None] = {}
        token = WriteStamp.token()
        for _attempt in range(MAX_RETRIES):
            ops = [
                self.write_op(k, d, expected.get(k), token=token)
                for k, d in zip(keys, docs, strict=True)
            ]
            try:
                if len(ops) == 1:
                    await _retrying(client.put_item, **ops[0]["Put"])
                else:
                    await _retrying(client.transact_write_items, TransactItems=ops)
                return
            except client.exceptions.ConditionalCheckFailedException as exc:
                if _landed(exc.response.get("Item"), token, ops[0]["Put"]["Item"]):
                    return  # a resend met this insert's own item: it was written once
                failed = keys
            except client.exceptions.TransactionCanceledException as exc:
                if _transaction_landed(exc, ops, token):
                    return
                reasons = exc.response.get("CancellationReasons", [])
                codes = [r.get("Code") for r in reasons]
                failed = [
                    k for k, c in zip(keys, codes, strict=False) if c == "ConditionalCheckFailed"
                ]
                if not failed:
                    raise TransactionError(f"insert cancelled: {codes}") from exc
            expected.update(await self._replaceable(failed))
        raise TransactionError("an insert kept conflicting with concurrent writers")

    async def _replaceable(self, keys: list[KeyTuple]) -> dict[KeyTuple, int | None]:
        """For keys a conditional insert found taken: None if the item is gone now, its
        version if it holds an expired document (the key is free); else DuplicateKey."""
        items = await self._get_many([self.key(k) for k in keys])
        out: dict[KeyTuple, int | None] = {}
        expired = None if self.spec.ttl is None else expired_filter(self.spec.ttl)
        for k, item in zip(keys, items, strict=True):
            if item is None:
                out[k] = None
            elif expired is not None and matches(expired, decode_body(item[BODY]["S"])):
                out[k] = int(item[VERSION]["N"])
            else:
                raise DuplicateKey(f"key {k!r} exists in {self.spec.name!r}", key=k)
        return out

    async def insert_new(self, docs: list[Doc], session: Session | None) -> list[KeyTuple]:
        """Outside a transaction, on a collection without TTL: the batch writes of
        ``_insert_in_batches`` without its BatchGetItem of the keys first (the caller knows
        they are new); a stored key is overwritten. All or nothing as ``insert``: a failed
        write deletes what the insert wrote."""
        if (session is not None and session.in_transaction) or self.spec.ttl is not None:
            return await self.insert(docs, session)
        keys = [check_key(doc, self.spec) for doc in docs]
        check_batch_keys(keys)
        if session is None:
            self.store.check_not_owner()
        await self._put_in_batches(keys, docs)
        return keys

    async def _insert_in_batches(self, keys: list[KeyTuple], docs: list[Doc]) -> None:
        taken = list(await self._existing(keys))
        if taken:
            await self._replaceable(taken)  # DuplicateKey unless every one has expired
        await self._put_in_batches(keys, docs)

    async def _put_in_batches(self, keys: list[KeyTuple], docs: list[Doc]) -> None:
        """BatchWriteItem puts of ``docs`` (one write stamp), 25 at a time; a failure deletes
        the items written."""
        written: list[KeyTuple] = []
        stamp = WriteStamp.NEW.next(WriteStamp.token())
        try:
            for start in range(0, len(docs), BATCH_WRITE_ITEMS):
                chunk = docs[start : start + BATCH_WRITE_ITEMS]
                puts = [{"PutRequest": {"Item": self._item(d, stamp)}} for d in chunk]
                await self._batch_write(puts)
                written.extend(keys[start : start + BATCH_WRITE_ITEMS])
        except BaseException:
            deletes = [{"DeleteRequest": {"Key": self.key(k)}} for k in written]
            for start in range(0, len(deletes), BATCH_WRITE_ITEMS):
                with contextlib.suppress(Exception):
                    await self._batch_write(deletes[start : start + BATCH_WRITE_ITEMS])
            raise

    async def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """One BatchWriteItem, with UnprocessedItems retried (backoff and jitter) until done."""
        pending = requests
        attempt = 0
        while pending:
            reply = await _retrying(
                self.store.client.batch_write_item, RequestItems={self.table: pending}
            )
            pending = reply.get("UnprocessedItems", {}).get(self.table, [])
            if pending:
                attempt += 1
                await _backoff(attempt)

    async def replace_docs(self, pairs: list[tuple[Doc, Doc]], session: Session) -> None:
        assert isinstance(session, DynamoSession)
        if session.in_transaction:
            session.collections[self.table] = self
            for old, new in pairs:
                key = key_of(old, self.spec)
                session.versions.setdefault((self.table, key), None)
                session.writes[(self.table, key)] = new
            return
        retry = session.retry if isinstance(session, _VersionedSection) else None
        for old, new in pairs:
            at = (self.table, key_of(old, self.spec))
            version, prior = session.versions.get(at), session.stamps.get(at)
            if retry is None:
                await self._put_if_version(at[1], new, version, prior, session.token)
            else:
                await self._put_retrying(at[1], new, version, prior, session.token, *retry)

    async def _put_retrying(
        self,
        key: KeyTuple,
        new: Doc,
        version: int | None,
        prior: str | None,
        token: str,
        node: Node,
        update: Update,
    ) -> None:
        """update_many outside a transaction: a lost race on one document re-reads it,
        re-checks the filter and re-applies the update, without touching the others again."""
        backoff = ContentionBackoff(f"an update of {self.spec.name!r}")
        while True:
            try:
                await self._put_if_version(key, new, version, prior, token)
                return
            except _Conflict:
                await backoff.lost()
                (item,) = await self._get_many([self.key(key)])
                if item is None:
                    return
                current = decode_body(item[BODY]["S"])
                if not matches(node, current):
                    return
                version, prior = int(item[VERSION]["N"]), _stamp_text(item)
                new = self._keep_key(current, apply_update(update, current))
                if strict_equal(current, new):
                    return

    async def _put_if_version(
        self, key: KeyTuple, new: Doc, version: int | None, prior: str | None, token: str
    ) -> None:
        """Put ``new`` if the item's version is still ``version``. A failed condition whose
        item holds this write's own stamp means a resend (botocore's, after a lost reply) met
        the first attempt, which landed: success, applied once."""
        client = self.store.client
        if version is None:
            raise _Conflict  # read without a version: re-read
        item = self.encode(new, _next_stamp(version, prior, token))
        try:
            await _retrying(
                client.put_item,
                TableName=self.table,
                Item=item,
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": VERSION},
                ExpressionAttributeValues={":v": {"N": str(version)}},
                **ALL_OLD,
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            if _landed(exc.response.get("Item"), token, item):
                return
            raise _Conflict from None

    async def delete_docs(self, docs: list[Doc], session: Session) -> None:
        assert isinstance(session, DynamoSession)
        if session.in_transaction:
            session.collections[self.table] = self
            for doc in docs:
                key = key_of(doc, self.spec)
                session.versions.setdefault((self.table, key), None)
                session.writes[(self.table, key)] = None
            return
        for doc in docs:
            key = key_of(doc, self.spec)
            await self._delete_if_version(key, session.versions.get((self.table, key)))

    async def _delete_if_version(self, key: KeyTuple, version: int | None) -> None:
        """Delete the item if its version is still ``version``. A failed condition that finds
        the item gone after a resend (the first attempt's reply was lost) is this delete's."""
        client = self.store.client
        condition: dict[str, Any] = {"ExpressionAttributeNames": {"#v": VERSION}, **ALL_OLD}
        if version is None:
            condition["ConditionExpression"] = "attribute_exists(#v)"
        else:
            condition["ConditionExpression"] = "#v = :v"
            condition["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
        try:
            await _retrying(
                client.delete_item, TableName=self.table, Key=self.key(key), **condition
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            if _resent(exc) and not exc.response.get("Item"):
                return
            raise _Conflict from None

    async def _delete_versions(self, keys: list[KeyTuple], section: DynamoSession) -> None:
        """Delete these items if their versions are still the ones read, all or none."""
        versions = [section.versions.get((self.table, k)) for k in keys]
        if len(keys) == 1 or any(v is None for v in versions):
            for k, v in zip(keys, versions, strict=True):
                await self._delete_if_version(k, v)
            return
        ops = [self.write_op(k, None, v) for k, v in zip(keys, versions, strict=True)]
        client = self.store.client
        try:
            await _retrying(client.transact_write_items, TransactItems=ops)
        except client.exceptions.TransactionCanceledException as exc:
            if _transaction_landed(exc, ops, ""):
                return
            raise _Conflict from None

    async def delete(
        self,
        node: Node,
        *,
        multi: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        raw: bool = False,
    ) -> int:
        """Outside a transaction: each delete is conditional on the version read, so a document
        changed meanwhile is re-read and deleted only if it still matches."""
        if session is not None:
            return await super().delete(
                node, multi=multi, session=session, allow_scan=allow_scan, raw=raw
            )
        self.store.check_not_owner()
        query = Query(node if raw else self.visible(node), limit=None if multi else 1)
        plan = self.execution_plan(query)
        self.check_scan(plan, query, allow_scan)
        deleted = 0
        backoff = ContentionBackoff(f"a delete from {self.spec.name!r}")
        while True:
            section = _VersionedSection(self)
            docs = [doc async for doc in self._execute(plan, query, section, allow_scan)]
            conflicted = False
            keys = [key_of(doc, self.spec) for doc in docs]
            # up to 100 conditional deletes per TransactWriteItems (BatchWriteItem has no
            # conditions); a lost race cancels that chunk, and the query runs again
            for start in range(0, len(keys), MAX_TRANSACTION_ITEMS):
                chunk = keys[start : start + MAX_TRANSACTION_ITEMS]
                try:
                    await self._delete_versions(chunk, section)
                    deleted += len(chunk)
                except _Conflict:
                    conflicted = True
            if not conflicted or (not multi and deleted):
                return deleted
            await backoff.lost()  # run the query again: the rest still matching

    def atomic(self, session: Session | None) -> Any:
        return self._atomic(session)

    @asynccontextmanager
    async def _atomic(self, session: Session | None) -> AsyncIterator[Session]:
        if session is not None:
            yield session
            return
        self.store.check_not_owner()
        yield _VersionedSection(self)

    async def update(
        self,
        node: Any,
        update: Any,
        *,
        multi: bool,
        upsert: bool,
        session: Session | None,
        allow_scan: bool | None = None,
        sort: Any = (),
        return_document: str | None = None,
    ) -> Any:
        """Outside a transaction: a compare-and-set per document, re-read and retried on a
        lost race (so concurrent updates never lose one another)."""
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
        self.store.check_not_owner()
        what = f"an update of {self.spec.name!r}"
        pinned = None if multi else key_lookup(node, self.spec)
        async with self.store.turns.of(self.table, pinned, what):
            return await self._update_cas(
                node, update, multi, upsert, allow_scan, sort, return_document, what
            )

    async def _update_cas(
        self,
        node: Any,
        update: Any,
        multi: bool,
        upsert: bool,
        allow_scan: bool | None,
        sort: Any,
        return_document: str | None,
        what: str,
    ) -> Any:
        backoff = ContentionBackoff(what)
        while True:
            section = _VersionedSection(self, retry=(node, update) if multi else None)
            try:
                return await super().update(
                    node,
                    update,
                    multi=multi,
                    upsert=upsert,
                    session=section,
                    allow_scan=allow_scan,
                    sort=sort,
                    return_document=return_document,
                )
            except _Conflict:
                await backoff.lost()
            except DuplicateKey:
                if not upsert:
                    raise
                await backoff.lost()  # a concurrent upsert inserted it: re-read

    # --- breadth: bulk_write runs by key as one TransactWriteItems ----------------------------

    async def bulk_batch(
        self,
        ops: list[WriteOp],
        progress: BulkProgress,
        *,
        ordered: bool,
        session: Session | None,
    ) -> int:
        """Outside a transaction, a run of up to 100 updates and deletes by key is one
        BatchGetItem, the operations applied in order in process (a later one sees an earlier
        one's result), and one TransactWriteItems of the changed items, each conditional on the
        version read: all of the run or none, re-read and redone when a concurrent writer won a
        race. Other operations go the shared way (runs of inserts batched, the rest one by
        one)."""
        first = ops[progress.next]
        if session is None and self.spec.ttl is None and self._update_by_one_key(first):
            return await self._bulk_by_key_cas(ops, progress, ordered=ordered)
        return await super().bulk_batch(ops, progress, ordered=ordered, session=session)

    async def _bulk_by_key_cas(
        self, ops: list[WriteOp], progress: BulkProgress, *, ordered: bool
    ) -> int:
        start = progress.next
        run: list[tuple[WriteOp, KeyTuple]] = []
        for op in ops[start : start + MAX_TRANSACTION_ITEMS]:
            key = self._update_by_one_key(op)
            if key is None:
                break
            run.append((op, key))
        self.store.check_not_owner()
        keys = list(dict.fromkeys(key for _, key in run))
        backoff = ContentionBackoff(f"a bulk write to {self.spec.name!r}")
        while True:
            items = await self._get_many([self.key(k) for k in keys])
            read = {k: item for k, item in zip(keys, items, strict=True) if item is not None}
            before = {k: decode_body(item[BODY]["S"]) for k, item in read.items()}
            counts, current, done = self._bulk_apply_run(run, before, start, ordered)
            token = WriteStamp.token()
            writes = [
                self.write_op(
                    k,
                    current[k],
                    int(read[k][VERSION]["N"]),
                    token=token,
                    prior=_stamp_text(read[k]),
                )
                for k in keys
                if k in before and current[k] is not before[k]
            ]
            try:
                await self._commit_run(writes, token)
            except _Conflict:
                await backoff.lost()  # nothing of the run was written: read it again
                continue
            progress.matched += counts.matched
            progress.modified += counts.modified
            progress.deleted += counts.deleted
            progress.errors.extend(counts.errors)
            progress.next = start + done
            return done

    def _bulk_apply_run(
        self,
        run: list[tuple[WriteOp, KeyTuple]],
        before: dict[KeyTuple, Doc],
        start: int,
        ordered: bool,
    ) -> tuple[BulkProgress, dict[KeyTuple, Doc | None], int]:
        """The run applied in order to the documents read: the counts, each key's document
        after it (None: deleted; absent keys stay absent) and how many operations were taken."""
        now = datetime.now(UTC)
        counts = BulkProgress()
        current: dict[KeyTuple, Doc | None] = {k: before.get(k) for _, k in run}
        done = 0
        for i, (op, key) in enumerate(run):
            doc = current[key]
            done = i + 1
            after = self._apply_by_key(op, doc, now, counts, start + i)
            if after is _FAILED:
                if ordered:
                    break
                continue
            if after is not _UNCHANGED:
                current[key] = after
        return counts, current, done

    async def _commit_run(self, writes: list[dict[str, Any]], token: str) -> None:
        """The run's conditional writes, all or none; ``_Conflict`` if a version moved."""
        if not writes:
            return
        client = self.store.client
        try:
            await _retrying(client.transact_write_items, TransactItems=writes)
        except client.exceptions.TransactionCanceledException as exc:
            if _transaction_landed(exc, writes, token):
                return  # a resend that met its own commit
            codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                raise _Conflict from None
            raise TransactionError(f"bulk write cancelled: {codes}") from exc


class _VersionedSection(DynamoSession):
    """Outside a transaction: reads record versions so that writes can be conditional."""

    def __init__(self, coll: DynamoCollection, retry: tuple[Any, Any] | None = None) -> None:
        super().__init__(transaction=False)
        self.coll = coll
        self.retry = retry


# CreateTable's rule for table and index names; asyncdb's own names ([A-Za-z0-9_-], 1-128
# characters) are a subset of its characters but not of its lengths.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def check_table_names(spec: CollectionSpec, table: str) -> None:
    """A name CreateTable would refuse (fewer than 3 or more than 255 characters, a character
    outside ``[A-Za-z0-9_.-]``) is a ConfigurationError here, like every other invalid name,
    before any I/O; the table name is the URL's ``table_prefix`` and the collection name."""
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigurationError(
            f"invalid collection name {spec.name!r}: DynamoDB table names hold 3-255 characters "
            f"of [A-Za-z0-9_.-] and the table would be {table!r} (use a longer name or a "
            "table_prefix= in the URL)"
        )
    for index in spec.indexes:
        if not _TABLE_NAME.fullmatch(index.name):
            raise ConfigurationError(
                f"invalid index name {index.name!r}: DynamoDB index names hold 3-255 "
                "characters of [A-Za-z0-9_.-]"
            )


def table_definition(spec: CollectionSpec, table: str) -> dict[str, Any]:
    """The CreateTable request of a collection (on-demand billing, string keys, GSIs)."""
    layout = TableLayout.of(spec)
    attributes = {layout.hash_attr}
    key_schema = [{"AttributeName": layout.hash_attr, "KeyType": "HASH"}]
    if layout.range_attr is not None:
        attributes.add(layout.range_attr)
        key_schema.append({"AttributeName": layout.range_attr, "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": table,
        "KeySchema": key_schema,
        "BillingMode": "PAY_PER_REQUEST",
    }
    gsis = []
    for gsi in layout.gsis:
        attributes.update((gsi.hash_attr, gsi.range_attr))
        gsis.append(
            {
                "IndexName": gsi.name,
                "KeySchema": [
                    {"AttributeName": gsi.hash_attr, "KeyType": "HASH"},
                    {"AttributeName": gsi.range_attr, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    if gsis:
        request["GlobalSecondaryIndexes"] = gsis
    request["AttributeDefinitions"] = [
        {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
    ]
    return request


def _boto_value(value: Any) -> Any:
    """boto3 serialises numbers from Decimal only."""
    if type(value) is float:
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_boto_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _boto_value(v) for k, v in value.items()}
    return value


def _no_credentials() -> bool:
    """Whether the usual credential chain finds nothing (env, files, instance role)."""
    import botocore.session

    return botocore.session.get_session().get_credentials() is None


def _used_values(request: DynamoRequest, condition: str | None = None) -> dict[str, Any]:
    """The placeholders one call uses (DynamoDB rejects unused ones)."""
    text = (request.filter or "") + " " + (condition or "")
    return {k: v for k, v in request.values.items() if _mentions(text, k)}


def _mentions(text: str, placeholder: str) -> bool:
    start = 0
    while (i := text.find(placeholder, start)) != -1:
        end = i + len(placeholder)
        if end == len(text) or not text[end].isdigit():
            return True
        start = end
    return False


def _used_names(request: DynamoRequest, condition: str | None) -> dict[str, str]:
    text = (request.filter or "") + " " + (condition or "")
    return {k: v for k, v in request.names.items() if _mentions(text, k)}


async def _backoff(attempt: int) -> None:
    """Exponential backoff with full jitter (10 ms base, 2 s cap)."""
    await asyncio.sleep(random.uniform(0, min(2.0, 0.01 * 2**attempt)))


_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}
# A 500 may have been applied: a later failed condition is checked against the stamp.
_MAYBE_APPLIED_CODES = {"InternalServerError"}


def _stamp_text(item: Mapping[str, Any]) -> str | None:
    stamp: str | None = item.get(STAMP, {}).get("S")
    return stamp


def _next_stamp(seen: int | None, prior: str | None, token: str) -> WriteStamp:
    """The stamp of a write over version ``seen`` (None: a new item) whose stamp read was
    ``prior``; an item written before stamps were kept starts its history here."""
    base = WriteStamp.decode(prior)
    if base.number != (seen or 0):
        base = WriteStamp(seen or 0, ())
    return base.next(token)


def _landed(old: Mapping[str, Any] | None, token: str, written: Mapping[str, Any]) -> bool:
    """Whether ``old`` (the item a failed condition returned) holds the write ``written``
    (carrying ``token``)."""
    if not old:
        return False
    mine = WriteStamp(int(written[VERSION]["N"]), (token,))
    return WriteStamp.decode(_stamp_text(old)).proves(mine)


def _resent(exc: Any) -> bool:
    """Whether the request was sent more than once (by botocore, or by ``_retrying`` after an
    error that may have been applied): a failed condition may then meet the first attempt."""
    retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    return bool(retries) or bool(getattr(exc, "asyncdb_resent", False))


def _transaction_landed(exc: Any, ops: list[dict[str, Any]], token: str) -> bool:
    """Whether a cancelled TransactWriteItems is a resend that met its own commit: a put's
    item holds its stamp (``token``), or, for deletes only, after a resend, every item is gone."""
    reasons = exc.response.get("CancellationReasons", [])
    failed = [
        (op, r) for op, r in zip(ops, reasons, strict=False) if r.get("Code") not in (None, "None")
    ]
    if not failed or any(r.get("Code") != "ConditionalCheckFailed" for _, r in failed):
        return False
    for op, reason in failed:
        if "Put" in op and token:
            return _landed(reason.get("Item"), token, op["Put"]["Item"])
    return _resent(exc) and all("Delete" in op and not r.get("Item") for op, r in failed)


def _too_large(exc: Any) -> bool:
    meta = exc.response.get("ResponseMetadata", {})
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    code = exc.response.get("Error", {}).get("Code", "")
    return meta.get("HTTPStatusCode") == 413 or (
        code == "ValidationException" and ("size" in message and "exceed" in message)
    )


async def _retrying(call: Any, **params: Any) -> Any:
    """A client call, retried with backoff while DynamoDB throttles. An item or request over
    DynamoDB's size limits is a QueryError (it cannot succeed: not retried)."""
    from botocore.exceptions import ClientError

    resent = False
    for attempt in range(1, MAX_RETRIES + 1):
        try:
            return await call(**params)
        except ClientError as exc:
            if _too_large(exc):
                message = exc.response.get("Error", {}).get("Message", "")
                raise QueryError(
                    f"DynamoDB refused the request as too large (an item holds at most 400 KB,"
                    f" a request 16 MB): {message or exc}"
                ) from exc
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in _THROTTLED or attempt == MAX_RETRIES:
                if resent:
                    exc.asyncdb_resent = True
                raise
            resent = resent or code in _MAYBE_APPLIED_CODES
            await _backoff(attempt)
    raise BackendError("unreachable")
