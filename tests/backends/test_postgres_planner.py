"""The PostgreSQL planner, without a server: SQL text, bound parameters and the
exact / approximate / residual split of each filter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asyncdb.backends.postgres.codec import decode_doc, encode_doc, encode_key
from asyncdb.backends.postgres.planner import PostgresPlanner, schema, sort_columns
from asyncdb.query.parse import parse_filter, parse_projection, parse_sort
from asyncdb.query.sort import field_key, sort_key
from asyncdb.types import CollectionSpec, Index, Plan, Query

SPEC = CollectionSpec("t", indexes=(Index.of("status"),))


def plan(filter: dict[str, Any], **kw: Any) -> Plan:
    sort = kw.pop("sort", None)
    query = Query(parse_filter(filter), sort=parse_sort(sort) if sort else (), **kw)
    return PostgresPlanner(SPEC).plan(query)


def test_key_equality_reads_by_primary_key_with_the_encoded_key_bound() -> None:
    p = plan({"id": "a1"})
    assert p.native["sql"] == 'SELECT body, tagged FROM "t" WHERE "k0" = ANY($1::bytea[])'
    assert p.native["params"] == [[encode_key("a1")]]
    assert p.access_path == "key" and p.residual is None


def test_number_comparison_is_a_type_guarded_jsonpath_with_the_value_in_a_parameter() -> None:
    p = plan({"n": {"$gt": 4}}, limit=3)
    assert p.native["sql"] == 'SELECT body, tagged FROM "t" WHERE (doc @? $1::jsonpath) LIMIT $2'
    path = p.native["params"][0]
    assert path.startswith('$."n" ? ((@.type() == "number" && @ > 4)')
    assert '@."$n" > 4' in path  # Decimals in documents compare through their tag's value
    assert p.exact == {"n": {"$gt": 4}} and p.residual is None and p.limit_pushed


def test_string_equality_never_matches_other_types_and_values_stay_out_of_sql() -> None:
    p = plan({"s": "x'; DROP TABLE t; --"})
    assert "DROP" not in p.native["sql"]
    assert p.native["params"] == ['$."s" ? (@.type() == "string" && @ == "x\'; DROP TABLE t; --")']


def test_dates_compare_through_the_fixed_width_tag_text() -> None:
    p = plan({"ts": {"$lt": datetime(2024, 1, 2, tzinfo=UTC)}})
    assert p.native["params"] == [
        '$."ts" ? (@.type() == "object" && @."$date" < "2024-01-02T00:00:00.000Z")'
    ]


def test_null_matches_missing_on_a_top_level_field_and_is_residual_when_dotted() -> None:
    top = plan({"a": None})
    assert "NOT (doc @? $1::jsonpath)" in top.native["sql"] and top.residual is None
    dotted = plan({"a.b": None}, limit=1)
    assert dotted.residual == {"a.b": {"$eq": None}} and not dotted.limit_pushed


def test_ne_is_the_negation_of_an_exact_condition_so_it_matches_missing() -> None:
    p = plan({"n": {"$ne": 1}})
    assert p.native["sql"].endswith("WHERE NOT COALESCE((doc @? $1::jsonpath), FALSE)")
    assert p.residual is None


def test_a_float_whose_text_is_not_exact_stays_in_the_residual() -> None:
    p = plan({"n": {"$lt": 0.1}, "m": {"$lt": 2.5}})
    assert p.residual == {"n": {"$lt": 0.1}}
    assert p.exact == {"m": {"$lt": 2.5}}


def test_a_partial_in_binds_only_the_values_its_sql_uses() -> None:
    p = plan({"s": {"$in": ["a", [1, 2]]}, "b": True})
    assert p.residual == {"s": {"$in": ["a", [1, 2]]}}
    assert p.native["params"] == ['$."b" ? (@.type() == "boolean" && @ == true)']


def test_regex_outside_the_subset_size_and_numeric_paths_are_residual() -> None:
    p = plan({"s": {"$regex": "(a)"}, "arr": {"$size": 2}, "arr.0": 1})
    assert p.exact is None
    assert p.residual is not None and len(p.residual["$and"]) == 3


def test_or_of_exact_conditions_is_exact_and_partial_and_is_approximate() -> None:
    exact = plan({"$or": [{"a": 1}, {"b": "x"}]})
    assert exact.residual is None
    approx = plan({"$or": [{"a": 1, "s": {"$regex": "x|y"}}, {"b": "x"}]})
    assert approx.approximate is not None and approx.residual is not None


def test_sort_on_the_key_is_pushed_and_other_sorts_are_client_side() -> None:
    by_key = plan({"n": 1}, sort=[("id", -1)], limit=5)
    assert by_key.native["sql"].endswith('ORDER BY "k0" DESC LIMIT $2')
    assert by_key.sort_pushed and by_key.limit_pushed
    other = plan({"n": 1}, sort=[("n", 1)], limit=5)
    assert other.client_sort and not other.limit_pushed


def test_declared_index_names_the_access_path() -> None:
    assert plan({"status": "open"}).access_path == "index:ix_status"
    assert plan({"other": "open"}).access_path == "scan"


def test_schema_is_idempotent_ddl_with_generated_jsonb() -> None:
    stmts = schema(SPEC)
    assert all("IF NOT EXISTS" in s for s in stmts)
    assert "doc jsonb GENERATED ALWAYS AS (body::jsonb) STORED" in stmts[0]
    assert any("USING gin (doc jsonb_path_ops)" in s for s in stmts)


def test_codec_round_trips_values_json_lacks_and_keeps_large_floats_exact() -> None:
    doc = {"d": Decimal("1.5"), "b": b"\x00", "t": datetime(2024, 1, 1, tzinfo=UTC), "f": 2.0**60}
    text, flags = encode_doc(doc)
    assert decode_doc(text, flags) == doc
    assert '"f":1152921504606846976.0' in text  # not 1.152921504606847e+18, which is not 2**60


def test_a_string_holding_nul_is_refused_because_jsonb_cannot_store_it() -> None:
    # Documented deviation: PostgreSQL's jsonb rejects U+0000; refused before any I/O.
    import pytest

    from asyncdb.errors import QueryError

    with pytest.raises(QueryError):
        encode_doc({"s": "a\x00b"})
    with pytest.raises(QueryError):
        encode_doc({"list": ["ok", {"deep": "\x00"}]})
    assert encode_doc({"s": "a\\u0000b"})[0] == '{"s":"a\\\\u0000b"}'  # the text "\u0000" is fine


def test_regex_in_the_subset_is_an_exact_like_regex_with_python_semantics_spelled_out() -> None:
    p = plan({"s": {"$regex": "^ab.c$", "$options": "i"}}, limit=2)
    assert p.native["sql"] == 'SELECT body, tagged FROM "t" WHERE (doc @? $1::jsonpath) LIMIT $2'
    path = p.native["params"][0]
    # Python's case folding written out, Python's "." and "$" spelled for PostgreSQL's engine
    assert path == (
        '$."s" ? (@.type() == "string" && @ like_regex "^[aA][bB][^\\n][cC](?=\\n?$)" flag "s")'
    )
    assert p.exact == {"s": {"$regex": "^ab.c$", "$options": "i"}} and p.residual is None
    assert p.limit_pushed


def test_regex_outside_the_subset_stays_residual() -> None:
    for cond in (
        {"$regex": "a\\d"},
        {"$regex": "(ab)+"},
        {"$regex": "a|b"},
        {"$regex": "^a", "$options": "m"},
        {"$regex": "^a", "$options": "x"},
        {"$regex": "[a-z]", "$options": "i"},
        {"$regex": "é", "$options": "i"},
        {"$regex": "a{300}"},
        {"$regex": "a+?"},
    ):
        p = plan({"s": cond})
        assert p.residual == {"s": cond} and p.exact is None, cond
        assert "like_regex" not in repr(p.native["params"]), cond


def test_a_sort_on_an_indexed_path_orders_by_its_sort_key_column() -> None:
    asc = plan({"status": "open"}, sort=[("status", 1), ("id", 1)], limit=5)
    assert asc.native["sql"].endswith('ORDER BY "s:status:a" ASC, "k0" ASC LIMIT $2')
    assert asc.sort_pushed and asc.limit_pushed and not asc.client_sort
    # descending reads the column of largest-element keys, ascending (arrays sort by their max)
    desc = plan({}, sort=[("status", -1), ("id", -1)])
    assert desc.native["sql"].endswith('ORDER BY "s:status:d" ASC, "k0" DESC')
    # a residual keeps the order but not the limit
    residual = plan({"x.0": 1}, sort=[("status", 1)], limit=5)
    assert residual.sort_pushed and not residual.limit_pushed and residual.residual is not None


def test_a_keyset_position_becomes_a_bound_row_comparison_on_the_sort_columns() -> None:
    doc = {"id": "k7", "status": ["b", "a"]}
    sort = parse_sort([("status", 1), ("id", 1)])
    after = sort_key(doc, sort)
    p = PostgresPlanner(SPEC).plan(Query(parse_filter({}), sort, limit=3, after=after))
    assert '("s:status:a", "k0") > ($1::bytea, $2::bytea)' in p.native["sql"]
    assert p.native["params"][:2] == [field_key(doc, ("status",), 1), encode_key("k7")]
    assert p.limit_pushed
    # a descending key column compares the other way, so the row comparison is spelled out
    sort = parse_sort([("status", 1), ("id", -1)])
    p = PostgresPlanner(SPEC).plan(Query(parse_filter({}), sort, after=sort_key(doc, sort)))
    assert (
        '("s:status:a" > $1::bytea) OR ("s:status:a" = $2::bytea AND "k0" < $3::bytea)'
        in (p.native["sql"])
    )
    assert p.native["params"][2] == encode_key("k7")


def test_indexes_are_btrees_on_the_sort_keys_both_ways_and_unique_on_ascending_keys() -> None:
    spec = CollectionSpec(
        "t",
        indexes=(Index.of([("a", 1), ("b.c", -1)]), Index.of({"fields": ["e"], "unique": True})),
    )
    stmts = schema(spec)
    assert 'ALTER TABLE "t" ADD COLUMN IF NOT EXISTS "s:b.c:a" bytea' in "\n".join(stmts)
    assert 'ON "t" ("s:a:a" ASC, "s:b.c:d" ASC, "k0")' in "\n".join(stmts)
    assert 'ON "t" ("s:a:d" ASC, "s:b.c:a" ASC, "k0")' in "\n".join(stmts)
    assert 'CREATE UNIQUE INDEX IF NOT EXISTS "t:ux_e" ON "t" ("s:e:a" ASC)' in stmts
    # a long path gets a digest name within PostgreSQL's 63-byte identifiers
    long = CollectionSpec("t", indexes=(Index.of("x" * 80),))
    assert all(len(c) < 64 for pair in sort_columns(long).values() for c in pair)


def test_a_projection_cuts_the_stored_text_to_whole_top_level_fields_in_sql() -> None:
    include = PostgresPlanner(SPEC).plan(
        Query(parse_filter({"x.0": 1}), projection=parse_projection({"a.b": 1, "c": 1}), limit=3)
    )
    sql = include.native["sql"]
    assert "json_each(body::json) WITH ORDINALITY" in sql and "e.key = ANY($1::text[])" in sql
    # the residual's field comes back too, so the re-check sees it; and the key
    assert include.native["params"] == [["a", "c", "id", "x"]]
    exclude = PostgresPlanner(SPEC).plan(
        Query(parse_filter({"status": "open"}), projection=parse_projection({"big": 0, "n.x": 0}))
    )
    assert "e.key <> ALL($1::text[])" in exclude.native["sql"]
    assert exclude.native["params"][0] == ["big"]  # a dotted exclusion stays in process
    none = PostgresPlanner(SPEC).plan(
        Query(parse_filter({}), projection=parse_projection({"n.x": 0}))
    )
    assert none.native["sql"].startswith("SELECT body, tagged")
