"""A real StateGraph agent (examples/langgraph_agent.py) runs until its human-review interrupt in
one process and resumes from its checkpoint in another, on SQLite and PostgreSQL; and runs
through the sync API from a worker thread."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBSaver, AsyncDBStore

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "langgraph_agent.py"


def _run(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_agent_interrupted_in_one_process_resumes_in_another(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'agent.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    started = _run("start", url, "thread-1")
    assert started["next"] == ["review"]
    assert started["interrupts"] == [{"please review": "A short note about asyncdb."}]
    assert started["values"]["steps"] == ["draft"]
    assert started["note"] is None

    resumed = _run("resume", url, "thread-1", "approve")
    assert resumed["pid"] != started["pid"]
    assert resumed["next"] == []
    assert resumed["values"]["steps"] == ["draft", "review", "file"]  # draft ran once
    assert resumed["values"]["approved"] is True
    assert resumed["note"] == {"text": "A short note about asyncdb."}


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("langgraph_agent", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["langgraph_agent"] = module  # LangGraph resolves the state's type hints there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
async def test_sync_invoke_from_a_worker_thread_uses_the_sync_twins(
    url: str, tmp_path: Path
) -> None:
    """``graph.invoke`` (sync) in a worker thread, as a sync web handler would run it: the
    saver's ``get_tuple``/``put``/``put_writes``/``list`` and the store's ``put`` reach the
    database through its event loop."""
    example = _example()
    url = f"sqlite:///{tmp_path / 'sync.db'}" if url == "sqlite" else url
    async with asyncdb.connect(url) as db:
        graph = example.build(AsyncDBSaver(db), AsyncDBStore(db))
        config = {"configurable": {"thread_id": "sync-1"}}
        first = await asyncio.to_thread(graph.invoke, {"topic": "asyncdb", "steps": []}, config)
        assert [i.value for i in first["__interrupt__"]] == [
            {"please review": "A short note about asyncdb."}
        ]
        done = await asyncio.to_thread(graph.invoke, Command(resume="approve"), config)
        assert done["steps"] == ["draft", "review", "file"]
        history = await asyncio.to_thread(lambda: [s.next for s in graph.get_state_history(config)])
        assert history[:3] == [(), ("file",), ("review",)]
        note = await AsyncDBStore(db).aget(("notes",), "asyncdb")
        assert note is not None and note.value == {"text": "A short note about asyncdb."}
