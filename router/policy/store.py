"""The policy bucket: shared, durable policy state with compare-and-set updates.

Several router processes decide about the same keys at the same time, so every read-modify-write
goes through :meth:`PolicyStore.mutate`: read the entry and its revision, compute the new value,
write it only if the revision is unchanged (``kv.update(last=...)`` / ``kv.create``), else read
again. JetStream orders the writes, which is what makes "the latest event of a key" or "the run
holding a slot" one answer for every replica. Values are small JSON documents; keys are
``<kind>.<rule>.<hash of the rendered key>`` (rendered keys may hold characters KV keys cannot).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from router import bus, errors
from router.settings import Settings

NO_CHANGE = None
Change = Callable[[dict[str, Any] | None], Awaitable[dict[str, Any] | None]]
_NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError)


def slot(kind: str, rule: str, key: str) -> str:
    return f"{kind}.{rule}.{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class PolicyStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "PolicyStore":
        return cls(await bus.key_value(js, settings.router.policy_bucket,
                                       description="trigger-router: run policy state (slots, joins, limits)",
                                       ttl=settings.bus.max_age, replicas=settings.bus.replicas))

    async def read(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """The value and its revision; ``(None, 0)`` when absent or deleted."""
        try:
            entry = await self.kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None, 0
        except _NATS_ERRORS as exc:
            raise errors.BusUnavailable(f"policy state unavailable: {exc.__class__.__name__}") from exc
        return (json.loads(entry.value) if entry.value else None), entry.revision

    async def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            await self.kv.put(key, _dump(value))
        except _NATS_ERRORS as exc:
            raise errors.BusUnavailable(f"policy state unavailable: {exc.__class__.__name__}") from exc

    async def mutate(self, key: str, change: Change) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Apply ``change`` atomically; returns (value before, value after).

        ``change`` gets the current value (None if absent) and returns the new one, or ``NO_CHANGE``.
        It may run several times under contention, so it must not have side effects.
        """
        for _ in range(100):
            current, revision = await self.read(key)
            new = await change(json.loads(json.dumps(current)) if current is not None else None)
            if new is NO_CHANGE:
                return current, current
            try:
                if revision:
                    await self.kv.update(key, _dump(new), last=revision)
                else:
                    await self.kv.create(key, _dump(new))
                return current, new
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except _NATS_ERRORS as exc:
                if "wrong last sequence" in str(exc).lower():
                    continue
                raise errors.BusUnavailable(f"policy state unavailable: {exc.__class__.__name__}") from exc
        raise errors.BusUnavailable(f"policy key {key} is too contended; will retry")

    async def delete(self, key: str, revision: int | None = None) -> bool:
        """Delete, only at ``revision`` when given; False if someone wrote in between."""
        try:
            await self.kv.delete(key, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except _NATS_ERRORS as exc:
            if "wrong last sequence" in str(exc).lower():
                return False
            raise errors.BusUnavailable(f"policy state unavailable: {exc.__class__.__name__}") from exc
        return True

    async def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        try:
            keys = [k for k in await self.kv.keys() if k.startswith(f"{prefix}.")]
        except nats.js.errors.NoKeysError:
            return {}
        values = await asyncio.gather(*(self.read(k) for k in keys))
        return {k: v for k, (v, _) in zip(keys, values) if v is not None}


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
