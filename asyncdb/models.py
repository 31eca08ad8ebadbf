"""Typed collections: ``db.collection(name, model=Model)`` with a pydantic v2 model (extra
``models``).

A layer above the collection's storage calls: on the way in, a document (a model instance or a
mapping) is validated against the model and dumped to portable values (enums to their values,
UUIDs to strings, tuples and sets to lists) before any I/O; on the way out, each stored document
is validated into a model instance. Projected reads return dicts (a model with fields left out
would not validate). Filters may use enum members and UUIDs as values.

>>> import asyncio, asyncdb, pydantic
>>> class Alert(pydantic.BaseModel):
...     id: str | None = None
...     priority: int
>>> async def main():
...     async with asyncdb.connect("memory://") as db:
...         alerts = db.collection("alerts", model=Alert)
...         key = await alerts.insert_one(Alert(id="a1", priority=80))
...         return await alerts.find_one({"id": key})
>>> asyncio.run(main())
Alert(id='a1', priority=80)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Iterable, Mapping
from enum import Enum
from typing import Annotated, Any, TypeVar
from uuid import UUID

import pydantic
from pydantic import BaseModel, TypeAdapter

from asyncdb.backends.base import Doc, KeyTuple, Session, StoreCollection
from asyncdb.bulk import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from asyncdb.collection import Collection
from asyncdb.errors import ConfigurationError, ValidationError
from asyncdb.types import UpdateResult

M = TypeVar("M")
_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})
# Update operators whose values are field values of the model (validated like a write).
_SETTERS = ("$set", "$setOnInsert")


def _validation_error(model: type[BaseModel], exc: pydantic.ValidationError) -> ValidationError:
    """The first error of ``exc`` as an asyncdb ValidationError naming the field; the input
    value is never part of the message."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    path = ".".join(str(p) for p in first["loc"])
    more = exc.error_count() - 1
    tail = f" (and {more} more error{'s' * (more > 1)})" if more else ""
    return ValidationError(f"{model.__name__}: {first['msg']}{tail}", path=path)


