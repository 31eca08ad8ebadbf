"""``asyncdb.copy``: every document of a source's collections into a destination, resumably.

The plan: each collection is split into parts (key ranges; DynamoDB scan segments), ``workers``
parts are copied at once, each part read in batches of ``batch_size`` in key order and written
through the destination's bulk path (``insert_many``); a source read by one reader (an asyncdb
MongoDB collection) is one part whose ``workers`` batches are written at once. After the
destination acknowledged a batch and every batch before it, the part's position advances in
the checkpoint (:mod:`asyncdb.movement.checkpoint`). A
restarted copy with ``resume=True`` continues every part from its position; the batch that was
in flight when the process died may be partly written already, so a batch whose insert meets an
existing key is re-applied by key (missing documents inserted, differing ones replaced, equal
ones left alone): no duplicates, no gaps.

>>> # report = await asyncdb.copy("sqlite:///app.db", "postgresql://u@h/app", workers=4)
>>> # report.written, report.verify.equal
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from asyncdb._tagged_json import dumps
from asyncdb.bulk import InsertOne, ReplaceOne
from asyncdb.collection import Collection, owned_documents
from asyncdb.errors import (
    AsyncDBError,
    BackendUnavailable,
    BulkWriteError,
    ConfigurationError,
    DuplicateKey,
    OperationTimeout,
)
from asyncdb.movement.checkpoint import (
    DEFAULT_COLLECTION,
    DESTINATION,
    Checkpoint,
    DestinationCheckpoint,
    default_path,
)
from asyncdb.movement.foreign import close as close_sources
from asyncdb.movement.resolve import (
    Side,
    callable_of,
    chain,
    opened,
    same_keys,
    sources,
    spec_collection,
)
from asyncdb.movement.sources import (
    CollectionSource,
    Doc,
    Key,
    Part,
    Source,
    converter,
    key_filter,
    key_of,
)
from asyncdb.movement.verifier import VerifyReport, verify_collection, verify_share_by_key
from asyncdb.resilience import together

T = TypeVar("T")
DocMap = Callable[[Doc], Doc | None]


class CopyError(AsyncDBError):
    """A document the copy could not move (``on_error="stop"``): its collection, key and cause.

    >>> str(CopyError("alerts", "a1", ValueError("bad")))
    "alerts 'a1': ValueError: bad"
    """

    def __init__(self, collection: str, key: Any, cause: BaseException) -> None:
        self.collection = collection
        self.key = key
        self.cause = cause
        super().__init__(f"{collection} {key!r}: {type(cause).__name__}: {cause}")


@dataclass
class CollectionCopy:
    """Counts of one collection's copy (this run)."""

    read: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "written": self.written,
            "skipped": self.skipped,
            "failed": self.failed,
        }


@dataclass
class CopyReport:
    """The outcome of :func:`copy`: counts per collection and in total (``read``, ``written``,
    ``skipped`` by the transform, ``failed`` to the dead-letter file), ``seconds``, and the
    verification (``verify``, None with ``verify=False``)."""

    collections: dict[str, CollectionCopy] = field(default_factory=dict)
    seconds: float = 0.0
    verify: VerifyReport | None = None
    dead_letter: str | None = None
    resumed: bool = False
    # a Firestore destination: the composite indexes to deploy (``firestore.indexes.json``)
    firestore_indexes: dict[str, Any] | None = None
    # DynamoDB sides: the read and write capacity units the copy consumed
    capacity: dict[str, float] | None = None

    def _sum(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.collections.values())

    @property
    def read(self) -> int:
        return self._sum("read")

    @property
    def written(self) -> int:
        return self._sum("written")

    @property
    def skipped(self) -> int:
        return self._sum("skipped")

    @property
    def failed(self) -> int:
        return self._sum("failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "written": self.written,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "resumed": self.resumed,
            "dead_letter": self.dead_letter,
            "collections": {n: c.to_dict() for n, c in self.collections.items()},
            "verify": None if self.verify is None else self.verify.to_dict(),
            "firestore_indexes": self.firestore_indexes,
            "capacity": self.capacity,
        }


# Errors of the service rather than of a document: never dead-lettered, they end the copy.
_SERVICE_ERRORS = (BackendUnavailable, OperationTimeout)


