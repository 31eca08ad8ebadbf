"""The limits every query and write is held to before any I/O, and the stores' own limits.

One set of portable limits applies to every backend, to inserts and updates alike:

* nesting: a stored value lies at most ``MAX_DEPTH`` (100) levels deep (the document is level
  0); an update that would build a deeper document is refused like an insert of one;
* paths: at most ``MAX_PATH_PARTS`` (100) parts and ``MAX_PATH_CHARS`` characters;
* ``$in``/``$nin``/``$all``: at most ``MAX_IN_VALUES`` values (more are split into chunks by
  the backends that need it, so every backend answers up to this many);
* text: strings and field names are Unicode text a store can encode, so a lone surrogate
  (``"\\ud800"``, which UTF-8 cannot encode) is a QueryError everywhere.

A store adds its own (:class:`StoreLimits`): document size, key size and nesting where it holds
less than the portable limits. Crossing one is a :class:`~asyncdb.errors.QueryError` that names
the limit and the path.

>>> check_text("caf\\u00e9", "name")
>>> check_text("\\ud800", "name")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
asyncdb.errors.QueryError: text holds a lone surrogate (U+D800), which no store can ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncdb.errors import QueryError

MAX_DEPTH = 100
MAX_PATH_PARTS = 100
MAX_PATH_CHARS = 10_000
MAX_IN_VALUES = 200_000

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: str, path: str) -> None:
    """Refuse a string a store cannot encode (a surrogate code point; ASCII is always fine)."""
    if value.isascii():
        return
    found = _SURROGATE.search(value)
    if found is not None:
        raise QueryError(
            f"text holds a lone surrogate (U+{ord(found.group()):04X}), which no store can encode",
            path=path,
        )


def value_depth(value: Any) -> int:
    """How many levels a value adds below the place it is stored (0 for a scalar or an empty
    container): a value stored at a path of ``k`` parts reaches depth ``k + value_depth``."""
    t = type(value)
    if t is dict or isinstance(value, Mapping):
        return 1 + max(map(value_depth, value.values())) if value else 0
    if t is list or t is tuple:
        return 1 + max(map(value_depth, value)) if value else 0
    return 0


def filter_size(node: Any) -> int:
    """The terms of a filter as a native query spells them: conditions, and ``$in`` values by
    tens."""
    children = getattr(node, "children", None)
    if children is not None:
        return sum(map(filter_size, children))
    inner = getattr(node, "child", None) or getattr(node, "cond", None)
    if inner is not None:
        return 1 + filter_size(inner)
    values = getattr(node, "values", None)
    return 1 + (len(values) // 10 if type(values) is tuple else 0)


def check_depth(depth: int, path: str, limit: int = MAX_DEPTH, store: str = "") -> None:
    if depth > limit:
        where = f"{store} holds" if store else "documents hold"
        raise QueryError(
            f"nesting limit: {where} values at most {limit} levels deep, this one is {depth}",
            path=path,
        )


def check_path_parts(key: str, parts: int, where: str) -> None:
    if parts > MAX_PATH_PARTS or len(key) > MAX_PATH_CHARS:
        raise QueryError(
            f"path limit: at most {MAX_PATH_PARTS} parts and {MAX_PATH_CHARS} characters",
            path=where[:200],
        )


def check_in_size(count: int, where: str) -> None:
    if count > MAX_IN_VALUES:
        raise QueryError(f"$in limit: at most {MAX_IN_VALUES} values, got {count}", path=where)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """What one store can hold, checked before any I/O (None: no limit below the portable ones).

    ``document_bytes`` bounds the size the store measures (``StoreCollection.stored_size``),
    ``key_bytes`` the size of a key as the store keeps it, ``depth`` the nesting of a document
    (level 0 is the document), ``path_bytes`` the UTF-8 size of its longest field path.
    """

    document_bytes: int | None = None
    key_bytes: int | None = None
    depth: int = MAX_DEPTH
    path_bytes: int | None = None  # the longest dotted field path, as stored
    # the terms of a filter one native query carries (filter_size): SQLite's expression depth,
    # DynamoDB's 4 KB expressions, Cosmos's query complexity; the rest is re-checked in process
    filter_terms: int | None = None
    # derived: key strings up to this many characters fit (no store encodes a character in
    # more than 12 bytes: UTF-8, then percent-encoded); whether the stored form is measured
    key_quick: int | None = field(init=False, default=None)
    measured: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        quick = None if self.key_bytes is None else self.key_bytes // 12
        object.__setattr__(self, "key_quick", quick)
        measured = self.depth < MAX_DEPTH or self.path_bytes or self.document_bytes
        object.__setattr__(self, "measured", bool(measured))


PORTABLE = StoreLimits()


__all__ = [
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_PATH_CHARS",
    "MAX_PATH_PARTS",
    "PORTABLE",
    "StoreLimits",
    "check_depth",
    "check_in_size",
    "check_path_parts",
    "check_text",
    "filter_size",
    "value_depth",
]
