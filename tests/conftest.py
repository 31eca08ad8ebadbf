"""Root pytest wiring: the real-server fixtures (tests/servers/), the grouping that lets
``pytest -n 2`` (pytest-xdist) start each server in one worker only, and the session summary
that says which servers ran, how long each took to start, and which backends were skipped."""

from __future__ import annotations

from typing import Any

import pytest
from servers.pool import POOL, SERVER_TYPES

pytest_plugins = ["servers.plugin"]

# The fixtures that mean "this test talks to that server", beyond ``<name>_url``/``_server``.
_EXTRA_FIXTURES = {"redis_cluster": "redis", "postgres_replica": "postgres"}


def server_of(item: pytest.Item) -> str | None:
    """The real server a test needs (the first, when it needs several), or None.

    Read from its fixtures (``postgres_url``, ``redis_cluster`` ...) and from its parameters,
    since the conformance suite picks its backend's fixture by a ``backend_name`` parameter."""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params: list[Any] = list(callspec.params.values()) if callspec is not None else []
    for server in SERVER_TYPES:
        if {f"{server}_url", f"{server}_server"} & names:
            return server
        if any(value == server for value in params if isinstance(value, str)):
            return server
    for fixture, server in _EXTRA_FIXTURES.items():
        if fixture in names:
            return server
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, every test of one server goes to the same worker: each
    server starts once per run, not once per worker. Tests without a server spread freely."""
    if config.getoption("dist", "no") != "loadgroup":
        return
    for item in items:
        server = server_of(item)
        if server is not None:
            item.add_marker(pytest.mark.xdist_group(server))


_WORKER_LINES: list[str] = []  # the summary lines pytest-xdist workers sent back


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    lines = POOL.summary_lines()
    lines += [line for line in _WORKER_LINES if line.split(": ", 1)[1] not in lines]
    if lines:
        terminalreporter.section("asyncdb test servers")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In an xdist worker, hand this worker's server lines to the controller's summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["asyncdb_servers"] = POOL.summary_lines()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    worker = node.gateway.id
    output = getattr(node, "workeroutput", {})
    _WORKER_LINES.extend(f"{worker}: {line}" for line in output.get("asyncdb_servers", ()))
