"""The movement CLI around the engine: progress when piped, ``--output json``,
``cloudformation``, ``backup``/``restore``, the anonymize hook, the rate limit, and the
example migration against the test bed's servers."""

from __future__ import annotations

import asyncio
import io
import json
import os
import runpy
import time
from pathlib import Path
from typing import Any

import pytest

import asyncdb
from asyncdb.movement.copier import RateLimit
from asyncdb.movement.progress import PlainProgress, RichProgress, for_stream

from .conftest import ROOT, run_cli


async def _fill(url: str, n: int) -> None:
    async with asyncdb.connect(url) as db:
        await db.collection("alerts", indexes=["status", ("company", ("ts", -1))]).insert_many(
            [{"id": f"a{i:04d}", "status": "open", "company": "c", "ts": i} for i in range(n)]
        )


def test_copy_piped_prints_plain_progress_and_a_json_report(tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    asyncio.run(_fill(src, 300))
    done = run_cli("copy", src, dst, "--batch-size", "50", "--output", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["collections"]["alerts"] == {
        "read": 300, "written": 300, "skipped": 0, "failed": 0,
    }  # fmt: skip
    assert report["verify"]["equal"] is True
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("copied 300/300 documents (")  # no control characters
    assert "\x1b" not in done.stderr
    backup = tmp_path / "b.jsonl.gz"
    assert run_cli("backup", dst, str(backup), cwd=tmp_path).returncode == 0
    restored = run_cli(
        "restore", str(backup), f"sqlite:///{tmp_path / 'c.db'}", "--output", "json", cwd=tmp_path
    )
    assert json.loads(restored.stdout)["collections"] == {"alerts": 300}
    backup.write_bytes(backup.read_bytes()[:-30])
    refused = run_cli("restore", str(backup), f"sqlite:///{tmp_path / 'd.db'}", cwd=tmp_path)
    assert refused.returncode == 2 and "BackupError" in refused.stderr


def test_progress_view_depends_on_the_stream() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(for_stream(Tty()), RichProgress)
    out = io.StringIO()
    plain = for_stream(out)
    assert isinstance(plain, PlainProgress)
    plain.start(10)
    plain.advance(4)
    plain.close()
    assert out.getvalue().startswith("copied 4/10 documents (")


def test_cloudformation_prints_the_catalog_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    asyncio.run(_fill(url, 3))
    done = run_cli("cloudformation", url, "--prefix", "prod_", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    props = json.loads(done.stdout)["Resources"]["ProdAlertsTable"]["Properties"]
    assert props["TableName"] == "prod_alerts"
    assert sorted(g["IndexName"] for g in props["GlobalSecondaryIndexes"]) == [
        "ix_company_ts",
        "ix_status",
    ]


class Masker:
    """Shaped like the security Anonymizer: an ``apply(doc) -> doc`` method."""

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "email": "***"}


async def test_anonymize_takes_an_object_with_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with asyncdb.connect("memory://") as a, asyncdb.connect("memory://") as b:
        await a.collection("u").insert_many([{"id": "1", "email": "x@y"}])
        report = await asyncdb.copy(a, b, anonymize=Masker())
        assert report.verify is not None and report.verify.equal  # verified after masking
        assert await b.collection("u").find_one({"id": "1"}) == {"id": "1", "email": "***"}
        assert not (await asyncdb.verify(a, b)).equal  # the raw source differs, as it should


async def test_rate_limit_paces_documents() -> None:
    limit = RateLimit(200)
    started = time.monotonic()
    for _ in range(5):
        await limit.take(20)  # 100 documents at 200/s: at least 0.4 s after the first batch
    assert time.monotonic() - started >= 0.39
    with pytest.raises(asyncdb.ConfigurationError):
        RateLimit(0)


async def test_example_migration_runs_against_the_test_servers(
    mongo_url: str, dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    script = ROOT / "examples" / "migrate_alerts_mongo_to_dynamodb.py"
    module = runpy.run_path(str(script))
    await module["main"](mongo_url, dynamodb_url)
    out = capsys.readouterr().out
    assert '"alerts": {\n    "read": 200,\n    "written": 200' in out
    async with asyncdb.connect(dynamodb_url) as db:
        specs = {s.name: s for s in await db.list_collections()}
        assert set(specs) == {"alerts", "companies", "incidents", "users"}
        alerts = db.collection("alerts", indexes=specs["alerts"].indexes)
        plan = await alerts.explain({"status": "open"})
        assert plan.access_path == "index:ix_status"  # the GSI serves it
        assert await alerts.count_documents({"status": "open"}) == 67
    assert "dead.jsonl" not in os.listdir(tmp_path)  # nothing failed
