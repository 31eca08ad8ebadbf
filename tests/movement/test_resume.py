"""DESIGN §8: ``kill -9`` a real ``python -m asyncdb copy`` at random points, then ``--resume``:
the destination ends equal to the source, with no duplicates and no gaps.

The kills are seeded (the same points on every CI run). ``ASYNCDB_MOVEMENT_KILLS`` sets how many
kills per copy (default 2 in CI; a nightly profile runs more).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncdb

from .conftest import cli_env, run_cli

KILLS = int(os.environ.get("ASYNCDB_MOVEMENT_KILLS", "2"))
N = 400
WHEN = datetime(2025, 3, 14, tzinfo=UTC)


def documents() -> list[dict[str, Any]]:
    return [
        {
            "id": f"k{i:04d}",
            "company": f"c{i % 5}",
            "n": i if i % 2 else float(i),
            "at": WHEN + timedelta(seconds=i),
            "tags": [i % 3, "t"],
        }
        for i in range(N)
    ]


def copy_args(src: str, dst: str, checkpoint: str) -> list[str]:
    return [
        "copy", src, dst, "--batch-size", "20", "--workers", "2", "--rate", "600",
        "--checkpoint", checkpoint, "--checkpoint-every", "0", "--no-progress",
        "--output", "json",
    ]  # fmt: skip


def file_stamp(checkpoint: Path) -> Callable[[], Any]:
    """The checkpoint file's modification time (None while there is none)."""

    def stamp() -> Any:
        try:
            return checkpoint.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    return stamp


def kill_at_random_point(
    args: list[str], cwd: Path, stamp: Callable[[], Any], rng: random.Random
) -> bool:
    """Start the copy, wait until it saved its checkpoint a random number of times (``stamp``
    changed), sleep a random fraction of a batch, kill -9. Returns False if the copy finished
    before the kill."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncdb", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = rng.randint(1, 6)
    seen, last = 0, None
    deadline = time.monotonic() + 60
    while proc.poll() is None and seen < target and time.monotonic() < deadline:
        now = stamp()
        if now is not None and now != last:
            seen, last = seen + 1, now
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.05))
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


async def _kill_and_resume(
    src: str,
    dst: str,
    tmp_path: Path,
    seed: int,
    kills: int = KILLS,
    checkpoint: str | None = None,
    stamp: Callable[[], Any] | None = None,
) -> None:
    """Kill -9 copies at random points, then resume; ``checkpoint`` (a ``dest:NAME``) and
    ``stamp`` (what changes on every save) for a checkpoint kept elsewhere than a file."""
    async with asyncdb.connect(src) as db:
        await db.collection("events", indexes=["company"]).insert_many(documents())
    path = tmp_path / "copy.ckpt.json"
    args = copy_args(src, dst, checkpoint or str(path))
    stamp = stamp or file_stamp(path)
    rng = random.Random(seed)
    killed = 0
    for attempt in range(kills):
        if kill_at_random_point([*args, *(["--resume"] if attempt else [])], tmp_path, stamp, rng):
            killed += 1
    assert killed, "every copy finished before it could be killed"
    saved = stamp()
    assert saved is not None
    done = run_cli(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed"] is True
    assert report["read"] < N  # it continued; it did not start again
    assert report["verify"]["equal"] is True
    assert not path.exists()
    async with asyncdb.connect(dst) as db:
        events = db.collection("events", indexes=["company"])
        got = await events.find({}, sort=[("id", 1)], allow_scan=True).to_list()
        assert await events.count_documents({}, allow_scan=True) == N
    assert got == documents()  # no gaps, no duplicates, values exact


async def test_kill_and_resume_sqlite_to_postgres(tmp_path: Path, postgres_url: str) -> None:
    await _kill_and_resume(f"sqlite:///{tmp_path / 'src.db'}", postgres_url, tmp_path, seed=17)


async def test_kill_and_resume_mongo_to_dynamodb(
    tmp_path: Path, mongo_url: str, dynamodb_url: str
) -> None:
    await _kill_and_resume(mongo_url, dynamodb_url, tmp_path, seed=18)


async def test_kill_and_resume_with_the_checkpoint_in_the_destination(tmp_path: Path) -> None:
    dst_file = tmp_path / "dst.db"

    def stamp() -> Any:  # the checkpoint document as the destination holds it
        if not dst_file.exists():
            return None
        with contextlib.closing(sqlite3.connect(dst_file, timeout=5)) as conn:
            try:
                return conn.execute('SELECT * FROM "_asyncdb_copy_checkpoint"').fetchall() or None
            except sqlite3.OperationalError:  # not created yet
                return None

    src, dst = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{dst_file}"
    await _kill_and_resume(src, dst, tmp_path, 19, 1, "dest:", stamp)
    assert stamp() is None  # removed after the verified copy
    assert not [p for p in os.listdir(tmp_path) if "ckpt" in p or p.startswith(".asyncdb-copy")]
    async with asyncdb.connect(dst) as db:  # asyncdb's own collection: not in the catalog
        assert [s.name for s in await db.list_collections()] == ["events"]


def test_verify_cli_exit_codes(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"

    async def fill() -> None:
        async with asyncdb.connect(a) as x, asyncdb.connect(b) as y:
            await x.collection("t").insert_many([{"id": "p", "v": 1}, {"id": "q", "v": 2}])
            await y.collection("t").insert_many([{"id": "p", "v": 1}, {"id": "q", "v": 3}])

    asyncio.run(fill())
    differs = run_cli("verify", a, b, "--output", "json", cwd=tmp_path)
    assert differs.returncode == 1, differs.stderr
    assert json.loads(differs.stdout)["collections"]["t"]["different"] == ["q"]
    copied = run_cli("copy", a, b, "--no-progress", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "t: equal" in copied.stdout
    assert run_cli("verify", a, b, cwd=tmp_path).returncode == 0
    broken = run_cli("verify", a, "nosuch://x", cwd=tmp_path)
    assert broken.returncode == 2
    assert broken.stderr.startswith("asyncdb verify: ConfigurationError")
