"""``asyncdb demo`` end to end: run it as a user would, then recount what it printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import asyncdb

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "Load",
    "Queries",
    "Updates",
    "Paging",
    "Transactions",
    "Scan policy",
    "Explain",
    "Final state",
)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "asyncdb", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def section(output: str, title: str) -> list[str]:
    """The lines of one ``== n. Title ==`` section."""
    match = re.search(rf"^== \d+\. {re.escape(title)} ==\n(.*?)(?=^== |\Z)", output, re.M | re.S)
    assert match, f"section {title!r} missing from:\n{output}"
    return match.group(1).splitlines()


def table(lines: list[str], first_header: str) -> list[list[str]]:
    """The cells of the aligned table whose header starts with ``first_header`` (the dashes
    under the header give the columns; the table ends at the first line that does not fit)."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(first_header))
    spans = [m.span() for m in re.finditer(r"-+", lines[start + 1])]
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip() or any(line[end : end + 2].strip() for _, end in spans[:-1]):
            break
        bounds = [begin for begin, _ in spans[1:]] + [len(line)]
        rows.append([line[b:e].strip() for (b, _), e in zip(spans, bounds, strict=True)])
    return rows


def load_filter(text: str) -> dict[str, Any]:
    def dates(obj: dict[str, Any]) -> Any:
        if set(obj) == {"$date"}:
            return datetime.fromisoformat(obj["$date"].replace("Z", "+00:00"))
        return obj

    result: dict[str, Any] = json.loads(text, object_hook=dates)
    return result


def normalized(output: str) -> str:
    """The output without what legitimately changes between runs: timings, cursors, resets."""
    output = re.sub(r"\d+\.\d+ ms", "<t> ms", output)
    output = re.sub(r"\.\.\.[A-Za-z0-9_-]{16}", "...<cursor>", output)
    return re.sub(r"reset: removed .*", "reset: <n>", output)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo run twice on one file (in a directory of its own)."""
    workdir = tmp_path_factory.mktemp("demo")
    db_file = workdir / "tour.db"
    outputs = []
    for _ in range(2):
        proc = run_cli("demo", "--db", str(db_file), cwd=workdir)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        outputs.append(proc.stdout)
    return db_file, outputs


def test_demo_prints_every_section_on_sqlite(demo_runs: tuple[Path, list[str]]) -> None:
    db_file, (first, _) = demo_runs
    assert db_file.exists()
    assert "(backend sqlite)" in first.splitlines()[0]
    for title in SECTIONS:
        assert section(first, title)
    assert "ScanRequired:" in "\n".join(section(first, "Scan policy"))
    explain = section(first, "Explain")
    assert sum(line.startswith("  explain(") for line in explain) == 2
    for label in ("access path", "native sql", "native params", "exact in store", "re-checked"):
        assert sum(label in line for line in explain) == 2, label


def test_demo_is_rerunnable_with_the_same_results(demo_runs: tuple[Path, list[str]]) -> None:
    _, (first, second) = demo_runs
    assert "reset: removed 0 alerts and 0 incidents" in first
    assert "reset: removed 300 alerts and 1 incidents" in second
    assert normalized(first) == normalized(second)


def test_demo_pages_cover_the_filter_once(demo_runs: tuple[Path, list[str]]) -> None:
    _, (first, _) = demo_runs
    lines = section(first, "Paging")
    pages = table(lines, "page")
    assert 2 <= len(pages) <= 3
    assert pages[-1][-1] == "None (last page)"
    summary = next(line for line in lines if "pages," in line)
    n = sum(int(row[1]) for row in pages)
    assert f"{len(pages)} pages, {n} alerts, no repeats; count_documents says {n}" in summary


async def test_demo_numbers_agree_with_a_recount(demo_runs: tuple[Path, list[str]]) -> None:
    db_file, (_, output) = demo_runs
    async with asyncdb.connect(f"sqlite:///{db_file}") as db:
        alerts = db.collection("alerts", allow_scan=True)
        incidents = db.collection("incidents", allow_scan=True)

        load = table(section(output, "Load"), "company")
        assert [row[0] for row in load] == ["acme", "globex", "initech", "umbrella", "hooli"]
        for company, n, floats, no_tags, no_assignee in load:
            assert int(n) == await alerts.count_documents({"company": company})
            assert int(floats) == await alerts.count_documents(
                {"company": company, "priority": {"$type": "double"}}
            )
            assert int(no_tags) == await alerts.count_documents(
                {"company": company, "tags": {"$exists": False}}
            )
            assert int(no_assignee) == await alerts.count_documents(
                {"company": company, "assignee": {"$exists": False}}
            )

        # Section 2 filters touch only fields the later sections leave alone.
        queries = table(section(output, "Queries"), "matches")
        assert len(queries) >= 8
        for row in queries:
            spec = load_filter(row[1])
            assert int(row[0]) == await alerts.count_documents(spec), row[1]
        ne = next(row for row in queries if '"$ne"' in row[1])
        missing = next(row for row in queries if '"$exists": false' in row[1])
        assert int(ne[0]) > int(missing[0]) > 0

        final = section(output, "Final state")
        rows = table(final, "company")
        statuses = ["open", "acknowledged", "resolved", "in_incident"]
        for company, *counts in rows[:-1]:
            for status, n in zip(statuses, counts, strict=False):
                assert int(n) == await alerts.count_documents(
                    {"company": company, "status": status}
                )
            assert int(counts[-1]) == await alerts.count_documents({"company": company})
        assert rows[-1][0] == "total"
        assert int(rows[-1][-1]) == await alerts.count_documents({}) == 300
        assert f"  incidents: {await incidents.count_documents({})}" in final

        # The committed transaction wrote the incident and its alerts; the rolled-back one nothing.
        incident = await incidents.find_one({"id": "INC-0001"})
        assert incident is not None
        linked = await alerts.count_documents({"incident_id": "INC-0001"})
        assert linked == len(incident["alert_ids"]) > 0
        assert f"{linked} acme alerts moved to in_incident" in output
        assert await incidents.find_one({"id": "INC-0002"}) is None
        assert await alerts.count_documents({"incident_id": "INC-0002"}) == 0


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    proc = run_cli("version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"asyncdb {asyncdb.__version__}"


def test_log_lines_after_main_returns_follow_the_current_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # main() configures structlog for its log lines; a stream swapped in while it ran (as a test
    # harness or an embedding application does) and closed after must not break later logging.
    import io

    import structlog

    from asyncdb.cli import main

    structlog.reset_defaults()  # as in a fresh process: main() configures structlog itself
    try:
        swapped = io.StringIO()
        monkeypatch.setattr(sys, "stderr", swapped)
        assert main(["version"]) == 0
        swapped.close()
        later = io.StringIO()
        monkeypatch.setattr(sys, "stderr", later)
        structlog.get_logger("asyncdb.test").warning("after main", n=1)
        assert "after main" in later.getvalue()
    finally:
        structlog.reset_defaults()
