"""The policy bucket: shared, durable policy state with compare-and-set updates.

Several router processes decide about the same keys at the same time, so every read-modify-write
goes through :meth:`PolicyStore.mutate` (``router.bus.kv``'s compare-and-set loop): read the entry
and its revision, compute the new value, write it only if the revision is unchanged, else back off
and read again. JetStream orders the writes, which is what makes "the latest event of a key" or "the
run holding a slot" one answer for every replica. Values are small JSON documents; keys are
``<kind>.<rule>.<hash of the rendered key>`` (rendered keys may hold characters KV keys cannot).

Inside one process the store adds two things, shared by the router and the executor of that
process (they open the bucket on the same JetStream context):

- a per-key queue (``queueing.KeyedQueue``): mutations of one key run one at a time, so the
  process never races itself; only other processes can make a write lose;
- the last entry it read or wrote per key (a bounded cache): a mutation tries it instead of
  reading first. Compare-and-set checks the guess, so a stale one costs one failed write and never
  a wrong answer. A burst on one key then costs one write per decision instead of a read and a
  write (bench/policy.py counts them).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections import OrderedDict
from typing import Any

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from router.bus import kv
from router.config.settings import Settings
from router.engine.policy import queueing

NO_CHANGE = kv.NO_CHANGE
KNOWN = 4096
"""Entries remembered per bucket and process: the hot keys of a burst, not the whole bucket."""


def slot(kind: str, rule: str, key: str) -> str:
    return f"{kind}.{rule}.{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class Local:
    """What the stores of one bucket in one process share: the per-key queue and the known entries."""

    def __init__(self) -> None:
        self.turns = queueing.KeyedQueue()
        self.known: OrderedDict[str, kv.Entry] = OrderedDict()

    def remember(self, key: str, value: Any, revision: int) -> None:
        # A copy: the caller may go on changing the document it wrote.
        self.known[key] = kv.Entry(json.loads(json.dumps(value)), revision)
        self.known.move_to_end(key)
        while len(self.known) > KNOWN:
            self.known.popitem(last=False)

    def forget(self, key: str) -> None:
        self.known.pop(key, None)


_LOCAL: "weakref.WeakKeyDictionary[JetStreamContext, dict[str, Local]]" = weakref.WeakKeyDictionary()
"""Per connection and bucket: the router and the executor of a process serialize with each other."""


class PolicyStore(kv.Bucket):
    """The policy bucket: ``read``/``put``/``mutate``/``delete`` are ``kv.Bucket``'s, plus ``entries``."""

    def __init__(self, kv_: KeyValue, what: str, local: Local | None = None) -> None:
        super().__init__(kv_, what)
        self.local = local or Local()

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "PolicyStore":
        name = settings.router.policy_bucket
        bucket = await kv.open_bucket(js, name,
                                      description="trigger-router: run policy state (slots, joins, limits)",
                                      what="policy state", ttl=settings.bus.max_age, replicas=settings.bus.replicas)
        local = _LOCAL.setdefault(js, {}).setdefault(name, Local())
        return cls(bucket.kv, bucket.what, local)

    async def mutate(self, key: str, change: kv.Change, attempts: int = kv.Bucket.RACE_ATTEMPTS, *,
                     order: float = 0, known: kv.Entry | None = None) -> tuple[Any, Any]:
        """``kv.Bucket.mutate``, one at a time per key in this process, starting from the known entry.

        ``order``: among mutations of ``key`` waiting at once, the lowest goes first (a stream sequence)."""
        async with self.local.turns.turn(key, order):
            return await super().mutate(key, change, attempts, known=known or self.local.known.get(key))

    def known(self, key: str) -> kv.Entry | None:
        """The entry as this process last read or wrote it (``None``: not remembered)."""
        return self.local.known.get(key)

    async def get(self, key: str) -> kv.Entry | None:
        entry = await super().get(key)
        if entry is None:
            self.local.forget(key)
        else:
            self.local.remember(key, entry.value, entry.revision)
        return entry

    async def put(self, key: str, value: Any) -> int:
        try:
            revision = await super().put(key, value)
        except BaseException:
            self.local.forget(key)
            raise
        self.local.remember(key, value, revision)
        return revision

    async def create(self, key: str, value: Any) -> int | None:
        return self._written(key, value, await self._guarded(key, super().create(key, value)))

    async def update(self, key: str, value: Any, revision: int) -> int | None:
        return self._written(key, value, await self._guarded(key, super().update(key, value, revision)))

    async def delete(self, key: str, revision: int | None = None) -> bool:
        self.local.forget(key)
        return await super().delete(key, revision)

    async def _guarded(self, key: str, write) -> int | None:
        try:
            return await write
        except BaseException:
            self.local.forget(key)  # the write may or may not have landed
            raise

    def _written(self, key: str, value: Any, revision: int | None) -> int | None:
        if revision is None:
            self.local.forget(key)  # someone else wrote: the next mutation reads
        else:
            self.local.remember(key, value, revision)
        return revision

    async def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        keys = [k for k in await self.keys() if k.startswith(f"{prefix}.")]
        values = await asyncio.gather(*(self.read(k) for k in keys))
        return {k: v for k, (v, _) in zip(keys, values) if v is not None}
