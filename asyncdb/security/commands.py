"""``asyncdb rotate-keys URL --collection NAME``: re-seal a collection under the primary key.

The key ring comes from an environment variable (``--keyring-env``, default
``ASYNCDB_KEYRING``; the JSON format of :meth:`KeyRing.from_json`), never from the command line
(it would land in shell history and process listings). ``--encrypted`` is the collection's
``encrypted=`` spec as JSON. Progress goes to stderr on a terminal; the result is one JSON line
on stdout.

>>> # $ export ASYNCDB_KEYRING="$(cat ring.json)"      # k2 added and promoted
>>> # $ asyncdb rotate-keys sqlite:///app.db --collection users \\
>>> #       --encrypted '{"ssn": "equality", "notes": "opaque"}'
>>> # {"collection": "users", "resealed": 1200, "primary": "k2", "seconds": 0.41, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, TextIO

import asyncdb
from asyncdb.security.collection import EncryptedCollection
from asyncdb.security.keyring import KeyRing


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rotate-keys`` on an argparse sub-parser set."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rotate-keys",
        help="re-encrypt a collection's documents not under the key ring's primary key",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("url", help="database URL, e.g. sqlite:///app.db")
    parser.add_argument("--collection", required=True, help="the collection to rotate")
    parser.add_argument(
        "--encrypted",
        required=True,
        help='the collection\'s encrypted= spec as JSON, e.g. \'{"ssn": "equality"}\'',
    )
    parser.add_argument(
        "--keyring-env",
        default="ASYNCDB_KEYRING",
        help="environment variable holding the key ring JSON (default: ASYNCDB_KEYRING)",
    )
    parser.add_argument("--key", default="id", help="key field(s), comma-separated (default id)")
    parser.add_argument("--batch-size", type=int, default=500, help="documents per batch")
    parser.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="also seal documents still in plaintext (encrypting an existing collection)",
    )
    return parser


async def rotate(args: argparse.Namespace, err: TextIO = sys.stderr) -> dict[str, Any]:
    """Run one rotation as ``args`` describe it; returns the summary printed on stdout."""
    try:
        spec = json.loads(args.encrypted)
    except json.JSONDecodeError as exc:
        raise asyncdb.ConfigurationError(f"--encrypted is not valid JSON: {exc.msg}") from None
    ring = KeyRing.from_env(args.keyring_env)
    keys = [k.strip() for k in str(args.key).split(",") if k.strip()]
    tty = err.isatty()
    began = time.perf_counter()

    def progress(done: int) -> None:
        if tty:
            rate = done / max(time.perf_counter() - began, 1e-9)
            err.write(f"\rrotate-keys {args.collection}: {done} re-sealed ({rate:,.0f}/s)")
            err.flush()

    async with asyncdb.connect(args.url, keyring=ring) as db:
        coll = db.collection(
            args.collection, key=keys, encrypted=spec, allow_plaintext=args.allow_plaintext
        )
        assert isinstance(coll, EncryptedCollection)
        done = await coll.rotate_keys(batch_size=args.batch_size, progress=progress)
    if tty:
        err.write("\n")
    seconds = time.perf_counter() - began
    return {
        "collection": args.collection,
        "resealed": done,
        "primary": ring.primary,
        "seconds": round(seconds, 3),
        "docs_per_second": round(done / seconds, 1) if seconds else None,
    }


def run(args: argparse.Namespace) -> int:
    """The command: 0 on success, 1 with the error on stderr."""
    try:
        summary = asyncio.run(rotate(args))
    except asyncdb.AsyncDBError as exc:
        print(f"asyncdb rotate-keys: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
