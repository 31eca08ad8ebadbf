"""The DynamoDB planner and codec, without I/O: requests, placeholders, the approximate/residual
split, GSI choice, the sortable key encoding and the CloudFormation template."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from asyncdb.backends.dynamodb import cloudformation_template
from asyncdb.backends.dynamodb.codec import (
    OPAQUE,
    decode_body,
    decode_key,
    dynamo_number,
    encode_body,
    native,
    sortable,
)
from asyncdb.backends.dynamodb.planner import (
    Placeholders,
    TableLayout,
    build_plan,
    compile_filter,
    index_attributes,
    plan_request,
)
from asyncdb.backends.dynamodb.store import table_definition
from asyncdb.query.parse import parse_filter, parse_sort
from asyncdb.types import CollectionSpec, Index, Plan, Query

SPEC = CollectionSpec(
    "alerts",
    indexes=(Index.of("status"), Index.of(("company", "priority")), Index.of([("ts", -1)])),
    ttl="expires_at",
)
TENANTS = CollectionSpec("tenants", key=("tenant", "id"))


def plan(flt: Any, *, spec: CollectionSpec = SPEC, **kw: Any) -> Plan:
    if "sort" in kw:
        kw["sort"] = parse_sort(kw["sort"])
    return build_plan(Query(parse_filter(flt), **kw), spec)


# --- access paths ------------------------------------------------------------------


def test_key_equality_is_a_get_item_with_the_sortable_key() -> None:
    p = plan({"id": "a1"})
    assert p.access_path == "key"
    assert p.native == {"operation": "GetItem", "Keys": [{"id": {"S": "sa1"}}]}


def test_key_in_is_a_batch_get_item() -> None:
    p = plan({"id": {"$in": ["a", 7]}})
    assert p.native["operation"] == "BatchGetItem"
    assert p.native["Keys"] == [{"id": {"S": "sa"}}, {"id": {"S": sortable(7)}}]


def test_partition_key_equality_with_a_sort_key_range_is_a_table_query() -> None:
    p = plan({"tenant": "t1", "id": {"$gte": "m"}, "n": 1}, spec=TENANTS)
    assert p.access_path == "key-prefix"
    assert p.native["operation"] == "Query" and "IndexName" not in p.native
    (condition,) = p.native["KeyConditionExpression"]
    assert condition == "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2"
    values = p.native["ExpressionAttributeValues"]
    # the range stays within the string type: "s" + value up to the next type tag
    assert (values[":v1"], values[":v2"]) == ({"S": "sm"}, {"S": "t"})
    # key fields never enter the FilterExpression of a table Query
    assert p.native["FilterExpression"] == "#n2 IN (:v3, :v4)"
    assert p.native["ExpressionAttributeNames"]["#n2"] == "n"


def test_a_table_query_filter_never_names_a_key_attribute() -> None:
    p = plan({"tenant": "t1", "$or": [{"id": "a"}, {"n": 1}], "m": 2}, spec=TENANTS)
    assert p.native["operation"] == "Query"
    names = p.native["ExpressionAttributeNames"]
    filter_text = p.native["FilterExpression"]
    assert [names[n] for n in names if n in filter_text] == ["m"]
    assert p.residual is not None and "$or" in repr(p.residual)


def test_equality_on_an_indexed_field_queries_its_gsi_and_the_overflow_partition() -> None:
    p = plan({"status": "open", "p": {"$gt": 1}}, sort=[("p", -1)])
    assert p.access_path == "index:ix_status"
    assert p.native["IndexName"] == "ix_status"
    assert p.native["KeyConditionExpression"] == [
        "#n0 = :v0 AND #n1 = :v1",
        "#n0 = :v2",
    ]
    values = p.native["ExpressionAttributeValues"]
    assert values[":v0"] == {"S": "s"} and values[":v1"] == {"S": "sopen"}
    assert values[":v2"] == {"S": "x"}  # arrays and other types holding the value
    assert p.client_sort and not p.sort_pushed and not p.limit_pushed


def test_a_range_on_a_single_field_index_is_a_range_key_condition_within_its_type() -> None:
    p = plan({"ts": {"$lt": datetime(2024, 1, 1, tzinfo=UTC)}})
    assert p.access_path == "index:ix_ts"
    first = p.native["KeyConditionExpression"][0]
    assert first == "#n0 = :v0 AND #n1 < :v1"
    assert p.native["ExpressionAttributeValues"][":v0"] == {"S": "t"}


def test_compound_index_needs_equality_on_its_leading_field() -> None:
    assert plan({"company": "acme", "priority": {"$gt": 3}}).access_path == (
        "index:ix_company_priority"
    )
    assert plan({"priority": {"$gt": 3}}).access_path == "scan"
    assert plan({"company": {"$gt": "a"}}).access_path == "scan"


def test_null_and_missing_conditions_never_use_a_sparse_gsi() -> None:
    assert plan({"status": None}).access_path == "scan"
    assert plan({"status": {"$exists": False}}).access_path == "scan"
    assert plan({"status": {"$in": ["a", None]}}).access_path == "scan"


def test_equality_beats_a_range_when_choosing_a_gsi() -> None:
    p = plan({"ts": {"$gt": 5}, "status": "open"})
    assert p.access_path == "index:ix_status"


def test_no_usable_key_or_index_is_a_scan() -> None:
    p = plan({"team": "red"})
    assert p.scan and p.native["operation"] == "Scan"


# --- filter expressions: placeholders, over-approximation, residual -------------------------------


def test_values_and_names_never_enter_the_expression() -> None:
    marker = "x) OR attribute_exists(#n0"
    p = plan({"team": marker, "odd name": {"$gt": 3}})
    text = p.native["FilterExpression"]
    assert marker not in text and "odd name" not in text
    assert {"S": marker} in p.native["ExpressionAttributeValues"].values()


def test_placeholders_are_reused_for_repeated_names_and_values() -> None:
    ph = Placeholders()
    expr = compile_filter(parse_filter({"$or": [{"a": 1}, {"a": 1.0}, {"b": 1}]}), SPEC, ph)
    assert expr == "#n0 IN (:v0, :v1) OR #n0 IN (:v0, :v1) OR #n1 IN (:v0, :v1)"
    assert ph.values == {":v0": {"N": "1"}, ":v1": {"S": OPAQUE}}


def test_an_or_inside_an_and_is_parenthesised_and_nothing_else() -> None:
    ph = Placeholders()
    expr = compile_filter(parse_filter({"a": {"$gte": 2}, "b": {"$exists": True}}), SPEC, ph)
    assert expr == "(#n0 >= :v0 OR #n0 = :v1) AND attribute_exists(#n1)"


def test_every_pushed_condition_is_approximate_and_the_whole_filter_is_residual() -> None:
    flt = {"team": "red", "n.x": {"$gte": 2}, "s": {"$regex": "^r"}}
    p = plan(flt)
    assert p.exact is None
    assert p.approximate == {"team": {"$eq": "red"}}
    assert p.residual == parse_filter(flt).to_mongo()
    assert "$regex" not in repr(p.native)


@pytest.mark.parametrize(
    "flt",
    [
        {"a": {"$regex": "x"}},
        {"a.b": 1},
        {"a": None},
        {"a": {"$ne": 1}},
        {"a": {"$size": 2}},
        {"a": [1, 2]},
        {"a": {"$in": list(range(100))}},
        {"a": {"$gt": True}},
        {"a": 1.7976931348623157e308},
        {"$nor": [{"a": 1}]},
    ],
)
def test_what_dynamodb_cannot_express_stays_out_of_the_filter_expression(flt: Any) -> None:
    p = plan(flt)
    assert "FilterExpression" not in p.native
    assert p.residual is not None


def test_a_date_range_is_bounded_to_tagged_dates() -> None:
    ph = Placeholders()
    when = datetime(2024, 1, 1, tzinfo=UTC)
    expr = compile_filter(parse_filter({"at": {"$gt": when}}), SPEC, ph)
    assert expr == "#n0 > :v0 AND begins_with(#n0, :v1) OR #n0 = :v2"
    assert ph.values[":v0"] == {"S": "\x00t2024-01-01T00:00:00.000Z"}


# --- codec ------------------------------------------------------------------


def test_sortable_numbers_sort_by_value_across_int_float_and_decimal() -> None:
    rng = random.Random(7)
    values: list[Any] = [0, -0.0, 1, 1.0, Decimal("1.00"), -1, 2**63 - 1, -(2**63), 5e-324]
    values += [1.7976931348623157e308, Decimal("-1E+30"), Decimal("0.001"), -0.5, 0.25]
    values += [rng.uniform(-1e6, 1e6) for _ in range(200)]
    values += [rng.randint(-(10**12), 10**12) for _ in range(200)]
    ordered = sorted(values, key=lambda v: Decimal(v))
    encoded = [sortable(v) for v in ordered]
    assert encoded == sorted(encoded)  # type: ignore[type-var]
    assert sortable(1) == sortable(1.0) == sortable(Decimal("1.00"))
    assert sortable(0) == sortable(-0.0)


def test_sortable_type_tags_follow_bson_order() -> None:
    n, s, t = sortable(10**18), sortable(""), sortable(datetime(1, 1, 1, tzinfo=UTC))
    assert n is not None and s is not None and t is not None
    assert n < s < t
    assert sortable(True) is None and sortable(None) is None and sortable([1]) is None


@pytest.mark.parametrize("key", ["a", "", 0, 7, -7, 2**63 - 1, -(2**63), 10**12])
def test_integer_and_string_keys_decode_from_their_sortable_form(key: Any) -> None:
    if key == "":
        return
    encoded = sortable(key)
    assert encoded is not None
    assert decode_key(encoded) == key and type(decode_key(encoded)) is type(key)


def test_the_body_keeps_what_dynamodb_numbers_and_maps_lose() -> None:
    doc = {
        "z": 1.0,
        "a": -0.0,
        "d": Decimal("1.10"),
        "big": 1.7976931348623157e308,
        "b": b"\x00",
        "t": datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
        "m": {"y": 1, "b": [None, ""]},
    }
    back = decode_body(encode_body(doc))
    assert back == doc and list(back) == list(doc) and list(back["m"]) == ["y", "b"]
    assert type(back["z"]) is float and str(back["d"]) == "1.10"


def test_native_shadow_values_and_the_opaque_marker() -> None:
    assert native(1.0) == {"N": "1"}  # the shadow only filters; the body keeps 1.0
    assert native("s") == {"S": "s"} and native(None) == {"NULL": True}
    assert native(1.7976931348623157e308) == {"S": OPAQUE}  # beyond DynamoDB's number range
    assert native(5e-324) == {"S": OPAQUE}
    assert native([1]) == {"S": OPAQUE} and native(b"") == {"S": OPAQUE}
    assert native("x" * 1000) == {"S": OPAQUE}
    assert dynamo_number(0.1) is None  # its exact binary value has 55 digits
    assert dynamo_number(2**63 - 1) == str(2**63 - 1)


def test_gsi_attributes_tag_the_type_and_send_other_types_to_overflow() -> None:
    layout = TableLayout.of(SPEC)
    attrs = index_attributes({"status": "open", "company": ["a"], "priority": 3}, layout)
    assert attrs["._h.ix_status"] == {"S": "s"} and attrs["._r.ix_status"] == {"S": "sopen"}
    assert attrs["._h.ix_company_priority"] == {"S": "x"}
    assert "._h.ix_ts" not in attrs  # a missing leading field: absent from the GSI (sparse)


# --- tables ------------------------------------------------------------------


def test_table_definition_has_string_keys_gsis_and_on_demand_billing() -> None:
    request = table_definition(SPEC, "app_alerts")
    assert request["BillingMode"] == "PAY_PER_REQUEST"
    assert request["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    names = [g["IndexName"] for g in request["GlobalSecondaryIndexes"]]
    assert names == ["ix_status", "ix_company_priority", "ix_ts"]
    assert all(a["AttributeType"] == "S" for a in request["AttributeDefinitions"])


def test_cloudformation_template_declares_tables_gsis_ttl_and_billing() -> None:
    template = cloudformation_template([SPEC, TENANTS], prefix="app_")
    resources = template["Resources"]
    assert set(resources) == {"AppAlertsTable", "AppTenantsTable"}
    alerts = resources["AppAlertsTable"]
    assert alerts["Type"] == "AWS::DynamoDB::Table"
    props = alerts["Properties"]
    assert props["TableName"] == "app_alerts"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "._ttl", "Enabled": True}
    assert len(props["GlobalSecondaryIndexes"]) == 3
    tenants = resources["AppTenantsTable"]["Properties"]
    assert [k["KeyType"] for k in tenants["KeySchema"]] == ["HASH", "RANGE"]
    assert "TimeToLiveSpecification" not in tenants


def test_plan_request_is_pure_and_repeatable() -> None:
    q = Query(parse_filter({"status": "open", "n": {"$lt": timedelta(days=1).days}}))
    assert plan_request(q, SPEC) == plan_request(q, SPEC)
