"""``insert_many`` of a large batch as one stream: the documents are validated chunk by chunk
while the store sends the chunks before them (``StoreCollection.insert_streamed``), so
validation, encoding and the server's work overlap instead of following one another.

What it returns, stores and raises is what the general path (``Collection._prepare`` of the
whole batch, then ``StoreCollection.insert``) returns, stores and raises:

* the first chunk is validated before any I/O; a later invalid document ends the insert with
  nothing written and raises the error ``_prepare`` raises for it (the first invalid document
  in order, as the general path finds it);
* any other failure (a key already stored, a key repeated in the batch, a document only the
  store's encoding refuses, a lost connection) is answered as the general path answers it: the
  whole batch is validated first (its error wins, as it would before any I/O), then its
  repeated keys (DuplicateKey naming the first), else the store's own error;
* a retry of a maybe-applied failure sends again what was prepared, then prepares the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from asyncdb.backends.base import Doc, KeyTuple, check_batch_keys

if TYPE_CHECKING:
    from asyncdb.collection import Collection
    from asyncdb.options import CallOptions

CHUNK = 1024  # documents validated at a time (the collector paused meanwhile)


def streams(coll: Collection[Any], docs: list[Any]) -> bool:
    """Whether ``insert_many(docs)`` on ``coll`` takes the streamed path: a store that offers
    it, a batch that large, outside a transaction, no TTL (whose insert first purges expired
    keys), on a collection already set up (so that a refused batch creates nothing)."""
    store = coll._store
    least = store.streamed_insert_min
    return (
        least is not None
        and len(docs) >= max(least, 2 * CHUNK)
        and coll._session is None
        and coll.spec.ttl is None
        and store.namespace in coll._db._ensured
    )


async def insert_streamed(
    coll: Collection[Any], docs: list[Any], options: CallOptions | None
) -> list[Any]:
    """``coll.insert_many(docs)`` through the store's ``insert_streamed`` (see the module).

    Only the keys are kept: a chunk's prepared copies are dropped once the store encoded them
    (the collector never walks them, and memory holds one chunk). A retry, and the check of a
    maybe-applied insert, prepare the documents again, with the ids generated the first time."""
    store = coll._store
    docs = docs[:]  # the batch as it was called with (the caller may change its list meanwhile)
    total = len(docs)
    first, keys = coll._prepare(docs[:CHUNK])  # before any I/O, as the general path
    pending: list[list[Doc]] = [first]
    refused: list[Exception] = []
    generated = coll.spec.key == ("id",)  # where _prepare generates missing ids

    def again(start: int) -> list[Doc]:
        """The chunk at ``start`` prepared anew, keyed as it was the first time."""
        chunk, chunk_keys = coll._prepare(docs[start : start + CHUNK])
        if generated:
            for doc, key, first_key in zip(chunk, chunk_keys, keys[start:], strict=False):
                if key != first_key:  # a generated id: the first one stands
                    doc["id"] = first_key[0]
        return chunk

    def chunks() -> Iterator[list[Doc]]:
        for start in range(0, total, CHUNK):
            if pending:  # the first chunk, prepared above
                yield pending.pop()
            elif start < len(keys):  # a retry: sent before
                yield again(start)
            else:
                try:
                    chunk, chunk_keys = coll._prepare(docs[start : start + CHUNK])
                except Exception as exc:
                    refused.append(exc)
                    raise
                keys.extend(chunk_keys)
                yield chunk

    async def stored_as_sent() -> bool:
        sent = [doc for start in range(0, total, CHUNK) for doc in again(start)]
        return await coll._stored_as_sent(sent)()

    failure: Exception | None = None
    try:
        await coll._call(
            lambda: store.insert_streamed(chunks()),
            write=True,
            what="insert",
            insert_check=stored_as_sent,
            options=options,
        )
    except Exception as exc:
        failure = exc
    except BaseException:  # cancelled: what may have been written is invalidated
        await coll._written(keys)
        raise
    if failure is None:
        await coll._written(keys)
        return [k[0] for k in keys] if coll.spec.single_key else list(keys)
    if refused:
        raise refused[0]
    every: list[KeyTuple] = coll._prepare(docs)[1]  # its error: the general path's, before I/O
    try:
        check_batch_keys(every)
    finally:
        await coll._written(every)
    raise failure
