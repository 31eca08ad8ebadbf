"""``asyncdb demo`` and ``asyncdb version``.

``asyncdb demo`` runs a guided tour of the API (queries, updates, pages, transactions, scan
policy, ``explain()``) on a SQLite file in the current directory, with no server.
``asyncdb version`` prints the installed version.

>>> # $ asyncdb demo                      (writes ./asyncdb-demo.db; rerunnable)
>>> # $ asyncdb demo --db /tmp/tour.db
>>> # $ python -m asyncdb demo --url memory://
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import asyncdb

DEFAULT_DB = "asyncdb-demo.db"

COMPANIES = ("acme", "globex", "initech", "umbrella", "hooli")
SERVICES = ("api", "auth", "db", "payments", "queue", "search")
PEOPLE = ("ana", "bo", "dana", "eli", "kim")
STATUSES = ("open", "acknowledged", "resolved", "in_incident")
# (title template, the tag it always carries): titles vary in case on purpose, for $regex "i".
KINDS = (
    ("Disk full on {host}", "disk"),
    ("DISK latency above 200ms on {host}", "disk"),
    ("disk I/O saturation", "disk"),
    ("High CPU on {host}", "cpu"),
    ("Memory pressure on {host}", "memory"),
    ("Packet loss to {host}", "network"),
    ("p99 latency regression", "latency"),
    ("5xx error rate spike", "errors"),
    ("Suspicious login burst", "security"),
)
EXTRA_TAGS = ("customer-facing", "paging", "flaky", "known-issue")
# A fixed "now", so every run produces the same documents.
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def demo_alerts(count: int = 300, seed: int = 20250314) -> list[dict[str, Any]]:
    """Deterministic alerts: the same ``count`` documents on every run.

    About one in seven priorities is a float (``87.5``), a few are whole floats (``75.0``);
    one in ten alerts has no ``tags`` and about a third no ``assignee``.

    >>> len(demo_alerts(10)), demo_alerts(10) == demo_alerts(10)
    (10, True)
    """
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for i in range(count):
        company = rng.choices(COMPANIES, weights=(5, 4, 3, 2, 2))[0]
        service = rng.choice(SERVICES)
        template, tag = rng.choice(KINDS)
        priority: int | float = rng.randint(1, 100)
        if i % 7 == 3:
            priority = rng.randint(1, 99) + 0.5
        elif i % 25 == 0:
            priority = float(priority)
        doc: dict[str, Any] = {
            "id": f"ALR-{i + 1:04d}",
            "company": company,
            "service": service,
            "title": template.format(host=f"{service}-{rng.randint(1, 9)}"),
            "priority": priority,
            "status": rng.choices(STATUSES[:3], weights=(2, 1, 1))[0],
            "created_at": NOW - timedelta(minutes=rng.randint(0, 7 * 24 * 60)),
        }
        if i % 10 != 4:
            extra = rng.sample(EXTRA_TAGS, rng.randint(0, 2))
            doc["tags"] = [tag, *extra]
        if rng.random() < 0.65:
            doc["assignee"] = rng.choice(PEOPLE)
        docs.append(doc)
    return docs


# --- printing ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": value.isoformat().replace("+00:00", "Z")}
    raise TypeError(f"cannot show {type(value).__name__}")


def show_filter(spec: Mapping[str, Any]) -> str:
    """A filter as one line of JSON (datetimes as ``{"$date": ...}``, MongoDB's extended JSON).

    >>> show_filter({"priority": {"$gt": 90}})
    '{"priority": {"$gt": 90}}'
    """
    return json.dumps(spec, default=_json_default, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "[]"
    return str(value)


class Report:
    """Section headers, indented lines and small aligned tables on a text stream."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.sections = 0

    def line(self, text: str = "", indent: int = 2) -> None:
        print(" " * indent + text if text else "", file=self.out)

    def section(self, title: str) -> None:
        self.sections += 1
        print(f"\n== {self.sections}. {title} ==", file=self.out)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Columns are left-aligned, except those whose cells are all numbers."""
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [len(h) for h in headers]
        for row in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        # A column is numeric when every non-blank cell is a number (blank: a continuation row).
        numeric = [
            any(row[i] != "" for row in rows)
            and all(isinstance(row[i], int | float) or row[i] == "" for row in rows)
            for i in range(len(headers))
        ]

        def fmt(row: Sequence[str]) -> str:
            parts = [
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            ]
            return "  ".join(parts).rstrip()

        self.line(fmt(headers))
        self.line(fmt(["-" * w for w in widths]))
        for row in cells:
            self.line(fmt(row))


def plan_rows(plan: asyncdb.Plan) -> list[list[str]]:
    """A :class:`~asyncdb.Plan` as ``[part, value]`` rows for :meth:`Report.table`, with long
    native queries wrapped.

    >>> # Report(sys.stdout).table(["part", "value"], plan_rows(await alerts.explain(filter)))
    """

    def part(value: dict[str, Any] | None) -> str:
        return "-" if value is None else show_filter(value)

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    rows: list[list[str]] = [["access path", plan.access_path]]
    for name, value in plan.native.items():
        lines = textwrap.wrap(str(value), 84, break_on_hyphens=False) or [""]
        rows.append([f"native {name}", lines[0]])
        rows.extend(["", line] for line in lines[1:])
    rows += [
        ["exact in store", part(plan.exact)],
        ["approximate", part(plan.approximate)],
        ["re-checked here", part(plan.residual)],
        [
            "pushed down",
            f"sort {yes(plan.sort_pushed)}, limit {yes(plan.limit_pushed)}"
            + (", sorted in process" if plan.client_sort else ""),
        ],
    ]
    return rows


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.1f} ms"


# --- the demo ---------------------------------------------------------------------------------


class Demo:
    """The guided tour. Each method is one section of the output."""

    def __init__(self, db: asyncdb.Database, report: Report) -> None:
        self.db = db
        self.r = report
        self.alerts = db.collection(
            "alerts",
            indexes=["company", ("company", "priority"), "priority", "status", "created_at"],
        )
        self.incidents = db.collection("incidents", indexes=["company"])

    async def run(self) -> None:
        started = time.perf_counter()
        self.r.line(
            f"asyncdb {asyncdb.__version__} demo on {self.db.url} (backend {self.db.backend})", 0
        )
        caps = textwrap.wrap("capabilities: " + ", ".join(self.db.capabilities), 96)
        for i, line in enumerate(caps):
            self.r.line(line, 14 if i else 0)
        await self.load()
        await self.queries()
        await self.updates()
        await self.paging()
        await self.transactions()
        await self.scans()
        await self.explain()
        await self.final_state()
        self.r.line("")
        self.r.line(f"done in {_ms(started)}; rerun any time (the demo collections are reset).", 0)

    async def load(self) -> None:
        self.r.section("Load")
        gone_alerts = await self.alerts.delete_many({}, allow_scan=True)
        gone_incidents = await self.incidents.delete_many({}, allow_scan=True)
        self.r.line(f"reset: removed {gone_alerts} alerts and {gone_incidents} incidents")
        docs = demo_alerts()
        started = time.perf_counter()
        await self.alerts.insert_many(docs)
        self.r.line(f"inserted {len(docs)} alerts for {len(COMPANIES)} companies in {_ms(started)}")
        self.r.line("")
        rows: list[list[Any]] = []
        for company in COMPANIES:
            rows.append(
                [
                    company,
                    await self.alerts.count_documents({"company": company}),
                    await self.alerts.count_documents(
                        {"company": company, "priority": {"$type": "double"}}
                    ),
                    await self.alerts.count_documents(
                        {"company": company, "tags": {"$exists": False}}
                    ),
                    await self.alerts.count_documents(
                        {"company": company, "assignee": {"$exists": False}}
                    ),
                ]
            )
        self.r.table(["company", "alerts", "float priority", "no tags", "no assignee"], rows)

    async def queries(self) -> None:
        self.r.section("Queries")
        day_ago = NOW - timedelta(days=1)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"priority": {"$gt": 95}}, "int and float priorities compare by value"),
            ({"priority": 75}, "matches 75 and 75.0"),
            ({"company": {"$in": ["acme", "hooli"]}}, ""),
            ({"company": "acme", "assignee": {"$ne": "dana"}}, "includes alerts with no assignee"),
            ({"company": "acme", "assignee": {"$exists": False}}, "the ones $ne let through"),
            ({"company": "acme", "tags": {"$exists": True}}, ""),
            ({"company": "globex", "tags": "security"}, "a scalar matches an array element"),
            (
                {"company": "acme", "title": {"$regex": "^disk", "$options": "i"}},
                "Disk.., DISK.., disk..",
            ),
            ({"company": "acme", "created_at": {"$gte": day_ago}}, "last 24 hours"),
        ]
        rows: list[list[Any]] = []
        for spec, note in cases:
            rows.append([await self.alerts.count_documents(spec), show_filter(spec), note])
        self.r.table(["matches", "filter", "note"], rows)
        missing = rows[4][0]
        self.r.line(
            f"$ne matched the {missing} acme alerts with no assignee field at all: "
            'a missing field is "not equal" (MongoDB semantics)'
        )

        self.r.line("")
        self.r.line(
            'top 5 acme alerts: find({"company": "acme"}, sort=[("priority", -1)], limit=5)'
        )
        top = await self.alerts.find(
            {"company": "acme"}, sort=[("priority", -1)], limit=5
        ).to_list()
        self.r.table(
            ["id", "service", "priority", "status", "tags", "created_at"],
            [
                [d["id"], d["service"], d["priority"], d["status"], d.get("tags"), d["created_at"]]
                for d in top
            ],
        )

    async def updates(self) -> None:
        self.r.section("Updates")
        rows: list[list[Any]] = []

        async def record(call: str, result: asyncdb.UpdateResult) -> None:
            first, *more = call.split("\n")
            rows.append([result.matched, result.modified, first])
            rows.extend(["", "", line] for line in more)

        await record(
            'update_many({"company": "initech", "status": "open", "priority": {"$gte": 80}},\n'
            '            {"$set": {"status": "acknowledged", "acked_by": "oncall"}})',
            await self.alerts.update_many(
                {"company": "initech", "status": "open", "priority": {"$gte": 80}},
                {"$set": {"status": "acknowledged", "acked_by": "oncall"}},
            ),
        )
        await record(
            'update_many({"company": "hooli", "priority": {"$gte": 90}},'
            ' {"$inc": {"escalations": 1}})',
            await self.alerts.update_many(
                {"company": "hooli", "priority": {"$gte": 90}}, {"$inc": {"escalations": 1}}
            ),
        )
        for attempt in ("", "  (again: nothing to change)"):
            await record(
                f'update_one({{"id": "ALR-0002"}}, {{"$set": {{"status": "resolved"}}}}){attempt}',
                await self.alerts.update_one({"id": "ALR-0002"}, {"$set": {"status": "resolved"}}),
            )
        await record(
            'update_one({"id": "ALR-9999"}, {"$set": {"status": "resolved"}})  (no such alert)',
            await self.alerts.update_one({"id": "ALR-9999"}, {"$set": {"status": "resolved"}}),
        )
        self.r.table(["matched", "modified", "call"], rows)

        doc = await self.alerts.find_one_and_update(
            {"company": "hooli", "priority": {"$gte": 90}},
            {"$inc": {"escalations": 1}},
            sort=[("priority", -1)],
        )
        if doc is not None:
            self.r.line("")
            self.r.line(
                "find_one_and_update(hottest hooli alert, $inc escalations) -> "
                f"{doc['id']} priority {doc['priority']} escalations {doc['escalations']}"
            )

    async def paging(self) -> None:
        self.r.section("Paging")
        spec: dict[str, Any] = {"company": "acme", "status": "open"}
        total = await self.alerts.count_documents(spec)
        size = max(1, math.ceil(total / 3))
        self.r.line(
            f'find_page({show_filter(spec)}, sort=[("priority", -1)], limit={size}, cursor=...)'
        )
        cursor: str | None = None
        seen: list[str] = []
        rows: list[list[Any]] = []
        while True:
            page = await self.alerts.find_page(
                spec, sort=[("priority", -1)], limit=size, cursor=cursor
            )
            ids = [d["id"] for d in page.items]
            seen.extend(ids)
            prios = [d["priority"] for d in page.items]
            rows.append(
                [
                    len(rows) + 1,
                    len(ids),
                    f"{prios[0]} .. {prios[-1]}" if prios else "-",
                    f"{ids[0]} .. {ids[-1]}" if ids else "-",
                    f"...{page.next_cursor[-16:]}" if page.next_cursor else "None (last page)",
                ]
            )
            cursor = page.next_cursor
            if cursor is None:
                break
        self.r.table(["page", "alerts", "priority", "ids", "next_cursor"], rows)
        unique = len(set(seen)) == len(seen)
        self.r.line(
            f"{len(rows)} pages, {len(seen)} alerts, "
            f"{'no repeats' if unique else 'REPEATED ALERTS'}; "
            f"count_documents says {total}"
        )

    async def transactions(self) -> None:
        self.r.section("Transactions")
        critical: dict[str, Any] = {"company": "acme", "status": "open", "priority": {"$gte": 90}}
        async with self.db.transaction() as tx:
            alerts = tx.collection("alerts")
            ids = [d["id"] for d in await alerts.find(critical, projection=["id"]).to_list()]
            await tx.collection("incidents").insert_one(
                {
                    "id": "INC-0001",
                    "company": "acme",
                    "title": "acme: critical alerts",
                    "status": "open",
                    "alert_ids": ids,
                    "opened_at": NOW,
                }
            )
            linked = await alerts.update_many(
                {"id": {"$in": ids}},
                {"$set": {"status": "in_incident", "incident_id": "INC-0001"}},
            )
        self.r.line(
            f"committed: incident INC-0001 opened and {linked.modified} acme alerts "
            "moved to in_incident, together"
        )

        class PagerDown(RuntimeError):
            pass

        inside = 0
        try:
            async with self.db.transaction() as tx:
                await tx.collection("incidents").insert_one(
                    {"id": "INC-0002", "company": "globex", "status": "open", "opened_at": NOW}
                )
                result = await tx.collection("alerts").update_many(
                    {"company": "globex", "status": "open", "priority": {"$gte": 90}},
                    {"$set": {"status": "in_incident", "incident_id": "INC-0002"}},
                )
                inside = result.modified
                raise PagerDown("the pager did not answer")
        except PagerDown as exc:
            self.r.line(
                f"rolled back: INC-0002 and {inside} globex alerts were written, "
                f"then {type(exc).__name__}: {exc}"
            )
        after = await self.incidents.find_one({"id": "INC-0002"})
        linked_after = await self.alerts.count_documents(
            {"company": "globex", "status": "in_incident"}
        )
        self.r.line(
            f"after the rollback: INC-0002 {'exists' if after else 'does not exist'}, "
            f"{linked_after} globex alerts in_incident"
        )
        self.r.line(
            f"incidents: {await self.incidents.count_documents({'company': 'acme'})} (acme)"
            f", {await self.incidents.count_documents({'company': 'globex'})} (globex)"
        )

    async def scans(self) -> None:
        self.r.section("Scan policy")
        spec = {"service": "payments"}
        self.r.line(f"find({show_filter(spec)})  -- no index on service")
        try:
            await self.alerts.find(spec).to_list()
            self.r.line("ran without a scan (this backend found an access path)")
        except asyncdb.ScanRequired as exc:
            # The message embeds the native query; explain() below shows that more readably.
            message = re.sub(r" \(\{.*\}\)", "", str(exc))
            for part in textwrap.wrap(f"ScanRequired: {message}", 92):
                self.r.line(part, 4)
        n = len(await self.alerts.find(spec, allow_scan=True).to_list())
        self.r.line(f"with allow_scan=True: {n} alerts")

    async def explain(self) -> None:
        self.r.section("Explain")
        cases: list[tuple[dict[str, Any], list[tuple[str, int]] | None, int | None]] = [
            ({"company": "acme", "priority": {"$gte": 80}}, [("priority", -1)], 5),
            ({"company": "acme", "tags.0": "disk", "assignee": {"$ne": "dana"}}, None, None),
        ]
        for i, (spec, sort, limit) in enumerate(cases):
            if i:
                self.r.line("")
            shown = f"explain({show_filter(spec)}"
            shown += f", sort={sort}, limit={limit})" if sort else ")"
            self.r.line(shown)
            self.r.table(
                ["part", "value"],
                plan_rows(await self.alerts.explain(spec, sort=sort, limit=limit)),
            )

    async def final_state(self) -> None:
        self.r.section("Final state")
        rows: list[list[Any]] = []
        for company in COMPANIES:
            counts = [
                await self.alerts.count_documents({"company": company, "status": status})
                for status in STATUSES
            ]
            rows.append([company, *counts, sum(counts)])
        totals = [sum(row[i] for row in rows) for i in range(1, len(STATUSES) + 2)]
        rows.append(["total", *totals])
        self.r.table(["company", *STATUSES, "alerts"], rows)
        self.r.line(f"incidents: {await self.incidents.count_documents({}, allow_scan=True)}")


# --- entry points -----------------------------------------------------------------------------


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    return f"sqlite:///{args.db}"


async def run_demo(url: str, out: TextIO = sys.stdout) -> None:
    """Run the demo against ``url`` (any backend with transactions and secondary indexes).

    >>> # asyncio.run(run_demo("memory://"))
    """
    async with asyncdb.connect(url) as db:
        await Demo(db, Report(out)).run()


def add_parser(subparsers: Any) -> None:
    """``asyncdb demo`` and ``asyncdb version``."""
    demo = subparsers.add_parser("demo", help="a guided tour of the API on a local SQLite file")
    where = demo.add_mutually_exclusive_group()
    where.add_argument(
        "--db", default=DEFAULT_DB, help=f"SQLite file to use (default: ./{DEFAULT_DB})"
    )
    where.add_argument("--url", help="any database URL instead, e.g. memory://")
    demo.set_defaults(run=run)
    version = subparsers.add_parser("version", help="print the asyncdb version")
    version.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.command == "version":
        print(f"asyncdb {asyncdb.__version__}")
        return 0
    try:
        asyncio.run(run_demo(_url(args)))
    except asyncdb.AsyncDBError as exc:
        print(f"asyncdb demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (asyncdb demo | head): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
