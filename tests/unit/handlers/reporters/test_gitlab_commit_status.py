"""gitlabCommitStatus against the GitLab contract server: states per stage, repeats, limits, refusals.

The expected GitLab states and messages are written from the README and GitLab's API docs, not read
from the reporter: queued → pending, started → running, finished success → success, failure and
error → failed, cancel → canceled.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest

from handlers.reporters import gitlab_commit_status as gitlab
from router.config import settings as settings_mod
from router.plugins import commits, errors, events, reporters
from router.plugins.actions import Result
from tests.support.gitlab_api import GitLabAPI

TOKEN = "glpat-contract-test-token-0123456789"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
PROJECT = "group/sub/app"
COMMIT = commits.Commit("gitlab", PROJECT, SHA, "label org.opencontainers.image.revision of sha256:ab… in r/app")


@pytest.fixture
async def api():
    async with GitLabAPI(tokens={TOKEN: None, "glpat-read-only": {"other/project"}}) as server:
        server.project(PROJECT)
        server.project("other/project")
        yield server


@pytest.fixture
def configured(api):
    def configure(token: str | None = TOKEN, **extra: str) -> None:
        env = {"TRIGGER_ROUTER_REPORTERS__GITLAB__URL": api.url, "TRIGGER_ROUTER_REPORTERS__GITLAB__TIMEOUT": "2s",
               **{f"TRIGGER_ROUTER_REPORTERS__GITLAB__{k.upper()}": v for k, v in extra.items()}}
        if token is not None:
            env["TRIGGER_ROUTER_REPORTERS__GITLAB__TOKEN"] = token
        gitlab.configure(settings_mod.load(env=env))

    configure()
    yield configure
    gitlab.configure(settings_mod.load(env={}))


def context(stage: str, outcome: str | None = None, commit: commits.Commit | None = COMMIT,
            why: str = "found", reason: str = "2 check(s) passed") -> reporters.Context:
    trigger = events.make({"id": "1", "source": "https://registry.example/app",
                           "type": "dev.cdevents.artifact.published.0.3.0"}, {})
    return reporters.Context(stage=stage, run_id="run-1", rule="web-smoke", action="httpProbe",
                             environment="staging", trigger=trigger, outcome=trigger, commit=commit,
                             commit_why=why, result=Result(outcome, reason) if outcome else None)


def params(**values) -> gitlab.GitLabStatus:
    return gitlab.GitLabStatus.model_validate(values)


@pytest.mark.parametrize("stage, outcome, state", [
    ("queued", None, "pending"),
    ("started", None, "running"),
    ("finished", "success", "success"),
    ("finished", "failure", "failed"),
    ("finished", "error", "failed"),
    ("finished", "cancel", "canceled"),
])
async def test_each_stage_posts_its_gitlab_state(api, configured, stage, outcome, state):
    stored = await gitlab.report(params(targetUrl="https://ci.example/runs/1"), context(stage, outcome), {})
    assert stored["state"] == state
    [request] = api.requests
    assert request["method"] == "POST"
    assert request["path"] == f"/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}"
    assert request["headers"]["PRIVATE-TOKEN"] == TOKEN
    assert request["json"]["state"] == state
    assert request["json"]["name"] == "trigger-router/web-smoke"
    assert request["json"]["target_url"] == "https://ci.example/runs/1"
    assert api.states(PROJECT, SHA) == [state]


async def test_a_whole_run_moves_one_status_pending_running_failed(api, configured):
    state: dict = {}
    for stage, outcome in (("queued", None), ("started", None), ("finished", "failure")):
        state = await gitlab.report(params(name="verify/web", ref="main", pipelineId=7), context(stage, outcome),
                                    state) or state
    [status] = api.statuses[(PROJECT, SHA)]
    assert (status["status"], status["name"], status["ref"], status["pipeline_id"]) == ("failed", "verify/web", "main", 7)
    assert status["description"] == "failure: 2 check(s) passed"
    assert [r["json"]["state"] for r in api.requests] == ["pending", "running", "failed"]


async def test_a_repeated_stage_is_done_without_a_second_request(api, configured):
    state = await gitlab.report(params(), context("started"), {})
    assert await gitlab.report(params(), context("started"), state) is None
    assert await gitlab.report(params(), context("queued"), state) is None  # older than what was posted
    assert len(api.requests) == 1


async def test_a_repeat_gitlab_refuses_with_cannot_transition_counts_as_done(api, configured):
    """The reporter's state was lost (a crash before it was stored): GitLab's 400 is the answer."""
    await gitlab.report(params(), context("started"), {})
    again = await gitlab.report(params(), context("started"), {})
    assert again == {"state": "running", "repeated": True}
    assert api.states(PROJECT, SHA) == ["running"]
    assert len(api.requests) == 2


async def test_a_stage_older_than_gitlabs_state_counts_as_done(api, configured):
    await gitlab.report(params(), context("started"), {})
    assert (await gitlab.report(params(), context("queued"), {}))["state"] == "running"
    assert api.states(PROJECT, SHA) == ["running"]


@pytest.mark.parametrize("limit, expected", [({"retry_after": 42}, 42.0), ({"reset_in": 120}, 120.0)])
async def test_429_is_temporary_with_the_delay_gitlab_asked_for(api, configured, limit, expected):
    api.rate_limit(**limit)
    with pytest.raises(errors.TemporaryError) as raised:
        await gitlab.report(params(), context("queued"), {})
    assert raised.value.delay == pytest.approx(expected, abs=2)
    assert "429" in str(raised.value)
    assert (await gitlab.report(params(), context("queued"), {}))["state"] == "pending"  # the next one goes through


@pytest.mark.parametrize("status", [409, 500, 502, 503])
async def test_5xx_and_a_conflict_are_temporary(api, configured, status):
    api.script(status, body='{"message": "try again"}')
    with pytest.raises(errors.TemporaryError, match=f"GitLab answered {status} .*: try again"):
        await gitlab.report(params(), context("queued"), {})


async def test_an_unreachable_gitlab_is_temporary(api, configured):
    configured(URL="http://127.0.0.1:1")
    with pytest.raises(errors.TemporaryError, match="ClientConnectorError"):
        await gitlab.report(params(), context("queued"), {})


@pytest.mark.parametrize("token, project, status, hint", [
    ("glpat-wrong-token-not-known", PROJECT, "401 401 Unauthorized", "wrong, expired or revoked"),
    ("glpat-read-only", PROJECT, "403 403 Forbidden", "api scope"),
    (TOKEN, "nobody/nothing", "404 404 Project Not Found", "org.opencontainers.image.source"),
])
async def test_refusals_are_permanent_and_never_show_the_token(api, configured, caplog, token, project, status, hint):
    configured(token=token)
    caplog.set_level(logging.DEBUG)
    commit = commits.Commit("gitlab", project, SHA, "test")
    with pytest.raises(errors.PermanentError) as raised:
        await gitlab.report(params(), context("queued", commit=commit), {})
    message = str(raised.value)
    assert status in message and hint in message and project in message
    assert token not in message and TOKEN not in message
    assert token not in caplog.text and TOKEN not in caplog.text


async def test_no_token_configured_is_permanent_naming_the_setting(api, configured):
    configured(token=None)
    with pytest.raises(errors.PermanentError, match="reporters.gitlab.token"):
        await gitlab.report(params(), context("queued"), {})
    assert api.requests == []


async def test_no_commit_or_a_github_commit_is_skipped_with_why(api, configured):
    why = "image sha256:ab… in r/app has no label org.opencontainers.image.revision (its labels: none)"
    with pytest.raises(reporters.Skip) as skipped:
        await gitlab.report(params(), context("queued", commit=None, why=why), {})
    assert skipped.value.reason == why
    github = commits.Commit("github", "acme/web", SHA, "data.after of com.github.push")
    with pytest.raises(reporters.Skip, match="on github, not GitLab"):
        await gitlab.report(params(), context("queued", commit=github), {})
    assert api.requests == []


async def test_the_contract_server_refuses_what_gitlab_refuses(api):
    """The server itself: a bad state, no state, no token."""
    url = gitlab.statuses_url(api.url, PROJECT, SHA)
    async with aiohttp.ClientSession() as http:
        for body, token, status, answer in (
                ({"state": "done"}, TOKEN, 400, {"error": "state does not have a valid value"}),
                ({}, TOKEN, 400, {"error": "state is missing"}),
                ({"state": "pending"}, None, 401, {"message": "401 Unauthorized"})):
            async with http.post(url, json=body, headers={"PRIVATE-TOKEN": token} if token else {}) as response:
                assert (response.status, await response.json()) == (status, answer)
