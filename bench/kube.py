"""Kubernetes path latency: rollout -> smoke Job, and Job -> outcome, on the local control plane.

One run starts the local control plane (tests/kubeplane; or TEST_KUBECONFIG) and a nats-server,
runs the watch source, the router and the executor in this process, and rolls out N Deployments
(``--rollouts``, default 50, ``--parallel`` at a time). A separate observer watch, in the same
process and clock, timestamps what the cluster shows:

- "Deployment available" (observed complete) -> "smoke Job created" (the Job appears): the watch
  source's transition, its pod digest lookup, two publishes, matching, the run record, the Job POST;
- "Job succeeded" (observed Complete) -> "outcome published" (``testsuiterun.finished`` received);
- baseline, measured alongside: "smoke Job created" -> "Job succeeded", the control plane's own
  round trip for one Job (controller + scheduler + kwok), which the router cannot beat.

    .venv/bin/python bench/kube.py [--rollouts 50] [--parallel 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from handlers.kubernetes import client as kube  # noqa: E402
from handlers.kubernetes import workloads
from handlers.kubernetes.settings import KubernetesSettings  # noqa: E402
from handlers.sources import kubernetes as kube_source  # noqa: E402
from router.bus.connection import Bus  # noqa: E402
from router.config import settings as settings_mod
from router.engine import runs
from router.engine.executor import Executor  # noqa: E402
from router.engine.routing import EventRouter  # noqa: E402
from router.plugins import catalog  # noqa: E402
from router.rules import loading as rules
from router.rules.matching import Matcher  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402

RULE = """
kind: TriggerRule
metadata: {name: bench-smoke}
spec:
  filters: [{exact: {type: io.k8s.deployment.rollout_completed}}]
  action:
    kubernetesJob:
      namespace: "{{ data.namespace }}"
      digest: "{{ data.images[0].digest }}"
      logTailLines: 0
      job:
        metadata: {name: "smoke-{{ data.name }}", labels: {bench/deployment: "{{ data.name }}"}}
        spec:
          template:
            spec:
              containers:
                - name: smoke
                  image: registry.invalid/smoke:1
                  resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {cpu: 10m, memory: 8Mi}}
