"""Run-policy benchmark: 1,000 events on one policy key, per mode, next to a rule with no policy.

In one run, against one real nats-server on loopback, for each mode in turn (``none`` is the
baseline: the same pipeline without a policy):

- ``none``: every event runs;
- ``debounce``: ``debounce: 0.5s``, one key for the rule: one run executes, the rest end debounced;
- ``rate``: ``rateLimit: {rate: 200, per: 1s, burst: 20}``: every run executes, spread over ~5 s;
- ``queue``: ``concurrency: {mode: queue}``: every run executes, one at a time.

The mode's events are stored first, then the routers and executors start, so routing takes them
in batches of 128 on one key (the case that cost ~15,700 KV operations per 128 events and "too
contended" naks before the per-key queue). Counted: every operation on the policy bucket by the
routers and executors (reads and writes, failed compare-and-sets included), writes stored (the
``$KV_TR_POLICY`` stream's sequence), "too contended" log lines, and the time until every run has
finished (seen from the ``finished`` outcomes, not by polling the state bucket, which would take
event-loop time from the routers); the action is an ``exec`` that appends the run id to a file,
which is checked too.

    .venv/bin/python bench/policy.py [--events 1000] [--routers 1] [--modes none,debounce,rate,queue]

``--routers 2`` runs two routers and two executors, each on its own connection (as two processes
would: separate per-key queues, so they meet only in compare-and-set).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from router import errors  # noqa: E402
from router.bus import kv  # noqa: E402
from router.bus.connection import Bus, subject_token  # noqa: E402
from router.config import settings as settings_mod  # noqa: E402
from router.engine import runs  # noqa: E402
from router.engine.executor import Executor  # noqa: E402
from router.engine.routing import EventRouter  # noqa: E402
from router.model import events  # noqa: E402
from router.plugins import catalog  # noqa: E402
from router.rules import loading as rules  # noqa: E402
from router.rules.matching import Matcher  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402

POLICIES = {
    "none": {},
    "debounce": {"debounce": "0.5s"},
    "rate": {"rateLimit": {"rate": 200, "per": "1s", "burst": 20}},
    "queue": {"concurrency": {"mode": "queue"}},
}
OPS = collections.Counter()
"""(bucket, operation) -> calls, for every kv.Bucket read and write but the bench's own."""
UNCOUNTED: set[int] = set()
"""ids of the buckets the bench itself reads (to see when every run has finished)."""


