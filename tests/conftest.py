"""Root pytest wiring: the real-server fixtures (tests/servers/) and the session summary that
says which servers ran, how long each took to start, and which backends were skipped."""

from __future__ import annotations

import pytest
from servers.pool import POOL

pytest_plugins = ["servers.plugin"]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    lines = POOL.summary_lines()
    if lines:
        terminalreporter.section("asyncdb test servers")
        for line in lines:
            terminalreporter.write_line(line)
