"""Readers that use a store's own driver: collections asyncdb did not write, and DynamoDB's
parallel scan.

* **MongoDB** (pymongo): another application's collection. ``_id`` becomes the key field
  ``id`` (an ObjectId as its 24-hex string; ``key=`` names another field as the key, and
  ``_id`` is then kept, converted, as ``_id``); naive datetimes are read as UTC (that is what
  MongoDB stores), Int64 and Decimal128 become int and Decimal, Binary bytes. Any other BSON
  type (Timestamp, Regex, Code, MinKey, DBRef, ...) refuses that document with
  :class:`ForeignValueError` naming its key and path, which ``on_error`` handles like any bad
  document. Its indexes on plain fields are carried to the destination.
* **SQL tables** (SQLAlchemy reflection): an existing table of a sqlite:// or postgresql://
  database is read in table mode (``db.table(reflected)``): the primary key is the key, columns
  are fields, NULL columns are missing.
* **DynamoDB** (aioboto3): a table of native items (numbers as int when integral, else Decimal;
  sets as sorted lists; binary as bytes; the table's key schema is the key), and asyncdb's own
  tables (their exact document body), both read by parallel ``Scan`` segments: each segment is
  a part, its ``LastEvaluatedKey`` the checkpointed position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from asyncdb._tagged_json import loads
from asyncdb.database import Database
from asyncdb.errors import ConfigurationError, NotSupported, QueryError
from asyncdb.movement.sources import CollectionSource, Doc, Part, Source
from asyncdb.types import CollectionSpec, Index

Key = str | Sequence[str] | None


class ForeignValueError(QueryError):
    """A value of a foreign document that has no portable form (names the key and path)."""


def _keys(key: Key, default: tuple[str, ...]) -> tuple[str, ...]:
    if key is None:
        return default
    return (key,) if isinstance(key, str) else tuple(key)


# --- MongoDB --------------------------------------------------------------------------------


def bson_value(value: Any, path: str, key: Any) -> Any:
    """The portable value of a BSON value read by pymongo."""
    from bson import Binary, Decimal128, Int64, ObjectId

    t = type(value)
    if t is str or t is bool or t is float or value is None:
        return value
    if t is int or t is Int64:
        return int(value)
    if t is dict:
        return {k: bson_value(v, f"{path}.{k}" if path else k, key) for k, v in value.items()}
    if t is list:
        return [bson_value(v, f"{path}.{i}", key) for i, v in enumerate(value)]
    if t is datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if t is ObjectId:
        return str(value)
    if t is Decimal128:
        return value.to_decimal()
    if t is bytes or t is Binary:
        return bytes(value)
    raise ForeignValueError(
        f"document {key!r}: a BSON {type(value).__name__} has no portable form", path=path
    )


class MongoSource:
    """A MongoDB collection another application wrote, read with pymongo in ``_id`` order."""

    def __init__(self, client: Any, coll: Any, name: str, key: Key, indexes: tuple[Index, ...]):
        self._client = client
        self._coll = coll
        self._key_field = None if key is None else _keys(key, ("id",))
        self.spec = CollectionSpec(name, _keys(key, ("id",)), indexes, allow_scan=True)
        self.backend = "mongo"
        self._sort = [(f, 1) for f in (self._key_field or ("_id",))]

    def convert(self, raw: Doc) -> Doc:
        if self._key_field is None:
            key = raw.get("_id")
            body = {k: v for k, v in raw.items() if k != "_id"}
            doc = {"id": bson_value(key, "_id", key)}
            doc.update(bson_value(body, "", key))
            return doc
        shown = tuple(raw.get(k) for k in self._key_field)
        out: Doc = bson_value(raw, "", shown[0] if len(shown) == 1 else shown)
        return out

    async def count(self) -> int:
        return int(await self._coll.count_documents({}))

    async def parts(self, n: int) -> list[Part]:
        return [{}]  # one part in _id order; resumed from the last _id written

    def _after(self, position: Any) -> dict[str, Any]:
        if position is None:
            return {}
        from bson import ObjectId

        values = [ObjectId(v[1]) if v[0] == "oid" else v[1] for v in position]
        fields = [f for f, _ in self._sort]
        if len(fields) == 1:
            return {fields[0]: {"$gt": values[0]}}
        terms = []
        for i, f in enumerate(fields):
            term = {g: values[j] for j, g in enumerate(fields[:i])}
            term[f] = {"$gt": values[i]}
            terms.append(term)
        return {"$or": terms}

    def _position(self, raw: Doc) -> list[list[Any]]:
        from bson import ObjectId

        out = []
        for f, _ in self._sort:
            v = raw.get(f)
            out.append(["oid", str(v)] if isinstance(v, ObjectId) else ["v", v])
        return out

    async def batches(
        self, part: Part, position: Any, size: int
    ) -> AsyncIterator[tuple[list[Doc], Any]]:
        cursor = self._coll.find(self._after(position), sort=self._sort, batch_size=size)
        batch: list[Doc] = []
        async for raw in cursor:
            batch.append(raw)
            if len(batch) >= size:
                yield batch, self._position(batch[-1])
                batch = []
        if batch:
            yield batch, self._position(batch[-1])

    async def documents(self, part: Part | None) -> AsyncIterator[Doc]:
        async for raw in self._coll.find({}):
            yield raw

    async def close(self) -> None:
        await self._client.close()


async def _mongo_client(db: Database) -> tuple[Any, Any]:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(db.url, connect=False, tz_aware=False)
    return client, client.get_default_database()


def _mongo_indexes(info: dict[str, Any]) -> tuple[Index, ...]:
    out = []
    for name, ix in info.items():
        fields = ix.get("key", [])
        if name == "_id_" or not all(d in (1, -1) for _, d in fields):
            continue
        if any(f == "_id" or f.startswith("$") for f, _ in fields):
            continue
        out.append(Index(tuple((f, int(d)) for f, d in fields), bool(ix.get("unique"))))
    return tuple(Index.of(i) for i in out)


async def _mongo_source(db: Database, name: str, key: Key) -> MongoSource:
    client, mdb = await _mongo_client(db)
    coll = mdb[name]
    return MongoSource(client, coll, name, key, _mongo_indexes(await coll.index_information()))


# --- SQL tables -----------------------------------------------------------------------------


async def _reflect(db: Database, names: Sequence[str] | None) -> list[Any]:
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    from asyncdb.backends.table.store import sqlalchemy_url

    _, url = sqlalchemy_url(db.url)
    engine = create_async_engine(url)
    metadata = sqlalchemy.MetaData()
    try:
        async with engine.connect() as conn:
            await conn.run_sync(lambda c: metadata.reflect(c, only=names))
    except sqlalchemy.exc.InvalidRequestError as exc:
        raise ConfigurationError(f"no such table: {exc}") from None
    finally:
        await engine.dispose()
    return [t for t in metadata.sorted_tables if not t.name.startswith("_asyncdb")]


# --- DynamoDB -------------------------------------------------------------------------------


def dynamo_value(value: Any) -> Any:
    """The portable value of a deserialized native DynamoDB attribute."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, set | frozenset):
        return sorted(dynamo_value(v) for v in value)
    if isinstance(value, dict):
        return {k: dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dynamo_value(v) for v in value]
    if type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


