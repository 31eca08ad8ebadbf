"""Table mode, the pure half: a filter AST compiled to SQLAlchemy Core over typed columns.

A table's columns have one type each, so MongoDB's type bracketing is decided at compile time:
a condition whose value has another BSON type than the column never matches (``false``), a NULL
column is a missing field, and every pushed condition is guarded so SQL's three-valued logic
never leaks (``NOT (a > 5)`` matches NULL rows, as ``$not`` matches missing fields). What SQL
cannot decide exactly (JSON columns, non-literal regexes, a float column against an integer beyond
2**53) is left to the residual, re-checked in process by the reference evaluator.

>>> import sqlalchemy as sa
>>> from asyncdb.query.parse import parse_filter
>>> t = sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
...              sa.Column("name", sa.String))
>>> split = split_filter(parse_filter({"name": {"$gt": 5}}), TableSchema.of(t, "sqlite"))
>>> str(split.where), split.residual
('false', None)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.elements import ColumnElement

from asyncdb.backends.base import conjoin, indexed_path, key_lookup
from asyncdb.errors import QueryError
from asyncdb.query.ast import (
    All,
    And,
    Cmp,
    ElemMatch,
    Eq,
    Exists,
    FieldNode,
    In,
    MatchAll,
    Mod,
    Node,
    Nor,
    Not,
    Or,
    Path,
    Regex,
    Size,
    Sort,
    Type,
    Update,
    path_str,
)
from asyncdb.query.parse import FieldAnd
from asyncdb.query.values import (
    INT64_MAX,
    INT64_MIN,
    RANK_BOOL,
    RANK_BYTES,
    RANK_DATE,
    RANK_NUMBER,
    RANK_STRING,
    is_number,
    normalize_datetime,
    rank,
)
from asyncdb.types import CollectionSpec, Plan, Query

Dialect = Literal["sqlite", "postgresql"]
Kind = Literal["int", "float", "decimal", "str", "bool", "datetime", "bytes", "json", "opaque"]
Expr = ColumnElement[bool]

_KIND_RANK: dict[str, int] = {
    "int": RANK_NUMBER,
    "float": RANK_NUMBER,
    "decimal": RANK_NUMBER,
    "str": RANK_STRING,
    "bool": RANK_BOOL,
    "datetime": RANK_DATE,
    "bytes": RANK_BYTES,
}
# The $type names a non-NULL value of each column kind answers to ("int" is decided by range).
_KIND_TYPES: dict[str, frozenset[str]] = {
    "float": frozenset({"double", "number"}),
    "decimal": frozenset({"decimal", "number"}),
    "str": frozenset({"string"}),
    "bool": frozenset({"bool"}),
    "datetime": frozenset({"date"}),
    "bytes": frozenset({"binData"}),
}
_INT_RANGES: dict[type, tuple[int, int]] = {
    sa.SmallInteger: (-(2**15), 2**15 - 1),
    sa.BigInteger: (INT64_MIN, INT64_MAX),
    sa.Integer: (-(2**31), 2**31 - 1),
}
_FLOAT_EXACT = 2**53  # every integer up to this magnitude is a double


def _int_range(col_type: Any, dialect: Dialect) -> tuple[int, int]:
    if dialect == "sqlite":
        return INT64_MIN, INT64_MAX  # SQLite integers are 64-bit whatever the declared type
    for cls, bounds in _INT_RANGES.items():
        if isinstance(col_type, cls):
            return bounds
    return INT64_MIN, INT64_MAX


def _kind_of(col_type: Any, dialect: Dialect) -> Kind:
    if isinstance(col_type, sa.Boolean):
        return "bool"
    if isinstance(col_type, sa.Enum | sa.Interval | sa.Date | sa.Time | sa.Uuid | sa.ARRAY):
        return "opaque"
    if isinstance(col_type, sa.Integer):
        return "int"
    if isinstance(col_type, sa.Float):
        return "float"
    if isinstance(col_type, sa.Numeric):
        # SQLite has no decimal type: a Numeric column holds doubles there.
        return "decimal" if col_type.asdecimal and dialect == "postgresql" else "float"
    if isinstance(col_type, sa.String):  # also Text, Unicode
        return "str"
    if isinstance(col_type, sa.DateTime):
        return "datetime"
    if isinstance(col_type, sa.LargeBinary):
        return "bytes"
    if isinstance(col_type, sa.JSON):  # also postgresql.JSONB
        return "json"
    return "opaque"


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """What table mode knows about one column: its kind, the values it can hold."""

    name: str
    kind: Kind
    column: sa.Column[Any]
    nullable: bool
    required: bool  # NOT NULL without a default: an insert must give it
    int_min: int = INT64_MIN
    int_max: int = INT64_MAX
    length: int | None = None
    naive_utc: bool = False  # datetimes stored without a zone (as UTC)
    scale: int | None = None  # a Numeric's digits after the point, when declared
    precision: int | None = None  # a Numeric's total digits, when declared
    decimal_as_double: bool = False  # a Numeric on SQLite: Decimals are rounded to doubles


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A SQLAlchemy ``Table`` seen by table mode on one dialect."""

    table: sa.Table
    dialect: Dialect
    columns: dict[str, ColumnInfo]
    key: tuple[str, ...]
    autoincrement: str | None = None  # the key column the database assigns when left out
    identity_always: bool = False  # GENERATED ALWAYS AS IDENTITY: an explicit key is refused

    @classmethod
    def of(cls, table: sa.Table, dialect: Dialect) -> TableSchema:
        # Plain str names: SQLAlchemy's quoted_name (a str subclass) is no JSON key for orjson
        # (the read cache encodes documents).
        key = tuple(str(c.name) for c in table.primary_key.columns)
        if not key:
            raise QueryError(f"table {table.name!r} has no primary key; table mode needs one")
        auto = autoincrement_column(table, dialect)
        columns: dict[str, ColumnInfo] = {}
        for col in table.columns:
            kind = _kind_of(col.type, dialect)
            lo, hi = _int_range(col.type, dialect)
            has_default = (
                col.default is not None
                or col.server_default is not None
                or (col.primary_key and col.autoincrement is True)
                or col is auto
            )
            name = str(col.name)
            columns[name] = ColumnInfo(
                name=name,
                kind=kind,
                column=col,
                nullable=bool(col.nullable),
                required=not col.nullable and not has_default,
                int_min=lo,
                int_max=hi,
                length=getattr(col.type, "length", None) if kind == "str" else None,
                naive_utc=kind == "datetime"
                and (dialect == "sqlite" or not getattr(col.type, "timezone", False)),
                scale=getattr(col.type, "scale", None) if kind == "decimal" else None,
                precision=getattr(col.type, "precision", None) if kind == "decimal" else None,
                decimal_as_double=kind == "float" and not isinstance(col.type, sa.Float),
            )
        identity = None if auto is None else auto.identity
        always = identity is not None and bool(identity.always)
        return cls(table, dialect, columns, key, None if auto is None else str(auto.name), always)

    def column_of(self, path: Path, where: str | None = None) -> ColumnInfo:
        """The column a filter or sort path starts at; a QueryError names an unknown one."""
        name = path[0] if path else ""
        info = self.columns.get(name)
        shown = where if where is not None else path_str(path)
        if info is None:
            raise QueryError(f"table {self.table.name!r} has no column {name!r}", path=shown)
        if len(path) > 1 and info.kind != "json":
            raise QueryError(
                f"column {name!r} holds scalars: dotted paths reach only into JSON columns",
                path=shown,
            )
        if info.kind == "opaque":
            raise QueryError(
                f"column {name!r} has type {info.column.type}, which table mode cannot query",
                path=shown,
            )
        return info


