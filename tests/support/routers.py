"""Router processes as users run them, and what tests need to count the effects of their work.

Counting outcome ids proves little: JetStream drops a repeated publish with the same
``Nats-Msg-Id``, so a run executed twice still shows one ``finished``. What users notice is an
action carried out twice. So the rule here runs an ``exec`` action that appends a line to a file
(``ExecLog``) each time it begins and completes, naming the run (``$TRIGGER_ROUTER_RUN_ID``), the
router process that started it (``$PPID``) and its own pid; ``tally`` turns that file into counts.

Tests wait on state a user could observe (consumer info, run-state entries, the execution log)
with a deadline (``wait_for``), never on a fixed sleep: a sleep is either too short on a loaded
machine or hides a run that shows up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import nats
import nats.aio.client
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from router.bus import connection as bus
from router.bus import kv as kv_bucket
from router.config import settings as settings_mod
from router.model import events
from tests.support import processes

CLI = [sys.executable, "-m", "router.cli", "serve"]
RULE = "exec-log"
TYPE = "com.example.deployed"
EVENTS = ("TR_EVENTS", "trigger-router")
"""(stream, durable) of the events consumer every router shares."""
RUNS = ("TR_RUNS", "trigger-router-runs")
"""(stream, durable) of the runs consumer every executor shares."""
NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, OSError)

# $0 is the sleep (rendered from the event), the rest comes from the rule's env. Lines are short
# single writes with O_APPEND, so lines of concurrent actions never interleave.
SCRIPT = textwrap.dedent("""\
    line() { echo "$1 $TRIGGER_ROUTER_RUN_ID $PPID $$ $(date +%s.%N)" >> "$EXEC_LOG"; }
    [ -n "$EXEC_BEGIN" ] && line begin
    sleep "$0"
    [ "${EXEC_SPEW:-0}" -gt 0 ] && head -c "$EXEC_SPEW" /dev/zero | tr '\\0' x
    line done