class DynamoScanSource:
    """A DynamoDB table read by parallel Scan segments (native items, or asyncdb's bodies)."""

    def __init__(self, client_cm: Any, client: Any, table: str, spec: CollectionSpec, body: bool):
        self._cm = client_cm
        self._client = client
        self._table = table
        self.spec = spec
        self.backend = "dynamodb"
        self._body = body  # asyncdb's table: the exact document is the ._d attribute
        from boto3.dynamodb.types import TypeDeserializer  # type: ignore[import-untyped]

        self._des = TypeDeserializer()
        self._visible: Callable[[Doc], bool] | None = None
        from asyncdb.backends.dynamodb.capacity import CapacityMeter

        # the read units the scans consumed (DynamoDB's figures), and what paces them
        self.capacity = CapacityMeter()
        self.capacity.install(client)
        self.pace: Callable[[], Awaitable[None]] | None = None
        if spec.ttl is not None and body:
            from asyncdb.backends.base import expiry_filter
            from asyncdb.query.evaluate import matches

            node = expiry_filter(spec)
            assert node is not None
            self._visible = lambda doc: matches(node, doc)

    def convert(self, item: Doc) -> Doc:
        if self._body:
            doc: Doc = loads(item["._d"]["S"])
            return doc
        return {k: dynamo_value(self._des.deserialize(v)) for k, v in item.items()}

    async def count(self) -> int:
        reply = await self._client.describe_table(TableName=self._table)
        return int(reply["Table"].get("ItemCount", 0))

    async def parts(self, n: int) -> list[Part]:
        return [{"segment": i, "of": n} for i in range(n)]

    async def _pages(
        self, part: Part | None, position: Any, size: int
    ) -> AsyncIterator[tuple[list[Doc], Any]]:
        params: dict[str, Any] = {"TableName": self._table, "Limit": size, "ConsistentRead": True}
        if part is not None and part.get("of", 1) > 1:
            params.update(Segment=part["segment"], TotalSegments=part["of"])
        if position is not None:
            params["ExclusiveStartKey"] = position
        while True:
            if self.pace is not None:
                await self.pace()  # a read capacity limit: wait for units before the page
            page = await self._client.scan(**params)
            items = page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if items or last is None:
                yield items, last
            if last is None:
                return
            params["ExclusiveStartKey"] = last

    async def batches(
        self, part: Part, position: Any, size: int
    ) -> AsyncIterator[tuple[list[Doc], Any]]:
        async for items, last in self._pages(part, position, size):
            if self._visible is not None:
                items = [i for i in items if self._visible(self.convert(i))]
            yield items, last

    async def documents(self, part: Part | None) -> AsyncIterator[Doc]:
        # paced (a read capacity limit): smaller pages, as each answer's units are only known
        # after it, so one page is what the reads can run ahead of the rate
        size = 1000 if self.pace is None else PACED_PAGE
        async for items, _ in self._pages(part, None, size):
            for item in items:
                if self._visible is None or self._visible(self.convert(item)):
                    yield item

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)


