"""Bursts on policy keys: every event accounted for, however many arrive at once.

- 1,000 events on one key, per mode (debounce, rate limit, queue; the queue test uses 300, see
  ``QUEUED``), through two routers and two executors on their own connections: two processes as far
  as the policy bucket can tell, each with its own per-key queue, so they meet only in
  compare-and-set. Events are stored before the routers start, so each routing batch holds 128
  events of the one key. The action is an ``exec`` appending its run id to a file: what ran, how
  often, and in which order is counted, not inferred. No "too contended" in the logs.
- 5,000 events over 100 keys through two router processes with ``replace`` and ``debounce``:
  exactly one final run per key (on the key's last event), the rest cancelled with the reason
  (debounced, or replaced by a newer run, some of them while running in the other process).

The 1,000-event queue (about 40 s on the 2-core machine with two routers) is in ``bench/policy.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from router.bus.connection import Bus, subject_token
from router.cli import runs as run_commands
from router.engine import runs
from router.engine.executor import Executor
from router.engine.routing import EventRouter
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher
from tests.integration.conftest import make_settings
from tests.integration.test_router_processes import CLI, stop_router

BURST = 1000
QUEUED = 300
"""Queued runs go one at a time: 300 take ~5 s here, 1,000 about 40 s with two routers (more on a
busy machine), so the 1,000 are bench/policy.py's."""
ONE_KEY = "com.example.one-key"

KEYS = 100
WAVE = 2450  # two waves and one final event per key: 5,000 events
TYPE = "com.example.deployed"


def rule(tmp_path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: verify}}
        spec:
          filters: [{{exact: {{type: {TYPE}}}}}]
          policy:
            concurrency: {{key: "{{{{ data.app }}}}", mode: replace}}
            debounce: 1s
          action:
            exec: {{command: ["/bin/sh", "-c", "sleep \\"$0\\"", "{{{{ data.sleep }}}}"]}}
    """))
    return str(path)


def start_router(nats_url: str, rules: str, tmp_path, name: str) -> subprocess.Popen:
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": "0",
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([rules]), "TRIGGER_ROUTER_ROUTER__ACK_WAIT": "5s",
           "TRIGGER_ROUTER_ROUTER__CONCURRENCY": "64", "TRIGGER_ROUTER_LOG__LEVEL": "warning",
           "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / name)}
    with open(tmp_path / f"{name}.log", "a") as log:
        return subprocess.Popen(CLI, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def burst(prefix: str, count: int, sleep: str) -> list[events.CloudEvent]:
    return [events.make({"id": f"{prefix}-{i}", "source": "/burst", "type": TYPE},
                        {"app": f"app-{i % KEYS}", "sleep": sleep}) for i in range(count)]


async def test_burst_with_replace_and_debounce_leaves_one_run_per_key(nats_server, tmp_path, capsys):
    settings = make_settings(nats_server.url)
    bus = Bus(settings.nats, settings.bus)
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    path = rule(tmp_path)
    routers = [start_router(nats_server.url, path, tmp_path, f"router-{n}") for n in (1, 2)]
    try:
        began = time.monotonic()
        # Wave 1: the last run of each key becomes due and starts a long check...
        await bus.publish_all(burst("w1", WAVE, "30"))
        bucket = None
        deadline = time.monotonic() + 60
        while True:
            try:
                bucket = bucket or await runs.RunStates.open(bus.js, settings)
                running = [s for s in await bucket.all() if s.get("state") == "running"]
            except Exception:  # the routers create the bucket when they start
                running = []
            if len(running) >= KEYS // 2:  # 64 per process may run at once
                break
            assert time.monotonic() < deadline, "wave 1 never started running"
            await asyncio.sleep(0.2)
        # ... which wave 2 replaces; the final event of each key debounces wave 2, or replaces the
        # wave-2 runs that started because routing lagged more than the debounce period behind.
        await bus.publish_all(burst("w2", WAVE, "30"))
        finals = burst("final", KEYS, "0")
        await bus.publish_all(finals)
        total = 2 * WAVE + KEYS
        while True:
            states = await bucket.all()
            if len(states) == total and all(s.get("state") == "finished" for s in states):
                break
            assert time.monotonic() < deadline + 60, (
                f"{len(states)} runs, {Counter(s.get('state') for s in states)} after {time.monotonic() - began:.0f}s")
            await asyncio.sleep(0.5)
        await run_commands.list_runs(settings, True, None)
    finally:
        for router in routers:
            stop_router(router)
        await bus.close()
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == total and {s["event"]["id"] for s in listed} == {
        e.id for e in burst("w1", WAVE, "") + burst("w2", WAVE, "") + finals}, "an event is not accounted for"
    winners = [s for s in listed if s["outcome"] == "success"]
    assert sorted(s["event"]["id"] for s in winners) == sorted(e.id for e in finals), "not one final run per key"
    losers = [s for s in listed if s["outcome"] != "success"]
    assert {s["outcome"] for s in losers} == {"cancel"}
    notes = Counter(s["policyNote"].split(" by run ")[0] for s in losers)
    assert set(notes) <= {"debounced", "replaced"} and notes["debounced"] > 0, notes
    # A check that ran its 30 s to the end would have succeeded; these were killed mid-run.
    killed = [s for s in losers if s.get("startedAt") and s["decision"] == "replaced"]
    assert len(killed) >= KEYS // 2, "wave 1's running checks were not cancelled"
    # Both processes had checks killed; the replacing events were routed by either of them.
    assert len({s["worker"] for s in killed}) == 2
    print(f"burst: {total} events in {time.monotonic() - began:.1f}s, {notes}")


def one_key_rule(tmp_path: Path, name: str, policy: str) -> tuple[str, Path]:
    executed = tmp_path / f"{name}.executed"
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: {name}}}
        spec:
          filters: [{{exact: {{type: {ONE_KEY}}}}}]
          policy: {policy}
          action:
            exec: {{command: ["/bin/sh", "-c", "echo \\"$TRIGGER_ROUTER_RUN_ID\\" >> {executed}"]}}
    """))
    return str(path), executed


