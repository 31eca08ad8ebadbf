"""Hostile input on every backend: each outcome is the reference evaluator's answer or a typed
asyncdb error raised before any I/O, never a driver exception, a hang or a wrong answer.

Covers runaway regexes, the shared limits (nesting, paths, text, ``$in``, document and key
size), key immutability, NUL in strings, early-stopped streams, and a Hypothesis strategy of
hostile names, values and filter shapes checked against ``asyncdb.query.matches``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st

import asyncdb
from asyncdb.backends.base import check_key
from asyncdb.query import (
    apply_projection,
    apply_update,
    matches,
    parse_filter,
    parse_projection,
    parse_update,
)
from asyncdb.query.regex import RegexTooCostly
from asyncdb.query.values import normalize_document
from asyncdb.types import CollectionSpec

from .support import difference
from .test_differential import run_examples


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value ``depth`` levels deep: {"x": {"x": ... leaf}}."""
    value = leaf
    for _ in range(depth):
        value = {"x": value}
    return value


# --- regexes ------------------------------------------------------------------------------------


async def test_exponential_regex_is_refused_before_io(db: asyncdb.Database) -> None:
    coll = db.collection("re", allow_scan=True)
    await coll.insert_one({"id": "a", "s": "a" * 40 + "!"})
    began = time.perf_counter()
    for pattern in ["(a+)+$", "(a|aa)*$", "(\\w+\\s?)+$", "(a?){30}a{30}"]:
        with pytest.raises(asyncdb.QueryError, match="exponential"):
            await coll.find_one({"s": {"$regex": pattern}})
    assert time.perf_counter() - began < 2


async def test_costly_regex_on_a_long_string_is_bounded(db: asyncdb.Database) -> None:
    """``.*a.*b`` on 10,000 ``a``s takes minutes in ``re``: refused for that string (or answered
    by a server under its own limit), within a second, and the loop stays free."""
    coll = db.collection("re", allow_scan=True)
    await coll.insert_many([{"id": "long", "s": "a" * 10_000}, {"id": "short", "s": "xab"}])
    began = time.perf_counter()
    try:
        found = await coll.find({"s": {"$regex": ".*a.*b"}}).to_list()
    except (RegexTooCostly, asyncdb.OperationTimeout):
        pass
    else:
        assert [d["id"] for d in found] == ["short"]
    assert time.perf_counter() - began < 5
    # the same pattern on short strings answers as re does
    assert [d["id"] for d in await coll.find({"s": {"$regex": "x.*b"}}).to_list()] == ["short"]


# --- nesting and paths --------------------------------------------------------------------------


async def test_updates_cannot_build_deeper_documents_than_inserts(db: asyncdb.Database) -> None:
    coll = db.collection("deep", allow_scan=True)
    await coll.insert_one({"id": "d", "v": [1]})
    with pytest.raises(asyncdb.QueryError, match=r"nesting|path limit"):
        await coll.update_one({"id": "d"}, {"$set": {".".join(["p"] * 150): 1}})
    with pytest.raises(asyncdb.QueryError, match="nesting"):
        await coll.update_one({"id": "d"}, {"$set": {"w." + ".".join(["x"] * 98): nested(2)}})
    with pytest.raises(asyncdb.QueryError, match="nesting"):
        await coll.update_one({"id": "d"}, {"$push": {"v": nested(99)}})
    with pytest.raises(asyncdb.QueryError, match="nesting"):
        await coll.insert_one({"id": "e", "v": nested(100)})
    assert await coll.find({}).to_list() == [{"id": "d", "v": [1]}]


async def test_the_deepest_document_round_trips_or_names_the_store_limit(
    db: asyncdb.Database,
) -> None:
    """100 levels (the portable maximum) are stored and read back exactly, or refused before
    any I/O where the store holds less (Firestore: 20)."""
    coll = db.collection("deep", allow_scan=True)
    deepest = {"id": "d", "v": nested(99)}
    try:
        await coll.insert_one(deepest)
    except asyncdb.QueryError as exc:
        assert db.backend == "firestore" and "nesting limit" in str(exc)
        await coll.insert_one({"id": "d", "v": nested(19)})  # 20 levels: Firestore's maximum
        assert await coll.find_one({"id": "d"}) == {"id": "d", "v": nested(19)}
        with pytest.raises(asyncdb.QueryError, match="nesting limit"):
            await coll.update_one({"id": "d"}, {"$set": {"v.x": nested(19)}})
        return
    assert await coll.find_one({"id": "d"}) == deepest
    await coll.update_one({"id": "d"}, {"$set": {"w." + ".".join(["x"] * 98): nested(1)}})
    stored = await coll.find_one({"id": "d"})
    assert stored is not None and stored["w"] == nested(99)


