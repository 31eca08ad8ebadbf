"""The reference evaluator of aggregation pipelines (the oracle every backend is checked against).

Stages run as a chain of small operators, each fed one document at a time: ``$match``,
``$project``, ``$unwind`` and the other per-document stages stream; ``$group`` keeps one state per
group (memory bounded by the number of groups), ``$sort`` keeps its input (only the top ``n``
when a ``$limit`` follows), ``$count`` one counter. Group keys use BSON equality (1, 1.0 and
Decimal("1") are one group, "1" another), ``$min``/``$max``/``$sort`` BSON order, ``$sum``/``$avg``
MongoDB's numeric rules (non-numbers ignored; int, float or Decimal results as MongoDB's).

>>> from asyncdb.query.pipeline import parse_pipeline
>>> p = parse_pipeline([{"$group": {"_id": "$k", "n": {"$sum": "$v"}}}, {"$sort": {"_id": 1}}])
>>> run_pipeline(p, [{"k": 1, "v": 2}, {"k": 1.0, "v": 3.5}, {"k": "1", "v": 1}])
[{'_id': 1, 'n': 5.5}, {'_id': '1', 'n': 1}]
"""

from __future__ import annotations

import heapq
import math
import zoneinfo
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import Any

from asyncdb.errors import QueryError, UpdateError
from asyncdb.query.ast import Path
from asyncdb.query.evaluate import matches
from asyncdb.query.parse import parse_sort
from asyncdb.query.pipeline import (
    Accumulator,
    AddFields,
    ArrayExpr,
    Call,
    Count,
    DateTrunc,
    DocExpr,
    Expr,
    Facet,
    FieldRef,
    Group,
    Limit,
    Literal,
    Match,
    Pipeline,
    Project,
    ProjectTree,
    ReplaceWith,
    SetField,
    Skip,
    SortByCount,
    SortStage,
    Stage,
    Unset,
    Unwind,
)
from asyncdb.query.sort import encode_value, sort_key
from asyncdb.query.values import (
    INT64_MAX,
    INT64_MIN,
    MISSING,
    check_field_name,
    compare,
    is_number,
    type_name,
)

Doc = dict[str, Any]
_DECIMAL = Context(prec=34)  # Decimal128's 34 significant digits


class EvaluationError(QueryError):
    """A pipeline expression that cannot be evaluated on a document (``$add`` of a string,
    ``$divide`` by zero, ...), as MongoDB fails the whole aggregation."""


# --- expressions ---------------------------------------------------------------------------------


def evaluate(expr: Expr, doc: Doc) -> Any:
    """The value of ``expr`` for ``doc`` (``MISSING`` where a field path reaches nothing).

    >>> from asyncdb.query.pipeline import parse_expression
    >>> evaluate(parse_expression({"$multiply": ["$a", 2]}, "x"), {"a": 4})
    8
    """
    t = type(expr)
    if t is FieldRef:
        assert isinstance(expr, FieldRef)
        return field_value(doc, expr.path)
    if t is Literal:
        assert isinstance(expr, Literal)
        return expr.value
    if t is Call:
        assert isinstance(expr, Call)
        return _CALLS[expr.op](expr.args, doc)
    if t is DocExpr:
        assert isinstance(expr, DocExpr)
        out: Doc = {}
        for name, sub in expr.fields:
            value = evaluate(sub, doc)
            if value is not MISSING:
                out[name] = value
        return out
    if t is ArrayExpr:
        assert isinstance(expr, ArrayExpr)
        return [_missing_as_null(evaluate(e, doc)) for e in expr.items]
    if t is DateTrunc:
        assert isinstance(expr, DateTrunc)
        return _date_trunc(expr, doc)
    if t is SetField:
        assert isinstance(expr, SetField)
        return _set_field(expr, doc)
    raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover


def field_value(value: Any, path: Path) -> Any:
    """``"$a.b"``: arrays on the way map over their elements (documents followed, arrays
    recursed, other elements dropped); numeric parts are field names, not positions."""
    for i, part in enumerate(path):
        if type(value) is dict:
            value = value.get(part, MISSING)
            if value is MISSING:
                return MISSING
        elif type(value) is list:
            return _array_path(value, path[i:])
        else:
            return MISSING
    return value


