"""Cluster benchmark: ingest on a 3-node JetStream cluster (R3) next to one nats-server (R1).

A 202 on a cluster means two of three servers stored the event, so each publish costs a
replication round trip; how much that costs, and what a client sees while the ``TR_EVENTS``
leader dies, is measured here, in one run, everything on loopback:

1. one nats-server, and three forming one cluster (``tests/support/natscluster.py``);
2. ``trigger-router serve`` (no rules: ingest only) against each, ``bus.replicas`` 1 and 3;
3. the same closed-loop load of signed GitHub pushes to both (throughput, p50/p99), then an open
   loop paced at half the cluster's rate to both (p50/p99);
4. failover: an open loop at ``--failover-rate`` for ``--failover-seconds`` to the cluster's
   router; ``--kill-after`` seconds in, the ``TR_EVENTS`` stream leader is killed with SIGKILL.
   Every answer is recorded; afterwards a JetStream client on the two surviving servers reads
   the stream's ``ce-id`` headers and checks that every 2xx delivery is stored exactly once.

    .venv/bin/python bench/cluster.py [--requests 4000] [--concurrency 16]
        [--failover-rate 200] [--failover-seconds 15] [--kill-after 5]

Prints Markdown tables for README. Every loop is bounded by a request count and every wait by a
timeout; every process started here is stopped on exit, on errors, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import nats
from nats.js import api

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from ingest import BODY, SECRET, closed_loop, free_port, headers, open_loop, paced, pct, wait_up  # noqa: E402
from tests.support import natscluster, processes  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402

STREAM = "TR_EVENTS"
READY_TIMEOUT = 60.0
"""Seconds for a router to answer ``/readyz`` 200 (streams and buckets created on R3)."""
ANSWER_TIMEOUT = 30.0
"""Per request during failover; the router's own ``nats.publish_timeout`` (5 s) answers first."""
FAILOVER_CONNECTIONS = 1024
"""Client connections the failover loop may hold: requests waiting on a dead leader pile up."""


def phase_timeout(requests: int) -> float:
    """Bound for one load phase: generous (40 req/s would still finish), never infinite."""
    return 60.0 + requests / 40


def start_router(name: str, nats_url: str, replicas: int, tmp: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    state = tmp / f"{name}-router"
    state.mkdir()
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_GITHUB__SECRETS": f'["{SECRET}"]', "TRIGGER_ROUTER_LOG__LEVEL": "warning",
           "TRIGGER_ROUTER_STATE_DIR": str(state), "TRIGGER_ROUTER_BUS__REPLICAS": str(replicas)}
    with open(tmp / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=processes.die_with_parent)
    return f"http://127.0.0.1:{port}", process


