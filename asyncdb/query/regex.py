"""``$regex`` under a bound: Python ``re`` semantics, but no pattern may run away.

Python's ``re`` backtracks, so some patterns take time exponential in the length of the string
(``(a+)+$`` against forty ``a``s and a ``!`` runs for minutes) and others a high power of it
(``.*a.*b`` against 10,000 ``a``s: two minutes), all of it on the event loop. Each pattern is
analysed once, from the parse tree ``re`` itself builds:

* patterns whose backtracking can be exponential are refused before any I/O: a repetition of
  something that itself repeats (``(a+)+``, ``(\\w*\\s?)*``), a repetition of alternatives that
  can start alike (``(a|ab)*``), or of a backreference;
* every other pattern gets its degree ``d``: how many backtracking repetitions follow one
  another, plus one for the start positions of an unanchored search. Its worst case on ``n``
  characters is about ``n**d / d!`` steps, so a string longer than the one that reaches
  ``STEP_BUDGET`` steps (about 10-50 ms of matching) is not matched: that is a
  :class:`RegexTooCostly` error (a ``QueryError``) instead of a blocked loop. Linear patterns
  (``d == 1``: no backtracking repetition, or only a trailing one) have no length bound.

Accepted patterns match exactly as ``re.search`` does; nothing is rewritten.

>>> bound = regex_bound("^disk.*full$", "i")
>>> bound.max_length is None or bound.max_length > 1000
True
>>> regex_bound("(a+)+$", "")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
asyncdb.errors.QueryError: regular expression could take exponential time: a repetition of ...
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from typing import Any

from asyncdb.errors import QueryError

_sre: Any = importlib.import_module("re._parser")  # the parser re itself compiles from

STEP_BUDGET = 10_000_000
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)
_SINGLE = (_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN)
_BIG = 16  # a repetition of more than this many iterations counts as unbounded


class RegexTooCostly(QueryError):
    """A ``$regex`` whose worst case on a string this long is beyond the step budget."""


@dataclass(frozen=True, slots=True)
class RegexBound:
    """A pattern accepted under the bound: its compiled form and the longest string it may be
    matched against (None: any length)."""

    compiled: re.Pattern[str]
    degree: int
    max_length: int | None
    budget: float = STEP_BUDGET
    first: str | None = None  # the character every match starts with (search skips the rest)

    def search(self, value: str, where: str = "") -> bool:
        """``re.search`` of ``value``, or RegexTooCostly when ``value`` is beyond the bound."""
        if self.max_length is not None and len(value) > self.max_length and not self._few(value):
            raise RegexTooCostly(
                f"regular expression of backtracking degree {self.degree} on a string of "
                f"{len(value)} characters (the bound is {self.max_length}): anchor it "
                "(^...), or make it more specific",
                path=where or "$regex",
            )
        return self.compiled.search(value) is not None

    def _few(self, value: str) -> bool:
        """Within the budget after all: an unanchored search starts only where its first
        character occurs, so it costs that count times the rest's worst case."""
        if self.first is None:
            return False
        rest = self.degree - 1
        starts = value.count(self.first)
        return bool(starts * len(value) ** rest / math.factorial(rest) <= self.budget)


def _refuse(why: str, where: str) -> QueryError:
    return QueryError(f"regular expression could take exponential time: {why}", path=where)


def _big(high: int) -> bool:
    return bool(high == _sre.MAXREPEAT or high > _BIG)