def autoincrement_column(table: sa.Table, dialect: Dialect) -> sa.Column[Any] | None:
    """The primary key column the database assigns when an insert leaves it out, or None.

    SQLAlchemy's rules (``Table.autoincrement_column``): the table's only primary key column, an
    integer with ``autoincrement`` "auto" or True, an ``Identity()`` or a ``Sequence``, and no
    other default nor foreign key (SERIAL / IDENTITY on PostgreSQL). On SQLite only a column
    declared ``INTEGER`` is the rowid that SQLite assigns (a ``BIGINT PRIMARY KEY`` is not:
    declare ``BigInteger().with_variant(Integer, "sqlite")``).
    """
    if len(table.primary_key.columns) != 1:
        return None
    col = table.autoincrement_column
    if col is None:
        return None
    if dialect == "sqlite":
        declared = col.type.compile(dialect=sqlite_dialect.dialect())
        if declared.upper() != "INTEGER":
            return None
    return col


# --- values: what a column can hold, in its storage form ---------------------------------------


class ColumnFitError(QueryError):
    """A document value that its column cannot hold (raised before any write)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.reason = message
        super().__init__(message, path=path)


def _fits_json(value: Any) -> bool:
    t = type(value)
    if value is None or t is bool or t is int or t is float or t is str:
        return True
    if t is list:
        return all(_fits_json(v) for v in value)
    if t is dict:
        return all(_fits_json(v) for v in value.values())
    return False


def to_column(info: ColumnInfo, value: Any) -> Any:
    """``value`` (normalized, not None) in the form the column stores, or ColumnFitError."""
    kind = info.kind
    t = type(value)

    def refuse(why: str = "") -> ColumnFitError:
        what = why or f"a {t.__name__}"
        return ColumnFitError(
            f"column {info.name!r} ({info.column.type}) cannot hold {what}", path=info.name
        )

    if kind == "int":
        if t is not int:
            raise refuse()
        if not info.int_min <= value <= info.int_max:
            raise refuse(f"{value} (out of range)")
        return value
    if kind == "float":
        if t is float:
            return value
        if t is int and abs(value) <= _FLOAT_EXACT:
            return float(value)
        if t is Decimal and (info.decimal_as_double or Decimal(float(value)) == value):
            return float(value)
        raise refuse(f"{value!r} exactly" if is_number(value) else "")
    if kind == "decimal":
        if not is_number(value):
            raise refuse()
        number = value if t is Decimal else Decimal(value)
        if info.precision is not None:
            whole = info.precision - (info.scale or 0)
            if abs(number) >= Decimal(10) ** whole:
                raise refuse(f"{value!r} (precision {info.precision})")
        if info.scale is not None and number != round(number, info.scale):
            raise refuse(f"{value!r} (scale {info.scale})")
        return number
    if kind == "str":
        if t is not str:
            raise refuse()
        if "\x00" in value:
            raise refuse("a string with NUL")
        if info.length is not None and len(value) > info.length:
            raise refuse(f"a string longer than {info.length}")
        return value
    if kind == "bool":
        if t is not bool:
            raise refuse()
        return value
    if kind == "datetime":
        if t is not datetime:
            raise refuse()
        return value.astimezone(UTC).replace(tzinfo=None) if info.naive_utc else value
    if kind == "bytes":
        if t is not bytes:
            raise refuse()
        return value
    if kind == "json":
        if not _fits_json(value):
            raise refuse("a value JSON cannot keep (bytes, Decimal, datetime)")
        return value
    return value  # opaque: the driver decides


def from_column(info: ColumnInfo, value: Any) -> Any:
    """A stored value as a portable document value."""
    kind = info.kind
    if kind == "datetime" and isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return normalize_datetime(value)
    if kind == "float" and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return float(value)
    if kind == "bytes" and isinstance(value, bytearray | memoryview):
        return bytes(value)
    if kind == "bool" and isinstance(value, int):
        return bool(value)
    return value


def row_to_doc(schema: TableSchema, row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as a document: NULL columns are missing fields."""
    doc: dict[str, Any] = {}
    for name, info in schema.columns.items():
        value = row[name]
        if value is not None:
            doc[name] = from_column(info, value)
    return doc


