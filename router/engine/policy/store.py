"""The policy bucket: shared, durable policy state with compare-and-set updates.

Several router processes decide about the same keys at the same time, so every read-modify-write
goes through :meth:`PolicyStore.mutate` (``router.bus.kv``'s compare-and-set loop): read the entry
and its revision, compute the new value, write it only if the revision is unchanged, else read again. JetStream orders the writes, which is what makes "the latest event of a key" or "the run
holding a slot" one answer for every replica. Values are small JSON documents; keys are
``<kind>.<rule>.<hash of the rendered key>`` (rendered keys may hold characters KV keys cannot).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from nats.js import JetStreamContext

from router.bus import kv
from router.config.settings import Settings

NO_CHANGE = kv.NO_CHANGE


def slot(kind: str, rule: str, key: str) -> str:
    return f"{kind}.{rule}.{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class PolicyStore(kv.Bucket):
    """The policy bucket: ``read``/``put``/``mutate``/``delete`` are ``kv.Bucket``'s, plus ``entries``."""

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "PolicyStore":
        bucket = await kv.open_bucket(js, settings.router.policy_bucket,
                                      description="trigger-router: run policy state (slots, joins, limits)",
                                      what="policy state", ttl=settings.bus.max_age, replicas=settings.bus.replicas)
        return cls(bucket.kv, bucket.what)

    async def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        keys = [k for k in await self.keys() if k.startswith(f"{prefix}.")]
        values = await asyncio.gather(*(self.read(k) for k in keys))
        return {k: v for k, (v, _) in zip(keys, values) if v is not None}
