"""Removing a part: what the subscription manager does when a subscription is deleted or updated."""

from __future__ import annotations

import asyncio

from router.engine import supervisor as supervision


async def test_a_removed_part_is_stopped_and_forgotten():
    stop, started, cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def forever():
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def failing():
        raise RuntimeError("broken")

    supervisor = supervision.Supervisor(stop, base=10.0)
    supervisor.add("subscription/a", forever)
    supervisor.add("subscription/b", failing)
    await asyncio.wait_for(started.wait(), 5)
    async def b_failed():
        while "subscription/b" not in supervisor.failing():
            await asyncio.sleep(0.01)  # polls the supervisor's state, without spinning the loop
    await asyncio.wait_for(b_failed(), 5)
    await supervisor.remove("subscription/a")
    await supervisor.remove("subscription/b")  # a failing part waiting for its restart goes too
    await supervisor.remove("subscription/none")  # nothing to remove: nothing happens
    assert cancelled.is_set() and supervisor.parts == {} and supervisor.failing() == {}
    supervisor.add("subscription/a", forever)  # the name is free again
    await supervisor.close()
    assert not stop.is_set()
