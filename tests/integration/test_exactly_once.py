"""Issue #12, "exactly once under faults": counted in executions of the action, not in outcome ids.

Every run here executes an ``exec`` action that appends to a file when it begins and when it
completes (``tests.support.routers``). JetStream drops a repeated outcome with the same id, so
``finished`` messages alone would look right even if an action ran three times; the execution log
would not. Each scenario prints its counts (``pytest -s``) and puts them in its failure messages.

The faults: (a) one of two routers SIGKILLed at random points, (b) nats-server stopped for 10 s,
(c) the outcomes stream refusing every write for 30 s, and payloads at and beyond the bus's limit:
(d) an 800 KB event, (e) a run whose record or outcome can never fit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import time

import aiohttp
from nats.js import api

from router.cli import runs as run_commands
from router.config import settings as settings_mod
from router.engine import runs
from router.model import events
from tests.support import routers


def seeded() -> tuple[int, random.Random]:
    """Random fault points, reproducible: ``TR_TEST_SEED=<printed seed>`` replays a failure."""
    seed = int(os.environ.get("TR_TEST_SEED") or time.time_ns() % 1_000_000)
    return seed, random.Random(seed)


def run_ids(batch: list[events.CloudEvent], rule: str = routers.RULE) -> set[str]:
    return {runs.run_id(rule, event) for event in batch}


async def completions(log: routers.ExecLog) -> int:
    return sum(log.completed().values())


async def subscribed(probe: routers.Probe, tmp_path, *names: str) -> None:
    seen = await routers.wait_for(probe.subscribed, bool, 60)
    assert seen.ok, f"the routers never subscribed: {seen.value!r}\n{logs(tmp_path, *names)}"


def logs(tmp_path, *names: str) -> str:
    return "\n".join(f"--- {name}.log:\n{routers.log_tail(tmp_path, name)}" for name in names)


def unfinished(done: routers.Observed, expected: set[str], summary: str) -> str:
    if isinstance(done.value, tuple):
        states, drained = done.value
        return (f"not every run finished after {done.waited:.0f}s: {routers.state_summary(states, expected)}, "
                f"consumers drained: {drained}; {summary}")
    return f"not every run finished after {done.waited:.0f}s: {done.value!r}; {summary}"


def check_outcomes(expected: set[str], states: dict[str, dict], finished: list[dict], summary: str) -> None:
    """Exactly one ``finished`` per run, and the run state agrees with it."""
    per_run = routers.finished_by_run(finished)
    wrong = {run: per_run.get(run, 0) for run in expected if per_run.get(run, 0) != 1}
    assert not wrong, f"runs without exactly one finished outcome (run: count): {wrong}; {summary}"
    assert set(per_run) == expected, f"finished outcomes of unexpected runs: {set(per_run) - expected}; {summary}"
    outcome_of = {f["subject"]["id"]: f["subject"]["content"]["outcome"] for f in finished}
    disagree = {run: (states.get(run, {}).get("state"), states.get(run, {}).get("outcome"), outcome_of[run])
                for run in expected
                if (states.get(run, {}).get("state"), states.get(run, {}).get("outcome")) != ("finished", outcome_of[run])}
    assert not disagree, f"run state vs finished outcome (state, outcome, announced outcome): {disagree}; {summary}"
    assert set(outcome_of.values()) == {"success"}, f"outcomes: {set(outcome_of.values())}; {summary}"


def check_executions(count: routers.Tally, summary: str) -> None:
    assert not count.reexecuted, (f"executed again after an execution that completed or after finished was "
                                  f"published: {count.details[:5]}; {summary}")
    assert not count.never_completed, f"never completed: {count.never_completed}; {summary}"
    assert not count.unexpected, f"executions of runs nobody asked for: {count.unexpected}; {summary}"


# --- (a) routers killed ---------------------------------------------------------------------------

RUNS_A = 150
KILLS_A = 4


async def test_a_two_routers_sigkilled_at_random_points_finish_every_run_once(nats_server, tmp_path):
    seed, rng = seeded()
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path)
    sleeps = [round(rng.uniform(0.2, 1.0), 2) for _ in range(RUNS_A)]
    generations = [0, 0]
    names: list[str] = []

    def start(i: int):
        generations[i] += 1
        names.append(f"router{i}.{generations[i]}")
        return routers.start_router(nats_server.url, rules, 0, tmp_path, names[-1], ROUTER__CONCURRENCY="4")

    processes = [start(0), start(1)]
    kills: dict[int, float] = {}
    try:
        async with routers.connected(nats_server.url) as probe:
            await subscribed(probe, tmp_path, *names)
            expected = run_ids(await routers.publish_events(nats_server.url, RUNS_A, "a",
                                                            lambda i: {"n": i, "sleep": sleeps[i]}))
            for fraction in sorted(rng.uniform(0.1, 0.7) for _ in range(KILLS_A)):
                progress = await routers.wait_for(lambda: completions(log), lambda n: n >= fraction * RUNS_A, 60)
                assert progress.ok, f"no progress: {progress.value} of {RUNS_A} completed\n{logs(tmp_path, *names)}"
                await asyncio.sleep(rng.uniform(0, 0.4))  # a random point between two progress marks
                victim = rng.randrange(2)
                kills[processes[victim].pid] = routers.kill_router(processes[victim])
                processes[victim] = start(victim)
            done = await routers.wait_finished(probe, expected, timeout=90)
            exited = await routers.actions_exited(log)
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        for process in processes:
            routers.stop_router(process)
    count = routers.tally(log.executions(), expected, kills, announced)
    summary = (count.line("a: two routers, SIGKILL x%d" % len(kills)) +
               f" finished outcomes={len(finished)} seed={seed}")
    print(summary)
    assert done.ok, unfinished(done, expected, summary) + "\n" + logs(tmp_path, *names)
    assert exited.ok, f"actions still running: {exited.value}; {summary}"
    check_executions(count, summary)
    check_outcomes(expected, states, finished, summary)


# --- (b) nats-server away ---------------------------------------------------------------------------

RUNS_B = 24
OUTAGE = 10.0


async def test_b_nats_server_stopped_for_10s_mid_run_reexecutes_nothing(nats_server, tmp_path):
    seed, rng = seeded()
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path)
    sleeps = [round(rng.uniform(1.0, 3.0), 2) for _ in range(RUNS_B)]
    router = routers.start_router(nats_server.url, rules, 0, tmp_path, "router", ROUTER__ACK_WAIT="6s",
                                  ROUTER__CONCURRENCY="8")
    try:
        async with routers.connected(nats_server.url) as probe:
            await subscribed(probe, tmp_path, "router")
        expected = run_ids(await routers.publish_events(nats_server.url, RUNS_B, "b",
                                                        lambda i: {"n": i, "sleep": sleeps[i]}))

        async def look():
            found = log.executions()
            return sum(e.done is not None for e in found), sum(e.done is None for e in found)
        mid_run = await routers.wait_for(look, lambda seen: seen[0] >= 6 and seen[1] >= 3, 60)
        assert mid_run.ok, f"never mid-run (completed, running): {mid_run.value}\n{logs(tmp_path, 'router')}"
        nats_server.stop()
        stopped = time.time()
        await asyncio.sleep(OUTAGE)  # the length of the outage, not a wait for anything
        nats_server.start()
        restarted = time.time()
        async with routers.connected(nats_server.url) as probe:
            done = await routers.wait_finished(probe, expected, timeout=90)
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        routers.stop_router(router)
    executions = log.executions()
    count = routers.tally(executions, expected, announced=announced)
    during = sum(1 for e in executions if e.done and stopped <= e.done <= restarted)
    summary = (count.line("b: nats-server stopped %gs" % OUTAGE) +
               f" in flight at the stop={mid_run.value[1]} completed during the outage={during} "
               f"finished outcomes={len(finished)} seed={seed}")
    print(summary)
    assert done.ok, unfinished(done, expected, summary) + "\n" + logs(tmp_path, 'router')
    check_executions(count, summary)
    # The router was never killed: no run has a reason to execute twice.
    assert count.executions == RUNS_B, f"executions != runs; {summary}"
    check_outcomes(expected, states, finished, summary)


# --- (c) outcomes cannot be published -----------------------------------------------------------------

RUNS_C = 8
REFUSED = 30.0


async def test_c_finished_refused_for_30s_is_published_once_later_without_reexecution(nats_server, tmp_path):
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path)
    router = routers.start_router(nats_server.url, rules, 0, tmp_path, "router", ROUTER__ACK_WAIT="4s")
    try:
        async with routers.connected(nats_server.url) as probe:
            await subscribed(probe, tmp_path, "router")
            expected = run_ids(await routers.publish_events(nats_server.url, RUNS_C, "c",
                                                            lambda i: {"n": i, "sleep": 3}))
            async def look():
                started = await probe.js.stream_info("TR_OUTCOMES", subjects_filter="tr.outcomes.started.>")
                return len(log.begun()), sum((started.state.subjects or {}).values())
            # Every run started and its action running: from now on the only outcomes left to
            # publish are the finished ones.
            begun = await routers.wait_for(look, lambda seen: seen == (RUNS_C, RUNS_C), 60)
            assert begun.ok, f"(actions begun, outcomes stored): {begun.value}\n{logs(tmp_path, 'router')}"
            info = await probe.js.stream_info("TR_OUTCOMES")
            # A full stream that discards new messages refuses every publish ("maximum messages exceeded").
            await probe.js.update_stream(dataclasses.replace(info.config, max_msgs=info.state.messages,
                                                             discard=api.DiscardPolicy.NEW))
            refused_at = time.monotonic()
            completed = await routers.wait_for(lambda: completions(log), lambda n: n >= RUNS_C, REFUSED)
            await asyncio.sleep(max(0.0, REFUSED - (time.monotonic() - refused_at)))  # the fault's length
            finished_while_refused = len(await probe.finished())
            await probe.js.update_stream(info.config)
            done = await routers.wait_finished(probe, expected, timeout=60)
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        routers.stop_router(router)
    count = routers.tally(log.executions(), expected, announced=announced)
    summary = (count.line("c: finished refused %gs" % REFUSED) +
               f" completed while refused={completed.value} finished stored while refused={finished_while_refused} "
               f"finished outcomes={len(finished)}")
    print(summary)
    assert completed.ok and finished_while_refused == 0, f"the fault did not happen as intended; {summary}"
    assert done.ok, unfinished(done, expected, summary) + "\n" + logs(tmp_path, 'router')
    check_executions(count, summary)
    assert count.executions == RUNS_C, f"executions != runs; {summary}"
    check_outcomes(expected, states, finished, summary)


# --- (d) an 800 KB event ------------------------------------------------------------------------------

BIG = 800 * 1024


async def ready(http: aiohttp.ClientSession, url: str) -> routers.Observed:
    async def look():
        try:
            async with http.get(f"{url}/readyz") as response:
                return response.status
        except aiohttp.ClientError as exc:
            return exc
    return await routers.wait_for(look, lambda status: status == 200, 30)


async def test_d_an_800kb_event_is_accepted_routed_and_run_once(nats_server, tmp_path, free_port):
    log = routers.ExecLog(tmp_path / "exec.log")
    router = routers.start_router(nats_server.url, routers.exec_rule(tmp_path, log.path), free_port, tmp_path,
                                  "router")
    body = json.dumps({"sleep": 0, "blob": "x" * BIG}).encode()
    event = events.make({"id": "big-1", "source": "/test", "type": routers.TYPE}, {})
    run = runs.run_id(routers.RULE, event)
    headers = {"ce-specversion": "1.0", "ce-id": event.id, "ce-source": event.source, "ce-type": event.type,
               "Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as http:
            up = await ready(http, f"http://127.0.0.1:{free_port}")
            assert up.ok, f"the router never became ready: {up.value}\n{logs(tmp_path, 'router')}"
            async with http.post(f"http://127.0.0.1:{free_port}/events", data=body, headers=headers) as response:
                status, answer = response.status, await response.text()
        async with routers.connected(nats_server.url) as probe:
            done = await routers.wait_finished(probe, {run}, timeout=30) if status < 300 else None
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        routers.stop_router(router)
    count = routers.tally(log.executions(), {run}, announced=announced)
    summary = (count.line(f"d: {len(body)} byte event") + f" HTTP {status} state={states.get(run, {}).get('state')} "
               f"finished outcomes={len(finished)}")
    print(summary)
    assert 200 <= status < 300, f"{answer}; {summary}"
    assert done.ok, f"the run never finished; {summary}\n{logs(tmp_path, 'router')}"
    assert count.executions == 1, summary
    check_outcomes({run}, states, finished, summary)


# --- (e) what can never fit ---------------------------------------------------------------------------

LATER = 5
NAKS = 3
"""A message may be naked this often without a log line naming it; more needs one."""


def most_naks(probe: routers.Probe) -> int:
    return max(probe.naks.values(), default=0)


def warned_about(tmp_path, name: str, *needles: str) -> list[str]:
    lines = (tmp_path / f"{name}.log").read_text().splitlines()
    return [line for line in lines if (" WARNING " in line or " ERROR " in line) and any(n in line for n in needles)]


async def dead_letters_about(probe: routers.Probe, *needles: str) -> list[tuple[str, str]]:
    """(subject, reason) of dead letters whose subject, headers or data name one of ``needles``."""
    found = []
    for stored in await probe.messages("TR_DEADLETTER"):
        text = stored.subject + json.dumps(stored.headers) + stored.data.decode(errors="replace")
        if any(n in text for n in needles):
            found.append((stored.subject, stored.headers.get("Trigger-Router-Reason", "")))
    return found


async def listed(nats_url: str, capsys) -> dict[str, dict]:
    """``trigger-router runs list --json``, by run id."""
    capsys.readouterr()
    await run_commands.list_runs(settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": nats_url}), True, None)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return {row["runId"]: row for row in rows if "runId" in row}


async def test_e_a_run_record_too_large_for_the_bus_is_dead_lettered_and_routing_continues(
        nats_server, tmp_path, capsys):
    log = routers.ExecLog(tmp_path / "exec.log")
    # The rendered parameters copy the event's 600 KB twice: 1.2 MB, more than the server's 1 MiB max_payload.
    rules = routers.exec_rule(tmp_path, log.path, args=["{{ data.pad }}", "{{ data.pad }}"])
    router = None
    try:
        async with routers.connected(nats_server.url) as probe:
            await probe.watch_naks()
            router = routers.start_router(nats_server.url, rules, 0, tmp_path, "router")
            await subscribed(probe, tmp_path, "router")
            [poison] = await routers.publish_events(nats_server.url, 1, "poison",
                                                    lambda i: {"sleep": 0, "pad": "x" * 600_000})
            later = await routers.publish_events(nats_server.url, LATER, "later", lambda i: {"sleep": 0, "pad": ""})
            poisoned, expected = runs.run_id(routers.RULE, poison), run_ids(later)
            routed = await routers.wait_finished(probe, expected, timeout=30, drained=False)

            async def look():
                return await probe.all_drained(), await dead_letters_about(probe, poisoned, poison.id)
            ended = await routers.wait_for(look, lambda seen: seen[0], 30)
            dead, states = ended.value[1] if ended.ok else [], await probe.states()
        rows = await listed(nats_server.url, capsys)
    finally:
        if router:
            routers.stop_router(router)
    count = routers.tally([e for e in log.executions() if e.run != poisoned], expected)
    state = rows.get(poisoned, {})
    summary = (count.line("e: record too large") + f" poison: executions={log.begun()[poisoned]} "
               f"state={state.get('state')}/{state.get('outcome')} reason={state.get('reason', '')[:120]!r} "
               f"dead letters={dead} consumers drained={ended.ok} most naks of one message={most_naks(probe)}")
    with capsys.disabled():
        print(summary)
    assert routed.ok, f"later events were not routed and run; {summary}\n{logs(tmp_path, 'router')}"
    check_executions(count, summary)
    assert count.executions == LATER, summary
    assert ended.ok, f"the poison run is still being redelivered; {summary}\n{logs(tmp_path, 'router')}"
    errored = state.get("state") == "finished" and state.get("outcome") == "error" and state.get("reason")
    assert errored or any(reason for _, reason in dead), f"no reason in runs list or the dead-letter stream; {summary}"
    assert log.begun()[poisoned] == 0, f"a run with parameters it cannot carry was executed; {summary}"
    assert most_naks(probe) <= NAKS or warned_about(tmp_path, "router", poisoned, poison.id), \
        f"naked again and again, and no log line names the poison; {summary}"


async def test_e_an_outcome_too_large_for_the_bus_ends_the_run_once_and_routing_continues(nats_server, tmp_path):
    log = routers.ExecLog(tmp_path / "exec.log")
    # 1.1 MB of stdout kept whole (tailBytes 1 MiB): the finished outcome carrying it cannot fit.
    rules = routers.exec_rule(tmp_path, log.path, tail_bytes=1024 * 1024, spew="{{ string(data.spew) }}")
    router = None
    try:
        async with routers.connected(nats_server.url) as probe:
            await probe.watch_naks()
            router = routers.start_router(nats_server.url, rules, 0, tmp_path, "router")
            await subscribed(probe, tmp_path, "router")
            [poison] = await routers.publish_events(nats_server.url, 1, "poison",
                                                    lambda i: {"sleep": 0, "spew": 1_100_000})
            poisoned = runs.run_id(routers.RULE, poison)
            first = await routers.wait_for(lambda: completions(log), lambda n: n >= 1, 30)
            later = await routers.publish_events(nats_server.url, LATER, "later", lambda i: {"sleep": 0, "spew": 0})
            expected = run_ids(later)
            done = await routers.wait_finished(probe, expected | {poisoned}, timeout=30)
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        if router:
            routers.stop_router(router)
    count = routers.tally(log.executions(), expected | {poisoned}, announced=announced)
    state, per_run = states.get(poisoned, {}), routers.finished_by_run(finished)
    summary = (count.line("e: outcome too large") + f" poison: executions={count.per_run.get(poisoned, 0)} "
               f"state={state.get('state')}/{state.get('outcome')} reason={state.get('reason', '')[:120]!r} "
               f"finished outcomes={per_run.get(poisoned, 0)}; later runs finished={sum(per_run[r] for r in expected)} "
               f"most naks of one message={most_naks(probe)}")
    print(summary)
    assert first.ok, f"the poison run never executed; {summary}\n{logs(tmp_path, 'router')}"
    assert count.per_run.get(poisoned) == 1, f"the action ran more than once; {summary}\n{logs(tmp_path, 'router')}"
    assert done.ok, f"runs did not all finish, or a message is still redelivered; {summary}\n{logs(tmp_path, 'router')}"
    check_executions(count, summary)
    assert state.get("state") == "finished" and state.get("reason"), f"no reason in runs list; {summary}"
    assert per_run.get(poisoned) == 1, f"the poison run has no single finished outcome; {summary}"
    assert all(per_run[r] == 1 for r in expected), summary
    assert most_naks(probe) <= NAKS or warned_about(tmp_path, "router", poisoned), \
        f"naked again and again, and no log line names the poison run; {summary}"