"""


class Clock:
    """Local monotonic timestamps of what the observer watch and the outcome subscription saw."""

    def __init__(self) -> None:
        self.available: dict[str, float] = {}
        self.job_created: dict[str, float] = {}
        self.job_succeeded: dict[str, float] = {}
        self.outcome: dict[str, float] = {}
        self.job_of: dict[str, str] = {}

    async def observe(self, client: kube.Client, path: str, kind: str) -> None:
        listing = await client.request("GET", path)
        version = listing["metadata"]["resourceVersion"]
        while True:
            async for event in client.watch(path, {"resourceVersion": version}, 300):
                obj, now = event["object"], time.monotonic()
                version = obj["metadata"]["resourceVersion"]
                if kind == "Deployment":
                    obj["kind"] = "Deployment"
                    if workloads.rollout(obj).complete:
                        self.available.setdefault(obj["metadata"]["name"], now)
                    continue
                deployment = obj["metadata"].get("labels", {}).get("bench/deployment")
                if deployment:
                    self.job_of[obj["metadata"]["name"]] = deployment
                    self.job_created.setdefault(deployment, now)
                    conditions = (obj.get("status") or {}).get("conditions") or []
                    if any(c["type"] == "Complete" and c["status"] == "True" for c in conditions):
                        self.job_succeeded.setdefault(deployment, now)

    async def outcomes(self, nats_url: str) -> None:
        nc = await nats.connect(nats_url)
        try:
            sub = await nc.jetstream().subscribe("tr.outcomes.>", ordered_consumer=True, stream="TR_OUTCOMES")
            async for msg in sub.messages:
                body = json.loads(msg.data)
                if body["context"]["type"].endswith("testsuiterun.finished.0.3.0"):
                    job = body["customData"]["checks"][0]["job"]
                    self.outcome.setdefault(job, time.monotonic())
        finally:
            await nc.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000


async def bench(kubeconfig: Path, nats_url: str, rollouts: int, parallel: int, tmp: Path) -> None:
    plugins = catalog.load()  # before the settings: the kubernetes section is the plug-ins'
    settings = settings_mod.load(None, env={
        "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_KUBERNETES__KUBECONFIG": str(kubeconfig),
        "TRIGGER_ROUTER_KUBERNETES__WATCHES": '[{"group": "apps", "kind": "Deployment", "namespaces": ["bench"]}]',
        "TRIGGER_ROUTER_ROUTER__CONCURRENCY": str(max(parallel * 2, 4))})
    kube.configure(settings.kubernetes)
    client = await kube.shared()
    observer = await kube.Client.connect(KubernetesSettings(kubeconfig=kubeconfig))
    bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
    await bus.start(nats_url)
    await bus.wait_ready(15)
    await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "bench"}})
    while True:  # pods need the namespace's default ServiceAccount
        try:
            await client.request("GET", "/api/v1/namespaces/bench/serviceaccounts/default")
            break
        except Exception:
            await asyncio.sleep(0.2)
    (tmp / "rule.yaml").write_text(textwrap.dedent(RULE))
    states = await runs.RunStates.open(bus.js, settings)
    clock = Clock()
    watches = await kube_source.start(settings, bus, client)
    tasks = [asyncio.create_task(w.run()) for w in watches] + [
        asyncio.create_task(EventRouter(bus, settings, Matcher(rules.load([str(tmp / "rule.yaml")], plugins.actions)),
                                        states).run()),
        asyncio.create_task(Executor(bus, settings, plugins, states).run()),
        asyncio.create_task(clock.observe(observer, "/apis/apps/v1/namespaces/bench/deployments", "Deployment")),
        asyncio.create_task(clock.observe(observer, "/apis/batch/v1/namespaces/bench/jobs", "Job")),
        asyncio.create_task(clock.outcomes(nats_url))]
    await asyncio.gather(*(w.ready.wait() for w in watches))
    started = time.monotonic()
    try:
        for first in range(0, rollouts, parallel):
            names = [f"web-{i}" for i in range(first, min(first + parallel, rollouts))]
            for name in names:
                await client.request("POST", "/apis/apps/v1/namespaces/bench/deployments", body={
                    "metadata": {"name": name}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                                         "template": {"metadata": {"labels": {"app": name}}, "spec": {
                                                             "containers": [{"name": "app", "image":
                                                                             f"registry.invalid/{name}:1"}]}}}})
            try:
                async with asyncio.timeout(120):
                    while not set(names) <= {clock.job_of.get(job) for job in clock.outcome}:
                        await asyncio.sleep(0.05)
            except TimeoutError:
                raise SystemExit(f"no outcome for some of {names} after 120s: available {sorted(clock.available)}, "
                                 f"jobs {clock.job_of}, outcomes {sorted(clock.outcome)}") from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
        await observer.close()
        await kube.close_shared()
    wall = time.monotonic() - started
    done = {deployment: job for job, deployment in clock.job_of.items() if job in clock.outcome}
    to_job = [clock.job_created[d] - clock.available[d] for d in done]
    to_outcome = [clock.outcome[j] - clock.job_succeeded[d] for d, j in done.items()]
    baseline = [clock.job_succeeded[d] - clock.job_created[d] for d in done]
    base50, base95 = percentiles(baseline)
    print(f"\n{len(done)} rollouts ({parallel} at a time) in {wall:.1f}s; local control plane + kwok, loopback nats-server\n")
    print("| path | n | p50 ms | p95 ms | p50 vs baseline |")
    print("|---|---:|---:|---:|---:|")
    print(f"| baseline: smoke Job created -> Job succeeded (control plane + kwok) | {len(baseline)} | "
          f"{base50:.0f} | {base95:.0f} | 1.00 |")
    for label, samples in (("Deployment available -> smoke Job created", to_job),
                           ("Job succeeded -> outcome published", to_outcome)):
        p50, p95 = percentiles(samples)
        print(f"| {label} | {len(samples)} | {p50:.0f} | {p95:.0f} | {p50 / base50:.2f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        local = None
        try:
            kubeconfig = os.environ.get("TEST_KUBECONFIG")
            if not kubeconfig:
                from tests.kubeplane import build, cluster
                local = cluster.LocalCluster(build.ensure_built())
                local.start()
                kubeconfig = local.kubeconfig
            await bench(Path(kubeconfig), server.url, args.rollouts, args.parallel, Path(tmp))
        finally:
            if local:
                local.stop()
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
