"""The ``asyncdb`` command line: one module per command group.

A command group is a module with ``add_parser(subparsers)`` (which adds its sub-commands and
sets ``run`` as their default, or leaves it to the module's ``run(args) -> int``) and
``run(args) -> int``. Adding a group is adding its module to :data:`COMMANDS`; a group whose
module is not installed (an optional part of the package) is left out of ``--help``.

Conventions of every command (:mod:`asyncdb.cli.output`): ``--output table|json|jsonl``;
exit 0 when all is well, 1 when a check found a problem, 2 on a usage or backend error (a
one-line message, no traceback); ``--dry-run`` and ``--yes`` on destructive commands; colour
and progress bars only on a terminal.

>>> # $ asyncdb doctor postgresql://app@db:5432/app --output json
>>> # $ asyncdb bench sqlite:///bench.db --workload read,query --concurrency 1,16 --raw --plot b.png
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import structlog

import asyncdb
from asyncdb.cli.output import ERROR, CommandError

# The command groups, in --help order. Modules of other parts of the package register here.
COMMANDS: tuple[str, ...] = (
    "asyncdb.cli.demo",
    "asyncdb.cli.doctor",
    "asyncdb.cli.query",
    "asyncdb.cli.bench",
    "asyncdb.cli.audit",
    "asyncdb.movement.commands",
    "asyncdb.security.commands",
)


def _groups() -> list[ModuleType]:
    modules = []
    for name in COMMANDS:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing.startswith("asyncdb") and not name.startswith(missing):
                raise  # a module of the package itself is missing: a broken install
            # Not installed: a part of the package not present, or an extra not installed.
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncdb", description="asyncdb: one async API over every document store."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _groups():
        before = set(sub.choices)
        module.add_parser(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("run") is None:
                sub.choices[name].set_defaults(run=module.run)
    return parser


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    """A structlog logger writing to the current ``sys.stderr``."""
    return structlog.PrintLogger(sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``asyncdb`` console script."""
    args = build_parser().parse_args(argv)
    if not structlog.is_configured():
        # Log lines (slow operations, retries) go to stderr: stdout is the command's output.
        # The stream is looked up for each logger, not kept: a caller (or a test harness) that
        # swaps sys.stderr after main() returns must not leave log lines writing to a closed file.
        structlog.configure(logger_factory=_stderr_logger)
    run: Any = args.run
    try:
        code: int = run(args)
    except CommandError as exc:
        print(f"asyncdb {args.command}: {exc}", file=sys.stderr)
        return ERROR
    except asyncdb.AsyncDBError as exc:
        print(f"asyncdb {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ERROR
    except KeyboardInterrupt:
        print(f"asyncdb {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (asyncdb find ... | head): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


__all__ = ["COMMANDS", "build_parser", "main"]
