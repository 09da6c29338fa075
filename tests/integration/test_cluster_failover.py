"""Issue 21, failover: two routers on a 3-node JetStream cluster while its leaders die.

Signed GitHub pushes are posted to both routers the whole time, and every answer is recorded. The
cluster loses, in turn, its meta leader, the leader of ``TR_EVENTS`` and the leader of ``TR_RUNS``
(kill -9, then restarted on the same ports and store so quorum returns), then one node is frozen
with SIGSTOP for 20 s. What a user must see: only 202 or 503 (a 503 only around a leader change),
every accepted delivery stored once, every stored event's run executed once (counted in the exec
log, as in the exactly-once issue), nothing re-created, and every stream and bucket on 3 replicas.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from router.engine import runs
from router.model.bindings import nats as nats_binding
from tests.integration.conftest import GITHUB_SECRET, github_signature
from tests.integration.test_exactly_once import check_executions, logs, unfinished
from tests.integration.test_webhooks import GITHUB
from tests.support import natscluster, routers

PUSH_TYPE = "com.github.push"
SENDERS = 2
PACE = 0.15
"""Seconds between one sender's posts: a steady stream a 2-core machine can execute as it comes."""
RETRIES = 20
"""A refused delivery is posted again (as GitHub's redelivery would) this many times at most."""
PROGRESS = 15
"""Deliveries accepted after a fault before the next step: ingest is shown to go on."""
FROZEN = 20.0
ACK_WAIT = "30s"
"""The run lease lasts ``ack_wait`` (the default here). It must outlast the time the cluster takes to
replace a frozen leader: at 5 s, a run whose result could not be stored while a frozen node still
led ``KV_TR_RUN_STATE`` lost its lease and was executed again by the other router (2 of 4 runs)."""
SETTLE = 15.0
"""Seconds after the cluster is healthy again in which a 503 still counts as "around" the fault
(clients reconnect with backoff)."""


@dataclass
class Sender:
    """Posts signed pushes to the routers in turn until stopped; every answer recorded."""

    urls: list[str]
    body: bytes
    answers: list[tuple[str, int, float]] = field(default_factory=list)
    """(delivery, HTTP status or 0 for no answer, time)."""
    accepted: set[str] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, worker: int) -> None:
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
                   "X-Hub-Signature-256": github_signature(self.body)}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            sent = 0
            while not self.stopping.is_set():
                delivery = f"w{worker}-{sent}"
                for attempt in range(RETRIES):
                    url = self.urls[(sent + attempt) % len(self.urls)]
                    try:
                        async with http.post(f"{url}/webhooks/github", data=self.body,
                                             headers={**headers, "X-GitHub-Delivery": delivery}) as answer:
                            status = answer.status
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        status = 0
                    self.answers.append((delivery, status, time.time()))
                    if 200 <= status < 300:
                        self.accepted.add(delivery)
                        break
                    if status != 503:
                        break  # the test fails on it; retrying would hide how often
                    await asyncio.sleep(0.5)  # the sender's backoff
                sent += 1
                await asyncio.sleep(PACE)


async def ready(url: str) -> bool:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"{url}/readyz") as answer:
                return answer.status == 200
        except aiohttp.ClientError:
            return False


