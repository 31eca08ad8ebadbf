"""PostgreSQL's streamed insert_many: a batch of 2048 documents or more, on a collection already
set up and outside a transaction, is one COPY fed while its documents are validated. It must
store exactly what the general path stores (every column of every row: the key, the JSON text,
the tagged flag and the sort-key columns of declared indexes), return the same keys and
documents, and refuse a bad batch with the general path's error, nothing written.

The general path here is the same batch inserted inside a transaction (validated whole before
any I/O, then one COPY in a savepoint). The documents are drawn by Hypothesis up front (the
conformance strategies: nulls, nested documents and arrays, Decimals, bytes, dates, floats next
to ints) plus values the encoders treat specially.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from conformance.strategies import bodies
from hypothesis import HealthCheck, Phase, given, settings

import asyncdb
from asyncdb._streamed_insert import CHUNK, streams

Doc = dict[str, Any]
BATCH = 5000  # five chunks: the first validated before any I/O, the others while COPY sends


def _draw_bodies(count: int) -> list[Doc]:
    drawn: list[Doc] = []

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bodies)
    def collect(body: Doc) -> None:
        drawn.append(body)

    collect()
    return drawn


SPECIAL: list[Doc] = [
    {"f": -0.0, "big": 1e16, "huge": 2.0**70, "tiny": 5e-324},  # float texts jsonb must keep
    {"t": "é\U0001f600", "q": 'a"b\\c', "nl": "x\ny", "tag": {"$date": "no"}.get("$date")},
    {"d": datetime(2024, 2, 29, 12, 0, 0, 123000, tzinfo=UTC), "m": Decimal("-1.50")},
    {"b": b"\x00\xff", "nested": {"a": [1, {"b": [True, None]}], "s": "$x"}},
    {"a": [[1, 2], [], [{"x": 1.5}]], "n": 2**63 - 1, "neg": -(2**63)},
    {},
]
BODIES = _draw_bodies(80) + SPECIAL


def batch(n: int = BATCH, prefix: str = "s") -> list[Doc]:
    return [{"id": f"{prefix}{i:05d}", **BODIES[i % len(BODIES)]} for i in range(n)]


async def stored_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """Every column of every row, in key order (the generated jsonb left out: it derives from
    ``body``)."""
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        columns = [
            r[0]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                "AND column_name <> 'doc' ORDER BY column_name",
                table,
            )
        ]
        cols = ", ".join(f'"{c}"' for c in columns)
        rows = await conn.fetch(f'SELECT {cols} FROM "{table}" ORDER BY "k0"')
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


async def general_insert(db: asyncdb.Database, name: str, docs: list[Doc], **spec: Any) -> Any:
    async with db.transaction() as tx:
        return await tx.collection(name, **spec).insert_many(docs)


@pytest.mark.parametrize("indexes", [[], ["a", "s", "n.x"]])
async def test_a_streamed_insert_stores_what_the_general_path_stores(
    postgres_url: str, indexes: list[str]
) -> None:
    docs = batch()
    async with asyncdb.connect(postgres_url) as db:
        streamed = db.collection("streamed", indexes=indexes, allow_scan=True)
        general = db.collection("general", indexes=indexes, allow_scan=True)
        await streamed.count_documents({})  # set up: large batches now stream
        assert streams(streamed, docs)
        keys = await streamed.insert_many(docs)
        assert keys == [d["id"] for d in docs]
        assert await general_insert(db, "general", docs, indexes=indexes) == keys
        rows = await stored_rows(postgres_url, "streamed")
        assert len(rows) == BATCH
        assert rows == await stored_rows(postgres_url, "general")
        found = await streamed.find({}, sort=[("id", 1)]).to_list()
        assert found == await general.find({}, sort=[("id", 1)]).to_list()
        assert len(found) == BATCH
        for i in (0, CHUNK - 1, CHUNK, BATCH - 1):  # across the chunk seams
            assert await streamed.find_one({"id": docs[i]["id"]}) == found[i]
        if indexes:  # the sort-key columns serve the same sorted reads
            order = [("a", -1), ("id", 1)]
            assert [d["id"] for d in await streamed.find({}, sort=order).to_list()] == [
                d["id"] for d in await general.find({}, sort=order).to_list()
            ]


async def test_a_streamed_insert_generates_ids_as_the_general_path_does(postgres_url: str) -> None:
    docs = [dict(BODIES[i % len(BODIES)]) for i in range(3 * CHUNK)]
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("items", allow_scan=True)
        await items.count_documents({})
        keys = await items.insert_many(docs)
        assert len(set(keys)) == len(docs)
        assert all("id" not in d for d in docs)  # the caller's documents are left as they were
        stored = {d["id"]: d for d in await items.find({}).to_list()}
        assert sorted(stored) == sorted(keys)
        for key, doc in zip(keys[:: CHUNK // 2], docs[:: CHUNK // 2], strict=True):
            copy = db.collection("one", allow_scan=True)
            await copy.insert_one({"id": key, **doc})  # the general path, the same id
            assert stored[key] == await copy.find_one({"id": key})
            await copy.delete_one({"id": key})


def _bad(at: dict[int, Doc], n: int = BATCH) -> list[Doc]:
    docs = batch(n)
    for i, doc in at.items():
        docs[i] = doc
    return docs


INVALID = {"id": "bad", "$x": 1}  # a field name starting with "$"
NUL = {"id": "nul", "s": "a\x00b"}  # refused by the PostgreSQL encoding, not by validation
BAD_BATCHES = {
    "invalid in the first chunk": _bad({10: INVALID}),
    "invalid in a later chunk": _bad({3000: INVALID}),
    "invalid in the last document": _bad({BATCH - 1: {"id": "z", "v": float("nan")}}),
    "a key twice": _bad({4000: {"id": "s00040", "v": 1}}),
    "a key twice, then an invalid document": _bad({2500: {"id": "s00001"}, 4900: INVALID}),
    "a key twice, the first named": _bad({3000: {"id": "s00007"}, 3001: {"id": "s00003"}}),
    "U+0000": _bad({4000: NUL}),
    "U+0000, then an invalid document": _bad({100: NUL, 4500: INVALID}),
    "a key already stored": batch(),  # s03500 is stored beforehand
    "a bad key": _bad({2100: {"id": ""}}),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
async def test_a_refused_streamed_insert_raises_the_general_error_and_writes_nothing(
    postgres_url: str, case: str
) -> None:
    docs = BAD_BATCHES[case]
    async with asyncdb.connect(f"{postgres_url}?max_size=2") as db:
        streamed = db.collection("streamed", allow_scan=True)
        await streamed.insert_one({"id": "s03500", "v": "before"})
        await db.collection("general", allow_scan=True).insert_one({"id": "s03500", "v": "before"})
        assert streams(streamed, docs)
        with pytest.raises(asyncdb.AsyncDBError) as general:
            await general_insert(db, "general", docs)
        with pytest.raises(asyncdb.AsyncDBError) as got:
            await streamed.insert_many(docs)
        want = general.value
        assert type(got.value) is type(want), got.value
        assert str(got.value) == str(want).replace("general", "streamed")  # the table's name
        assert getattr(got.value, "path", None) == getattr(want, "path", None)
        assert getattr(got.value, "key", None) == getattr(want, "key", None)
        assert await streamed.find({}).to_list() == [{"id": "s03500", "v": "before"}]
        # the connections are usable afterwards
        await streamed.delete_one({"id": "s03500"})
        good = batch()
        assert await streamed.insert_many(good) == [d["id"] for d in good]
        assert await streamed.count_documents({}) == BATCH
