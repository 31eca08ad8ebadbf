"""What every throwaway test server does: start on first use on a free loopback port (or take
the URL of one already running from ``ASYNCDB_TEST_<BACKEND>_URL``), hand each test a URL to
fresh, empty state, and stop at the end of the session.

A server module subclasses :class:`ThrowawayServer` and fills in how to launch the process,
how to tell that it answers, and how to make (and clean up) fresh state for one test.
"""

from __future__ import annotations

import abc
import os
import shutil
import tempfile
import time
import uuid
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from .process import LOOPBACK, ServerProcess, ServerStartError, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

# Java servers take a few seconds on 2 busy cores; a generous deadline costs nothing when they
# are fast and keeps a slow CI machine from failing for no reason.
JAVA_START_TIMEOUT = 120.0
NATIVE_START_TIMEOUT = 60.0


def start_timeout(default: float) -> float:
    """``ASYNCDB_TEST_START_TIMEOUT`` (seconds) when set, else ``default``."""
    raw = os.environ.get("ASYNCDB_TEST_START_TIMEOUT", "").strip()
    return float(raw) if raw else default


def tools_dir() -> Path:
    """Where scripts/install-test-deps puts test-only tools that live outside the project's
    environment (the SecantusDB venv): ``ASYNCDB_TEST_TOOLS_DIR`` or ~/.cache/asyncdb-test-tools."""
    raw = os.environ.get("ASYNCDB_TEST_TOOLS_DIR", "").strip()
    if raw:
        return Path(raw)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "asyncdb-test-tools"


class ThrowawayServer(abc.ABC):
    """One real server for the test session.

    ``start()`` launches it (or adopts ``ASYNCDB_TEST_<BACKEND>_URL``) and sets ``url``, the base
    URL in asyncdb's scheme; ``fresh()`` is an async context manager yielding a URL to isolated,
    empty state for one test and removing that state afterwards; ``stop()`` ends the process.
    """

    name: ClassVar[str]  # the backend name used by ASYNCDB_TEST_SKIP and the fixture names
    title: ClassVar[str]  # what the server is, for messages: "PostgreSQL 15"
    schemes: ClassVar[tuple[str, ...]]  # URL schemes accepted in ASYNCDB_TEST_<BACKEND>_URL
    default_timeout: ClassVar[float] = NATIVE_START_TIMEOUT

    def __init__(self) -> None:
        self.url = ""
        self.host = LOOPBACK
        self.port = 0
        self.external = False
        self.start_seconds: float | None = None
        self.process: ServerProcess | None = None
        self.workdir: Path | None = None

    @classmethod
    def env_var(cls) -> str:
        return f"ASYNCDB_TEST_{cls.name.upper()}_URL"

    @property
    def label(self) -> str:
        return f"{self.title} ({self.name})"

    def start(self) -> None:
        """Start the server, or adopt the external one; raise ServerStartError naming it."""
        external = os.environ.get(self.env_var(), "").strip()
        if external:
            self._adopt(external)
            return
        began = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"asyncdb-test-{self.name}-"))
        self._prepare(self.workdir)
        for attempt in range(3):
            port = free_port()
            proc = self._launch(port, self.workdir)
            proc.start()
            try:
                proc.wait_ready(partial(self._ready, port), start_timeout(self.default_timeout))
            except ServerStartError:
                if attempt < 2 and proc.port_was_taken():
                    continue  # another process took the port between free_port() and bind
                raise
            self.process, self.port = proc, port
            break
        self.url = self._base_url(self.host, self.port)
        self.start_seconds = time.monotonic() - began

    def _adopt(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in self.schemes:
            raise ServerStartError(
                f"{self.env_var()}={url!r} is not a {self.title} URL"
                f" (expected a scheme in {list(self.schemes)})"
            )
        self.url, self.external = url, True
        self.host = parts.hostname or LOOPBACK
        self.port = parts.port or 0

    def stop(self, keep_logs: bool = False) -> None:
        """Stop the process and remove its temp dir (kept with ``keep_logs``, after a failure,
        so the log named in the error message can still be read)."""
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.workdir is not None and not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def describe(self) -> str:
        """One line for the session summary: where the server is and how long it took."""
        if self.external:
            return f"{self.label}: external, {self.env_var()}"
        took = f"{self.start_seconds:.2f} s" if self.start_seconds is not None else "?"
        return f"{self.label}: started in {took} on {self.host}:{self.port}"

    def _prepare(self, workdir: Path) -> None:  # noqa: B027 (optional hook)
        """Work done once before the first launch (initdb, checking binaries exist)."""

    @abc.abstractmethod
    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        """The (not yet started) server process listening on ``port``."""

    @abc.abstractmethod
    def _ready(self, port: int) -> bool:
        """True once the server answers on ``port``."""

    @abc.abstractmethod
    def _base_url(self, host: str, port: int) -> str:
        """The server's URL in asyncdb's scheme, before per-test isolation."""

    @abc.abstractmethod
    def fresh(self) -> AbstractAsyncContextManager[str]:
        """Yield a URL to fresh, empty state for one test; remove that state afterwards."""


def require_executable(title: str, path: str | None, what: str, how: str) -> str:
    """``path`` if it names an executable file, else ServerStartError saying how to install it."""
    if path and os.access(path, os.X_OK) and Path(path).is_file():
        return path
    raise ServerStartError(f"{title}: {what} is not installed ({how})")


def unique_name(prefix: str = "t") -> str:
    """A name no other test uses: ``t`` followed by 12 hex digits (valid in every store)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"
