"""LangGraph's official checkpointer conformance suite, at level FULL, on every backend.

``validate`` returns a report and raises nothing, so the test asserts on it: every one of the
eight capabilities (put, put_writes, get_tuple, list, delete_thread, delete_for_runs,
copy_thread, prune) is detected and passes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBSaver


async def test_official_conformance_suite_reaches_full(db: asyncdb.Database) -> None:
    @checkpointer_test(name=f"AsyncDBSaver[{db.backend}]")
    async def factory() -> AsyncIterator[AsyncDBSaver]:
        saver = AsyncDBSaver(db)
        await saver.setup()
        yield saver

    report = await validate(factory)
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert failures == {}
    assert {name for name, r in report.results.items() if r.detected and r.passed} == {
        c.value for c in ALL_CAPABILITIES
    }
    assert report.conformance_level() == "FULL"
