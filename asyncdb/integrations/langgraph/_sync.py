"""Sync twins of async methods: run the coroutine on the event loop that owns the database.

asyncdb's connections belong to the loop they were opened on, so a sync call from another
thread (LangGraph runs a sync ``graph.invoke`` in the caller's thread) submits the coroutine to
that loop, as LangGraph's own async savers do. On the loop's own thread a blocking call would
deadlock; it raises ``asyncio.InvalidStateError`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class LoopBridge:
    """The loop a saver or store was created on (or first used on)."""

    def __init__(self, name: str) -> None:
        self.name = name
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    def seen(self) -> None:
        """Record the running loop (called by every async method)."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()

    def _target(self, method: str) -> asyncio.AbstractEventLoop:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            raise asyncio.InvalidStateError(
                f"synchronous {self.name}.{method}() needs the event loop the database runs on "
                f"to be running in another thread; use `await {self.name}.a{method}(...)`"
            )
        if running is loop:
            raise asyncio.InvalidStateError(
                f"synchronous {self.name}.{method}() called on the event loop's own thread "
                f"would block it; use `await {self.name}.a{method}(...)` or "
                "`await graph.ainvoke(...)`"
            )
        return loop

    def run(self, method: str, coro: Coroutine[Any, Any, T]) -> T:
        try:
            loop = self._target(method)
        except BaseException:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def iterate(self, method: str, aiter_: AsyncIterator[T]) -> Iterator[T]:
        loop = self._target(method)
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(_anext(aiter_), loop).result()
            except StopAsyncIteration:
                return


async def _anext(aiter_: AsyncIterator[T]) -> T:
    return await aiter_.__anext__()
