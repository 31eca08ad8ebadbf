"""DESIGN §9: typed collections. Model instances of generated pydantic models round-trip
identically on every backend (Decimal, aware datetimes, UUID, enums, bytes, nested models,
lists, optionals), through a point read, find, find_page and find_one_and_update; a projected
read returns dicts; invalid documents are a ValidationError naming the field before any I/O.

The examples are drawn by Hypothesis up front (no I/O inside ``@given``) and then written and
read over the conformance ``db`` fixture; ASYNCDB_TEST_MODEL_EXAMPLES sets how many (default 6
per backend: each one is a new model with its own fields).
"""

from __future__ import annotations

import enum
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import asyncdb

from .support import difference

EXAMPLES = int(os.environ.get("ASYNCDB_TEST_MODEL_EXAMPLES", "6"))


class Severity(str, enum.Enum):  # noqa: UP042 (the usual pydantic pattern (str mixin, not StrEnum))
    LOW = "low"
    HIGH = "high"


class Level(enum.IntEnum):
    ONE = 1
    TWO = 2


class Point(pydantic.BaseModel):
    x: int
    label: str = ""


def _millis(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=7))]
)
# kind -> (annotation, strategy of values)
SCALARS: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "int": (int, st.integers(-(2**63), 2**63 - 1)),
    "float": (float, st.floats(allow_nan=False, allow_infinity=False)),
    "decimal": (
        Decimal,
        st.decimals(
            allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20
        ),
    ),
    "str": (str, st.text(max_size=20)),
    "bool": (bool, st.booleans()),
    "bytes": (bytes, st.binary(max_size=16)),
    "datetime": (
        pydantic.AwareDatetime,
        st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=_ZONES).map(_millis),
    ),
    "uuid": (uuid.UUID, st.uuids()),
    "severity": (Severity, st.sampled_from(Severity)),
    "level": (Level, st.sampled_from(Level)),
    "point": (Point, st.builds(Point, x=st.integers(-1000, 1000), label=st.text(max_size=5))),
}


def _field(kind: str, shape: str) -> tuple[Any, st.SearchStrategy[Any]]:
    annotation, values = SCALARS[kind]
    if shape == "list":
        return list[annotation], st.lists(values, max_size=3)  # type: ignore[valid-type]
    if shape == "optional":
        return annotation | None, st.none() | values
    return annotation, values


_MODELS: dict[tuple[tuple[str, str], ...], type[pydantic.BaseModel]] = {}


@st.composite
def model_cases(draw: st.DrawFn) -> tuple[type[pydantic.BaseModel], list[pydantic.BaseModel]]:
    """A generated model (two to six fields of the kinds above, each plain, a list or an
    optional) and two or three instances of it."""
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(sorted(SCALARS)), st.sampled_from(["plain", "list", "optional"])
            ),
            min_size=2,
            max_size=6,
        )
    )
    signature = tuple(fields)
    specs = [_field(kind, shape) for kind, shape in fields]
    model = _MODELS.get(signature)
    if model is None:
        definitions: dict[str, Any] = {"id": (str | None, None)}
        definitions.update({f"f{i}": (ann, ...) for i, (ann, _) in enumerate(specs)})
        model = pydantic.create_model(f"Generated{len(_MODELS)}", **definitions)
        _MODELS[signature] = model
    n = draw(st.integers(2, 3))
    instances = [
        model(**{f"f{i}": draw(values) for i, (_, values) in enumerate(specs)}) for _ in range(n)
    ]
    return model, instances


def draw_cases(count: int) -> list[tuple[type[pydantic.BaseModel], list[pydantic.BaseModel]]]:
    cases: list[Any] = []

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(model_cases())
    def collect(case: Any) -> None:
        cases.append(case)

    collect()
    return cases


CASES = draw_cases(EXAMPLES)