""")


# --- processes -----------------------------------------------------------------------------------

def exec_rule(tmp_path: Path, log: Path, *, begin: bool = True, name: str = RULE, event_type: str = TYPE,
              args: list[str] = (), tail_bytes: int | None = None, spew: str = "0") -> str:
    """A rule file whose action logs to ``log``; events carry ``data.sleep`` (seconds, may be 0).

    ``args`` are extra (templated) arguments the script ignores: a way to make the rendered
    parameters as large as a test needs. ``spew`` (templated) is a number of bytes written to stdout.
    """
    env = {"EXEC_LOG": str(log), "EXEC_SPEW": spew}
    if begin:
        env["EXEC_BEGIN"] = "1"
    action: dict[str, Any] = {"command": ["/bin/sh", "-c", SCRIPT, "{{ string(data.sleep) }}", *args], "env": env}
    if tail_bytes is not None:
        action["tailBytes"] = tail_bytes
    rule = {"kind": "TriggerRule", "metadata": {"name": name},
            "spec": {"filters": [{"exact": {"type": event_type}}], "action": {"exec": action}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(rule, indent=2))  # JSON is YAML, and needs no quoting rules
    return str(path)


def start_router(nats_url: str, rules: str, port: int, tmp_path: Path, name: str, **settings: str) -> subprocess.Popen:
    """``trigger-router serve`` in its own process group; ``settings`` are env overrides without
    the ``TRIGGER_ROUTER_`` prefix (``ROUTER__CONCURRENCY="4"``). Output goes to ``<name>.log``."""
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([rules]), "TRIGGER_ROUTER_ROUTER__ACK_WAIT": "2s",
           "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / name)}
    env.update({f"TRIGGER_ROUTER_{key}": value for key, value in settings.items()})
    with open(tmp_path / f"{name}.log", "a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(CLI, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=processes.die_with_parent)


def stop_router(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(30)


def kill_router(process: subprocess.Popen) -> float:
    """SIGKILL the router's process group; returns the time of the kill.

    Actions run in sessions of their own (``exec`` starts them with ``start_new_session``), so an
    action outlives its killed router and may still complete: ``tally`` allows for that.
    """
    killed = time.time()
    stop_router(process, signal.SIGKILL)
    return killed


def log_tail(tmp_path: Path, name: str, lines: int = 30) -> str:
    try:
        return "\n".join((tmp_path / f"{name}.log").read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def publish_events(nats_url: str, count: int, prefix: str, data: Callable[[int], dict] | None = None,
                         event_type: str = TYPE, attributes: dict[str, str] | None = None) -> list[events.CloudEvent]:
    """Publish ``count`` events ``<prefix>-<i>`` (creating the streams if needed); returns them."""
    data = data or (lambda i: {"n": i, "sleep": 0})
    batch = [events.make({"id": f"{prefix}-{i}", "source": "/test", "type": event_type, **(attributes or {})}, data(i))
             for i in range(count)]
    nc = await nats.connect(nats_url)
    try:
        the_bus = bus.Bus(settings_mod.NatsSettings(url=nats_url), settings_mod.BusSettings())
        the_bus.nc, the_bus.js = nc, nc.jetstream()
        await bus.ensure_streams(the_bus.js, settings_mod.BusSettings())
        await the_bus.publish_all(batch)
    finally:
        await nc.close()
    return batch


# --- the execution log ---------------------------------------------------------------------------

@dataclass
class Execution:
    """One process of the action: what it wrote to the execution log."""

    run: str
    router: int
    """pid of the router process that started it."""
    pid: int
    begun: float | None = None
    done: float | None = None

    @property
    def at(self) -> float:
        return self.begun if self.begun is not None else self.done  # type: ignore[return-value]

    def describe(self, killed: float | None) -> str:
        when = lambda t: "-" if t is None else f"{t:.3f}"  # noqa: E731
        return (f"router {self.router} pid {self.pid} began {when(self.begun)} completed {when(self.done)}"
                + (f" router killed {when(killed)}" if killed else ""))


class ExecLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def executions(self) -> list[Execution]:
        found: dict[tuple[str, int], Execution] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 5 or parts[0] not in ("begin", "done"):
                continue  # a line being written right now
            kind, run, router, pid, when = parts
            execution = found.setdefault((run, int(pid)), Execution(run, int(router), int(pid)))
            setattr(execution, "begun" if kind == "begin" else "done", float(when))
        return sorted(found.values(), key=lambda e: e.at)

    def completed(self) -> Counter:
        """Completion lines per run id."""
        return Counter(e.run for e in self.executions() if e.done is not None)

    def begun(self) -> Counter:
        return Counter(e.run for e in self.executions() if e.begun is not None)


def running_actions(executions: list[Execution]) -> list[Execution]:
    """Executions that began, did not complete, and whose process still exists."""
    alive = []
    for execution in executions:
        if execution.done is None:
            try:
                os.kill(execution.pid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            alive.append(execution)
    return alive


@dataclass(repr=False)
class Tally:
    """What the execution log says about ``runs`` expected runs."""

    runs: int
    executions: int
    completed: int
    """Completion lines."""
    killed_mid_action: list[Execution] = field(default_factory=list)
    """Executions in flight on a router when it was killed: the one case a second execution is allowed."""
    stopped: list[Execution] = field(default_factory=list)
    """Executions that never completed although their router was not killed (cancelled by it)."""
    reexecuted: list[str] = field(default_factory=list)
    """Run ids executed again after an execution that completed, or after their ``finished`` was
    published: never allowed."""
    never_completed: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    """Run ids in the log that the test did not expect."""
    per_run: dict[str, int] = field(default_factory=dict)
    """Executions by run id."""
    details: list[str] = field(default_factory=list)
    """For each re-executed run, its executions and the kill of their routers."""

    @property
    def reexecutions(self) -> int:
        """Executions beyond the first of each run."""
        return self.executions - len(self.per_run)

    def __repr__(self) -> str:
        return self.line("tally")

    def line(self, scenario: str) -> str:
        return (f"[{scenario}] runs={self.runs} executions={self.executions} completed={self.completed} "
                f"re-executions={self.reexecutions} (after a kill mid-action: {len(self.killed_mid_action)}, "
                f"after a stop without completion: {len(self.stopped)}) "
                f"re-executed after completing={len(self.reexecuted)} never completed={len(self.never_completed)} "
                f"unexpected={len(self.unexpected)}")


GRACE = 1.0
"""Seconds between an action's completion line and its router's death in which the router may not
have stored the result yet. The true window is a few round trips to NATS; a loaded two-core
machine stretches it, and a kill inside it makes a re-execution that no design can avoid."""


SPAWN_LAG = 0.5
"""Seconds after its router's SIGKILL in which an action's first line may still be written: the
router forked it just before it died, and the child's shell starts, and stamps its ``begin``, a
little later (4 ms in one observed run). A dead router starts nothing, so such an execution was in
flight at the kill."""


def tally(executions: list[Execution], expected: set[str], kills: dict[int, float] | None = None,
          announced: dict[str, float] | None = None, grace: float = GRACE) -> Tally:
    """Count executions per run and judge them.

    An execution counts as *interrupted* if it never wrote its completion line, or its router was
    killed while it ran or less than ``grace`` seconds after it completed. Every execution of a run
    but the last must be interrupted: a run executed again after an execution that completed is a
    re-execution the router must never do. So is one that begins after the run's ``finished``
    outcome was stored (``announced``: run id to time), whatever the grace. ``kills`` maps router
    pids to the time they were SIGKILLed.
    """
    kills, announced = kills or {}, announced or {}
    by_run: dict[str, list[Execution]] = {}
    for execution in executions:
        by_run.setdefault(execution.run, []).append(execution)
    result = Tally(len(expected), len(executions), sum(e.done is not None for e in executions),
                   per_run={run: len(found) for run, found in by_run.items()})

    def killed_during(execution: Execution) -> bool:
        killed = kills.get(execution.router)
        if killed is None or execution.at > killed + SPAWN_LAG:
            return False
        return execution.done is None or execution.done > killed - grace

    for run, found in by_run.items():
        for earlier, later in zip(found, found[1:]):
            if later.at > announced.get(run, float("inf")) or not (killed_during(earlier) or earlier.done is None):
                result.reexecuted.append(run)
                result.details.append(f"run {run}: " + "; ".join(
                    e.describe(kills.get(e.router)) for e in found) + (
                    f"; finished stored at {announced[run]:.3f}" if run in announced else ""))
                break
            (result.killed_mid_action if killed_during(earlier) else result.stopped).append(earlier)
    result.never_completed = sorted(run for run in expected if not any(e.done for e in by_run.get(run, [])))
    result.unexpected = sorted(set(by_run) - expected)
    return result


# --- the bus, read as `runs list` and a consumer of outcomes would ---------------------------------

class Probe:
    """Read-only views of the router's JetStream state, on a connection of the test's own."""

    def __init__(self, js: JetStreamContext, nc: nats.aio.client.Client | None = None) -> None:
        self.js = js
        self.nc = nc
        """Needed only for ``watch_naks`` (advisories are core NATS messages)."""
        self.naks: Counter = Counter()
        """Naks per ``(stream, stream sequence)`` since ``watch_naks``, from JetStream's advisories."""

    async def watch_naks(self) -> None:
        """Count every nak from now on: JetStream announces each on ``$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED``."""
        async def counted(msg) -> None:
            advisory = json.loads(msg.data)
            self.naks[(advisory["stream"], advisory["stream_seq"])] += 1
        await self.nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.>", cb=counted)

    async def consumer(self, stream: str, durable: str) -> api.ConsumerInfo | None:
        try:
            return await self.js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            return None

    async def subscribed(self) -> bool:
        """Both shared consumers exist: an event published from now on will be routed, whatever
        ``router.start`` says about events stored before a router started."""
        return await self.consumer(*EVENTS) is not None and await self.consumer(*RUNS) is not None

    async def drained(self, stream: str, durable: str) -> bool:
        """The consumer exists and has nothing left to deliver nor anything delivered unacknowledged."""
        info = await self.consumer(stream, durable)
        return info is not None and info.num_pending == 0 and info.num_ack_pending == 0

    async def all_drained(self) -> bool:
        return await self.drained(*EVENTS) and await self.drained(*RUNS)

    async def settled(self) -> bool:
        """Every event routed and every recorded run executed and acknowledged: nothing more can start."""
        return await self.drained(*EVENTS) and await self.waiting_runs() == 0

    async def waiting_runs(self, stream: str = "TR_RUNS", subjects: str = "tr.runs.*") -> int:
        """Run messages still on the work-queue stream (correlation expiry timers are ``tr.runs.expire.*``)."""
        try:
            info = await self.js.stream_info(stream, subjects_filter=subjects)
        except nats.js.errors.NotFoundError:
            return 0
        return sum((info.state.subjects or {}).values())

    async def states(self, bucket: str = "TR_RUN_STATE") -> dict[str, dict]:
        """Run states by run id, as ``runs list`` shows them. Read with ``Bucket.scan``: nats-py's
        ``keys()`` races its "initial values done" marker and answered no keys in a CI run."""
        try:
            found = kv_bucket.Bucket(await self.js.key_value(bucket), "run states")
        except nats.js.errors.NotFoundError:
            return {}
        return {key: value async for key, value in found.scan() if value}

    async def finished(self, stream: str = "TR_OUTCOMES", subjects: str = "tr.outcomes.finished.>") -> list[dict]:
        """Every stored ``finished`` outcome (the CDEvent body), read with an ordered consumer."""
        return [json.loads(stored.data) for stored in await self.messages(stream, subjects)]

    async def announced(self) -> dict[str, float]:
        """When each run's first ``finished`` outcome was stored (epoch seconds), by run id."""
        found: dict[str, float] = {}
        for stored in await self.messages("TR_OUTCOMES", "tr.outcomes.finished.>"):
            found.setdefault(json.loads(stored.data)["subject"]["id"], stored.at)
        return found

    async def messages(self, stream: str, subjects: str = ">") -> list[Stored]:
        """Every message on ``subjects`` of ``stream``, in order."""
        try:
            info = await self.js.stream_info(stream, subjects_filter=subjects)
        except nats.js.errors.NotFoundError:
            return []
        count = sum((info.state.subjects or {}).values())
        if not count:
            return []
        sub = await self.js.subscribe(subjects, ordered_consumer=True, stream=stream)
        try:
            found = []
            while len(found) < count:
                msg = await sub.next_msg(timeout=5)
                found.append(Stored(msg.subject, dict(msg.headers or {}), msg.data, msg.metadata.timestamp.timestamp()))
            return found
        finally:
            await sub.unsubscribe()


