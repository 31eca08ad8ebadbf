"""The Hypothesis strategies of the differential tests: documents, filters, sorts, projections
and updates over the portable types, shared by test_differential.py (every backend against the
reference evaluator) and test_mongo_wire_oracle.py (the reference evaluator against a
MongoDB-wire server).

Batches of documents mix nulls, missing fields, nested documents, arrays of scalars and of
documents, and mixed types (dates, Decimals, bytes, booleans next to 0/1, ints next to floats).
Filters use every operator of DESIGN §2, ``$and/$or/$nor/$not``, dotted and numeric paths.

Filter operands are often ``Pick(n)`` placeholders, replaced before the query runs
(:class:`Concretizer`) by the n-th value that the condition's path reaches in the batch, so
filters hit the data instead of missing it by chance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from asyncdb.query import resolve
from asyncdb.query.evaluate import MISSING

Doc = dict[str, Any]

# --- values ---------------------------------------------------------------------------------------

DATES = [
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
]
# Few values, in clusters a store could confuse: 0/False/""/None, 1/True/1.0/Decimal("1")/"1",
# 2**53+1 next to float(2**53), and one of each other type.
SCALARS: list[Any] = [
    None,
    False,
    True,
    0,
    1,
    1.0,
    Decimal("1"),
    -1,
    2,
    2.5,
    1.5,
    -2.7,
    Decimal("2.5"),
    10,
    1e300,
    2**53 + 1,
    float(2**53),
    2**63 - 1,
    -(2**63),
    "",
    "1",
    "10",
    "a",
    "A",
    "ab",
    "b",
    "a\nb",
    "é",
    "\U0001f600",
    b"",
    b"a",
    b"\x00\x01",
    *DATES,
]
STRINGS = [v for v in SCALARS if isinstance(v, str)]
CONFUSABLE: list[Any] = [None, False, True, 0, 1, 1.0, Decimal("1"), "", "1"]
scalars = st.one_of(st.sampled_from(SCALARS), st.sampled_from(CONFUSABLE))
strings = st.sampled_from(STRINGS)
sub_keys = st.sampled_from(["x", "y", "z"])


def values(depth: int) -> st.SearchStrategy[Any]:
    """Scalars, and (to ``depth`` levels) arrays and small documents of them."""
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(sub_keys, inner, max_size=2),
    )


small_docs = st.fixed_dictionaries({}, optional={"x": values(1), "y": scalars, "z": scalars})

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "a": values(2),
    "b": scalars,
    "s": st.one_of(strings, strings, scalars, st.lists(strings, max_size=3)),
    "n": st.one_of(small_docs, small_docs, scalars, st.lists(small_docs, max_size=3)),
    "arr": st.one_of(
        st.lists(scalars, max_size=4),
        st.lists(scalars, max_size=4),
        scalars,
        st.lists(st.lists(scalars, max_size=2), max_size=3),
    ),
    "docs": st.one_of(
        st.lists(small_docs, max_size=3), st.lists(small_docs, max_size=3), small_docs
    ),
}


_ABSENT = object()


def _body(fields: Doc) -> Doc:
    return {k: v for k, v in fields.items() if v is not _ABSENT}


def _with_ids(bodies: list[Doc]) -> list[Doc]:
    return [{"id": f"d{i:02d}", **body} for i, body in enumerate(bodies)]


# each field is present three times in four
bodies = st.fixed_dictionaries(
    {k: st.one_of(st.just(_ABSENT), v, v, v) for k, v in FIELDS.items()}
).map(_body)
batches = st.lists(bodies, min_size=8, max_size=20).map(_with_ids)

# --- filters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """A placeholder operand: the n-th value (cyclically) that the enclosing path reaches
    (``here``), or that any path of the batch holds."""

    n: int
    here: bool = True


COMMON_PATHS = ["a", "b", "s", "n", "n.x", "arr", "docs", "docs.x"]
RARE_PATHS = ["n.y", "n.x.y", "arr.0", "arr.1", "docs.y", "docs.0.x", "docs.1", "a.x", "a.0"]
PATHS = COMMON_PATHS * 3 + [*RARE_PATHS, "a.0.x", "missing"]
REGEXES = ["^a", "a", "b$", "^$", "A", "^.$", "a.b", "a$", "^é", r"\d", "^[a-z]+$", "^a # c", "a b"]
REGEX_OPTIONS = ["", "i", "m", "s", "x", "im", "is", "ms", "imsx"]
TYPES: list[Any] = [
    "double",
    "string",
    "object",
    "array",
    "binData",
    "bool",
    "date",
    "null",
    "int",
    "long",
    "decimal",
    "number",
    1,
    2,
    16,
]
RE_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _compiled(pattern: str, options: str) -> re.Pattern[str]:
    flags = 0
    for letter in options:
        flags |= RE_FLAGS[letter]
    return re.compile(pattern, flags)


def _merge(parts: list[Doc]) -> Doc:
    out: Doc = {}
    for part in parts:
        out.update(part)
    return out


def choice(*branches: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``branches``, each equally likely (``st.one_of`` flattens nested alternatives, so
    its weights follow how many leaves each branch has)."""
    return st.sampled_from(branches).flatmap(lambda branch: branch)