async def one_key_burst(nats_server, tmp_path, caplog, capsys, name: str, policy: str, count: int,
                        timeout: float = 60.0) -> tuple[list[dict], list[str], dict[str, int], float]:
    """(``runs list --json``, run ids in the order they executed, stream sequence by run id, seconds)."""
    caplog.set_level(logging.WARNING)
    settings = make_settings(nats_server.url, ROUTER__CONCURRENCY="16")
    path, executed = one_key_rule(tmp_path, name, policy)
    plugins = catalog.load()
    matcher = Matcher(rules.load([path], plugins.actions, settings.bus.max_age))
    buses, tasks = [], []
    try:
        for _ in range(3):  # one to publish and watch, one per router process
            bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
            await bus.start(nats_server.url)
            await bus.wait_ready(15)
            buses.append(bus)
        burst = [events.make({"id": f"{name}-{i}", "source": "/burst", "type": ONE_KEY}, {"n": i})
                 for i in range(count)]
        seqs = {}
        for start in range(0, count, 500):
            chunk = burst[start:start + 500]
            for event, published in zip(chunk, await buses[0].publish_all(chunk)):
                seqs[runs.run_id(name, event)] = published.seq
        async with Finished(buses[0], settings, name, count) as finished:
            began = time.monotonic()
            for bus in buses[1:]:
                states = await runs.RunStates.open(bus.js, settings)
                tasks += [asyncio.create_task(EventRouter(bus, settings, matcher, states).run()),
                          asyncio.create_task(Executor(bus, settings, plugins, states).run())]
            await finished.wait(began + timeout, tasks)
            elapsed = time.monotonic() - began
    finally:
        await stop(tasks)
        for bus in buses:
            await bus.close()
    contended = [r.getMessage() for r in caplog.records if "too contended" in r.getMessage()]
    assert not contended, contended[:3]
    return await listed(settings, name, capsys), executed.read_text().split() if executed.exists() else [], \
        seqs, elapsed


class Finished:
    """Counts the ``finished`` outcomes of one rule; open it before any run can finish.

    Polling the state bucket instead would read every state twice a second, enough event-loop
    time to slow the routers and executors down to the polling pace."""

    def __init__(self, bus: Bus, settings, rule: str, count: int) -> None:
        self.bus, self.settings, self.rule, self.count = bus, settings, rule, count
        self.seen: set = set()
        self.enough = asyncio.Event()
        self.subscription = None

    async def __aenter__(self) -> "Finished":
        async def outcome(msg) -> None:
            self.seen.add((msg.headers or {}).get("ce-id"))
            if len(self.seen) >= self.count:
                self.enough.set()

        subject = f"{self.settings.bus.outcomes_subject}.finished.{subject_token(self.rule)}"
        self.subscription = await self.bus.nc.subscribe(subject, cb=outcome)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.subscription.unsubscribe()

    async def wait(self, deadline: float, tasks) -> None:
        """Until every run finished (then checked once in the state bucket), or fail at ``deadline``."""
        watch = await runs.RunStates.open(self.bus.js, self.settings)
        while True:
            try:
                await asyncio.wait_for(self.enough.wait(), 5)
            except asyncio.TimeoutError:
                pass
            for task in tasks:
                assert not task.done(), f"a router or executor stopped: {task.exception()!r}"
            states = [s for s in await watch.all() if s.get("rule") == self.rule]
            if len(states) == self.count and all(s.get("state") == "finished" for s in states):
                return
            self.enough.clear()
            assert time.monotonic() < deadline, f"{len(self.seen)} of {self.count} runs finished in time"