def portable(value: Any) -> Any:
    """``value`` in portable values: enum members become their values, UUIDs strings, tuples,
    sets and frozensets lists; everything else is left to the collection's own validation
    (which names the path of what cannot be stored). Copy on write: ``value`` itself is never
    changed, and comes back as it is when nothing needed converting.

    >>> import uuid, enum
    >>> class Color(str, enum.Enum):
    ...     RED = "red"
    >>> portable({"c": Color.RED, "u": uuid.UUID(int=1), "t": (1, 2)})
    {'c': 'red', 'u': '00000000-0000-0000-0000-000000000001', 't': [1, 2]}
    """
    t = type(value)
    if t in _PLAIN:
        return value
    if t is dict:
        out: dict[Any, Any] | None = None
        for k, v in value.items():
            if type(v) not in _PLAIN:
                new = portable(v)
                if new is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = new
        return value if out is None else out
    if t is list:
        changed: list[Any] | None = None
        for i, v in enumerate(value):
            if type(v) not in _PLAIN:
                new = portable(v)
                if new is not v:
                    if changed is None:
                        changed = list(value)
                    changed[i] = new
        return value if changed is None else changed
    if isinstance(value, Enum):
        return portable(value.value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return [portable(v) for v in value]
    return value


class ModelCodec:
    """Validation and dumping for one model and key (pure: no I/O)."""

    def __init__(self, model: type[BaseModel], key: tuple[str, ...]) -> None:
        self.model = model
        self.key = key
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        stored = {
            (info.alias or name): name for name, info in model.model_fields.items()
        }  # stored field name (the alias, when there is one) -> attribute name
        missing = [k for k in key if k not in stored]
        if missing:
            raise ConfigurationError(
                f"model {model.__name__} has no field for the key {', '.join(missing)}"
            )
        self._stored = stored
        self._key_attrs = tuple(stored[k] for k in key)
        self._required = {
            (info.alias or name) for name, info in model.model_fields.items() if info.is_required()
        }

    def validate(self, doc: Any) -> BaseModel:
        """``doc`` (an instance or a mapping) as a valid model instance."""
        if type(doc) is self.model:
            return doc  # already validated when it was built
        if not isinstance(doc, Mapping | BaseModel):
            raise ValidationError(
                f"a document of {self.model.__name__} must be a model instance or a mapping, "
                f"not {type(doc).__name__}"
            )
        try:
            return self.model.model_validate(
                doc.model_dump() if isinstance(doc, BaseModel) else doc
            )
        except pydantic.ValidationError as exc:
            raise _validation_error(self.model, exc) from None

    def dump(self, instance: BaseModel) -> Doc:
        """The stored form of a valid instance. A key field left None is left out, so the
        collection generates it."""
        data = portable(instance.model_dump(mode="python", by_alias=True))
        for field in self.key:
            if data.get(field, 0) is None:
                del data[field]
        out: Doc = data
        return out

    def load(self, doc: Doc) -> Any:
        """A stored document as a model instance (a stored document that does not validate,
        e.g. one written without the model, is a ValidationError naming the field)."""
        try:
            return self.model.model_validate(doc)
        except pydantic.ValidationError as exc:
            raise _validation_error(self.model, exc) from None

    def set_key(self, instance: BaseModel, key: Any) -> None:
        """Give an inserted instance whose key field was None the key the collection
        generated (validated like an assignment; a frozen model is left as it is)."""
        if instance.model_config.get("frozen"):
            return
        values = key if isinstance(key, tuple) else (key,)
        for attr, value in zip(self._key_attrs, values, strict=True):
            if getattr(instance, attr, 0) is None and not self.model.model_fields[attr].frozen:
                try:
                    instance.__pydantic_validator__.validate_assignment(instance, attr, value)
                except (pydantic.ValidationError, TypeError):
                    return

    def update(self, update: Any) -> Any:
        """An update with the values of ``$set``/``$setOnInsert`` on model fields validated
        (and dumped) against the fields' types, and ``$unset`` of a required field refused."""
        if not isinstance(update, Mapping):
            return update  # a pipeline or a malformed update: the parser decides
        out = dict(update)
        for op in _SETTERS:
            fields = update.get(op)
            if isinstance(fields, Mapping):
                out[op] = {path: self._field_value(path, v) for path, v in fields.items()}
        unset = update.get("$unset")
        if isinstance(unset, Mapping):
            for path in unset:
                if path in self._required:
                    raise ValidationError(
                        f"{self.model.__name__}: the field is required and cannot be unset",
                        path=path,
                    )
        return portable(out)

    def _field_value(self, path: Any, value: Any) -> Any:
        name = self._stored.get(path) if isinstance(path, str) else None
        if name is None:  # a dotted path or a field the model does not declare
            return value
        adapter = self._adapters.get(name)
        if adapter is None:
            info = self.model.model_fields[name]  # the FieldInfo carries the constraints
            adapter = self._adapters[name] = TypeAdapter(Annotated[info.annotation, info])
        try:
            valid = adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise _validation_error(self.model, _relocated(exc, path)) from None
        return adapter.dump_python(valid, mode="python", by_alias=True)


def _relocated(exc: pydantic.ValidationError, field: str) -> pydantic.ValidationError:
    """``exc`` with ``field`` in front of every error location (a TypeAdapter's errors do not
    know the field they were validating)."""
    errors: list[Any] = [
        {**e, "loc": (field, *e["loc"])} for e in exc.errors(include_url=False, include_input=True)
    ]
    return pydantic.ValidationError.from_exception_data(exc.title, errors)


class ModelCollection(Collection[M]):
    """``Collection[Model]``: what ``db.collection(name, model=Model)`` returns."""

    def __init__(
        self,
        db: Any,
        store: StoreCollection,
        session: Session | None = None,
        tx_writes: list[tuple[str, list[KeyTuple] | None]] | None = None,
        *,
        codec: ModelCodec,
    ) -> None:
        super().__init__(db, store, session, tx_writes)
        self.model_codec = codec
        self.model = codec.model

    # --- the way out ------------------------------------------------------------------------

    def _load(self, doc: Doc) -> M:
        loaded: M = self.model_codec.load(doc)
        return loaded

    def _load_list(self, docs: list[Doc]) -> list[M]:
        load = self.model_codec.load
        return [load(d) for d in docs]

    async def _load_stream(self, docs: AsyncIterator[Doc]) -> AsyncIterator[M]:
        load = self.model_codec.load
        try:
            async for doc in docs:
                yield load(doc)
        finally:  # stopped early: the store's stream gives its connection back now
            aclose = getattr(docs, "aclose", None)
            if aclose is not None:
                await aclose()

    # --- the way in -------------------------------------------------------------------------

    async def insert_one(self, doc: Any, *args: Any, **kwargs: Any) -> Any:
        instance = self.model_codec.validate(doc)
        key = await super().insert_one(self.model_codec.dump(instance), *args, **kwargs)
        if instance is doc:
            self.model_codec.set_key(instance, key)
        return key

    async def insert_many(self, docs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        given = list(docs)
        instances = [self.model_codec.validate(d) for d in given]
        keys = await super().insert_many(
            [self.model_codec.dump(i) for i in instances], *args, **kwargs
        )
        for doc, instance, key in zip(given, instances, keys, strict=True):
            if instance is doc:
                self.model_codec.set_key(instance, key)
        return keys

    async def replace_one(self, filter: Any, doc: Any, *args: Any, **kwargs: Any) -> UpdateResult:
        replacement = self.model_codec.dump(self.model_codec.validate(doc))
        return await super().replace_one(portable(filter), replacement, *args, **kwargs)

    async def update_one(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        return await super().update_one(
            portable(filter), self.model_codec.update(update), *args, **kwargs
        )

    async def update_many(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        return await super().update_many(
            portable(filter), self.model_codec.update(update), *args, **kwargs
        )

    async def find_one_and_update(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        return await super().find_one_and_update(
            portable(filter), self.model_codec.update(update), *args, **kwargs
        )

    async def find_one_and_replace(self, filter: Any, doc: Any, *args: Any, **kwargs: Any) -> Any:
        replacement = self.model_codec.dump(self.model_codec.validate(doc))
        return await super().find_one_and_replace(portable(filter), replacement, *args, **kwargs)

    async def find_one_and_delete(self, filter: Any, *args: Any, **kwargs: Any) -> Any:
        return await super().find_one_and_delete(portable(filter), *args, **kwargs)

    async def bulk_write(self, requests: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        """Every operation's documents validated and dumped (and its ``$set`` checked) before
        any I/O. A generated key is not set on an inserted instance (the result carries no
        inserted keys): ``insert_many`` sets them."""
        return await super().bulk_write(
            [self._request(i, r) for i, r in enumerate(requests)], *args, **kwargs
        )

    def _request(self, index: int, request: Any) -> Any:
        """One bulk_write operation in stored form (anything else is left to the base, which
        names what it is not)."""
        codec = self.model_codec
        try:
            if isinstance(request, InsertOne):
                return InsertOne(codec.dump(codec.validate(request.document)))
            if isinstance(request, ReplaceOne):
                replacement = codec.dump(codec.validate(request.replacement))
                return dataclasses.replace(
                    request, filter=portable(request.filter), replacement=replacement
                )
            if isinstance(request, UpdateOne | UpdateMany):
                return dataclasses.replace(
                    request, filter=portable(request.filter), update=codec.update(request.update)
                )
            if isinstance(request, DeleteOne | DeleteMany):
                return dataclasses.replace(request, filter=portable(request.filter))
        except ValidationError as exc:  # named like the base's errors, the field kept in .path
            error = ValidationError(f"bulk_write operation {index}: {exc}")
            error.path = exc.path
            raise error from None
        return request

    async def delete_one(self, filter: Any, *args: Any, **kwargs: Any) -> int:
        return await super().delete_one(portable(filter), *args, **kwargs)

    async def delete_many(self, filter: Any, *args: Any, **kwargs: Any) -> int:
        return await super().delete_many(portable(filter), *args, **kwargs)

    # --- reads: filters may hold enum members and UUIDs -------------------------------------

    def find(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().find(portable(filter), *args, **kwargs)

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        return await super().find_one(portable(filter), *args, **kwargs)

    async def find_page(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        return await super().find_page(portable(filter), *args, **kwargs)

    async def count_documents(self, filter: Any = None, *args: Any, **kwargs: Any) -> int:
        return await super().count_documents(portable(filter), *args, **kwargs)

    async def distinct(
        self, field: str, filter: Any = None, *args: Any, **kwargs: Any
    ) -> list[Any]:
        return await super().distinct(field, portable(filter), *args, **kwargs)

    def aggregate(self, pipeline: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        # Results are dicts (a pipeline reshapes documents); enum members and UUIDs may be
        # values in its stages, as in filters.
        return super().aggregate(portable(list(pipeline)), *args, **kwargs)

    def __repr__(self) -> str:
        return f"<Collection[{self.model.__name__}] {self.spec.name!r} on {self._db.backend}>"


@functools.lru_cache(maxsize=256)
def _codec(model: type[BaseModel], key: tuple[str, ...]) -> ModelCodec:
    """One codec per model and key: handlers may open the collection on every request."""
    return ModelCodec(model, key)


def model_codec(model: type[Any], key: tuple[str, ...]) -> ModelCodec:
    """The codec of ``model`` for a collection keyed ``key`` (a wrong ``model=`` is refused)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigurationError(f"model= takes a pydantic BaseModel subclass, not {model!r}")
    return _codec(model, key)


def model_collection(plain: Collection[Any], model: type[M]) -> Collection[M]:
    """The typed view of ``plain`` (what ``db.collection(name, model=model)`` returns)."""
    codec = model_codec(model, plain.spec.key)
    return ModelCollection(plain._db, plain._store, plain._session, plain._tx_writes, codec=codec)


__all__ = ["ModelCodec", "ModelCollection", "model_codec", "model_collection", "portable"]