async def test_a_10000_part_path_is_a_query_error(db: asyncdb.Database) -> None:
    coll = db.collection("paths", allow_scan=True)
    path = ".".join(["a"] * 10_000)
    with pytest.raises(asyncdb.QueryError, match="path limit"):
        await coll.find_one({path: 1})
    with pytest.raises(asyncdb.QueryError, match="path limit"):
        await coll.update_one({"id": "x"}, {"$set": {path: 1}})


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "s", "v": "\ud800"},
        {"id": "s", "\udfff": 1},
        {"id": "s", "v": ["ok", {"w": "x\ud83dy"}]},
        {"id": "\ud800"},
    ],
)
async def test_lone_surrogates_are_refused_everywhere(db: asyncdb.Database, doc: Any) -> None:
    coll = db.collection("text", allow_scan=True)
    with pytest.raises(asyncdb.QueryError, match="surrogate"):
        await coll.insert_one(doc)
    with pytest.raises(asyncdb.QueryError, match="surrogate"):
        await coll.find_one({"v": "\ud800"})
    assert await coll.count_documents({}) == 0


async def test_nul_in_strings_compares_exactly(db: asyncdb.Database) -> None:
    coll = db.collection("nul", allow_scan=True)
    if db.backend == "postgres":  # jsonb holds no U+0000: refused before any I/O
        with pytest.raises(asyncdb.QueryError, match="U\\+0000"):
            await coll.insert_one({"id": "2", "s": "a\x00b"})
        return
    await coll.insert_many([{"id": "1", "s": "a"}, {"id": "2", "s": "a\x00b"}])

    async def ids(flt: dict[str, Any]) -> list[str]:
        return sorted(d["id"] for d in await coll.find(flt).to_list())

    assert await ids({"s": "a"}) == ["1"]
    assert await ids({"s": "a\x00b"}) == ["2"]
    assert await ids({"s": {"$in": ["a\x00b"]}}) == ["2"]
    assert await ids({"s": {"$gt": "a"}}) == ["2"]
    assert await ids({"s": {"$ne": "a"}}) == ["2"]


# --- keys ---------------------------------------------------------------------------------------


async def test_an_upsert_cannot_change_the_key(db: asyncdb.Database) -> None:
    coll = db.collection("keys", allow_scan=True)
    with pytest.raises(asyncdb.QueryError, match="key"):
        await coll.update_one({"id": "new"}, {"$set": {"id": "other"}}, upsert=True)
    with pytest.raises(asyncdb.QueryError, match="key"):
        await coll.replace_one({"id": "new"}, {"id": "other", "v": 1}, upsert=True)
    assert await coll.count_documents({}) == 0
    res = await coll.update_one({"id": "new"}, {"$set": {"id": "new", "v": 1}}, upsert=True)
    assert res.upserted_id == "new"
    with pytest.raises(asyncdb.QueryError, match="key"):
        await coll.update_one({"v": 1}, {"$set": {"id": "other"}})
    with pytest.raises(asyncdb.QueryError, match="key"):
        await coll.update_one({"id": "new"}, {"$unset": {"id": ""}})
    assert await coll.find({}).to_list() == [{"id": "new", "v": 1}]


# --- sizes --------------------------------------------------------------------------------------

# What each store refuses (the README's limits table); the others hold it.
DOCUMENT_LIMIT = {
    "mongo": 16 * 2**20,
    "dynamodb": 400 * 1024,
    "firestore": 2**20,
    "cosmos": 2 * 2**20,
}
KEY_LIMIT = {"postgres": 2000, "dynamodb": 900, "cosmos": 255}


