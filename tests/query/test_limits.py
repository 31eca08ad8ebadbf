"""The input limits and the regex bound, without a store (asyncdb/query/limits.py, regex.py)."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.backends.base import check_key_update
from asyncdb.backends.sqlite.codec import escape_text, unescape_text
from asyncdb.query import matches, parse_filter, parse_update
from asyncdb.query.limits import value_depth
from asyncdb.query.regex import RegexTooCostly, regex_bound
from asyncdb.query.update import strict_equal
from asyncdb.types import CollectionSpec

# --- regexes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+$",
        "(a*)*b",
        "(a|aa)*c",
        "(a|a?)+",
        r"(\w+\s?)+$",
        "(?:x+y*)+z",
        "(a?){30}",
        r"(a)(?:\1)+",
        # repeated parts with a delimiter that does not split them in one way only
        r"(\d+,?)*$",  # the delimiter is optional
        r"(,?\d+)*$",
        r"(\d+\w)*x",  # the delimiter (\w) matches what the digits match
        "(?i)([a-z]+X)*!",  # X matches x once case is ignored
        r"(,\d*\d*)*$",  # split at its delimiter, but each iteration splits in many ways
        r"(\d*\d+,)*$",
    ],
)
def test_exponential_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(asyncdb.QueryError, match="exponential"):
        parse_filter({"s": {"$regex": pattern}})


@pytest.mark.parametrize(
    ("pattern", "degree", "bounded"),
    [
        ("^disk.*full$", 1, False),  # anchored: one start position
        (r"\bpie\b", 1, False),
        ("a{300}", 1, False),
        ("^(a|b|c)+$", 1, False),  # a character class: no ambiguity
        ("abc.*", 1, False),  # a trailing repetition never backtracks
        ("a*$", 2, True),
        (".*a.*b", 3, True),
        ("(ab|cd)*x", 2, True),
        # a repeated part split at its delimiter: one more degree, whatever it repeats inside
        (r"^(\d+,)*\d+$", 2, True),
        (r"(\d+,)*\d+", 2, True),
        (r"^([^,]*,)*$", 1, False),
        (r"^(,[a-z]*[0-9]*)*$", 1, False),
        (r"^(\w+ )*\w+$", 2, True),
    ],
)
def test_each_accepted_pattern_gets_its_degree(pattern: str, degree: int, bounded: bool) -> None:
    bound = regex_bound(pattern, "")
    assert bound.degree == degree
    assert (bound.max_length is not None) is bounded


def test_a_string_beyond_the_bound_raises_instead_of_blocking() -> None:
    node = parse_filter({"s": {"$regex": ".*a.*b"}})
    assert matches(node, {"s": "x" * 100 + "ab"})
    with pytest.raises(RegexTooCostly, match="391"):
        matches(node, {"s": "a" * 10_000})


def test_an_absent_first_character_keeps_the_search_cheap() -> None:
    """``x.*b`` starts only where an ``x`` is: 10,000 ``a``s cost nothing."""
    node = parse_filter({"s": {"$regex": "x.*b"}})
    assert not matches(node, {"s": "a" * 10_000})
    with pytest.raises(RegexTooCostly):
        matches(node, {"s": "x" * 10_000})


PATTERNS = [
    "^a",
    "a.b",
    "(?P<w>p)(?P=w)",
    r"\d+$",
    "x|y",
    "^[a-z]+$",
    "a*$",
    ".*a.*b",
    "é",
    r"^(\d+,)*\d+$",
    "(b+,)*a",
]


@given(
    st.sampled_from(PATTERNS),
    st.sampled_from(["", "i", "m", "s", "x", "ims"]),
    st.text(alphabet="abxyp\né1, ", max_size=40),
)
def test_accepted_patterns_match_exactly_as_re(pattern: str, flags: str, value: str) -> None:
    bits = 0
    for letter in flags:
        bits |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[letter]
    expected = re.search(pattern, value, bits) is not None
    assert regex_bound(pattern, flags).search(value) is expected


@contextmanager
def alarm_after(seconds: float) -> Iterator[None]:
    """Interrupt the block (re's matching loop checks for signals) after ``seconds``."""

    def ring(signum: int, frame: object) -> None:
        raise TimeoutError(f"still matching after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("pattern", "worst"),
    [
        (r"^(\d+,)*\d+$", "1," * 5000 + "x"),
        (r"(\d+,)*\d+!", "1234," * 2000),
        (r"([^,]*,)*x", "ab," * 3000),
        (r"(,[a-z]*[0-9]*)*!", ",a1" * 3000),
        (r"(\w+ )*!", "ab " * 3000),
        (r"\d+(,\d+)*$", "1," * 5000),
    ],
    ids=lambda v: v if len(v) < 30 else f"{v[:8]}...",
)
def test_delimited_repetitions_are_accepted_and_stay_within_the_bound(
    pattern: str, worst: str
) -> None:
    """A repetition of a part that holds repetitions but starts or ends with a delimiter
    nothing else in it matches (``(\\d+,)*``) is split in one way only: accepted, and its
    worst case at its length bound ends well within a second (an exponential one would not
    end on 30 characters)."""
    bound = regex_bound(pattern, "")
    value = worst[: bound.max_length]
    with alarm_after(1.0):
        assert bound.search(value) is (re.search(pattern, value) is not None)


_ATOMS = ["a", ",", r"\d", "[^,]", "[a,]", r"\s", ".", "1"]


def _regexes() -> st.SearchStrategy[str]:
    """Small patterns over a few atoms: sequences, alternatives and every repetition."""
    return st.recursive(
        st.sampled_from(_ATOMS),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2,}", "*?"])).map(
                lambda t: f"(?:{t[0]}){t[1]}"
            ),
            # a repeated part that starts or ends with a delimiter
            st.tuples(inner, st.sampled_from([",", "a"])).map(lambda t: f"(?:{t[1]}{t[0]})*"),
            st.tuples(inner, st.sampled_from([",", "a"])).map(lambda t: f"(?:{t[0]}{t[1]})+"),
        ),
        max_leaves=6,
    )


