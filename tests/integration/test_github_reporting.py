"""Issue 16's acceptance, end to end: a signed ``workflow_run`` webhook, a rule, an ``httpProbe``,
and the verdict as a GitHub check run on the workflow's ``head_sha``.

Everything runs as users run it: ``trigger-router serve`` as a subprocess on a real nats-server,
the webhook posted to its edge with a real signature, the probe hitting a real HTTP server, and
the reporter talking to the GitHub contract server (``tests/support/github_api.py``) as a GitHub
App. What is asserted is what GitHub would have received, in order, and when.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from router.config import settings as settings_mod
from router.engine import queries, runs
from router.model import events
from tests.conftest import SHARED
from tests.support import httpserver, routers
from tests.support.github_api import GithubApi, generate_key

WORKFLOW_RUN = SHARED / "fixtures" / "github" / "workflow_run" / "completed.payload.json"
HEAD_SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"  # workflow_run.head_sha of the fixture
REPOSITORY = "octo-org/octo-repo"
SECRET = "e2e-webhook-secret"
APP_ID = 271828
RULE = "smoke"

RULES = """\
kind: TriggerRule
metadata: {{name: {rule}}}
spec:
  filters:
    - exact: {{type: com.github.workflow_run.completed}}
  action:
    httpProbe:
      checks:
        - name: health
          url: "{target}/{path}"
      deadline: 2s
      interval: 0.5s
  report:
    - githubCheckRun: {{name: smoke, detailsUrl: "https://ci.example/runs/{{{{ id }}}}"}}
"""


@pytest.fixture
async def target():
    """The service under test: ``/health`` answers 200, ``/broken`` 503."""
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"status": "down"}, status=503)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/broken", broken)
    async with httpserver.serving(app) as url:
        yield f"{url}"


@pytest.fixture
async def github(tmp_path):
    key = generate_key(tmp_path / "app.pem")
    api = await GithubApi(APP_ID, key.public_key(), installations={REPOSITORY: 77}).start()
    yield api
    await api.stop()


class Router:
    def __init__(self, nats_url: str, port: int, tmp_path: Path, github: GithubApi, target: str, path: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.tmp_path, self.nats_url = tmp_path, nats_url
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(rule=RULE, target=target, path=path))
        self.process = routers.start_router(
            nats_url, str(rules), port, tmp_path, "router", GITHUB__SECRETS=json.dumps([SECRET]),
            REPORTING__BACKOFF="0.2s", REPORTERS__GITHUB__API_URL=github.url,
            REPORTERS__GITHUB__APP_ID=str(APP_ID), REPORTERS__GITHUB__PRIVATE_KEY_FILE=str(tmp_path / "app.pem"))
        self.log = tmp_path / "router.log"

    async def ready(self) -> None:
        async def look() -> bool:
            try:
                async with aiohttp.ClientSession() as http, http.get(f"{self.url}/readyz") as answer:
                    return answer.status == 200
            except aiohttp.ClientError:
                return False
        await routers.until(look, 60, "the router becoming ready", self.log)

    async def post_workflow_run(self, delivery: str) -> None:
        body = WORKFLOW_RUN.read_bytes()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
                   "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature}
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}/webhooks/github", data=body,
                                                              headers=headers) as answer:
            assert answer.status == 202, await answer.text()

    async def reported(self, run_id: str) -> dict:
        """The run's state once ``githubCheckRun`` has completed ``finished`` (as ``runs show`` has it)."""
        settings = settings_mod.load(env={"TRIGGER_ROUTER_NATS__URL": self.nats_url})
        async with routers.connected(self.nats_url) as nc:
            async def look():
                state = await queries.get_run(nc.js, settings, run_id)
                progress = (state or {}).get("reports", [])[1:]
                return state if progress and progress[0].get("stage") == "finished" else None
            return await routers.until(look, 60, "githubCheckRun reporting finished", self.log)

    def runs_show(self, run_id: str) -> dict:
        env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": self.nats_url}
        done = subprocess.run([sys.executable, "-m", "router.cli", "runs", "show", run_id], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self) -> None:
        routers.stop_router(self.process)


def run_of(delivery: str) -> str:
    payload = json.loads(WORKFLOW_RUN.read_text())
    trigger = events.make({"id": delivery, "source": payload["repository"]["html_url"],
                           "type": "com.github.workflow_run.completed"}, payload)
    return runs.run_id(RULE, trigger)