def doc_to_row(schema: TableSchema, doc: Mapping[str, Any], *, insert: bool) -> dict[str, Any]:
    """Every column's storage value for a document (None where the document lacks it); raises
    ColumnFitError for a field without a column, a value the column cannot hold, or a missing
    required column."""
    for name in doc:
        if name not in schema.columns:
            raise ColumnFitError(f"table {schema.table.name!r} has no column {name!r}", path=name)
    row: dict[str, Any] = {}
    for name, info in schema.columns.items():
        value = doc.get(name)
        if value is None:
            if insert and info.required:
                raise ColumnFitError(f"column {name!r} is NOT NULL and has no default", path=name)
            if not insert and not info.nullable:
                raise ColumnFitError(f"column {name!r} is NOT NULL", path=name)
            if insert and not info.nullable:
                continue  # the column's default fills it
            row[name] = sa.null() if info.kind == "json" else None
        else:
            row[name] = to_column(info, value)
    return row


# --- filters -----------------------------------------------------------------------------------

_FALSE: Expr = sa.false()
_TRUE: Expr = sa.true()


@dataclass(frozen=True, slots=True)
class Pushed:
    """A compiled condition: ``expr`` (None means TRUE) and whether it is exact. An inexact one
    is a superset of the matches, re-checked in process."""

    expr: Expr | None
    exact: bool


