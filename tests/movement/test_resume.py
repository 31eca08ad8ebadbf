"""DESIGN §8: ``kill -9`` a real ``python -m asyncdb copy`` at random points, then ``--resume``:
the destination ends equal to the source, with no duplicates and no gaps.

The kills are seeded (the same points on every CI run). ``ASYNCDB_MOVEMENT_KILLS`` sets how many
kills per copy (default 2 in CI; a nightly profile runs more).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
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


def copy_args(src: str, dst: str, checkpoint: Path) -> list[str]:
    return [
        "copy", src, dst, "--batch-size", "20", "--workers", "2", "--rate", "600",
        "--checkpoint", str(checkpoint), "--checkpoint-every", "0", "--no-progress",
        "--output", "json",
    ]  # fmt: skip


def kill_at_random_point(args: list[str], cwd: Path, checkpoint: Path, rng: random.Random) -> bool:
    """Start the copy, wait until it acknowledged a random number of batches, sleep a random
    fraction of a batch, kill -9. Returns False if the copy finished before the kill."""
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
        try:
            stamp = checkpoint.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            seen, last = seen + 1, stamp
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.05))
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


async def _kill_and_resume(src: str, dst: str, tmp_path: Path, seed: int) -> None:
    async with asyncdb.connect(src) as db:
        await db.collection("events", indexes=["company"]).insert_many(documents())
    checkpoint = tmp_path / "copy.ckpt.json"
    args = copy_args(src, dst, checkpoint)
    rng = random.Random(seed)
    killed = 0
    for attempt in range(KILLS):
        if kill_at_random_point(
            [*args, *(["--resume"] if attempt else [])], tmp_path, checkpoint, rng
        ):
            killed += 1
    assert killed, "every copy finished before it could be killed"
    assert checkpoint.exists()
    done = run_cli(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed"] is True
    assert report["read"] < N  # it continued; it did not start again
    assert report["verify"]["equal"] is True
    assert not checkpoint.exists()
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