@dataclass(frozen=True)
class Stored:
    subject: str
    headers: dict[str, str]
    data: bytes
    at: float
    """When JetStream stored it (epoch seconds)."""


@contextlib.asynccontextmanager
async def connected(url: str):
    """``async with connected(url) as p``: a Probe on a connection of its own, closed afterwards.
    ``url`` may list servers separated by commas, as ``nats.url`` does."""
    nc = await nats.connect([part.strip() for part in url.split(",")], max_reconnect_attempts=-1,
                            reconnect_time_wait=0.5)
    try:
        yield Probe(nc.jetstream(), nc)
    finally:
        await nc.close()


def finished_by_run(finished: list[dict]) -> Counter:
    return Counter(f["subject"]["id"] for f in finished)


@dataclass
class Observed:
    ok: bool
    value: Any
    waited: float


async def wait_for(look: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout: float,
                   interval: float = 0.2) -> Observed:
    """Look until ``done(value)`` holds or ``timeout`` passes; NATS errors count as "not yet".

    Returns what was seen last, so a test that times out can still print its counts.
    """
    start = time.monotonic()
    value: Any = None
    while True:
        try:
            value = await look()
        except NATS_ERRORS as exc:
            value = exc
        else:
            if done(value):
                return Observed(True, value, time.monotonic() - start)
        if time.monotonic() - start > timeout:
            return Observed(False, value, time.monotonic() - start)
        await asyncio.sleep(interval)


