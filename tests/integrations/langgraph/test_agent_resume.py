"""A real StateGraph agent (examples/langgraph_agent.py) runs until its human-review interrupt in
one process and resumes from its checkpoint in another, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