_UNPUSHABLE = Pushed(None, False)


def _guarded(col: sa.Column[Any], cond: Expr) -> Expr:
    # Two-valued: a NULL column makes the condition FALSE, never NULL (so NOT works).
    return sa.and_(col.is_not(None), cond)


def _text(info: ColumnInfo, schema: TableSchema) -> ColumnElement[Any]:
    col: ColumnElement[Any] = info.column
    # Code point order: the "C" collation on PostgreSQL; SQLite's BINARY already is.
    return col.collate("C") if schema.dialect == "postgresql" else col


def _int_bound(op: str, value: Any) -> tuple[str, int] | None:
    """An integer column against a non-integral number: the equivalent integer comparison
    (``> 2.5`` is ``> 2``); None when it can never hold (``== 2.5``)."""
    number = Decimal(value) if not isinstance(value, Decimal) else value
    floor = int(number.to_integral_value("ROUND_FLOOR"))
    ceil = int(number.to_integral_value("ROUND_CEILING"))
    if floor == ceil:
        return op, floor
    if op == "$eq":
        return None
    return {"$gt": ("$gt", floor), "$gte": ("$gte", ceil), "$lt": ("$lt", ceil)}.get(
        op, ("$lte", floor)
    )


def _sql_cmp(left: ColumnElement[Any], op: str, right: Any) -> Expr:
    if op == "$eq":
        result = left == right
    elif op == "$gt":
        result = left > right
    elif op == "$gte":
        result = left >= right
    elif op == "$lt":
        result = left < right
    else:
        result = left <= right
    return cast(Expr, result)


def compare_column(info: ColumnInfo, schema: TableSchema, op: str, value: Any) -> Pushed:
    """``column <op> value`` (op ``$eq`` or a range operator) with MongoDB's bracketing."""
    col = info.column
    if info.kind == "json":
        return _UNPUSHABLE
    if value is None:  # null: missing; $gte/$lte null match it, $gt/$lt null nothing
        return Pushed(col.is_(None) if op in ("$eq", "$gte", "$lte") else _FALSE, True)
    if rank(value) != _KIND_RANK[info.kind]:
        return Pushed(_FALSE, True)  # another BSON type: never equal, never in range
    kind = info.kind
    if kind == "int":
        if type(value) is not int:
            if isinstance(value, float) and not math.isfinite(value):
                return _UNPUSHABLE
            bound = _int_bound(op, value)
            if bound is None:
                return Pushed(_FALSE, True)
            op, value = bound
        if value > info.int_max or value < info.int_min:
            above = value > info.int_max
            always = (op in ("$lt", "$lte")) if above else (op in ("$gt", "$gte"))
            return Pushed(col.is_not(None) if always else _FALSE, True)
        return Pushed(_guarded(col, _sql_cmp(col, op, value)), True)
    if kind == "float":
        if type(value) is int and abs(value) > _FLOAT_EXACT:
            return _UNPUSHABLE
        if type(value) is Decimal and not info.decimal_as_double and Decimal(float(value)) != value:
            return _UNPUSHABLE
        return Pushed(_guarded(col, _sql_cmp(col, op, float(value))), True)
    if kind == "decimal":
        number = value if type(value) is Decimal else Decimal(value)
        # An unconstrained NUMERIC: a bind cast to the column's NUMERIC(p, s) would round it.
        operand = sa.literal(number, sa.Numeric(asdecimal=True))
        return Pushed(_guarded(col, _sql_cmp(col, op, operand)), True)
    if kind == "str":
        if "\x00" in value:
            return Pushed(_FALSE, True) if op == "$eq" else _UNPUSHABLE
        left = col if op == "$eq" else _text(info, schema)
        return Pushed(_guarded(col, _sql_cmp(left, op, value)), True)
    if kind == "bool":  # false < true: every range is an equality, everything or nothing
        if op in ("$gt", "$lt"):
            if value is (op == "$gt"):
                return Pushed(_FALSE, True)
            value = not value
        elif op in ("$gte", "$lte") and value is (op == "$lte"):
            return Pushed(col.is_not(None), True)
        return Pushed(_guarded(col, col == value), True)
    if kind == "datetime":
        stored = to_column(info, value)
        return Pushed(_guarded(col, _sql_cmp(col, op, stored)), True)
    if kind == "bytes":
        if op == "$eq":
            return Pushed(_guarded(col, col == value), True)
        # BSON orders binary data by length first, then bytes.
        length = sa.func.length(col)
        strict = "$gt" if op in ("$gt", "$gte") else "$lt"
        cond = sa.or_(
            _sql_cmp(length, strict, len(value)),
            sa.and_(length == len(value), _sql_cmp(col, op, value)),
        )
        return Pushed(_guarded(col, cond), True)
    return _UNPUSHABLE


