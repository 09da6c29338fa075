"""Argo Events next to trigger-router: signed GitHub webhooks in, one HTTP call per webhook out.

The same N signed GitHub push webhooks (same body, ``X-Hub-Signature-256``, a unique
``X-GitHub-Delivery`` each) go, one system after the other, to

- **Argo Events** v1.9.11, built from the Go module proxy (``argo_build``): its GitHub EventSource
  and a Sensor run as plain processes against a JetStream EventBus (``argo_runtime`` says what was
  verified in Argo's source to run them without controller or Kubernetes API). Path: webhook ->
  stream ``default`` -> Sensor -> HTTP trigger POSTs ``{"delivery": <X-GitHub-Delivery>}``;
- **trigger-router** ``serve``: webhook -> ``TR_EVENTS`` -> a TriggerRule on ``com.github.push``
  -> ``cloudevent`` action POSTs the event in binary mode (``ce-id`` = the delivery id);

both on the same nats-server (different streams) and into the same local aiohttp sink, which
records when each delivery id first arrives. Printed: sent, 2xx, arrived, duplicates, missing,
throughput (distinct deliveries at the sink per second, first send to last arrival),
webhook-to-sink latency p50/p99, CPU seconds of each system's processes, and the ratios
trigger-router / Argo. Each system is started, warmed up (until a webhook comes through, then a
warm-up batch), measured and stopped before the other starts; every wait has a deadline and
every process started is stopped on exit, also on Ctrl-C.

    .venv/bin/python bench/peers/argo_events.py [--webhooks 2000] [--concurrency 16]
    .venv/bin/python bench/peers/argo_events.py --build-only     # just build/cache argo-events

The first run builds Argo Events (minutes on 2 cores; cached afterwards). It writes the webhook
secret to ``/argo-events/secrets/trbench-<pid>/secret`` (Argo's fixed secret path) and removes it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.peers import argo_build, argo_runtime  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.sink import Sink  # noqa: E402

SECRET = "bench-secret"
BODY = (ROOT.parent / "shared/fixtures/github/push/payload.json").read_bytes()
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
RULE = """\
apiVersion: trigger-router.dev/v1alpha1
kind: TriggerRule
metadata: {{name: bench-argo-peer}}
spec:
  description: Every GitHub push goes to the benchmark sink, as Argo's HTTP trigger does.
  filters: [{{exact: {{type: com.github.push}}}}]
  action:
    cloudevent: {{url: "{url}", timeout: 10s}}
  policy: {{timeout: 30s}}
