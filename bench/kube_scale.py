"""Kubernetes watch at cluster scale: tens of thousands of pods, one router, the numbers README keeps.

Starts the local control plane (tests/kubeplane: etcd, kube-apiserver, controllers, scheduler,
kwok playing the kubelet of one fake node) and a nats-server, creates ``--pods`` pods spread over
``--namespaces`` namespaces (bound to kwok's node, so no scheduler work), then runs
``trigger-router serve`` as its own process watching every pod cluster-wide, and measures:

- **initial list**: serve start -> "baseline of N objects listed" (its log); python start-up
  ("HTTP edge listening") is reported alongside as the part that is not the list;
- **RSS** of serve after the list and at the end (VmRSS);
- **KV per pod event**: writes and bytes added to the watch-state bucket (``KV_TR_KUBE_WATCH``
  stream: last sequence and stored bytes) while ``--rate`` pod events per second flow for
  ``--seconds``; each event is a status patch that makes a container crash-loop (a transition)
  or recover (no transition); the largest value in the bucket;
- **transition latency** at that rate: status patch answered -> ``io.k8s.pod.crashloop`` received
  on a core NATS subscription, p50/p95/max; the baseline is the apiserver's own answer time for
  the patch, measured in the same run;
- **restart-resume**: SIGKILL serve, start it again: start -> "resuming at resourceVersion ... (N
  known objects)" -> the first transition after the restart received;
- **410 at scale**: SIGKILL serve, crash a few pods, compact etcd (the stored position expires),
  start it again: start -> "re-listed N objects ..., K transition(s) found in the gap"; K must
  be the crash-loops made while it was down, no more (nothing replayed) and no fewer.

    .venv/bin/python bench/kube_scale.py [--pods 20000] [--namespaces 20] [--rate 10] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from handlers.kubernetes import client as kube  # noqa: E402
from handlers.kubernetes.settings import KubernetesSettings  # noqa: E402
from tests.kubeplane import build, cluster  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CRASH = "io.k8s.pod.crashloop"


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "scale"}},
            "spec": {"nodeName": cluster.NODE_NAME,
                     "containers": [{"name": "app", "image": "registry.invalid/scale@sha256:" + "ab" * 32}]}}


def status(restarts: int, crashing: bool) -> dict:
    state = {"waiting": {"reason": "CrashLoopBackOff"}} if crashing else {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    return {"status": {"phase": "Running", "containerStatuses": [{
        "name": "app", "ready": not crashing, "restartCount": restarts, "state": state,
        "image": "registry.invalid/scale", "imageID": "registry.invalid/scale@sha256:" + "ab" * 32}]}}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Serve:
    def __init__(self, work: Path, nats_url: str, kubeconfig: Path) -> None:
        self.work, self.log = work, work / "serve.log"
        self.env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(free_port()),
                    "TRIGGER_ROUTER_STATE_DIR": str(work / "state"),
                    "TRIGGER_ROUTER_KUBERNETES__KUBECONFIG": str(kubeconfig),
                    "TRIGGER_ROUTER_KUBERNETES__WATCHES": json.dumps([{"kind": "Pod"}]),
                    # A fixed identity, as a pod's name is: the restarted process takes its lease
                    # back at once (another identity would wait out leader_election.lease_duration).
                    "TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__IDENTITY": "bench-serve",
                    "TRIGGER_ROUTER_LOG__LEVEL": "info"}
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "a") as out:
            self.started = time.monotonic()
            self.process = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)

    def text(self) -> str:
        with open(self.log) as found:
            found.seek(self.offset)
            return found.read()

    async def wait_line(self, pattern: str, timeout: float) -> tuple[float, re.Match]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return time.monotonic() - self.started, found
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"no {pattern!r} within {timeout}s:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


async def create_pods(client: kube.Client, count: int, namespaces: int) -> float:
    for n in range(namespaces):
        await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": f"scale-{n}"}})
    started, semaphore = time.monotonic(), asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with semaphore:
            namespace = f"scale-{i % namespaces}"
            while True:
                try:
                    await client.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=pod(f"p-{i}"))
                    return
                except Exception as exc:  # noqa: BLE001 - the default ServiceAccount may not exist yet
                    if "serviceaccount" not in str(exc).lower() and "AlreadyExists" not in str(exc):
                        raise
                    if "AlreadyExists" in str(exc):
                        return
                    await asyncio.sleep(0.2)
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.monotonic() - started


async def kv_state(js) -> tuple[int, int, int]:
    info = await js.stream_info("KV_TR_KUBE_WATCH")
    return info.state.last_seq, info.state.bytes, info.state.messages


async def largest_value(js) -> int:
    kv = await js.key_value("TR_KUBE_WATCH")
    largest = 0
    # Sample: the position entry and 200 object entries (reading 20,000 one by one is the bench's cost, not the router's).
    keys = await kv.keys()
    for key in [k for k in keys if k.endswith(".pos")] + [k for k in keys if ".obj." in k][:200]:
        largest = max(largest, len((await kv.get(key)).value))
    return largest


async def flow(client: kube.Client, nc, args: argparse.Namespace, total_pods: int, tag: int,
               wait: bool = True) -> dict:
    """``--rate`` status patches per second for ``--seconds``: odd ones crash (a transition), even ones recover."""
    received: dict[str, float] = {}

    async def on_event(msg) -> None:
        if msg.headers and msg.headers.get("ce-type") == CRASH:
            received[msg.headers.get("ce-source", "")] = time.monotonic()
        else:
            try:
                body = json.loads(msg.data)
            except ValueError:
                return
            if body.get("type") == CRASH:
                received[body.get("source", "")] = time.monotonic()
    subscription = await nc.subscribe("tr.events.>", cb=on_event)
    counted = {"events": 0}

    async def count_pod_events() -> None:
        # What the router's watch sees too: kwok answers each status patch with writes of its own.
        listing = await client.request("GET", "/api/v1/pods", query={"limit": 1})
        async for _ in client.watch("/api/v1/pods", {"resourceVersion": listing["metadata"]["resourceVersion"]}, 600):
            counted["events"] += 1
    counter = asyncio.create_task(count_pod_events())
    await asyncio.sleep(0.5)  # let the counting watch open before the first patch
    sent: dict[str, float] = {}
    answer_times = []
    count = int(args.rate * args.seconds)
    started = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, started + i / args.rate - time.monotonic()))
        index = (i * 7919 + tag) % total_pods
        namespace, name = f"scale-{index % args.namespaces}", f"p-{index}"
        crashing = i % 2 == 0
        before = time.monotonic()
        await client.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
                             content_type="application/merge-patch+json", body=status(tag * 1000 + i, crashing))
        answered = time.monotonic()
        answer_times.append(answered - before)
        if crashing:
            sent[f"k8s://default/namespaces/{namespace}/pods/{name}"] = answered
    deadline = time.monotonic() + (60 if wait else 0)
    while len([s for s in sent if s in received]) < len(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await subscription.unsubscribe()
    counter.cancel()
    latencies = [received[s] - t for s, t in sent.items() if s in received]
    return {"patches": count, "events": counted["events"], "transitions": len(sent), "received": len(latencies),
            "latencies": latencies, "answers": answer_times}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def run(args: argparse.Namespace, work: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    local = cluster.LocalCluster(build.ensure_built(), work / "kube")
    local.start()
    nats_server = NatsServer(work / "js").start()
    try:
        client = await kube.Client.connect(KubernetesSettings(kubeconfig=local.kubeconfig))
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        try:
            took = await create_pods(client, args.pods, args.namespaces)
            rows.append(("pods created (POST, 32 at a time)", f"{args.pods:,} in {took:.0f} s ({args.pods / took:.0f}/s)"))
            serve = Serve(work, nats_server.url, local.kubeconfig)
            serve.start()
            edge_at, _ = await serve.wait_line(r"HTTP edge listening", 120)
            listed_at, found = await serve.wait_line(r"baseline of (\d+) objects listed in ([\d.]+)s", 1800)
            rows.append(("initial list: serve start -> baseline stored",
                         f"{listed_at:.1f} s for {int(found.group(1)):,} pods (list + summaries + KV {found.group(2)} s; "
                         f"python start-up to HTTP edge {edge_at:.1f} s)"))
            rows.append(("serve RSS after the list", f"{rss_mib(serve.process.pid):.0f} MiB"))
            seq0, bytes0, messages0 = await kv_state(js)
            rows.append(("watch-state bucket after the list", f"{messages0:,} entries, {bytes0 / 1024 / 1024:.1f} MiB "
                         f"({bytes0 / max(messages0, 1):.0f} B per entry)"))

            flowed = await flow(client, nc, args, args.pods, 1)
            seq1, bytes1, messages1 = await kv_state(js)
            writes, entry = seq1 - seq0, bytes1 / max(messages1, 1)
            rows.append((f"status patches at {args.rate:g}/s for {args.seconds:g} s",
                         f"{flowed['patches']} patches -> {flowed['events']} pod watch events (kwok writes too), "
                         f"{flowed['transitions']} crash-loop transitions, {flowed['received']} received"))
            rows.append(("KV per pod event", f"{writes / max(flowed['events'], 1):.2f} writes, "
                         f"~{writes * entry / max(flowed['events'], 1):.0f} B (entries ~{entry:.0f} B stored); "
                         f"the earlier one-value format wrote ~{bytes0:,} B per event at this size"))
            latencies, answers = flowed["latencies"], flowed["answers"]
            rows.append(("transition latency: patch answered -> event received",
                         f"p50 {percentile(latencies, .5) * 1e3:.0f} ms, p95 {percentile(latencies, .95) * 1e3:.0f} ms, "
                         f"max {max(latencies or [float('nan')]) * 1e3:.0f} ms"))
            rows.append(("baseline: the apiserver's answer to the patch",
                         f"p50 {percentile(answers, .5) * 1e3:.0f} ms, p95 {percentile(answers, .95) * 1e3:.0f} ms "
                         f"(latency p50 / answer p50 = {percentile(latencies, .5) / percentile(answers, .5):.1f}x)"))
            rows.append(("largest watch-state value (position + 200 sampled objects)", f"{await largest_value(js)} B"))
            rows.append(("serve RSS after the events", f"{rss_mib(serve.process.pid):.0f} MiB"))

            serve.kill()
            serve.start()
            resumed_at, found = await serve.wait_line(r"resuming at resourceVersion \S+ \((\d+) known objects\)", 600)
            flowed = await flow(client, nc, argparse.Namespace(**{**vars(args), "seconds": 1.0}), args.pods, 2)
            rows.append(("restart (SIGKILL) -> resumed",
                         f"{resumed_at:.1f} s to read the position and {int(found.group(1)):,} summaries back; "
                         f"first transitions after it: {flowed['received']}/{flowed['transitions']} received"))
            serve.kill()

            # Down while pods crash, and etcd compacted meanwhile: the stored position is gone (410).
            flowed = await flow(client, nc, argparse.Namespace(**{**vars(args), "seconds": 1.0}), args.pods, 3,
                                wait=False)
            local.compact_etcd()
            serve.start()
            relisted_at, found = await serve.wait_line(
                r"re-listed (\d+) objects in ([\d.]+)s, (\d+) transition\(s\) found in the gap", 1800)
            rows.append(("restart after compaction (410) -> re-listed and diffed",
                         f"{relisted_at:.1f} s for {int(found.group(1)):,} pods (list {found.group(2)} s); "
                         f"{found.group(3)} transitions found for the {flowed['transitions']} crash-loops made while "
                         "down"))
            rows.append(("serve RSS after the re-list", f"{rss_mib(serve.process.pid):.0f} MiB"))
            serve.kill()
        finally:
            await nc.close()
            await client.close()
    finally:
        nats_server.stop()
        local.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tr-bench-kube-scale-") as work:
        rows = asyncio.run(run(args, Path(work)))
    print("| measure | value |\n|---|---|")
    for measure, value in rows:
        print(f"| {measure} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
