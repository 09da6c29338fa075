"""Functions as their authors meet them: ``rules validate`` / ``rules test``, ``functions invoke``,
and a real ``serve`` process running the same function on the same event.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from router.engine import runs
from router.model import events
from tests.support import routers

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "router.cli"]
FIXTURES = ROOT / "tests" / "fixtures" / "functions"
EXAMPLES = ROOT / "examples" / "functions"
SERVED = "a" * 40
OTHER = "b" * 40


def env(*paths: Path) -> dict[str, str]:
    import os
    return {**os.environ, "TRIGGER_ROUTER_FUNCTIONS__PATHS": json.dumps([str(p) for p in paths])}


def rule_file(tmp_path: Path, ref: str, params: dict | None = None, name: str = "fn-check",
              event_type: str = "com.github.push") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps({"kind": "TriggerRule", "metadata": {"name": name}, "spec": {
        "filters": [{"exact": {"type": event_type}}],
        "action": {"function": {"ref": ref, "params": params or {}}}}}))
    return path


@pytest.mark.parametrize("ref, message", [
    ("nosuch.module:check", "no module named 'nosuch' on functions.paths"),
    ("trfixtures:nope", "module trfixtures ("),
    ("trfixtures:NOT_CALLABLE", "trfixtures:NOT_CALLABLE is a int, not a callable"),
])
def test_validate_refuses_a_ref_that_names_no_function(tmp_path, ref, message):
    path = rule_file(tmp_path, ref)
    result = subprocess.run(CLI + ["rules", "validate", str(path)], capture_output=True, text=True, env=env(FIXTURES))
    assert result.returncode == 2, result.stdout
    # FILE:LINE:COLUMN: as `rules validate` prints every problem (the position of the ref's key)
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: rule fn-check, field spec\.action\.function\.ref: "
                     rf"{re.escape(message)}", result.stderr, re.M), result.stderr
    assert "Traceback" not in result.stderr


def test_the_example_rules_validate_with_the_example_config():
    result = subprocess.run(CLI + ["--config", "examples/functions/config.yaml", "rules", "validate",
                                   "examples/functions/rules.yaml"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "2 rule(s) valid" in result.stdout


def test_rules_test_shows_the_function_it_would_call(tmp_path):
    path = rule_file(tmp_path, "deploychecks.version:serves_commit", {"url": "http://web/version"})
    event = tmp_path / "push.json"
    event.write_text(json.dumps(push("p1", SERVED)))
    result = subprocess.run(CLI + ["rules", "test", str(path), "--event", str(event), "--json"],
                            capture_output=True, text=True, env=env(EXAMPLES))
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["action"] == {"function": {"ref": "deploychecks.version:serves_commit",
                                            "params": {"url": "http://web/version"}}}


def push(event_id: str, after: str) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "https://github.com/acme/web", "type": "com.github.push",
            "datacontenttype": "application/json", "data": {"ref": "refs/heads/main", "after": after}}


async def version_service():
    async def version(request: web.Request) -> web.Response:
        return web.json_response({"commit": SERVED, "version": "1.4.2"})

    app = web.Application()
    app.router.add_get("/version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/version"


def comparable(outcome: dict) -> dict:
    """What must agree between the router and ``functions invoke`` (latency may differ)."""
    return {"outcome": outcome["outcome"], "reason": outcome["reason"],
            "checks": [{k: v for k, v in c.items() if k != "latencyMs"} for c in outcome["checks"]]}


async def test_invoke_gives_the_routers_outcome_for_the_same_event(nats_server, tmp_path, free_port):
    runner, url = await version_service()
    rules = rule_file(tmp_path, "deploychecks.version:serves_commit", {"url": url})
    router = routers.start_router(nats_server.url, str(rules), free_port, tmp_path, "router",
                                  FUNCTIONS__PATHS=json.dumps([str(EXAMPLES)]))
    try:
        async with routers.connected(nats_server.url) as probe:
            assert (await routers.wait_for(probe.subscribed, bool, 30)).ok, routers.log_tail(tmp_path, "router")
            sent = [push("p-same", SERVED), push("p-other", OTHER)]
            await routers.publish_events(nats_server.url, 0, "x")  # the streams exist
            nc_events = [events.parse_structured(json.dumps(e).encode()) for e in sent]
            for event in nc_events:
                await publish(nats_server.url, event)
            ids = {runs.run_id("fn-check", e) for e in nc_events}
            seen = await routers.wait_for(probe.states, lambda s: all(
                s.get(i, {}).get("state") == "finished" for i in ids), 30)
            assert seen.ok, routers.log_tail(tmp_path, "router")
            states = seen.value
        invoked = []
        config = tmp_path / "config.yaml"  # given after the subcommand, as a developer types it
        config.write_text(json.dumps({"functions": {"paths": [str(EXAMPLES)]}}))
        for document in sent:
            event_file = tmp_path / f"{document['id']}.json"
            event_file.write_text(json.dumps(document))
            process = await asyncio.create_subprocess_exec(
                *CLI, "functions", "invoke", "deploychecks.version:serves_commit", "--event", str(event_file),
                "--params", json.dumps({"url": url}), "--rule", "fn-check", "--json", "--config", str(config),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await process.communicate()
            assert process.returncode in (0, 1), err.decode()
            invoked.append((process.returncode, json.loads(out)))
    finally:
        routers.stop_router(router)
        await runner.cleanup()
    by_event = {s["event"]["id"]: s for s in states.values()}
    for (code, report), document in zip(invoked, sent):
        assert comparable(report) == comparable(by_event[document["id"]])
        assert report["runId"] == runs.run_id("fn-check", events.parse_structured(json.dumps(document).encode()))
    assert invoked[0][0] == 0 and invoked[0][1]["outcome"] == "success"
    assert invoked[0][1]["reason"] == f"{url} serves {SERVED[:12]}"
    assert invoked[1][0] == 1 and invoked[1][1]["outcome"] == "failure"
    assert invoked[1][1]["reason"] == (f"{url} does not serve {OTHER[:12]}: JSON field 'commit' is '{SERVED}', "
                                       f"expected '{OTHER}'")


async def publish(nats_url: str, event: events.CloudEvent) -> None:
    import nats

    from router.bus import connection as bus
    from router.config import settings as settings_mod
    nc = await nats.connect(nats_url)
    try:
        the_bus = bus.Bus(settings_mod.NatsSettings(url=nats_url), settings_mod.BusSettings())
        the_bus.nc, the_bus.js = nc, nc.jetstream()
        await the_bus.publish(event)
    finally:
        await nc.close()


async def test_a_serve_process_runs_each_function_run_once(nats_server, tmp_path, free_port):
    log = tmp_path / "effects.log"
    rules = rule_file(tmp_path, "trfixtures:passes", {"log": str(log)}, event_type=routers.TYPE)
    router = routers.start_router(nats_server.url, str(rules), free_port, tmp_path, "router",
                                  FUNCTIONS__PATHS=json.dumps([str(FIXTURES)]))
    try:
        async with routers.connected(nats_server.url) as probe:
            assert (await routers.wait_for(probe.subscribed, bool, 30)).ok, routers.log_tail(tmp_path, "router")
            sent = await routers.publish_events(nats_server.url, 20, "e")
            assert (await routers.wait_for(probe.settled, bool, 30)).ok, routers.log_tail(tmp_path, "router")
            states = await probe.states()
    finally:
        routers.stop_router(router)
    expected = {runs.run_id("fn-check", e) for e in sent}
    written = [line.split()[1] for line in log.read_text().splitlines()]
    assert sorted(written) == sorted(expected), "each run's function ran exactly once"
    assert {states[i]["outcome"] for i in expected} == {"success"}


VERSIONED = '''
async def check(event, ctx):
    with open(ctx.params["log"], "a") as log:
        log.write("{version} " + event.id + "\\n")
    return True
'''


async def test_serve_reimports_a_changed_function_on_reload_and_keeps_it_through_a_broken_edit(
        nats_server, tmp_path, free_port):
    import os
    import signal

    code, log = tmp_path / "code", tmp_path / "effects.log"
    code.mkdir()
    module = code / "soak_v.py"
    module.write_text(VERSIONED.format(version="v1"))
    rules = rule_file(tmp_path, "soak_v:check", {"log": str(log)}, event_type=routers.TYPE)
    router = routers.start_router(nats_server.url, str(rules), free_port, tmp_path, "router",
                                  FUNCTIONS__PATHS=json.dumps([str(code)]), RULES__RELOAD_INTERVAL="60s")

    async def run(event_id: str) -> str:
        await routers.publish_events(nats_server.url, 1, event_id)
        seen = await routers.wait_for(lambda: asyncio.to_thread(lambda: log.read_text() if log.exists() else ""),
                                      lambda text: f" {event_id}-0\n" in text, 30)
        assert seen.ok, routers.log_tail(tmp_path, "router")
        return next(line.split()[0] for line in seen.value.splitlines() if line.endswith(f" {event_id}-0"))

    async def reloaded(count: int) -> None:
        os.kill(router.pid, signal.SIGHUP)
        seen = await routers.wait_for(lambda: asyncio.to_thread(routers.log_tail, tmp_path, "router", 200),
                                      lambda text: text.count("rules reloaded") + text.count("reload rejected") >= count,
                                      30)
        assert seen.ok, seen.value

    try:
        async with routers.connected(nats_server.url) as probe:
            assert (await routers.wait_for(probe.subscribed, bool, 30)).ok, routers.log_tail(tmp_path, "router")
            assert await run("a") == "v1"
            module.write_text(VERSIONED.format(version="v2") + "# edited\n")
            await reloaded(1)
            assert await run("b") == "v2", "the changed module was imported again with the rules"
            module.write_text(VERSIONED.format(version="v3") + "raise RuntimeError('half-written')\n")
            await reloaded(2)
            assert await run("c") == "v2", "a broken edit is rejected; the previous code keeps serving"
    finally:
        routers.stop_router(router)
    assert "re-importing changed soak_v" in routers.log_tail(tmp_path, "router", 200)
