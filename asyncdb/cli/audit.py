"""``asyncdb audit verify URL COLLECTION [--head HASH]``: check an audit trail's chain.

Exit 0 when every event links to the one before and hashes to its ``hash``; 1 when an event
was edited, deleted or reordered (each problem listed); 2 on a usage or backend error.
``--head`` is a head hash recorded earlier (the last line of a previous verify): with it, the
removal of the newest events is detected too.

>>> # $ asyncdb audit verify postgresql://app@db/app audit_log --output json
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncdb
from asyncdb.cli.output import OK, PROBLEM, add_output, emit_rows
from asyncdb.observe import verify_chain


def add_parser(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="audit trail commands")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser("verify", help="check an audit collection's hash chain")
    verify.add_argument("url", help="database URL")
    verify.add_argument("collection", help="the audit collection")
    verify.add_argument("--head", help="the head hash recorded by an earlier verify")
    add_output(verify)


async def _verify(args: argparse.Namespace) -> int:
    async with asyncdb.connect(args.url) as db:
        report = await verify_chain(db.collection(args.collection), head=args.head)
    rows = report.problems or [{"seq": report.head_seq, "problem": "none"}]
    emit_rows(
        args,
        rows,
        ["seq", "id", "problem"] if report.problems else ["seq", "problem"],
        title=(
            f"{report.events} events, head seq {report.head_seq}, head hash {report.head_hash}: "
            + ("chain intact" if report.ok else f"{len(report.problems)} PROBLEMS")
        ),
        document=report.as_dict(),
    )
    return OK if report.ok else PROBLEM


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args))