def _delimited() -> st.SearchStrategy[str]:
    """The shape the analysis accepts though it repeats repetitions: a repeated sequence of
    (repeated) single characters with one character first or last."""
    atoms = st.sampled_from(["a", ",", "[^,]", r"\d"])
    single = st.tuples(atoms, st.sampled_from(["", "*", "+", "?", "{2}"]))
    return st.tuples(
        st.lists(single.map("".join), min_size=1, max_size=3).map("".join),
        atoms,
        st.booleans(),
        st.sampled_from(["*", "+"]),
    ).map(lambda t: f"(?:{t[1]}{t[0]}){t[3]}" if t[2] else f"(?:{t[0]}{t[1]}){t[3]}")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(_regexes(), _delimited()),
    st.sampled_from(["$", "!", ""]),
    st.text(alphabet="a1, ", min_size=1, max_size=4),
)
@example("(?:,a*a*)*", "$", ",aa")  # each iteration splits in three ways
@example("(?:a*a*,)*", "!", "aa,")
@example("(?:a+a)*", "$", "a")  # the delimiter is what the rest matches
@example("(?:[^,]*a)*", "$", "aa")
def test_no_accepted_pattern_is_exponential(body: str, end: str, chunk: str) -> None:
    """Every pattern the analysis accepts ends within a second on up to 64 characters (its
    bound) of a repeated chunk and a character nothing matches (an exponential pattern takes
    seconds to years on them), and answers as re does."""
    pattern = body + end
    try:
        bound = regex_bound(pattern, "")
    except asyncdb.QueryError:
        return
    for end in "!\n":
        value = (chunk * 64)[:64] + end
        value = value[-(bound.max_length or len(value)) :]  # within its bound
        with alarm_after(1.0):
            assert bound.search(value) is (re.search(pattern, value) is not None)


# --- nesting, paths, text -----------------------------------------------------------------------


def test_value_depth_counts_levels_below_the_place() -> None:
    assert value_depth(1) == 0
    assert value_depth({}) == 0
    assert value_depth({"a": [1]}) == 2


@pytest.mark.parametrize(
    "update",
    [
        {"$set": {".".join(["a"] * 101): 1}},
        {"$set": {".".join(["a"] * 99): {"b": {"c": 1}}}},
        {"$push": {".".join(["a"] * 99): {"b": 1}}},
        {"$addToSet": {".".join(["a"] * 100): 1}},
        {"$rename": {"a": ".".join(["b"] * 101)}},
    ],
)
def test_an_update_that_builds_a_deeper_document_is_refused(update: dict[str, object]) -> None:
    with pytest.raises(asyncdb.QueryError, match=r"nesting|path limit"):
        parse_update(update)


def test_the_deepest_update_an_insert_could_hold_is_accepted() -> None:
    parse_update({"$set": {".".join(["a"] * 99): {"b": 1}}})
    parse_update({"$push": {".".join(["a"] * 99): 1}})


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", ["ok", "\ud83d"]])
def test_lone_surrogates_are_query_errors(value: object) -> None:
    with pytest.raises(asyncdb.QueryError, match="surrogate"):
        parse_filter({"s": value})
    with pytest.raises(asyncdb.QueryError, match="surrogate"):
        parse_update({"$set": {"s": value}})


def test_in_lists_are_bounded() -> None:
    with pytest.raises(asyncdb.QueryError, match=r"\$in limit"):
        parse_filter({"s": {"$in": list(range(200_001))}})


# --- keys and modifications ---------------------------------------------------------------------

SPEC = CollectionSpec("c")


@pytest.mark.parametrize(
    ("flt", "update", "upsert"),
    [
        ({"id": "new"}, {"$set": {"id": "other"}}, True),
        ({"id": {"$in": ["a", "b"]}}, {"$setOnInsert": {"id": "c"}}, True),
        ({"v": 1}, {"$unset": {"id": ""}}, False),
        ({"v": 1}, {"$rename": {"v": "id"}}, False),
        ({"v": 1}, {"$set": {"id.x": 1}}, False),
        ({"v": 1}, {"$push": {"id": 1}}, False),
    ],
)
def test_updates_that_change_the_key_are_refused(
    flt: dict[str, object], update: dict[str, object], upsert: bool
) -> None:
    with pytest.raises(asyncdb.KeyChanged):
        check_key_update(parse_filter(flt), parse_update(update), SPEC, upsert)


def test_setting_the_key_to_its_value_is_allowed() -> None:
    check_key_update(parse_filter({"id": "a"}), parse_update({"$set": {"id": "a"}}), SPEC, True)
    check_key_update(parse_filter({"v": 1}), parse_update({"$set": {"id": "z"}}), SPEC, True)


def test_a_decimal_exponent_change_is_a_modification() -> None:
    assert not strict_equal(Decimal("1.0"), Decimal("1.00"))
    assert strict_equal({"d": Decimal("1.0")}, {"d": Decimal("1.0")})


# --- SQLite's NUL-safe text ---------------------------------------------------------------------


@given(
    st.text(alphabet="\x00\x01\x02ab", max_size=6), st.text(alphabet="\x00\x01\x02ab", max_size=6)
)
def test_escaped_text_keeps_order_and_equality(a: str, b: str) -> None:
    ea, eb = escape_text(a), escape_text(b)
    assert "\x00" not in ea
    assert unescape_text(ea) == a
    assert (ea < eb, ea == eb) == (a < b, a == b)