async def test_two_routers_survive_leader_kills_and_a_frozen_node(nats_cluster, tmp_path):
    cluster = nats_cluster
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path, event_type=PUSH_TYPE)
    body = json.dumps({**json.loads((GITHUB / "push/payload.json").read_text()), "sleep": 0.1}).encode()
    ports = natscluster.free_ports(2)
    names = ["router0", "router1"]
    processes = [routers.start_router(cluster.url, rules, port, tmp_path, name, BUS__REPLICAS="3",
                                      GITHUB__SECRETS=json.dumps([GITHUB_SECRET]), ROUTER__CONCURRENCY="4",
                                      ROUTER__ACK_WAIT=ACK_WAIT)
                 for port, name in zip(ports, names)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    sender = Sender(urls, body)
    faults: list[tuple[str, float, float]] = []  # (what, began, healthy again)
    senders: list[asyncio.Task] = []
    started = time.monotonic()
    try:
        async with routers.connected(cluster.url) as probe:
            await routers.until(probe.subscribed, 60, "both routers subscribing",
                                *(tmp_path / f"{n}.log" for n in names))
            for url in urls:
                await routers.until(lambda: ready(url), 60, f"{url} ready", *(tmp_path / f"{n}.log" for n in names))
            senders = [asyncio.create_task(sender.run(i)) for i in range(SENDERS)]

            async def accepted_more(than: int) -> None:
                await routers.until(lambda: _count(len(sender.accepted) >= than + PROGRESS), 60,
                                    f"{PROGRESS} more deliveries accepted", *(tmp_path / f"{n}.log" for n in names))

            async def kill_and_restart(what: str, victim: str) -> None:
                before = len(sender.accepted)
                began = time.time()
                cluster.kill(victim)
                if what == "meta leader":
                    await routers.until(lambda: _other_leader(cluster, victim), 60, "a new meta leader")
                await accepted_more(before)
                cluster.restart(victim)
                await asyncio.to_thread(cluster.wait_healthy, 60)
                faults.append((f"{what} {victim} killed", began, time.time()))

            await accepted_more(0)
            await kill_and_restart("meta leader", await asyncio.to_thread(cluster.meta_leader))
            for stream in ("TR_EVENTS", "TR_RUNS"):
                leader = await routers.until(lambda: natscluster.stream_leader(probe.js, stream), 30,
                                             f"a leader of {stream}")
                await kill_and_restart(f"{stream} leader", leader)

            frozen = await routers.until(lambda: natscluster.stream_leader(probe.js, "TR_EVENTS"), 30,
                                         "a leader of TR_EVENTS")
            began = time.time()
            cluster.pause(frozen)
            await asyncio.sleep(FROZEN)  # the length of the freeze, not a wait for anything
            cluster.resume(frozen)
            await asyncio.to_thread(cluster.wait_healthy, 60)
            faults.append((f"{frozen} frozen {FROZEN:g}s", began, time.time()))
            await accepted_more(len(sender.accepted))

            sender.stopping.set()
            await asyncio.gather(*senders)
            stored = [nats_binding.from_message(m.headers, m.data) for m in await probe.messages("TR_EVENTS")]
            expected = {runs.run_id(routers.RULE, event) for event in stored if event.type == PUSH_TYPE}
            done = await routers.wait_finished(probe, expected, timeout=120)
            exited = await routers.actions_exited(log)
            announced = await probe.announced()
            streams = {info.config.name: info.config.num_replicas async for info in _streams(probe.js)}
    finally:
        sender.stopping.set()
        for task in senders:
            task.cancel()
        for process in processes:
            routers.stop_router(process)

    elapsed = time.monotonic() - started
    statuses = Counter(status for _, status, _ in sender.answers)
    per_delivery = Counter(event.id for event in stored)
    count = routers.tally(log.executions(), expected, announced=announced)
    refused_outside = [(d, at) for d, status, at in sender.answers if status == 503
                       and not any(began - 1 <= at <= healthy + SETTLE for _, began, healthy in faults)]
    summary = (count.line("cluster failover") + f" answers={dict(statuses)} accepted={len(sender.accepted)} "
               f"stored={len(per_delivery)} 503s outside faults={len(refused_outside)} "
               f"faults={[(what, round(began, 1), round(healthy - began, 1)) for what, began, healthy in faults]} "
               f"replicas={streams} elapsed={elapsed:.0f}s")
    print(summary)
    assert set(statuses) <= {202, 503}, f"answers other than 202 and 503; {summary}"
    assert not (sender.accepted - set(per_delivery)), (
        f"accepted but not stored: {sorted(sender.accepted - set(per_delivery))[:10]}; {summary}")
    assert set(per_delivery.values()) == {1}, (
        f"stored more than once: {[d for d, n in per_delivery.items() if n > 1][:10]}; {summary}")
    assert not refused_outside, f"503 away from any fault: {refused_outside[:10]}; {summary}"
    assert done.ok, unfinished(done, expected, summary) + "\n" + logs(tmp_path, *names)
    assert exited.ok, f"actions still running: {exited.value}; {summary}"
    check_executions(count, summary)
    assert count.executions == len(expected), f"no router was killed: executions must equal runs; {summary}"
    assert streams and set(streams.values()) == {3}, f"replicas per stream: {streams}"
    recreated = [name for name in names if "re-created" in (tmp_path / f"{name}.log").read_text()]
    assert not recreated, f"routers re-created streams or buckets: {recreated}\n{logs(tmp_path, *names)}"


async def _count(value):
    return value


async def _other_leader(cluster: natscluster.NatsCluster, old: str) -> bool:
    leader = await asyncio.to_thread(cluster.meta_leader)
    return leader is not None and leader != old


async def _streams(js):
    for info in await js.streams_info():
        yield info
