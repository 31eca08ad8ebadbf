"""The typed-collection layer's edges: transactions keep the model, keys and aliases map to the
model's fields, wrong models are refused up front, and a stored document that no longer fits
its model is a ValidationError naming the field, not a pydantic error."""

from pathlib import Path

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
        accounts = db.collection("accounts", model=Account)
        await accounts.insert_many(
            [Account(id="a", owner="ann", balance=10), {"id": "b", "owner": "bo", "balance": 0}]
        )
        with pytest.raises(asyncdb.ValidationError, match="balance"):
            async with db.transaction() as tx:
                in_tx = tx.collection("accounts")  # the model it was opened with
                got = await in_tx.find_one({"id": "a"})
                assert isinstance(got, Account)
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
