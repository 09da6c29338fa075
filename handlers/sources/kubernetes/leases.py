"""One watcher per watch among replicas: a ``coordination.k8s.io/v1`` Lease per watch.

Every replica of the router serves HTTP and runs rules; only the holder of a watch's Lease lists
and watches that resource (two replicas watching a big cluster cost the apiserver twice, for
events JetStream then drops as duplicates). The protocol is client-go's leader election:

- **acquire**: create the Lease, or take it over when its holder stopped renewing it. Expiry is
  judged on *this* process's clock: the record must have stayed unchanged for
  ``leaseDurationSeconds`` since this process first saw it that way, so clock skew between nodes
  never shortens a lease. Every write is a compare-and-set on the Lease's resourceVersion (a
  409 means someone else got it first).
- **renew**: every ``lease_duration / 3``; a holder that could not renew within
  ``2/3 lease_duration`` stops watching before anyone else may take over.
- **release**: a clean stop empties ``holderIdentity``, so the next replica takes over at once;
  after SIGKILL the others wait out the lease duration.

The holder's identity (``kubernetes.leader_election.identity``; default ``<hostname>_<pid>``,
the pod name in a pod) is in the Lease, and the watch it guards is named in its annotations.
Handover loses nothing: the new holder resumes from the position and summaries the previous one
stored (``state``), and what the two might both publish has the same event id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import socket
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from handlers.kubernetes import client as kube
from handlers.kubernetes.settings import LeaderElection
from router.plugins import errors

log = logging.getLogger(__name__)

API = "/apis/coordination.k8s.io/v1"
WATCH_ANNOTATION = "trigger-router.dev/watch"


def default_identity() -> str:
    """``<hostname>_<pid>``: in a pod the hostname is the pod's name, and a container restarted in the
    same pod is usually the same pid again, so it takes its own lease back at once instead of
    waiting for it to expire; two processes on one machine are still two identities."""
    return f"{socket.gethostname()}_{os.getpid()}"


def lease_name(watch_key: str) -> str:
    return f"trigger-router-watch-{hashlib.sha256(watch_key.encode()).hexdigest()[:16]}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    """Holds (or waits for) one Lease and runs ``work`` only while holding it."""

    def __init__(self, client: kube.Client, settings: LeaderElection, namespace: str, watch_key: str,
                 description: str, identity: str, *, name: str | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name or lease_name(watch_key)
        self.description = description
        self.identity = identity
        self.duration = settings.lease_duration
        self.path = f"{API}/namespaces/{namespace}/leases"
        self.holding = False
        self.acquired = 0
        """Times this process took the lease."""
        self._observed: tuple[str | None, float] = (None, 0.0)  # (resourceVersion, local time first seen)

    @property
    def renew_interval(self) -> float:
        return self.duration / 3

    @property
    def renew_deadline(self) -> float:
        return self.duration * 2 / 3

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        taking_over = previous is None or previous.get("holderIdentity") != self.identity
        spec = {**(previous or {}), "holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.duration)),
                "renewTime": _now()}
        if taking_over:
            spec["acquireTime"] = spec["renewTime"]
            spec["leaseTransitions"] = (previous or {}).get("leaseTransitions", -1) + 1 if previous else 0
        return spec

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True if this process holds the lease afterwards."""
        try:
            lease = await self.client.request("GET", f"{self.path}/{self.name}")
        except errors.KubernetesRefused as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "annotations": {WATCH_ANNOTATION: self.description},
                                 "labels": {"app.kubernetes.io/name": "trigger-router"}},
                    "spec": self._spec(None)}
            try:
                await self.client.request("POST", self.path, body=body)
            except errors.KubernetesRefused as conflict:
                if conflict.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        version = lease["metadata"]["resourceVersion"]
        if spec.get("holderIdentity") != self.identity:
            if version != self._observed[0]:
                self._observed = (version, time.monotonic())
            duration = spec.get("leaseDurationSeconds") or self.duration
            if spec.get("holderIdentity") and time.monotonic() < self._observed[1] + duration:
                return False  # held, and renewed within its duration as far as this process has seen
        lease["spec"] = self._spec(spec)
        try:
            await self.client.request("PUT", f"{self.path}/{self.name}", body=lease)
        except errors.KubernetesRefused as exc:
            if exc.status == 409:  # someone else renewed or took it between the read and the write
                return False
            raise
        return True

    async def release(self) -> None:
        """Give the lease up (a clean stop), so another replica need not wait for it to expire."""
        try:
            lease = await self.client.request("GET", f"{self.path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"] = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _now()}
            await self.client.request("PUT", f"{self.path}/{self.name}", body=lease)
            log.info("%s: released lease %s/%s", self.description, self.namespace, self.name)
        except errors.KubernetesError as exc:
            log.info("%s: lease not released (%s); it expires in %gs", self.description, exc, self.duration)

    async def _attempt(self) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), self.renew_interval)
        except (errors.KubernetesError, asyncio.TimeoutError) as exc:
            log.warning("%s: lease %s/%s: %s", self.description, self.namespace, self.name,
                        exc or exc.__class__.__name__)
            return False

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Forever: wait for the lease, run ``work`` while holding it, stop it when the lease is lost."""
        try:
            while True:
                while not await self._attempt():
                    await asyncio.sleep(self.renew_interval * random.uniform(0.8, 1.2))
                self.holding, self.acquired = True, self.acquired + 1
                log.info("%s: holding lease %s/%s as %s; watching", self.description, self.namespace, self.name,
                         self.identity)
                await self._hold(work)
                self.holding = False
        finally:
            if self.holding:
                self.holding = False
                # Awaited, not shielded: the caller closes the client right after, and a release
                # still running then would open a new session on it that nobody closes.
                try:
                    await asyncio.wait_for(self.release(), self.renew_interval)
                except asyncio.TimeoutError:
                    log.info("%s: lease not released in time; it expires in %gs", self.description, self.duration)

    async def _hold(self, work: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(work())
        renewed = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.renew_interval)
                if done:
                    task.result()  # work never ends by itself; if it did, its error surfaces here
                    return
                if await self._attempt():
                    renewed = time.monotonic()
                elif time.monotonic() - renewed > self.renew_deadline:
                    log.warning("%s: lease %s/%s not renewed for %.1fs; stopped watching", self.description,
                                self.namespace, self.name, time.monotonic() - renewed)
                    return
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def lease_namespace(settings: LeaderElection, service_account_dir: Any) -> str:
    """``leader_election.namespace``; else the pod's own namespace; else ``default``."""
    if settings.namespace:
        return settings.namespace
    try:
        with open(os.path.join(service_account_dir, "namespace")) as found:
            return found.read().strip() or "default"
    except OSError:
        return "default"