class _Analysis:
    """One walk of the parse tree: the degree of each sequence, exponential shapes refused."""

    def __init__(self, ignore_case: bool, where: str) -> None:
        self.ignore_case = ignore_case
        self.where = where
        self.slow = False  # a repetition of a group (re's slower general loop)

    def sequence(self, items: Any, *, tail: bool) -> int:
        """The degree of a sequence; ``tail``: nothing follows it in the whole pattern."""
        degree = 0
        items = list(items)
        for i, (op, av) in enumerate(items):
            last = tail and i == len(items) - 1
            degree += self.item(op, av, tail=last)
        return degree

    def item(self, op: Any, av: Any, *, tail: bool) -> int:
        if op in _REPEATS or op == _sre.POSSESSIVE_REPEAT:
            low, high, body = av
            inner = self.sequence(body, tail=False)
            if _big(high) and high > 1:
                if inner or self.has_repeat(body):
                    raise _refuse("a repetition of a repeated part", self.where)
                if self.ambiguous(body):
                    raise _refuse("a repetition of alternatives that can match alike", self.where)
                if self.has_backref(body):
                    raise _refuse("a repetition of a backreference", self.where)
            single = len(body) == 1 and body[0][0] in _SINGLE
            if (not single or op == _sre.MIN_REPEAT) and high > 1:
                self.slow = True  # re's general repeat loop, or a lazy one: slower steps
            if op == _sre.POSSESSIVE_REPEAT or tail or high == low:
                return inner  # no backtracking into it
            return inner + (1 if _big(high - low) else 0)
        if op == _sre.SUBPATTERN:
            return self.sequence(av[-1], tail=tail)
        if op == _sre.ATOMIC_GROUP:
            return self.sequence(av, tail=False)
        if op == _sre.BRANCH:
            return max(self.sequence(b, tail=tail) for b in av[1])
        if op in (_sre.ASSERT, _sre.ASSERT_NOT):
            return self.sequence(av[1], tail=False)
        if op == _sre.GROUPREF_EXISTS:
            _, yes, no = av
            return max(self.sequence(yes, tail=tail), self.sequence(no or [], tail=tail))
        return 0

    def has_repeat(self, items: Any) -> bool:
        for op, av in items:
            if (op in _REPEATS or op == _sre.POSSESSIVE_REPEAT) and av[1] != av[0]:
                return True
            if any(self.has_repeat(sub) for sub in _parts(op, av)):
                return True
        return False

    def has_backref(self, items: Any) -> bool:
        for op, av in items:
            if op in (_sre.GROUPREF, _sre.GROUPREF_IGNORE, _sre.GROUPREF_EXISTS):
                return True
            if any(self.has_backref(sub) for sub in _parts(op, av)):
                return True
        return False

    def ambiguous(self, items: Any) -> bool:
        """Alternatives (anywhere in a repeated part) that could start with the same
        character, or that could match the empty string."""
        for op, av in items:
            if op == _sre.BRANCH:
                firsts = [self.first(b) for b in av[1]]
                if any(f is None for f in firsts):
                    return True
                for i, a in enumerate(firsts):
                    for b in firsts[i + 1 :]:
                        assert a is not None and b is not None
                        if "ANY" in a or "ANY" in b or a & b:
                            return True
                if any(self.ambiguous(b) for b in av[1]):
                    return True
            elif op == _sre.SUBPATTERN and self.ambiguous(av[-1]):
                return True
        return False

    def first(self, items: Any) -> set[str] | None:
        """The characters a sequence can start with ({"ANY"} when unknown); None when it can
        match the empty string."""
        for op, av in items:
            if op == _sre.LITERAL:
                return self.fold(chr(av))
            if op == _sre.IN:
                out: set[str] = set()
                for kind, value in av:
                    if kind == _sre.LITERAL:
                        out |= self.fold(chr(value))
                    elif kind == _sre.RANGE and value[1] - value[0] < 256 and not self.ignore_case:
                        out |= {chr(c) for c in range(value[0], value[1] + 1)}
                    else:
                        return {"ANY"}
                return out
            if op in (_sre.ANY, _sre.NOT_LITERAL, _sre.CATEGORY):
                return {"ANY"}
            if op == _sre.SUBPATTERN:
                inner = self.first(av[-1])
                if inner is None:
                    continue
                return inner
            if op in _REPEATS or op == _sre.POSSESSIVE_REPEAT:
                if av[0] == 0:
                    return {"ANY"}  # optional: what follows could start too
                return self.first(av[2])
            if op == _sre.AT:
                continue
            return {"ANY"}
        return None

    def fold(self, ch: str) -> set[str]:
        if not self.ignore_case:
            return {ch}
        return {ch, ch.lower(), ch.upper(), ch.casefold()[:1], "ANY" if not ch.isascii() else ch}


def _parts(op: Any, av: Any) -> list[Any]:
    """The sub-sequences of one parse-tree item."""
    if op in _REPEATS or op == _sre.POSSESSIVE_REPEAT:
        return [av[2]]
    if op == _sre.SUBPATTERN:
        return [av[-1]]
    if op == _sre.ATOMIC_GROUP:
        return [av]
    if op == _sre.BRANCH:
        return list(av[1])
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return [av[1]]
    if op == _sre.GROUPREF_EXISTS:
        return [av[1], av[2] or []]
    return []


def _anchored(items: Any) -> bool:
    """Does the pattern start at the string's start only (``^`` without MULTILINE, ``\\A``)?
    Then ``re.search`` tries one start position, not every one."""
    for op, av in items:
        if op == _sre.AT:
            return bool(av in (_sre.AT_BEGINNING, _sre.AT_BEGINNING_STRING))
        if op == _sre.SUBPATTERN:
            return _anchored(av[-1])
        return False
    return False


_BOUNDS: dict[tuple[str, str], RegexBound] = {}


def regex_bound(pattern: str, flags: str, where: str = "$regex") -> RegexBound:
    """Compile ``pattern`` (Python ``re``, flags from i, m, s, x) and bound its cost; patterns
    that could take exponential time are a QueryError (cached per pattern and flags)."""
    key = (pattern, flags)
    bound = _BOUNDS.get(key)
    if bound is not None:
        return bound
    bits = 0
    for letter in flags:
        bits |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[letter]
    try:
        compiled = re.compile(pattern, bits)
        tree = _sre.parse(pattern, bits)
    except re.error as exc:
        raise QueryError(f"invalid regular expression: {exc}", path=where) from None
    except RecursionError:
        raise QueryError("regular expression nested too deeply", path=where) from None
    analysis = _Analysis(bool(compiled.flags & re.I), where)
    try:
        degree = analysis.sequence(tree, tail=True)
    except RecursionError:
        raise QueryError("regular expression nested too deeply", path=where) from None
    if not _anchored(tree):
        degree += 1  # re.search tries every start position
    max_length: int | None = None
    budget = STEP_BUDGET / (10 if analysis.slow else 1)
    if degree >= 2:
        max_length = int((budget * math.factorial(degree)) ** (1 / degree))
    first = None
    if tree and tree[0][0] == _sre.LITERAL and not compiled.flags & re.I and not _anchored(tree):
        first = chr(tree[0][1])
    bound = RegexBound(compiled, degree, max_length, budget, first)
    if len(_BOUNDS) > 1024:
        _BOUNDS.clear()
    _BOUNDS[key] = bound
    return bound


__all__ = ["STEP_BUDGET", "RegexBound", "RegexTooCostly", "regex_bound"]
