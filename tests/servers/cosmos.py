"""A Cosmos DB (NoSQL API) server: the npm package ``@vercel/cosmosdb-server`` (pinned in
package.json; ``npm ci`` puts it under node_modules/), run with Node on HTTPS with a
self-signed certificate, so clients connect with ``connection_verify=False``. It is partial:
no OFFSET/LIMIT, DISTINCT, GROUP BY, LIKE, transactional batch or TTL; a missing item gives
500, not 404; ``partition_key=`` does not scope a query. Each test gets its own database,
deleted afterwards.

URL: ``cosmos://127.0.0.1:PORT/t0123456789ab?key=...&verify=false``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .base import REPO_ROOT, ThrowawayServer, require_executable, unique_name
from .process import LOOPBACK, ServerProcess, ServerStartError, http_answers

# What cosmosdb-server lacks or does differently from Cosmos DB, and what the cosmos backend
# does about it (the one list of them; asyncdb/backends/cosmos/ keeps the real-service paths).
SERVER_GAPS: dict[str, str] = {
    "transactional batch": "accepted but not atomic: insert_many compensates (deletes what it "
    "created) instead; `transactions` is not claimed",
    "TTL (defaultTtl, per-item ttl)": "ignored: expired documents are filtered out by the "
    "shared visible() re-check and deleted by purge_expired; native_ttl=true sets both on "
    "real Cosmos DB",
    "OFFSET/LIMIT": "not used: skip is done in process, a limit is pushed only as TOP n",
    "DISTINCT, GROUP BY, LIKE": "not used by the planner",
    "missing item -> 500, not 404": "a 500 on a point read or delete is confirmed by a query "
    "on id and pk before it counts as 'missing'",
    "partition_key= does not scope a query": "queries put c.pk = @pk in WHERE instead",
    "EXISTS(SELECT VALUE e FROM e IN c.a ...) on a non-array": "the subquery fails with 400 "
    "instead of being false: ranges on arrays are over-approximated with IS_ARRAY",
    "parser time doubles with each level of parentheses": "SQL is rendered with the fewest "
    "parentheses and conditions nested deeper than MAX_NESTING (planner.py) stay residual",
    "string comparison by UTF-16 code unit": "as real Cosmos DB (JavaScript order): string "
    "ranges are pushed only for literals below U+D800, where it equals code point order",
}

# The Cosmos emulator's published, well-known key; cosmosdb-server accepts any key.
EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)
CLI = REPO_ROOT / "node_modules" / "@vercel" / "cosmosdb-server" / "lib" / "cli.js"


@dataclass(frozen=True)
class CosmosEndpoint:
    """What a raw driver needs from a ``cosmos://`` URL."""

    endpoint_url: str  # https://host:port
    key: str
    verify: bool
    database: str

    @classmethod
    def from_url(cls, url: str) -> CosmosEndpoint:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        verify = query.get("verify", ["true"])[0].lower() not in ("false", "0", "no")
        return cls(
            f"https://{parts.hostname}:{parts.port}",
            query.get("key", [EMULATOR_KEY])[0],
            verify,
            parts.path.strip("/"),
        )


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` (key and verify kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


class CosmosServer(ThrowawayServer):
    name: ClassVar[str] = "cosmos"
    title: ClassVar[str] = "Cosmos DB (cosmosdb-server)"
    schemes: ClassVar[tuple[str, ...]] = ("cosmos",)

    def __init__(self) -> None:
        super().__init__()
        self._node = ""

    def _prepare(self, workdir: Path) -> None:
        self._node = require_executable(
            self.title, shutil.which("node"), "node", "Node.js 20 from the machine image"
        )
        if not CLI.is_file():
            raise ServerStartError(
                f"{self.title}: {CLI.relative_to(REPO_ROOT)} is missing (npm package"
                " @vercel/cosmosdb-server: run `npm ci` at the repo root;"
                " scripts/install-test-deps does it)"
            )

    def _launch(self, port: int, workdir: Path) -> ServerProcess:
        argv = [self._node, str(CLI), "--host", LOOPBACK, "-p", str(port)]
        return ServerProcess(self.title, argv, log_path=workdir / "server.log", cwd=workdir)

    def _ready(self, port: int) -> bool:
        return http_answers(f"https://{LOOPBACK}:{port}/")

    def _base_url(self, host: str, port: int) -> str:
        query = urlencode({"key": EMULATOR_KEY, "verify": "false"})
        return f"cosmos://{host}:{port}/?{query}"

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        from azure.cosmos.aio import CosmosClient
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        endpoint = CosmosEndpoint.from_url(self.url)
        database = unique_name()
        async with CosmosClient(
            endpoint.endpoint_url, credential=endpoint.key, connection_verify=endpoint.verify
        ) as client:
            await client.create_database(database)
            try:
                yield with_database(self.url, database)
            finally:
                with suppress(CosmosResourceNotFoundError):
                    await client.delete_database(database)
