"""Helpers of the example services' tests: import them from examples/, and run one under a real
``uvicorn`` process."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def example(module: str) -> Any:
    """Import ``module`` from examples/ (e.g. ``"alerts_service.app"``)."""
    return importlib.import_module(module)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served(str):
    """The base URL of a running server; ``pid`` is its (main) process."""

    pid: int


@contextmanager
def uvicorn_server(
    app: str, env: dict[str, str], *, workers: int = 1, log: Path, app_dir: Path = EXAMPLES
) -> Iterator[Served]:
    """``uvicorn --app-dir APP_DIR APP`` as a child process on a free port; yields its base
    URL (with the process id as ``.pid``) once ``/health`` answers, and stops it afterwards
    (its output goes to ``log``)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), app]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    argv += ["--log-level", "warning"]
    child_env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    child_env.update(env)
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=child_env, stdout=out, stderr=subprocess.STDOUT)
        base = Served(f"http://127.0.0.1:{port}")
        base.pid = process.pid
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"uvicorn exited with {process.returncode}: {log.read_text()}"
                    )
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not answer in 60 s: {log.read_text()}")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def newest_key(alert: dict[str, Any]) -> tuple[datetime, str]:
    """The order of the examples' listings, newest first with ``reverse=True``: created_at,
    then id (both descending)."""
    return datetime.fromisoformat(alert["created_at"]), alert["id"]
