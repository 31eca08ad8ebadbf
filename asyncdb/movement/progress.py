"""Progress of a copy on stderr: a rich bar on a terminal, a plain line every few seconds when
piped (logs keep a trace without control characters), nothing for ``--output json`` alone."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PLAIN_EVERY = 5.0  # seconds between plain lines


class PlainProgress:
    """``copied 12000/50000 documents (2400/s, ETA 16 s)`` every ``every`` seconds."""

    def __init__(self, out: TextIO, every: float = PLAIN_EVERY) -> None:
        self.out = out
        self.every = every
        self.total: int | None = None
        self.done = 0
        self._start = self._last = time.monotonic()

    def start(self, total: int | None) -> None:
        self.total = total
        self._start = self._last = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        of = "" if self.total is None else f"/{self.total}"
        eta = ""
        if self.total is not None and rate > 0:
            eta = f", ETA {max(self.total - self.done, 0) / rate:.0f} s"
        return f"copied {self.done}{of} documents ({rate:.0f}/s{eta})"

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            print(self.line(), file=self.out, flush=True)

    def close(self) -> None:
        print(self.line(), file=self.out, flush=True)


class RichProgress:
    """A rich progress bar (documents/s, ETA)."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("copy"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} docs/s"),
            TimeRemainingColumn(),
            console=Console(file=out),
        )
        self._task: Any = None
        self._start = time.monotonic()
        self._done = 0

    def start(self, total: int | None) -> None:
        self._bar.start()
        self._task = self._bar.add_task("copy", total=total, rate="0")
        self._start = time.monotonic()

    def advance(self, n: int) -> None:
        self._done += n
        rate = self._done / max(time.monotonic() - self._start, 1e-9)
        self._bar.update(self._task, advance=n, rate=f"{rate:.0f}")

    def close(self) -> None:
        self._bar.stop()


def for_stream(out: TextIO | None = None) -> PlainProgress | RichProgress:
    """The progress view for ``out`` (stderr by default): rich on a TTY, plain lines otherwise."""
    out = out if out is not None else sys.stderr
    if out.isatty():
        try:
            return RichProgress(out)
        except ImportError:  # rich is in the "cli" extra
            pass
    return PlainProgress(out)


__all__ = ["PlainProgress", "RichProgress", "for_stream"]