class RateLimit:
    """At most ``rate`` documents per second across all workers (None: unlimited)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ConfigurationError("rate must be a positive number of documents per second")
        self.rate = rate
        self._next = time.monotonic()

    async def take(self, n: int) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + n / self.rate
        if start > now:
            await asyncio.sleep(start - now)


class CapacityLimit:
    """At most ``max_rcu`` read and ``max_wcu`` write capacity units per second (DynamoDB),
    counted from the ``ConsumedCapacity`` DynamoDB returns with each answer: a token bucket per
    kind holding up to one second of units, refilled continuously, from which each answer's
    units are taken after the fact; a request waits while its bucket is below zero.

    >>> written = [0.0]
    >>> limit = CapacityLimit(None, 10.0)
    >>> limit.watch(lambda: 0.0, lambda: written[0])
    >>> written[0] = 25.0  # an answer said: 25 write units
    >>> round(limit.wait_needed(), 1)  # 10 were in the bucket, 15 owed: 1.5 s
    1.5
    """

    def __init__(self, max_rcu: float | None, max_wcu: float | None) -> None:
        for name, value in (("max_rcu", max_rcu), ("max_wcu", max_wcu)):
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ConfigurationError(f"{name} must be a positive number of units per second")
        self.rates = (max_rcu, max_wcu)
        self._counters: list[tuple[Callable[[], float], Callable[[], float]]] = []
        self._seen = [0.0, 0.0]
        self._tokens = [max_rcu or 0.0, max_wcu or 0.0]
        self._at = time.monotonic()
        self.consumed = [0.0, 0.0]  # units taken since the limit was made (read, write)

    @property
    def active(self) -> bool:
        return self.rates != (None, None)

    def watch(self, reads: Callable[[], float], writes: Callable[[], float]) -> None:
        """Count the units of a meter (cumulative read and write totals) from now on."""
        self._counters.append((reads, writes))
        self._seen[0] += reads()
        self._seen[1] += writes()

    def wait_needed(self) -> float:
        """Refill, take what was consumed since the last call; the seconds to wait."""
        now = time.monotonic()
        elapsed, self._at = now - self._at, now
        totals = [sum(c[i]() for c in self._counters) for i in (0, 1)]
        wait = 0.0
        for i, rate in enumerate(self.rates):
            used = totals[i] - self._seen[i]
            self._seen[i] = totals[i]
            self.consumed[i] += used
            if rate is None:
                continue
            self._tokens[i] = min(rate, self._tokens[i] + elapsed * rate) - used
            if self._tokens[i] < 0:
                wait = max(wait, -self._tokens[i] / rate)
        return wait

    async def wait(self) -> None:
        """Sleep until both buckets hold units again."""
        while self.active:
            needed = self.wait_needed()
            if needed <= 0:
                return
            await asyncio.sleep(needed)


def _nothing() -> float:
    return 0.0


def _meter(db: Any) -> tuple[Callable[[], float], Callable[[], float]] | None:
    """A database's consumed read and write units (DynamoDB), as counters; None elsewhere."""
    if db.metrics().get("capacity") is None:
        return None

    def units(kind: str) -> Callable[[], float]:
        return lambda: float(db.metrics()["capacity"][kind])

    return units("read"), units("write")


def paced_by(
    capacity: CapacityLimit, dbs: Sequence[Any], found: Sequence[Source]
) -> Callable[[], Awaitable[None]] | None:
    """``capacity.wait`` for a verify's reads, counting the reads of ``dbs`` and of the
    sources' own DynamoDB clients; None without a limit. A limit needs a DynamoDB side."""
    if not capacity.active:
        return None
    meters = [m for m in (_meter(db) for db in dbs) if m is not None]
    if not meters:
        raise ConfigurationError("max_rcu limits a verify from or to DynamoDB")
    for reads, _ in meters:
        capacity.watch(reads, _nothing)
    for source in found:
        meter = getattr(source, "capacity", None)
        if meter is not None:  # a DynamoDB scan's own client
            capacity.watch(meter.read_units, _nothing)
            source.pace = capacity.wait  # type: ignore[attr-defined]
    return capacity.wait


def parse_segment(segment: Any) -> tuple[int, int] | None:
    """``(i, n)`` or ``"I/N"`` (0 <= I < N), validated."""
    if segment is None:
        return None
    if isinstance(segment, str):
        i_text, sep, n_text = segment.partition("/")
        try:
            segment = (int(i_text), int(n_text)) if sep else None
        except ValueError:
            segment = None
        if segment is None:
            raise ConfigurationError("segment must be I/N, e.g. 0/4")
    try:
        i, n = (int(v) for v in segment)
    except (TypeError, ValueError):
        raise ConfigurationError(f"segment must be (i, n), not {segment!r}") from None
    if not 0 <= i < n:
        raise ConfigurationError(f"segment {i}/{n}: need 0 <= I < N")
    return i, n


