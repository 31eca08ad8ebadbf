"""The backends the conformance suite runs against, and the fixtures every test shares.

``BACKENDS`` is the one place a backend is added: a name and a function of the pytest request
that returns the URL of a fresh, empty database for one test (server backends get theirs from
the ``<backend>_url`` fixtures of tests/servers, which also clean up). Every test that takes the
``db`` (or ``backend_url``) fixture runs once per selected backend.

``ASYNCDB_TEST_BACKENDS=memory,sqlite`` selects a subset (default: all of them). A selected
backend that cannot be imported or connected makes its tests fail; nothing is skipped silently,
and the report header says which backends ran and which were left out.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

import asyncdb

BackendFactory = Callable[[pytest.FixtureRequest], str]


def _memory(request: pytest.FixtureRequest) -> str:
    return "memory://"  # every connect() to memory:// opens a new, empty store


def _sqlite(request: pytest.FixtureRequest) -> str:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return f"sqlite:///{tmp_path / 'conformance.db'}"  # absolute: sqlite:////tmp/...


# name -> the URL of a fresh, empty database for one test. A server backend reuses the
# fixture of tests/servers, e.g. "postgres": lambda r: r.getfixturevalue("postgres_url").
BACKENDS: dict[str, BackendFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "mongo": lambda r: r.getfixturevalue("mongo_url"),
    "firestore": lambda r: r.getfixturevalue("firestore_url"),
    "cosmos": lambda r: r.getfixturevalue("cosmos_url"),
    "postgres": lambda r: r.getfixturevalue("postgres_url"),
    "dynamodb": lambda r: r.getfixturevalue("dynamodb_url"),
}


def _selected() -> list[str]:
    raw = os.environ.get("ASYNCDB_TEST_BACKENDS", "").strip()
    if not raw:
        return list(BACKENDS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise pytest.UsageError(
            f"ASYNCDB_TEST_BACKENDS names unknown backends {unknown}; known: {list(BACKENDS)}"
        )
    return names


SELECTED = _selected()

# HYPOTHESIS_PROFILE picks one (default "ci"). derandomize: the same examples on every CI run;
# "dev" explores new ones each run.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# "quick": the ci examples without shrinking, to see a failure fast (its example is not minimal)
settings.register_profile(
    "quick",
    parent=settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.register_profile(
    "dev",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    left_out = [n for n in BACKENDS if n not in SELECTED]
    line = f"asyncdb conformance backends: {', '.join(SELECTED)}"
    if left_out:
        line += f"  (NOT RUN, deselected by ASYNCDB_TEST_BACKENDS: {', '.join(left_out)})"
    return [line]


@pytest.fixture(params=SELECTED)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def backend_url(backend_name: str, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database of the backend under test."""
    return BACKENDS[backend_name](request)


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[asyncdb.Database]:
    """A connected database, empty, closed after the test."""
    database = await asyncdb.connect(backend_url)
    try:
        yield database
    finally:
        await database.close()
