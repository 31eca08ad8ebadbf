"""``mypy --strict`` sees a typed collection's model through every read (DESIGN §9), and a
plain collection stays documents as dicts."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SNIPPET = """
from typing import Any, assert_type



import asyncdb


class Alert:  # any class types the collection; pydantic is left out to keep mypy fast
    id: str | None
    priority: int


async def typed(db: asyncdb.Database) -> None:
    alerts = db.collection("alerts", model=Alert)
    assert_type(alerts, asyncdb.Collection[Alert])
    assert_type(await alerts.find_one({"id": "a"}), Alert | None)
    assert_type(await alerts.find({}).to_list(), list[Alert])
    async for alert in alerts.find({"priority": {"$gt": 5}}, sort=[("priority", -1)]):
        assert_type(alert, Alert)
    assert_type((await alerts.find_page({})).items, list[Alert])
    after = await alerts.find_one_and_update({"id": "a"}, {"$inc": {"priority": 1}})
    assert_type(after, Alert | None)
    assert_type(await alerts.find_one({"id": "a"}, ["priority"]), dict[str, Any] | None)
    assert_type(await alerts.find({}, projection=["priority"]).to_list(), list[dict[str, Any]])
    await alerts.insert_one(Alert())
    await alerts.insert_one({"priority": 1})


async def plain(db: asyncdb.Database) -> None:
    docs = db.collection("docs")
    assert_type(docs, asyncdb.Collection[dict[str, Any]])
    assert_type(await docs.find_one({}), dict[str, Any] | None)
    assert_type(await docs.find({}).to_list(), list[dict[str, Any]])
    untyped: asyncdb.Collection = docs
    assert_type(await untyped.find_one({}), dict[str, Any] | None)


async def wrong(db: asyncdb.Database) -> int:
    alert = await db.collection("alerts", model=Alert).find_one({})
    assert alert is not None
    return alert["priority"]  # E: a model is not a dict
"""


def test_mypy_strict_sees_the_model_type_through_reads(tmp_path: Path) -> None:
    text = textwrap.dedent(SNIPPET)
    source = tmp_path / "typed_use.py"
    source.write_text(text)
    out, err, _ = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    # The only errors are on the line that indexes a model instance like a dict.
    wrong_line = (
        text.splitlines().index('    return alert["priority"]  # E: a model is not a dict') + 1
    )
    assert errors, out + err
    assert all(f"typed_use.py:{wrong_line}:" in e for e in errors), out + err
    assert any('"Alert" is not indexable' in e for e in errors), out
