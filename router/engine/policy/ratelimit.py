"""Rate limits per rule and key: excess runs are delayed, never silently dropped.

A token bucket kept as a generic cell rate algorithm (GCRA): the bucket entry holds one number, the
"theoretical arrival time" ``tat``. Each run reserves one interval (``per / rate``) and may start at
``tat - burst * interval`` (or now, if that is earlier). Reserving is a compare-and-set on the entry,
so replicas never hand out the same slot: the limit is exact across replicas, with two caveats
documented in the README: a run reserves its slot when its event is routed (a run later debounced or
cancelled still used it), and "start" means "the executor may pick it up", so clock skew between
router hosts shifts starts by the skew. The backlog is bounded: a run that would be the
``policy.maxWaiting + 1``-th waiting for its key reserves nothing and ends ``backlog full``, so the
longest wait is ``maxWaiting * per / rate``, which the rule loader keeps below ``bus.max_age``.
"""

from __future__ import annotations

import math
from typing import Any

from router.engine.policy.store import NO_CHANGE, PolicyStore


def gcra(tat: float | None, now: float, interval: float, burst: int) -> tuple[float, float]:
    """One reservation: (the new theoretical arrival time, the earliest start of this run).

    ``tat`` is the stored value (``None`` for a key never used); ``interval`` is ``per / rate``.
    """
    tat = max(now if tat is None else tat, now) + interval
    return tat, max(now, tat - burst * interval)


def waiting(start: float, now: float, interval: float) -> int:
    """Runs of the key waiting for the limit when one may start at ``start``, that one included."""
    return max(0, math.ceil((start - now) / interval - 1e-6))


async def reserve(store: PolicyStore, slot: str, rate: int, per: float, burst: int, now: float,
                  limit: int | None = None, order: float = 0) -> float | None:
    """The earliest time the run may start (``now`` if within the limit).

    ``limit``: the most runs that may wait for this key; past it nothing is reserved and the
    answer is ``None`` (the run's backlog is full)."""
    interval = per / rate
    start: float | None = now

    async def change(current: dict[str, Any] | None):
        nonlocal start
        tat, start = gcra((current or {}).get("tat"), now, interval, burst)
        if limit is not None and waiting(start, now, interval) > limit:
            start = None
            return NO_CHANGE
        return {"tat": tat}

    await store.mutate(slot, change, order=order)
    return start
