"""Fixtures of the table-mode suite: a typed SQLAlchemy schema, created on SQLite (a temporary
file) and on PostgreSQL (the ``postgres_url`` fixture of tests/servers: a fresh database).

``ASYNCDB_TEST_TABLE_DIALECTS=sqlite`` selects one dialect (default: both).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings

import asyncdb
from asyncdb.backends.table.store import TableStore

DIALECTS = [
    d.strip()
    for d in os.environ.get("ASYNCDB_TEST_TABLE_DIALECTS", "sqlite,postgres").split(",")
    if d.strip()
]

# The same profiles as tests/conformance (this suite may run on its own).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "quick", parent=settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate]
)
settings.register_profile(
    "dev",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

METADATA = sa.MetaData()
# A typed schema like the ones teams migrate from: every column kind table mode handles.
ITEMS = sa.Table(
    "items",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(40)),
    sa.Column("n", sa.BigInteger),
    sa.Column("small", sa.Integer),
    sa.Column("f", sa.Float),
    sa.Column("price", sa.Numeric(12, 4)),
    sa.Column("flag", sa.Boolean),
    sa.Column("ts", sa.DateTime(timezone=True)),
    sa.Column("data", sa.LargeBinary),
    sa.Column("meta", sa.JSON),
    sa.Index("ix_items_name", "name"),
)
# A composite key and a NOT NULL column with a default.
MESSAGES = sa.Table(
    "messages",
    METADATA,
    sa.Column("conversation", sa.String(40), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="new"),
)


@pytest.fixture(params=DIALECTS)
def table_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty database on each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tables.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def create_schema(url: str) -> None:
    """``metadata.create_all`` on the URL's database (table mode itself creates nothing)."""
    store = TableStore.for_url(url)
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
    finally:
        await store.close()


@pytest.fixture
async def tdb(table_url: str) -> AsyncIterator[asyncdb.Database]:
    """A tables-only database with the schema created and empty."""
    await create_schema(table_url)
    db = await asyncdb.connect(table_url, tables_only=True)
    try:
        yield db
    finally:
        await db.close()
