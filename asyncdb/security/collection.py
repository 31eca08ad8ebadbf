"""The encrypted collection: the public collection API over sealed documents.

``db.collection(name, encrypted={...})`` opens the plain collection of the same name (with the
blind-index fields declared as indexes) and wraps it here. Every write seals documents before
they reach the plain collection; every read opens (decrypts and authenticates) what it returns
and re-checks the filter on the plaintext. Updates read, apply the update in process
(``asyncdb.query.update``), re-seal, and write with a compare-and-set on the document's hidden
version, so concurrent writers never lose an update. Nothing here reaches into a backend.

>>> import asyncio, asyncdb
>>> async def main():
...     ring = asyncdb.KeyRing.generate()
...     async with asyncdb.connect("memory://", keyring=ring) as db:
...         users = db.collection("users", encrypted={"ssn": "equality", "notes": "opaque"})
...         await users.insert_one({"id": "u1", "ssn": "123-45-6789", "notes": "vip"})
...         found = await users.find_one({"ssn": "123-45-6789"})
...         raw = await db.collection("users").find_one({"id": "u1"})
...         return found, raw["ssn"].startswith("ae1:")
>>> asyncio.run(main())
({'id': 'u1', 'ssn': '123-45-6789', 'notes': 'vip'}, True)
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

from asyncdb.backends.base import Doc, check_key, distinct_values, new_id, with_key_tiebreak
from asyncdb.bulk import (
    BulkWriteResult,
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateMany,
    UpdateOne,
)
from asyncdb.collection import Collection, Cursor, _check_count, _limit
from asyncdb.errors import (
    BulkWriteError,
    ConfigurationError,
    DecryptionError,
    DuplicateKey,
    NotSupported,
    QueryError,
    TransactionError,
    UpdateError,
)
from asyncdb.options import CallOptions, call_options, call_options_of
from asyncdb.query.ast import Node, Projection, Sort, Update, path_str
from asyncdb.query.evaluate import matches
from asyncdb.query.parse import (
    parse_filter,
    parse_path,
    parse_projection,
    parse_replacement,
    parse_sort,
)
from asyncdb.query.pipeline import parse_update_spec
from asyncdb.query.update import apply_projection, apply_update, strict_equal, upsert_seed
from asyncdb.query.values import normalize_document
from asyncdb.security.codec import DocumentCodec, Opened
from asyncdb.security.keyring import KeyRing
from asyncdb.security.rewrite import check_filter, check_sort, check_update, pushdown
from asyncdb.security.spec import KEY_ID_FIELD, VERSION_FIELD, EncryptionSpec
from asyncdb.types import Index, Page, Plan, UpdateResult

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

if TYPE_CHECKING:
    from asyncdb.database import Database

# A compare-and-set that keeps losing to other writers gives up after this many attempts.
MAX_ATTEMPTS = 50
# rotate_keys re-seals this many documents of a batch at once (round trips overlap).
ROTATE_CONCURRENCY = 8


def _raw_sort(sort: Sort) -> list[tuple[str, int]] | None:
    return [(path_str(k.path), k.direction) for k in sort] or None


@dataclasses.dataclass(frozen=True, slots=True)
class _Read:
    """A parsed read: the filter, what the store is asked (parsed, and as a filter document),
    and whether the store's answer is exact."""

    node: Node
    pushed: Node
    given: Any  # the caller's filter document
    exact: bool

    @property
    def stored(self) -> Any:
        """The filter over stored documents, as a filter document."""
        return self.given if self.exact else self.pushed.to_mongo()


def _optioned(method: F) -> F:
    """Run ``method`` with its ``hint=``/``comment=`` (validated against the caller's filter)
    current for the plain collection's calls it makes."""
    params = tuple(inspect.signature(method).parameters)[1:]

    @functools.wraps(method)
    async def call(self: EncryptedCollection, *args: Any, **kwargs: Any) -> Any:
        hint, comment = kwargs.get("hint"), kwargs.get("comment")
        if hint is None and comment is None:
            return await method(self, *args, **kwargs)
        given = dict(zip(params, args, strict=False)) | kwargs
        node = parse_filter(given.get("filter"))
        token = call_options.set(call_options_of(hint, comment, self.spec, node))
        try:
            return await method(self, *args, **kwargs)
        finally:
            call_options.reset(token)

    return call  # type: ignore[return-value]