"""


@dataclass
class Result:
    system: str
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    cpu: float = 0.0
    nats_cpu: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(1 for d in self.sent_at if d not in self.arrived)

    def latencies(self) -> list[float]:
        return [self.arrived[d] - t for d, t in self.sent_at.items() if d in self.arrived]

    def throughput(self) -> float:
        if not self.arrived:
            return 0.0
        return len(self.arrived) / (max(self.arrived.values()) - min(self.sent_at.values()))


def delivery_of(received) -> str:
    """The delivery id a sink request carries: ``ce-id`` (trigger-router) or the JSON body (Argo)."""
    if received.id:
        return received.id
    try:
        return str(json.loads(received.body).get("delivery", ""))
    except (ValueError, AttributeError):
        return ""


def headers(delivery: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": SIGNATURE}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes and their reaped children, from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


async def wait_http(url: str, deadline: float, alive) -> None:
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            alive()
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 in time")


class Driver:
    """Sends webhooks to one system and reads their arrival from the shared sink by path."""

    def __init__(self, sink: Sink, path: str, url: str, alive) -> None:
        self.sink, self.path, self.url, self.alive = sink, path, url, alive

    def arrivals(self) -> tuple[dict[str, float], int]:
        first, dups = {}, 0
        for received in self.sink.received:
            if received.path != self.path:
                continue
            delivery = delivery_of(received)
            if delivery in first:
                dups += 1
            else:
                first[delivery] = received.at
        return first, dups

    async def send(self, result: Result, prefix: str, count: int, concurrency: int,
                   rate: float = 0.0) -> None:
        """Closed loop (``concurrency`` in flight), or paced at ``rate``/s from that many senders."""
        counter = iter(range(count))
        begin = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                         timeout=timeout) as http:
            async def worker() -> None:
                for n in counter:
                    if rate:
                        await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
                    delivery = f"{prefix}-{n}"
                    result.sent += 1
                    result.sent_at[delivery] = time.time()
                    try:
                        async with http.post(self.url, data=BODY, headers=headers(delivery)) as answer:
                            text = await answer.text()
                            if 200 <= answer.status < 300:
                                result.ok += 1
                            else:
                                key = f"HTTP {answer.status}: {text[:120]}"
                                result.errors[key] = result.errors.get(key, 0) + 1
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        key = f"{type(exc).__name__}: {exc}"[:160]
                        result.errors[key] = result.errors.get(key, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def drain(self, result: Result, quiet: float, deadline: float) -> None:
        """Until every accepted webhook arrived, nothing new came for ``quiet`` s, or the deadline."""
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.alive()
            arrived, _ = self.arrivals()
            count = sum(1 for d in result.sent_at if d in arrived)
            if count >= result.ok:
                return
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > quiet:
                result.notes.append(f"gave up after {quiet:.0f} s without a new arrival")
                return
            await asyncio.sleep(0.1)
        result.notes.append("drain deadline reached")

    async def refuses_forgery(self) -> None:
        """Both sides must verify the signature, or the comparison is not like for like."""
        forged = {**headers("forged"), "X-Hub-Signature-256": "sha256=" + "0" * 64}
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url, data=BODY, headers=forged) as answer:
                if not 400 <= answer.status < 500:
                    raise RuntimeError(f"{self.url} answered {answer.status} to a forged signature")

    async def warm_up(self, count: int, concurrency: int, deadline: float) -> None:
        """First until one webhook comes through (consumers may still be starting), then a batch."""
        await self.refuses_forgery()
        probe = Result("probe")
        n = 0
        while time.monotonic() < deadline:
            await self.send(probe, f"probe{n}", 1, 1)
            n += 1
            for _ in range(10):
                if any(d in self.arrivals()[0] for d in probe.sent_at):
                    batch = Result("warm")
                    await self.send(batch, "warm", count, concurrency)
                    await self.drain(batch, 10.0, deadline)
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"no warm-up webhook reached the sink through {self.url}")

    async def measure(self, system: str, args, pids) -> Result:
        result = Result(system)
        cpu_before, nats_before = cpu_seconds(pids()), cpu_seconds([args.nats_pid])
        await self.send(result, f"run-{system}", args.webhooks, args.concurrency, args.rate)
        await self.drain(result, args.quiet, time.monotonic() + args.drain_timeout)
        result.cpu = cpu_seconds(pids()) - cpu_before
        result.nats_cpu = cpu_seconds([args.nats_pid]) - nats_before
        arrived, result.duplicates = self.arrivals()
        result.arrived = {d: t for d, t in arrived.items() if d in result.sent_at}
        return result


async def run_argo(args, binary: Path, nats_url: str, sink: Sink, work: Path) -> Result:
    argo = argo_runtime.ArgoEvents(binary, nats_url, f"{sink.url.rsplit('/', 1)[0]}/argo", SECRET,
                                   work, free_port(), at_least_once=args.at_least_once)
    driver = Driver(sink, "/argo", argo.webhook_url, argo.check_alive)
    try:
        argo.start()
        deadline = time.monotonic() + args.start_timeout
        await wait_http(argo.health_url, deadline, argo.check_alive)
        await driver.warm_up(args.warmup, args.concurrency, deadline)
        result = await driver.measure("argo-events", args,
                                      lambda: [p.pid for p in argo.processes.values()])
        errors = argo.log_errors()
        if any(errors.values()):
            result.notes.append(f"error log lines: {errors}")
        return result
    finally:
        await asyncio.to_thread(argo.stop)  # the sink (this loop) keeps answering meanwhile


async def run_router(args, nats_url: str, sink: Sink, work: Path) -> Result:
    rules = work / "rules"
    rules.mkdir()
    (rules / "sink.yaml").write_text(RULE.format(url=f"{sink.url.rsplit('/', 1)[0]}/tr"))
    port = free_port()
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_GITHUB__SECRETS": f'["{SECRET}"]', "TRIGGER_ROUTER_LOG__LEVEL": "warning",
           "TRIGGER_ROUTER_STATE_DIR": str(work / "state"), "TRIGGER_ROUTER_SHUTDOWN_GRACE": "10",
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([str(rules)])}
    with open(work / "trigger-router.log", "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, cwd=ROOT,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=processes.die_with_parent)

    def alive() -> None:
        if serve.poll() is not None:
            tail = (work / "trigger-router.log").read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"trigger-router exited with {serve.returncode}:\n" + "\n".join(tail))

    driver = Driver(sink, "/tr", f"http://127.0.0.1:{port}/webhooks/github", alive)
    try:
        deadline = time.monotonic() + args.start_timeout
        await wait_http(f"http://127.0.0.1:{port}/readyz", deadline, alive)
        await driver.warm_up(args.warmup, args.concurrency, deadline)
        return await driver.measure("trigger-router", args, lambda: [serve.pid])
    finally:  # in a thread: in-flight actions need the sink (this loop) to answer to finish
        await asyncio.to_thread(processes.stop_group, serve, 30.0)


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def report(args, results: list[Result]) -> None:
    load = f"paced at {args.rate:g}/s" if args.rate else f"closed loop, concurrency {args.concurrency}"
    print(f"\n{args.webhooks} signed GitHub push webhooks ({len(BODY)} B) per system, {load}, "
          f"{os.cpu_count()} cores, loopback, one nats-server "
          f"(Argo HTTP trigger atLeastOnce={str(args.at_least_once).lower()})\n")
    print("| system | sent | 2xx | arrived | duplicates | missing | deliveries/s | p50 ms | p99 ms "
          "| CPU s | nats-server CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        lat = r.latencies()
        print(f"| {r.system} | {r.sent} | {r.ok} | {len(r.arrived)} | {r.duplicates} | {r.missing} "
              f"| {r.throughput():,.0f} | {pct(lat, 50):.1f} | {pct(lat, 99):.1f} | {r.cpu:.1f} "
              f"| {r.nats_cpu:.1f} |")
    by = {r.system: r for r in results}
    if len(by) == 2 and by["argo-events"].arrived and by["trigger-router"].arrived:
        tr, argo = by["trigger-router"], by["argo-events"]
        lt, la = tr.latencies(), argo.latencies()
        print(f"| ratio trigger-router / Argo | | | | | | {tr.throughput() / argo.throughput():.2f} "
              f"| {pct(lt, 50) / pct(la, 50):.2f} | {pct(lt, 99) / pct(la, 99):.2f} "
              f"| {tr.cpu / argo.cpu if argo.cpu else float('nan'):.2f} "
              f"| {tr.nats_cpu / argo.nats_cpu if argo.nats_cpu else float('nan'):.2f} |")
    for r in results:
        for error, count in r.errors.items():
            print(f"\n{r.system}: {count} x {error}")
        for note in r.notes:
            print(f"\n{r.system}: {note}")


async def main(args) -> None:
    # SIGTERM unwinds like Ctrl-C, so every finally below stops what it started.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    binary = None
    if args.build_only or "argo" in args.order:
        binary = argo_build.ensure_built(args.argo_version)
    if args.build_only:
        print(binary)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # Argo's trigger keeps connections open
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="tr-argo-bench-") as tmp:
        work = Path(tmp)
        conf = argo_runtime.nats_tls_config(work / "tls")
        server = NatsServer(work / "js", "-c", str(conf)).start()
        args.nats_pid = server.process.pid
        sink = await Sink().start()
        results = []
        try:
            for system in args.order.split(","):
                (work / system).mkdir()
                if system == "argo":
                    results.append(await run_argo(args, binary, server.url, sink, work / system))
                else:
                    results.append(await run_router(args, server.url, sink, work / system))
        finally:
            await sink.stop()
            server.stop()
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in work.glob("*/*.log"):
                    shutil.copy(log, args.keep_logs / log.name)
    report(args, results)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--webhooks", type=int, default=2000, help="measured webhooks per system")
    parser.add_argument("--concurrency", type=int, default=16, help="webhooks in flight")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="send at this many webhooks/s (from --concurrency senders) instead "
                             "of a closed loop: latency without the queue a closed loop builds")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up webhooks per system")
    parser.add_argument("--order", default="tr,argo", choices=["tr,argo", "argo,tr", "tr", "argo"],
                        metavar="ORDER", help="systems to run, in order: tr,argo (default), argo,tr, tr, argo")
    parser.add_argument("--at-least-once", action="store_true",
                        help="Argo trigger atLeastOnce (ack after the HTTP call; default: Argo's "
                             "default, fire-and-forget)")
    parser.add_argument("--argo-version", default=argo_build.VERSION)
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy the systems' logs here")
    parser.add_argument("--build-only", action="store_true", help="build/cache argo-events, exit")
    parser.add_argument("--start-timeout", type=float, default=90.0, help="s to start and warm up")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="s to wait for arrivals")
    parser.add_argument("--quiet", type=float, default=20.0,
                        help="s without a new arrival after which the rest counts as missing")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        asyncio.run(main(parse()))
    except KeyboardInterrupt:
        sys.exit(130)
    except asyncio.CancelledError:
        sys.exit(143)
