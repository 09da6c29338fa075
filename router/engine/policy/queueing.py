"""Per-key turns inside one process: policy work on one key runs strictly one after another.

Routing takes a batch of up to 128 events and routes them concurrently; when they share a policy
key, every admission would read the same bucket entry, compute, and race the others to write it,
and all but one would lose and start again: 128 events on one key cost ~15,700 KV operations and
some gave up as "too contended". Compare-and-set still decides between *processes*; inside one
process, this queue makes the losers wait their turn instead (kopf's per-object queue,
``_core/reactor/queueing.py``, is the model: one worker per key, gone when the key is idle).

A turn is handed to the waiter with the lowest ``order`` (the event's stream sequence, so a batch is
decided in arrival order), ties in arrival order. Nothing is kept for a key nobody waits on, so
memory is bounded by the keys in flight. A holder never waits for another turn of the same queue
while it holds one, so a batch holding many events of one key cannot deadlock: each waits only for
the holder, and the holder only for the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from dataclasses import dataclass, field
from typing import AsyncIterator

__all__ = ["KeyedQueue"]


@dataclass
class _Key:
    waiting: list[tuple[float, int, asyncio.Future[None]]] = field(default_factory=list)
    """Heap of (order, arrival, future): the future completes when it is that waiter's turn."""


class KeyedQueue:
    """``async with queue.turn(key, order):`` runs the body alone among this queue's users of ``key``."""

    def __init__(self) -> None:
        self._busy: dict[str, _Key] = {}
        self._arrival = itertools.count()

    def __len__(self) -> int:
        """Keys with a holder (for tests and the bench: it must drop to 0 when idle)."""
        return len(self._busy)

    def waiting(self, key: str) -> int:
        state = self._busy.get(key)
        return sum(not f.done() for _, _, f in state.waiting) if state else 0

    @contextlib.asynccontextmanager
    async def turn(self, key: str, order: float = 0) -> AsyncIterator[None]:
        state = self._busy.get(key)
        if state is None:
            self._busy[key] = _Key()
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(state.waiting, (order, next(self._arrival), future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._hand_over(key)  # the turn came as we were cancelled: pass it on
                else:
                    future.cancel()  # skipped when its turn comes
                raise
        try:
            yield
        finally:
            self._hand_over(key)

    def _hand_over(self, key: str) -> None:
        state = self._busy[key]
        while state.waiting:
            _, _, future = heapq.heappop(state.waiting)
            if not future.done():
                future.set_result(None)
                return
        del self._busy[key]
