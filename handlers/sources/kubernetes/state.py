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
import re
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext

from router.plugins import kv

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
    def __init__(self, bucket: kv.Bucket) -> None:
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, replicas: int = 1) -> "Store":
        return cls(await kv.open_bucket(js, bucket, replicas=replicas, what="the watch position",
                                        description="trigger-router: Kubernetes watch positions and known objects"))

    async def load(self, name: str) -> WatchState:
        document, _ = await self.bucket.read(name)
        document = document or {}
        return WatchState(document.get("resourceVersion"), document.get("objects", {}))

    async def save(self, name: str, state: WatchState) -> None:
        await self.bucket.put(name, {"resourceVersion": state.resource_version, "objects": state.objects})
