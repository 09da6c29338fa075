"""One list-then-watch loop over one resource in one namespace (or all), kept alive forever.

The loop: list (first start only: what exists is baseline, not news), then watch from the list's
resourceVersion with bookmarks. A watch request that ends is resumed from the last version seen; a
broken connection or a restarted apiserver is retried with exponential backoff and full jitter; a
version that expired (410 Gone) is answered by a re-list diffed against what was known, so a
transition that happened in the gap is emitted once and nothing is emitted twice.

Order per object event: publish the transitions (deterministic ids), then remember the new summary
and resourceVersion (``state.Store``). A failure in between repeats the publish, never skips it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from typing import Any

from handlers.kubernetes import bundles, workloads
from handlers.kubernetes import client as kube
from handlers.kubernetes.settings import KubernetesSettings, Watch
from handlers.sources.kubernetes import drift, emit, state, transitions
from router import plugins
from router.plugins import errors

log = logging.getLogger(__name__)

LIST_PAGE = 500
"""Objects per list page (``limit``); a page is summarised and dropped before the next is asked for."""


class ResourceWatch:
    def __init__(self, client: kube.Client, bus: Any, store: state.Store, spec: Watch,
                 namespace: str | None, settings: KubernetesSettings) -> None:
        self.client, self.bus, self.store, self.spec, self.namespace = client, bus, store, spec, namespace
        self.settings = settings
        if spec.conditions and spec.kind in transitions.OBSERVERS:
            raise errors.ConfigError(f"conditions are for kinds without built-in transitions, not {spec.kind}",
                                     path="kubernetes.watches.conditions")
        self.observer = transitions.OBSERVERS.get(spec.kind) or transitions.generic(spec.conditions)
        self.deployers = (frozenset(settings.drift.deployers)
                          if settings.drift.enabled and spec.kind in workloads.WORKLOAD_KINDS else None)
        """Drift detection for this watch (workloads only): the managers that are not drift."""
        self.key = state.key(client.cluster, spec.group, spec.version, spec.kind, namespace, spec.label_selector)
        self.memory = state.WatchState()
        self.ready = asyncio.Event()
        """Set once the watch has listed (or resumed) and follows changes."""
        self.published = 0
        self.duplicates = 0
        self.relists = 0
        self.list_restarts = 0
        """Lists started again because their continue token expired (410 while paging)."""
        self.stale = 0
        """Events skipped as older than what the stored summary was made from."""
        self.plural = ""
        self.path = ""

    @property
    def label(self) -> str:
        return f"{self.spec.kind} in {self.namespace or 'all namespaces'}"

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.flush()

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._run_once()
                delay = 0.2
            except errors.KubernetesRefused as exc:
                if exc.status == 410:
                    log.info("%s: resourceVersion %s expired; re-listing", self.label, self.memory.resource_version)
                    plugins.metrics.watch_restart(self.spec.kind, "gone")
                    await self._relist_with_retry()
                    continue
                log.error("%s: %s; retrying in %.1fs", self.label, exc, delay)
                plugins.metrics.watch_restart(self.spec.kind, "refused")
            except (errors.KubernetesUnavailable, errors.BusUnavailable) as exc:
                log.warning("%s: %s; retrying in %.1fs", self.label, exc, delay)
                plugins.metrics.watch_restart(self.spec.kind, "unavailable")
            except Exception:  # a bug (an object shaped unlike any seen) must not end the watch for good
                log.exception("%s: watch failed; retrying in %.1fs", self.label, delay)
            await asyncio.sleep(random.uniform(0, delay))  # full jitter: replicas do not reconnect in step
            delay = min(delay * 2, self.settings.max_backoff)

    async def _run_once(self) -> None:
        if not self.ready.is_set():  # until the first list (or the stored position) succeeded
            plural, _ = await self.client.resource(self.spec.group, self.spec.version, self.spec.kind)
            self.path = await self.client.collection_path(self.spec.group, self.spec.version, self.spec.kind,
                                                          self.namespace)
            self.plural = plural
            self.memory = await self.store.load(self.key)
            if self.memory.resource_version is None:
                started = time.monotonic()
                await self.list(baseline=True)
                log.info("%s: baseline of %d objects listed in %.1fs; watching from resourceVersion %s",
                         self.label, len(self.memory.objects), time.monotonic() - started,
                         self.memory.resource_version)
            else:
                log.info("%s: resuming at resourceVersion %s (%d known objects)", self.label,
                         self.memory.resource_version, len(self.memory.objects))
            self.ready.set()
        query = {"labelSelector": self.spec.label_selector, "allowWatchBookmarks": True,
                 "resourceVersion": self.memory.resource_version}
        async for event in self.client.watch(self.path, query, self.settings.watch_timeout):
            obj = event["object"]
            metadata = obj["metadata"]
            version = metadata["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED"):
                await self.observe(obj)
            elif event["type"] == "DELETED":
                await self.store.forget_object(self.key, self.memory, metadata["uid"])
            self.memory.resource_version = version
            await self.store.save_position(self.key, version)
        await self.store.save_position(self.key, self.memory.resource_version, force=True)

    async def flush(self) -> None:
        """Store the position now (the watch is stopping); best effort, bounded."""
        if self.ready.is_set():
            try:
                await asyncio.wait_for(self.store.save_position(self.key, self.memory.resource_version, force=True), 5)
            except (errors.BusUnavailable, asyncio.TimeoutError) as exc:
                log.warning("%s: position not stored at stop (%s); the next start replays from an older one",
                            self.label, exc)

    async def _relist_with_retry(self) -> None:
        delay = 0.2
        while True:
            try:
                started, published = time.monotonic(), self.published
                await self.list(baseline=False)
                self.relists += 1
                log.info("%s: re-listed %d objects in %.1fs, %d transition(s) found in the gap", self.label,
                         len(self.memory.objects), time.monotonic() - started, self.published - published)
                return
            except (errors.KubernetesError, errors.BusUnavailable) as exc:
                log.warning("%s: re-list failed (%s); retrying in %.1fs", self.label, exc, delay)
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.settings.max_backoff)

    async def list(self, *, baseline: bool) -> None:
        """List every object, page by page; ``baseline``: remember without emitting, else diff against memory.

        A continue token that expires while paging (410 Gone: etcd compacted past the list's
        revision) restarts the list from its first page: a list is only true as a whole, and the
        baseline in particular must be complete before anything can be news. Nothing of a list is
        stored until it is complete.
        """
        while True:
            try:
                new = await self._list_pages(baseline)
                break
            except errors.KubernetesRefused as exc:
                if exc.status != 410:
                    raise
                self.list_restarts += 1
                log.info("%s: the list's continue token expired (410); listing again from the start", self.label)
        await self.store.replace(self.key, self.memory, new)
        self.memory = new

    async def _list_pages(self, baseline: bool) -> state.WatchState:
        new = state.WatchState()
        async for page in self.client.pages(self.path, {"labelSelector": self.spec.label_selector}, LIST_PAGE):
            for obj in page["items"]:
                obj.setdefault("kind", self.spec.kind)
                obj.setdefault("apiVersion", f"{self.spec.group}/{self.spec.version}".lstrip("/"))
                uid = obj["metadata"]["uid"]
                if baseline:
                    new.objects[uid] = self.observer.baseline(self._summarize(obj, None))
                else:
                    new.objects[uid] = await self._transitions(obj)
                new.versions[uid] = obj["metadata"].get("resourceVersion")
            new.resource_version = page["metadata"]["resourceVersion"]
        return new

    async def observe(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        if self.memory.is_stale(metadata["uid"], metadata.get("resourceVersion")):
            self.stale += 1  # a replay after a resume from an older position: already reflected
            return
        summary = await self._transitions(obj)
        await self.store.save_object(self.key, self.memory, metadata["uid"], summary, metadata.get("resourceVersion"))

    def _summarize(self, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        summary = self.observer.summarize(obj, old)
        if self.deployers is not None:
            summary["drift"] = drift.remember(obj)
        return summary

    async def _transitions(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Publish what changed since the remembered summary; return the new summary (not yet stored)."""
        obj.setdefault("kind", self.spec.kind)
        old = self.memory.objects.get(obj["metadata"]["uid"])
        new = self._summarize(obj, old)
        found = self.observer.transitions(old, new, obj)
        if self.deployers is not None:
            found += drift.transitions(old, new, obj, self.deployers)
        for transition in found:
            if transition.name == "rollout_started" and self.settings.snapshots.enabled \
                    and obj["kind"] in workloads.WORKLOAD_KINDS:
                # Before the event: a rollback triggered by this rollout's failure finds it stored.
                snapshot = await bundles.record(self.client, self.settings, obj)
                transition = dataclasses.replace(transition, data={**transition.data, "snapshot": snapshot})
            for event in await emit.build(self.client, obj, self.plural, transition):
                published = await self.bus.publish(event)
                plugins.metrics.watch_transition(self.spec.kind, transition.name)
                self.published += 1
                self.duplicates += published.duplicate
                log.info("%s %s (%s/%s)%s", event.type, event.id, obj["metadata"].get("namespace"),
                         obj["metadata"]["name"], " duplicate" if published.duplicate else "")
        return new
