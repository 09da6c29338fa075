"""Rate limits per rule and key: excess runs are delayed, never dropped.

A token bucket kept as a generic cell rate algorithm (GCRA): the bucket entry holds one number, the
"theoretical arrival time" ``tat``. Each run reserves one interval (``per / rate``) and may start at
``tat - burst * interval`` (or now, if that is earlier). Reserving is a compare-and-set on the entry,
so replicas never hand out the same slot: the limit is exact across replicas, with two caveats
documented in the README: a run reserves its slot when its event is routed (a run later debounced or
cancelled still used it), and "start" means "the executor may pick it up", so clock skew between
router hosts shifts starts by the skew.
"""

from __future__ import annotations

from typing import Any

from router.engine.policy.store import PolicyStore


def gcra(tat: float | None, now: float, interval: float, burst: int) -> tuple[float, float]:
    """One reservation: (the new theoretical arrival time, the earliest start of this run).

    ``tat`` is the stored value (``None`` for a key never used); ``interval`` is ``per / rate``.
    """
    tat = max(now if tat is None else tat, now) + interval
    return tat, max(now, tat - burst * interval)


async def reserve(store: PolicyStore, slot: str, rate: int, per: float, burst: int, now: float) -> float:
    """The earliest time the run may start (``now`` if within the limit)."""
    interval = per / rate
    start = now

    async def change(current: dict[str, Any] | None):
        nonlocal start
        tat, start = gcra((current or {}).get("tat"), now, interval, burst)
        return {"tat": tat}

    await store.mutate(slot, change)
    return start
