"""Routing benchmark: consume -> match -> record -> ack, next to two raw baselines in the same run.

Per run, against one real nats-server on loopback, the run's N new events are stored in TR_EVENTS
and consumed by three durable pull consumers in turn:

1. raw pull + ack: a plain nats-py consumer that fetches and acks (what JetStream and the client do
   with no work at all);
2. raw pull + publish + ack: the floor for routing on this stack, which publishes one record per
   event of the size the router writes, awaits all of a batch's storage acks (``js.publish``
   gathered), then acks;
3. trigger-router's EventRouter with 1,000 rules (a third exact-type, a third type-prefix + CEL, a
   third exact-type + CEL over data), each event matching one rule, rendering the action's
   templates and recording every run on the runs stream before acking.

Then the matcher alone: cost per event at 10, 1,000 and 10,000 rules. Everything runs in this one
process, on uvloop when installed (``--no-uvloop`` for the stock loop), baselines included.

    .venv/bin/python bench/route.py [--events 5000] [--runs 3] [--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js import api

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from router.bus import connection as bus_mod  # noqa: E402
from router.cli import serve as serve_mod
from router.config import settings as settings_mod
from router.engine import runs
from router.engine.routing import EventRouter  # noqa: E402
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402

BATCH = 128


def make_rules(count: int) -> list[rules.Rule]:
    plugins = catalog.load()
    compiled = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            filters = [{"exact": {"type": f"com.bench.exact{i}"}}]
        elif kind == 1:
            filters = [{"prefix": {"type": f"com.bench.prefix{i}."}}, {"cel": "data.n >= 0"}]
        else:
            filters = [{"exact": {"type": f"com.bench.cel{i}"}}, {"cel": "data.n % 2 == 0 || data.n % 2 == 1"}]
        doc = {"kind": "TriggerRule", "metadata": {"name": f"rule-{i}"},
               "spec": {"filters": filters, "action": {"exec": {"command": ["true", "{{ string(data.n) }}"]}}}}
        compiled.append(rules.compile_document(doc, "bench", i, plugins.actions))
    return compiled


def event_types(count: int) -> list[str]:
    names = []
    for i in range(count):
        kind = i % 3
        names.append([f"com.bench.exact{i}", f"com.bench.prefix{i}.push", f"com.bench.cel{i}"][kind])
    return names


def make_events(n: int, rule_count: int, tag: str) -> list[events.CloudEvent]:
    rng = random.Random(7)
    types = event_types(rule_count)
    return [events.make({"id": f"{tag}-{i}", "source": "/bench", "type": rng.choice(types)},
                        {"n": i, "ref": "refs/heads/main", "repository": {"name": "web"}}) for i in range(n)]


async def store(nats_url: str, batch: list[events.CloudEvent], settings: settings_mod.Settings) -> None:
    nc = await nats.connect(nats_url)
    bus = bus_mod.Bus(settings.nats, settings.bus)
    bus.nc, bus.js = nc, nc.jetstream()
    for start in range(0, len(batch), 500):
        await bus.publish_all(batch[start:start + 500])
    await nc.close()


async def raw_consume(nats_url: str, n: int) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe("tr.events.>", durable="raw", stream="TR_EVENTS",
                                  config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=BATCH * 8))
    done, start = 0, time.perf_counter()
    while done < n:
        for msg in await sub.fetch(BATCH, timeout=5):
            await msg.ack()
            done += 1
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return n / elapsed


async def raw_publish_consume(nats_url: str, n: int, record: bytes, tag: str) -> float:
    """The floor for routing on this stack: pull, publish one record per event and await its storage
    ack (all of a batch's publishes concurrently), then ack the event. No decoding, no matching."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="RAW_RUNS", subjects=["raw.runs.>"])
    sub = await js.pull_subscribe("tr.events.>", durable="rawpub", stream="TR_EVENTS",
                                  config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=BATCH * 8))
    done, start = 0, time.perf_counter()
    while done < n:
        messages = await sub.fetch(BATCH, timeout=5)
        await asyncio.gather(*(js.publish(f"raw.runs.{done + i}", record, headers={"Nats-Msg-Id": f"{tag}-{done + i}"})
                               for i in range(len(messages))))
        for msg in messages:
            await msg.ack()
        done += len(messages)
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return n / elapsed