async def _prefetched(items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """``items`` with the next one read while the caller works on the current one."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=1)

    async def fill() -> None:
        try:
            async for item in items:
                await queue.put((True, item))
            await queue.put((False, None))
        except asyncio.CancelledError:
            raise  # the consumer stopped: it waits for this task, which must not block again
        except BaseException as exc:  # handed to the consumer, raised there
            await queue.put((False, exc))

    task = asyncio.create_task(fill())
    try:
        while True:
            more, item = await queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _same(a: Doc, b: Doc) -> bool:
    return dumps(a) == dumps(b)


async def write_batch(
    coll: Collection, docs: list[Doc], *, owned: bool = False, fresh: bool = False
) -> list[tuple[Doc, Exception]]:
    """Write ``docs`` through the bulk path; returns the documents that failed, with why.

    A batch meeting keys the destination already holds (a resumed batch) is re-applied by key;
    a batch with a bad document is written one document at a time to single it out. ``owned``:
    the documents are fresh dicts nothing else holds (see ``owned_documents``). ``fresh``:
    the destination was empty when this copy began and only the copy writes these keys
    (``insert_many(assume_new=True)``)."""
    if not docs:
        return []
    token = owned_documents.set(owned)
    try:
        if fresh:
            await coll.insert_many(docs, assume_new=True)
        else:
            await coll.insert_many(docs)
        return []
    except DuplicateKey:
        pass
    except _SERVICE_ERRORS:
        raise
    except AsyncDBError:
        return await _write_each(coll, docs)
    finally:
        owned_documents.reset(token)
    fields = coll.spec.key
    stored = {
        key_of(d, fields): d
        async for d in coll.find(
            key_filter(fields, [key_of(d, fields) for d in docs]), allow_scan=True, cache=False
        )
    }
    ops: list[Any] = []
    sent: list[Doc] = []
    for doc in docs:
        key = key_of(doc, fields)
        old = stored.get(key)
        if old is None:
            ops.append(InsertOne(doc))
        elif not _same(old, doc):
            ops.append(ReplaceOne(dict(zip(fields, key, strict=True)), doc))
        else:
            continue
        sent.append(doc)
    if not ops:
        return []
    try:
        await coll.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        return [(sent[i], err) for i, err in exc.errors]
    except _SERVICE_ERRORS:
        raise
    except AsyncDBError:
        return await _write_each(coll, sent)
    return []


async def _write_each(coll: Collection, docs: list[Doc]) -> list[tuple[Doc, Exception]]:
    failed: list[tuple[Doc, Exception]] = []
    fields = coll.spec.key
    for doc in docs:
        try:
            try:
                await coll.insert_one(doc)
            except DuplicateKey:
                key = dict(zip(fields, key_of(doc, fields), strict=True))
                await coll.replace_one(key, doc, upsert=True)
        except _SERVICE_ERRORS:
            raise
        except AsyncDBError as exc:
            failed.append((doc, exc))
    return failed


class DeadLetter:
    """The dead-letter file: one JSON line per failed document (collection, key, error,
    document in tagged JSON)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else str(path)
        self._file: TextIO | None = None

    def write(self, collection: str, key: Any, error: BaseException, doc: Any) -> None:
        if self._file is None:
            if self.path is None:
                raise ConfigurationError('on_error="continue" needs a dead_letter file')
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close)
        cause = f"{type(error).__name__}: {error}"
        try:
            line = dumps({"collection": collection, "key": key, "error": cause, "document": doc})
        except TypeError:  # a value tagged JSON cannot hold: keep its text
            line = dumps(
                {"collection": collection, "key": repr(key), "error": cause, "document": repr(doc)}
            )
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _shown(key: Key) -> Any:
    return key[0] if len(key) == 1 else key