async def until(look: Callable[[], Awaitable[Any]], timeout: float, what: str, *logs: Path) -> Any:
    """``look()``'s first truthy value within ``timeout``; else AssertionError saying ``what`` did
    not happen, with the tails of ``logs`` (the processes' logs a reader needs to see why)."""
    seen = await wait_for(look, bool, timeout)
    if not seen.ok:
        tails = "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in logs if path.exists())
        raise AssertionError(f"{what} did not happen within {timeout}s (last seen: {seen.value!r})\n{tails}")
    return seen.value


async def wait_finished(p: Probe, expected: set[str], timeout: float, drained: bool = True) -> Observed:
    """Every expected run's state is ``finished`` and (unless ``drained=False``) both consumers are
    drained: no redelivery can still come, since a run message leaves the work-queue stream when
    it is acknowledged. The value seen is ``(states, drained)``."""
    async def look():
        states = await p.states()
        return states, (await p.all_drained() if drained else True)

    def done(seen) -> bool:
        states, drained = seen
        return drained and all(states.get(run, {}).get("state") == "finished" for run in expected)

    return await wait_for(look, done, timeout)


async def actions_exited(log: ExecLog, timeout: float = 30) -> Observed:
    """Actions outlive a killed router: wait until none is still running before counting."""
    async def look():
        return running_actions(log.executions())
    return await wait_for(look, lambda running: not running, timeout)


def state_summary(states: dict[str, dict], expected: set[str]) -> str:
    return str(Counter(states.get(run, {}).get("state", "absent") for run in expected))