async def routed_consume(nats_url: str, n: int, matcher: Matcher, settings: settings_mod.Settings) -> float:
    nc = await nats.connect(nats_url)
    bus = bus_mod.Bus(settings.nats, settings.bus)
    bus.nc, bus.js = nc, nc.jetstream()
    await bus.js.add_stream(runs.runs_stream_config(settings))
    states = await runs.RunStates.open(bus.js, settings)
    router = EventRouter(bus, settings, matcher, states)
    sub = await router.subscribe()
    done, start = 0, time.perf_counter()
    while done < n:
        messages = await sub.fetch(BATCH, timeout=5)
        await router.handle(messages)
        done += len(messages)
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return n / elapsed


def sample_record(event: events.CloudEvent, settings: settings_mod.Settings) -> bytes:
    """A run record as the router writes it for ``event``, so the raw baseline publishes as many bytes."""
    router = EventRouter(None, settings, Matcher([]), None)
    return router._record(make_rules(1)[0], event, ("TR_EVENTS", 1)).dumps()


def match_cost(rule_count: int, samples: int = 20000) -> float:
    matcher = Matcher(make_rules(rule_count))
    sample = make_events(200, rule_count, f"m{rule_count}")
    for event in sample:  # warm-up; also check every event matches exactly one rule
        assert len(matcher.match(event)) == 1, event.type
    start = time.perf_counter()
    for i in range(samples):
        matcher.match(sample[i % len(sample)])
    return (time.perf_counter() - start) / samples * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3, help="consecutive runs of the three pipelines")
    parser.add_argument("--no-uvloop", action="store_true", help="the stock asyncio loop for all pipelines")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        catalog.load()  # plug-ins register their settings sections before settings load
        settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": server.url})
        try:
            nc = await nats.connect(server.url)
            await bus_mod.ensure_streams(nc.jetstream(), settings.bus)
            await nc.close()
            matcher = Matcher(make_rules(1000))
            record = sample_record(make_events(1, 1000, "s")[0], settings)
            for run in range(1, args.runs + 1):  # each durable consumer takes the run's new events
                await store(server.url, make_events(args.events, 1000, f"e{run}"), settings)
                raw = await raw_consume(server.url, args.events)
                raw_publish = await raw_publish_consume(server.url, args.events, record, f"run{run}")
                routed = await routed_consume(server.url, args.events, matcher, settings)
                results.append((raw, raw_publish, routed))
        finally:
            server.stop()
    costs = {count: match_cost(count) for count in (10, 1000, 10000)}
    loop = "stock asyncio" if args.no_uvloop else "uvloop" if serve_mod.loop_factory("auto") else "stock asyncio"
    print(f"\n{args.events} events per run, 1 rule matched per event, loopback nats-server, {os.cpu_count()} cores, "
          f"{loop}, {time.strftime('%Y-%m-%d')}")
    for run, (raw, raw_publish, routed) in enumerate(results, 1):
        print(f"\nrun {run}\n\n| pipeline | events/s | ratio |")
        print("|---|---:|---:|")
        print(f"| raw nats-py pull-consume + ack (baseline) | {raw:,.0f} | 1.00 |")
        print(f"| raw pull + publish a {len(record)} B record + await its ack + ack (baseline) | {raw_publish:,.0f} | "
              f"{raw_publish / raw:.2f} |")
        print(f"| consume -> match 1,000 rules -> record run -> ack | {routed:,.0f} | {routed / raw:.2f} |")
    print("\n| run | routing / raw pull + ack (target >= 0.50) | routing / raw pull + publish + ack (target >= 0.90) |")
    print("|---:|---:|---:|")
    for run, (raw, raw_publish, routed) in enumerate(results, 1):
        print(f"| {run} | {routed / raw:.2f} | {routed / raw_publish:.2f} |")
    print("\n| rules | match cost per event (µs) | vs 10 rules |")
    print("|---:|---:|---:|")
    for count, cost in costs.items():
        print(f"| {count:,} | {cost:.1f} | {cost / costs[10]:.2f}x |")
    print(f"\nmatch growth 10 -> 10,000 rules {costs[10000] / costs[10]:.2f}x (target <= 2x)")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=serve_mod.loop_factory("asyncio" if "--no-uvloop" in sys.argv else "auto")) as runner:
        runner.run(main())
