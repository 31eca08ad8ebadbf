"""What every benchmark script prints and saves: an aligned table, a markdown table for the
README, and ``benchmarks/results/<name>.json``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentiles_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p95 and mean of per-call samples (nanoseconds), in microseconds."""
    ordered = sorted(samples_ns)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return {
        "median_us": statistics.median(ordered) / 1000,
        "p95_us": p95 / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
        "n": len(ordered),
    }


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = _cells(rows)
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        cols = zip(row, widths, numeric, strict=True)
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in cols).rstrip()

    print(fmt(headers))
    print(fmt(["-" * w for w in widths]))
    for row in cells:
        print(fmt(row))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _cells(rows)]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, **environment(), **data}, indent=2, default=str) + "\n"
    )
    return path
