"""``asyncdb explain URL COLLECTION 'FILTER'`` and ``asyncdb find URL COLLECTION ['FILTER']``.

Filters, sorts and projections are JSON (MongoDB's extended JSON for dates, decimals, bytes).
The collection's key and indexes come from the catalog when the database keeps one, else from
``--key`` and ``--index`` (repeatable; ``company,priority`` is a compound index).

>>> # $ asyncdb explain sqlite:///app.db alerts '{"company": "acme", "priority": {"$gte": 80}}'
>>> # $ asyncdb find sqlite:///app.db alerts '{"status": "open"}' --limit 5 --output csv
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncdb
from asyncdb.cli.output import OK, add_output, dumps, emit_rows, parse_json


def _collection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="database URL")
    p.add_argument("collection", help="collection name")
    p.add_argument("filter", nargs="?", default="{}", help="filter as JSON (default {})")
    p.add_argument("--sort", help='sort as JSON, e.g. [["priority", -1]]')
    p.add_argument("--key", default="id", help="key field(s), comma-separated (default id)")
    p.add_argument("--index", action="append", default=[], help="an index, e.g. company,priority")
    p.add_argument("--limit", type=int, default=None, help="at most N documents")


def add_parser(subparsers: Any) -> None:
    explain = subparsers.add_parser("explain", help="how the backend would run a query")
    _collection_options(explain)
    explain.add_argument(
        "--server-plan", action="store_true", help="also ask the store for its own plan"
    )
    add_output(explain)
    find = subparsers.add_parser("find", help="print the documents matching a filter")
    _collection_options(find)
    find.set_defaults(limit=20)
    find.add_argument("--projection", help="projection as JSON")
    find.add_argument("--skip", type=int, default=0)
    find.add_argument("--allow-scan", action="store_true", help="allow a full scan")
    add_output(find, "csv")


async def _open(args: argparse.Namespace, db: asyncdb.Database) -> asyncdb.Collection:
    keys = tuple(k.strip() for k in args.key.split(",") if k.strip())
    indexes: list[Any] = [tuple(i.split(",")) if "," in i else i for i in args.index]
    lister = getattr(db, "list_collections", None)
    if lister is not None and not args.index and args.key == "id":
        for spec in await lister():
            if getattr(spec, "name", None) == args.collection:
                keys, indexes = spec.key, list(spec.indexes)
    return db.collection(args.collection, key=keys, indexes=indexes)


def _plan_rows(plan: asyncdb.Plan) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"part": "access path", "value": plan.access_path}]
    for name, value in plan.native.items():
        rows.append({"part": f"native {name}", "value": value})
    rows += [
        {"part": "exact in store", "value": plan.exact},
        {"part": "approximate", "value": plan.approximate},
        {"part": "re-checked here", "value": plan.residual},
        {"part": "sort pushed", "value": plan.sort_pushed},
        {"part": "limit pushed", "value": plan.limit_pushed},
        {"part": "sorted in process", "value": plan.client_sort},
    ]
    for line in plan.server_plan or ():
        rows.append({"part": "server plan", "value": line})
    return rows


def _plan_document(plan: asyncdb.Plan) -> dict[str, Any]:
    return {
        "backend": plan.backend,
        "collection": plan.collection,
        "access_path": plan.access_path,
        "native": plan.native,
        "exact": plan.exact,
        "approximate": plan.approximate,
        "residual": plan.residual,
        "sort_pushed": plan.sort_pushed,
        "limit_pushed": plan.limit_pushed,
        "client_sort": plan.client_sort,
        "server_plan": list(plan.server_plan) if plan.server_plan is not None else None,
    }


async def _explain(args: argparse.Namespace) -> int:
    filt = parse_json(args.filter, "FILTER")
    sort = parse_json(args.sort, "--sort")
    async with asyncdb.connect(args.url) as db:
        coll = await _open(args, db)
        plan = await coll.explain(filt, sort=sort, limit=args.limit, server_plan=args.server_plan)
    rows = _plan_rows(plan)
    emit_rows(
        args,
        rows,
        ["part", "value"],
        title=f"{plan.backend} plan for {plan.collection!r}",
        document=_plan_document(plan),
    )
    return OK


async def _find(args: argparse.Namespace) -> int:
    filt = parse_json(args.filter, "FILTER")
    sort = parse_json(args.sort, "--sort")
    projection = parse_json(args.projection, "--projection")
    async with asyncdb.connect(args.url) as db:
        coll = await _open(args, db)
        cursor = coll.find(
            filt,
            projection,
            sort=sort,
            skip=args.skip,
            limit=args.limit,
            allow_scan=True if args.allow_scan else None,
        )
        if args.output == "jsonl":  # streams: constant memory whatever the limit
            async for doc in cursor:
                print(dumps(doc))
            return OK
        docs = await cursor.to_list()
    emit_rows(args, docs, title=f"{len(docs)} documents from {args.collection!r}")
    return OK


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_explain(args) if args.command == "explain" else _find(args))
