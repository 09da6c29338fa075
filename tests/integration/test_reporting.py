"""Reporters end to end: a real ``serve``, real nats-server, and a sink that counts what it receives.

The ``cloudevent`` reporter stands in for every reporter here (GitHub's and GitLab's have their own
tests against contract servers): what is proven is the engine's part. Every stage is reported
after its outcome is stored, each exactly as often as the receiver's answers require, the retries
honour ``Retry-After``, every attempt is visible in ``runs show``, and nothing a reporter meets
changes the run's outcome.
"""

from __future__ import annotations

import json
import time
import asyncio
from collections import Counter

import pytest
from aiohttp import web

from router.config import settings as settings_mod
from router.engine import queries
from tests.support.registryserver import free_port
from tests.support import routers

RULE = "reported"


class Sink:
    """An HTTP receiver that records every request and answers from a script (default 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.hold_after: int | None = None
        """Requests beyond this many are held unanswered until ``gate`` is set."""
        self.gate = asyncio.Event()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body,
                              "at": time.time()})
        status, headers = self.script.pop(0) if self.script and request.path == "/events" else (200, {})
        if self.hold_after is not None and len(self.requests) > self.hold_after:
            await self.gate.wait()
        return web.json_response({"status": status}, status=status, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def at(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]


@pytest.fixture
async def sink():
    receiver = Sink()
    await receiver.start()
    yield receiver
    await receiver.runner.cleanup()


def rule_file(tmp_path, log, report: list[dict], *, exit_code: int = 0) -> str:
    path = tmp_path / "rules.yaml"
    command = ["/bin/sh", "-c", f'echo "$TRIGGER_ROUTER_RUN_ID" >> {log}; exit {exit_code}']
    path.write_text(json.dumps({"kind": "TriggerRule", "metadata": {"name": RULE},
                                "spec": {"filters": [{"exact": {"type": routers.TYPE}}],
                                         "action": {"exec": {"command": command}}, "report": report}}))
    return str(path)


@pytest.fixture
def nats_url(nats_server) -> str:
    return nats_server.url


class Serve:
    """``serve`` processes with a rule whose ``exec`` action logs its run id to ``executions.log``."""

    def __init__(self, nats_url: str, tmp_path) -> None:
        self.nats_url, self.tmp_path = nats_url, tmp_path
        self.processes: list = []
        self.log = tmp_path / "executions.log"

    def __call__(self, report: list[dict], **settings: str):
        self.log.touch()
        rules = rule_file(self.tmp_path, self.log, report)
        self.processes.append(routers.start_router(self.nats_url, rules, 0, self.tmp_path, "router",
                                                   REPORTING__BACKOFF="0.2s", **settings))
        return self.log

    again = __call__


@pytest.fixture
def serve(nats_url, tmp_path):
    started = Serve(nats_url, tmp_path)
    yield started
    for process in started.processes:
        routers.stop_router(process)


async def run_of(nats_url: str, tmp_path, log) -> dict:
    """The one run (its state with ``reports``, as ``runs show`` prints it) once its action ran."""
    run_id = await routers.until(lambda: _first_line(log), 60, "the action ran", tmp_path / "router.log")
    settings = settings_mod.load(env={"TRIGGER_ROUTER_NATS__URL": nats_url})
    async with routers.connected(nats_url) as nc:
        async def finished():
            state = await queries.get_run(nc.js, settings, run_id)
            return state if state and state.get("state") == "finished" else None
        return await routers.until(finished, 30, "the run finished", tmp_path / "router.log")


async def _first_line(log) -> str | None:
    lines = log.read_text().split()
    return lines[0] if lines else None


async def shown(nats_url: str, run_id: str) -> dict:
    settings = settings_mod.load(env={"TRIGGER_ROUTER_NATS__URL": nats_url})
    async with routers.connected(nats_url) as nc:
        return await queries.get_run(nc.js, settings, run_id)


async def reported(nats_url: str, run_id: str, tmp_path, done) -> dict:
    """``runs show`` once ``done(reports)`` holds for its reports."""
    async def look():
        state = await shown(nats_url, run_id)
        return state if state and done(state.get("reports", [])[1:]) else None
    return await routers.until(look, 60, "the reports", tmp_path / "router.log")


async def test_every_stage_is_delivered_once_in_binary_mode(nats_url, serve, sink, tmp_path):
    log = serve([{"cloudevent": {"uri": f"{sink.url}/events", "on": ["queued", "started", "finished"],
                                 "headers": {"X-Team": "payments"}}}])
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    state = await reported(nats_url, run["runId"], tmp_path, lambda r: r and r[0]["stage"] == "finished")
    received = sink.at("/events")
    assert [r["headers"]["ce-type"].split(".")[3] for r in received] == ["queued", "started", "finished"]
    assert all(r["headers"]["X-Team"] == "payments" for r in received)
    assert len({r["headers"]["ce-id"] for r in received}) == 3
    finished = json.loads(received[-1]["body"])
    assert received[-1]["headers"]["Content-Type"].startswith("application/json")
    assert finished["subject"]["id"] == run["runId"] and finished["subject"]["content"]["outcome"] == "success"
    attempts = state["reports"][1]["attempts"]
    assert [(a["stage"], a["result"]) for a in attempts] == [("queued", "ok"), ("started", "ok"), ("finished", "ok")]
    assert state["outcome"] == "success"


async def test_retry_after_is_honoured_and_the_outcome_is_unchanged(nats_url, serve, sink, tmp_path):
    sink.script = [(503, {"Retry-After": "2"}), (429, {"Retry-After": "1"})]
    log = serve([{"cloudevent": {"uri": f"{sink.url}/events", "retry": 5}}])
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    state = await reported(nats_url, run["runId"], tmp_path, lambda r: r and r[0]["stage"] == "finished")
    received = sink.at("/events")
    assert len(received) == 3, [r["at"] for r in received]
    assert received[1]["at"] - received[0]["at"] >= 2.0
    assert received[2]["at"] - received[1]["at"] >= 1.0
    assert Counter(r["headers"]["ce-id"] for r in received) == {received[0]["headers"]["ce-id"]: 3}
    results = [(a["result"], a.get("detail", "")) for a in state["reports"][1]["attempts"]]
    assert [r for r, _ in results] == ["retry", "retry", "ok"]
    assert "HTTP 503" in results[0][1] and "HTTP 429" in results[1][1]
    assert state["outcome"] == "success" and state["attempts"] == 1


async def test_spent_retries_go_to_the_dead_letter_sink(nats_url, serve, sink, tmp_path):
    sink.script = [(500, {})] * 3
    log = serve([{"cloudevent": {"uri": f"{sink.url}/events", "retry": 2, "backoffDelay": "PT0.1S",
                                 "deadLetterSink": f"{sink.url}/dead"}}])
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    state = await reported(nats_url, run["runId"], tmp_path, lambda r: r and r[0]["stage"] == "finished")
    assert len(sink.at("/events")) == 3  # the first attempt and 2 retries
    (dead,) = sink.at("/dead")
    assert dead["headers"]["ce-knativeerrorcode"] == "500"
    assert dead["headers"]["ce-knativeerrordest"] == f"{sink.url}/events"
    assert dead["headers"]["ce-id"] == sink.at("/events")[0]["headers"]["ce-id"]
    assert state["reports"][1]["state"]["deadLettered"] == dead["headers"]["ce-id"]
    assert state["outcome"] == "success"


async def test_a_receiver_that_never_answers_is_given_up_without_touching_the_run(nats_url, serve, tmp_path):
    port = free_port()  # nothing listens there: every attempt is refused
    log = serve([{"cloudevent": {"uri": f"http://127.0.0.1:{port}/events", "retry": 50}}],
                REPORTING__MAX_ATTEMPTS="3")
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    state = await reported(nats_url, run["runId"], tmp_path, lambda r: r and r[0]["stage"] == "finished")
    attempts = state["reports"][1]["attempts"]
    assert [a["result"] for a in attempts] == ["retry", "retry", "failed"]
    assert "no deadLetterSink" in attempts[-1]["detail"]
    assert state["outcome"] == "success"


async def test_a_report_whose_parameters_cannot_render_fails_alone(nats_url, serve, sink, tmp_path):
    log = serve([{"cloudevent": {"uri": "http://{{ data.missing.host }}/x"}},
                 {"cloudevent": {"uri": f"{sink.url}/events"}}])
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    state = await reported(nats_url, run["runId"], tmp_path,
                           lambda r: len(r) == 2 and all(p["stage"] == "finished" for p in r))
    broken, working = state["reports"][1:]
    assert broken["attempts"][-1]["result"] == "failed"
    assert "spec.report[0].cloudevent" in broken["attempts"][-1]["detail"]
    assert working["attempts"][-1]["result"] == "ok" and len(sink.at("/events")) == 1
    assert state["outcome"] == "success"
    assert state["reports"][0]["commit"] is None and "names no commit" in state["reports"][0]["why"]


async def test_runs_without_reporters_have_no_report_entry(nats_url, serve, sink, tmp_path):
    log = serve([])
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    assert "reports" not in run and sink.requests == []


async def test_a_router_killed_mid_report_leaves_nothing_unreported(nats_url, serve, sink, tmp_path):
    """kill -9 while reports are in flight: the next router reports every stage of every run, at
    least once, and repeats at most what was in flight (the receiver dedupes those on ``ce-id``)."""
    runs_count, in_flight = 20, 4
    sink.hold_after = 10
    report = [{"cloudevent": {"uri": f"{sink.url}/events", "on": ["queued", "started", "finished"]}}]
    log = serve(report, REPORTING__CONCURRENCY=str(in_flight))
    await routers.publish_events(nats_url, runs_count, "burst")
    await routers.until(lambda: _at_least(sink, 10 + in_flight), 60, "reports held", tmp_path / "router.log")
    routers.kill_router(serve.processes[-1])
    held = sink.at("/events")[10:]
    sink.gate.set()
    serve.again(report, REPORTING__CONCURRENCY=str(in_flight))
    settings = settings_mod.load(env={"TRIGGER_ROUTER_NATS__URL": nats_url})

    async def all_reported():
        run_ids = set(log.read_text().split())
        if len(run_ids) < runs_count:
            return None
        async with routers.connected(nats_url) as nc:
            states = [await queries.get_run(nc.js, settings, run_id) for run_id in run_ids]
        done = [s for s in states if s and len(s.get("reports", [])) == 2 and s["reports"][1]["stage"] == "finished"]
        return states if len(done) == runs_count else None

    states = await routers.until(all_reported, 120, "every run reported", tmp_path / "router.log")
    per_event = Counter(r["headers"]["ce-id"] for r in sink.at("/events"))
    assert len(per_event) == 3 * runs_count  # every stage of every run arrived
    assert len(held) == in_flight
    # Only what was in flight can come twice; it may also come once only, when a later stage of
    # its run was reported first (an older stage is never sent after a newer one).
    assert {ce_id for ce_id, count in per_event.items() if count > 1} <= {r["headers"]["ce-id"] for r in held}
    assert all(count <= 2 for count in per_event.values())
    assert all(s["outcome"] == "success" for s in states)


async def _at_least(sink: Sink, count: int) -> bool:
    return len(sink.at("/events")) >= count


async def outcome_headers(nats_url: str) -> list[str | None]:
    """``Tr-Reports`` of every message on the outcomes stream, in order."""
    async with routers.connected(nats_url) as nc:
        last = (await nc.js.stream_info("TR_OUTCOMES")).state.last_seq
        return [(await nc.js.get_msg("TR_OUTCOMES", seq)).headers.get("Tr-Reports") for seq in range(1, last + 1)]


@pytest.mark.parametrize("report, said", [([], "0"), ([{"cloudevent": {"uri": "{sink}/events"}}], "1")])
async def test_outcomes_tell_the_reporting_worker_whether_to_look(nats_url, serve, sink, tmp_path, report, said):
    report = [{"cloudevent": {"uri": r["cloudevent"]["uri"].format(sink=sink.url)}} for r in report]
    log = serve(report)
    await routers.publish_events(nats_url, 1, "deploy")
    run = await run_of(nats_url, tmp_path, log)
    if report:  # the worker did look, and reported the run
        await reported(nats_url, run["runId"], tmp_path, lambda r: r and r[0]["stage"] == "finished")
    assert await outcome_headers(nats_url) == [said] * 3  # queued, started, finished
    assert len(sink.at("/events")) == (1 if report else 0)
