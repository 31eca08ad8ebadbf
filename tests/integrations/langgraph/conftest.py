"""The backends of the LangGraph tests: the conformance suite's ``BACKENDS`` and its fixtures
(``ASYNCDB_TEST_BACKENDS`` selects them here too)."""

from conformance.conftest import backend_name, backend_url, db

__all__ = ["backend_name", "backend_url", "db"]
