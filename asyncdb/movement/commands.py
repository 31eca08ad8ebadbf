"""The data-movement commands of the ``asyncdb`` CLI: copy, verify, backup, restore,
cloudformation and firestore-indexes.

Exit codes: 0 when all is well (verify: equal), 1 when a check found differences, 2 on a usage
or backend error. The final report goes to stdout (``--output json`` for machines, a short
table otherwise); progress goes to stderr.

>>> # $ asyncdb copy sqlite:///app.db postgresql://u@h/app --workers 4 --output json
>>> # $ asyncdb verify sqlite:///app.db postgresql://u@h/app --collection alerts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from asyncdb.errors import AsyncDBError

COMMANDS = ("copy", "verify", "backup", "restore", "cloudformation", "firestore-indexes")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--collection",
        action="append",
        dest="collections",
        metavar="NAME",
        help="a collection to move (repeatable; default: the source's catalog)",
    )
    p.add_argument("--output", choices=("table", "json", "jsonl"), default="table")


def add_parser(subparsers: Any) -> None:
    """Add the copy, verify, backup, restore, cloudformation and firestore-indexes
    subcommands."""
    copy = subparsers.add_parser("copy", help="copy collections from one database to another")
    copy.add_argument("src")
    copy.add_argument("dst")
    _common(copy)
    copy.add_argument("--key", action="append", help="the key field of a foreign source")
    copy.add_argument("--batch-size", type=int, default=500)
    copy.add_argument("--workers", type=int, default=4)
    copy.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    copy.add_argument("--no-verify", action="store_true", help="skip the final verification")
    copy.add_argument("--on-error", choices=("stop", "continue"), default="stop")
    copy.add_argument("--dead-letter", metavar="FILE")
    copy.add_argument("--segment", metavar="I/N", help="copy share I of N (0 <= I < N)")
    copy.add_argument("--transform", metavar="MODULE:FUNCTION")
    copy.add_argument("--rate", type=float, help="at most this many documents per second")
    copy.add_argument(
        "--max-rcu", type=float, help="DynamoDB: at most this many read capacity units per second"
    )
    copy.add_argument(
        "--max-wcu", type=float, help="DynamoDB: at most this many write capacity units per second"
    )
    copy.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="where the checkpoint is kept: a local file, or dest:NAME for a collection of the "
        "destination (dest: alone: _asyncdb_copy_checkpoint)",
    )
    copy.add_argument(
        "--checkpoint-every",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds between checkpoint saves (0: after every batch)",
    )
    copy.add_argument("--no-progress", action="store_true")
    copy.add_argument(
        "--firestore-indexes",
        metavar="FILE",
        help="a Firestore destination: write the composite indexes to deploy to FILE "
        "(firestore.indexes.json format)",
    )

    verify = subparsers.add_parser("verify", help="compare the documents of two databases")
    verify.add_argument("src")
    verify.add_argument("dst")
    _common(verify)
    verify.add_argument("--key", action="append", help="the key field of a foreign source")
    verify.add_argument("--transform", metavar="MODULE:FUNCTION")
    verify.add_argument(
        "--max-rcu", type=float, help="DynamoDB: at most this many read capacity units per second"
    )

    backup = subparsers.add_parser("backup", help="write collections to a JSON Lines file")
    backup.add_argument("url")
    backup.add_argument("file")
    _common(backup)
    backup.add_argument("--key", action="append", help="the key field of a foreign source")

    restore = subparsers.add_parser("restore", help="load a backup file into a database")
    restore.add_argument("file")
    restore.add_argument("url")
    _common(restore)

    cfn = subparsers.add_parser(
        "cloudformation", help="the DynamoDB CloudFormation template of a database's catalog"
    )
    cfn.add_argument("url")
    cfn.add_argument("--prefix", default="", help="table name prefix")
    cfn.add_argument("--output", choices=("table", "json", "jsonl"), default="json")

    fsi = subparsers.add_parser(
        "firestore-indexes",
        help="the Firestore composite indexes (firestore.indexes.json) of a database's catalog",
    )
    fsi.add_argument("url")
    fsi.add_argument("collections", nargs="*", metavar="COLLECTION")
    fsi.add_argument("--output", choices=("table", "json", "jsonl"), default="json")


def _key(args: argparse.Namespace) -> Any:
    keys = getattr(args, "key", None)
    if not keys:
        return None
    return keys[0] if len(keys) == 1 else tuple(keys)


def _emit(args: argparse.Namespace, data: dict[str, Any], lines: list[str]) -> None:
    if args.output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif args.output == "jsonl":
        print(json.dumps(data, default=str))
    else:
        print("\n".join(lines))


def _verify_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    for name, c in data["collections"].items():
        state = "equal" if c["equal"] else "DIFFERENT"
        lines.append(
            f"{name}: {state} (source {c['source_count']}, destination "
            f"{c['destination_count']}; missing {c['missing_count']}, extra {c['extra_count']}, "
            f"different {c['different_count']})"
        )
        for kind in ("missing", "extra", "different"):
            if c[kind]:
                lines.append(f"  {kind}: {', '.join(map(str, c[kind]))}")
    return lines


async def _copy(args: argparse.Namespace) -> int:
    from asyncdb.movement.copier import copy
    from asyncdb.movement.progress import for_stream

    progress = None if args.no_progress else for_stream(sys.stderr)
    report = await copy(
        args.src,
        args.dst,
        args.collections,
        batch_size=args.batch_size,
        workers=args.workers,
        resume=args.resume,
        verify=not args.no_verify,
        on_error=args.on_error,
        dead_letter=args.dead_letter,
        transform=args.transform,
        segment=args.segment,
        key=_key(args),
        rate=args.rate,
        max_rcu=args.max_rcu,
        max_wcu=args.max_wcu,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        progress=progress,
    )
    data = report.to_dict()
    lines = [
        f"{name}: read {c['read']}, written {c['written']}, skipped {c['skipped']}, "
        f"failed {c['failed']}"
        for name, c in data["collections"].items()
    ]
    lines.append(f"{report.written} documents in {report.seconds:.1f} s")
    indexes = report.firestore_indexes
    if indexes is not None:
        if args.firestore_indexes:
            text = json.dumps(indexes, indent=2) + "\n"
            await asyncio.to_thread(Path(args.firestore_indexes).write_text, text)
        where = args.firestore_indexes or "the report (--output json)"
        lines.append(
            f"firestore: {len(indexes['indexes'])} composite indexes to deploy, in {where} "
            "(firebase deploy --only firestore:indexes)"
        )
    if data["verify"] is not None:
        lines.extend(_verify_lines(data["verify"]))
    _emit(args, data, lines)
    return 0 if report.verify is None or report.verify.equal else 1


async def _verify(args: argparse.Namespace) -> int:
    from asyncdb.movement.verifier import verify

    report = await verify(
        args.src,
        args.dst,
        args.collections,
        key=_key(args),
        transform=args.transform,
        max_rcu=args.max_rcu,
    )
    data = report.to_dict()
    _emit(args, data, _verify_lines(data))
    return 0 if report.equal else 1


async def _backup(args: argparse.Namespace) -> int:
    from asyncdb.movement.backup import backup

    summary = await backup(args.url, args.file, args.collections, key=_key(args))
    lines = [f"{name}: {n} documents" for name, n in summary.items()]
    _emit(args, {"file": args.file, "collections": summary}, lines)
    return 0


async def _restore(args: argparse.Namespace) -> int:
    from asyncdb.movement.backup import restore

    summary = await restore(args.file, args.url, args.collections)
    lines = [f"{name}: {n} documents" for name, n in summary.items()]
    _emit(args, {"file": args.file, "collections": summary}, lines)
    return 0


async def _cloudformation(args: argparse.Namespace) -> int:
    from asyncdb.movement.backup import catalog_template

    template = await catalog_template(args.url, args.prefix)
    print(json.dumps(template, indent=2))
    return 0


async def _firestore_indexes(args: argparse.Namespace) -> int:
    from asyncdb.movement.indexes import catalog_firestore_indexes

    indexes = await catalog_firestore_indexes(args.url, args.collections or None)
    print(json.dumps(indexes, indent=None if args.output == "jsonl" else 2))
    return 0


_RUN = {
    "copy": _copy,
    "verify": _verify,
    "backup": _backup,
    "restore": _restore,
    "cloudformation": _cloudformation,
    "firestore-indexes": _firestore_indexes,
}


def run(args: argparse.Namespace) -> int:
    """Run one of the movement commands; returns the exit code."""
    try:
        return asyncio.run(_RUN[args.command](args))
    except AsyncDBError as exc:
        print(f"asyncdb {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"asyncdb {args.command}: {exc}", file=sys.stderr)
        return 2


__all__ = ["COMMANDS", "add_parser", "run"]