async def test_a_document_beyond_the_store_limit_is_refused_before_io(db: asyncdb.Database) -> None:
    coll = db.collection("big", allow_scan=True)
    limit = DOCUMENT_LIMIT.get(db.backend)
    size = (limit or 2 * 2**20) + 1024
    big = {"id": "big", "s": "x" * size}
    if limit is None:
        await coll.insert_one(big)
        assert await coll.find_one({"id": "big"}) == big
        return
    with pytest.raises(asyncdb.QueryError, match="document size limit"):
        await coll.insert_one(big)
    with pytest.raises(asyncdb.QueryError, match="document size limit"):  # all or nothing
        await coll.insert_many([{"id": "small"}, big])
    await coll.insert_one({"id": "grows", "s": ""})
    with pytest.raises(asyncdb.QueryError, match="document size limit"):
        await coll.update_one({"id": "grows"}, {"$set": {"s": big["s"]}})
    assert await coll.find({}).to_list() == [{"id": "grows", "s": ""}]


async def test_a_key_beyond_the_store_limit_is_refused_or_read_back(db: asyncdb.Database) -> None:
    coll = db.collection("keysize", allow_scan=True)
    key = "k" * 10_000
    if db.backend not in KEY_LIMIT:
        await coll.insert_one({"id": key, "v": 1})
        assert await coll.find_one({"id": key}) == {"id": key, "v": 1}
        return
    with pytest.raises(asyncdb.QueryError, match="key size limit"):
        await coll.insert_one({"id": key, "v": 1})
    with pytest.raises(asyncdb.QueryError, match="key size limit"):
        await coll.update_one({"id": key}, {"$set": {"v": 1}}, upsert=True)
    try:  # a lookup of a key no document can have: nothing, or the same typed error
        assert await coll.find_one({"id": key}) is None
    except asyncdb.QueryError as exc:
        assert "key size limit" in str(exc)
    fits = "k" * (KEY_LIMIT[db.backend] // 2)
    await coll.insert_one({"id": fits, "v": 2})
    assert await coll.find_one({"id": fits}) == {"id": fits, "v": 2}


async def test_a_long_indexed_value_is_refused_or_stored(db: asyncdb.Database) -> None:
    coll = db.collection("ixlong", indexes=["s"])
    doc = {"id": "a", "s": "".join(f"{i:05}" for i in range(2400))}  # 12,000 characters
    try:
        await coll.insert_one(doc)
    except asyncdb.QueryError as exc:  # a btree entry holds at most 2704 bytes
        assert db.backend == "postgres" and "index entry limit" in str(exc)
        return
    try:
        assert await coll.find_one({"s": doc["s"]}) == doc
    except asyncdb.ScanRequired:  # beyond a GSI key's size: the value is not in the index
        assert db.backend == "dynamodb"
        assert await coll.find_one({"s": doc["s"]}, allow_scan=True) == doc


async def test_a_100k_value_in_is_answered(db: asyncdb.Database) -> None:
    coll = db.collection("bigin", allow_scan=True)
    await coll.insert_many([{"id": f"k{i}", "s": f"v{i}"} for i in range(3)])
    values = [f"v{i}" for i in range(1, 100_000)]
    assert sorted(d["id"] for d in await coll.find({"s": {"$in": values}}).to_list()) == [
        "k1",
        "k2",
    ]
    keys = [f"k{i}" for i in range(2, 2_002)]  # beyond every store's chunk of keys
    by_key = db.collection("bigin")  # no scans allowed: read by key
    assert [d["id"] for d in await by_key.find({"id": {"$in": keys}}).to_list()] == ["k2"]
    with pytest.raises(asyncdb.QueryError, match=r"\$in limit"):
        await coll.find_one({"s": {"$in": list(range(300_000))}})


# --- wide documents and wide filters -------------------------------------------------------------


async def test_a_wide_document_and_wide_filters_answer_exactly(db: asyncdb.Database) -> None:
    coll = db.collection("wide", allow_scan=True)
    wide = {"id": "w", **{f"f{i}": i for i in range(500)}}
    await coll.insert_many([wide, {"id": "n", "f7": -1}])
    assert await coll.find_one({"id": "w"}) == wide
    # beyond what one native query holds (SQLite 300 terms, DynamoDB 30, Cosmos 100)
    ors = {"$or": [{f"f{i}": i} for i in range(400)]}
    assert [d["id"] for d in await coll.find(ors, projection={"id": 1}).to_list()] == ["w"]
    ands = {f"f{i}": {"$gte": 0} for i in range(350)}
    assert await coll.count_documents(ands) == 1
    nested: dict[str, Any] = {"f1": 1}
    for _ in range(99):  # the deepest filter the parser takes
        nested = {"$and": [nested, {"id": {"$ne": "x"}}]}
    assert await coll.count_documents(nested) == 1


# --- modifications ------------------------------------------------------------------------------


async def test_a_decimal_exponent_change_is_a_modification(db: asyncdb.Database) -> None:
    coll = db.collection("dec")
    await coll.insert_one({"id": "d", "v": Decimal("1.0")})
    res = await coll.update_one({"id": "d"}, {"$set": {"v": Decimal("1.00")}})
    assert (res.matched, res.modified) == (1, 1)
    stored = await coll.find_one({"id": "d"})
    assert stored is not None and str(stored["v"]) == "1.00"
    res = await coll.update_one({"id": "d"}, {"$set": {"v": Decimal("1.00")}})
    assert (res.matched, res.modified) == (1, 0)


# --- streams ------------------------------------------------------------------------------------


async def test_abandoned_streams_give_their_connections_back(db: asyncdb.Database) -> None:
    coll = db.collection("streams", allow_scan=True)
    await coll.insert_many([{"id": f"{i:03}", "n": i} for i in range(10)])
    # 10x the default PostgreSQL pool (an unlimited find streams from a server-side cursor)
    for i in range(100 if db.backend == "postgres" else 10):
        if i % 2:
            async for _doc in coll.find({"n": {"$gte": 0}}):
                break
        else:
            with pytest.raises(RuntimeError):
                async for _doc in coll.find({"n": {"$gte": 0}}):
                    raise RuntimeError("consumer failed")
    async with asyncio.timeout(10):
        assert await coll.find_one({"id": "007"}) == {"id": "007", "n": 7}


async def test_a_table_and_a_collection_of_one_name_are_apart(postgres_url: str) -> None:
    """A table (here in another schema) and a document collection named alike: using the
    table first must not mark the collection as set up (its own table would never be made)."""
    import sqlalchemy as sa

    from asyncdb.backends.table.store import TableStore

    table = sa.Table(
        "shared",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        schema="other",
    )
    tables = TableStore.for_url(postgres_url)
    try:
        async with tables.engine.begin() as conn:
            await conn.execute(sa.text("CREATE SCHEMA other"))
            await conn.run_sync(table.metadata.create_all)
    finally:
        await tables.close()
    async with asyncdb.connect(postgres_url) as db:
        rows = db.table(table, allow_scan=True)
        await rows.insert_one({"id": 1, "v": 1})
        assert await rows.find_one({"id": 1}) == {"id": 1, "v": 1}
        docs = db.collection("shared")
        await docs.insert_one({"id": "a", "v": "doc"})
        assert await docs.find_one({"id": "a"}) == {"id": "a", "v": "doc"}
        assert await rows.find({}).to_list() == [{"id": 1, "v": 1}]


def test_asyncio_run_of_connect_says_to_await_it() -> None:
    with pytest.raises(ValueError, match="await it inside"):
        asyncio.run(asyncdb.connect("memory://"))  # type: ignore[arg-type]


# --- Hypothesis: hostile names, values, keys and filters ----------------------------------------

# Characters that mean something to some store's query syntax, encoding or path rules.
NASTY_CHARS = [
    *"'\";-/*%_#?@:{}[]()`$.\\ \n\t,|=<>!&~^+",
    "\x00",
    "\x01",
    "\x7f",
    "é",
    "ß",
    "İ",
    "\u017f",  # long s: folds to s
    "\u212a",  # Kelvin sign: folds to k
    "😀",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\U0010ffff",
    "\u0308",
    "\ud800",
    "a",
    "Z",
    "0",
]
NASTY_TEXT = [
    "' OR '1'='1",
    '"; DROP TABLE t; --',
    "1; SELECT * FROM c",
    "$where",
    "$gt",
    "__name__",
    "__x__",
    "_id",
    "id",
    "doc",
    "body",
    "tagged",
    "c.id",
    "@v",
    ":v0",
    "#n0",
    "../..",
    "a/b",
    "%2F",
    "x" * 1500,
]
hostile_text = st.one_of(
    st.text(alphabet=st.sampled_from(NASTY_CHARS), min_size=1, max_size=8),
    st.sampled_from(NASTY_TEXT),
)
hostile_scalars = st.one_of(
    hostile_text,
    st.sampled_from(
        [
            2**63 - 1,
            -(2**63),
            2**63,
            0,
            -0.0,
            5e-324,
            1.7976931348623157e308,
            float("nan"),
            Decimal("1E-400"),
            Decimal("9" * 40),
            Decimal("-0"),
            True,
            None,
            b"\x00\xff",
            b"",
        ]
    ),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
HOSTILE_REGEXES = [
    "(a+)+$",
    "(?P<x>a)(?P=x)",
    "[",
    "\\",
    "^\\x00",
    "a{1000}",
    "(?i)ǅ",
    ".*.*=.*",
    "(x|x)*y",
    "\\ud800",
]
hostile_keys = st.one_of(hostile_text, st.integers(-(2**63), 2**63 - 1))


def _outcome(call: Any, *args: Any) -> Any:
    """What the reference gives for a pure call: its value, or the QueryError it raises."""
    try:
        return call(*args)
    except asyncdb.QueryError as exc:
        return exc


# What a store refuses beyond the portable rules (README: the limits table, the deviations).
STORE_REFUSALS = ("limit", "reserved for the key on MongoDB", "cannot store U+0000")


def store_refusal(exc: asyncdb.QueryError) -> bool:
    return any(reason in str(exc) for reason in STORE_REFUSALS)


def _reference_insert(doc: dict[str, Any]) -> dict[str, Any]:
    stored = normalize_document(doc)
    check_key(stored, CollectionSpec("hostile"))
    return stored


def _matching(node: Any, docs: list[dict[str, Any]]) -> list[Any]:
    return [d["id"] for d in docs if matches(node, d)]


async def check_hostile(db: asyncdb.Database, case: tuple[Any, dict[str, Any], Any, str]) -> int:
    key, doc, probe, regex = case
    coll = db.collection("hostile", allow_scan=True)
    await coll.delete_many({})
    doc = {"id": key, **doc}
    key = doc["id"]
    expected = _outcome(_reference_insert, doc)
    try:
        await coll.insert_one(doc)
    except asyncdb.QueryError as exc:  # refused before any I/O, never a driver error
        assert isinstance(expected, asyncdb.QueryError) or store_refusal(exc), (doc, exc)
        return 1
    assert not isinstance(expected, asyncdb.QueryError), f"{doc!r} was accepted: {expected}"
    stored = [expected]
    got = await coll.find_one({"id": key})
    assert difference(stored, [got] if got is not None else []) is None, (doc, got)
    checked = 1
    names = [k for k in doc if k != "id"] or ["missing"]
    filters: list[dict[str, Any]] = []
    for name in names[:2]:
        filters += [
            {name: probe},
            {name: {"$ne": probe}},
            {name: {"$in": [probe, doc.get(name)]}},
            {name: {"$gt": probe}},
            {name: {"$regex": regex}},
        ]
    filters.append({"id": {"$in": [key, probe]}})
    for flt in filters:
        node = _outcome(parse_filter, flt)
        if isinstance(node, asyncdb.QueryError):
            with pytest.raises(asyncdb.QueryError):
                await coll.find(flt).to_list()
            checked += 1
            continue
        want = _outcome(_matching, node, stored)
        try:
            found = [d["id"] async for d in coll.find(flt)]
        except asyncdb.QueryError as exc:
            assert isinstance(want, asyncdb.QueryError) or store_refusal(exc), (flt, exc)
        else:
            assert not isinstance(want, asyncdb.QueryError) or isinstance(want, RegexTooCostly)
            assert found == want, (flt, stored, found)
        checked += 1
    for name in names[:2]:  # hostile names in projections, sorts and updates
        try:
            proj = parse_projection({name: 1})
        except asyncdb.QueryError:
            with pytest.raises(asyncdb.QueryError):
                await coll.find({}, projection={name: 1}, sort=[(name, -1)]).to_list()
            with pytest.raises(asyncdb.QueryError):
                await coll.update_one({"id": key}, {"$set": {name: probe}})
            continue
        got_docs = await coll.find({}, projection={name: 1}, sort=[(name, -1)]).to_list()
        assert got_docs == [apply_projection(proj, d, ("id",)) for d in stored]
        update = {"$set": {name: probe}}
        want_doc = _outcome(_reference_update, update, stored[0])
        try:
            await coll.update_one({"id": key}, update)
        except asyncdb.QueryError as exc:
            assert isinstance(want_doc, asyncdb.QueryError) or store_refusal(exc), (update, exc)
        else:
            assert not isinstance(want_doc, asyncdb.QueryError), (update, want_doc)
            after = await coll.find_one({"id": key})
            assert difference(want_doc, after) is None, (update, want_doc, after)
            stored = [want_doc]
        checked += 1
    return checked


def _reference_update(update: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    return apply_update(parse_update(update), doc)


async def test_hostile_collection_names(db: asyncdb.Database) -> None:
    """Names reach store syntax (SQL identifiers, table names, container ids): only
    ``[A-Za-z0-9_-]{1,128}`` is accepted, before any I/O; accepted names that mean something
    to a store (reserved ids, SQL keywords, the store's own column names) work."""
    for name in [*NASTY_TEXT, "a b", "a.b", "é", "t\x00", "x" * 129, "", "a;b", 'a"b', "a`b"]:
        if re.fullmatch("[A-Za-z0-9_-]{1,128}", name):
            continue
        with pytest.raises(asyncdb.ConfigurationError):
            db.collection(name)
    for name in ["__x__", "select", "tagged", "-", "_id", "x" * 128]:
        try:
            coll = db.collection(name)
        except asyncdb.ConfigurationError as exc:  # the store's own rules, before any I/O
            assert any(r in str(exc) for r in ("reserves", "identifier limit")), exc
            continue
        await coll.insert_one({"id": "a", "v": name})
        assert await coll.find_one({"id": "a"}) == {"id": "a", "v": name}


def store_refuses_name(backend: str, table: str) -> bool:
    """The store's documented rule for a collection (table, container) name asyncdb accepts."""
    if backend == "dynamodb":  # CreateTable: 3-255 characters of [a-zA-Z0-9_.-]
        return re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", table) is None
    if backend == "firestore":  # collection ids: no "/", not "." or "..", not __.*__
        return re.fullmatch("__.*__", table) is not None
    if backend == "postgres":  # identifiers of 63 bytes, the table's own ":gin" index included
        return len(f"{table}:gin") > 63
    return False  # Cosmos DB (1-255 characters, none of / \\ ? #), MongoDB, SQLite, memory


async def test_names_the_store_would_refuse_are_refused_before_io(
    backend_name: str, backend_url: str
) -> None:
    """A name that passes asyncdb's rule but not the store's (DynamoDB's 3-character minimum,
    Firestore's reserved ``__.*__`` ids) is a ConfigurationError when the collection is
    opened (no I/O), never a BackendError from the store's CreateTable; every other name works.
    On DynamoDB the table is named without a prefix here, so the collection name is all of it."""
    backend = backend_name
    url = re.sub(r"table_prefix=[^&]*&?", "", backend_url).rstrip("?&")
    db = await asyncdb.connect(url)
    try:
        for name in ["ab", "abc", "___", "____", "y" * 128]:
            if store_refuses_name(backend, name):
                with pytest.raises(asyncdb.ConfigurationError, match=r"reserves|3-255|identifier"):
                    db.collection(name)
                continue
            coll = db.collection(name)
            await coll.insert_one({"id": "a", "v": name})
            assert await coll.find_one({"id": "a"}) == {"id": "a", "v": name}
            if backend == "dynamodb":  # unprefixed: other tests' tables are prefixed
                await coll.drop()
        index = {"fields": ["v"], "name": "ab"}
        if backend == "dynamodb":  # a GlobalSecondaryIndex name has the same rule
            with pytest.raises(asyncdb.ConfigurationError, match="index name 'ab'"):
                db.collection("ixname", indexes=[index])
        elif "secondary_indexes" in db.capabilities:
            coll = db.collection("ixname", indexes=[index])
            await coll.insert_one({"id": "a", "v": 1})
            assert await coll.find({"v": 1}).to_list() == [{"id": "a", "v": 1}]
    finally:
        await db.close()


HOSTILE_EXAMPLES = int(os.environ.get("ASYNCDB_HOSTILE_EXAMPLES", "12"))


def test_hostile_names_values_and_filters(backend_url: str) -> None:
    """Every hostile document, key and filter gives the reference evaluator's answer or a
    QueryError before any I/O, on every backend (never a driver exception)."""
    strategy = st.tuples(
        hostile_keys,
        st.dictionaries(hostile_text, hostile_values, max_size=3),
        hostile_values,
        st.sampled_from(HOSTILE_REGEXES),
    )
    checked = run_examples(backend_url, strategy, check_hostile, HOSTILE_EXAMPLES)
    assert checked >= HOSTILE_EXAMPLES
