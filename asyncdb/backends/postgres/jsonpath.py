"""One filter conjunct -> a SQL condition on ``doc`` using SQL/JSON path in lax mode (pure).

A condition on a path becomes ``doc @? $n::jsonpath``: the whole path expression, values
included, is one bound ``jsonpath`` parameter (values never enter SQL text), and ``@?`` (unlike
``jsonb_path_exists(doc, path, vars)``) can use the collection's GIN ``jsonb_path_ops`` index.

Why lax SQL/JSON path is MongoDB's rule (each checked against the server in the planner tests):

* ``$."a"."b"`` unwraps one array level per member step, as MongoDB's dotted paths do;
* a filter ``? (...)`` on an array applies to its elements (a scalar condition on an array field
  matches if any element does); ``@.type()`` does not unwrap, so the type guard keeps a nested
  array ``[[1]]`` from matching ``1`` (lax comparison would unwrap it a second time);
* comparisons between different JSON types are unknown, never true; the guard makes the type
  bracketing explicit (``true`` never equals ``1``, ``4`` never matches ``"5"``);
* strings compare by code point (PostgreSQL compares jsonpath strings as UTF-8 bytes);
* numbers are exact ``numeric``; a float is written as its shortest repr only when that is its
  exact value (else the condition stays in the residual), a Decimal in a document is compared
  through its tag's ``$n``, a date through its tag's fixed-width ``$date`` text.

What this module cannot say exactly it leaves out (``None``: the residual decides).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from asyncdb.backends.postgres.codec import float_text, iso_date
from asyncdb.query.ast import And, Cmp, Eq, Exists, In, Node, Nor, Not, Or, Path, Regex

Bind = Callable[..., str]


class Compiled(NamedTuple):
    """SQL selecting a superset of a conjunct's matches; ``exact`` when it selects exactly them."""

    sql: str
    exact: bool


_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_DIGITS = re.compile(r"[0-9]+")


@functools.lru_cache(maxsize=4096)
def path_text(path: Path) -> str | None:
    """``("a", "b")`` -> ``$."a"."b"`` (None for numeric parts: an index or a key, which the
    reference evaluator decides)."""
    if not path or any(_DIGITS.fullmatch(p) for p in path):
        return None
    return "$" + "".join("." + _string(p) for p in path)


def _string(value: str) -> str:
    return orjson.dumps(value).decode()


def _number(value: Any) -> str | None:
    """The exact jsonpath literal of an int or float, or None when the float's text would not
    be its exact value (then the comparison is not exact in ``numeric``)."""
    t = type(value)
    if t is int:
        return str(value)
    if t is float:
        text = float_text(value)
        return text if Decimal(text) == Decimal(value) else None
    if t is Decimal and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    return None


def _value_test(value: Any, op: str) -> str | None:
    """A jsonpath predicate on ``@`` for ``@ <op> value`` with MongoDB's type bracketing."""
    t = type(value)
    if t is str:
        return f'@.type() == "string" && @ {op} {_string(value)}'
    if t is bool and op == "==":
        return f'@.type() == "boolean" && @ == {"true" if value else "false"}'
    if t is datetime:
        return f'@.type() == "object" && @."$date" {op} {_string(iso_date(value))}'
    if t in (int, float, Decimal):
        lit = _number(value)
        if lit is None:
            return None
        # plain numbers, and Decimals through their tag's exact value
        return (
            f'(@.type() == "number" && @ {op} {lit}) || (@.type() == "object" && @."$n" {op} {lit})'
        )
    return None


value_test = _value_test  # what a binder writes for a new value (asyncdb.query.plancache)


def _exists(path: str, pred: str, bind: Bind) -> str:
    return f"(doc @? {bind(f'{path} ? ({pred})', '::jsonpath')})"


IN_PUSHED_MAX = 1000  # $in values compiled to SQL (a parameter or two each)


def _eq(path: Path, value: Any, bind: Bind) -> Compiled | None:
    text = path_text(path)
    if text is None:
        return None
    if value is None:
        if len(path) != 1:
            return None  # a missing step inside arrays: the reference evaluator decides
        present = bind(text, "::jsonpath")
        is_null = _exists(text, '@.type() == "null"', bind)
        return Compiled(f"(NOT (doc @? {present}) OR {is_null})", True)
    pred = _value_test(value, "==")
    if pred is None:
        return None
    return Compiled(_exists(text, pred, bind), True)


def _field(term: Node, bind: Bind) -> Compiled | None:
    try:
        return _field_sql(term, bind)
    except orjson.JSONEncodeError:  # a lone surrogate: no JSON text, the residual decides
        return None


def _field_sql(term: Node, bind: Bind) -> Compiled | None:
    t = type(term)
    if t is Eq:
        assert isinstance(term, Eq)
        return _eq(term.path, term.value, bind)
    if t is In:
        assert isinstance(term, In)
        if len(term.values) > IN_PUSHED_MAX:
            return None  # bind parameters are limited (32,767): the residual decides
        parts = [_eq(term.path, v, bind) for v in term.values]
        if not parts or any(p is None for p in parts):
            return None
        return _any([p for p in parts if p is not None])
    if t is Cmp:
        assert isinstance(term, Cmp)
        text = path_text(term.path)
        if text is None or term.value is None or type(term.value) is bool:
            return None
        pred = _value_test(term.value, _OPS[term.op])
        if pred is None:
            return None
        return Compiled(_exists(text, pred, bind), True)
    if t is Exists:
        assert isinstance(term, Exists)
        text = path_text(term.path)
        if text is None or len(term.path) != 1:
            return None
        found = f"(doc @? {bind(text, '::jsonpath')})"
        return Compiled(found if term.exists else f"NOT {found}", True)
    if t is Regex:
        assert isinstance(term, Regex)
        text = path_text(term.path)
        translated = like_regex(term.pattern, term.flags)
        if text is None or translated is None:
            return None
        # flag "s" always: without it PostgreSQL's ``.`` and negated classes skip newlines.
        pred = f'@.type() == "string" && @ like_regex {_string(translated)} flag "s"'
        return Compiled(_exists(text, pred, bind), True)
    if t is Not:
        assert isinstance(term, Not)
        inner = compile_term(term.child, bind)
        if inner is None or not inner.exact:
            return None
        return Compiled(f"NOT COALESCE({inner.sql}, FALSE)", True)
    return None