_REGEX_META = frozenset(".^$*+?{}[]\\|()")


def _regex_literal(pattern: str, flags: str) -> tuple[str, bool] | None:
    """``(text, anchored)`` when the regex is a plain literal, optionally ``^``-anchored, that
    SQL can test exactly (substring or prefix); None otherwise."""
    anchored = pattern.startswith("^")
    body = pattern[1:] if anchored else pattern
    if set(flags) - {"s"} and not (flags == "m" and not anchored):
        return None  # i and x change what matches; m changes ^
    if not body or any(ch in _REGEX_META for ch in body) or "\x00" in body:
        return None
    return body, anchored


def regex_column(info: ColumnInfo, schema: TableSchema, node: Regex) -> Pushed:
    if info.kind == "json":
        return _UNPUSHABLE
    if info.kind != "str":
        return Pushed(_FALSE, True)  # a regex matches strings only
    literal = _regex_literal(node.pattern, node.flags)
    if literal is None:
        return _UNPUSHABLE
    text, anchored = literal
    col = info.column
    if anchored:
        cond: Expr = sa.func.substr(col, 1, len(text)) == text
    elif schema.dialect == "postgresql":
        cond = sa.func.strpos(col, text) > 0
    else:
        cond = sa.func.instr(col, text) > 0
    return Pushed(_guarded(col, cond), True)


def _type_column(info: ColumnInfo, node: Type) -> Pushed:
    if info.kind == "json":
        return _UNPUSHABLE
    col = info.column
    wanted = set(node.types)
    if info.kind == "int":
        if "number" in wanted or {"int", "long"} <= wanted:
            return Pushed(col.is_not(None), True)
        if info.int_min >= -(2**31) and info.int_max < 2**31:  # a 32-bit column: all "int"
            return Pushed(col.is_not(None) if "int" in wanted else _FALSE, True)
        small = sa.and_(col >= -(2**31), col < 2**31)
        if "int" in wanted:
            return Pushed(_guarded(col, small), True)
        if "long" in wanted:
            return Pushed(_guarded(col, sa.not_(small)), True)
        return Pushed(_FALSE, True)
    # NULL is a missing field, which $type never matches (not even "null").
    if wanted & _KIND_TYPES[info.kind]:
        return Pushed(col.is_not(None), True)
    return Pushed(_FALSE, True)


def _mod_column(info: ColumnInfo, node: Mod) -> Pushed:
    if info.kind == "json" or info.kind in ("float", "decimal"):
        return _UNPUSHABLE
    if info.kind != "int":
        return Pushed(_FALSE, True)
    divisor = abs(node.divisor)
    if divisor > info.int_max:
        return _UNPUSHABLE
    if abs(node.remainder) >= divisor:
        return Pushed(_FALSE, True)  # |n % d| < |d|
    col = info.column
    # SQL's % truncates toward zero with the dividend's sign, as MongoDB's $mod does.
    return Pushed(_guarded(col, (col % divisor) == node.remainder), True)


def _any_of(parts: list[Pushed]) -> Pushed:
    exact = all(p.exact for p in parts)
    if any(p.expr is None for p in parts):
        return Pushed(None, exact)
    exprs = [p.expr for p in parts if p.expr is not None]
    return Pushed(sa.or_(*exprs) if exprs else _FALSE, exact)


