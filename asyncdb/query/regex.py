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

A repetition of a part that repeats is still accepted when a delimiter takes it apart in one
way only (``(\\d+,)*\\d+``, ``([^,]*,)*``: :meth:`_Analysis.delimited`).

Accepted patterns match exactly as ``re.search`` does; nothing is rewritten.

What is decided before any I/O and what is not: the refusal of exponential patterns and the
absence of a bound for linear ones depend on the pattern alone, so they are decided when the
filter is parsed. ``RegexTooCostly`` depends on the length of the value matched, which only the
stored data tells: it is raised by the first value beyond the bound, while a stream is read
(documents before it may have been yielded). No store bounds its strings below the bound of a
backtracking pattern (their document sizes are 400 KB and more), so no store limit decides it
either; a pattern whose repetitions are possessive or atomic is linear and never raises it.

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
_compiler: Any = importlib.import_module("re._compiler")  # compiles a parse tree of _sre

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

    def __init__(self, ignore_case: bool, where: str, state: Any = None) -> None:
        self.ignore_case = ignore_case
        self.where = where
        self.state = state  # the parse tree's state (flags, groups): to compile one item
        self.slow = False  # a repetition of a group (re's slower general loop)
        self._matchers: dict[int, re.Pattern[str]] = {}

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
                    if not self.delimited(body):
                        raise _refuse("a repetition of a repeated part", self.where)
                    # each iteration is taken apart in one way: backtracking into all of
                    # them costs one pass over what they matched, not a power of it
                    inner = 0
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

    def delimited(self, body: Any) -> bool:
        """Is a repeated part split into its iterations, and each iteration into its items, in
        one way only? Then repeating it cannot be exponential, though it holds repetitions.

        Holds for a sequence of single characters and repetitions of single characters that
        starts or ends with one delimiter character no other item can match (``\\d+,``,
        ``,\\d+``, ``[^,]*,``): every iteration then begins (or ends) exactly at a
        delimiter. Within an iteration, a repetition of variable count must not share a
        character with what may follow it up to the next item that must match (the next
        iteration's start included), so no character could have gone to either: ``,a*a*``
        and ``\\d+,\\d*`` are refused. Everything else (alternatives, anchors, nested
        groups of repetitions, backreferences) is not proven and stays refused."""
        items = self.simple(body)
        if items is None or len(items) < 2 or self.state is None:
            return False
        n = len(items)
        for at in (0, n - 1):
            mark, low, high = items[at]
            others = (x for i, (x, _, _) in enumerate(items) if i != at)
            if low == high == 1 and all(self.disjoint(mark, x) for x in others):
                break
        else:
            return False
        for i, (x, low, high) in enumerate(items):
            if low == high:
                continue
            for step in range(1, n):
                y, y_low, _ = items[(i + step) % n]
                if not self.disjoint(x, y):
                    return False
                if y_low >= 1:
                    break
        return True

    def simple(self, items: Any) -> list[tuple[Any, int, int]] | None:
        """``items`` as (single-character item, least, most count), plain groups opened; None
        when it holds anything else."""
        out: list[tuple[Any, int, int]] = []
        for op, av in items:
            if op in _SINGLE:
                out.append(((op, av), 1, 1))
            elif op in _REPEATS or op == _sre.POSSESSIVE_REPEAT:
                inner = self.simple(av[2])
                if inner is None or len(inner) != 1 or inner[0][1:] != (1, 1):
                    return None
                out.append((inner[0][0], av[0], av[1]))
            elif op == _sre.SUBPATTERN and not av[1] and not av[2]:  # no flags of its own
                inner = self.simple(av[-1])
                if inner is None:
                    return None
                out += inner
            else:
                return None
        return out

    def disjoint(self, a: Any, b: Any) -> bool:
        """Can no character match both single-character items? Exact when one of them is a
        finite set (each of its characters is tried on the other with re itself); for two
        infinite classes, only the category pairs known to be apart (``\\d`` and ``\\s``...)."""
        fa, fb = self.finite(a), self.finite(b)
        if fa is None and fb is None:
            ca, cb = _categories(a), _categories(b)
            return (
                ca is not None
                and cb is not None
                and all(frozenset((x, y)) in _APART for x in ca for y in cb)
            )
        for chars, other in ((fa, b), (fb, a)):
            if chars is not None:
                matcher = self.matcher(other)
                if any(matcher.fullmatch(c) for ch in chars for c in self.fold(ch) - {"ANY"}):
                    return False
        return True

    def finite(self, item: Any) -> set[str] | None:
        """The characters of a literal or of a set of literals and small ranges; None when
        the item is a class (``.``, ``\\d``, a negated set, ...)."""
        op, av = item
        if op == _sre.LITERAL:
            return {chr(av)}
        if op != _sre.IN:
            return None
        out: set[str] = set()
        for kind, value in av:
            if kind == _sre.LITERAL:
                out.add(chr(value))
            elif kind == _sre.RANGE and value[1] - value[0] < 256:
                out |= {chr(c) for c in range(value[0], value[1] + 1)}
            else:
                return None
        return out

    def matcher(self, item: Any) -> re.Pattern[str]:
        """The one item compiled alone, with the pattern's flags: re's own membership test."""
        found = self._matchers.get(id(item))
        if found is None:
            tree = _sre.SubPattern(self.state, [item])
            found = self._matchers[id(item)] = _compiler.compile(tree, self.state.flags)
        return found

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


_CATEGORY_DIGIT, _CATEGORY_SPACE, _CATEGORY_WORD = (
    _sre.CATEGORY_DIGIT,
    _sre.CATEGORY_SPACE,
    _sre.CATEGORY_WORD,
)
# Category pairs no character belongs to both of (Unicode or ASCII: a digit is a word
# character, no word character is a space).
_APART = {
    frozenset(pair)
    for pair in [
        (_CATEGORY_DIGIT, _CATEGORY_SPACE),
        (_CATEGORY_WORD, _CATEGORY_SPACE),
        (_CATEGORY_DIGIT, _sre.CATEGORY_NOT_DIGIT),
        (_CATEGORY_SPACE, _sre.CATEGORY_NOT_SPACE),
        (_CATEGORY_WORD, _sre.CATEGORY_NOT_WORD),
        (_CATEGORY_DIGIT, _sre.CATEGORY_NOT_WORD),
    ]
}


def _categories(item: Any) -> list[Any] | None:
    """The categories of a set made of categories only (``[\\d]``, ``\\s``); else None."""
    op, av = item
    if op != _sre.IN or not all(kind == _sre.CATEGORY for kind, _ in av):
        return None
    return [value for _, value in av]


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
    analysis = _Analysis(bool(compiled.flags & re.I), where, tree.state)
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
