"""What a watch remembers across restarts, in a JetStream KV bucket.

One key per watch (cluster, resource, namespace, selector) holds the last resourceVersion the
watch processed and the summary of every object it knows. A restarted router resumes the watch
from that resourceVersion and compares new objects with those summaries, so it neither replays
history nor misses what changed while it was down (if the version has expired meanwhile, the
re-list is diffed against the same summaries).

The summaries are written *after* the transitions they produced were stored on the bus: a crash in
between publishes them again, with the same ids, and JetStream drops the copies.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from router import bus, errors

_KEY_UNSAFE = re.compile(r"[^-_a-zA-Z0-9]")


@dataclass
class WatchState:
    resource_version: str | None = None
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """uid -> the observer's summary of that object."""


def key(cluster: str, group: str, version: str, kind: str, namespace: str | None, selector: str | None) -> str:
    scope = hashlib.sha256(f"{namespace or ''}\x00{selector or ''}".encode()).hexdigest()[:12]
    parts = [cluster, group or "core", version, kind, namespace or "all", scope]
    return ".".join(_KEY_UNSAFE.sub("_", part) for part in parts)


class Store:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, replicas: int = 1) -> "Store":
        return cls(await bus.key_value(js, bucket, replicas=replicas,
                                       description="trigger-router: Kubernetes watch positions and known objects"))

    async def load(self, name: str) -> WatchState:
        try:
            entry = await self.kv.get(name)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return WatchState()
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise errors.BusUnavailable(f"cannot read the watch position: {exc.__class__.__name__}") from exc
        document = json.loads(entry.value) if entry.value else {}
        return WatchState(document.get("resourceVersion"), document.get("objects", {}))

    async def save(self, name: str, state: WatchState) -> None:
        value = json.dumps({"resourceVersion": state.resource_version, "objects": state.objects},
                           separators=(",", ":")).encode()
        try:
            await self.kv.put(name, value)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise errors.BusUnavailable(f"cannot store the watch position: {exc.__class__.__name__}") from exc
