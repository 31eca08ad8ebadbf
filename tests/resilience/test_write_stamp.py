"""The pure pieces behind exactly-once writes and contention: the write stamp that tells a
resent write whose first attempt landed from a lost race, the back-off that ends in
``Contention`` before the call's deadline, and the turns writers of one document take."""

from __future__ import annotations

import asyncio
import time

import pytest

from asyncdb import BackendError, Contention, OperationTimeout
from asyncdb.resilience import (
    STAMP_HISTORY,
    ContentionBackoff,
    DocumentTurns,
    Resilience,
    RetryPolicy,
    WriteStamp,
)


def test_a_stamp_tells_its_own_write_from_a_competitor_and_says_when_it_cannot() -> None:
    before = WriteStamp.decode("4 d c b a")
    mine = before.next("mine")  # the write a lost reply left in doubt: write number 5
    # it landed, and others wrote after it: still found, at its place
    later = mine.next("x").next("y")
    assert later.proves(mine) is True
    # a competitor took write number 5: ours did not land
    assert before.next("theirs").next("z").proves(mine) is False
    assert before.proves(mine) is False  # nobody wrote since the read
    # so many writes followed that number 5 fell out of the history: unknown, and said so
    buried = mine
    for i in range(STAMP_HISTORY):
        buried = buried.next(f"t{i}")
    assert buried.holds(mine) is None
    with pytest.raises(BackendError, match="cannot be told"):
        buried.proves(mine)
    assert WriteStamp.decode(buried.encode()) == buried
    assert len(buried.tokens) == STAMP_HISTORY
    assert WriteStamp.decode(None) == WriteStamp.NEW  # a document written before stamps


async def test_contention_ends_before_the_deadline_with_nothing_applied() -> None:
    policy = RetryPolicy(timeout=0.5)
    resilience = Resilience("test", lambda exc: None, policy, network=True)
    attempts = 0

    async def always_loses() -> None:
        nonlocal attempts
        backoff = ContentionBackoff("an update of 'hot'", base=0.01, cap=0.05)
        while True:
            attempts += 1
            await asyncio.sleep(0.01)  # an attempt: a read and a refused conditional write
            await backoff.lost()

    began = time.monotonic()
    with pytest.raises(Contention) as raised:
        await resilience.call(always_loses, write=True)
    assert isinstance(raised.value, OperationTimeout)  # `except OperationTimeout` still works
    assert time.monotonic() - began < 0.5  # before the deadline, not at it
    assert attempts > 3 and "nothing was applied" in str(raised.value)
    assert resilience.breaker.state == "closed"  # the server answered every time


async def test_writers_of_one_document_take_turns_and_give_up_before_the_deadline() -> None:
    turns = DocumentTurns()
    policy = RetryPolicy(timeout=0.6)
    resilience = Resilience("test", lambda exc: None, policy, network=True)
    inside = 0
    most = 0

    async def write(seconds: float) -> None:
        nonlocal inside, most
        async with turns.of("t", [("k",)], "an update of 't'"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(seconds)
            inside -= 1

    results = await asyncio.gather(
        *(resilience.call(lambda: write(0.1), write=True) for _ in range(10)),
        return_exceptions=True,
    )
    done = [r for r in results if r is None]
    assert most == 1  # one at a time
    assert 3 <= len(done) < 10  # those whose turn came in time
    assert all(isinstance(r, Contention) for r in results if r is not None)
    assert not turns._queues  # nothing left behind
    async with turns.of("t", None, "an update of many"):  # a write of many takes no turn
        assert not turns._queues
