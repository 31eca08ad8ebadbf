"""AsyncDBSaver against LangGraph's official savers on the same PostgreSQL and SQLite, one run.

For each store: ``aput`` (a chained checkpoint of about 2 KB of channel values) and an
``aput_writes`` against it (as a graph step does), ``aget_tuple`` of the newest checkpoint and
of a checkpoint by id (each with its write), and a 100-step ``StateGraph`` run (one node
that loops 100 times: 100 checkpoints and their writes). The official savers are
``AsyncPostgresSaver`` (langgraph-checkpoint-postgres, psycopg, one connection) and
``AsyncSqliteSaver`` (langgraph-checkpoint-sqlite, aiosqlite); asyncdb uses its own PostgreSQL
pool and SQLite connections. Both sides write the same checkpoints to the same server (or the
same directory) in alternating rounds, warmed up first; each round's ratio is asyncdb's median
over the official saver's, and the median round counts. Target: <= 1.0 x.

    python benchmarks/bench_langgraph.py   # + results/bench_langgraph.json
"""

from __future__ import annotations

import asyncio
import operator
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import asyncpg
from _report import markdown_table, print_table, save_results
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBSaver
from tests.servers.postgres import PostgresServer

ROUNDS = 5
OPS = 200  # aput / aget_tuple calls per round and saver
STEPS = 100
TARGET = 1.0
VALUES = {
    "messages": [{"role": "user", "content": "hello " * 20, "n": i} for i in range(10)],
    "count": 3,
    "topic": "benchmarks",
}


class LoopState(TypedDict):
    count: int
    trail: Annotated[list[int], operator.add]


def step(state: LoopState) -> dict[str, Any]:
    return {"count": state["count"] + 1, "trail": [state["count"]]}


def build_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    builder = StateGraph(LoopState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["count"] >= STEPS else "step")
    return builder.compile(checkpointer=saver)


async def timed(samples: list[int], call: Awaitable[Any]) -> Any:
    started = time.perf_counter_ns()
    result = await call
    samples.append(time.perf_counter_ns() - started)
    return result


async def one_round(saver: BaseCheckpointSaver[Any]) -> dict[str, float]:
    """Median microseconds per operation of one round on one saver."""
    put_ns: list[int] = []
    writes_ns: list[int] = []
    latest_ns: list[int] = []
    by_id_ns: list[int] = []
    thread = str(uuid4())
    config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored: list[dict[str, Any]] = []
    for i in range(OPS):
        checkpoint = generate_checkpoint(channel_values={**VALUES, "count": i})
        checkpoint["channel_versions"] = {k: i + 1 for k in VALUES}
        versions = {k: i + 1 for k in VALUES}
        config = await timed(
            put_ns, saver.aput(config, checkpoint, generate_metadata(step=i), versions)
        )
        # as in a graph step: the task's writes against the checkpoint just saved
        await timed(
            writes_ns, saver.aput_writes(config, [("messages", VALUES["messages"][0])], "t")
        )
        stored.append(config)
    latest = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    for _ in range(OPS):
        assert await timed(latest_ns, saver.aget_tuple(latest)) is not None
    for config in stored:
        assert await timed(by_id_ns, saver.aget_tuple(config)) is not None
    graph = build_graph(saver)
    started = time.perf_counter()
    final = await graph.ainvoke(
        {"count": 0, "trail": []},
        {"configurable": {"thread_id": str(uuid4())}, "recursion_limit": STEPS + 10},
    )
    graph_ms = (time.perf_counter() - started) * 1000
    assert final["count"] == STEPS
    return {
        "aput_us": statistics.median(put_ns) / 1000,
        "aput_writes_us": statistics.median(writes_ns) / 1000,
        "aget_tuple_latest_us": statistics.median(latest_ns) / 1000,
        "aget_tuple_by_id_us": statistics.median(by_id_ns) / 1000,
        "graph_100_steps_ms": graph_ms,
    }


Factory = Callable[[], Any]


@asynccontextmanager
async def postgres_savers(url: str) -> AsyncIterator[dict[str, BaseCheckpointSaver[Any]]]:
    async with AsyncExitStack() as stack:
        db = await asyncdb.connect(url)
        stack.push_async_callback(db.close)
        official = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(url))
        await official.setup()
        yield {"asyncdb": AsyncDBSaver(db), "official": official}


@asynccontextmanager
async def sqlite_savers(workdir: Path) -> AsyncIterator[dict[str, BaseCheckpointSaver[Any]]]:
    async with AsyncExitStack() as stack:
        db = await asyncdb.connect(f"sqlite:///{workdir / 'asyncdb.db'}")
        stack.push_async_callback(db.close)
        official = await stack.enter_async_context(
            AsyncSqliteSaver.from_conn_string(str(workdir / "official.db"))
        )
        yield {"asyncdb": AsyncDBSaver(db), "official": official}


async def compare(savers: dict[str, BaseCheckpointSaver[Any]]) -> dict[str, Any]:
    for saver in savers.values():  # warm-up: tables, statements, imports
        await one_round(saver)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in savers}
    for _ in range(ROUNDS):
        for name, saver in savers.items():
            rounds[name].append(await one_round(saver))
    out: dict[str, Any] = {}
    for metric in rounds["asyncdb"][0]:
        ours = [r[metric] for r in rounds["asyncdb"]]
        theirs = [r[metric] for r in rounds["official"]]
        out[metric] = {
            "asyncdb": statistics.median(ours),
            "official": statistics.median(theirs),
            "ratio": statistics.median(a / b for a, b in zip(ours, theirs, strict=True)),
        }
    return out


async def main() -> None:
    results: dict[str, Any] = {}
    server = PostgresServer()
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="asyncdb-bench-lg-"))
    try:
        admin = await asyncpg.connect(server.url)
        await admin.execute("CREATE DATABASE bench_langgraph")
        await admin.close()
        url = server.url.rsplit("/", 1)[0] + "/bench_langgraph"
        async with postgres_savers(url) as savers:
            results["postgres"] = await compare(savers)
        async with sqlite_savers(workdir) as savers:
            results["sqlite"] = await compare(savers)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    headers = ["store", "operation", "asyncdb", "official", "asyncdb / official", "target"]
    rows = []
    for store, metrics in results.items():
        for metric, r in metrics.items():
            unit = "ms" if metric.endswith("_ms") else "us"
            name = metric.rsplit("_", 1)[0]
            rows.append(
                [store, f"{name} ({unit})", r["asyncdb"], r["official"], r["ratio"], TARGET]
            )
    print_table(headers, rows)
    print()
    print(markdown_table(headers, rows))
    saved = save_results("bench_langgraph", {"rounds": ROUNDS, "ops": OPS, "results": results})
    print(f"\nsaved {saved}")


if __name__ == "__main__":
    asyncio.run(main())