def _utc(value: Any) -> Any:
    """The value as a backend returns it: datetimes in UTC (the same instant)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc(v) for v in value]
    return value


def assert_identical(expected: pydantic.BaseModel, got: Any) -> None:
    assert type(got) is type(expected), f"expected a {type(expected).__name__}, got {got!r}"
    assert got == expected
    diff = difference(_utc(expected.model_dump()), got.model_dump())
    assert diff is None, f"{type(expected).__name__} did not round-trip: {diff}"


async def test_generated_models_round_trip_identically(db: asyncdb.Database) -> None:
    for n, (model, instances) in enumerate(CASES):
        coll = db.collection(f"models_{n}", model=model, allow_scan=True)
        keys = await coll.insert_many(instances[:-1])
        key = await coll.insert_one(instances[-1])
        keys.append(key)
        assert [i.id for i in instances] == keys  # generated keys are set on the instances
        by_key = dict(zip(keys, instances, strict=True))
        for k, instance in by_key.items():
            assert_identical(instance, await coll.find_one({"id": k}))
        listed = await coll.find({}, sort=[("id", 1)]).to_list()
        assert [d.id for d in listed] == sorted(keys)
        for got in listed:
            assert_identical(by_key[got.id], got)
        page = await coll.find_page({}, sort=[("id", 1)], limit=len(keys))
        assert [d.id for d in page.items] == sorted(keys)
        streamed = [d async for d in coll.find({"id": key})]
        assert_identical(instances[-1], streamed[0])
        # A write of one field through the model's type: the returned document is a model.
        new_value = instances[0].f0  # type: ignore[attr-defined]
        after = await coll.find_one_and_update({"id": key}, {"$set": {"f0": new_value}})
        expected = instances[-1].model_copy(update={"f0": new_value})
        assert_identical(expected, after)
        projected = await coll.find({"id": key}, projection=["f1"]).to_list()
        assert projected == [{"id": key, "f1": projected[0]["f1"]}]
        assert isinstance(projected[0], dict)


class Alert(pydantic.BaseModel):
    id: str | None = None
    company_id: str
    priority: int
    severity: Severity = Severity.LOW
    created_at: pydantic.AwareDatetime
    tags: list[str] = []


async def test_invalid_documents_raise_validation_error_naming_the_field(
    db: asyncdb.Database,
) -> None:
    alerts = db.collection("alerts", model=Alert, allow_scan=True)
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    bad: list[tuple[Any, str]] = [
        ({"company_id": "c1", "priority": "high", "created_at": when}, "priority"),
        ({"company_id": "c1", "priority": 1}, "created_at"),
        ({"company_id": "c1", "priority": 1, "created_at": when, "severity": "urgent"}, "severity"),
        ({"company_id": "c1", "priority": 1, "created_at": when, "tags": [1]}, "tags.0"),
    ]
    for doc, path in bad:
        with pytest.raises(asyncdb.ValidationError) as info:
            await alerts.insert_one(doc)
        assert info.value.path == path
        assert isinstance(info.value, asyncdb.QueryError)
    secret = "do-not-echo-4242"
    with pytest.raises(asyncdb.ValidationError) as info:
        await alerts.insert_one({"company_id": "c1", "priority": secret, "created_at": when})
    assert secret not in str(info.value)
    with pytest.raises(asyncdb.ValidationError, match="priority"):
        await alerts.update_one({"id": "a"}, {"$set": {"priority": "x"}})
    with pytest.raises(asyncdb.ValidationError, match="company_id"):
        await alerts.update_many({}, {"$unset": {"company_id": ""}})
    with pytest.raises(asyncdb.ValidationError, match="created_at"):
        await alerts.replace_one({"id": "a"}, {"company_id": "c1", "priority": 2})
    assert await alerts.count_documents({}) == 0  # nothing reached the store
    # A valid dict and a valid instance are both accepted; enum members work in filters.
    await alerts.insert_one({"id": "a", "company_id": "c1", "priority": 2, "created_at": when})
    await alerts.insert_one(
        Alert(id="b", company_id="c1", priority=3, created_at=when, severity=Severity.HIGH)
    )
    high = await alerts.find({"severity": Severity.HIGH}).to_list()
    assert [a.id for a in high] == ["b"] and high[0].severity is Severity.HIGH
    # The same collection without the model sees the stored dicts.
    plain = await db.collection("alerts", allow_scan=True).find_one({"id": "b"})
    assert plain is not None and plain["severity"] == "high"


async def test_replace_delete_and_bulk_write_round_trip_models(db: asyncdb.Database) -> None:
    alerts = db.collection("alerts", model=Alert, allow_scan=True)
    when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    first = Alert(id="a", company_id="c1", priority=1, created_at=when, tags=["x"])
    result = await alerts.bulk_write(
        [
            asyncdb.InsertOne(first),
            asyncdb.InsertOne({"id": "b", "company_id": "c2", "priority": 2, "created_at": when}),
            asyncdb.ReplaceOne(
                {"id": "b"}, Alert(company_id="c3", priority=3, created_at=when, tags=["y", "z"])
            ),
            asyncdb.UpdateOne({"id": "a"}, {"$set": {"severity": Severity.HIGH}}),
        ]
    )
    assert (result.inserted_count, result.matched_count, result.modified_count) == (2, 2, 2)
    assert_identical(
        first.model_copy(update={"severity": Severity.HIGH}), await alerts.find_one({"id": "a"})
    )
    replacement = Alert(company_id="c4", priority=4, created_at=when, severity=Severity.HIGH)
    before = await alerts.find_one_and_replace({"id": "b"}, replacement, return_document="before")
    assert_identical(
        Alert(id="b", company_id="c3", priority=3, created_at=when, tags=["y", "z"]), before
    )
    assert await alerts.find_one_and_replace({"id": "b"}, replacement, projection=["priority"]) == {
        "id": "b",
        "priority": 4,
    }
    gone = await alerts.find_one_and_delete({"id": "b"})
    assert_identical(replacement.model_copy(update={"id": "b"}), gone)
    assert await alerts.find_one({"id": "b"}) is None
    with pytest.raises(asyncdb.ValidationError, match="bulk_write operation 0"):
        await alerts.bulk_write([asyncdb.ReplaceOne({"id": "a"}, {"priority": 9})])
    assert (await alerts.find_one({"id": "a"})) == first.model_copy(
        update={"severity": Severity.HIGH}
    )
