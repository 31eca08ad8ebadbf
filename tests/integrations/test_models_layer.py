"""The typed-collection layer's edges: transactions keep the model, keys and aliases map to the
model's fields, wrong models are refused up front, and a stored document that no longer fits
its model is a ValidationError naming the field, not a pydantic error."""

import enum
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

import asyncdb


class Account(pydantic.BaseModel):
    id: str | None = None
    owner: str
    balance: int = pydantic.Field(ge=0)


class Frozen(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    id: str | None = None
    n: int


class Aliased(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True)
    id: str | None = None
    user_name: str = pydantic.Field(alias="userName")


async def test_a_transaction_keeps_the_model_and_rolls_back(tmp_path: Path) -> None:
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'tx.db'}") as db:
        accounts = db.collection("accounts", model=Account, allow_scan=True)
        await accounts.insert_many(
            [Account(id="a", owner="ann", balance=10), {"id": "b", "owner": "bo", "balance": 0}]
        )
        with pytest.raises(asyncdb.ValidationError, match="balance"):
            async with db.transaction() as tx:
                in_tx = tx.collection("accounts")  # the model and spec it was opened with
                got = await in_tx.find_one({"id": "a"})
                assert isinstance(got, Account)
                assert [a.id for a in await in_tx.find({"owner": "bo"}).to_list()] == ["b"]
                await in_tx.update_one({"id": "b"}, {"$inc": {"balance": 5}})
                await in_tx.update_one({"id": "a"}, {"$set": {"balance": -5}})  # refused
        assert (await accounts.find_one({"id": "b"})) == Account(id="b", owner="bo", balance=0)


async def test_keys_aliases_and_wrong_models() -> None:
    async with asyncdb.connect("memory://") as db:
        with pytest.raises(asyncdb.ConfigurationError, match="key"):
            db.collection("accounts", key="number", model=Account)
        with pytest.raises(asyncdb.ConfigurationError, match="BaseModel"):
            db.collection("accounts", model=dict)
        frozen = db.collection("frozen", model=Frozen)
        item = Frozen(n=1)
        key = await frozen.insert_one(item)  # a frozen instance is not changed
        assert item.id is None and await frozen.find_one({"id": key}) == Frozen(id=key, n=1)
        aliased = db.collection("aliased", model=Aliased)
        await aliased.insert_one(Aliased(id="u", user_name="ann"))
        stored = await db.collection("aliased").find_one({"id": "u"})
        assert stored == {"id": "u", "userName": "ann"}  # stored under the alias
        assert (await aliased.find_one({"id": "u"})) == Aliased(id="u", user_name="ann")


async def test_a_stored_document_that_does_not_fit_is_a_validation_error() -> None:
    async with asyncdb.connect("memory://") as db:
        await db.collection("accounts").insert_one({"id": "x", "owner": "o", "balance": "lots"})
        accounts = db.collection("accounts", model=Account, allow_scan=True)
        with pytest.raises(asyncdb.ValidationError) as info:
            await accounts.find_one({"id": "x"})
        assert info.value.path == "balance" and "lots" not in str(info.value)
        with pytest.raises(asyncdb.ValidationError):
            await accounts.find({}).to_list()
        assert await accounts.find({}, projection=["owner"]).to_list() == [
            {"id": "x", "owner": "o"}
        ]


class Level(str, enum.Enum):  # noqa: UP042 (the usual pydantic pattern (str mixin, not StrEnum))
    LOW = "low"
    HIGH = "high"


class Job(pydantic.BaseModel):
    id: str | None = None
    owner: str
    attempts: int = pydantic.Field(ge=0)
    level: Level = Level.LOW


