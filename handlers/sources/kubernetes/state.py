"""What a watch remembers across restarts, in a JetStream KV bucket: one entry per object.

Per watch (cluster, resource, namespace, selector: :func:`key`):

- ``<watch>.obj.<uid>``: the observer's summary of one object, with the object's resourceVersion
  it was made from; written only when the summary changed, deleted with the object;
- ``<watch>.pos``: the last resourceVersion the watch processed; written at most once per
  :data:`POSITION_INTERVAL` (bookmarks included), after a (re)list, and when the watch stops.

So the work per event is one small write when something changed and none otherwise, whatever the
size of the cluster (before, one value held every summary and was rewritten on every event: ~81 B
per pod, past NATS's 1 MiB payload at ~13,000 pods, quadratic bytes in the pod count).

A position behind the summaries is safe: resuming from it replays events whose objects the summaries
already reflect, and an event older than (or as old as) an object's stored resourceVersion is
skipped (:meth:`WatchState.is_stale`), so a replay never turns a newer summary back. The summaries
are written *after* the transitions they produced were stored on the bus: a crash in between
publishes them again, with the same ids, and JetStream drops the copies.

A restarted router reads the position, then the summaries in pages (``Bucket.scan``); a watch
stored in the one-value format of earlier releases is converted on first load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext

from router.plugins import kv

log = logging.getLogger(__name__)

_KEY_UNSAFE = re.compile(r"[^-_a-zA-Z0-9]")
POSITION_INTERVAL = 1.0
"""Seconds between writes of a watch's position while events flow (bookmarks included)."""


def key(cluster: str, group: str, version: str, kind: str, namespace: str | None, selector: str | None) -> str:
    scope = hashlib.sha256(f"{namespace or ''}\x00{selector or ''}".encode()).hexdigest()[:12]
    parts = [cluster, group or "core", version, kind, namespace or "all", scope]
    return ".".join(_KEY_UNSAFE.sub("_", part) for part in parts)


def _version(value: str | None) -> int | None:
    # resourceVersions are opaque to clients by contract; every apiserver backed by etcd gives the
    # etcd revision, a decimal. When one is not, ordering is not assumed and nothing is skipped.
    return int(value) if value is not None and value.isdigit() else None


@dataclass
class WatchState:
    resource_version: str | None = None
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """uid -> the observer's summary of that object."""
    versions: dict[str, str] = field(default_factory=dict)
    """uid -> the object's resourceVersion its summary was made from."""

    def is_stale(self, uid: str, resource_version: str | None) -> bool:
        """The stored summary of ``uid`` was made from this version of the object or a later one."""
        known, seen = _version(self.versions.get(uid)), _version(resource_version)
        return known is not None and seen is not None and seen <= known


class Store:
    def __init__(self, bucket: kv.Bucket) -> None:
        self.bucket = bucket
        self.writes = 0
        """KV writes (puts and deletes) made, for the scale bench and tests."""
        self.bytes_written = 0
        self._position_written: dict[str, tuple[float, str | None]] = {}

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, replicas: int = 1) -> "Store":
        return cls(await kv.open_bucket(js, bucket, replicas=replicas, what="the watch position",
                                        description="trigger-router: Kubernetes watch positions and known objects"))

    async def load(self, name: str) -> WatchState:
        position, _ = await self.bucket.read(f"{name}.pos")
        if position is None:
            legacy, revision = await self.bucket.read(name)
            if legacy is not None:
                return await self._convert(name, legacy, revision)
            return WatchState()
        state = WatchState(position.get("resourceVersion"))
        prefix = f"{name}.obj."
        async for entry_key, entry in self.bucket.scan(f"{name}.obj"):
            uid = entry_key[len(prefix):]
            state.objects[uid] = entry.get("summary", {})
            if entry.get("rv") is not None:
                state.versions[uid] = entry["rv"]
        self._position_written[name] = (time.monotonic(), state.resource_version)
        return state

    async def _convert(self, name: str, legacy: dict[str, Any], revision: int) -> WatchState:
        """The single-value format of earlier releases, rewritten as one entry per object."""
        state = WatchState(legacy.get("resourceVersion"), dict(legacy.get("objects", {})))
        for uid, summary in state.objects.items():
            await self._put(f"{name}.obj.{uid}", {"summary": summary, "rv": None})
        await self.save_position(name, state.resource_version, force=True)
        await self.bucket.delete(name, revision)
        log.info("watch state %s converted to one entry per object (%d objects)", name, len(state.objects))
        return state

    async def _put(self, entry_key: str, value: Any) -> None:
        await self.bucket.put(entry_key, value)
        self.writes += 1
        self.bytes_written += len(entry_key) + len(json.dumps(value, separators=(",", ":")))

    async def save_object(self, name: str, state: WatchState, uid: str, summary: dict[str, Any],
                          resource_version: str | None) -> None:
        """Remember ``summary`` for ``uid`` (in ``state`` and, if it changed, in the bucket)."""
        changed = state.objects.get(uid) != summary
        state.objects[uid] = summary
        if resource_version is not None:
            state.versions[uid] = resource_version
        if changed:
            await self._put(f"{name}.obj.{uid}", {"summary": summary, "rv": resource_version})

    async def forget_object(self, name: str, state: WatchState, uid: str) -> None:
        if state.objects.pop(uid, None) is not None:
            state.versions.pop(uid, None)
            await self.bucket.delete(f"{name}.obj.{uid}")
            self.writes += 1

    async def save_position(self, name: str, resource_version: str | None, *, force: bool = False) -> None:
        """Store the position, unless it was stored less than ``POSITION_INTERVAL`` ago (or is unchanged)."""
        last_at, last_version = self._position_written.get(name, (0.0, None))
        now = time.monotonic()
        if resource_version == last_version or (not force and now - last_at < POSITION_INTERVAL):
            return
        await self._put(f"{name}.pos", {"resourceVersion": resource_version})
        self._position_written[name] = (now, resource_version)

    async def replace(self, name: str, old: WatchState, new: WatchState) -> None:
        """After a (re)list: store what changed from ``old`` to ``new``, then the position."""
        for uid, summary in new.objects.items():
            if old.objects.get(uid) != summary:
                await self._put(f"{name}.obj.{uid}", {"summary": summary, "rv": new.versions.get(uid)})
        for uid in old.objects.keys() - new.objects.keys():
            await self.bucket.delete(f"{name}.obj.{uid}")
            self.writes += 1
        await self.save_position(name, new.resource_version, force=True)
