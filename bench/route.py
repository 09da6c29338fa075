"""Routing benchmark: consume -> match -> record -> ack, next to raw pull-consume + ack.

In one run, against one real nats-server on loopback:

1. the same N events are stored in TR_EVENTS; a plain nats-py durable pull consumer fetches and acks
   them all (the baseline: what JetStream and the client can do with no work at all);
2. trigger-router's EventRouter consumes the same events with 1,000 rules (a third exact-type,
   a third type-prefix + CEL, a third exact-type + CEL over data), each event matching one rule,
   recording every run (run message, KV state, testsuiterun.queued) before acking;
3. the matcher alone: cost per event at 10, 1,000 and 10,000 rules.

    .venv/bin/python bench/route.py [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
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
               "spec": {"filters": filters, "action": {"exec": {"command": ["true", "{{ data.n }}"]}}}}
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        catalog.load()  # plug-ins register their settings sections before settings load
        settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": server.url})
        try:
            nc = await nats.connect(server.url)
            await bus_mod.ensure_streams(nc.jetstream(), settings.bus)
            await nc.close()
            matcher = Matcher(make_rules(1000))
            await store(server.url, make_events(args.events, 1000, "e"), settings)
            raw = await raw_consume(server.url, args.events)
            routed = await routed_consume(server.url, args.events, matcher, settings)
        finally:
            server.stop()
    costs = {count: match_cost(count) for count in (10, 1000, 10000)}
    print(f"\n{args.events} events, 1 rule matched per event, loopback nats-server\n")
    print("| pipeline | events/s | ratio |")
    print("|---|---:|---:|")
    print(f"| raw nats-py pull-consume + ack (baseline) | {raw:,.0f} | 1.00 |")
    print(f"| consume -> match 1,000 rules -> record run -> ack | {routed:,.0f} | {routed / raw:.2f} |")
    print("\n| rules | match cost per event (µs) | vs 10 rules |")
    print("|---:|---:|---:|")
    for count, cost in costs.items():
        print(f"| {count:,} | {cost:.1f} | {cost / costs[10]:.2f}x |")
    print(f"\nthroughput ratio {routed / raw:.2f} (target >= 0.60); "
          f"match growth 10 -> 10,000 rules {costs[10000] / costs[10]:.2f}x (target <= 2x)")


if __name__ == "__main__":
    asyncio.run(main())