picks = st.builds(Pick, st.integers(0, 50), st.booleans())
operands = choice(picks, picks, scalars, values(1))
range_operands = st.one_of(picks, picks, scalars)
cmp_ops = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
types = st.sampled_from(TYPES)
regex_conditions = choice(
    st.builds(lambda p: {"$regex": p}, st.sampled_from(REGEXES)),
    st.builds(
        lambda p, o: {"$regex": p, "$options": o},
        st.sampled_from(REGEXES),
        st.sampled_from(REGEX_OPTIONS),
    ),
    st.builds(
        lambda p, o: {"$regex": _compiled(p, o)},
        st.sampled_from(REGEXES),
        st.sampled_from(REGEX_OPTIONS),
    ),
)
regex_values = st.builds(_compiled, st.sampled_from(REGEXES), st.sampled_from(REGEX_OPTIONS))

# operator documents: under a path, inside $not, inside a scalar $elemMatch, in $pull
operator_docs = choice(
    st.builds(lambda v: {"$eq": v}, operands),
    st.builds(lambda v: {"$ne": v}, operands),
    st.builds(lambda op, v: {op: v}, cmp_ops, range_operands),
    st.builds(lambda op, v: {op: v}, cmp_ops, range_operands),
    st.builds(lambda op, v: {op: v}, cmp_ops, values(1)),
    st.builds(
        lambda o1, v1, o2, v2: {o1: v1, o2: v2}, cmp_ops, range_operands, cmp_ops, range_operands
    ),
    st.builds(lambda vs: {"$in": vs}, st.lists(operands, max_size=4)),
    st.builds(lambda vs: {"$nin": vs}, st.lists(operands, max_size=4)),
    st.builds(lambda b: {"$exists": b}, st.booleans()),
    st.builds(lambda t: {"$type": t}, st.one_of(types, st.lists(types, min_size=1, max_size=3))),
    regex_conditions,
    st.builds(lambda vs: {"$all": vs}, st.lists(operands, max_size=3)),
    st.builds(lambda n: {"$size": n}, st.integers(0, 3)),
    st.builds(
        lambda d, r: {"$mod": [d, r]},
        st.sampled_from([2, 3, -2, 5, 2.0]),
        st.sampled_from([0, 1, -1]),
    ),
)
not_conditions = choice(
    st.builds(lambda c: {"$not": c}, operator_docs),
    st.builds(lambda r: {"$not": r}, regex_values),
)
# filters on the elements of an array of documents (keys x, y, z)
element_filters = st.builds(
    _merge,
    st.lists(
        st.builds(lambda k, c: {k: c}, sub_keys, st.one_of(operands, operator_docs)),
        min_size=1,
        max_size=2,
    ),
)
elem_match_conditions = choice(
    st.builds(lambda c: {"$elemMatch": c}, operator_docs),
    st.builds(lambda c1, c2: {"$elemMatch": {**c1, **c2}}, operator_docs, operator_docs),
    st.builds(lambda c: {"$elemMatch": c}, element_filters),
    st.builds(lambda a, b: {"$elemMatch": {"$or": [a, b]}}, element_filters, element_filters),
)
conditions = choice(
    operands,  # implicit equality (a document value: equality with the whole document)
    regex_values,
    operator_docs,
    operator_docs,
    operator_docs,
    operator_docs,
    st.builds(lambda a, b: {**a, **b}, operator_docs, operator_docs),
    not_conditions,
    elem_match_conditions,
)
field_filters = st.builds(lambda p, c: {p: c}, st.sampled_from(PATHS), conditions)
key_picks = st.builds(Pick, st.integers(0, 50))  # an id of the batch
key_filters = choice(
    st.builds(lambda k: {"id": k}, key_picks),
    st.builds(lambda k: {"id": k}, st.sampled_from(["d99", "c", "e"])),
    st.builds(lambda ks: {"id": {"$in": ks}}, st.lists(key_picks, max_size=4)),
    st.builds(lambda op, k: {"id": {op: k}}, cmp_ops, key_picks),
    st.builds(lambda k: {"id": {"$ne": k}}, key_picks),
)


