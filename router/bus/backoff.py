"""The one backoff formula: exponential with full jitter, for every retry loop in the router.

Connecting to NATS, setting up streams, compare-and-set races on a hot key, action retries and
watch restarts all wait between attempts. They use this one formula (AWS's "full jitter": a
uniform delay between 0 and ``min(cap, base * 2**attempt)``) so that many replicas retrying at
once spread out instead of colliding again, and so that a change to the formula is made once.
"""

from __future__ import annotations

import random

__all__ = ["delay", "Backoff"]


def delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
    return random.uniform(0, min(cap, base * 2 ** max(attempt - 1, 0)))


class Backoff:
    """A retry loop's state: ``next()`` gives the next delay, ``reset()`` after a success."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        self.attempt += 1
        return delay(self.attempt, self.base, self.cap)

    def reset(self) -> None:
        self.attempt = 0