PACED_PAGE = 100  # items per scan page of a verify held to a read capacity limit


async def _dynamo_client(db: Database) -> tuple[Any, Any, str]:
    import aioboto3

    parts = urlsplit(db.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {"region_name": query.get("region") or "us-east-1"}
    if parts.hostname:
        scheme = "https" if query.get("tls") in ("1", "true") else "http"
        port = f":{parts.port}" if parts.port else ""
        kwargs["endpoint_url"] = f"{scheme}://{parts.hostname}{port}"
        key_id, secret = query.get("aws_access_key_id"), query.get("aws_secret_access_key")
        if key_id and secret:
            kwargs.update(aws_access_key_id=key_id, aws_secret_access_key=secret)
        elif await asyncio.to_thread(_no_credentials):  # DynamoDB Local takes any
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")
    cm = aioboto3.Session().client("dynamodb", **kwargs)
    client = await cm.__aenter__()
    return cm, client, query.get("table_prefix") or ""


def _no_credentials() -> bool:
    import botocore.session

    return botocore.session.get_session().get_credentials() is None


async def _dynamo_source(
    db: Database, name: str, key: Key, spec: CollectionSpec | None
) -> DynamoScanSource:
    cm, client, prefix = await _dynamo_client(db)
    try:
        table = prefix + name
        if spec is not None:
            return DynamoScanSource(cm, client, table, spec, body=True)
        try:
            described = (await client.describe_table(TableName=table))["Table"]
        except client.exceptions.ResourceNotFoundException:
            raise ConfigurationError(f"no DynamoDB table {table!r}") from None
        schema = tuple(k["AttributeName"] for k in described["KeySchema"])
        native = CollectionSpec(name, _keys(key, schema), allow_scan=True)
        return DynamoScanSource(cm, client, table, native, body=False)
    except BaseException:
        await cm.__aexit__(None, None, None)
        raise


# --- dispatch -------------------------------------------------------------------------------


async def scan_source(db: Database, spec: CollectionSpec) -> Source:
    """An asyncdb collection on DynamoDB read by parallel scan segments."""
    return await _dynamo_source(db, spec.name, None, spec)


async def discover(db: Database, key: Key) -> list[Source]:
    """Every collection of a database without a catalog (MongoDB collections, SQL tables,
    DynamoDB tables)."""
    if db.backend == "mongo":
        client, mdb = await _mongo_client(db)
        try:
            names = sorted(
                n for n in await mdb.list_collection_names() if not n.startswith("system.")
            )
        finally:
            await client.close()
        return [await _mongo_source(db, n, key) for n in names]
    if db.backend in ("sqlite", "postgres"):
        return [_table_source(db, t) for t in await _reflect(db, None)]
    if db.backend == "dynamodb":
        cm, client, prefix = await _dynamo_client(db)
        try:
            names = []
            async for page in client.get_paginator("list_tables").paginate():
                names += [n[len(prefix) :] for n in page["TableNames"] if n.startswith(prefix)]
        finally:
            await cm.__aexit__(None, None, None)
        return [
            await _dynamo_source(db, n, key, None)
            for n in sorted(names)
            if not n.startswith("_asyncdb")
        ]
    return []


def _table_source(db: Database, table: Any) -> Source:
    return CollectionSource(db.table(table, allow_scan=True), db.backend)


async def source(db: Database, name: str, key: Key) -> Source:
    """A collection the catalog does not know, read with the store's own driver."""
    if db.backend == "mongo":
        return await _mongo_source(db, name, key)
    if db.backend in ("sqlite", "postgres"):
        tables = await _reflect(db, [name])
        if key is not None:
            raise NotSupported("a SQL table's key is its primary key (--key does not apply)")
        return _table_source(db, tables[0])
    if db.backend == "dynamodb":
        return await _dynamo_source(db, name, key, None)
    return CollectionSource(
        db.collection(name, key=_keys(key, ("id",)), allow_scan=True), db.backend
    )


async def close(found: Sequence[Source]) -> None:
    """Release the drivers the readers opened."""
    for s in found:
        closer = getattr(s, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


__all__ = ["DynamoScanSource", "ForeignValueError", "MongoSource", "close", "discover", "source"]