async def wait_ready(base: str, process: subprocess.Popen, log: Path) -> None:
    await wait_up(f"{base}/readyz")  # answers at all (any status below 500 to a POST)
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(f"{base}/readyz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.2)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"{base} not ready in {READY_TIMEOUT:g}s (exit code {process.poll()}):\n{tail}")


@dataclass
class Answer:
    delivery: str
    status: int
    """HTTP status, or 0 when no answer came (connection error, client timeout)."""
    sent: float
    answered: float


@dataclass
class Failover:
    answers: list[Answer] = field(default_factory=list)
    killed: str = ""
    killed_at: float = 0.0
    stored: Counter = field(default_factory=Counter)
    """ce-id -> how often the failover's deliveries are in TR_EVENTS."""


async def failover_load(url: str, rate: float, requests: int, result: Failover) -> None:
    """Open loop like ingest.open_loop, but every answer is kept and none raises."""
    timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=FAILOVER_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        async def one(n: int) -> None:
            hdrs = headers(n, "failover")
            sent = time.perf_counter()
            try:
                async with http.post(url, data=BODY, headers=hdrs) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0
            result.answers.append(Answer(hdrs["X-GitHub-Delivery"], status, sent, time.perf_counter()))

        await paced(rate, requests, one)


async def stream_leader(js) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            leader = await natscluster.stream_leader(js, STREAM)
            if leader:
                return leader
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{STREAM} has no leader after 30s")


async def connect(urls: list[str]):
    connecting = nats.connect(urls, connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    return await asyncio.wait_for(connecting, 30)


async def run_failover(cluster: natscluster.NatsCluster, url: str, args: argparse.Namespace) -> Failover:
    result = Failover()
    nc = await connect(cluster.urls)
    try:
        js = nc.jetstream()
        result.killed = await stream_leader(js)
        first = (await js.stream_info(STREAM)).state.last_seq + 1
    finally:
        await nc.close()
    requests = int(args.failover_rate * args.failover_seconds)
    load = asyncio.create_task(failover_load(url, args.failover_rate, requests, result))
    try:
        await asyncio.sleep(args.kill_after)
        result.killed_at = time.perf_counter()
        await asyncio.to_thread(cluster.kill, result.killed)
        await asyncio.wait_for(load, phase_timeout(requests) + ANSWER_TIMEOUT)
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
    survivors = [node.url for node in cluster.nodes if node.name != result.killed]
    result.stored = await stored_ids(survivors, first)
    return result


async def stored_ids(urls: list[str], first: int) -> Counter:
    """ce-id of every TR_EVENTS message from sequence ``first`` on, read on ``urls`` only."""
    nc = await connect(urls)
    try:
        js = nc.jetstream()
        await stream_leader(js)  # the survivors have elected a new one
        last = (await js.stream_info(STREAM)).state.last_seq
        found: Counter = Counter()
        if last < first:
            return found
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first,
                                    headers_only=True)
        sub = await js.subscribe("tr.events.>", stream=STREAM, ordered_consumer=True, config=config)
        try:
            seq = first - 1
            while seq < last:
                msg = await sub.next_msg(timeout=10)
                seq = msg.metadata.sequence.stream
                found[(msg.headers or {}).get("ce-id", "(no ce-id)")] += 1
        finally:
            await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def longest_gap(result: Failover) -> tuple[float, float]:
    """(ms, start relative to the kill in ms) of the longest stretch with no 2xx answered, from the
    load's first send to its last answer."""
    if not result.answers:
        return 0.0, 0.0
    begin = min(a.sent for a in result.answers)
    end = max(a.answered for a in result.answers)
    marks = [begin, *sorted(a.answered for a in result.answers if 200 <= a.status < 300), end]
    gap, at = max((b - a, a) for a, b in zip(marks, marks[1:]))
    return gap * 1000, (at - result.killed_at) * 1000


def report(args: argparse.Namespace, closed: dict, paced: dict, paced_rate: float, failover: Failover) -> None:
    print(f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: {args.requests} signed GitHub "
          f"push webhooks ({len(BODY)} B), concurrency {args.concurrency}, {os.cpu_count()} cores, loopback\n")
    print(f"| bus | req/s | p50 ms | p99 ms | open loop at {paced_rate:,.0f} req/s p50 | p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for bus, label in (("single", "single node (R1)"), ("cluster", "3-node cluster (R3)")):
        rate, lat = closed[bus]
        print(f"| {label} | {rate:,.0f} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | "
              f"{pct(paced[bus], 50):.2f} | {pct(paced[bus], 99):.2f} |")
    print(f"\nthroughput ratio cluster / single: {closed['cluster'][0] / closed['single'][0]:.2f}; "
          f"p99 at {paced_rate:,.0f} req/s cluster / single: {pct(paced['cluster'], 99) / pct(paced['single'], 99):.2f}")

    answers = failover.answers
    statuses = Counter(a.status for a in answers)
    accepted = {a.delivery for a in answers if 200 <= a.status < 300}
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    refused = statuses.get(503, 0)
    gap, gap_at = longest_gap(failover)
    lost = accepted - set(failover.stored)
    duplicated = {d: n for d, n in failover.stored.items() if n > 1}
    print(f"\nFailover: open loop at {args.failover_rate:g} req/s for {args.failover_seconds:g} s to the cluster's "
          f"router; {args.kill_after:g} s in, the {STREAM} leader ({failover.killed}) killed with SIGKILL\n")
    print("| requests | 2xx | 503 | other | longest no-2xx window ms | lost | duplicated |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(answers)} | {ok} | {refused} | {len(answers) - ok - refused} | {gap:,.0f} | {len(lost)} | "
          f"{sum(n - 1 for n in duplicated.values())} |")
    print(f"\nanswers by status (0 = no answer): {dict(sorted(statuses.items()))}")
    print(f"longest window began {gap_at / 1000:+.2f} s from the kill; stored {sum(failover.stored.values())} "
          f"messages, {len(failover.stored)} distinct ids, {len(accepted)} accepted ids")
    after = sorted(a.answered for a in answers if 200 <= a.status < 300 and a.sent > failover.killed_at)
    print(f"first 2xx for a request sent after the kill: +{after[0] - failover.killed_at:.2f} s" if after else
          "NO 2xx for any request sent after the kill: the window was still open when the load ended")
    for status in sorted(set(statuses) - {202}):
        took = [(a.answered - a.sent) * 1000 for a in answers if a.status == status]
        print(f"{status} answered after p50 {sorted(took)[len(took) // 2]:,.0f} ms, max {max(took):,.0f} ms")
    refused_ids = {a.delivery for a in answers if not 200 <= a.status < 300}
    stored_refused = refused_ids & set(failover.stored)
    if stored_refused:  # allowed (a 503 is "retry", the retry is deduplicated), but worth knowing
        print(f"stored although not answered 2xx: {len(stored_refused)}")
    if lost:
        print(f"LOST (2xx but not in {STREAM}): {sorted(lost)[:20]}")
    if duplicated:
        print(f"DUPLICATED (stored more than once): {dict(sorted(duplicated.items())[:20])}")
    strangers = set(failover.stored) - {a.delivery for a in answers}
    if strangers:
        print(f"stored ids the failover load never sent: {sorted(strangers)[:20]}")


async def measure(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> None:
    single = NatsServer(tmp / "single-js").start()
    stack.callback(single.stop)
    cluster = natscluster.NatsCluster(tmp / "cluster")
    stack.callback(cluster.stop)
    cluster.start()
    routers = {}
    for name, url, replicas in (("single", single.url, 1), ("cluster", cluster.url, 3)):
        base, process = start_router(name, url, replicas, tmp)
        stack.callback(processes.stop_group, process)
        routers[name] = (base, process)
    for name, (base, process) in routers.items():
        await wait_ready(base, process, tmp / f"{name}.log")
    urls = {name: f"{base}/webhooks/github" for name, (base, _) in routers.items()}

    bound = phase_timeout(args.requests)
    closed, paced = {}, {}
    for url in urls.values():
        await asyncio.wait_for(closed_loop(url, 300, args.concurrency, "warm"), phase_timeout(300))
    for name, url in urls.items():
        closed[name] = await asyncio.wait_for(closed_loop(url, args.requests, args.concurrency, "max"), bound)
    paced_rate = closed["cluster"][0] / 2
    for name, url in urls.items():
        paced[name] = await asyncio.wait_for(open_loop(url, paced_rate, args.requests // 2, "paced"), bound)
    failover = await run_failover(cluster, urls["cluster"], args)
    report(args, closed, paced, paced_rate, failover)
    log_summary(tmp / "cluster.log")


def log_summary(log: Path) -> None:
    """What the cluster's router logged (warnings and up), each distinct message once with a count."""
    lines = log.read_text(errors="replace").splitlines()
    if not lines:
        return
    # Drop what varies per request (timestamps, delivery ids) so repeats group together.
    seen = Counter(" ".join(word for word in line.split() if not any(c.isdigit() for c in word))[:160]
                   for line in lines)
    print(f"\ncluster router log: {len(lines)} lines; most frequent:")
    for message, count in seen.most_common(6):
        print(f"- {count} x {message}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="See the module docstring for what is measured.")
    parser.add_argument("--requests", type=int, default=4000, help="closed-loop requests per bus (default 4000)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop concurrency (default 16)")
    parser.add_argument("--failover-rate", type=float, default=200, help="failover load, req/s (default 200)")
    parser.add_argument("--failover-seconds", type=float, default=15, help="failover load length (default 15)")
    parser.add_argument("--kill-after", type=float, default=5, help="seconds into the failover load (default 5)")
    args = parser.parse_args()
    if not 0 < args.kill_after < args.failover_seconds:
        parser.error("--kill-after must fall inside the failover load")

    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # unwinds like Ctrl-C
    with tempfile.TemporaryDirectory(prefix="tr-bench-cluster-") as tmp, contextlib.ExitStack() as stack:
        await measure(args, Path(tmp), stack)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted; every process started was stopped")