def filters(depth: int) -> st.SearchStrategy[Doc]:
    leaf = choice(
        *[field_filters] * 6,
        st.builds(lambda a, b: {**a, **b}, field_filters, field_filters),
        st.builds(lambda k, f: {**k, **f}, key_filters, field_filters),
        key_filters,
    )
    if depth == 0:
        return leaf
    sub = st.lists(filters(depth - 1), min_size=1, max_size=3)
    return choice(
        leaf,
        leaf,
        leaf,
        st.builds(lambda fs: {"$and": fs}, sub),
        st.builds(lambda fs: {"$or": fs}, sub),
        st.builds(lambda fs: {"$nor": fs}, sub),
        st.builds(lambda fs, f: {"$or": fs, **f}, sub, field_filters),
    )


any_filter = filters(2)


class Concretizer:
    """Replaces ``Pick`` placeholders by values found in the batch at the condition's path."""

    def __init__(self, docs: list[Doc]) -> None:
        self._docs = docs
        self._pools: dict[str, list[Any]] = {}

    def pool(self, path: str | None) -> list[Any]:
        """The values ``path`` reaches in the batch; with None, every stored value."""
        key = "" if path is None else path
        if key not in self._pools:
            seen: dict[str, Any] = {}
            for doc in self._docs:
                if path is None:
                    found = [v for k, v in doc.items() if k != "id"]
                else:
                    found = resolve(doc, tuple(path.split(".")))
                for value in found:
                    _collect(value, seen, deep=path is None)
            self._pools[key] = list(seen.values()) or SCALARS
        return self._pools[key]

    def filter(self, flt: Doc, prefix: str = "") -> Doc:
        out: Doc = {}
        for key, cond in flt.items():
            if key in ("$and", "$or", "$nor"):
                out[key] = [self.filter(sub, prefix) for sub in cond]
            else:
                out[key] = self.condition(cond, f"{prefix}{key}")
        return out

    def condition(self, cond: Any, path: str) -> Any:
        if isinstance(cond, Pick):
            pool = self.pool(path if cond.here else None)
            return pool[cond.n % len(pool)]
        if isinstance(cond, list):
            return [self.condition(c, path) for c in cond]
        if not isinstance(cond, dict):
            return cond
        out: Doc = {}
        for op, arg in cond.items():
            if op == "$elemMatch" and isinstance(arg, dict) and not _is_operators(arg):
                out[op] = self.filter(arg, f"{path}.")
            elif op == "$elemMatch" and "$or" in arg:
                out[op] = {"$or": [self.filter(sub, f"{path}.") for sub in arg["$or"]]}
            else:
                out[op] = self.condition(arg, path)
        return out


def _collect(value: Any, seen: dict[str, Any], *, deep: bool) -> None:
    if value is MISSING:
        return
    seen.setdefault(f"{type(value).__name__}:{value!r}", value)
    if deep and isinstance(value, list):
        for v in value:
            _collect(v, seen, deep=True)
    elif deep and isinstance(value, dict):
        for v in value.values():
            _collect(v, seen, deep=True)