@pytest.fixture
def start(nats_server, free_port, tmp_path, github, target):
    started: list[Router] = []

    async def start(path: str = "health") -> Router:
        router = Router(nats_server.url, free_port, tmp_path, github, target, path)
        started.append(router)
        await router.ready()
        return router

    yield start
    for router in started:
        router.stop()


def check_run_writes(github: GithubApi) -> list[tuple]:
    return [(r.method, r.path, r.status, (r.json or {}).get("status"), (r.json or {}).get("conclusion"))
            for r in github.requests if r.method in ("POST", "PATCH") and "/check-runs" in r.path]


async def test_a_passing_probe_is_a_check_run_in_progress_then_success_on_head_sha(start, github):
    router = await start()
    delivery = str(uuid.uuid4())
    await router.post_workflow_run(delivery)
    state = await router.reported(run_of(delivery))

    (run,) = github.check_runs.values()
    assert check_run_writes(github) == [
        ("POST", f"/repos/{REPOSITORY}/check-runs", 201, "in_progress", None),
        ("PATCH", f"/repos/{REPOSITORY}/check-runs/{run['id']}", 200, "completed", "success")]
    assert (run["head_sha"], run["name"], run["external_id"], run["details_url"], run["conclusion"]) == (
        HEAD_SHA, "smoke", run_of(delivery), f"https://ci.example/runs/{delivery}", "success")
    assert len(github.calls("POST", "/app/installations/77/access_tokens")) == 1  # signed in as the App, once
    assert "| ✅ | health |" in run["output"]["summary"]
    progress = state["reports"][1]
    assert [(a["stage"], a["result"]) for a in progress["attempts"]] == [("started", "ok"), ("finished", "ok")]
    assert state["reports"][0]["commit"]["sha"] == HEAD_SHA and state["outcome"] == "success"


async def test_a_failing_probe_is_conclusion_failure_with_the_reason(start, github):
    router = await start("broken")
    delivery = str(uuid.uuid4())
    await router.post_workflow_run(delivery)
    state = await router.reported(run_of(delivery))
    (run,) = github.check_runs.values()
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert "status 503 not in [200]" in run["output"]["summary"] and "| ❌ | health |" in run["output"]["summary"]
    assert state["outcome"] == "failure"


async def test_a_rate_limited_check_run_is_retried_after_retry_after_and_the_outcome_stands(start, github):
    github.limit(1, status=429, method="POST", path=r"/check-runs$", retry_after=2)
    router = await start()
    delivery = str(uuid.uuid4())
    await router.post_workflow_run(delivery)
    await router.reported(run_of(delivery))

    limited = next(r for r in github.requests if r.status == 429)
    after = [r for r in github.requests if r.time > limited.time]
    assert after and min(r.time for r in after) - limited.time >= 2.0, [(r.method, r.path, r.time) for r in after]
    (run,) = github.check_runs.values()  # one check run, however the stages interleaved
    assert (run["status"], run["conclusion"], run["external_id"]) == ("completed", "success", run_of(delivery))
    shown = router.runs_show(run_of(delivery))
    assert (shown["state"], shown["outcome"]) == ("finished", "success")
    attempts = shown["reports"][1]["attempts"]
    assert attempts[0]["result"] == "retry" and "rate limit" in attempts[0]["detail"]
    assert attempts[-1] == {**attempts[-1], "stage": "finished", "result": "ok"}


async def test_a_private_key_that_is_not_a_key_stops_serve_with_one_line(nats_server, free_port, tmp_path):
    (tmp_path / "app.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nnot-really-a-key-0123\n-----END RSA PRIVATE KEY-----\n")
    process = routers.start_router(nats_server.url, routers.exec_rule(tmp_path, tmp_path / "exec.log"), free_port,
                                   tmp_path, "router", REPORTERS__GITHUB__APP_ID=str(APP_ID),
                                   REPORTERS__GITHUB__PRIVATE_KEY_FILE=str(tmp_path / "app.pem"))
    try:
        process.wait(60)
    finally:
        routers.stop_router(process)
    output = (tmp_path / "router.log").read_text()
    assert process.returncode == 2, output
    (line,) = [line for line in output.splitlines() if "error" in line.lower()]
    assert line.startswith("trigger-router: error: reporters.github.private_key: "), output
    assert "not-really-a-key-0123" not in output and "Traceback" not in output
