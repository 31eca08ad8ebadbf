"""The copy's fast paths give exactly what the general paths give: a SQLite part read one
bounded query per batch yields the batches (and positions) of the streamed cursor, and a copy's
freshly read documents written without the validated copy (``owned_documents``, taken only for
a document ``canonical`` says the validation would leave unchanged) are stored, and refused,
exactly as through the validated copy."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncdb
import asyncdb.collection as collection_module
from asyncdb.collection import owned_documents
from asyncdb.movement.sources import CollectionSource

T0 = datetime(2025, 3, 14, 9, 30, 1, 250000, tzinfo=UTC)


def typed(value: Any) -> Any:
    """A value with every type (and the sign of zero) spelled out, for exact comparison."""
    if isinstance(value, dict):
        return ("dict", type(value), [(type(k), k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.tzinfo)
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    return (type(value), value)


async def read_all(
    part_source: CollectionSource, size: int, position: Any = None, parts: Any = None
) -> list[Any]:
    """Every batch of every part (of ``parts``, else of the source's own plan of 3)."""
    out = []
    for part in parts if parts is not None else await part_source.parts(3):
        async for docs, after in part_source.batches(part, position, size):
            out.append(([d["id"] for d in docs], after))
    return out


@pytest.mark.parametrize("size", [1, 7, 50, 500])
async def test_paged_sqlite_batches_equal_the_streamed_cursors(tmp_path: Path, size: int) -> None:
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'src.db'}") as db:
        coll = db.collection("alerts")
        await coll.insert_many([{"id": f"a{i:04d}", "n": i} for i in range(203)])
        paged = CollectionSource(coll, "sqlite")  # one bounded query per batch
        streamed = CollectionSource(coll, "other")  # the general path: one cursor per part
        got = await read_all(paged, size)
        # the paged store plans by skip reads: both read the same parts
        assert got == await read_all(streamed, size, parts=await paged.parts(3))
        assert sorted(i for ids, _ in got for i in ids) == [f"a{i:04d}" for i in range(203)]
        # a resumed part continues after its position in both
        parts = await paged.parts(3)
        for part in parts:
            first = [b async for b in paged.batches(part, None, size)]
            middle = first[len(first) // 2][1]
            resumed = [(d, a) async for d, a in paged.batches(part, middle, size)]
            assert resumed == [(d, a) async for d, a in streamed.batches(part, middle, size)]
            assert all(d["id"] > middle[0] for docs, _ in resumed for d in docs)


async def test_paged_batches_of_mixed_key_types_take_the_cursor(tmp_path: Path) -> None:
    async with asyncdb.connect(f"sqlite:///{tmp_path / 'src.db'}") as db:
        coll = db.collection("alerts")
        await coll.insert_many(
            [{"id": i} for i in range(20)] + [{"id": f"s{i}"} for i in range(20)]
        )
        paged, streamed = CollectionSource(coll, "sqlite"), CollectionSource(coll, "other")
        plan = await paged.parts(3)
        assert await read_all(paged, 6) == await read_all(streamed, 6, parts=plan)
        assert len([i for ids, _ in await read_all(paged, 6) for i in ids]) == 40


# --- owned documents: written as they are only when the validation would not change them --

EDGE_VALUES: list[Any] = [
    1,
    1.0,
    -0.0,
    True,
    None,
    2**63 - 1,
    2**63,
    float("nan"),
    float("inf"),
    1e16,
    "é",
    "\ud800",
    "x\x00y",
    Decimal("1.10"),
    Decimal("NaN"),
    b"\x00\xff",
    bytearray(b"ab"),
    T0,
    T0.replace(microsecond=123456),
    T0.replace(tzinfo=None),
    T0.astimezone(timezone(timedelta(hours=5))),
    (1, 2),
    {"a": [1, {"b": 2.5}]},
    OrderedDict(a=1),
    {"$x": 1},
    {"a.b": 1},
    {1, 2},
]


async def outcomes(coll: Any, docs: list[dict[str, Any]], owned: bool) -> list[Any]:
    """Each document inserted alone (with or without the shortcut): its error, or what the
    store then holds, typed."""
    out = []
    token = owned_documents.set(owned)
    try:
        for doc in docs:
            try:
                await coll.insert_many([doc])
            except asyncdb.AsyncDBError as exc:
                out.append(("error", type(exc).__name__, str(exc)))
                continue
            stored = await coll.find_one({"id": doc["id"]})
            out.append(("ok", typed(stored)))
    finally:
        owned_documents.reset(token)
    return out


async def batch_outcome(coll: Any, docs: list[dict[str, Any]], owned: bool) -> Any:
    """One insert_many of ``docs`` (all or nothing): its error, or the stored documents."""
    token = owned_documents.set(owned)
    try:
        await coll.insert_many(docs)
    except asyncdb.AsyncDBError as exc:
        return ("error", type(exc).__name__, str(exc), await coll.count_documents({}))
    finally:
        owned_documents.reset(token)
    return ("ok", [typed(d) for d in await coll.find({}, sort=[("id", 1)]).to_list()])


async def same_with_and_without_shortcut(url: str, docs: list[dict[str, Any]]) -> None:
    batch = [{**d, "id": f"b{i:03d}"} for i, d in enumerate(docs)]
    results = []
    async with asyncdb.connect(url) as db:
        for owned in (False, True):
            coll = db.collection("docs", allow_scan=True)
            await coll.drop()
            alone = await outcomes(coll, docs, owned)
            await coll.drop()
            results.append((alone, await batch_outcome(coll, batch, owned)))
    assert results[1] == results[0]


def edge_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for i, value in enumerate(EDGE_VALUES):
        docs.append({"id": f"v{i}", "v": value})
        docs.append({"id": f"n{i}", "deep": {"l": [0, value]}})
    return docs


async def test_owned_documents_are_stored_and_refused_as_validated_copies_sqlite(
    tmp_path: Path,
) -> None:
    await same_with_and_without_shortcut(f"sqlite:///{tmp_path / 'db.sqlite'}", edge_docs())


async def test_owned_documents_are_stored_and_refused_as_validated_copies_postgres(
    postgres_url: str,
) -> None:
    await same_with_and_without_shortcut(postgres_url, edge_docs())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.text(max_size=3),
    st.decimals(places=2),
    st.binary(max_size=2),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])),
    st.sampled_from([(1,), bytearray(b"z")]),
)
documents = st.dictionaries(
    st.sampled_from(["a", "b", "$c", "d.e", "é"]),
    st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["x", "$y"]), c),
        max_leaves=6,
    ),
    max_size=4,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(documents, min_size=1, max_size=4))