def _all_of(parts: list[Pushed]) -> Pushed:
    exprs = [p.expr for p in parts if p.expr is not None]
    expr = sa.and_(*exprs) if len(exprs) > 1 else (exprs[0] if exprs else None)
    return Pushed(expr, all(p.exact for p in parts))


def compile_node(node: Node, schema: TableSchema) -> Pushed:
    """A filter node as SQL: exact, or an over-approximation (inexact)."""
    if isinstance(node, MatchAll):
        return Pushed(None, True)
    if isinstance(node, And):
        return _all_of([compile_node(c, schema) for c in node.children])
    if isinstance(node, FieldAnd):
        return _all_of([compile_node(c, schema) for c in node.children])
    if isinstance(node, Or):
        return _any_of([compile_node(c, schema) for c in node.children])
    if isinstance(node, Nor):
        inner = _any_of([compile_node(c, schema) for c in node.children])
        return _negate(inner)
    if isinstance(node, Not):
        return _negate(compile_node(node.child, schema))
    if not isinstance(node, FieldNode):
        return _UNPUSHABLE
    info = schema.column_of(node.path)
    if len(node.path) > 1:
        return _UNPUSHABLE  # into a JSON column: in process
    if isinstance(node, Eq):
        return compare_column(info, schema, "$eq", node.value)
    if isinstance(node, Cmp):
        return compare_column(info, schema, node.op, node.value)
    if isinstance(node, In):
        return _any_of([compare_column(info, schema, "$eq", v) for v in node.values])
    if isinstance(node, All):
        if not node.values:
            return Pushed(_FALSE, True)
        return _all_of([compare_column(info, schema, "$eq", v) for v in node.values])
    if isinstance(node, Exists):
        col = info.column
        return Pushed(col.is_not(None) if node.exists else col.is_(None), True)
    if isinstance(node, Type):
        return _type_column(info, node)
    if isinstance(node, Regex):
        return regex_column(info, schema, node)
    if isinstance(node, Mod):
        return _mod_column(info, node)
    if isinstance(node, Size | ElemMatch):
        # A column that is not JSON never holds an array.
        return _UNPUSHABLE if info.kind == "json" else Pushed(_FALSE, True)
    return _UNPUSHABLE


def _negate(inner: Pushed) -> Pushed:
    if not inner.exact:
        return _UNPUSHABLE  # the complement of a superset is not a superset
    if inner.expr is None:
        return Pushed(_FALSE, True)
    return Pushed(sa.not_(inner.expr), True)


@dataclass(frozen=True, slots=True)
class FilterSplit:
    """The top-level conjuncts of a filter split into exact, approximate and residual ones, and
    the WHERE clause that pushes the exact ones and the approximations of the others."""

    where: Expr | None
    exact: tuple[Node, ...] = ()
    approximate: tuple[Node, ...] = ()
    residual: Node | None = None


def split_filter(node: Node, schema: TableSchema) -> FilterSplit:
    """Split a filter into what SQL evaluates exactly and what is re-checked in process."""
    terms = (
        node.children if isinstance(node, And) else () if isinstance(node, MatchAll) else (node,)
    )
    exact: list[Node] = []
    approx: list[Node] = []
    residual: list[Node] = []
    wheres: list[Expr] = []
    for term in terms:
        pushed = compile_node(term, schema)
        if pushed.exact:
            exact.append(term)
        else:
            residual.append(term)
            if pushed.expr is not None:
                approx.append(term)
        if pushed.expr is not None:
            wheres.append(pushed.expr)
    where = sa.and_(*wheres) if len(wheres) > 1 else (wheres[0] if wheres else None)
    rest = None if not residual else residual[0] if len(residual) == 1 else And(tuple(residual))
    return FilterSplit(where, tuple(exact), tuple(approx), rest)


# --- sort --------------------------------------------------------------------------------------


