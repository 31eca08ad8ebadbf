"""The retry loop, the breaker and the options, without a server: the operations are plain
coroutines raising the socket errors a driver would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import asyncdb
from asyncdb.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    OperationTimeout,
    TransactionError,
)
from asyncdb.resilience import (
    CONTENTION,
    MAYBE_APPLIED,
    NOT_APPLIED,
    Resilience,
    RetryPolicy,
    classify_botocore,
    classify_os_error,
)


def flaky(errors: list[BaseException]) -> tuple[list[int], object]:
    calls: list[int] = []

    async def operation() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "done"

    return calls, operation


def resilience(**options: float) -> Resilience:
    policy = RetryPolicy(retry_base_delay=0.001, **options)  # type: ignore[arg-type]
    return Resilience("test", classify_os_error, policy)


def test_classify_follows_the_context_of_a_mapped_error() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as exc:
            raise BackendError(f"cannot connect: {exc}") from None
    except BackendError as mapped:
        assert classify_os_error(mapped) is NOT_APPLIED
    assert classify_os_error(ConnectionResetError()) is MAYBE_APPLIED
    assert classify_os_error(ValueError()) is None


def test_classify_botocore_throttling() -> None:
    class ClientError(Exception):
        response = {"Error": {"Code": "ProvisionedThroughputExceededException"}}

    assert classify_botocore(ClientError()) is CONTENTION


def test_backoff_is_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(retry_base_delay=0.1, retry_max_delay=0.3)
    delays = [policy.backoff(attempt) for attempt in range(1, 8) for _ in range(50)]
    assert all(0 <= d <= 0.3 for d in delays) and max(delays) > 0.2


def test_options_are_popped_and_checked() -> None:
    options = {"timeout": "2.5", "retries": 3, "min_size": 1}
    assert RetryPolicy.from_options(options) == RetryPolicy(timeout=2.5, retries=3)
    assert options == {"min_size": 1}
    with pytest.raises(ConfigurationError):
        RetryPolicy.from_options({"timeout": 0})
    with pytest.raises(ConfigurationError):
        RetryPolicy.from_options({"retries": "many"})


async def test_reads_are_retried_and_writes_only_when_not_applied() -> None:
    r = resilience()
    calls, op = flaky([ConnectionResetError(), ConnectionResetError()])
    assert await r.call(op, write=False) == "done" and len(calls) == 3  # type: ignore[arg-type]
    calls, op = flaky([ConnectionRefusedError()])
    assert await r.call(op, write=True) == "done" and len(calls) == 2  # type: ignore[arg-type]
    calls, op = flaky([ConnectionResetError()])
    with pytest.raises(BackendError):  # maybe applied: an update is not sent twice
        await r.call(op, write=True)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_a_transaction_body_is_not_retried() -> None:
    calls, op = flaky([ConnectionRefusedError()])
    with pytest.raises(TransactionError):
        await resilience().call(op, write=False, in_transaction=True)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_attempts_are_bounded_and_the_breaker_opens_then_probes() -> None:
    r = resilience(retries=2, breaker_threshold=3, breaker_cooldown=0.05)
    calls, op = flaky([ConnectionResetError()] * 10)
    with pytest.raises(BackendError):
        await r.call(op, write=False)  # type: ignore[arg-type]
    assert len(calls) == 2 and r.breaker.state == "closed"
    with pytest.raises(BackendError):
        await r.call(op, write=False)  # type: ignore[arg-type]
    assert r.breaker.state == "open" and len(calls) == 3  # stops retrying once open
    with pytest.raises(BackendUnavailable):
        await r.call(op, write=False)  # type: ignore[arg-type]
    await asyncio.sleep(0.06)
    calls, op = flaky([])
    assert await r.call(op, write=False) == "done"  # type: ignore[arg-type]
    assert r.breaker.state == "closed"


async def test_contention_is_retried_without_counting_against_the_breaker() -> None:
    r = Resilience(
        "test", lambda exc: CONTENTION, RetryPolicy(retry_base_delay=0.001, breaker_threshold=1)
    )
    calls, op = flaky([RuntimeError("40001")])
    assert await r.call(op, write=True) == "done"  # type: ignore[arg-type]
    assert r.breaker.state == "closed" and len(calls) == 2


async def test_memory_health() -> None:
    async with asyncdb.connect("memory://") as db:
        health = await db.health()
        assert health.ok and health.backend == "memory" and health.breaker == "closed"


async def _items(delays: list[float]) -> AsyncIterator[int]:
    for i, delay in enumerate(delays):
        if delay:
            await asyncio.sleep(delay)
        yield i


def streaming(timeout: float) -> Resilience:
    # A network store whose calls run in the caller's task, as PostgreSQL's do.
    return Resilience("x", lambda e: None, RetryPolicy(timeout=timeout), network=True, detach=False)


async def test_a_stream_deadline_times_each_wait_not_the_consumer() -> None:
    res = streaming(0.2)
    it = _items([0, 0, 0.1, 0, 0.1])
    got = []
    for _ in range(5):
        got.append(await res.next_item(it))
        await asyncio.sleep(0.15)  # a slow consumer: its time is not the stream's
    assert got == [0, 1, 2, 3, 4]


async def test_a_stream_deadline_raises_timeout_error_on_time_and_keeps_outer_cancels() -> None:
    res = streaming(0.2)
    it = _items([0, 5.0])
    assert await res.next_item(it) == 0
    await asyncio.sleep(0.5)  # an armed timer that fires while nothing waits: no effect
    began = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await res.next_item(it)
    assert asyncio.get_running_loop().time() - began < 0.2 + 0.5
    # a cancellation from outside stays a cancellation
    outer = streaming(10.0)

    async def consume() -> int:
        return await outer.next_item(_items([5.0]))

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_calls_in_their_own_task_time_out_each_on_its_own_deadline() -> None:
    # Store.detach_calls = False (PostgreSQL): one timer keeps every in-flight call's deadline.
    res = Resilience("x", lambda e: None, RetryPolicy(timeout=0.3), network=True, detach=False)
    loop = asyncio.get_running_loop()

    async def slow() -> int:
        await asyncio.sleep(5)
        return 0

    async def fast() -> int:
        await asyncio.sleep(0.05)
        return 1

    async def timed(delay: float) -> float:
        await asyncio.sleep(delay)
        began = loop.time()
        with pytest.raises(OperationTimeout):
            await res.call(slow, write=False)
        return loop.time() - began

    async def quick_ones() -> list[int]:
        return [await res.call(fast, write=False) for _ in range(10)]

    waited = await asyncio.gather(timed(0), timed(0.1), timed(0.2), quick_ones())
    assert waited[3] == [1] * 10  # 0.5 s of fast calls among the timeouts: none cancelled
    for seconds in waited[:3]:
        assert 0.29 <= seconds < 0.3 + 0.5
    # a cancellation from outside stays a cancellation, and the call's task is not hit later
    task = asyncio.create_task(res.call(slow, write=False))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await res.call(fast, write=False) == 1


async def test_a_first_attempt_made_by_the_caller_is_handled_as_the_first_attempt() -> None:
    """``failed=``: the error of an attempt made outside the layer (the in-process point read)
    is retried, counted and mapped as if the layer had made that attempt itself."""
    r = resilience(retries=2, breaker_threshold=2)
    calls, op = flaky([])
    done = await r.call(op, write=False, failed=ConnectionResetError())  # type: ignore[arg-type]
    assert done == "done" and len(calls) == 1 and r.breaker.state == "closed"
    calls, op = flaky([ConnectionResetError()])
    with pytest.raises(BackendError):  # attempts bounded: the caller's one counted
        await r.call(op, write=False, failed=ConnectionResetError())  # type: ignore[arg-type]
    assert len(calls) == 1 and r.breaker.state == "open"
    r = resilience()
    calls, op = flaky([])
    with pytest.raises(BackendError, match="ValueError"):  # unmapped: not retried
        await r.call(op, write=False, failed=ValueError("bad"))  # type: ignore[arg-type]
    assert calls == []
    with pytest.raises(TransactionError):
        await r.call(op, write=False, in_transaction=True, failed=ConnectionRefusedError())  # type: ignore[arg-type]
    assert calls == []