async def stop(tasks) -> None:
    for task in tasks:
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=30) if tasks else (set(), set())
    assert not pending, f"{len(pending)} router or executor task(s) did not stop within 30s of cancelling"


async def listed(settings, rule: str, capsys) -> list[dict]:
    """``runs list --rule R --json``, parsed. Asked once: the run states are listed with
    ``Bucket.scan`` now, not with nats-py's ``keys()``, which could come back empty when busy."""
    await run_commands.list_runs(settings, True, rule)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


async def test_a_thousand_events_on_one_key_debounce_to_one_run(nats_server, tmp_path, caplog, capsys):
    states, executed, seqs, elapsed = await one_key_burst(nats_server, tmp_path, caplog, capsys, "one-debounce",
                                                          "{debounce: 3s}", BURST)
    assert len(states) == BURST and {s["runId"] for s in states} == set(seqs), "an event is not accounted for"
    last = max(seqs, key=seqs.get)
    assert executed == [last], "not exactly one run, for the last event of the burst"
    outcomes = Counter((s["outcome"], s.get("decision")) for s in states)
    assert outcomes == {("success", "debouncing"): 1, ("cancel", "debounced"): BURST - 1}, outcomes
    print(f"debounce: {BURST} events in {elapsed:.1f}s")


async def test_a_thousand_events_on_one_key_are_rate_limited_not_dropped(nats_server, tmp_path, caplog, capsys):
    rate, burst = 100, 10
    states, executed, seqs, elapsed = await one_key_burst(
        nats_server, tmp_path, caplog, capsys, "one-rate", f"{{rateLimit: {{rate: {rate}, per: 1s, burst: {burst}}}}}",
        BURST)
    assert len(states) == BURST and {s["runId"] for s in states} == set(seqs), "an event is not accounted for"
    assert sorted(executed) == sorted(seqs), "not every run executed exactly once"
    assert {s["outcome"] for s in states} == {"success"}
    decisions = Counter(s.get("decision") for s in states)
    assert set(decisions) <= {"queued", "rate-limited"} and decisions["rate-limited"] >= BURST // 2, decisions
    for s in states:
        if s.get("decision") == "rate-limited":
            assert s["startedAt"] >= s["rateLimitedUntil"] - 0.05, "a delayed run started before it was due"
    # GCRA: the k-th start is no earlier than (k - burst + 1) intervals after the first reservation.
    first, starts = min(s["queuedAt"] for s in states), sorted(s["startedAt"] for s in states)
    late = [k for k, start in enumerate(starts) if start - first < (k - burst + 1) / rate - 0.05]
    assert not late, f"{len(late)} runs started before the rate allowed, first at #{late[0]}"
    print(f"rate limit: {BURST} events in {elapsed:.1f}s (the rate alone needs {BURST / rate:.0f}s)")


async def test_queued_events_on_one_key_all_run_one_at_a_time_in_arrival_order(nats_server, tmp_path, caplog,
                                                                               capsys):
    states, executed, seqs, elapsed = await one_key_burst(nats_server, tmp_path, caplog, capsys, "one-queue",
                                                          "{concurrency: {mode: queue}}", QUEUED)
    assert len(states) == QUEUED and {s["runId"] for s in states} == set(seqs), "an event is not accounted for"
    assert {s["outcome"] for s in states} == {"success"}
    assert sorted(executed) == sorted(seqs), "not every run executed exactly once"
    ordered = sorted(states, key=lambda s: s["startedAt"])
    assert [s["runId"] for s in ordered] == executed
    overlaps = [(a["runId"], b["runId"]) for a, b in zip(ordered, ordered[1:]) if a["finishedAt"] > b["startedAt"]]
    assert not overlaps, f"{len(overlaps)} queued runs overlapped"
    # Stream order, except that an event the other router routed late queues behind the head it
    # finds (which may be running), not ahead of it: count how often that happened.
    late = sum(seqs[a] > seqs[b] for a, b in zip(executed, executed[1:]))
    print(f"queue: {QUEUED} events in {elapsed:.1f}s, {late} run(s) after a newer one")