def compile_sort(sort: Sort, schema: TableSchema) -> list[Any] | None:
    """ORDER BY clauses in BSON order (NULLs first ascending), or None if SQL cannot sort
    exactly (a JSON column or a path into one)."""
    clauses: list[Any] = []
    for key in sort:
        info = schema.column_of(key.path, f"sort.{path_str(key.path)}")
        if info.kind == "json" or len(key.path) > 1:
            return None
        exprs: list[ColumnElement[Any]] = [info.column]
        if info.kind == "str":
            exprs = [_text(info, schema)]
        elif info.kind == "bytes":
            exprs = [sa.func.length(info.column), info.column]
        for e in exprs:
            clauses.append(e.asc().nulls_first() if key.direction == 1 else e.desc().nulls_last())
    return clauses


# --- updates -----------------------------------------------------------------------------------


def compile_update(update: Update, schema: TableSchema) -> dict[str, Any] | None:
    """``UPDATE ... SET`` values for an update SQL applies exactly as the reference does, else
    None (the update then runs as a read-modify-write). Exact: ``$set`` of a value the column
    holds as is, ``$unset`` of a nullable column, and on PostgreSQL ``$inc``/``$mul`` of a
    number of the column's own kind (its overflow errors become UpdateError; SQLite would
    silently turn an overflowing integer into a REAL, so it does not get them)."""
    if update.replacement is not None:
        return None
    values: dict[str, Any] = {}
    for op in update.ops:
        if len(op.path) != 1 or op.path[0] in values or op.path[0] in schema.key:
            return None
        info = schema.columns.get(op.path[0])
        if info is None or info.kind in ("json", "opaque"):
            return None
        if op.op == "$set" and op.value is not None:
            try:
                stored = to_column(info, op.value)
            except ColumnFitError:
                return None
            if type(stored) is not type(op.value):
                return None  # int into a float column: its modified count follows the type
            values[info.name] = stored
        elif op.op == "$unset" or (op.op == "$set" and op.value is None):
            if not info.nullable:
                return None
            values[info.name] = None
        elif op.op in ("$inc", "$mul") and schema.dialect == "postgresql":
            operand = _arith_operand(info, op.value)
            if operand is None:
                return None
            current = sa.func.coalesce(info.column, 0)
            values[info.name] = current + operand if op.op == "$inc" else current * operand
        else:
            return None
    return values


def _arith_operand(info: ColumnInfo, value: Any) -> Any:
    t = type(value)
    if info.kind == "int" and t is int:
        return sa.literal(value, sa.BigInteger())
    if info.kind == "float" and (t is float or (t is int and abs(value) <= _FLOAT_EXACT)):
        return sa.literal(float(value), sa.Float())
    if info.kind == "decimal" and (t is int or t is Decimal):
        number = Decimal(value)
        if info.scale is not None and number != round(number, info.scale):
            return None  # NUMERIC(p, s) would round the result
        return sa.literal(number, sa.Numeric(asdecimal=True))
    return None


def changed_condition(schema: TableSchema, values: dict[str, Any]) -> Expr:
    """Rows the SET values actually change (MongoDB's modified count)."""
    return sa.or_(*(schema.columns[name].column.is_distinct_from(v) for name, v in values.items()))


# --- keyset positions ---------------------------------------------------------------------------

