"""The per-key queue: one holder per key, turns in stream order, nothing kept for an idle key."""

from __future__ import annotations

import asyncio

import pytest

from router.engine.policy import queueing


async def test_one_key_runs_one_at_a_time_and_other_keys_do_not_wait():
    queue = queueing.KeyedQueue()
    running: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}

    async def work(key: str) -> None:
        async with queue.turn(key):
            running[key] += 1
            most[key] = max(most[key], running[key])
            await asyncio.sleep(0.001)
            running[key] -= 1

    await asyncio.gather(*(work(key) for key in "ab" * 50))
    assert most == {"a": 1, "b": 1}
    assert len(queue) == 0, "an idle key is forgotten"


async def test_waiters_take_turns_in_stream_order_not_arrival_order():
    queue = queueing.KeyedQueue()
    order: list[int] = []
    gate = asyncio.Event()

    async def first() -> None:
        async with queue.turn("k", 1):
            await gate.wait()

    async def decide(seq: int) -> None:
        async with queue.turn("k", seq):
            order.append(seq)

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(decide(seq)) for seq in (9, 4, 7, 4, 2)]
    await asyncio.sleep(0)
    assert queue.waiting("k") == 5
    gate.set()
    await asyncio.gather(holder, *waiters)
    assert order == [2, 4, 4, 7, 9]


async def test_a_batch_of_one_key_gathered_at_once_does_not_deadlock():
    """Routing gathers a whole batch: 128 events of one key all wait on the first."""
    queue = queueing.KeyedQueue()
    done: list[int] = []

    async def route(seq: int) -> None:
        async with queue.turn("rule\x00", seq):
            await asyncio.sleep(0)
            done.append(seq)

    await asyncio.wait_for(asyncio.gather(*(route(seq) for seq in range(128, 0, -1))), 5)
    assert sorted(done) == list(range(1, 129)) and len(queue) == 0


@pytest.mark.parametrize("cancel", ["waiter", "holder"])
async def test_a_cancelled_waiter_or_holder_passes_the_turn_on(cancel):
    queue = queueing.KeyedQueue()
    release = asyncio.Event()
    got: list[str] = []

    async def hold(name: str) -> None:
        async with queue.turn("k"):
            got.append(name)
            await release.wait()

    holder = asyncio.create_task(hold("holder"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold("waiter"))
    last = asyncio.create_task(hold("last"))
    await asyncio.sleep(0)
    (waiter if cancel == "waiter" else holder).cancel()
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, waiter, last, return_exceptions=True)
    assert got == (["holder", "last"] if cancel == "waiter" else ["holder", "waiter", "last"])
    assert len(queue) == 0


async def test_a_turn_handed_to_a_waiter_cancelled_before_it_ran_goes_to_the_next():
    queue = queueing.KeyedQueue()
    got: list[str] = []

    async def hold(name: str) -> None:
        async with queue.turn("k"):
            got.append(name)

    turn = queue.turn("k")
    await turn.__aenter__()
    second = asyncio.create_task(hold("second"))
    third = asyncio.create_task(hold("third"))
    await asyncio.sleep(0)  # both wait now
    await turn.__aexit__(None, None, None)  # hands the turn to "second", which has not resumed yet...
    second.cancel()  # ... and is cancelled before it does
    await asyncio.gather(second, third, return_exceptions=True)
    assert got == ["third"] and len(queue) == 0
