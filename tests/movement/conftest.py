"""Fixtures of the data-movement tests: the conformance suite's per-backend ``db`` and
``backend_url`` (so "every backend" means the same seven), plus helpers to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conformance.conftest import backend_name, backend_url, db

ROOT = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m asyncdb ARGS`` as a user runs it, from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "asyncdb", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


__all__ = ["backend_name", "backend_url", "cli_env", "db", "run_cli"]
