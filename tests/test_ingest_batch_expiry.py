"""A Kafka batch of the ingest fails each push's future once that push's deadline has passed."""

from __future__ import annotations

import asyncio
import time
import weakref

import pytest

from service.deadline import TICK, Deadlines
from service.ingest.batcher import _Batch


def waiting(batch: _Batch, deadline: float) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    batch.wait(future, deadline)
    return future


async def failed_at(push: asyncio.Future[None]) -> float:
    with pytest.raises(TimeoutError):
        await push
    return time.monotonic()


async def test_a_push_not_acknowledged_by_its_deadline_gets_timeout_error_never_early() -> None:
    deadline = time.monotonic() + 0.05
    push = waiting(_Batch(None, Deadlines()), deadline)
    assert await failed_at(push) >= deadline


async def test_pushes_of_one_batch_each_fail_at_their_own_deadline() -> None:
    batch, start = _Batch(None, Deadlines()), time.monotonic()
    early, late = waiting(batch, start + 0.05), waiting(batch, start + 0.25)
    early_failed_at = await failed_at(early)
    assert not late.done()  # not failed with the earlier one
    assert await failed_at(late) >= start + 0.25 > early_failed_at >= start + 0.05


async def test_a_push_joining_a_batch_whose_pushes_already_failed_fails_at_its_deadline() -> None:
    # In an outage a batch waits behind the one in flight, and pushes keep joining it.
    batch = _Batch(None, Deadlines())
    await failed_at(waiting(batch, time.monotonic() + 0.05))
    joined = waiting(batch, time.monotonic() + 0.05)
    done, _ = await asyncio.wait({joined}, timeout=5)  # without an expiry it would wait for good
    assert done == {joined} and isinstance(joined.exception(), TimeoutError)


async def test_an_acknowledged_push_is_left_alone_when_its_batch_expires() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    batch, deadline = _Batch(None, Deadlines()), time.monotonic() + 2 * TICK
    waits, acknowledged = waiting(batch, deadline), waiting(batch, deadline)
    acknowledged.set_result(None)
    await failed_at(waits)
    await asyncio.sleep(3 * TICK)
    loop.set_exception_handler(None)
    assert (acknowledged.result(), errors) == (None, [])


async def test_a_settled_batch_lets_go_of_its_pushes_before_its_expiry_is_swept() -> None:
    # Deadlines keeps the batch until its expiry (seconds); what it held need not wait as long.
    batch = _Batch(object(), Deadlines())
    push = waiting(batch, time.monotonic() + 30)
    batch.settle(None)
    assert push.result() is None
    gone = weakref.ref(push)
    del push
    assert gone() is None