@pytest.fixture(params=["memory", "sqlite"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[asyncdb.Database]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'jobs.db'}"
    async with asyncdb.connect(url) as database:
        yield database


async def test_find_one_and_replace_and_delete_return_models(db: asyncdb.Database) -> None:
    jobs = db.collection("jobs", model=Job, allow_scan=True)
    await jobs.insert_many(
        [Job(id="a", owner="ann", attempts=0), Job(id="b", owner="bo", attempts=1)]
    )
    after = await jobs.find_one_and_replace({"id": "a"}, Job(owner="cy", attempts=2))
    assert after == Job(id="a", owner="cy", attempts=2)  # the key stays
    before = await jobs.find_one_and_replace(
        {"id": "a"},
        {"owner": "di", "attempts": 3, "level": Level.HIGH},
        return_document="before",
    )
    assert before == Job(id="a", owner="cy", attempts=2)
    projected = await jobs.find_one_and_replace(
        {"id": "a"}, Job(owner="ed", attempts=4), projection=["owner"]
    )
    assert projected == {"id": "a", "owner": "ed"}
    upserted = await jobs.find_one_and_replace(
        {"id": "n"}, Job(owner="new", attempts=0), upsert=True
    )
    assert upserted == Job(id="n", owner="new", attempts=0)
    # An invalid replacement is refused before any I/O: the document is unchanged.
    with pytest.raises(asyncdb.ValidationError) as info:
        await jobs.find_one_and_replace({"id": "b"}, {"owner": "bo", "attempts": -1})
    assert info.value.path == "attempts"
    with pytest.raises(asyncdb.ValidationError, match="owner"):
        await jobs.find_one_and_replace({"id": "b"}, {"attempts": 1})
    assert await jobs.find_one({"id": "b"}) == Job(id="b", owner="bo", attempts=1)
    # find_one_and_delete: a model, a dict when projected, None when nothing matched.
    await jobs.update_one({"id": "b"}, {"$set": {"level": Level.HIGH}})
    gone = await jobs.find_one_and_delete({"level": Level.HIGH}, sort=[("attempts", -1)])
    assert gone == Job(id="b", owner="bo", attempts=1, level=Level.HIGH)
    assert await jobs.find_one_and_delete({"id": "n"}, projection=["owner"]) == {
        "id": "n",
        "owner": "new",
    }
    assert await jobs.find_one_and_delete({"id": "b"}) is None
    assert [j.id for j in await jobs.find({}).to_list()] == ["a"]


async def test_bulk_write_validates_every_operation_before_any_io(db: asyncdb.Database) -> None:
    jobs = db.collection("jobs", model=Job, allow_scan=True)
    bad_ops: list[tuple[Any, str]] = [
        (asyncdb.InsertOne({"owner": "x", "attempts": "many"}), "attempts"),
        (asyncdb.ReplaceOne({"id": "a"}, {"attempts": 1}), "owner"),
        (asyncdb.UpdateOne({"id": "a"}, {"$set": {"level": "urgent"}}), "level"),
        (asyncdb.UpdateMany({}, {"$set": {"attempts": -1}}), "attempts"),
        (asyncdb.UpdateMany({}, {"$unset": {"owner": ""}}), "owner"),
    ]
    for bad, path in bad_ops:
        ops = [asyncdb.InsertOne(Job(id="a", owner="ann", attempts=0)), bad]
        with pytest.raises(asyncdb.ValidationError) as info:
            await jobs.bulk_write(ops)
        assert info.value.path == path and str(info.value).startswith("bulk_write operation 1:")
    assert await jobs.count_documents({}) == 0  # the valid first insert never ran
    result = await jobs.bulk_write(
        [
            asyncdb.InsertOne(Job(id="a", owner="ann", attempts=0)),
            asyncdb.InsertOne({"id": "b", "owner": "bo", "attempts": 1}),
            asyncdb.ReplaceOne({"id": "b"}, Job(owner="bea", attempts=5, level=Level.HIGH)),
            asyncdb.UpdateOne({"id": "a"}, {"$set": {"level": Level.HIGH}}),
            asyncdb.UpdateMany({"level": Level.HIGH}, {"$inc": {"attempts": 1}}),
            asyncdb.DeleteOne({"level": Level.LOW}),
        ]
    )
    assert (result.inserted_count, result.modified_count, result.deleted_count) == (2, 4, 0)
    assert await jobs.find({}, sort=[("id", 1)]).to_list() == [
        Job(id="a", owner="ann", attempts=1, level=Level.HIGH),
        Job(id="b", owner="bea", attempts=6, level=Level.HIGH),
    ]


async def test_unordered_insert_many_aggregate_distinct_and_the_catalog(
    db: asyncdb.Database,
) -> None:
    jobs = db.collection("jobs", model=Job, allow_scan=True)
    new = [Job(owner="ann", attempts=0), Job(owner="bo", attempts=1, level=Level.HIGH)]
    keys = await jobs.insert_many(new, ordered=False)
    assert [j.id for j in new] == keys  # generated keys set on the instances
    with pytest.raises(asyncdb.ValidationError, match="attempts"):
        await jobs.insert_many(
            [Job(id="c", owner="cy", attempts=0), {"owner": "x", "attempts": -2}], ordered=False
        )
    with pytest.raises(asyncdb.BulkWriteError) as failed:
        await jobs.insert_many(
            [Job(id=keys[0], owner="dup", attempts=0), Job(id="d", owner="di", attempts=3)],
            ordered=False,
        )
    assert [i for i, _ in failed.value.errors] == [0]
    assert sorted(await jobs.distinct("owner")) == ["ann", "bo", "di"]
    assert await jobs.distinct("level", {"attempts": {"$gte": 1}}) == ["high", "low"]
    rows = await jobs.aggregate(
        [{"$match": {"level": Level.HIGH}}, {"$group": {"_id": "$level", "n": {"$sum": 1}}}]
    ).to_list()
    assert rows == [{"_id": "high", "n": 1}]  # dicts: a pipeline reshapes documents
    await db.collection("plain").insert_one({"id": "p"})
    if db.backend == "sqlite":  # the catalog records the model's name
        catalog = {
            json.loads(r["doc"])["name"]: json.loads(r["doc"])["model"]
            for r in await db.native("SELECT doc FROM _asyncdb_catalog")
        }
        assert catalog == {"jobs": f"{__name__}.Job", "plain": None}
