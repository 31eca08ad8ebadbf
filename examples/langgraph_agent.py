"""A LangGraph agent whose state and memory live in any asyncdb backend.

The graph drafts a note, stops for a human review (``interrupt``), then files the note in the
long-term store. Each command is its own process: the checkpoint in the database is all that
carries the run from ``start`` to ``resume``.

    python examples/langgraph_agent.py start  sqlite:///agent.db thread-1
    python examples/langgraph_agent.py resume sqlite:///agent.db thread-1 approve

The nodes are deterministic (no LLM, no network), so the example runs anywhere.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import sys
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

import asyncdb
from asyncdb.integrations.langgraph import AsyncDBSaver, AsyncDBStore


class State(TypedDict, total=False):
    topic: str
    draft: str
    approved: bool
    steps: Annotated[list[str], operator.add]


def write_draft(state: State) -> State:
    return {"draft": f"A short note about {state['topic']}.", "steps": ["draft"]}


def review(state: State) -> State:
    decision = interrupt({"please review": state["draft"]})
    return {"approved": decision == "approve", "steps": ["review"]}


def file_note(state: State, runtime: Runtime[None]) -> State:
    # A sync node: LangGraph runs it in a worker thread, and the store's sync put reaches the
    # database through its event loop.
    if state.get("approved") and runtime.store is not None:
        runtime.store.put(("notes",), state["topic"], {"text": state["draft"]})
    return {"steps": ["file"]}


def build(saver: AsyncDBSaver, store: AsyncDBStore) -> Any:
    builder = StateGraph(State)
    builder.add_node("draft", write_draft)
    builder.add_node("review", review)
    builder.add_node("file", file_note)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "file")
    builder.add_edge("file", END)
    return builder.compile(checkpointer=saver, store=store)


async def main(command: str, url: str, thread_id: str, decision: str = "approve") -> dict[str, Any]:
    async with asyncdb.connect(url) as db:
        store = AsyncDBStore(db, ttl={"default_ttl": 24 * 60})
        graph = build(AsyncDBSaver(db), store)
        config = {"configurable": {"thread_id": thread_id}}
        if command == "start":
            await graph.ainvoke({"topic": "asyncdb", "steps": []}, config)
        else:
            await graph.ainvoke(Command(resume=decision), config)
        snapshot = await graph.aget_state(config)
        note = await store.aget(("notes",), "asyncdb")
        return {
            "pid": os.getpid(),
            "next": list(snapshot.next),
            "interrupts": [i.value for i in snapshot.interrupts],
            "values": snapshot.values,
            "note": None if note is None else note.value,
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))))