async def test_a_batch_of_128_events_on_one_key_costs_one_write_each(nats_server, tmp_path, caplog):
    """What used to cost ~15,700 KV operations and some "too contended" naks for 128 events."""
    caplog.set_level(logging.WARNING)
    settings = make_settings(nats_server.url)
    path, _ = one_key_rule(tmp_path, "one-batch", "{debounce: 1m}")
    matcher = Matcher(rules.load([path], catalog.load().actions, settings.bus.max_age))
    bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    try:
        await bus.publish_all([events.make({"id": f"b-{i}", "source": "/burst", "type": ONE_KEY}, {})
                               for i in range(128)])
        router = EventRouter(bus, settings, matcher, await runs.RunStates.open(bus.js, settings))
        await router.open_policies()
        store, calls = router.admission.store, Counter()
        for name in ("get", "create", "update", "put"):
            def counted(*args, _name=name, _original=getattr(store, name), **kwargs):
                calls[_name] += 1
                return _original(*args, **kwargs)
            setattr(store, name, counted)
        subscription = await router.subscribe()
        messages = await subscription.fetch(128, timeout=5)
        assert len(messages) == 128
        await router.handle(messages)
    finally:
        await bus.close()
    # One read (the key was never seen), then one write per event: no lost race, no read again.
    assert calls == {"get": 1, "create": 1, "update": 127}, calls
    assert not [r for r in caplog.records if "too contended" in r.getMessage() or "postponed" in r.getMessage()]


BACKLOGS = [
    # (policy, events as data.k values) -> runs that execute; the rest end "backlog full"
    ("a queue holds its head and maxWaiting runs", "{concurrency: {mode: queue}, maxWaiting: 3}", "aaaaaaaaaa", 4),
    ("a rate limit's backlog is maxWaiting runs", "{rateLimit: {rate: 2, per: 1s}, maxWaiting: 3}", "aaaaaaaaaa", 4),
    ("delayed runs count for the whole rule", "{delay: 1s, maxWaiting: 3}", "aaaaaaaaaa", 3),
    ("queues of templated keys count together", "{concurrency: {key: '{{ data.k }}', mode: queue}, maxWaiting: 3}",
     "aaaaabbbbb", 5),
    ("debounced keys count one waiting run each", "{concurrency: {key: '{{ data.k }}'}, debounce: 1s, maxWaiting: 2}",
     "abcabcdede", 2),
]


@pytest.mark.parametrize("case,policy,keys,executed", BACKLOGS, ids=[c[0] for c in BACKLOGS])
async def test_runs_past_max_waiting_end_backlog_full_not_lost(nats_server, tmp_path, capsys, case, policy, keys,
                                                               executed):
    settings = make_settings(nats_server.url)
    name = "backlog"
    rule_file = tmp_path / "backlog.yaml"
    rule_file.write_text(textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: {name}}}
        spec:
          filters: [{{exact: {{type: {ONE_KEY}}}}}]
          policy: {policy}
          action: {{exec: {{command: ["/bin/sh", "-c", "sleep 1"]}}}}
    """))
    plugins = catalog.load()
    matcher = Matcher(rules.load([str(rule_file)], plugins.actions, settings.bus.max_age))
    bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    tasks = []
    try:
        burst = [events.make({"id": f"e{i}", "source": "/burst", "type": ONE_KEY}, {"k": k}) for i, k in enumerate(keys)]
        await bus.publish_all(burst)
        states = await runs.RunStates.open(bus.js, settings)
        async with Finished(bus, settings, name, len(keys)) as finished:
            tasks = [asyncio.create_task(EventRouter(bus, settings, matcher, states).run()),
                     asyncio.create_task(Executor(bus, settings, plugins, states).run())]
            await finished.wait(time.monotonic() + 30, tasks)
    finally:
        await stop(tasks)
        await bus.close()
    listed_runs = await listed(settings, name, capsys)
    assert len(listed_runs) == len(keys), "an event is not accounted for"
    outcomes = Counter(s["outcome"] for s in listed_runs if s.get("decision") != "debounced")
    full = [s for s in listed_runs if s.get("decision") == "backlog-full"]
    assert outcomes == {"success": executed, "error": len(full)}, outcomes
    if "debounce" not in policy:
        assert len(full) == len(keys) - executed
    assert full and all(s["reason"].startswith("backlog full: ") and "policy.maxWaiting" in s["reason"]
                        and s["policyNote"] for s in full)
