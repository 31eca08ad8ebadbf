"""``asyncdb.backup`` / ``asyncdb.restore``: collections as a JSON Lines file.

The file (gzip when its name ends in ``.gz``) holds, per collection, a header line
``{"$header": {"format": 1, "backend": ..., "collection": <catalog document>}}``, one document
per line in tagged JSON (:mod:`asyncdb._tagged_json`: exact field order and types), and a
footer ``{"$footer": {"count": n, "digest": <fold of the document digests>, "header": <digest
of the header line>}}``; the last line is ``{"$end": {"collections": n}}``. Stored field names
never start with ``$``, so these lines cannot be documents. ``restore`` reads the whole file
once and checks every count and digest before it writes anything: a truncated or altered file
is refused with :class:`BackupError`.

>>> # await asyncdb.backup("postgresql://u@h/app", "app.jsonl.gz")
>>> # await asyncdb.restore("app.jsonl.gz", "dynamodb://localhost:8000?region=us-east-1")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from asyncdb._tagged_json import dumps, untag
from asyncdb.catalog import spec_document, spec_from_document
from asyncdb.errors import AsyncDBError
from asyncdb.movement.copier import write_batch
from asyncdb.movement.digest import Fold, document_digest
from asyncdb.movement.foreign import close
from asyncdb.movement.resolve import Side, opened, sources, spec_collection
from asyncdb.movement.sources import Source, converter
from asyncdb.types import CollectionSpec

FORMAT = 1
BATCH = 500


class BackupError(AsyncDBError):
    """A backup file that is truncated, altered or not a backup (nothing was written)."""


def _open(path: str | Path, mode: str, gz: bool | None = None) -> IO[str]:
    if str(path).endswith(".gz") if gz is None else gz:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def _line_digest(line: str) -> str:
    return hashlib.blake2b(line.encode(), digest_size=16).hexdigest()


async def backup(
    src: Side,
    path: str | Path,
    collections: Sequence[str] | None = None,
    *,
    key: str | Sequence[str] | None = None,
) -> dict[str, int]:
    """Write the collections (the catalog by default) of ``src`` to ``path``; returns the
    number of documents per collection.

    >>> import asyncio, asyncdb, tempfile, os
    >>> async def main():
    ...     path = os.path.join(tempfile.mkdtemp(), "t.jsonl.gz")
    ...     async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
    ...         await a.collection("t").insert_one({"id": "x", "n": 1.5})
    ...         await asyncdb.backup(a, path)
    ...         await asyncdb.restore(path, b)
    ...         return await b.collection("t").find_one({"id": "x"})
    >>> asyncio.run(main())
    {'id': 'x', 'n': 1.5}
    """
    counts: dict[str, int] = {}
    tmp = Path(str(path) + ".partial")
    async with opened(src) as db:
        found = await sources(db, collections, key)
        try:
            await _write(tmp, str(path).endswith(".gz"), found, counts)
        finally:
            await close(found)
    os.replace(tmp, path)  # a backup that stopped half-way never has the final name
    return counts


async def _write(tmp: Path, gz: bool, found: list[Source], counts: dict[str, int]) -> None:
    with _open(tmp, "w", gz) as out:
        for source in found:
            header = dumps(
                {
                    "$header": {
                        "format": FORMAT,
                        "backend": source.backend,
                        "collection": spec_document(source.spec),
                    }
                }
            )
            out.write(header + "\n")
            fold = Fold()
            convert = converter(source)
            async for raw in source.documents(None):
                doc = raw if convert is None else convert(raw)
                fold.add(document_digest(doc))
                out.write(dumps(doc) + "\n")
            footer = {"count": fold.count, "digest": fold.hex(), "header": _line_digest(header)}
            out.write(dumps({"$footer": footer}) + "\n")
            counts[source.spec.name] = fold.count
        out.write(dumps({"$end": {"collections": len(found)}}) + "\n")


def _lines(path: str | Path) -> Iterator[tuple[int, str, Any]]:
    try:
        with _open(path, "r") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    raise BackupError(f"{path}: line {number} is cut short (truncated file)")
                try:
                    yield number, line[:-1], orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise BackupError(f"{path}: line {number} is not JSON") from None
    except (EOFError, gzip.BadGzipFile, UnicodeDecodeError, io.UnsupportedOperation) as exc:
        raise BackupError(f"{path}: not a complete backup file ({exc})") from None


def _check(path: str | Path) -> list[tuple[CollectionSpec, str, int]]:
    """Validate the whole file; returns (spec, backend, count) per collection."""
    found: list[tuple[CollectionSpec, str, int]] = []
    header: Any = None
    header_line = ""
    fold = Fold()
    ended = False
    for number, line, value in _lines(path):
        if ended:
            raise BackupError(f"{path}: line {number} follows the end marker")
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith("$"):
            (tag,) = value
            body = value[tag]
            if tag == "$header":
                if header is not None or not isinstance(body, dict):
                    raise BackupError(f"{path}: line {number}: unexpected header")
                if body.get("format") != FORMAT:
                    raise BackupError(f"{path}: format {body.get('format')!r} is not {FORMAT}")
                header, header_line, fold = body, line, Fold()
                continue
            if tag == "$footer":
                if header is None:
                    raise BackupError(f"{path}: line {number}: footer without header")
                if (
                    body.get("count") != fold.count
                    or body.get("digest") != fold.hex()
                    or body.get("header") != _line_digest(header_line)
                ):
                    name = header["collection"].get("name")
                    raise BackupError(
                        f"{path}: collection {name!r} does not match its footer "
                        f"(altered or incomplete: {fold.count} documents read, "
                        f"footer says {body.get('count')})"
                    )
                found.append(
                    (spec_from_document(header["collection"]), header["backend"], fold.count)
                )
                header = None
                continue
            if tag == "$end":
                if header is not None or body.get("collections") != len(found):
                    raise BackupError(f"{path}: the end marker does not match the collections")
                ended = True
                continue
        if header is None or not isinstance(value, dict):
            raise BackupError(f"{path}: line {number} is outside a collection")
        doc = untag(value)
        if dumps(doc) != line:  # backup writes canonical text only
            raise BackupError(f"{path}: line {number} was altered (not the text backup writes)")
        fold.add(document_digest(doc))
    if not ended:
        raise BackupError(f"{path}: no end marker (truncated file)")
    return found


async def restore(
    path: str | Path, dst: Side, collections: Sequence[str] | None = None
) -> dict[str, int]:
    """Load a backup into ``dst`` (each collection created with its spec: key, indexes, TTL),
    after checking the whole file; returns the documents restored per collection. Documents
    already there with the same key are replaced, so a restore can be repeated."""
    wanted = None if collections is None else set(collections)
    checked = _check(path)
    counts: dict[str, int] = {}
    async with opened(dst) as db:
        targets = {
            spec.name: spec_collection(db, spec)
            for spec, _, _ in checked
            if wanted is None or spec.name in wanted
        }
        current: Any = None
        batch: list[dict[str, Any]] = []

        async def flush() -> None:
            if current is not None and batch:
                failed = await write_batch(current, batch)
                if failed:
                    _, exc = failed[0]
                    raise BackupError(f"restore of {current.name!r} failed: {exc}") from exc
                counts[current.name] = counts.get(current.name, 0) + len(batch)
            batch.clear()

        for _, _, value in _lines(path):
            if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith("$"):
                (tag,) = value
                await flush()
                current = None
                if tag == "$header":
                    current = targets.get(value[tag]["collection"]["name"])
                    if current is not None:
                        counts.setdefault(current.name, 0)
                continue
            if current is not None:
                batch.append(untag(value))
                if len(batch) >= BATCH:
                    await flush()
        await flush()
    return counts


async def catalog_template(url: str, prefix: str = "") -> dict[str, Any]:
    """The DynamoDB CloudFormation template of the collections in ``url``'s catalog."""
    from asyncdb.backends.dynamodb.cloudformation import cloudformation_template

    async with opened(url) as db:
        specs = await db.list_collections()
    return cloudformation_template(specs, prefix=prefix)


__all__ = ["BackupError", "backup", "catalog_template", "restore"]
