"""TriggerRule and ClusterTriggerRule objects as a rule source beside rule files.

Every ``serve`` process with ``kubernetes.trigger_rules.enabled`` lists and watches the CRs
(``deploy/crds/``; all namespaces or ``trigger_rules.namespaces``) and compiles each one exactly
as a rule file's document is compiled: the rules in force are the files' plus every accepted CR's,
replaced in one step when any changes. Names are ``<namespace>/<name>`` for a TriggerRule and
``_cluster/<name>`` for a ClusterTriggerRule.

- **Invalid CRs** never disturb the others: the CR gets ``Accepted=False`` with the message
  ``rules validate`` would print (``TriggerRule <ns>/<name>: rule ..., field ...: ...``), and the
  rest keep routing. Deleting a CR removes its rule.
- **Tenancy**: a namespaced TriggerRule may use only ``cloudevent``, ``httpProbe``,
  ``kubernetesJob`` and ``rolloutCheck``, and every ``namespace`` its parameters name (the
  action's, a Job manifest's, a ConfigMap reference's), rendered or not, must be its own; nor may
  it set the parameters an action marks ``cluster_only`` (``cloudevent``'s ``headersFrom`` and
  ``publishReply``, ``kubernetesJob``'s ``jobFile``). Acting elsewhere (or running ``exec`` on the router's host) takes a
  ClusterTriggerRule, which only cluster admins can create.
- **Status** is written by one replica only, the holder of the ``trigger-router-triggerrules``
  Lease (``kubernetes.leader_election``): ``observedGeneration``, the ``Accepted`` condition, and
  ``lastRun`` (run id, time, outcome, reason) from the ``finished`` outcomes of the CR's rule, at
  most ``trigger_rules.status_rate`` writes a second, newest state per CR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from handlers.kubernetes import client as kube
from handlers.sources.kubernetes import leases
from router import plugins
from router.plugins import Settings, errors

log = logging.getLogger(__name__)

GROUP, VERSION = "trigger-router.dev", "v1alpha1"
NAMESPACED_ACTIONS = frozenset({"cloudevent", "httpProbe", "kubernetesJob", "rolloutCheck"})
CLUSTER_PREFIX = "_cluster/"


def scope(kind: str, metadata: dict[str, Any]) -> str | None:
    """The namespace a CR's rule is confined to: a TriggerRule's own, none for a ClusterTriggerRule."""
    return metadata.get("namespace") if kind == "TriggerRule" else None


def rule_name(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else f"{CLUSTER_PREFIX}{name}"


@dataclass
class Entry:
    kind: str
    namespace: str | None
    name: str
    uid: str
    generation: int
    rule: Any = None
    error: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    """The CR's status as last seen (so a condition's lastTransitionTime survives a rewrite)."""
    last_run: dict[str, Any] | None = None

    @property
    def rule_name(self) -> str:
        return rule_name(self.namespace, self.name)

    @property
    def path(self) -> str:
        namespaced = f"/namespaces/{self.namespace}" if self.namespace else ""
        plural = "triggerrules" if self.namespace else "clustertriggerrules"
        return f"/apis/{GROUP}/{VERSION}{namespaced}/{plural}/{self.name}"


class TriggerRules:
    def __init__(self, client: kube.Client, settings: Settings, bus: Any, sink: Any) -> None:
        self.client, self.settings, self.bus, self.sink = client, settings, bus, sink
        self.config = settings.kubernetes.trigger_rules
        self.entries: dict[str, Entry] = {}  # rule name -> entry
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.status_writes = 0

    # -- reading the CRs ---------------------------------------------------------------------------

    def collections(self) -> list[tuple[str, str, str | None]]:
        """(kind, path, namespace scope) of every collection to follow."""
        found = []
        if self.config.namespaces:
            found += [("TriggerRule", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/triggerrules", ns)
                      for ns in self.config.namespaces]
        else:
            found.append(("TriggerRule", f"/apis/{GROUP}/{VERSION}/triggerrules", None))
        if self.config.cluster_rules:
            found.append(("ClusterTriggerRule", f"/apis/{GROUP}/{VERSION}/clustertriggerrules", None))
        return found

    def compile(self, kind: str, obj: dict[str, Any]) -> Entry:
        metadata = obj["metadata"]
        entry = Entry(kind, scope(kind, metadata), metadata["name"],
                      metadata["uid"], metadata.get("generation", 0), status=obj.get("status") or {})
        origin = f"{kind} {entry.namespace}/{entry.name}" if entry.namespace else f"{kind} {entry.name}"
        try:
            entry.rule = self.sink.compile(obj.get("spec"), origin, entry.rule_name, namespace=entry.namespace,
                                           namespaced_actions=NAMESPACED_ACTIONS if entry.namespace else None)
        except errors.RuleError as exc:
            entry.error = str(exc)
            log.warning("rule not accepted: %s", entry.error)
        return entry

    def observe(self, kind: str, obj: dict[str, Any]) -> bool:
        """Take in one object's current state; True if the rules changed."""
        metadata = obj["metadata"]
        name = rule_name(scope(kind, metadata), metadata["name"])
        known = self.entries.get(name)
        if known is not None and known.uid == metadata["uid"] and known.generation == metadata.get("generation", 0):
            known.status = obj.get("status") or {}  # a status write of ours: the spec is the same
            return False
        entry = self.compile(kind, obj)
        if known is not None and known.uid == entry.uid:
            entry.last_run = known.last_run
        self.entries[name] = entry
        self.mark(name)
        return True

    def forget(self, kind: str, obj: dict[str, Any]) -> bool:
        metadata = obj["metadata"]
        name = rule_name(scope(kind, metadata), metadata["name"])
        self.dirty.discard(name)
        return self.entries.pop(name, None) is not None

    def publish(self) -> None:
        accepted = [e.rule for e in sorted(self.entries.values(), key=lambda e: e.rule_name) if e.rule is not None]
        self.sink.publish(accepted)
        log.info("TriggerRules in force: %d accepted, %d not accepted", len(accepted),
                 sum(1 for e in self.entries.values() if e.rule is None))

    async def follow(self, kind: str, path: str, listed_namespace: str | None) -> None:
        """List, then watch one collection, forever; re-list after 410 or a broken watch."""
        delay = 0.2
        while True:
            try:
                version = await self._list(kind, path, listed_namespace)
                delay = 0.2
                async for event in self.client.watch(path, {"resourceVersion": version, "allowWatchBookmarks": True},
                                                     self.settings.kubernetes.watch_timeout):
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED") and self.observe(kind, obj):
                        self.publish()
                    elif event["type"] == "DELETED" and self.forget(kind, obj):
                        self.publish()
            except errors.KubernetesRefused as exc:
                if exc.status == 404:
                    log.error("%s: the %s CRD is not installed (kubectl apply -f deploy/crds/); retrying in %.0fs",
                              path, kind, delay)
                elif exc.status != 410:
                    log.error("%s: %s; retrying in %.1fs", path, exc, delay)
            except (errors.KubernetesUnavailable, errors.BusUnavailable) as exc:
                log.warning("%s: %s; retrying in %.1fs", path, exc, delay)
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, self.settings.kubernetes.max_backoff)

    async def _list(self, kind: str, path: str, listed_namespace: str | None) -> str:
        seen: set[str] = set()
        async for page in self.client.pages(path):
            for obj in page["items"]:
                self.observe(kind, obj)
                seen.add(rule_name(scope(kind, obj["metadata"]), obj["metadata"]["name"]))
            version = page["metadata"]["resourceVersion"]
        for name in [n for n, e in self.entries.items() if e.kind == kind and n not in seen
                     and (listed_namespace is None or e.namespace == listed_namespace)]:
            del self.entries[name]  # deleted while this process was not watching
        self.publish()
        return version

    # -- status (the Lease holder only) ------------------------------------------------------------

    def mark(self, name: str) -> None:
        self.dirty.add(name)
        self.wake.set()

    def finished(self, outcome: dict[str, Any]) -> None:
        """A ``finished`` outcome: remember it as the lastRun of the CR whose rule ran."""
        custom = outcome.get("customData") or {}
        entry = self.entries.get(custom.get("rule", ""))
        if entry is None:
            return
        content = (outcome.get("subject") or {}).get("content") or {}
        entry.last_run = {"runId": custom.get("runId", ""), "time": (outcome.get("context") or {}).get("timestamp", ""),
                          "outcome": content.get("outcome", ""), "reason": (content.get("reason") or "")[:1000]}
        self.mark(entry.rule_name)

    def desired_status(self, entry: Entry) -> dict[str, Any]:
        accepted = entry.rule is not None
        condition = {"type": "Accepted", "status": "True" if accepted else "False",
                     "reason": "Valid" if accepted else "Invalid",
                     "message": "the rule is in force" if accepted else entry.error or "",
                     "observedGeneration": entry.generation}
        previous = next((c for c in entry.status.get("conditions") or [] if c.get("type") == "Accepted"), {})
        changed = previous.get("status") != condition["status"]
        condition["lastTransitionTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if changed or not \
            previous.get("lastTransitionTime") else previous["lastTransitionTime"]
        status: dict[str, Any] = {"observedGeneration": entry.generation, "conditions": [condition]}
        if entry.last_run is not None:
            status["lastRun"] = entry.last_run
        elif "lastRun" in entry.status:
            status["lastRun"] = entry.status["lastRun"]
        return status

    async def write_statuses(self) -> None:
        """While holding the status Lease: write every CR's status once, then what changes, rate-limited."""
        self.dirty |= set(self.entries)
        self.wake.set()
        interval = 1.0 / self.config.status_rate
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.dirty:
                name = self.dirty.pop()
                entry = self.entries.get(name)
                if entry is None:
                    continue
                status = self.desired_status(entry)
                if {k: v for k, v in entry.status.items() if k in status} == status:
                    continue
                try:
                    answer = await self.client.request(
                        "PATCH", f"{entry.path}/status", body={"status": status},
                        content_type="application/merge-patch+json")
                    entry.status = answer.get("status") or status
                    self.status_writes += 1
                except errors.KubernetesRefused as exc:
                    if exc.status != 404:  # 404: deleted meanwhile
                        log.warning("%s: status not written: %s", name, exc)
                except errors.KubernetesUnavailable as exc:
                    log.warning("%s: status not written (%s); will retry", name, exc)
                    self.dirty.add(name)
                    await asyncio.sleep(1.0)
                await asyncio.sleep(interval)

    async def follow_outcomes(self) -> None:
        await self.bus.wait_ready()

        async def received(msg) -> None:
            try:
                self.finished(json.loads(msg.data))
            except (ValueError, AttributeError, TypeError):
                pass  # not an outcome this source can read: nothing to record
        subject = f"{self.settings.bus.outcomes_subject}.finished.>"
        subscription = await self.bus.nc.subscribe(subject, cb=received)
        try:
            await asyncio.Event().wait()
        finally:
            await subscription.unsubscribe()

    async def run(self) -> None:
        election = self.settings.kubernetes.leader_election
        tasks = [self.follow(kind, path, namespace) for kind, path, namespace in self.collections()]
        tasks.append(self.follow_outcomes())
        if election.enabled:
            namespace = leases.lease_namespace(election, self.settings.kubernetes.service_account_dir)
            identity = election.identity or leases.default_identity()
            elector = leases.Elector(self.client, election, namespace, "triggerrules-status", "TriggerRule status",
                                     identity, name="trigger-router-triggerrules")
            tasks.append(elector.run(self.write_statuses))
        else:
            tasks.append(self.write_statuses())
        async with asyncio.TaskGroup() as group:  # stopped, it waits for all (a Lease release) to end
            for task in tasks:
                group.create_task(task)


@plugins.rule_source("kubernetes", enabled=lambda settings: settings.kubernetes.trigger_rules.enabled)
async def run(settings: Settings, bus: Any, sink: Any) -> None:
    kube.configure(settings.kubernetes)
    await bus.wait_ready()
    client = await kube.Client.connect(settings.kubernetes)
    try:
        await TriggerRules(client, settings, bus, sink).run()
    finally:
        await client.close()
