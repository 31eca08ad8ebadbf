"""One filter conjunct -> a SQL condition on ``doc`` using SQL/JSON path (pure).

v1: nothing is compiled (every conjunct is residual); see the planner for how it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from asyncdb.query.ast import Node

Bind = Callable[..., str]


class Compiled(NamedTuple):
    """SQL selecting a superset of a conjunct's matches; ``exact`` when it selects exactly them."""

    sql: str
    exact: bool


def compile_term(term: Node, bind: Bind) -> Compiled | None:
    """The SQL of ``term``, or None when it stays entirely in the residual."""
    del term, bind
    return None


__all__ = ["Bind", "Compiled", "compile_term"]
_unused: Any = None