def _array_path(array: list[Any], path: Path) -> list[Any]:
    out: list[Any] = []
    for element in array:
        if type(element) is dict:
            value = field_value(element, path)
            if value is not MISSING:
                out.append(value)
        elif type(element) is list:
            out.append(_array_path(element, path))
    return out


def _missing_as_null(value: Any) -> Any:
    return None if value is MISSING else value


def truthy(value: Any) -> bool:
    """Aggregation truth: false, null, missing and numeric zero are false."""
    if value is MISSING or value is None or value is False:
        return False
    if is_number(value):
        return bool(value != 0)
    return True


def expr_compare(a: Any, b: Any) -> int:
    """BSON order across types, with a missing value below null (``$eq: ["$x", null]`` is false
    when ``x`` is missing, unlike a query filter)."""
    if a is MISSING or b is MISSING:
        return (a is not MISSING) - (b is not MISSING)
    return compare(a, b)


def _fail(op: str, message: str) -> EvaluationError:
    return EvaluationError(f"{op} {message}", path=op)


def _nullish(value: Any) -> bool:
    return value is None or value is MISSING


def _numeric_result(op: str, values: list[Any], combine: Callable[[Any, Any], Any]) -> Any:
    if any(isinstance(v, Decimal) for v in values):
        acc: Any = _to_decimal(values[0])
        for v in values[1:]:
            acc = combine(acc, _to_decimal(v))
        return _DECIMAL.plus(acc)
    if any(type(v) is float for v in values):
        facc = float(values[0])
        for v in values[1:]:
            facc = combine(facc, float(v))
        return facc
    iacc: int = values[0]
    for v in values[1:]:
        iacc = combine(iacc, v)
    # A 64-bit overflow becomes a double, as in MongoDB.
    return iacc if INT64_MIN <= iacc <= INT64_MAX else float(iacc)


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if type(value) is float:
        return Decimal(repr(value))
    return Decimal(value)


def _add(args: tuple[Expr, ...], doc: Doc) -> Any:
    values = [evaluate(a, doc) for a in args]
    if any(_nullish(v) for v in values):
        return None
    dates = [v for v in values if type(v) is datetime]
    numbers = [v for v in values if is_number(v)]
    if len(dates) + len(numbers) != len(values):
        bad = next(v for v in values if not is_number(v) and type(v) is not datetime)
        raise _fail("$add", f"only supports numeric or date types, not {type_name(bad)}")
    if len(dates) > 1:
        raise _fail("$add", "only supports one date")
    total = _numeric_result("$add", numbers, lambda x, y: x + y) if numbers else 0
    if dates:
        return dates[0] + timedelta(milliseconds=round(float(total)))
    return total


def _multiply(args: tuple[Expr, ...], doc: Doc) -> Any:
    values = [evaluate(a, doc) for a in args]
    if any(_nullish(v) for v in values):
        return None
    for v in values:
        if not is_number(v):
            raise _fail("$multiply", f"only supports numeric types, not {type_name(v)}")
    return _numeric_result("$multiply", values, lambda x, y: x * y) if values else 1


def _subtract(args: tuple[Expr, ...], doc: Doc) -> Any:
    a, b = (evaluate(x, doc) for x in args)
    if _nullish(a) or _nullish(b):
        return None
    if type(a) is datetime and type(b) is datetime:
        return (a - b) // timedelta(milliseconds=1)
    if type(a) is datetime and is_number(b):
        return a - timedelta(milliseconds=round(float(b)))
    if is_number(a) and is_number(b):
        return _numeric_result("$subtract", [a, b], lambda x, y: x - y)
    raise _fail(
        "$subtract", f"only supports numeric or date types, not {type_name(a)} and {type_name(b)}"
    )