_INVERT = bytes(255 - i for i in range(256))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _unfloat(raw: bytes) -> float:
    (bits,) = struct.unpack(">Q", raw)
    bits = bits & ~(1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    value: float = struct.unpack(">d", struct.pack(">Q", bits))[0]
    return value


def _leading_value(data: bytes, kind: str) -> tuple[bool, Any]:
    """``(ok, value)``: the first value of a sort key (asyncdb.query.sort's encoding), decoded
    for a column kind; ok is False when it cannot be decoded exactly."""
    tag = data[0]
    if tag == 0x0A:
        return True, None
    if tag == 0x14 and kind in ("int", "float") and len(data) >= 17:
        head, rest = _unfloat(data[1:9]), _unfloat(data[9:17])
        exact = Fraction(head) + Fraction(rest)
        if kind == "float":
            return True, float(exact)
        return exact.denominator == 1, int(exact)
    if tag == 0x1E and kind == "str":
        out = bytearray()
        i = 1
        while i < len(data):
            if data[i] == 0:
                if i + 1 < len(data) and data[i + 1] == 0xFF:
                    out.append(0)
                    i += 2
                    continue
                return True, out.decode("utf-8", "surrogatepass")
            out.append(data[i])
            i += 1
        return False, None
    if tag == 0x50 and kind == "bool" and len(data) >= 2:
        return True, data[1] == 1
    if tag == 0x5A and kind == "datetime" and len(data) >= 9:
        (biased,) = struct.unpack(">Q", data[1:9])
        return True, _EPOCH + timedelta(milliseconds=biased - (1 << 63))
    return False, None


_BOUNDED_KINDS = frozenset({"int", "float", "str", "bool", "datetime"})


def keyset_bound(sort: Sort, schema: TableSchema, after: bytes) -> Expr | None:
    """An over-approximate WHERE for the rows after a keyset position: the leading sort
    column's own bound (ties are skipped in process), or None if it cannot be decoded."""
    if not sort or not after:
        return None
    key = sort[0]
    info = schema.columns.get(key.path[0])
    if (
        info is None
        or len(key.path) > 1
        or info.kind not in ("int", "float", "str", "bool", "datetime")
    ):
        return None
    data = after if key.direction == 1 else after.translate(_INVERT)
    ok, value = _leading_value(data, info.kind)
    if not ok:
        return None
    col = info.column
    if value is None:  # NULLs sort first ascending, last descending
        return None if key.direction == 1 else col.is_(None)
    left: ColumnElement[Any] = _text(info, schema) if info.kind == "str" else col
    stored = to_column(info, value) if info.kind == "datetime" else value
    if key.direction == 1:
        return cast(Expr, left >= stored)
    return sa.or_(left <= stored, col.is_(None))


@dataclass(frozen=True, slots=True)
class SelectPayload:
    """What ``rows`` executes: the statement, and a keyset position to skip to in process
    (when the sort is pushed, the rows arrive in order and the skipped ones are a prefix)."""

    stmt: sa.Select[Any]
    sort: Sort
    after: bytes | None


def plan_query(schema: TableSchema, spec: CollectionSpec, query: Query, backend: str) -> Plan:
    """The plan of a read: WHERE (exact + approximate), ORDER BY when SQL sorts exactly,
    LIMIT/OFFSET when nothing is left to re-check."""
    split = split_filter(query.filter, schema)
    stmt = sa.select(schema.table)
    if split.where is not None:
        stmt = stmt.where(split.where)
    order = compile_sort(query.sort, schema) if query.sort else []
    sort_pushed = bool(query.sort) and order is not None
    if order:
        stmt = stmt.order_by(*order)
    limit_pushed = (
        split.residual is None and query.after is None and (sort_pushed or not query.sort)
    )
    if limit_pushed:
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        if query.skip:
            stmt = stmt.offset(query.skip)
    keys = key_lookup(query.filter, spec)
    access = "key" if keys is not None else (indexed_path(query.filter, spec) or "scan")
    after = query.after if sort_pushed else None
    if after is not None:
        bound = keyset_bound(query.sort, schema, after)
        if bound is not None:
            stmt = stmt.where(bound)
    return Plan(
        backend=backend,
        collection=spec.name,
        access_path=access,
        native={"select": stmt},
        exact=conjoin(split.exact).to_mongo() if split.exact else None,
        approximate=conjoin(split.approximate).to_mongo() if split.approximate else None,
        residual=None if split.residual is None else split.residual.to_mongo(),
        sort_pushed=sort_pushed,
        limit_pushed=limit_pushed,
        client_sort=bool(query.sort) and not sort_pushed,
        residual_node=split.residual,
        payload=SelectPayload(stmt, query.sort, after),
    )


def count_statement(plan: Plan) -> sa.Select[Any] | None:
    """``SELECT count(*)`` for a plan SQL answers alone, else None."""
    if plan.residual_node is not None:
        return None
    payload: SelectPayload = plan.payload
    inner = payload.stmt.order_by(None).limit(None).offset(None)
    return sa.select(sa.func.count()).select_from(inner.subquery())


__all__ = [
    "ColumnFitError",
    "ColumnInfo",
    "FilterSplit",
    "Pushed",
    "SelectPayload",
    "TableSchema",
    "autoincrement_column",
    "changed_condition",
    "compare_column",
    "compile_node",
    "compile_sort",
    "compile_update",
    "count_statement",
    "doc_to_row",
    "from_column",
    "plan_query",
    "row_to_doc",
    "split_filter",
    "to_column",
]
