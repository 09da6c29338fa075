"""In-process function benchmark: what ``action: function`` costs next to ``exec /bin/true`` and
next to calling the function bare, in one run.

Against one real nats-server on loopback, with a real EventRouter and Executor:

1. bare: ``await handler(event, ctx)`` in a loop, one ``ctx`` built beforehand (the floor);
2. the action alone: the ``function`` action's ``run`` (a fresh ``ctx`` and its services, the call,
   the result mapping) through ``plugins.attempts`` (timeout, outcome mapping), no bus;
3. the ``exec`` action alone running ``/bin/true`` through the same attempt loop (the process-based
   way to run a check, which functions replace);
4. the pipeline: N events stored, routed and executed (run record, run state, lease, queued /
   started / finished outcomes) with a function rule, then the same with an ``exec /bin/true``
   rule; runs per second and the run's action time (``durationSeconds``: started to result).

The function returns ``True`` and does nothing else, so what is measured is the machinery.

    .venv/bin/python bench/functions.py [--events 1000] [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from router import functions  # noqa: E402
from router.bus.connection import Bus, subject_token  # noqa: E402
from router.config import settings as settings_mod  # noqa: E402
from router.engine import runs  # noqa: E402
from router.engine.executor import Executor  # noqa: E402
from router.engine.routing import EventRouter  # noqa: E402
from router.model import events  # noqa: E402
from router.plugins import actions, attempts, catalog  # noqa: E402
from router.rules import loading as rules  # noqa: E402
from router.rules.matching import Matcher  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402

HANDLER = "async def ok(event, ctx):\n    return True\n"
ACTIONS = {"function": {"function": {"ref": "benchfn:ok"}}, "exec": {"exec": {"command": ["/bin/true"]}}}


def rule(kind: str) -> dict:
    return {"kind": "TriggerRule", "metadata": {"name": f"bench-{kind}"},
            "spec": {"filters": [{"exact": {"type": f"com.bench.{kind}"}}], "action": ACTIONS[kind]}}


async def bare(calls: int, event: events.CloudEvent) -> float:
    import benchfn
    ctx = functions.Context(run_id="r", rule="bench", attempt=1, deadline=time.monotonic() + 300, params={},
                            events={}, log=logging.LoggerAdapter(logging.getLogger("bench"), {}), traceparent=None,
                            helpers=None)
    seen = functions.Event.of(event)
    start = time.perf_counter()
    for _ in range(calls):
        await benchfn.ok(seen, ctx)
    return (time.perf_counter() - start) / calls


async def alone(kind: str, calls: int, event: events.CloudEvent) -> float:
    action = catalog.load().actions[kind]
    params = action.params.model_validate(ACTIONS[kind][kind], context={"loading": True})
    context = actions.Context("r", "bench", event, 300.0)
    start = time.perf_counter()
    for _ in range(calls):
        result, _ = await attempts.attempt(action.run, kind, params, context)
        assert result.outcome == "success", result
    return (time.perf_counter() - start) / calls


async def pipeline(kind: str, n: int, bus: Bus, settings: settings_mod.Settings, matcher: Matcher) -> dict:
    batch = [events.make({"id": f"{kind}-{i}", "source": "/bench", "type": f"com.bench.{kind}"}, {"n": i})
             for i in range(n)]
    for start in range(0, n, 500):
        await bus.publish_all(batch[start:start + 500])
    seen, enough = set(), asyncio.Event()

    async def outcome(msg) -> None:
        seen.add((msg.headers or {}).get("ce-id"))
        if len(seen) >= n:
            enough.set()

    subscription = await bus.nc.subscribe(f"{settings.bus.outcomes_subject}.finished.{subject_token(f'bench-{kind}')}",
                                          cb=outcome)
    states = await runs.RunStates.open(bus.js, settings)
    began = time.perf_counter()
    tasks = [asyncio.create_task(EventRouter(bus, settings, matcher, states).run()),
             asyncio.create_task(Executor(bus, settings, catalog.load(), states).run())]
    try:
        await asyncio.wait_for(enough.wait(), 600)
        seconds = time.perf_counter() - began
    finally:
        await subscription.unsubscribe()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finals = [s for s in await states.all() if s.get("rule") == f"bench-{kind}"]
    assert len(finals) == n and {s["outcome"] for s in finals} == {"success"}, {s["outcome"] for s in finals}
    durations = sorted(s["durationSeconds"] for s in finals)
    return {"kind": kind, "seconds": seconds, "per_s": n / seconds, "p50": statistics.median(durations),
            "p99": durations[int(len(durations) * 0.99) - 1]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "benchfn.py").write_text(HANDLER)
        sys.path.insert(0, tmp)
        server = NatsServer(Path(tmp) / "js").start()
        catalog.load()  # plug-ins register their settings sections before settings load
        settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": server.url,
                                                "TRIGGER_ROUTER_FUNCTIONS__PATHS": json.dumps([tmp])})
        catalog.load().configure(settings)
        event = events.make({"id": "e", "source": "/bench", "type": "com.bench.function"}, {"n": 1})
        floor = await bare(args.calls, event)
        function_alone = await alone("function", args.calls, event)
        exec_alone = await alone("exec", max(args.calls // 20, 50), event)
        bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
        try:
            await bus.start(server.url)
            await bus.wait_ready(15)
            matcher = Matcher([rules.compile_document(rule(k), "bench", i, catalog.load().actions)
                               for i, k in enumerate(ACTIONS)])
            results = [await pipeline(kind, args.events, bus, settings, matcher) for kind in ("function", "exec")]
        finally:
            await bus.close()
            server.stop()
    print(f"\nin-process function vs exec /bin/true, {args.events} runs through a real executor, "
          f"{args.calls} bare calls; loopback nats-server\n")
    print("| what | per call | ÷ bare call | exec /bin/true ÷ this |")
    print("|---|---:|---:|---:|")
    print(f"| bare `await handler(event, ctx)` | {floor * 1e6:.2f} µs | 1x | {exec_alone / floor:,.0f}x |")
    print(f"| `function` action alone (ctx, services, mapping) | {function_alone * 1e6:.1f} µs "
          f"| {function_alone / floor:.0f}x | {exec_alone / function_alone:.0f}x |")
    print(f"| `exec /bin/true` action alone | {exec_alone * 1e6:,.0f} µs | {exec_alone / floor:,.0f}x | 1x |")
    by = {r["kind"]: r for r in results}
    print("\n| pipeline (route, record, lease, outcomes) | runs/s | action time p50 ms | p99 ms | runs/s vs exec |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("function", "exec"):
        r = by[kind]
        print(f"| {kind} | {r['per_s']:,.0f} | {r['p50'] * 1000:.1f} | {r['p99'] * 1000:.1f} "
              f"| {r['per_s'] / by['exec']['per_s']:.2f}x |")


if __name__ == "__main__":
    asyncio.run(main())