def test_generated_owned_documents_match_validated_copies(
    tmp_path: Path, docs: list[dict[str, Any]]
) -> None:
    with_ids = [{**d, "id": f"g{i}"} for i, d in enumerate(docs)]
    asyncio.run(same_with_and_without_shortcut(f"sqlite:///{tmp_path / 'g.sqlite'}", with_ids))


async def test_a_copy_dead_letters_a_bad_stored_document_as_without_the_shortcut(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source row no asyncdb write could have made ("$x" and "a.b" names, written by hand):
    the copy refuses it as the validation does, shortcut or not, and writes the rest."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src.db"
    async with asyncdb.connect(f"sqlite:///{src}") as db:
        await db.collection("alerts").insert_many(
            [{"id": f"a{i:03d}", "n": i, "at": T0} for i in range(120)]
        )
    with sqlite3.connect(src) as raw:
        raw.execute("""UPDATE "alerts" SET doc = '{"id":"a007","$x":1}' WHERE k0 = 'a007'""")
        raw.execute("""UPDATE "alerts" SET doc = '{"id":"a050","a.b":1}' WHERE k0 = 'a050'""")
    results = []
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(collection_module, "canonical", lambda doc: False)
        async with asyncdb.connect(postgres_url) as dst:
            await dst.collection("alerts").drop()
        letters = tmp_path / f"dead-{shortcut}.jsonl"
        report = await asyncdb.copy(
            f"sqlite:///{src}",
            postgres_url,
            batch_size=25,
            workers=2,
            on_error="continue",
            dead_letter=letters,
            verify=False,
        )
        async with asyncdb.connect(postgres_url) as dst:
            stored = (
                await dst.collection("alerts", allow_scan=True).find({}, sort=[("id", 1)]).to_list()
            )
        lines = sorted(json.loads(line)["error"] for line in letters.read_text().splitlines())
        results.append((report.written, report.failed, [typed(d) for d in stored], lines))
    assert results[0] == results[1]
    written, failed, stored, lines = results[0]
    assert (written, failed) == (118, 2)
    assert len(stored) == 118 and all("QueryError" in line for line in lines)
