"""Where a copy reads from: a plan of parts, each read in batches from a resumable position.

A *part* is a JSON-able description of a share of one collection (a key range ``{"lo": key,
"hi": key}`` here; a DynamoDB scan segment in :mod:`asyncdb.movement.foreign`), and a
*position* is where a reader stopped inside it (the last key written, a scan's
``LastEvaluatedKey``). The copy checkpoints ``(part, position)`` after the destination
acknowledged a batch, so a restarted copy continues from the data layout itself.

:class:`CollectionSource` reads an asyncdb collection through the public API: one key-sorted
``find`` per part, restricted by key-range filters. Keys may mix types (numbers < strings <
dates, BSON order); the filters add ``$type`` alternatives so that a range written as
``"m" <= key`` also holds every date key, as the sort does.

>>> range_filter(("id",), ("m",), None)
{'$or': [{'id': {'$gte': 'm'}}, {'id': {'$type': 'date'}}]}
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from asyncdb.collection import LIST_AT_ONCE, Collection
from asyncdb.types import CollectionSpec

Doc = dict[str, Any]
Key = tuple[Any, ...]
Part = dict[str, Any]

KEY_TYPES = ("number", "string", "date")  # BSON order of the key types
# Stores whose key-range reads with a limit are index range scans: a part whose keys share
# one type is read one bounded query per batch (see CollectionSource.batches).
PAGED = frozenset({"sqlite"})
# Backends whose collection a copy reads in one key-sorted cursor, its ``workers`` writing
# several batches at once (copier.py): MongoDB streams a sorted cursor faster than any
# destination writes, and a part's ranged read costs the test server (SecantusDB) a scan
# and a sort of the whole collection, so parts multiplied the reads' cost (and planning them
# cost one more sorted read of every key).
ONE_READER = frozenset({"mongo"})
PLAN_SAMPLE = 1024  # keys kept while planning key ranges


def _type_rank(value: Any) -> int:
    if isinstance(value, datetime):
        return 2
    return 1 if isinstance(value, str) else 0


def _beyond(field: str, value: Any, op: str, plain: bool = False) -> dict[str, Any]:
    """``field op value`` in BSON order across key types (op: $gt $gte $lt $lte); ``plain``:
    the keys are known to share one type, so the plain comparison (a key-range access) is
    exact."""
    if plain:
        return {field: {op: value}}
    rank = _type_rank(value)
    others = KEY_TYPES[rank + 1 :] if op in ("$gt", "$gte") else KEY_TYPES[:rank]
    if not others:
        return {field: {op: value}}
    return {"$or": [{field: {op: value}}, *({field: {"$type": t}} for t in others)]}


def key_compare(fields: tuple[str, ...], key: Key, op: str, plain: bool = False) -> dict[str, Any]:
    """Documents whose key tuple compares ``op`` (``$gt``, ``$gte``, ``$lt``) to ``key``."""
    strict = op in ("$gt", "$lt")
    step = "$gt" if op in ("$gt", "$gte") else "$lt"
    terms: list[dict[str, Any]] = []
    for i, field in enumerate(fields):
        last = i == len(fields) - 1
        cond = _beyond(field, key[i], step if strict or not last else op, plain)
        prefix = [{f: v} for f, v in zip(fields[:i], key[:i], strict=True)]
        terms.append({"$and": [*prefix, cond]} if prefix else cond)
    return terms[0] if len(terms) == 1 else {"$or": terms}


def range_filter(
    fields: tuple[str, ...], lo: Key | None, hi: Key | None, plain: bool = False
) -> dict[str, Any]:
    """Documents with ``lo <= key < hi`` (None: unbounded).

    >>> range_filter(("id",), ("a",), ("m",), plain=True)
    {'$and': [{'id': {'$gte': 'a'}}, {'id': {'$lt': 'm'}}]}
    """
    conds = []
    if lo is not None:
        conds.append(key_compare(fields, lo, "$gte", plain))
    if hi is not None:
        conds.append(key_compare(fields, hi, "$lt", plain))
    if not conds:
        return {}
    return conds[0] if len(conds) == 1 else {"$and": conds}


def key_filter(fields: tuple[str, ...], keys: list[Key]) -> dict[str, Any]:
    """Documents with one of ``keys``."""
    if len(fields) == 1:
        return {fields[0]: {"$in": [k[0] for k in keys]}}
    return {"$or": [dict(zip(fields, k, strict=True)) for k in keys]}


class Source(Protocol):
    """A collection to copy from (asyncdb's own, or one another application wrote)."""

    spec: CollectionSpec
    backend: str

    async def parts(self, n: int) -> list[Part]:
        """``n`` (or fewer) disjoint parts covering the collection."""
        ...

    def batches(self, part: Part, position: Any, size: int) -> AsyncIterator[tuple[list[Doc], Any]]:
        """The part's documents after ``position``, in batches, each with the position after it."""
        ...

    def documents(self, part: Part | None) -> AsyncIterator[Doc]:
        """Every document of the part (None: the whole collection), in any order."""
        ...

    async def count(self) -> int: ...


def converter(source: Source) -> Callable[[Doc], Doc] | None:
    """The source's raw-document -> portable-document function (readers of foreign stores
    yield driver documents and convert them here, so a bad one is handled per document)."""
    fn: Callable[[Doc], Doc] | None = getattr(source, "convert", None)
    return fn


def _key(value: Any) -> Key | None:
    return None if value is None else tuple(value)


class CollectionSource:
    """An asyncdb collection read through the public API, in key ranges."""

    def __init__(self, coll: Collection, backend: str, encrypted: Any = None) -> None:
        self.coll = coll
        spec = coll.spec  # plain str names (a reflected table's are SQLAlchemy quoted_name)
        self.spec = replace(
            spec,
            name=str(spec.name),
            key=tuple(str(k) for k in spec.key),
            encrypted=encrypted or spec.encrypted,  # the catalog's, as the handle has none
        )
        self.backend = backend
        self.one_reader = backend in ONE_READER
        self._sort = [(k, 1) for k in self.spec.key]

    async def count(self) -> int:
        return await self.coll.count_documents({}, allow_scan=True)

    async def _end(self, direction: int) -> Doc | None:
        """The document with the smallest (1) or largest (-1) key."""
        found = await self.coll.find(
            {}, sort=[(k, direction) for k in self.spec.key], limit=1, allow_scan=True, cache=False
        ).to_list()
        return found[0] if found else None

    async def _one_key_type(self) -> bool:
        """Whether every key has the same type (a single key field whose smallest and largest
        values, in BSON order, are of one type): then plain comparisons are exact."""
        if len(self.spec.key) != 1:
            return False
        field = self.spec.key[0]
        first, last = await asyncio.gather(self._end(1), self._end(-1))
        if first is None or last is None:
            return True
        return _type_rank(first[field]) == _type_rank(last[field])

    async def parts(self, n: int) -> list[Part]:
        """Key ranges of about equal size, planned in one key-sorted read of the keys alone
        (one round of the store's sort instead of a count, two end reads and ``n - 1`` sorted
        skips): every ``stride``-th key is kept, at most PLAN_SAMPLE of them (the stride
        doubles when they would be more), so the split points fall within ``stride`` keys of
        the equal shares in constant memory."""
        if n <= 1:
            # one part has no bounds: ``plain`` serves a resumed position alone, and the
            # type-aware comparison is exact for any keys, so only a paged store (whose pages
            # need the plain comparison) pays the two end reads that decide it
            plain = await self._one_key_type() if self.backend in PAGED else False
            return [{"lo": None, "hi": None, "plain": plain}]
        if self.backend in PAGED:
            return await self._skip_parts(n)
        fields = self.spec.key
        kept: list[Key] = []  # kept[j]: the key at position j * stride
        stride, total = 1, 0
        last: Key | None = None
        keys_only = {f: 1 for f in fields}
        async for doc in self.coll.find(
            {}, projection=keys_only, sort=self._sort, allow_scan=True, cache=False
        ):
            last = tuple(doc[f] for f in fields)
            if total % stride == 0:
                kept.append(last)
                if len(kept) > PLAN_SAMPLE:
                    kept, stride = kept[::2], stride * 2
            total += 1
        plain = len(fields) == 1 and (last is None or _type_rank(kept[0][0]) == _type_rank(last[0]))
        bounds: list[Key] = []
        for i in range(1, n):
            j = min(round(total * i / n / stride), len(kept) - 1)
            if j > 0 and (not bounds or bounds[-1] != kept[j]):
                bounds.append(kept[j])
        edges: list[Key | None] = [None, *bounds, None]
        return [{"lo": edges[i], "hi": edges[i + 1], "plain": plain} for i in range(len(edges) - 1)]

    async def _key_at(self, skip: int) -> Key | None:
        found = await self.coll.find(
            {}, sort=self._sort, skip=skip, limit=1, allow_scan=True, cache=False
        ).to_list()
        return tuple(found[0][k] for k in self.spec.key) if found else None

    async def _skip_parts(self, n: int) -> list[Part]:
        """``parts`` on a paged store: its count, its end keys and ``n - 1`` key-sorted reads of
        one document past ``skip`` others (OFFSET steps over the key index inside the engine,
        where the sampled read decodes every document), concurrently."""
        one_type = asyncio.ensure_future(self._one_key_type())
        try:
            total = await self.count()
            skips = sorted({total * i // n for i in range(1, n)} - {0})
            found = await asyncio.gather(*(self._key_at(skip) for skip in skips))
            plain = await one_type
        finally:
            if not one_type.done():
                one_type.cancel()
                await asyncio.gather(one_type, return_exceptions=True)
        bounds: list[Key] = []
        for key in found:
            if key is not None and (not bounds or bounds[-1] != key):
                bounds.append(key)
        edges: list[Key | None] = [None, *bounds, None]
        return [{"lo": edges[i], "hi": edges[i + 1], "plain": plain} for i in range(len(edges) - 1)]

    def _filter(self, part: Part | None, after: Key | None = None) -> dict[str, Any]:
        fields = self.spec.key
        plain = bool(part and part.get("plain"))
        conds = []
        if part is not None:
            f = range_filter(fields, _key(part.get("lo")), _key(part.get("hi")), plain)
            if f:
                conds.append(f)
        if after is not None:
            conds.append(key_compare(fields, after, "$gt", plain))
        if not conds:
            return {}
        return conds[0] if len(conds) == 1 else {"$and": conds}

    def _page_filter(self, part: Part, after: Key | None) -> dict[str, Any]:
        """``_filter(part, after)`` with one lower bound: a key past ``after`` is in the part
        once it is below ``hi`` (``after`` is a key of the part), and SQL planners bound an
        index range by one lower bound only, which must be the tighter one."""
        fields, plain = self.spec.key, bool(part.get("plain"))
        if after is None:
            return range_filter(fields, _key(part.get("lo")), _key(part.get("hi")), plain)
        conds = [key_compare(fields, after, "$gt", plain)]
        hi = _key(part.get("hi"))
        if hi is not None:
            conds.append(key_compare(fields, hi, "$lt", plain))
        return conds[0] if len(conds) == 1 else {"$and": conds}

    async def _pages(
        self, part: Part, position: Any, size: int
    ) -> AsyncIterator[tuple[list[Doc], Any]]:
        """``batches`` as one key-sorted query of ``size`` documents per batch, from the last
        key read on: each batch is read and decoded whole, with no generator per document."""
        fields = self.spec.key
        after = _key(position)
        while True:
            batch = await self.coll.find(
                self._page_filter(part, after),
                sort=self._sort,
                limit=size,
                allow_scan=True,
                cache=False,
            ).to_list()
            if not batch:
                return
            last = [batch[-1][k] for k in fields]
            yield batch, last
            if len(batch) < size:
                return
            after = tuple(last)

    async def batches(
        self, part: Part, position: Any, size: int
    ) -> AsyncIterator[tuple[list[Doc], Any]]:
        if self.backend in PAGED and part.get("plain") and size <= LIST_AT_ONCE:
            async for paged in self._pages(part, position, size):
                yield paged
            return
        fields = self.spec.key
        cursor = self.coll.find(
            self._filter(part, _key(position)), sort=self._sort, allow_scan=True, cache=False
        )
        batch: list[Doc] = []
        async for doc in cursor:
            batch.append(doc)
            if len(batch) >= size:
                yield batch, [batch[-1][k] for k in fields]
                batch = []
        if batch:
            yield batch, [batch[-1][k] for k in fields]

    async def documents(self, part: Part | None) -> AsyncIterator[Doc]:
        async for doc in self.coll.find(self._filter(part), allow_scan=True, cache=False):
            yield doc


def key_of(doc: Mapping[str, Any], fields: tuple[str, ...]) -> Key:
    return tuple(doc[f] for f in fields)


__all__ = [
    "CollectionSource",
    "Part",
    "Source",
    "converter",
    "key_compare",
    "key_filter",
    "key_of",
    "range_filter",
]