def _divide(args: tuple[Expr, ...], doc: Doc) -> Any:
    a, b = (evaluate(x, doc) for x in args)
    if _nullish(a) or _nullish(b):
        return None
    if not (is_number(a) and is_number(b)):
        raise _fail(
            "$divide", f"only supports numeric types, not {type_name(a)} and {type_name(b)}"
        )
    if b == 0:
        raise _fail("$divide", "can't divide by zero")
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _DECIMAL.divide(_to_decimal(a), _to_decimal(b))
    return float(a) / float(b)


def _mod(args: tuple[Expr, ...], doc: Doc) -> Any:
    a, b = (evaluate(x, doc) for x in args)
    if _nullish(a) or _nullish(b):
        return None
    if not (is_number(a) and is_number(b)):
        raise _fail("$mod", f"only supports numeric types, not {type_name(a)} and {type_name(b)}")
    if b == 0:
        raise _fail("$mod", "can't $mod by zero")
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _DECIMAL.remainder(_to_decimal(a), _to_decimal(b))  # the dividend's sign
    if type(a) is float or type(b) is float:
        return math.fmod(float(a), float(b))
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _concat(args: tuple[Expr, ...], doc: Doc) -> Any:
    values = [evaluate(a, doc) for a in args]
    for v in values:
        if _nullish(v):
            return None
    for v in values:
        if type(v) is not str:
            raise _fail("$concat", f"only supports strings, not {type_name(v)}")
    return "".join(values)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _as_string(op: str, value: Any) -> str:
    if _nullish(value):
        return ""
    if type(value) is str:
        return value
    if type(value) is int or isinstance(value, Decimal):
        return str(value)
    if type(value) is float:
        return repr(value).removesuffix(".0") if math.isfinite(value) else repr(value)
    if type(value) is datetime:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{value.microsecond // 1000:03d}Z"
        )
    raise _fail(op, f"cannot convert a {type_name(value)} to a string")


def _to_lower(args: tuple[Expr, ...], doc: Doc) -> Any:
    # MongoDB changes the case of ASCII letters only.
    return _as_string("$toLower", evaluate(args[0], doc)).translate(_ASCII_LOWER)


def _to_upper(args: tuple[Expr, ...], doc: Doc) -> Any:
    return _as_string("$toUpper", evaluate(args[0], doc)).translate(_ASCII_UPPER)


def _if_null(args: tuple[Expr, ...], doc: Doc) -> Any:
    for a in args[:-1]:
        value = evaluate(a, doc)
        if not _nullish(value):
            return value
    return evaluate(args[-1], doc)


def _cond(args: tuple[Expr, ...], doc: Doc) -> Any:
    return evaluate(args[1] if truthy(evaluate(args[0], doc)) else args[2], doc)


def _comparison(test: Callable[[int], bool]) -> Callable[[tuple[Expr, ...], Doc], bool]:
    def run(args: tuple[Expr, ...], doc: Doc) -> bool:
        return test(expr_compare(evaluate(args[0], doc), evaluate(args[1], doc)))

    return run


def _and(args: tuple[Expr, ...], doc: Doc) -> bool:
    return all(truthy(evaluate(a, doc)) for a in args)


def _or(args: tuple[Expr, ...], doc: Doc) -> bool:
    return any(truthy(evaluate(a, doc)) for a in args)


def _not(args: tuple[Expr, ...], doc: Doc) -> bool:
    return not truthy(evaluate(args[0], doc))


def _size(args: tuple[Expr, ...], doc: Doc) -> int:
    value = evaluate(args[0], doc)
    if type(value) is not list:
        shown = "missing" if value is MISSING else type_name(value)
        raise _fail("$size", f"needs an array, not {shown}")
    return len(value)


_CALLS: dict[str, Callable[[tuple[Expr, ...], Doc], Any]] = {
    "$add": _add,
    "$subtract": _subtract,
    "$multiply": _multiply,
    "$divide": _divide,
    "$mod": _mod,
    "$concat": _concat,
    "$toLower": _to_lower,
    "$toUpper": _to_upper,
    "$ifNull": _if_null,
    "$cond": _cond,
    "$eq": _comparison(lambda c: c == 0),
    "$ne": _comparison(lambda c: c != 0),
    "$gt": _comparison(lambda c: c > 0),
    "$gte": _comparison(lambda c: c >= 0),
    "$lt": _comparison(lambda c: c < 0),
    "$lte": _comparison(lambda c: c <= 0),
    "$and": _and,
    "$or": _or,
    "$not": _not,
    "$size": _size,
}

