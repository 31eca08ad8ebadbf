"""The SQL functions every SQLite connection registers: exact BSON sort keys, Python ``re``,
MongoDB ``$mod`` and the reference evaluator (for documents holding a Decimal).

They are deterministic, so SQLite may use them in index expressions (the unique indexes are on
``asyncdb_sortkey``) and evaluate them once per row. Each connection gets its own instances: they
run on that connection's worker thread and keep small per-connection caches.

>>> fns = dict((name, fn) for name, _, fn in sql_functions())
>>> fns["asyncdb_regexp"]("^a", "i", "Abc")
1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from asyncdb.backends.sqlite.codec import decode_any, loads, unescape_text
from asyncdb.errors import QueryError
from asyncdb.query.ast import Node, Sort, SortKey
from asyncdb.query.evaluate import matches, mod_matches
from asyncdb.query.parse import parse_filter
from asyncdb.query.regex import regex_bound
from asyncdb.query.sort import sort_key

SORTKEY = "asyncdb_sortkey"
REGEXP = "asyncdb_regexp"
MOD = "asyncdb_mod"
MATCH = "asyncdb_match"

_CACHE_LIMIT = 512


class _Failed:
    """The asyncdb error a function last raised (on a connection's worker thread): sqlite3
    reports only "user-defined function raised exception", so the store takes the real one
    back with function_error()."""

    error: QueryError | None = None


_FAILED = _Failed()


def function_error(exc: Exception) -> QueryError | None:
    """The QueryError (a regex beyond its bound) behind ``exc``, a failed statement, if a
    function of ours raised it."""
    if "user-defined function raised exception" not in str(exc):
        return None
    error, _FAILED.error = _FAILED.error, None
    return error


def sort_spec_json(sort: Sort) -> str:
    """The text form of a sort given to ``asyncdb_sortkey`` (paths as lists, so any name fits)."""
    return orjson.dumps([[list(k.path), k.direction] for k in sort]).decode()


def _parse_sort(text: str) -> Sort:
    return tuple(SortKey(tuple(path), 1 if d == 1 else -1) for path, d in orjson.loads(text))


def sql_functions() -> list[tuple[str, int, Callable[..., Any]]]:
    """Fresh function instances for one connection: ``(name, number of args, function)``."""
    sorts: dict[str, Sort] = {}
    filters: dict[str, Node] = {}
    last: list[Any] = [None, None, b""]  # the previous (doc, spec) and its key

    def sortkey(doc: str, spec: str) -> bytes:
        # WHERE (keyset) and ORDER BY ask for the same row's key one after the other.
        if doc == last[0] and spec == last[1]:
            key: bytes = last[2]
            return key
        sort = sorts.get(spec)
        if sort is None:
            if len(sorts) > _CACHE_LIMIT:
                sorts.clear()
            sort = sorts[spec] = _parse_sort(spec)
        key = sort_key(decode_any(doc), sort)
        last[0], last[1], last[2] = doc, spec, key
        return key

    def regexp(pattern: str, flags: str, value: Any) -> int:
        if type(value) is not str:
            return 0
        try:
            return 1 if regex_bound(pattern, flags).search(unescape_text(value)) else 0
        except QueryError as exc:
            _FAILED.error = exc
            raise

    def mod(value: Any, divisor: Any, remainder: Any) -> int:
        if type(value) is not int and type(value) is not float:
            return 0
        return 1 if mod_matches(value, int(divisor), int(remainder)) else 0

    def match(doc: str, filter_text: str) -> int:
        node = filters.get(filter_text)
        if node is None:
            if len(filters) > _CACHE_LIMIT:
                filters.clear()
            node = filters[filter_text] = parse_filter(loads(filter_text))
        try:
            return 1 if matches(node, decode_any(doc)) else 0
        except QueryError as exc:
            _FAILED.error = exc
            raise

    return [(SORTKEY, 2, sortkey), (REGEXP, 3, regexp), (MOD, 3, mod), (MATCH, 2, match)]


__all__ = [
    "MATCH",
    "MOD",
    "REGEXP",
    "SORTKEY",
    "function_error",
    "sort_spec_json",
    "sql_functions",
]
