"""The GitHub reporters called directly, against the local GitHub contract server.

``github`` starts the server with a freshly generated App key pair (the private key written to a
file, as an operator mounts it) and points ``reporters.github`` at it; :func:`context` builds the
``reporters.Context`` the core would pass, from the real webhook payloads in ``shared/fixtures``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handlers.reporters import github_app
from router.config import settings as config
from router.model import commits, events, outcomes
from router.plugins import catalog, reporters
from tests.support.github_api import GithubApi, generate_key

FIXTURES = Path(__file__).resolve().parents[4].parent / "shared" / "fixtures" / "github"
APP_ID = 424242
RUN_ID = "run-7f3c2a9e41d0b5c6"
WORKFLOW_SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"  # workflow_run.head_sha of the fixture
WORKFLOW_REPO = "octo-org/octo-repo"


def trigger(fixture: str, event: str) -> events.CloudEvent:
    payload = json.loads((FIXTURES / fixture).read_text())
    kind = f"com.github.{event}" + (f".{payload['action']}" if isinstance(payload.get("action"), str) else "")
    return events.make({"id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                        "source": payload["repository"]["html_url"], "type": kind}, payload)


WORKFLOW_RUN = ("workflow_run/completed.payload.json", "workflow_run")
DEPLOYMENT = ("deployment/payload.json", "deployment")


def context(stage: str, result: outcomes.Result | None = None, *, event: tuple[str, str] = WORKFLOW_RUN,
            run_id: str = RUN_ID, rule: str = "smoke-web", **extra: Any) -> reporters.Context:
    cause = trigger(*event)
    commit, why = commits.of(cause)
    if stage == "finished" and result is None:
        result = outcomes.Result("success", "1 check(s) passed", [{"name": "GET /health", "passed": True}])
    outcome = outcomes.build(stage, run_id=run_id, rule=rule, action="httpProbe", environment="prod",
                             trigger=cause, result=result, attempts=1, duration=1.5)
    fields: dict[str, Any] = dict(stage=stage, run_id=run_id, rule=rule, action="httpProbe", environment="prod",
                                  trigger=cause, outcome=outcome, commit=commit, commit_why=why, result=result,
                                  run_attempts=1, duration=1.5)
    fields.update(extra)
    return reporters.Context(**fields)


def reporter(name: str):
    return catalog.load().reporters[name]


async def report(name: str, params: dict, ctx: reporters.Context, state: dict | None = None) -> dict | None:
    """As the core calls a reporter: params validated by its model, the stored state passed in."""
    entry = reporter(name)
    return await entry.run(entry.params.model_validate(params), ctx, state or {})


@dataclass
class Github:
    api: GithubApi
    key_file: Path
    tmp_path: Path

    def configure(self, **settings: str) -> github_app.App:
        env = {"TRIGGER_ROUTER_REPORTERS__GITHUB__API_URL": self.api.url,
               "TRIGGER_ROUTER_REPORTERS__GITHUB__APP_ID": str(APP_ID),
               "TRIGGER_ROUTER_REPORTERS__GITHUB__PRIVATE_KEY_FILE": str(self.key_file),
               **{f"TRIGGER_ROUTER_REPORTERS__GITHUB__{k.upper()}": v for k, v in settings.items()}}
        env = {k: v for k, v in env.items() if v != ""}
        return github_app.configure(config.load(None, env=env).reporters.github)


@pytest.fixture
async def github(tmp_path):
    key = generate_key(tmp_path / "app.pem")
    api = await GithubApi(APP_ID, key.public_key(), personal_token="github_pat_test_only_0123456789").start()
    hub = Github(api, tmp_path / "app.pem", tmp_path)
    hub.configure()
    try:
        yield hub
    finally:
        github_app.configure(github_app.GithubSettings())
        await api.stop()
