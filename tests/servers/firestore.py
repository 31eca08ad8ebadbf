"""Google's Cloud Firestore emulator, from the Debian package
``google-cloud-cli-firestore-emulator`` that the machine image ships (no reachable registry
provides it: when it is missing the Firestore tests fail and say so). The wrapper script runs
Java without ``exec``, so it is started, and stopped, as a whole process group. Each test
starts from an empty emulator: every document of the project is deleted before and after it.

URL: ``firestore://demo-test?emulator_host=127.0.0.1:PORT``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from .base import JAVA_START_TIMEOUT, ThrowawayServer, require_executable
from .process import LOOPBACK, ServerProcess, ServerStartError, http_answers

DEBIAN_PACKAGE = "google-cloud-cli-firestore-emulator"
PROJECT = "demo-test"


def emulator_path() -> str | None:
    """The ``cloud_firestore_emulator`` script: ``ASYNCDB_TEST_FIRESTORE_EMULATOR``, else where
    the Debian package put it (``dpkg -L``), else on PATH."""
    override = os.environ.get("ASYNCDB_TEST_FIRESTORE_EMULATOR", "").strip()
    if override:
        return override
    try:
        listing = subprocess.run(
            ["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, check=False
        ).stdout
    except OSError:  # not a Debian system
        listing = ""
    for line in listing.splitlines():
        if line.endswith("/cloud_firestore_emulator"):
            return line
    return shutil.which("cloud_firestore_emulator")


@dataclass(frozen=True)
class FirestoreEndpoint:
    """What a raw driver needs from a ``firestore://`` URL."""

    project: str
    emulator_host: str  # host:port

    @classmethod
    def from_url(cls, url: str) -> FirestoreEndpoint:
        parts = urlsplit(url)
        host = parse_qs(parts.query).get("emulator_host", [""])[0]
        return cls(parts.netloc or PROJECT, host)

    def reset(self) -> None:
        """Delete every document of the project (the emulator's own reset endpoint)."""
        url = (
            f"http://{self.emulator_host}/emulator/v1/projects/{self.project}"
            "/databases/(default)/documents"
        )
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30):
            pass


class FirestoreEmulator(ThrowawayServer):
    name: ClassVar[str] = "firestore"
    title: ClassVar[str] = "Firestore emulator"
    schemes: ClassVar[tuple[str, ...]] = ("firestore",)
    default_timeout: ClassVar[float] = JAVA_START_TIMEOUT

    def __init__(self) -> None:
        super().__init__()
        self._emulator = ""
        self._java = ""

    def _prepare(self, workdir: Path) -> None:
        path = emulator_path()
        if path is None:
            raise ServerStartError(
                f"{self.title}: the Debian package {DEBIAN_PACKAGE} is not installed, so"
                " cloud_firestore_emulator is missing. It ships in this kind of machine's image;"
                " no registry reachable here provides it. Point the tests at a running emulator"
                " with ASYNCDB_TEST_FIRESTORE_URL=firestore://demo-test?emulator_host=HOST:PORT"
                " (docker compose up firestore), or skip it with ASYNCDB_TEST_SKIP=firestore."
            )
        self._emulator = require_executable(
            self.title, path, "cloud_firestore_emulator", f"Debian package {DEBIAN_PACKAGE}"
        )
        self._java = require_executable(
            self.title,
            shutil.which("java"),
            "java",
            "apt-get install -y openjdk-17-jre-headless; scripts/install-test-deps does it",
        )

    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        argv = [
            self._emulator,
            "start",
            f"--host={LOOPBACK}",
            f"--port={port}",
            f"--project_id={PROJECT}",
        ]
        env = dict(os.environ)
        setpriv = shutil.which("setpriv")
        if setpriv:
            # The wrapper runs $JAVA as its child: have the JVM die with the wrapper, so a
            # killed pytest (which takes the wrapper down) leaves no JVM behind either.
            env["JAVA"] = f"{setpriv} --pdeathsig TERM -- {self._java}"
        return ServerProcess(
            self.title, argv, log_path=workdir / "server.log", cwd=workdir, env=env
        )

    def _ready(self, port: int) -> bool:
        return http_answers(f"http://{LOOPBACK}:{port}/")

    def _base_url(self, host: str, port: int) -> str:
        return f"firestore://{PROJECT}?emulator_host={host}:{port}"

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        endpoint = FirestoreEndpoint.from_url(self.url)
        await asyncio.to_thread(endpoint.reset)
        try:
            yield self.url
        finally:
            await asyncio.to_thread(endpoint.reset)
