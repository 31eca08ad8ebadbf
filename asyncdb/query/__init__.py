"""The query language: pure parsing, evaluation, sorting and updates (no I/O)."""

from asyncdb.query.aggregate import run_pipeline
from asyncdb.query.ast import Node, Projection, Sort, Update
from asyncdb.query.evaluate import matches, resolve
from asyncdb.query.parse import (
    parse_filter,
    parse_projection,
    parse_replacement,
    parse_sort,
    parse_update,
)
from asyncdb.query.pipeline import parse_pipeline
from asyncdb.query.sort import sort_documents, sort_key
from asyncdb.query.update import apply_projection, apply_update, upsert_seed

__all__ = [
    "Node",
    "Projection",
    "Sort",
    "Update",
    "apply_projection",
    "apply_update",
    "matches",
    "parse_filter",
    "parse_pipeline",
    "parse_projection",
    "parse_replacement",
    "parse_sort",
    "parse_update",
    "resolve",
    "run_pipeline",
    "sort_documents",
    "sort_key",
    "upsert_seed",
]
