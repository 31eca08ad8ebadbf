"""The one-statement update of PostgreSQL (``$set``/``$inc``/``$unset`` of top-level fields,
rewritten in SQL) against the general path: for random documents and updates, the stored text
is the very text the general path writes (``encode_doc`` of the updated document: fields in the
same order, each value's text as orjson writes it), and the documents, the UpdateResult and
every error equal the memory backend's. An ``$inc`` SQL cannot do exactly (a float, a Decimal,
a string or null stored, a sum beyond 64 bits) writes nothing and runs the general path."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import asyncdb
from asyncdb.backends.postgres.codec import encode_doc

NAMES = ["n", "m", "s", 'q"x', "b\\s", "é", "c\n", "\x01", "\u2028"]
INT64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62)]),
)
STORED = st.one_of(
    INT64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, -0.0, 1.0, 5e-324, 1e16, 2.0**62, 1234.5678]),  # sums SQL would round
    st.text(st.characters(exclude_characters="\x00"), max_size=4),
    st.booleans(),
    st.none(),
    st.sampled_from([Decimal("1.50"), datetime(2024, 1, 1, tzinfo=UTC), [1, "a"], {"x": 1}]),
)
SET_VALUE = st.one_of(
    INT64, st.text(st.characters(exclude_characters="\x00"), max_size=4), st.booleans(), st.none()
)
ACTION = st.one_of(
    st.tuples(st.just("$inc"), INT64),
    st.tuples(st.just("$set"), SET_VALUE),
    st.tuples(st.just("$unset"), st.just("")),
)
DOC = st.dictionaries(st.sampled_from(NAMES), STORED, max_size=5)


def _update(actions: dict[str, tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, (op, value) in actions.items():
        out.setdefault(op, {})[name] = value
    return out


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    docs = draw(st.lists(DOC, min_size=1, max_size=3))
    # mostly the fields the first document holds, so updates meet stored values of every type
    names = st.sampled_from(sorted(docs[0])) if docs[0] else st.sampled_from(NAMES)
    names = st.one_of(names, names, st.sampled_from(NAMES))
    actions = draw(st.dictionaries(names, ACTION, min_size=1, max_size=3))
    return docs, _update(actions), draw(st.booleans())  # update_many, else update_one


CASE = _cases()
_tables = itertools.count()


async def _outcome(coll: asyncdb.Collection, many: bool, update: Any) -> Any:
    try:
        if many:
            res = await coll.update_many({"id": {"$in": ["d0", "d1", "d2"]}}, update)
        else:
            res = await coll.update_one({"id": "d0"}, update)
    except asyncdb.AsyncDBError as exc:
        return type(exc).__name__, str(exc)
    return res.matched_count, res.modified_count, res.upserted_id


async def _check(pg: asyncdb.Database, case: Any) -> None:
    docs, update, many = case
    docs = [{"id": f"d{i}", **d} for i, d in enumerate(docs)]
    name = f"native_upd_{next(_tables)}"
    async with asyncdb.connect("memory://") as mem:
        want_coll = mem.collection(name, allow_scan=True)
        await want_coll.insert_many(docs)
        want = await _outcome(want_coll, many, update)
        want_docs = await want_coll.find({}, sort=[("id", 1)]).to_list()
    coll = pg.collection(name, allow_scan=True)
    await coll.insert_many(docs)
    got = await _outcome(coll, many, update)
    assert got == want, update
    got_docs = await coll.find({}, sort=[("id", 1)]).to_list()
    assert repr(got_docs) == repr(want_docs), update  # values, types and field order
    rows = await pg.native(f'SELECT body FROM "{name}"')
    stored = sorted((r["body"] for r in rows), key=lambda text: orjson.loads(text)["id"])
    assert stored == [encode_doc(d)[0] for d in want_docs], update  # the general path's text
    await coll.drop()


def test_one_statement_updates_write_what_the_general_path_writes(postgres_url: str) -> None:
    async def connect() -> asyncdb.Database:
        return await asyncdb.connect(postgres_url)

    with asyncio.Runner() as runner:
        pg = runner.run(connect())
        try:

            @settings(
                max_examples=200,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(CASE)
            @example(([{"n": 1e16}], {"$inc": {"n": 1}}, False))  # a float sum SQL would not round
            @example(([{"n": 0.1}], {"$inc": {"n": 3}}, True))
            @example(([{"n": 2**63 - 1}, {"n": 1}], {"$inc": {"n": 1}}, True))  # one overflows
            @example(([{"n": Decimal("1.50")}], {"$inc": {"n": 1}}, False))
            def body(case: Any) -> None:
                runner.run(_check(pg, case))

            body()
        finally:
            runner.run(pg.close())


async def test_an_inc_by_key_is_one_statement_and_the_rest_falls_back(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncdb.backends.postgres.store import PostgresCollection

    general: list[Any] = []
    replace_docs = PostgresCollection.replace_docs

    async def spy(self: Any, pairs: Any, session: Any) -> None:
        general.append([new for _old, new in pairs])
        await replace_docs(self, pairs, session)

    monkeypatch.setattr(PostgresCollection, "replace_docs", spy)
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("counters", indexes=["k"])
        await items.insert_many(
            [
                {"id": "a", "n": 1, "k": 1, "s": "x"},
                {"id": "b", "n": 2**63 - 1, "f": 1.5, "t": "x", "z": None},
            ]
        )
        res = await items.update_one({"id": "a"}, {"$inc": {"n": 41, "new": -2}})
        assert (res.matched_count, res.modified_count) == (1, 1)
        res = await items.update_one({"id": "a"}, {"$inc": {"n": 0}})
        assert (res.matched_count, res.modified_count) == (1, 0)
        want = {"id": "a", "n": 42, "k": 1, "s": "x", "new": -2}
        assert await items.find_one({"id": "a"}) == want
        assert general == []  # each was one UPDATE statement, no read-modify-write
        res = await items.update_one({"id": "b"}, {"$inc": {"f": 1}})  # a float: in Python
        assert (res.matched_count, res.modified_count) == (1, 1)
        assert general == [[{"id": "b", "n": 2**63 - 1, "f": 2.5, "t": "x", "z": None}]]
        for update, message in (
            ({"$inc": {"n": 1}}, "overflows a 64-bit integer"),
            ({"$inc": {"t": 1}}, "needs a number, the field holds string"),
            ({"$inc": {"z": 1}}, "needs a number, the field holds null"),
        ):
            with pytest.raises(asyncdb.UpdateError, match=message):
                await items.update_one({"id": "b"}, update)
        res = await items.update_one({"id": "a"}, {"$inc": {"k": 1}})  # an indexed field
        assert (res.matched_count, res.modified_count) == (1, 1)
        assert await items.find({"k": 2}).to_list() == [
            {"id": "a", "n": 42, "k": 2, "s": "x", "new": -2}
        ]