def count_bucket_operations() -> None:
    for name in ("get", "put", "create", "update", "delete", "keys"):
        original = getattr(kv.Bucket, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if id(self) not in UNCOUNTED:
                OPS[(self.what, _name)] += 1
            return _original(self, *args, **kwargs)

        setattr(kv.Bucket, name, counted)


class Contended(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += "too contended" in record.getMessage()


def make_rules(out: Path) -> list[rules.Rule]:
    plugins = catalog.load()
    compiled = []
    for i, (mode, policy) in enumerate(POLICIES.items()):
        command = ["/bin/sh", "-c", f'echo "$TRIGGER_ROUTER_RUN_ID" >> {out / mode}']
        doc = {"kind": "TriggerRule", "metadata": {"name": f"bench-{mode}"},
               "spec": {"filters": [{"exact": {"type": f"com.bench.{mode}"}}], "policy": policy,
                        "action": {"exec": {"command": command}}}}
        compiled.append(rules.compile_document(doc, "bench", i, plugins.actions, max_age=7 * 86400))
    return compiled


async def policy_writes(bus: Bus, settings: settings_mod.Settings) -> int:
    try:
        info = await bus.js.stream_info(f"KV_{settings.router.policy_bucket}")
    except Exception:  # the bucket does not exist before the first policy
        return 0
    return info.state.last_seq


async def finished(states: runs.RunStates, rule: str) -> list[dict]:
    try:
        every = await states.all()
    except errors.BusUnavailable:  # listing an empty bucket can fail while the first runs are written
        return []
    return [s for s in every if s.get("rule") == rule and s.get("state") == "finished"]


async def count_finished(observer: Bus, settings: settings_mod.Settings, rule: str, n: int):
    """(subscription, event set once ``n`` distinct ``finished`` outcomes of ``rule`` were seen).

    Subscribed before the runs start. Polling the state bucket instead would read thousands of
    states a few times a second, in the event loop the routers and executors share: a queue would
    then go at the polling pace."""
    seen, enough = set(), asyncio.Event()

    async def outcome(msg) -> None:
        seen.add((msg.headers or {}).get("ce-id"))
        if len(seen) >= n:
            enough.set()

    subject = f"{settings.bus.outcomes_subject}.finished.{subject_token(rule)}"
    return await observer.nc.subscribe(subject, cb=outcome), enough


async def all_finished(enough: asyncio.Event, states: runs.RunStates, rule: str, n: int,
                       tasks: list[asyncio.Task], began: float) -> list[dict]:
    while True:
        try:
            await asyncio.wait_for(enough.wait(), 10)
        except asyncio.TimeoutError:  # checked in the bucket every 10 s anyway (a lost outcome)
            pass
        for task in tasks:
            if task.done():
                raise RuntimeError(f"a worker stopped: {task.exception()!r}")
        done = await finished(states, rule)
        if len(done) >= n:
            return done
        enough.clear()
        if time.perf_counter() - began > 600:
            raise RuntimeError(f"{rule}: {len(done)} of {n} runs finished after 600s")


async def run_mode(mode: str, n: int, processes: list[tuple[EventRouter, Executor]], observer: Bus,
                   states: runs.RunStates, settings: settings_mod.Settings, out: Path, contended: Contended) -> dict:
    batch = [events.make({"id": f"{mode}-{i}", "source": "/bench", "type": f"com.bench.{mode}"}, {"n": i})
             for i in range(n)]
    for start in range(0, n, 500):
        await observer.publish_all(batch[start:start + 500])
    writes_before, lines_before = await policy_writes(observer, settings), contended.lines
    OPS.clear()
    subscription, enough = await count_finished(observer, settings, f"bench-{mode}", n)
    began = time.perf_counter()
    tasks = [asyncio.create_task(worker.run()) for router, executor in processes for worker in (router, executor)]
    try:
        finals = await all_finished(enough, states, f"bench-{mode}", n, tasks, began)
        done_at = time.perf_counter()
    finally:
        await subscription.unsubscribe()
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=30)
        if stuck:
            raise RuntimeError(f"{len(stuck)} worker(s) did not stop within 30s of cancelling")
    executed = (out / mode).read_text().split() if (out / mode).exists() else []
    outcomes = collections.Counter(s.get("decision") if s.get("outcome") != "success" else "run" for s in finals)
    policy_ops = sum(v for (what, _), v in OPS.items() if what == "policy state")
    return {"mode": mode, "seconds": done_at - began, "policy_ops": policy_ops,
            "state_ops": sum(v for (what, _), v in OPS.items() if what == "run state"),
            "writes": await policy_writes(observer, settings) - writes_before,
            "contended": contended.lines - lines_before, "executed": len(executed),
            "distinct": len(set(executed)), "outcomes": dict(outcomes), "finished": len(finals)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--routers", type=int, default=1)
    parser.add_argument("--modes", default=",".join(POLICIES))
    args = parser.parse_args()
    modes = args.modes.split(",")
    count_bucket_operations()
    contended = Contended()
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger().addHandler(contended)  # the only handler: warnings are counted, not printed
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        catalog.load()  # plug-ins register their settings sections before settings load
        settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": server.url,
                                                "TRIGGER_ROUTER_ROUTER__CONCURRENCY": "16"})
        out = Path(tmp) / "executed"
        out.mkdir()
        buses = []
        try:
            observer = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
            await observer.start(server.url)
            await observer.wait_ready(15)
            buses.append(observer)
            states = await runs.RunStates.open(observer.js, settings)
            UNCOUNTED.add(id(states.bucket))
            plugins = catalog.load()
            matcher = Matcher(make_rules(out))
            processes = []
            for _ in range(args.routers):
                bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
                await bus.start(server.url)
                await bus.wait_ready(15)
                buses.append(bus)
                own = await runs.RunStates.open(bus.js, settings)
                processes.append((EventRouter(bus, settings, matcher, own), Executor(bus, settings, plugins, own)))
            for mode in modes:
                results.append(await run_mode(mode, args.events, processes, observer, states, settings, out, contended))
                print(f"  {mode}: {results[-1]}", file=sys.stderr)
        finally:
            for bus in buses:
                await bus.close()
            server.stop()
    base = next((r for r in results if r["mode"] == "none"), None)
    n = args.events
    print(f"\n{n} events on one policy key per mode, {args.routers} router(s) + executor(s), loopback nats-server\n")
    print("| mode | runs executed | other outcomes | policy KV ops / event | policy writes / event "
          "| run-state ops / event | 'too contended' | seconds | vs no policy |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        others = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()) if k != "run") or "-"
        ratio = f"{r['seconds'] / base['seconds']:.2f}x" if base else "-"
        print(f"| {r['mode']} | {r['executed']} | {others} | {r['policy_ops'] / n:.2f} | {r['writes'] / n:.2f} "
              f"| {r['state_ops'] / n:.2f} | {r['contended']} | {r['seconds']:.1f} | {ratio} |")
    for r in results:
        assert r["finished"] == n, f"{r['mode']}: {r['finished']} of {n} runs finished"
        assert r["distinct"] == r["executed"], f"{r['mode']}: a run executed twice"


if __name__ == "__main__":
    asyncio.run(main())