_CLASS_CHAR = re.compile(r"[A-Za-z0-9 _]")
_QUANTIFIER = re.compile(r"\{([0-9]{1,3})(?:(,)([0-9]{1,3})?)?\}")
# What an ASCII letter matches under Python's re.IGNORECASE, where that is more than its two
# cases (found by trying every code point): written out, so no database case folding is used.
_FOLDS = {"i": "iI\u0130\u0131", "k": "kK\u212a", "s": "sS\u017f"}
# Characters that mean nothing special to Python ``re`` nor to PostgreSQL's regex engine.
_SPECIAL = set("\\()|{}[]^$.*+?")


def like_regex(pattern: str, flags: str) -> str | None:
    """The PostgreSQL ``like_regex`` pattern (run with flag ``s``) that matches exactly the
    strings Python ``re.search(pattern, flags)`` matches, or None outside the conservative
    subset: literal characters, ``^``, ``$``, ``.``, bracket classes of letters, digits, space
    and ``_`` (ranges too, no escapes), and ``* + ? {m} {m,} {m,n}`` (n <= 255) after a
    character or class.

    Flags ``i`` and ``s``; with ``i`` each ASCII letter becomes the class of what Python's
    case folding matches (``k`` is ``[kK\u212a]``: no database folding involved) and classes or
    non-ASCII literals stay residual. ``m`` needs PostgreSQL's newline-sensitive mode, which also
    stops negated classes at newlines. Without ``s`` a ``.`` is written ``[^\\n]`` (Python's
    ``.``); Python's ``$`` also matches before a final newline, so it is ``(?=\\n?$)``.
    tests/backends/test_postgres_store.py checks each construct against the server.

    >>> like_regex("^ab.[0-9]+$", "")
    '^ab[^\\n][0-9]+(?=\\n?$)'
    """
    if not set(flags) <= {"i", "s"} or len(set(flags)) != len(flags):
        return None
    fold = "i" in flags
    dot_all = "s" in flags
    out: list[str] = []
    quantifiable = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in "*+?":
            if not quantifiable:
                return None
            out.append(c)
            quantifiable = False
            i += 1
            continue
        if c == "{":
            m = _QUANTIFIER.match(pattern, i)
            if m is None or not quantifiable:
                return None
            low, high = int(m.group(1)), m.group(3)
            if low > 255 or (high is not None and not low <= int(high) <= 255):
                return None
            out.append(m.group(0))
            quantifiable = False
            i = m.end()
            continue
        if c == "^":
            out.append("^")
            quantifiable = False
        elif c == "$":
            out.append("(?=\n?$)")
            quantifiable = False
        elif c == ".":
            out.append("." if dot_all else "[^\n]")
            quantifiable = True
        elif c == "[" and not fold:
            end = _bracket(pattern, i)
            if end is None:
                return None
            out.append(pattern[i:end])
            quantifiable = True
            i = end
            continue
        elif c in _SPECIAL or c == "\x00" or (fold and (c == "[" or not c.isascii())):
            return None
        elif fold and c.isalpha():
            out.append("[" + _FOLDS.get(c.lower(), c.lower() + c.upper()) + "]")
            quantifiable = True
        else:
            out.append(c)
            quantifiable = True
        i += 1
    return "".join(out)


def _bracket(pattern: str, start: int) -> int | None:
    """The end of a bracket class at ``start`` inside the subset (see ``like_regex``)."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    items = 0
    while i < len(pattern) and pattern[i] != "]":
        if not _CLASS_CHAR.fullmatch(pattern[i]):
            return None
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            if not _CLASS_CHAR.fullmatch(pattern[i + 2]) or pattern[i] > pattern[i + 2]:
                return None
            i += 3
        else:
            i += 1
        items += 1
    if i >= len(pattern) or items == 0:
        return None
    return i + 1


def _any(parts: list[Compiled]) -> Compiled:
    sql = parts[0].sql if len(parts) == 1 else "(" + " OR ".join(p.sql for p in parts) + ")"
    return Compiled(sql, all(p.exact for p in parts))


def compile_term(term: Node, bind: Bind) -> Compiled | None:
    """The SQL of ``term``, or None when it stays entirely in the residual."""
    t = type(term)
    if t is And or t is Or or t is Nor:
        assert isinstance(term, And | Or | Nor)
        parts = [compile_term(c, bind) for c in term.children]
        if t is And:
            done = [p for p in parts if p is not None]
            if not done:
                return None
            sql = "(" + " AND ".join(p.sql for p in done) + ")"
            return Compiled(sql, len(done) == len(parts) and all(p.exact for p in done))
        if any(p is None for p in parts):
            return None
        merged = _any([p for p in parts if p is not None])
        if t is Or:
            return merged
        if not merged.exact:
            return None
        return Compiled(f"NOT COALESCE({merged.sql}, FALSE)", True)
    return _field(term, bind)


__all__ = ["Bind", "Compiled", "compile_term", "like_regex", "path_text", "value_test"]