_UNITS = {"millisecond", "second", "minute", "hour", "day", "week", "month", "quarter", "year"}
_FIXED = {
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _timezone(value: Any) -> Any:
    if type(value) is not str:
        raise _fail("$dateTrunc", "needs a timezone name")
    if value in ("UTC", "GMT", "Z"):
        return UTC
    if value[:1] in "+-" and len(value) in (3, 5, 6):
        digits = value[1:].replace(":", "")
        if digits.isdigit():
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            sign = -1 if value[0] == "-" else 1
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail("$dateTrunc", f"unknown timezone {value!r}") from None


def _date_trunc(expr: DateTrunc, doc: Doc) -> Any:
    date = evaluate(expr.date, doc)
    unit = evaluate(expr.unit, doc)
    bin_size = evaluate(expr.bin_size, doc)
    tz_name = evaluate(expr.timezone, doc)
    week_start = evaluate(expr.start_of_week, doc)
    if any(_nullish(v) for v in (date, unit, bin_size, tz_name, week_start)):
        return None
    if type(date) is not datetime:
        raise _fail("$dateTrunc", f"needs a date, not {type_name(date)}")
    if unit not in _UNITS:
        raise _fail("$dateTrunc", f"unit must be one of {sorted(_UNITS)}, not {unit!r}")
    if not is_number(bin_size) or bin_size != int(bin_size) or bin_size < 1:
        raise _fail("$dateTrunc", "binSize must be a positive integer")
    n = int(bin_size)
    tz = _timezone(tz_name)
    local = date.astimezone(tz).replace(tzinfo=None)
    reference = datetime(2000, 1, 1)
    if unit in ("month", "quarter", "year"):
        months = n * {"month": 1, "quarter": 3, "year": 12}[unit]
        elapsed = (local.year - 2000) * 12 + local.month - 1
        start = elapsed - elapsed % months
        year, month = 2000 + start // 12, start % 12 + 1
        truncated = datetime(year, month, 1)
    else:
        if unit == "week":
            if type(week_start) is not str or week_start.lower()[:3] not in [d[:3] for d in _DAYS]:
                raise _fail("$dateTrunc", f"startOfWeek must name a day, not {week_start!r}")
            first = [d[:3] for d in _DAYS].index(week_start.lower()[:3])
            reference += timedelta(days=(first - reference.weekday()) % 7)
        step = _FIXED[unit] * n
        truncated = reference + ((local - reference) // step) * step
    if tz is UTC:
        return truncated.replace(tzinfo=UTC)
    return truncated.replace(tzinfo=tz).astimezone(UTC)


def _set_field(expr: SetField, doc: Doc) -> Any:
    target = evaluate(expr.input, doc)
    if _nullish(target):
        return None
    if type(target) is not dict:
        raise _fail("$setField", f"needs a document as input, not {type_name(target)}")
    value = evaluate(expr.value, doc)
    out = dict(target)
    if value is MISSING:
        out.pop(expr.field, None)
    else:
        out[expr.field] = value
    return out


# --- accumulators --------------------------------------------------------------------------------


class _Sum:
    """``$sum``/``$avg`` under MongoDB's numeric rules: ints add exactly (a 64-bit overflow gives
    a double), any double makes a double, any Decimal a Decimal; non-numbers are ignored."""

    __slots__ = ("avg", "count", "decimal", "floats", "ints", "kind")

    def __init__(self, avg: bool) -> None:
        self.avg = avg
        self.ints = 0
        self.floats: list[float] = []
        self.decimal: Decimal | None = None
        self.count = 0

    def add(self, value: Any) -> None:
        t = type(value)
        if t is int:
            self.ints += value
        elif t is float:
            self.floats.append(value)
        elif t is Decimal:
            self.decimal = value if self.decimal is None else _DECIMAL.add(self.decimal, value)
        else:
            return
        self.count += 1

    def result(self) -> Any:
        if self.avg and not self.count:
            return None
        if self.decimal is not None:
            total = _DECIMAL.add(self.decimal, Decimal(self.ints))
            for f in self.floats:
                total = _DECIMAL.add(total, _to_decimal(f))
            return _DECIMAL.divide(total, Decimal(self.count)) if self.avg else total
        if self.floats:
            total_f = math.fsum([*self.floats, self.ints])
            return total_f / self.count if self.avg else total_f
        if self.avg:
            return self.ints / self.count
        return self.ints if INT64_MIN <= self.ints <= INT64_MAX else float(self.ints)


class _MinMax:
    __slots__ = ("best", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.best: Any = MISSING

    def add(self, value: Any) -> None:
        if _nullish(value):
            return
        if self.best is MISSING or compare(value, self.best) * self.sign > 0:
            self.best = value

    def result(self) -> Any:
        return None if self.best is MISSING else self.best


class _First:
    __slots__ = ("seen", "value")

    def __init__(self) -> None:
        self.seen = False
        self.value: Any = None

    def add(self, value: Any) -> None:
        if not self.seen:
            self.seen, self.value = True, value

    def result(self) -> Any:
        return _missing_as_null(self.value)


class _Last:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None

    def add(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return _missing_as_null(self.value)


class _Push:
    __slots__ = ("seen", "unique", "values")

    def __init__(self, unique: bool) -> None:
        self.unique = unique
        self.values: list[Any] = []
        self.seen: set[bytes] = set()

    def add(self, value: Any) -> None:
        if value is MISSING:
            return
        if self.unique:
            key = encode_value(value)
            if key in self.seen:
                return
            self.seen.add(key)
        self.values.append(value)

    def result(self) -> Any:
        return self.values


_ACCUMULATORS: dict[str, Callable[[], Any]] = {
    "$sum": lambda: _Sum(avg=False),
    "$avg": lambda: _Sum(avg=True),
    "$min": lambda: _MinMax(-1),
    "$max": lambda: _MinMax(1),
    "$first": _First,
    "$last": _Last,
    "$push": lambda: _Push(unique=False),
    "$addToSet": lambda: _Push(unique=True),
}


def group_key(value: Any) -> bytes:
    """The identity of a group: equal under BSON equality, equal bytes (missing is null)."""
    return encode_value(value)


# --- stage operators -----------------------------------------------------------------------------


class _Operator:
    """One stage: fed documents one at a time, flushed at the end of the input."""

    blocking = False
    done = False

    def push(self, doc: Doc) -> list[Doc]:
        raise NotImplementedError

    def finish(self) -> list[Doc]:
        return []


class _MatchOp(_Operator):
    def __init__(self, stage: Match) -> None:
        self.node = stage.filter

    def push(self, doc: Doc) -> list[Doc]:
        return [doc] if matches(self.node, doc) else []


class _MapOp(_Operator):
    def __init__(self, fn: Callable[[Doc], Doc]) -> None:
        self.fn = fn

    def push(self, doc: Doc) -> list[Doc]:
        return [self.fn(doc)]


class _SkipOp(_Operator):
    def __init__(self, n: int) -> None:
        self.left = n

    def push(self, doc: Doc) -> list[Doc]:
        if self.left:
            self.left -= 1
            return []
        return [doc]


class _LimitOp(_Operator):
    def __init__(self, n: int) -> None:
        self.left = n

    def push(self, doc: Doc) -> list[Doc]:
        if not self.left:
            return []
        self.left -= 1
        self.done = not self.left
        return [doc]


class _GroupOp(_Operator):
    blocking = True

    def __init__(self, stage: Group) -> None:
        self.stage = stage
        self.groups: dict[bytes, tuple[Any, list[Any]]] = {}

    def push(self, doc: Doc) -> list[Doc]:
        stage = self.stage
        key = _missing_as_null(evaluate(stage.key, doc))
        ident = group_key(key)
        entry = self.groups.get(ident)
        if entry is None:
            entry = (key, [_ACCUMULATORS[acc.op]() for _, acc in stage.accumulators])
            self.groups[ident] = entry
        for (_, acc), state in zip(stage.accumulators, entry[1], strict=True):
            state.add(evaluate(acc.expr, doc))
        return []

    def finish(self) -> list[Doc]:
        names = [name for name, _ in self.stage.accumulators]
        out = []
        for key, states in self.groups.values():
            doc: Doc = {"_id": key}
            for name, state in zip(names, states, strict=True):
                doc[name] = state.result()
            out.append(doc)
        self.groups = {}
        return out


class _SortOp(_Operator):
    """A stable sort in BSON order; with a ``$limit`` after it, only the top ``limit`` kept."""

    blocking = True

    def __init__(self, stage: SortStage, limit: int | None = None) -> None:
        self.sort = stage.sort
        self.limit = limit
        self.rows: list[tuple[bytes, int, Doc]] = []
        self.seq = 0

    def push(self, doc: Doc) -> list[Doc]:
        row = (sort_key(doc, self.sort), self.seq, doc)
        self.seq += 1
        self.rows.append(row)
        if self.limit is not None and len(self.rows) >= 2 * self.limit:
            self.rows = heapq.nsmallest(self.limit, self.rows)  # trimmed when it doubles
        return []

    def finish(self) -> list[Doc]:
        rows = sorted(self.rows) if self.limit is None else heapq.nsmallest(self.limit, self.rows)
        self.rows = []
        return [doc for _, _, doc in rows]


class _CountOp(_Operator):
    blocking = True

    def __init__(self, stage: Count) -> None:
        self.field = stage.field
        self.n = 0

    def push(self, doc: Doc) -> list[Doc]:
        self.n += 1
        return []

    def finish(self) -> list[Doc]:
        return [{self.field: self.n}] if self.n else []


class _UnwindOp(_Operator):
    def __init__(self, stage: Unwind) -> None:
        self.stage = stage

    def push(self, doc: Doc) -> list[Doc]:
        stage = self.stage
        value = field_value(doc, stage.path)
        if type(value) is list and value:
            out = []
            for i, element in enumerate(value):
                new = with_field(doc, stage.path, element)
                if stage.include_index is not None:
                    new = with_field(new, (stage.include_index,), i)
                out.append(new)
            return out
        if type(value) is not list and not _nullish(value):
            if stage.include_index is not None:
                return [with_field(doc, (stage.include_index,), None)]
            return [doc]
        if not stage.preserve:
            return []
        if type(value) is list:  # an empty array is dropped from the kept document
            doc = without_field(doc, stage.path)
        if stage.include_index is not None:
            return [with_field(doc, (stage.include_index,), None)]
        return [doc]


class _FacetOp(_Operator):
    blocking = True

    def __init__(self, stage: Facet) -> None:
        self.chains = [(name, Chain(sub)) for name, sub in stage.facets]
        self.outputs: dict[str, list[Doc]] = {name: [] for name, _ in stage.facets}

    def push(self, doc: Doc) -> list[Doc]:
        for name, chain in self.chains:
            if not chain.done:
                self.outputs[name].extend(chain.push(doc))
        return []

    def finish(self) -> list[Doc]:
        for name, chain in self.chains:
            self.outputs[name].extend(chain.finish())
        return [dict(self.outputs)]


def with_field(value: Any, path: Path, new: Any) -> Any:
    """A copy of ``value`` with ``path`` set to ``new`` (removed when ``new`` is missing), by
    ``$addFields`` rules: an array on the way sets the field in each of its elements, a
    missing or scalar value on the way becomes a document."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if type(value) is dict:
        out = dict(value)
        sub = with_field(value.get(head, MISSING), rest, new)
        if sub is MISSING:
            out.pop(head, None)
        else:
            out[head] = sub
        return out
    if type(value) is list:
        return [with_field(e, path, new) for e in value]
    sub = with_field(MISSING, rest, new)
    return {} if sub is MISSING else {head: sub}


def without_field(value: Any, path: Path) -> Any:
    """A copy of ``value`` without ``path`` (through arrays, element by element)."""
    if type(value) is list:
        return [without_field(e, path) for e in value]
    if type(value) is not dict or path[0] not in value:
        return value
    out = dict(value)
    if len(path) == 1:
        del out[path[0]]
    else:
        out[path[0]] = without_field(value[path[0]], path[1:])
    return out


def _add_fields(stage: AddFields) -> Callable[[Doc], Doc]:
    def run(doc: Doc) -> Doc:
        values = [(path, evaluate(expr, doc)) for path, expr in stage.fields]
        out: Any = doc
        for path, value in values:
            out = with_field(out, path, value)
        return dict(out)

    return run


def _unset(stage: Unset) -> Callable[[Doc], Doc]:
    def run(doc: Doc) -> Doc:
        out: Any = doc
        for path in stage.paths:
            out = without_field(out, path)
        return dict(out)

    return run


def _replace_with(stage: ReplaceWith) -> Callable[[Doc], Doc]:
    def run(doc: Doc) -> Doc:
        value = evaluate(stage.expr, doc)
        if type(value) is not dict:
            shown = "missing" if value is MISSING else type_name(value)
            raise EvaluationError(
                f"$replaceWith needs a document, not {shown}", path="$replaceWith"
            )
        return value

    return run


def project(tree: ProjectTree, doc: Doc) -> Doc:
    """``$project`` of one document (``_id`` kept unless excluded)."""
    if tree.include:
        out = _include(doc, tree, doc, top=True)
        return out if type(out) is dict else {}
    result: Any = doc
    for name, leaf in tree.fields:
        result = _exclude(result, name, leaf)
    return dict(result)


def _include(value: Any, tree: ProjectTree, root: Doc, *, top: bool) -> Any:
    if type(value) is list:
        items = [_include(e, tree, root, top=False) for e in value]
        return [e for e in items if e is not MISSING]
    computed = [(n, leaf) for n, leaf in tree.fields if isinstance(leaf, Expr)]
    if type(value) is not dict:
        if not computed:
            return MISSING
        value = {}
    spec = dict(tree.fields)
    out: Doc = {}
    for name, v in value.items():
        leaf = spec.get(name)
        if leaf is True or (top and name == "_id" and leaf is None and not tree.id_excluded):
            out[name] = v
        elif isinstance(leaf, ProjectTree):
            sub = _include(v, leaf, root, top=False)
            if sub is not MISSING:
                out[name] = sub
    for name, leaf in tree.fields:
        if isinstance(leaf, ProjectTree) and name not in value and _has_computed(leaf):
            out[name] = _include({}, leaf, root, top=False)
    for name, expr in computed:
        result = evaluate(expr, root)
        if result is not MISSING:
            out[name] = result
    return out


def _has_computed(tree: ProjectTree) -> bool:
    return any(
        isinstance(leaf, Expr) or (isinstance(leaf, ProjectTree) and _has_computed(leaf))
        for _, leaf in tree.fields
    )


def _exclude(value: Any, name: str, leaf: Any) -> Any:
    if type(value) is list:
        return [_exclude(e, name, leaf) for e in value]
    if type(value) is not dict or name not in value:
        return value
    out = dict(value)
    if leaf is False:
        del out[name]
    else:
        sub = value[name]
        for child, child_leaf in leaf.fields:
            sub = _exclude(sub, child, child_leaf)
        out[name] = sub
    return out


def _operators(stages: Pipeline) -> list[_Operator]:
    ops: list[_Operator] = []
    for i, stage in enumerate(stages):
        nxt = stages[i + 1] if i + 1 < len(stages) else None
        ops.extend(_operator(stage, nxt))
    return ops


def _operator(stage: Stage, nxt: Stage | None) -> list[_Operator]:
    if isinstance(stage, Match):
        return [_MatchOp(stage)]
    if isinstance(stage, Group):
        return [_GroupOp(stage)]
    if isinstance(stage, SortStage):
        return [_SortOp(stage, nxt.n if isinstance(nxt, Limit) else None)]
    if isinstance(stage, Skip):
        return [_SkipOp(stage.n)]
    if isinstance(stage, Limit):
        return [_LimitOp(stage.n)]
    if isinstance(stage, Project):
        tree = stage.tree
        return [_MapOp(lambda doc: project(tree, doc))]
    if isinstance(stage, Unwind):
        return [_UnwindOp(stage)]
    if isinstance(stage, Count):
        return [_CountOp(stage)]
    if isinstance(stage, AddFields):
        return [_MapOp(_add_fields(stage))]
    if isinstance(stage, Unset):
        return [_MapOp(_unset(stage))]
    if isinstance(stage, ReplaceWith):
        return [_MapOp(_replace_with(stage))]
    if isinstance(stage, SortByCount):
        group = Group(stage.expr, (("count", Accumulator("$sum", Literal(1))),))
        return [_GroupOp(group), _SortOp(SortStage(parse_sort([("count", -1)])))]
    if isinstance(stage, Facet):
        return [_FacetOp(stage)]
    raise AssertionError(f"unknown stage {stage!r}")  # pragma: no cover


class Chain:
    """A pipeline as a chain of operators: ``push`` a document, ``finish`` at the end."""

    def __init__(self, stages: Pipeline) -> None:
        self.ops = _operators(stages)

    @property
    def done(self) -> bool:
        """No further input can change the output (a ``$limit`` before any blocking stage)."""
        for op in self.ops:
            if op.done:
                return True
            if op.blocking:
                return False
        return False

    def _through(self, start: int, docs: list[Doc]) -> list[Doc]:
        for op in self.ops[start:]:
            if not docs:
                return docs
            nxt: list[Doc] = []
            for doc in docs:
                nxt.extend(op.push(doc))
            docs = nxt
        return docs

    def push(self, doc: Doc) -> list[Doc]:
        return self._through(0, [doc])

    def finish(self) -> list[Doc]:
        out: list[Doc] = []
        for i, op in enumerate(self.ops):
            flushed = op.finish()
            if flushed:
                out.extend(self._through(i + 1, flushed))
        return out


def run_pipeline(stages: Pipeline, docs: Iterable[Doc]) -> list[Doc]:
    """All results of ``stages`` over ``docs`` (the reference evaluator)."""
    chain = Chain(stages)
    out: list[Doc] = []
    for doc in docs:
        out.extend(chain.push(doc))
        if chain.done:
            break
    out.extend(chain.finish())
    return out


async def stream_pipeline(stages: Pipeline, source: AsyncIterator[Doc]) -> AsyncIterator[Doc]:
    """The results of ``stages`` over an async stream, yielded as soon as they are known; the
    source is left unread once a ``$limit`` is reached."""
    chain = Chain(stages)
    try:
        async for doc in source:
            for out in chain.push(doc):
                yield out
            if chain.done:
                break
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
    for out in chain.finish():
        yield out


def apply_pipeline_update(stages: Pipeline, doc: Doc) -> Doc:
    """A pipeline update applied to one document; an expression that fails is an UpdateError
    (nothing is written)."""
    try:
        (out,) = run_pipeline(stages, [doc])
    except EvaluationError as exc:
        raise UpdateError(str(exc), path=exc.path) from None
    _check_names(out, "")  # a computed name ($setField) must be one an insert takes
    return out


def _check_names(value: Any, path: str) -> None:
    """The field names of a pipeline update's result, as an insert checks them (no leading
    ``$``, no ``.``): an UpdateError naming the path, and nothing is written."""
    if isinstance(value, dict):
        for name, sub in value.items():
            at = f"{path}.{name}" if path else str(name)
            try:
                check_field_name(name, at)
            except QueryError as exc:
                raise UpdateError(str(exc).split(" (at ")[0], path=at) from None
            _check_names(sub, at)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _check_names(sub, f"{path}.{i}")


__all__ = [
    "Chain",
    "EvaluationError",
    "apply_pipeline_update",
    "evaluate",
    "expr_compare",
    "field_value",
    "group_key",
    "project",
    "run_pipeline",
    "stream_pipeline",
    "truthy",
    "with_field",
    "without_field",
]