def _is_operators(cond: Doc) -> bool:
    return bool(cond) and all(k.startswith("$") for k in cond) and "$or" not in cond


# --- sorts and projections ------------------------------------------------------------------------

SORT_PATHS = ["a", "b", "s", "n", "n.x", "arr", "arr.0", "docs.x", "docs.0.x", "missing", "id"]
sorts = st.lists(
    st.tuples(st.sampled_from(SORT_PATHS), st.sampled_from([1, -1])),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
)
PROJECTABLE = ["a", "b", "s", "n.x", "n.y", "arr", "docs.x"]
projections = st.one_of(
    st.none(),
    st.lists(st.sampled_from(PROJECTABLE), min_size=1, max_size=3, unique=True),
    st.builds(
        lambda ps: dict.fromkeys(ps, 0),
        st.lists(st.sampled_from(PROJECTABLE), min_size=1, max_size=2, unique=True),
    ),
    st.builds(lambda p: {"id": 0, p: 1}, st.sampled_from(PROJECTABLE)),
)
sort_cases = st.tuples(
    sorts,
    st.one_of(st.just({}), any_filter),
    st.integers(0, 4),
    st.one_of(st.none(), st.integers(1, 8)),
    projections,
)


# --- updates --------------------------------------------------------------------------------------

UPDATE_PATHS = ["a", "b", "s", "n.x", "n.q", "arr", "arr.1", "docs.0.x", "new.deep", "c"]
ARITH = [1, -1, 2, 0, 10, 2.5, -0.5, Decimal("1.5"), 2**62, 1e300]


def update_ops(path: str) -> st.SearchStrategy[tuple[str, Any]]:
    options: list[st.SearchStrategy[tuple[str, Any]]] = [
        st.tuples(st.just("$set"), values(1)),
        st.tuples(st.just("$unset"), st.just("")),
        st.tuples(st.just("$inc"), st.sampled_from(ARITH)),
        st.tuples(st.just("$mul"), st.sampled_from(ARITH)),
        st.tuples(st.sampled_from(["$min", "$max"]), scalars),
        st.tuples(st.just("$push"), values(1)),
        st.tuples(
            st.just("$push"),
            st.builds(
                lambda each, sl, pos: {
                    "$each": each,
                    **({} if sl is None else {"$slice": sl}),
                    **({} if pos is None else {"$position": pos}),
                },
                st.lists(values(1), max_size=3),
                st.one_of(st.none(), st.integers(-3, 3)),
                st.one_of(st.none(), st.integers(-2, 3)),
            ),
        ),
        st.tuples(st.just("$addToSet"), values(1)),
        st.tuples(
            st.just("$addToSet"), st.builds(lambda e: {"$each": e}, st.lists(scalars, max_size=3))
        ),
        st.tuples(st.just("$pop"), st.sampled_from([1, -1])),
        st.tuples(st.just("$pull"), scalars),
        st.tuples(st.just("$pull"), operator_docs),
        st.tuples(st.just("$pull"), element_filters),
        st.tuples(st.just("$setOnInsert"), values(1)),
    ]
    if not any(part.isdigit() for part in path.split(".")):
        options.append(st.just(("$rename", "r_" + path.replace(".", "_"))))
    return st.one_of(options)


def update_doc(ops: list[tuple[str, str, Any]], concrete: Concretizer) -> Doc:
    out: Doc = {}
    for op, path, arg in ops:
        if op == "$pull" and isinstance(arg, dict) and not _is_operators(arg):
            arg = concrete.filter(arg, f"{path}.")
        elif op not in ("$rename", "$unset"):
            arg = concrete.condition(arg, path)
        out.setdefault(op, {})[path] = arg
    return out


update_op_lists = st.lists(
    st.sampled_from(UPDATE_PATHS), min_size=1, max_size=3, unique=True
).flatmap(
    lambda paths: st.tuples(*(update_ops(p).map(lambda oa, p=p: (oa[0], p, oa[1])) for p in paths))
)