class EncryptedCursor(Cursor):
    """The cursor of :meth:`EncryptedCollection.find`: streams opened documents."""

    def __init__(
        self,
        collection: EncryptedCollection,
        read: _Read,
        sort: Sort,
        skip: int,
        limit: int | None,
        projection: Projection | None,
        allow_scan: bool | None,
        use_cache: bool,
        options: CallOptions | None = None,
    ) -> None:
        super().__init__(
            collection, read.node, sort, skip, limit, projection, allow_scan, use_cache, options
        )
        self._enc = collection
        self._read = read

    def sort(self, spec: Any) -> Cursor:
        sort = parse_sort(spec)
        check_sort(sort, self._enc.encryption)
        self._sort = with_key_tiebreak(sort, self._enc.spec)
        return self

    async def _stream(self) -> AsyncIterator[Doc]:
        coll, read = self._enc, self._read
        exact = read.exact
        # The plain collection's cursor over the parsed stored filter (parsed once, here).
        inner = Cursor(
            coll.inner,
            read.pushed,
            self._sort,
            self._skip if exact else 0,
            self._limit if exact else None,
            None,
            self._allow_scan,
            self._use_cache,
            self._options,
        )
        skip, limit, sent = (0, None, 0) if exact else (self._skip, self._limit, 0)
        if limit == 0:
            return
        opener, node, proj, key = coll.codec.open, read.node, self._projection, coll.spec.key
        async for stored in inner:
            doc = opener(stored).doc
            if not exact and not matches(node, doc):
                continue  # a blind-index collision, or a negation re-checked here
            if skip:
                skip -= 1
                continue
            yield apply_projection(proj, doc, key)
            sent += 1
            if limit is not None and sent >= limit:
                return