class _Run:
    """One copy: the shared state of its workers."""

    def __init__(
        self,
        *,
        batch_size: int,
        workers: int,
        on_error: str,
        dead_letter: DeadLetter,
        fn: DocMap | None,
        limit: RateLimit,
        checkpoint: Checkpoint,
        progress: Any,
        capacity: CapacityLimit,
    ) -> None:
        self.batch_size = batch_size
        self.workers = workers
        self.on_error = on_error
        self.dead_letter = dead_letter
        self.fn = fn
        self.limit = limit
        self.checkpoint = checkpoint
        self.progress = progress
        self.capacity = capacity
        self.report = CopyReport(dead_letter=dead_letter.path)
        self.resume = False  # a resumed copy checks every key it writes

    def _failed(
        self, name: str, counts: CollectionCopy, key: Any, exc: BaseException, doc: Any
    ) -> None:
        if self.on_error == "stop":
            raise CopyError(name, key, exc) from exc
        counts.failed += 1
        self.dead_letter.write(name, key, exc, doc)

    def _mapped(self, source: Source, counts: CollectionCopy, docs: list[Doc]) -> list[Doc]:
        convert = converter(source)
        if self.fn is None and convert is None:
            return docs
        name, fields = source.spec.name, source.spec.key
        out: list[Doc] = []
        for doc in docs:
            if convert is not None:
                try:
                    doc = convert(doc)
                except AsyncDBError as exc:  # a foreign value without a portable form
                    raw_key = tuple(doc.get(f, doc.get("_id")) for f in fields)
                    self._failed(name, counts, _shown(raw_key), exc, repr(doc))
                    continue
            if self.fn is None:
                out.append(doc)
                continue
            try:
                mapped = self.fn(doc)
            except Exception as exc:  # the user's transform: its error is the document's
                self._failed(name, counts, _shown(key_of(doc, fields)), exc, doc)
                continue
            if mapped is None:
                counts.skipped += 1
            else:
                out.append(mapped)
        return out

    async def part(
        self,
        source: Source,
        dst: Collection,
        index: int,
        part: Part,
        counts: CollectionCopy,
        fresh: bool = False,
        window: int = 1,
    ) -> None:
        """Copy one part: its batches read in key order, up to ``window`` of them written at
        once; the position advances only past batches written in order, so a resumed part
        re-applies at most the ``window`` batches that were in flight."""
        name = source.spec.name
        cp = self.checkpoint
        if cp.done(name, index):
            return
        position = cp.position(name, index)
        fields = dst.spec.key
        # documents read from an asyncdb store, unchanged: fresh dicts the copy alone holds
        owned = (
            self.fn is None
            and type(source) is CollectionSource
            and converter(source) is None
            and source.backend != "memory"
        )
        # the batches being written, in read order: (write, documents sent, position, read)
        Flight = tuple[asyncio.Task[list[tuple[Doc, Exception]]], int, Any, int]
        flight: collections.deque[Flight] = collections.deque()

        async def settle() -> None:
            nonlocal position
            task, sent, after, read = flight.popleft()
            failed = await task
            for doc, exc in failed:
                key = _shown(key_of(doc, fields)) if all(f in doc for f in fields) else None
                self._failed(name, counts, key, exc, doc)
            counts.written += sent - len(failed)
            position = after
            await cp.advance(name, index, position, done=False)
            if self.progress is not None:
                self.progress.advance(read)

        batches = source.batches(part, position, self.batch_size)
        try:
            # aclosing: a failed part stops its reader now, not when the generator is collected
            async with contextlib.aclosing(_prefetched(batches)) as prefetched:
                async for docs, after in prefetched:
                    await self.limit.take(len(docs))
                    counts.read += len(docs)
                    out = self._mapped(source, counts, docs)
                    await self.capacity.wait()
                    task = asyncio.ensure_future(write_batch(dst, out, owned=owned, fresh=fresh))
                    flight.append((task, len(out), after, len(docs)))
                    while len(flight) >= window:
                        await settle()
            while flight:
                await settle()
        finally:
            for task, *_ in flight:
                task.cancel()
            await asyncio.gather(*(t for t, *_ in flight), return_exceptions=True)
        await cp.advance(name, index, position, done=True)

    async def collection(
        self, source: Source, dst: Collection, segment: tuple[int, int] | None
    ) -> list[Part]:
        """Copy one collection; returns the parts it copied (a segment's share)."""
        name = source.spec.name
        counts = self.report.collections.setdefault(name, CollectionCopy())
        cp = self.checkpoint
        plan = cp.plan(name)
        # A destination empty at the start of a copy that is not resumed holds, while it runs,
        # only the keys this copy wrote, each once: its batches skip the duplicate-key check.
        # (A resumed copy may meet its own earlier batches: it checks.)
        empty = asyncio.ensure_future(_empty(dst) if not self.resume else _false())
        try:
            if plan is None:
                shares = segment[1] if segment else 1
                readers = 1 if getattr(source, "one_reader", False) else self.workers
                plan = await source.parts(shares * readers)
                await cp.set_plan(name, plan)
            fresh = await empty
        finally:
            if not empty.done():
                empty.cancel()
                await asyncio.gather(empty, return_exceptions=True)
        chosen = [i for i in range(len(plan)) if segment is None or i % segment[1] == segment[0]]
        gate = asyncio.Semaphore(self.workers)
        # fewer parts than workers (a source read by one reader): each part writes several
        # batches at once, so that ``workers`` writes are in flight all the same
        window = max(1, self.workers // max(1, min(len(chosen), self.workers)))

        async def one(i: int) -> None:
            async with gate:
                await self.part(source, dst, i, plan[i], counts, fresh, window)

        await together(one(i) for i in chosen)
        return [plan[i] for i in chosen]


async def _empty(coll: Collection) -> bool:
    """Whether ``coll`` holds no document (its table made if missing, as a write would)."""
    return not await coll.find({}, limit=1, allow_scan=True, cache=False).to_list()


async def _false() -> bool:
    return False


async def copy(
    src: Side,
    dst: Side,
    collections: Sequence[str] | None = None,
    *,
    batch_size: int = 500,
    workers: int = 4,
    resume: bool = False,
    verify: bool = True,
    on_error: str = "stop",
    dead_letter: str | Path | None = None,
    transform: Any = None,
    anonymize: Any = None,
    segment: Any = None,
    key: str | Sequence[str] | None = None,
    rate: float | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 0.5,
    progress: Any = None,
    max_rcu: float | None = None,
    max_wcu: float | None = None,
) -> CopyReport:
    """Copy collections (the source's catalog by default) from ``src`` to ``dst``.

    ``transform`` maps a document to a document (or None: skip it); a callable or
    ``"module:function"``. ``anonymize`` is applied after it: an ``asyncdb.Anonymizer`` or
    any object with an ``apply(doc) -> doc`` method, or a callable. ``on_error="stop"`` raises
    :class:`CopyError` at the first document that cannot be written; ``"continue"`` appends it to
    ``dead_letter`` (JSON Lines) and goes on. ``segment=(i, n)`` copies share ``i`` of ``n``
    (several machines sharing one copy). ``rate`` caps documents per second; ``max_rcu`` /
    ``max_wcu`` cap the DynamoDB read / write capacity units per second the copy consumes
    (both sides' reads, the destination's writes; counted from DynamoDB's ``ConsumedCapacity``,
    reported as ``report.capacity``). ``key`` names the
    key field of a foreign source. The checkpoint file (``checkpoint``; default
    ``.asyncdb-copy-<digest>.json`` here; ``"dest:NAME"``: a document in the destination's
    collection ``NAME``, default ``_asyncdb_copy_checkpoint``) is saved at most every
    ``checkpoint_every`` seconds (and when a part ends), and removed after a copy that verified
    equal. ``progress``: an
    object with ``start(total)``, ``advance(n)``, ``close()`` (see
    :mod:`asyncdb.movement.progress`). Encrypted fields (``db.collection(...,
    encrypted=...)``, recorded in the catalog) arrive encrypted and recorded in the
    destination's catalog: the ciphertext is moved as is, unless both sides hold key rings with
    different keys, when it is opened at the source and sealed under the destination's keys.

    >>> import asyncio, asyncdb, tempfile, os
    >>> async def main():
    ...     async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
    ...         await a.collection("alerts").insert_many([{"id": "a1", "p": 1}, {"id": "a2"}])
    ...         os.chdir(tempfile.mkdtemp())
    ...         report = await asyncdb.copy(a, b)
    ...         return report.written, report.verify.equal
    >>> asyncio.run(main())
    (2, True)
    """
    if on_error not in ("stop", "continue"):
        raise ConfigurationError('on_error must be "stop" or "continue"')
    if on_error == "continue" and dead_letter is None:
        raise ConfigurationError('on_error="continue" needs a dead_letter file')
    for name, value in (("batch_size", batch_size), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer")
    share = parse_segment(segment)
    fn = chain(callable_of(transform, "transform"), callable_of(anonymize, "anonymize"))
    limit = RateLimit(rate)
    capacity = CapacityLimit(max_rcu, max_wcu)
    started = time.monotonic()
    async with opened(src) as src_db, opened(dst) as dst_db:
        src_meter, dst_meter = _meter(src_db), _meter(dst_db)
        metered = src_meter is not None or dst_meter is not None
        if capacity.active and not metered:
            raise ConfigurationError("max_rcu / max_wcu limit a copy from or to DynamoDB")
        if src_meter is not None:
            capacity.watch(src_meter[0], _nothing)  # its reads (the source is not written)
        if dst_meter is not None:
            capacity.watch(*dst_meter)
        identity = {
            "src": src_db.url,
            "dst": dst_db.url,
            "collections": None if collections is None else list(collections),
            "segment": None if share is None else list(share),
        }
        cp = await _checkpoint(dst_db, checkpoint, identity, checkpoint_every, resume)
        letters = DeadLetter(dead_letter)
        run = _Run(
            batch_size=batch_size,
            workers=workers,
            on_error=on_error,
            dead_letter=letters,
            fn=fn,
            limit=limit,
            checkpoint=cp,
            progress=progress,
            capacity=capacity,
        )
        run.report.resumed = resume and bool(cp.collections)
        run.resume = resume
        found: list[Source] = []
        try:
            # Encrypted fields move as ciphertext; only between two different key rings are
            # they opened at the source and sealed again under the destination's keys.
            sealed = not same_keys(src_db, dst_db)
            found = await sources(src_db, collections, key, sealed=sealed)
            for source in found:
                meter = getattr(source, "capacity", None)
                if meter is not None:  # a DynamoDB scan's own client
                    capacity.watch(meter.read_units, _nothing)
                    if capacity.active:
                        source.pace = capacity.wait  # type: ignore[attr-defined]
            if progress is not None:
                progress.start(await _total(found))
            shares: list[tuple[Source, Collection, list[Part]]] = []
            for source in found:
                dst_coll = spec_collection(dst_db, source.spec, sealed=sealed)
                parts = await run.collection(source, dst_coll, share)
                shares.append((source, dst_coll, parts))
            if dst_db.backend == "firestore":
                from asyncdb.movement.indexes import firestore_indexes

                run.report.firestore_indexes = firestore_indexes(s.spec for s, _, _ in shares)
            if verify:
                # the final verify reads both sides under the copy's capacity limit
                pace = capacity.wait if capacity.active else None
                report = VerifyReport()
                for source, dst_coll, parts in shares:
                    other = CollectionSource(dst_coll, dst_db.backend)
                    name = source.spec.name
                    if share is not None and any("segment" in p for p in parts):
                        # a scan segment has no key range to select in the destination
                        result = await verify_share_by_key(source, other, parts, fn, pace)
                    else:
                        result = await verify_collection(
                            source,
                            other,
                            parts=parts if share is not None else None,
                            fn=fn,
                            pace=pace,
                        )
                    report.collections[name] = result
                run.report.verify = report
        except BaseException:
            if cp.collections:
                with contextlib.suppress(AsyncDBError):  # the copy's own error matters more
                    await cp.save()  # everything acknowledged so far (a throttled save may lag)
            raise
        finally:
            letters.close()
            await close_sources(found)
            if progress is not None:
                progress.close()
        if run.report.verify is None or run.report.verify.equal:
            await cp.remove()
        else:
            await cp.save()
    run.report.seconds = time.monotonic() - started
    if metered:
        capacity.wait_needed()  # take the last answers' units
        run.report.capacity = {"read": capacity.consumed[0], "write": capacity.consumed[1]}
    return run.report


def _in_destination(where: str | Path | None) -> str | None:
    """The collection named by ``checkpoint="dest:NAME"``, else None (a local file)."""
    if not isinstance(where, str) or not where.startswith(DESTINATION):
        return None
    return where[len(DESTINATION) :] or DEFAULT_COLLECTION


async def _checkpoint(
    dst_db: Any, where: str | Path | None, identity: dict[str, Any], every: float, resume: bool
) -> Checkpoint:
    """The copy's checkpoint: a local file, or (``"dest:NAME"``) a collection of the
    destination; the saved one with ``resume``."""
    name = _in_destination(where)
    if name is not None:
        if name.startswith("_asyncdb"):
            coll = dst_db._own_collection(name)
        else:
            coll = dst_db.collection(name, allow_scan=True)
        if resume:
            return await DestinationCheckpoint.read(coll, identity, every)
        return DestinationCheckpoint(coll, identity, every)
    path = Path(where) if where is not None else default_path(identity)
    if resume:
        return Checkpoint.load(path, identity, every)
    return Checkpoint(path, identity, every)


async def _total(found: list[Source]) -> int | None:
    try:
        return sum([await s.count() for s in found])
    except AsyncDBError:
        return None


__all__ = [
    "CapacityLimit",
    "CollectionCopy",
    "CopyError",
    "CopyReport",
    "RateLimit",
    "copy",
    "paced_by",
    "write_batch",
]
