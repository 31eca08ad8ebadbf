"""What every command shares: ``--output``, the renderers, JSON arguments, exit codes,
``--dry-run``/``--yes`` and progress on stderr.

Machine-readable output first: ``json`` is one document, ``jsonl`` one line per row, ``csv``
a header and rows; ``table`` is a view of the same rows (rich, coloured only on a terminal).
Values print in MongoDB's extended JSON (``{"$date": ...}``, ``{"$numberDecimal": ...}``,
``{"$binary": ...}``), and filters given on the command line are read the same way.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

OK, PROBLEM, ERROR = 0, 1, 2  # exit codes: all well / a check found a problem / usage, backend


class CommandError(Exception):
    """An expected failure of a command (bad argument, unreachable server): a message on
    stderr and exit 2, no traceback."""


def add_output(parser: argparse.ArgumentParser, *extra: str) -> None:
    parser.add_argument(
        "--output",
        choices=("table", "json", "jsonl", *extra),
        default="table",
        help="table (default), json or jsonl" + (f", {', '.join(extra)}" if extra else ""),
    )


def add_destructive(parser: argparse.ArgumentParser) -> None:
    """``--dry-run`` and ``--yes`` for a command that changes or removes data."""
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def confirm(args: argparse.Namespace, action: str) -> bool:
    """Whether a destructive ``action`` may go ahead: False with ``--dry-run`` (after saying
    what it would do), True with ``--yes`` or a "y" on a terminal, else a CommandError."""
    if getattr(args, "dry_run", False):
        print(f"dry run: would {action}", file=sys.stderr)
        return False
    if getattr(args, "yes", False):
        return True
    if sys.stdin.isatty():
        answer = input(f"{action}? [y/N] ")
        return answer.strip().lower() in ("y", "yes")
    raise CommandError(f"refusing to {action} without --yes (stdin is not a terminal)")


# --- values -----------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """A document's values as extended JSON."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return {"$date": value.isoformat().replace("+00:00", "Z")}
    if isinstance(value, Decimal):
        return {"$numberDecimal": str(value)}
    if isinstance(value, bytes):
        return {"$binary": base64.b64encode(value).decode()}
    return value


def _from_json(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((name, value),) = obj.items()
        if name == "$date" and isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if name == "$numberDecimal" and isinstance(value, str):
            return Decimal(value)
        if name == "$binary" and isinstance(value, str):
            return base64.b64decode(value)
    return obj


def parse_json(text: str | None, what: str) -> Any:
    """A JSON argument (extended JSON), or a CommandError naming ``what``."""
    if text is None:
        return None
    try:
        return json.loads(text, object_hook=_from_json)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc}") from None


def dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(to_json(value), indent=indent, ensure_ascii=False, default=str)


# --- renderers --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping | list | tuple | bytes):
        return dumps(value)
    return str(value)


def emit_rows(
    args: argparse.Namespace,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    document: Any = None,
    out: TextIO | None = None,
) -> None:
    """Print ``rows`` as ``args.output`` asks. ``document`` is what ``json`` prints (default:
    the rows as a list); ``jsonl`` and ``csv`` print the rows."""
    out = out or sys.stdout
    fmt = getattr(args, "output", "table")
    if fmt == "json":
        print(dumps(rows if document is None else document, indent=2), file=out)
        return
    if fmt == "jsonl":
        for row in rows:
            print(dumps(row), file=out)
        return
    cols = list(columns) if columns is not None else _columns(rows)
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(cols)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in cols])
        return
    table(cols, [[_cell(row.get(c)) for c in cols] for row in rows], title=title, out=out)


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            seen.setdefault(str(name), None)
    return list(seen)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    out: TextIO | None = None,
) -> None:
    """An aligned table: rich's on a terminal, plain columns otherwise (stable for pipes)."""
    out = out or sys.stdout
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        view = Table(title=title, show_lines=False)
        for h in headers:
            view.add_column(h, overflow="fold")
        for row in rows:
            view.add_row(*row)
        Console(file=out).print(view)
        return
    if title:
        print(title, file=out)
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


class Progress:
    """A progress line on stderr: a live rich bar on a terminal, otherwise one plain line per
    step at most every ``every`` seconds (and the last one), which reads well in a log."""

    def __init__(self, total: int, what: str, every: float = 2.0) -> None:
        self.total = total
        self.what = what
        self.every = every
        self.done = 0
        self._last = 0.0
        self._bar: Any = None
        self._task: Any = None
        if sys.stderr.isatty():
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task(what, total=total)

    def step(self, detail: str) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{self.what}: {detail}")
            return
        now = time.monotonic()
        if now - self._last >= self.every or self.done == self.total:
            self._last = now
            print(f"{self.what}: {self.done}/{self.total} {detail}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = [
    "ERROR",
    "OK",
    "PROBLEM",
    "CommandError",
    "Progress",
    "add_destructive",
    "add_output",
    "confirm",
    "dumps",
    "emit_rows",
    "parse_json",
    "table",
    "to_json",
]
