"""bulk_write on the stores that apply a run of operations in one write section (memory,
SQLite, PostgreSQL): inserts, updates and deletes by key read in one query, applied in process
and written back in batches. When a batch write is refused by a unique index (rolled back),
the run is applied one operation at a time, each failure its own; a deleted document's unique
value is free for an insert later in the same run; runs longer than one section's worth give
the same counts as shorter ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import asyncdb


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bulk.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _ops() -> list[object]:
    return [
        asyncdb.DeleteOne({"id": "a"}),  # frees "x@"
        asyncdb.InsertOne({"id": "n", "email": "x@"}),
        asyncdb.InsertOne({"id": "m", "email": "y@"}),  # 2: "y@" belongs to b
        asyncdb.UpdateOne({"id": "c"}, {"$set": {"email": "z@"}}),
        asyncdb.InsertOne({"id": "p", "email": "p@"}),
    ]


async def _seeded(db: asyncdb.Database) -> asyncdb.Collection:
    users = db.collection("users", indexes=[{"fields": ["email"], "unique": True}])
    await users.insert_many(
        [{"id": "a", "email": "x@"}, {"id": "b", "email": "y@"}, {"id": "c", "email": "c@"}]
    )
    return users


async def _emails(users: asyncdb.Collection) -> dict[str, str]:
    return {d["id"]: d["email"] for d in await users.find({}, allow_scan=True).to_list()}


async def test_a_unique_index_refusing_a_batch_fails_only_its_operation(url: str) -> None:
    async with asyncdb.connect(url) as db:
        users = await _seeded(db)
        with pytest.raises(asyncdb.BulkWriteError) as caught:
            await users.bulk_write(_ops(), ordered=False)
        assert [i for i, _ in caught.value.errors] == [2]
        assert isinstance(caught.value.errors[0][1], asyncdb.DuplicateKey)
        assert caught.value.result == asyncdb.BulkWriteResult(
            inserted_count=2, matched_count=1, modified_count=1, deleted_count=1
        )
        assert await _emails(users) == {"b": "y@", "c": "z@", "n": "x@", "p": "p@"}
        await users.drop()
        users = await _seeded(db)
        with pytest.raises(asyncdb.BulkWriteError) as caught:
            await users.bulk_write(_ops())  # ordered: stops at 2
        assert [i for i, _ in caught.value.errors] == [2]
        assert caught.value.result == asyncdb.BulkWriteResult(inserted_count=1, deleted_count=1)
        assert await _emails(users) == {"b": "y@", "c": "c@", "n": "x@"}


async def test_runs_longer_than_one_section_count_every_operation(url: str) -> None:
    async with asyncdb.connect(url) as db:
        items = db.collection("items", allow_scan=True)
        await items.insert_many([{"id": f"k{i:05d}", "n": i} for i in range(1500)])
        ops: list[object] = []
        for i in range(1500):
            ops.append(asyncdb.UpdateOne({"id": f"k{i:05d}"}, {"$inc": {"n": 1}}))
            ops.append(asyncdb.InsertOne({"id": f"new{i:05d}", "n": -i}))
            if i % 3 == 0:
                ops.append(asyncdb.DeleteOne({"id": f"k{i:05d}"}))
                ops.append(asyncdb.InsertOne({"id": f"k{i:05d}", "n": 0}))  # the key again
        result = await items.bulk_write(ops)
        assert result == asyncdb.BulkWriteResult(
            inserted_count=2000, matched_count=1500, modified_count=1500, deleted_count=500
        )
        assert await items.count_documents({}) == 3000
        assert await items.find_one({"id": "k00003"}) == {"id": "k00003", "n": 0}
        assert await items.find_one({"id": "k00004"}) == {"id": "k00004", "n": 5}
        assert await items.find_one({"id": "new01499"}) == {"id": "new01499", "n": -1499}


async def test_a_failure_inside_a_run_of_flat_updates_names_its_index(url: str) -> None:
    # ``$set`` by key runs without the general update applier: a failing operation in the
    # middle of such a run still stops an ordered write at its index, with exactly what the
    # operations before it applied, and an unordered one applies all the others.
    def ops() -> list[object]:
        out: list[object] = []
        for i in range(40):
            out.append(asyncdb.UpdateOne({"id": f"k{i:02d}"}, {"$set": {"s": f"v{i % 3}"}}))
        out[17] = asyncdb.UpdateOne({"id": "k17"}, {"$inc": {"s": 1}})  # s holds a string
        out[25] = asyncdb.InsertOne({"id": "k03", "s": "dup"})  # the key exists
        out.append(asyncdb.DeleteOne({"id": "k39"}))
        return out

    async with asyncdb.connect(url) as db:
        for ordered in (True, False):
            items = db.collection(f"flat_{ordered}", allow_scan=True)
            await items.insert_many([{"id": f"k{i:02d}", "s": "v0", "n": i} for i in range(40)])
            with pytest.raises(asyncdb.BulkWriteError) as caught:
                await items.bulk_write(ops(), ordered=ordered)
            errors = [(i, type(e).__name__) for i, e in caught.value.errors]
            docs = {d["id"]: d for d in await items.find({}).to_list()}
            # k00..k16 set to v0, v1, v2, ...: those whose value was v0 already change nothing
            changed_before = sum(1 for i in range(17) if i % 3)
            if ordered:
                assert errors == [(17, "UpdateError")]
                assert caught.value.result == asyncdb.BulkWriteResult(
                    matched_count=17, modified_count=changed_before
                )
                assert docs["k16"] == {"id": "k16", "s": "v1", "n": 16}
                assert docs["k18"] == {"id": "k18", "s": "v0", "n": 18}
                assert len(docs) == 40
            else:
                assert errors == [(17, "UpdateError"), (25, "DuplicateKey")]
                assert caught.value.result == asyncdb.BulkWriteResult(
                    matched_count=38,
                    modified_count=sum(1 for i in range(40) if i % 3 and i not in (17, 25)),
                    deleted_count=1,
                )
                assert docs["k17"] == {"id": "k17", "s": "v0", "n": 17}
                assert docs["k38"] == {"id": "k38", "s": "v2", "n": 38}
                assert docs["k03"] == {"id": "k03", "s": "v0", "n": 3}
                assert "k39" not in docs