class EncryptedCollection(Collection):
    """A collection whose named fields (or whole records) are sealed with AES-256-GCM, with
    blind indexes for equality queries. Open it with ``db.collection(name, encrypted=...)`` on a
    database connected with ``keyring=``. The plain collection it wraps is ``inner``."""

    def __init__(self, inner: Collection, codec: DocumentCodec) -> None:
        super().__init__(inner._db, inner._store, inner._session, inner._tx_writes)
        self.inner = inner
        self.codec = codec
        self.encryption: EncryptionSpec = codec.spec

    def bind(self, handle: Collection) -> EncryptedCollection:
        """The same encryption in the session of another handle (a transaction's). The store
        collection stays this one's, whose spec declares the blind-index fields (a handle
        opened without them would write documents its indexes miss)."""
        own = Collection(handle._db, self.inner._store, handle._session, handle._tx_writes)
        return EncryptedCollection(own, self.codec)

    # --- parsing ------------------------------------------------------------------------------

    def _parse_read(self, filter: Mapping[str, Any] | None) -> _Read:
        node = parse_filter(filter)
        spec = self.encryption
        if not check_filter(node, spec):
            return _Read(node, node, filter, True)
        pushed = pushdown(node, spec, self.codec.query_tokens)
        return _Read(node, pushed, filter, False)

    def _parse_sort(self, sort: Any) -> Sort:
        parsed = parse_sort(sort)
        check_sort(parsed, self.encryption)
        return with_key_tiebreak(parsed, self.spec) if parsed else parsed

    def _key_filter(self, doc: Doc) -> dict[str, Any]:
        return {f: doc[f] for f in self.spec.key}

    def _seal_new(self, docs: Iterable[Any]) -> list[Doc]:
        spec = self.spec
        out: list[Doc] = []
        for doc in docs:
            if not isinstance(doc, Mapping):
                raise QueryError(f"a document must be a mapping, not {type(doc).__name__}")
            one = normalize_document(doc)
            if spec.key == ("id",) and "id" not in one:
                one = {"id": new_id(), **one}
            check_key(one, spec)
            out.append(self.codec.seal(one, version=1))
        return out

    # --- writes -------------------------------------------------------------------------------

    @_optioned
    async def insert_one(self, doc: Mapping[str, Any], *, comment: Any = None) -> Any:
        """Seal and insert one document; returns its key.

        >>> # await users.insert_one({"ssn": "123-45-6789", "email": "ana@example.com"})
        """
        [sealed] = self._seal_new([doc])
        return await self.inner.insert_one(sealed)

    @_optioned
    async def insert_many(
        self,
        docs: Iterable[Mapping[str, Any]],
        ordered: bool = True,
        *,
        comment: Any = None,
        assume_new: bool = False,
    ) -> list[Any]:
        """Seal and insert all documents or none (``ordered=False``: every one it can, then
        ``BulkWriteError``); returns their keys in order. ``assume_new``: as
        ``Collection.insert_many``."""
        return await self.inner.insert_many(
            self._seal_new(docs), ordered=ordered, assume_new=assume_new
        )

    def _updated(self, update: Update, doc: Doc, now: datetime) -> Doc:
        new = apply_update(update, doc, now=now)
        for field in self.spec.key:
            if field not in new:
                new = {field: doc[field], **new}
            elif not strict_equal(new[field], doc[field]):
                raise UpdateError("the key field cannot change", path=field)
        return normalize_document(new)

    async def _reread(self, doc: Doc) -> Opened | None:
        stored = await self.inner.find_one(self._key_filter(doc), cache=False)
        return None if stored is None else self.codec.open(stored)

    async def _write(
        self, opened: Opened, node: Node | None, change: Callable[[Doc], Doc]
    ) -> tuple[Opened, Doc] | None:
        """Compare-and-set one document: seal ``change(doc)`` and replace the stored document
        if its version is still the one read; on a lost race read it again (and give up when it
        no longer matches ``node``). Returns the document written from and the one written
        (the same when nothing changed), or None when it is gone or no longer matches."""
        for _ in range(MAX_ATTEMPTS):
            new = change(opened.doc)
            if strict_equal(new, opened.doc) and opened.key_id == self.codec.ring.primary:
                return opened, new
            sealed = self.codec.seal(new, version=int(opened.version or 0) + 1)
            condition = {**self._key_filter(opened.doc), VERSION_FIELD: opened.version}
            result = await self.inner.replace_one(condition, sealed)
            if result.matched_count:
                return opened, new
            again = await self._reread(opened.doc)
            if again is None or (node is not None and not matches(node, again.doc)):
                return None
            opened = again
        raise TransactionError(
            f"a document of {self.spec.name!r} kept changing under {MAX_ATTEMPTS} "
            "compare-and-set attempts"
        )

    async def _candidates(
        self, read: _Read, *, limit: int | None, sort: Sort, allow_scan: bool | None
    ) -> list[Opened]:
        """The matching documents, opened (with their versions), read before any is written."""
        inner = self.inner.find(
            read.stored,
            None,
            _raw_sort(sort),
            0,
            limit if read.exact else None,
            allow_scan=allow_scan,
            cache=False,
        )
        out: list[Opened] = []
        async for stored in inner:
            opened = self.codec.open(stored)
            if read.exact or matches(read.node, opened.doc):
                out.append(opened)
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def _update(
        self,
        read: _Read,
        update: Update,
        *,
        multi: bool,
        upsert: bool,
        allow_scan: bool | None,
        sort: Sort = (),
    ) -> tuple[UpdateResult, Doc | None, Doc | None]:
        """Decrypt, apply, re-encrypt under compare-and-set. Returns the result and the first
        document before and after."""
        check_update(update, self.encryption)
        now = datetime.now(UTC)

        def change(doc: Doc) -> Doc:
            return self._updated(update, doc, now)

        for _ in range(MAX_ATTEMPTS):
            found = await self._candidates(
                read, limit=None if multi else 1, sort=sort, allow_scan=allow_scan
            )
            matched = modified = 0
            before = after = None
            for opened in found:
                done = await self._write(opened, read.node, change)
                if done is None:
                    continue  # deleted or changed by another writer: no longer a match
                matched += 1
                old, new = done
                if not strict_equal(old.doc, new):
                    modified += 1
                if before is None:
                    before, after = old.doc, new
            if matched or not found:
                break
            # update_one's candidate changed under it: look for a match again
        if matched or not upsert:
            return UpdateResult(matched, modified), before, after
        seed = upsert_seed(read.node)
        new = apply_update(update, seed, is_insert=True, now=now)
        if update.replacement is not None:
            new = {**{k: seed[k] for k in self.spec.key if k in seed}, **new}
        [sealed] = self._seal_new([new])
        key = await self.inner.insert_one(sealed)
        return UpdateResult(0, 0, key), None, self.codec.open(sealed).doc

    @_optioned
    async def update_one(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> UpdateResult:
        """Apply an update to the first match: decrypted, applied, re-sealed, written with a
        compare-and-set. Encrypted fields take every operator (``$inc``, ``$push``, positional
        paths, pipeline updates)."""
        read = self._parse_read(filter)
        parsed = parse_update_spec(update, read.node, array_filters)
        result, _, _ = await self._update(
            read, parsed, multi=False, upsert=upsert, allow_scan=allow_scan
        )
        return result

    @_optioned
    async def update_many(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> UpdateResult:
        """Apply an update to every match (each document atomically)."""
        read = self._parse_read(filter)
        parsed = parse_update_spec(update, read.node, array_filters)
        result, _, _ = await self._update(
            read, parsed, multi=True, upsert=upsert, allow_scan=allow_scan
        )
        return result

    @_optioned
    async def replace_one(
        self,
        filter: Mapping[str, Any] | None,
        doc: Mapping[str, Any],
        upsert: bool = False,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> UpdateResult:
        """Replace the first match whole (its key stays), sealed."""
        read = self._parse_read(filter)
        parsed = parse_replacement(doc)
        result, _, _ = await self._update(
            read, parsed, multi=False, upsert=upsert, allow_scan=allow_scan
        )
        return result

    @_optioned
    async def find_one_and_update(
        self,
        filter: Mapping[str, Any] | None,
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        return_document: Literal["before", "after"] = "after",
        *,
        upsert: bool = False,
        sort: Any = None,
        projection: Any = None,
        allow_scan: bool | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None:
        """Update the first match (in ``sort`` order) and return it decrypted, as it was
        ``"before"`` or is ``"after"``."""
        if return_document not in ("before", "after"):
            raise QueryError('return_document must be "before" or "after"', path="return_document")
        read = self._parse_read(filter)
        parsed = parse_update_spec(update, read.node, array_filters)
        return await self._find_and_modify(
            read, parsed, return_document, upsert, sort, projection, allow_scan
        )

    @_optioned
    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any] | None,
        doc: Mapping[str, Any],
        upsert: bool = False,
        sort: Any = None,
        projection: Any = None,
        return_document: Literal["before", "after"] = "after",
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None:
        """Replace the first match (in ``sort`` order) whole, sealed, and return it decrypted,
        as it was ``"before"`` or is ``"after"``."""
        if return_document not in ("before", "after"):
            raise QueryError('return_document must be "before" or "after"', path="return_document")
        read = self._parse_read(filter)
        parsed = parse_replacement(doc)
        return await self._find_and_modify(
            read, parsed, return_document, upsert, sort, projection, allow_scan
        )

    async def _find_and_modify(
        self,
        read: _Read,
        update: Update,
        return_document: str,
        upsert: bool,
        sort: Any,
        projection: Any,
        allow_scan: bool | None,
    ) -> Doc | None:
        sort_spec = self._parse_sort(sort)
        proj = parse_projection(projection, self.spec.key)
        _, before, after = await self._update(
            read, update, multi=False, upsert=upsert, allow_scan=allow_scan, sort=sort_spec
        )
        doc = before if return_document == "before" else after
        if doc is None:
            return None
        return self._load(doc) if proj is None else apply_projection(proj, doc, self.spec.key)

    @_optioned
    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any] | None,
        sort: Any = None,
        projection: Any = None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None:
        """Delete the first match (in ``sort`` order) and return it decrypted, or None."""
        read = self._parse_read(filter)
        sort_spec = self._parse_sort(sort)
        proj = parse_projection(projection, self.spec.key)
        deleted = await self._delete_matching(
            read, multi=False, sort=sort_spec, allow_scan=allow_scan
        )
        if not deleted:
            return None
        if proj is None:
            return self._load(deleted[0])
        return apply_projection(proj, deleted[0], self.spec.key)

    async def _delete_matching(
        self, read: _Read, *, multi: bool, sort: Sort, allow_scan: bool | None
    ) -> list[Doc]:
        """Delete the matches (one, or all) each by compare-and-set on its version, so a
        document changed meanwhile is re-checked first; returns the deleted documents."""
        deleted: list[Doc] = []
        for _ in range(MAX_ATTEMPTS):
            found = await self._candidates(
                read, limit=None if multi else 1, sort=sort, allow_scan=allow_scan
            )
            for opened in found:
                current: Opened | None = opened
                while current is not None:
                    condition = {**self._key_filter(current.doc), VERSION_FIELD: current.version}
                    if await self.inner.delete_one(condition):
                        deleted.append(current.doc)
                        break
                    current = await self._reread(current.doc)
                    if current is not None and not matches(read.node, current.doc):
                        current = None
            if deleted or multi or not found:
                break
        return deleted

    async def _delete(self, read: _Read, *, multi: bool, allow_scan: bool | None) -> int:
        if read.exact:
            if multi:
                return await self.inner.delete_many(read.stored, allow_scan=allow_scan)
            return await self.inner.delete_one(read.stored, allow_scan=allow_scan)
        return len(await self._delete_matching(read, multi=multi, sort=(), allow_scan=allow_scan))

    @_optioned
    async def delete_one(
        self,
        filter: Mapping[str, Any] | None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> int:
        """Delete the first match; returns 0 or 1."""
        return await self._delete(self._parse_read(filter), multi=False, allow_scan=allow_scan)

    @_optioned
    async def delete_many(
        self,
        filter: Mapping[str, Any] | None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> int:
        """Delete every match; returns how many."""
        return await self._delete(self._parse_read(filter), multi=True, allow_scan=allow_scan)

    # --- reads --------------------------------------------------------------------------------

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Cursor:
        """A lazy cursor over the matching documents, decrypted. Equality on an "equality"
        field uses its blind index; sorting by an encrypted field is a QueryError."""
        read = self._parse_read(filter)
        sort_spec = self._parse_sort(sort)
        proj = parse_projection(projection, self.spec.key)
        return EncryptedCursor(
            self,
            read,
            sort_spec,
            _check_count("skip", skip) or 0,
            _limit(limit),
            proj,
            allow_scan,
            cache,
            call_options_of(hint, comment, self.spec, read.node),
        )

    @_optioned
    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Doc | None:
        """The first match, decrypted, or None. A filter of exactly the key is a point read."""
        if projection is None and sort is None and self._exact_key(filter) is not None:
            stored = await self.inner.find_one(filter, cache=cache)
            return None if stored is None else self._load(self.codec.open(stored).doc)
        docs = await self.find(
            filter, projection, sort, 0, 1, allow_scan=allow_scan, cache=cache
        ).to_list()
        return docs[0] if docs else None

    @_optioned
    async def count_documents(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> int:
        """How many documents match (counted after decryption when the filter holds an
        encrypted condition)."""
        read = self._parse_read(filter)
        if read.exact:
            return await self.inner.count_documents(read.stored, allow_scan=allow_scan, cache=cache)
        n = 0
        async for _ in self.find(filter, allow_scan=allow_scan, cache=cache):
            n += 1
        return n

    @_optioned
    async def find_page(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Any = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        projection: Any = None,
        allow_scan: bool | None = None,
        cache: bool = True,
        hint: Any = None,
        comment: Any = None,
    ) -> Page:
        """One page of decrypted matches and the cursor of the next. With an encrypted
        condition, candidates the re-check drops are skipped, so a ``next_cursor`` may lead to
        an empty last page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise QueryError("limit must be a positive integer", path="limit")
        read = self._parse_read(filter)
        raw_sort = _raw_sort(self._parse_sort(sort))
        proj = parse_projection(projection, self.spec.key)
        key = self.spec.key
        items: list[Doc] = []
        next_cursor = cursor
        while True:
            page = await self.inner.find_page(
                read.stored,
                raw_sort,
                limit - len(items),
                next_cursor,
                allow_scan=allow_scan,
                cache=cache,
            )
            for stored in page.items:
                doc = self.codec.open(stored).doc
                if read.exact or matches(read.node, doc):
                    items.append(apply_projection(proj, doc, key))
            next_cursor = page.next_cursor
            if next_cursor is None or len(items) >= limit:
                loaded = items if proj is not None else self._load_list(items)
                return Page(items=loaded, next_cursor=next_cursor)

    async def explain(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        projection: Any = None,
        *,
        server_plan: bool = False,
        analyze: bool = False,
        pipeline: Iterable[Mapping[str, Any]] | None = None,
        hint: Any = None,
    ) -> Plan:
        """The plain collection's plan for the stored filter: blind-index tokens, never the
        values; with an encrypted condition the residual names the fields re-checked after
        decryption."""
        if pipeline is not None:
            raise NotSupported("aggregate() is not available on an encrypted collection")
        read = self._parse_read(filter)
        raw_sort = _raw_sort(self._parse_sort(sort))
        parse_projection(projection, self.spec.key)
        plan = await self.inner.explain(
            read.stored,
            raw_sort,
            skip if read.exact else 0,
            limit if read.exact else None,
            server_plan=server_plan,
            analyze=analyze,
            hint=hint,
        )
        if read.exact:
            return plan
        stored = str(read.stored)
        fields = sorted(
            {r.path for r in self.encryption.rules if r.token_field and r.token_field in stored}
        )
        recheck = {"$decrypted_recheck": fields}
        residual = recheck if plan.residual is None else {"$and": [plan.residual, recheck]}
        return dataclasses.replace(plan, residual=residual)

    # --- rotation -----------------------------------------------------------------------------

    async def rotate_keys(
        self, batch_size: int = 500, *, progress: Callable[[int], Any] | None = None
    ) -> int:
        """Re-seal (and re-index) every document not under the ring's primary key, in batches;
        returns how many were re-sealed. Online: each document is written with a
        compare-and-set, so concurrent writers are never overwritten. Resumable: progress is the
        data itself (a re-run skips what is done). With ``allow_plaintext=True`` this is also
        how an existing plaintext collection is encrypted. ``progress(done)`` is called after
        each batch.

        >>> # await users.rotate_keys()   # after ring.add("k2", key); ring.promote("k2")
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError("batch_size must be a positive integer")
        done = 0
        ring = self.codec.ring
        single = self.spec.single_key and "server_side_sort" in self._db.capabilities
        key_field = self.spec.key[0]
        after: Any = None
        primary = ring.primary
        while True:
            if ring.primary != primary:  # promoted again meanwhile: start over
                primary, after = ring.primary, None
            flt: dict[str, Any] = {KEY_ID_FIELD: {"$ne": primary}}
            sort = None
            if single:  # walk the key order, so each batch starts where the last ended
                sort = [(key_field, 1)]
                if after is not None:
                    flt = {"$and": [flt, {key_field: {"$gt": after}}]}
            batch = await self.inner.find(
                flt, sort=sort, limit=batch_size, allow_scan=True, cache=False
            ).to_list()
            if not batch:
                return done
            resealed = await self._reseal_all(batch)
            done += resealed
            after = batch[-1][key_field]
            if progress is not None:
                progress(done)

    async def _reseal_all(self, batch: list[Doc]) -> int:
        """Re-seal a batch under the primary, ROTATE_CONCURRENCY documents at a time (one at a
        time inside a transaction); returns how many this call re-sealed."""
        primary = self.codec.ring.primary

        async def one(stored: Doc) -> int:
            written = await self._write(self.codec.open(stored), None, lambda doc: doc)
            return int(written is not None and written[0].key_id != primary)

        if self._session is not None:
            return sum([await one(stored) for stored in batch])
        gate = asyncio.Semaphore(ROTATE_CONCURRENCY)

        async def gated(stored: Doc) -> int:
            async with gate:
                return await one(stored)

        try:
            async with asyncio.TaskGroup() as group:  # the first error cancels the rest
                tasks = [group.create_task(gated(stored)) for stored in batch]
        except BaseExceptionGroup as failed:  # the caller gets the typed error itself
            raise failed.exceptions[0] from None
        return sum(t.result() for t in tasks)

    async def purge_expired(self) -> int:
        """Delete the documents whose TTL field (never an encrypted one) lies in the past."""
        return await self.inner.purge_expired()

    @_optioned
    async def distinct(
        self,
        field: str,
        filter: Mapping[str, Any] | None = None,
        *,
        allow_scan: bool | None = None,
        hint: Any = None,
        comment: Any = None,
    ) -> list[Any]:
        """The distinct values of ``field`` among the matches (MongoDB's rules, BSON order). A
        plain field under a filter without encrypted conditions is asked of the store; anything
        else is computed from the decrypted matches (the store never sees a value)."""
        path = parse_path(field, "distinct")
        read = self._parse_read(filter)
        place = self.encryption.classify(path)
        if place.kind == "reserved":
            raise QueryError("field names starting with _enc are reserved", path=field)
        if place.kind == "plain" and read.exact:
            return await self.inner.distinct(field, read.stored, allow_scan=allow_scan)
        found = EncryptedCollection.find(self, filter, allow_scan=allow_scan)
        docs = [doc async for doc in found._observed_stream()]  # documents (not model instances)
        return distinct_values(docs, path)

    @_optioned
    async def bulk_write(
        self, requests: Iterable[Any], ordered: bool = True, *, comment: Any = None
    ) -> BulkWriteResult:
        """Every operation validated (and inserts sealed) before any I/O, then applied in order
        through this layer, each atomically per document; failed operations are reported in a
        ``BulkWriteError`` (an ordered bulk write stops at the first)."""
        steps = []
        for index, request in enumerate(requests):
            try:
                steps.append(self._bulk_step(request))
            except QueryError as exc:
                raise QueryError(f"bulk_write operation {index}: {exc}") from None
        totals = {"insert": 0, "matched": 0, "modified": 0, "delete": 0}
        upserted: dict[int, Any] = {}
        errors: list[tuple[int, Exception]] = []

        def result() -> BulkWriteResult:
            return BulkWriteResult(
                totals["insert"],
                totals["matched"],
                totals["modified"],
                totals["delete"],
                len(upserted),
                dict(upserted),
            )

        for index, step in enumerate(steps):
            try:
                kind, value = await step()
            except (DuplicateKey, UpdateError, DecryptionError) as exc:
                errors.append((index, exc))
                if ordered:
                    break
                continue
            if kind == "update":
                totals["matched"] += value.matched_count
                totals["modified"] += value.modified_count
                if value.upserted_id is not None:
                    upserted[index] = value.upserted_id
            else:
                totals[kind] += value
        if errors:
            raise BulkWriteError(errors, result())
        return result()

    def _bulk_step(self, request: Any) -> Callable[[], Awaitable[tuple[str, Any]]]:
        """One bulk_write request, validated and parsed, as the call that applies it."""
        if isinstance(request, InsertOne):
            [sealed] = self._seal_new([request.document])

            async def insert() -> tuple[str, Any]:
                await self.inner.insert_one(sealed)
                return "insert", 1

            return insert
        if not isinstance(request, UpdateOne | UpdateMany | ReplaceOne | DeleteOne | DeleteMany):
            raise QueryError(
                "not a write operation: use asyncdb.InsertOne, UpdateOne, UpdateMany, "
                f"ReplaceOne, DeleteOne or DeleteMany, not {type(request).__name__}"
            )
        if request.collation is not None:
            raise NotSupported("collation is not supported")
        read = self._parse_read(request.filter)
        if isinstance(request, DeleteOne | DeleteMany):
            multi = isinstance(request, DeleteMany)

            async def delete() -> tuple[str, Any]:
                return "delete", await self._delete(read, multi=multi, allow_scan=None)

            return delete
        if isinstance(request, ReplaceOne):
            parsed = parse_replacement(request.replacement)
        else:
            parsed = parse_update_spec(request.update, read.node, request.array_filters)
        check_update(parsed, self.encryption)
        multi = isinstance(request, UpdateMany)
        upsert = bool(request.upsert)

        async def update() -> tuple[str, Any]:
            result, _, _ = await self._update(
                read, parsed, multi=multi, upsert=upsert, allow_scan=None
            )
            return "update", result

        return update

    @_optioned
    async def estimated_document_count(self, *, comment: Any = None) -> int:
        """The store's cheap count (encryption changes no count)."""
        return await self.inner.estimated_document_count()

    async def drop(self) -> None:
        """Remove the collection, its documents and its blind indexes."""
        await self.inner.drop()

    def __repr__(self) -> str:
        return f"<EncryptedCollection {self.spec.name!r} on {self._db.backend}>"


def _refused(name: str) -> Callable[..., NoReturn]:
    def refuse(self: EncryptedCollection, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotSupported(f"{name}() is not available on an encrypted collection")

    refuse.__name__ = name
    return refuse


# A public method of Collection this layer does not implement must never run on ciphertext.
for _name, _member in list(vars(Collection).items()):
    if not _name.startswith("_") and callable(_member) and _name not in vars(EncryptedCollection):
        setattr(EncryptedCollection, _name, _refused(_name))


def open_encrypted(
    db: Database,
    name: str,
    encrypted: Mapping[str, Any],
    *,
    allow_plaintext: bool,
    key: str | Sequence[str],
    indexes: Sequence[Any],
    **options: Any,
) -> EncryptedCollection:
    """``db.collection(name, encrypted=...)``: the plain collection with the blind-index fields
    declared as indexes, wrapped."""
    ring = db._keyring
    if not isinstance(ring, KeyRing):
        raise ConfigurationError(
            "an encrypted collection needs a key ring: asyncdb.connect(url, keyring=ring)"
        )
    keys = (key,) if isinstance(key, str) else tuple(key)
    spec = EncryptionSpec.parse(encrypted, name, keys, allow_plaintext=allow_plaintext)
    declared = [Index.of(i) for i in indexes]
    for index in declared:
        for path in index.paths:
            if spec.classify(path).kind != "plain":
                raise ConfigurationError(
                    f"index {index.name!r} covers the encrypted field {path_str(path)!r}: "
                    "an equality field is indexed by its blind index already"
                )
    ttl = options.get("ttl")
    if ttl is not None and spec.classify(tuple(ttl.split("."))).kind != "plain":
        raise ConfigurationError(f"the ttl field {ttl!r} cannot be encrypted")
    if "secondary_indexes" in db.capabilities:
        declared += [Index.of(f) for f in spec.token_fields]
    plain = db.collection(name, key, declared, **options)
    layer = EncryptedCollection(plain, DocumentCodec(spec, ring))
    db._layers[name] = layer.bind
    described = spec.describe()
    if db._encryption.get(name) != described:  # the catalog records it (copies carry it over)
        db._encryption[name] = described
        db._ensured.discard(plain._store.namespace)  # used plainly before: recorded again
    return layer
