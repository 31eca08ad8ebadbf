"""The pure half of table mode, without a server: filter AST -> SQLAlchemy Core per dialect,
the exact / approximate / residual split, ORDER BY, and the column value checks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from asyncdb.backends.table.compiler import (
    ColumnFitError,
    TableSchema,
    compile_sort,
    doc_to_row,
    plan_query,
    split_filter,
)
from asyncdb.backends.table.store import sqlalchemy_url
from asyncdb.errors import NotSupported, QueryError
from asyncdb.query.parse import parse_filter, parse_sort
from asyncdb.types import CollectionSpec, Query

from .conftest import ITEMS

PG = TableSchema.of(ITEMS, "postgresql")
LITE = TableSchema.of(ITEMS, "sqlite")
SPEC = CollectionSpec("items", ("id",))


def sql(flt: dict[str, Any], schema: TableSchema = PG) -> str:
    where = split_filter(parse_filter(flt), schema).where
    assert where is not None
    dialect = postgresql.asyncpg.dialect() if schema is PG else sqlite.aiosqlite.dialect()
    return str(where.compile(dialect=dialect, compile_kwargs={"literal_binds": False}))


def test_comparisons_are_guarded_against_null() -> None:
    assert sql({"n": {"$gt": 5}}) == "items.n IS NOT NULL AND items.n > $1::BIGINT"
    assert sql({"n": {"$ne": 5}}) == "NOT (items.n IS NOT NULL AND items.n = $1::BIGINT)"
    assert sql({"n": None}) == "items.n IS NULL"
    assert sql({"n": {"$exists": False}}) == "items.n IS NULL"


def test_type_bracketing_compiles_to_false() -> None:
    assert sql({"name": {"$gt": 5}}) == "false"
    assert sql({"flag": 1}) == "false"
    assert sql({"n": "1"}) == "false"
    assert sql({"n": {"$size": 1}}) == "false"
    assert sql({"name": {"$gt": 5}}, LITE) == "0"


def test_strings_compare_in_the_c_collation_on_postgresql() -> None:
    assert (
        sql({"name": {"$lt": "b"}})
        == 'items.name IS NOT NULL AND (items.name COLLATE "C") < $1::VARCHAR'
    )
    assert sql({"name": {"$lt": "b"}}, LITE) == "items.name IS NOT NULL AND items.name < ?"


def test_integer_column_against_fractions_and_out_of_range() -> None:
    split = split_filter(parse_filter({"small": {"$gt": 2.5}}), PG)
    assert split.where is not None and split.where.compile().params == {"small_1": 2}
    assert sql({"small": {"$gt": 2**40}}) == "false"
    assert sql({"small": {"$lt": 2**40}}) == "items.small IS NOT NULL"
    assert sql({"n": 2.5}) == "false"


def test_decimal_operands_are_unconstrained_numeric() -> None:
    assert (
        sql({"price": Decimal("1.23456")})
        == "items.price IS NOT NULL AND items.price = $1::NUMERIC"
    )


def test_bytes_order_by_length_then_content() -> None:
    assert "length(items.data) >" in sql({"data": {"$gt": b"a"}})


@pytest.mark.parametrize(
    ("flt", "exact", "residual"),
    [
        ({"name": {"$regex": "^ab"}}, True, False),
        ({"name": {"$regex": "ab"}}, True, False),
        ({"name": {"$regex": "a.b"}}, False, True),
        ({"name": {"$regex": "^ab", "$options": "i"}}, False, True),
        ({"meta.x": 1}, False, True),
        ({"meta": {"$size": 1}}, False, True),
        ({"f": 2**60 + 1}, False, True),
        ({"n": {"$mod": [3, 1]}}, True, False),
        ({"f": {"$mod": [3, 1]}}, False, True),
        ({"$or": [{"n": 1}, {"meta.x": 1}]}, False, True),
        ({"n": {"$not": {"$gt": 1}}}, True, False),
    ],
)
def test_exact_and_residual_split(flt: dict[str, Any], exact: bool, residual: bool) -> None:
    split = split_filter(parse_filter(flt), PG)
    assert bool(split.exact) is exact
    assert (split.residual is not None) is residual


def test_plan_pushes_sort_and_limit_only_when_nothing_is_left() -> None:
    q = Query(parse_filter({"n": {"$gt": 1}}), parse_sort([("name", 1), ("id", 1)]), 2, 5)
    plan = plan_query(PG, SPEC, q, "t")
    assert plan.sort_pushed and plan.limit_pushed and plan.residual is None
    q = Query(parse_filter({"meta.x": 1}), parse_sort([("name", 1), ("id", 1)]), 0, 5)
    plan = plan_query(PG, SPEC, q, "t")
    assert plan.sort_pushed and not plan.limit_pushed and plan.residual == {"meta.x": {"$eq": 1}}
    q = Query(parse_filter({}), parse_sort([("meta", 1), ("id", 1)]))
    assert plan_query(PG, SPEC, q, "t").client_sort
    assert plan_query(PG, SPEC, Query(parse_filter({"id": 3})), "t").access_path == "key"


def test_sort_is_nulls_first_ascending() -> None:
    clauses = compile_sort(parse_sort([("f", 1), ("name", -1)]), PG)
    assert clauses is not None
    text = ", ".join(str(c.compile(dialect=postgresql.asyncpg.dialect())) for c in clauses)
    assert text == 'items.f ASC NULLS FIRST, items.name COLLATE "C" DESC NULLS LAST'


def test_unknown_columns_and_paths_are_query_errors() -> None:
    with pytest.raises(QueryError) as err:
        split_filter(parse_filter({"$or": [{"n": 1}, {"missing": 2}]}), PG)
    assert err.value.path == "missing"
    with pytest.raises(QueryError):
        split_filter(parse_filter({"name.x": 1}), PG)
    with pytest.raises(QueryError):
        compile_sort(parse_sort([("nope", 1)]), PG)


@pytest.mark.parametrize(
    "doc",
    [
        {"id": 1, "n": "x"},
        {"id": 1, "n": 2**63 - 1, "small": 2**31},
        {"id": 1, "flag": 0},
        {"id": 1, "name": "x" * 41},
        {"id": 1, "f": 2**53 + 1},
        {"id": 1, "price": Decimal("0.00001")},
        {"id": 1, "price": Decimal("1e9")},
        {"id": 1, "meta": {"d": datetime(2024, 1, 1, tzinfo=UTC)}},
        {"id": 1, "other": 1},
    ],
)
def test_values_a_column_cannot_hold(doc: dict[str, Any]) -> None:
    with pytest.raises(ColumnFitError):
        doc_to_row(PG, doc, insert=True)


def test_storage_forms() -> None:
    ts = datetime(2024, 1, 1, 12, tzinfo=UTC)
    row = doc_to_row(LITE, {"id": 1, "f": 3, "ts": ts, "meta": None}, insert=True)
    assert row["f"] == 3.0 and type(row["f"]) is float
    assert row["ts"] == datetime(2024, 1, 1, 12) and row["ts"].tzinfo is None
    assert isinstance(row["meta"], sa.Null), "None in a JSON column is SQL NULL, not JSON null"
    assert doc_to_row(PG, {"id": 1, "ts": ts}, insert=True)["ts"].tzinfo is UTC


def test_urls() -> None:
    assert sqlalchemy_url("sqlite:////tmp/x.db?busy_timeout=5") == (
        "sqlite",
        "sqlite+aiosqlite:////tmp/x.db",
    )
    assert sqlalchemy_url("postgresql://u@h:5/db") == (
        "postgresql",
        "postgresql+asyncpg://u@h:5/db",
    )
    with pytest.raises(NotSupported):
        sqlalchemy_url("memory://")


def test_keyset_position_becomes_a_bound_on_the_leading_column() -> None:
    from asyncdb.backends.table.compiler import keyset_bound
    from asyncdb.query.sort import sort_key

    asc = parse_sort([("n", 1), ("id", 1)])
    bound = keyset_bound(asc, PG, sort_key({"n": 2**62 + 1, "id": 3}, asc))
    assert bound is not None and bound.compile().params == {"n_1": 2**62 + 1}
    desc = parse_sort([("name", -1), ("id", 1)])
    bound = keyset_bound(desc, PG, sort_key({"name": "é\x00x", "id": 3}, desc))
    assert bound is not None
    assert str(bound.compile(dialect=postgresql.asyncpg.dialect())) == (
        '(items.name COLLATE "C") <= $1::VARCHAR OR items.name IS NULL'
    )
    assert (
        bound.compile().params == {"param_1": "é\x00x"}
        or "é\x00x" in bound.compile().params.values()
    )
    assert keyset_bound(asc, PG, sort_key({"id": 3}, asc)) is None, "NULL first: no bound"
    assert keyset_bound(parse_sort([("meta", 1)]), PG, sort_key({"meta": 1}, asc)) is None


def test_updates_compiled_to_set_where_exact() -> None:
    from asyncdb.backends.table.compiler import compile_update
    from asyncdb.query.parse import parse_update

    assert compile_update(parse_update({"$set": {"name": "x"}, "$unset": {"f": ""}}), LITE) == {
        "name": "x",
        "f": None,
    }
    inc = compile_update(parse_update({"$inc": {"n": 1}}), PG)
    assert inc is not None and "coalesce(items.n" in str(inc["n"])
    assert compile_update(parse_update({"$inc": {"n": 1}}), LITE) is None, (
        "SQLite overflows to REAL"
    )
    assert compile_update(parse_update({"$inc": {"n": 1.5}}), PG) is None
    assert compile_update(parse_update({"$set": {"f": 1}}), PG) is None, "int -> double: RMW"
    assert compile_update(parse_update({"$set": {"meta": {"a": 1}}}), PG) is None
    assert compile_update(parse_update({"$max": {"n": 1}}), PG) is None
    assert compile_update(parse_update({"$set": {"id": 2}}), PG) is None
    assert compile_update(parse_update({"$set": {"n": "x"}}), PG) is None
