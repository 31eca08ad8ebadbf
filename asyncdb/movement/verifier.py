"""``asyncdb.verify``: do two databases hold the same documents, exactly?

Each side is streamed once (any order, constant memory) into folds per *hash range*: the key's
64-bit hash (:func:`~asyncdb.movement.digest.key_hash`) picks one of 1,024 ranges, and a range's
fold is its count and the sum of its documents' digests. Ranges that differ are refined: the
next pass re-reads both sides and folds only the documents of the differing ranges, 1,024 finer
ranges each, until the differing ranges hold few enough documents (``LEAF``) to list their keys.
Memory grows with the number of ranges, never with the number of documents; an equal copy costs
one read of each side.

>>> # report = await asyncdb.verify("sqlite:///a.db", "postgresql://u@h/db")
>>> # report.equal, report.missing, report.extra, report.different
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncdb.errors import AsyncDBError
from asyncdb.movement.digest import Fold, document_digest, key_hash
from asyncdb.movement.sources import CollectionSource, Doc, Key, Part, Source, converter, key_of

BITS = 10  # ranges per refinement: 2**BITS
LEAF = 20_000  # list keys once the differing ranges hold at most this many documents
LISTED = 1_000  # keys listed per kind and collection (the counts are always complete)

DocMap = Callable[[Doc], Doc | None]


@dataclass
class CollectionVerify:
    """One collection's comparison: counts, and the keys that differ (at most ``LISTED``)."""

    source_count: int = 0
    destination_count: int = 0
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    different: list[Any] = field(default_factory=list)
    missing_count: int = 0
    extra_count: int = 0
    different_count: int = 0
    passes: int = 0

    @property
    def equal(self) -> bool:
        return not (self.missing_count or self.extra_count or self.different_count)

    def to_dict(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "source_count": self.source_count,
            "destination_count": self.destination_count,
            "missing_count": self.missing_count,
            "extra_count": self.extra_count,
            "different_count": self.different_count,
            "missing": self.missing,
            "extra": self.extra,
            "different": self.different,
            "passes": self.passes,
        }


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`: per collection, and ``.equal`` / ``.missing`` (in the
    source, not the destination) / ``.extra`` (only in the destination) / ``.different`` as
    ``{collection: [keys]}`` (a composite key as a tuple)."""

    collections: dict[str, CollectionVerify] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return all(c.equal for c in self.collections.values())

    @property
    def missing(self) -> dict[str, list[Any]]:
        return {n: c.missing for n, c in self.collections.items() if c.missing}

    @property
    def extra(self) -> dict[str, list[Any]]:
        return {n: c.extra for n, c in self.collections.items() if c.extra}

    @property
    def different(self) -> dict[str, list[Any]]:
        return {n: c.different for n, c in self.collections.items() if c.different}

    def to_dict(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "collections": {n: c.to_dict() for n, c in self.collections.items()},
        }


def _shown(key: Key) -> Any:
    return key[0] if len(key) == 1 else key


PACE_EVERY = 100  # documents read between two waits for capacity (a DynamoDB page is 200)

Pace = Callable[[], Awaitable[None]]


async def _documents(
    source: Source, parts: list[Part] | None, fn: DocMap | None, pace: Pace | None = None
) -> AsyncIterator[Doc]:
    """The side's documents as the copy wrote them; with ``pace`` (a capacity limit: it
    sleeps while the units consumed are ahead of the rate), a wait before the first document
    and after every ``PACE_EVERY``, so the reads of a verify keep to the copy's limit."""
    convert = converter(source)
    read = 0
    for part in parts if parts is not None else [None]:
        async for doc in source.documents(part):
            if pace is not None:
                if read % PACE_EVERY == 0:
                    await pace()
                read += 1
            if convert is not None:
                try:
                    doc = convert(doc)
                except AsyncDBError:  # refused by the copy too (its dead letter names it)
                    continue
            if fn is not None:
                try:
                    mapped = fn(doc)
                except Exception:  # the copy could not move it: it counts as the original
                    mapped = doc
                if mapped is None:
                    continue
                doc = mapped
            yield doc


async def _fold(
    docs: AsyncIterator[Doc], fields: tuple[str, ...], depth: int, wanted: set[int] | None
) -> dict[int, Fold]:
    """Folds per range of ``depth + BITS`` hash bits, of the documents whose range of ``depth``
    bits is ``wanted`` (None: all)."""
    folds: dict[int, Fold] = {}
    shift, coarse = 64 - depth - BITS, 64 - depth
    async for doc in docs:
        h = key_hash(key_of(doc, fields))
        if wanted is not None and (h >> coarse) not in wanted:
            continue
        fold = folds.get(h >> shift)
        if fold is None:
            fold = folds[h >> shift] = Fold()
        fold.add(document_digest(doc))
    return folds


async def _digests(
    docs: AsyncIterator[Doc], fields: tuple[str, ...], depth: int, wanted: set[int]
) -> dict[Key, int]:
    out: dict[Key, int] = {}
    shift = 64 - depth
    async for doc in docs:
        key = key_of(doc, fields)
        if key_hash(key) >> shift in wanted:
            out[key] = document_digest(doc)
    return out


async def verify_collection(
    source: Source,
    destination: Source,
    *,
    parts: list[Part] | None = None,
    fn: DocMap | None = None,
    pace: Pace | None = None,
) -> CollectionVerify:
    """Compare one collection of two sides (``parts``: only those parts of the key space;
    ``pace``: awaited as the sides are read, see ``_documents``)."""
    fields = source.spec.key
    result = CollectionVerify()
    depth, wanted = 0, None
    while True:
        result.passes += 1
        src, dst = await asyncio.gather(
            _fold(_documents(source, parts, fn, pace), fields, depth, wanted),
            _fold(_documents(destination, parts, None, pace), fields, depth, wanted),
        )
        if wanted is None:
            result.source_count = sum(f.count for f in src.values())
            result.destination_count = sum(f.count for f in dst.values())
        depth += BITS
        wanted = {b for b in src.keys() | dst.keys() if src.get(b) != dst.get(b)}
        if not wanted:
            return result
        size = sum(max(src.get(b, Fold()).count, dst.get(b, Fold()).count) for b in wanted)
        if size <= LEAF or depth + BITS > 64:
            break
    result.passes += 1
    a, b = await asyncio.gather(
        _digests(_documents(source, parts, fn, pace), fields, depth, wanted),
        _digests(_documents(destination, parts, None, pace), fields, depth, wanted),
    )
    missing = sorted((k for k in a if k not in b), key=repr)
    extra = sorted((k for k in b if k not in a), key=repr)
    different = sorted((k for k in a if k in b and a[k] != b[k]), key=repr)
    result.missing_count, result.extra_count = len(missing), len(extra)
    result.different_count = len(different)
    result.missing = [_shown(k) for k in missing[:LISTED]]
    result.extra = [_shown(k) for k in extra[:LISTED]]
    result.different = [_shown(k) for k in different[:LISTED]]
    return result


LOOKUP_BATCH = 100


async def verify_share_by_key(
    source: Source,
    destination: CollectionSource,
    parts: list[Part],
    fn: DocMap | None = None,
    pace: Pace | None = None,
) -> CollectionVerify:
    """Compare a share of a collection that no destination filter can select (DynamoDB scan
    segments): each source document of the share is looked up by key in the destination, in
    batches. Missing and different documents are found; documents only in the destination
    cannot be attributed to a share (a full :func:`verify` finds them)."""
    from asyncdb.movement.sources import key_filter

    fields = source.spec.key
    result = CollectionVerify(passes=1)
    batch: dict[Key, int] = {}

    async def check() -> None:
        if pace is not None:
            await pace()
        found = destination.coll.find(key_filter(fields, list(batch)), allow_scan=True, cache=False)
        seen: dict[Key, int] = {}
        async for doc in found:
            seen[key_of(doc, fields)] = document_digest(doc)
        result.destination_count += len(seen)
        for key, digest in batch.items():
            if key not in seen:
                result.missing_count += 1
                if len(result.missing) < LISTED:
                    result.missing.append(_shown(key))
            elif seen[key] != digest:
                result.different_count += 1
                if len(result.different) < LISTED:
                    result.different.append(_shown(key))
        batch.clear()

    async for doc in _documents(source, parts, fn, pace):
        result.source_count += 1
        batch[key_of(doc, fields)] = document_digest(doc)
        if len(batch) >= LOOKUP_BATCH:
            await check()
    if batch:
        await check()
    return result


async def verify(
    src: Any,
    dst: Any,
    collections: Sequence[str] | None = None,
    *,
    key: str | Sequence[str] | None = None,
    transform: Any = None,
    anonymize: Any = None,
    max_rcu: float | None = None,
) -> VerifyReport:
    """Compare the collections (the source's catalog by default) of ``src`` and ``dst``
    (URLs or Databases), document by document over their exact tagged JSON. ``transform`` and
    ``anonymize`` are applied to the source's documents first, as :func:`~asyncdb.copy` does.
    ``max_rcu`` caps the DynamoDB read capacity units per second both sides' reads consume
    (as :func:`~asyncdb.copy`'s, from DynamoDB's ``ConsumedCapacity``).

    >>> import asyncio, asyncdb
    >>> async def main():
    ...     async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
    ...         await a.collection("t").insert_many([{"id": "x", "n": 1}, {"id": "y"}])
    ...         await b.collection("t").insert_many([{"id": "x", "n": 1.0}, {"id": "z"}])
    ...         r = await asyncdb.verify(a, b)
    ...         return r.equal, r.missing, r.extra, r.different
    >>> asyncio.run(main())
    (False, {'t': ['y']}, {'t': ['z']}, {'t': ['x']})
    """
    from asyncdb.movement.copier import CapacityLimit, paced_by
    from asyncdb.movement.resolve import (
        callable_of,
        chain,
        opened,
        same_keys,
        sources,
        spec_collection,
    )

    fn = chain(callable_of(transform, "transform"), callable_of(anonymize, "anonymize"))
    capacity = CapacityLimit(max_rcu, None)
    report = VerifyReport()
    from asyncdb.movement.foreign import close

    async with opened(src) as src_db, opened(dst) as dst_db:
        sealed = not same_keys(src_db, dst_db)  # other keys: compare what the fields hold
        found = await sources(src_db, collections, key, sealed=sealed)
        try:
            pace = paced_by(capacity, [src_db, dst_db], found)
            for source in found:
                dst_coll = spec_collection(dst_db, source.spec, sealed=sealed)
                other = CollectionSource(dst_coll, dst_db.backend)
                report.collections[source.spec.name] = await verify_collection(
                    source, other, fn=fn, pace=pace
                )
        finally:
            await close(found)
    return report


__all__ = [
    "CollectionVerify",
    "VerifyReport",
    "verify",
    "verify_collection",
    "verify_share_by_key",
]
