"""``asyncdb rotate-keys``: re-seals a collection under the new primary and reports it."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest

import asyncdb
from asyncdb.cli import build_parser, main
from asyncdb.security import KeyRing
from asyncdb.security.commands import rotate

SPEC = {"ssn": "equality", "notes": "opaque"}


def rotated_ring(url: str, count: int) -> KeyRing:
    """``count`` users sealed under k1 in ``url``; returns the ring with k2 added and promoted."""
    ring = KeyRing.generate()

    async def fill() -> None:
        async with asyncdb.connect(url, keyring=ring) as db:
            users = db.collection("users", encrypted=SPEC)
            await users.insert_many(
                [{"id": f"u{i}", "ssn": str(i), "notes": "n"} for i in range(count)]
            )

    asyncio.run(fill())
    ring.add("k2", os.urandom(32))
    ring.promote("k2")
    return ring


async def _key_ids(url: str) -> set[str]:
    async with asyncdb.connect(url) as db:
        docs = await db.collection("users").find({}, allow_scan=True).to_list()
        return {d["_enc_key"] for d in docs}


def test_rotate_keys_command_reseals_under_the_promoted_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    ring = rotated_ring(url, 7)
    monkeypatch.setenv("TEST_RING", ring.export())
    argv = [
        "rotate-keys",
        url,
        "--collection",
        "users",
        "--encrypted",
        json.dumps(SPEC),
        "--keyring-env",
        "TEST_RING",
        "--batch-size",
        "3",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resealed"] == 7 and summary["primary"] == "k2"
    assert asyncio.run(_key_ids(url)) == {"k2"}
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["resealed"] == 0
    monkeypatch.delenv("TEST_RING")
    assert main(argv) == 1
    assert "TEST_RING" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rotate_keys_prints_a_progress_line_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    ring = rotated_ring(url, 5)
    monkeypatch.setenv("ASYNCDB_KEYRING", ring.export())
    parser = build_parser()
    args = parser.parse_args(
        [
            "rotate-keys",
            url,
            "--collection",
            "users",
            "--encrypted",
            json.dumps(SPEC),
            "--batch-size",
            "2",
        ]
    )
    err = _Terminal()
    summary = asyncio.run(rotate(args, err))
    assert summary["resealed"] == 5
    lines = err.getvalue()
    assert "\rrotate-keys users: 2 re-sealed" in lines
    assert "\rrotate-keys users: 5 re-sealed" in lines and lines.endswith("\n")


def test_the_security_example_runs() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "encrypted_users.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    ).stdout
    assert "'ssn': '123-45-6789'" in out.splitlines()[0]
    assert "123-45-6789" not in out.splitlines()[1] and "ae1:" in out.splitlines()[1]
    assert "rotated: 1 document(s) to k2" in out
