"""``githubStatus`` and ``githubDeploymentStatus`` against the contract server.

States expected are GitHub's (commit status: error/failure/pending/success; deployment status:
in_progress/success/failure/error/...), as the reporters' docstrings map outcomes onto them.
"""

from __future__ import annotations

import pydantic
import pytest

from handlers.reporters import github_deployment_status, github_status
from router.model import outcomes
from router.plugins import reporters
from tests.unit.handlers.reporters.conftest import DEPLOYMENT, WORKFLOW_REPO, WORKFLOW_SHA, context, report

DEPLOYMENT_ID = 145988746  # deployment.id of the fixture
PAT = "github_pat_test_only_0123456789"


async def test_commit_status_is_pending_then_the_verdict(github):
    params = {"targetUrl": "https://ci.example/runs/1"}
    state: dict = {}
    for stage in ("queued", "started", "finished"):
        state = await report("githubStatus", params, context(stage), state) or state
    assert [(s["state"], s["context"], s["sha"], s["target_url"]) for s in github.api.statuses] == [
        ("pending", "trigger-router/smoke-web", WORKFLOW_SHA, "https://ci.example/runs/1"),
        ("pending", "trigger-router/smoke-web", WORKFLOW_SHA, "https://ci.example/runs/1"),
        ("success", "trigger-router/smoke-web", WORKFLOW_SHA, "https://ci.example/runs/1"),
    ]
    assert github.api.calls("POST", f"/repos/{WORKFLOW_REPO}/statuses/{WORKFLOW_SHA}")


@pytest.mark.parametrize("outcome,state", [("success", "success"), ("failure", "failure"),
                                           ("error", "error"), ("cancel", "error")])
async def test_commit_status_states_per_outcome(github, outcome, state):
    await report("githubStatus", {"context": "deploy/smoke"}, context("finished", outcomes.Result(outcome, "x")))
    assert [(s["state"], s["context"]) for s in github.api.statuses] == [(state, "deploy/smoke")]


async def test_a_long_reason_is_cut_to_140_characters(github):
    await report("githubStatus", {}, context("finished", outcomes.Result("failure", "no " * 200)))
    (status,) = github.api.statuses  # the server refuses a description over 140 characters
    assert len(status["description"]) == github_status.DESCRIPTION_LIMIT and status["description"].endswith("…")


async def test_a_stage_already_posted_is_not_posted_again(github):
    state = await report("githubStatus", {}, context("started"))
    assert await report("githubStatus", {}, context("started"), state) is None
    assert len(github.api.statuses) == 1


async def test_commit_status_with_a_personal_token_instead_of_the_app(github):
    github.configure(app_id="", private_key_file="", token=PAT)
    await report("githubStatus", {}, context("finished"))
    assert [s["state"] for s in github.api.statuses] == ["success"]
    assert github.api.calls(path="/app/") == [] and github.api.requests[0].headers["Authorization"] == f"Bearer {PAT}"


async def test_deployment_status_in_progress_then_success(github):
    params = {"environmentUrl": "https://web.example", "logUrl": "https://ci.example/runs/1"}
    state = await report("githubDeploymentStatus", params, context("started", event=DEPLOYMENT))
    await report("githubDeploymentStatus", params, context("finished", event=DEPLOYMENT), state)
    posted = github.api.deployment_statuses[DEPLOYMENT_ID]
    assert [(s["state"], s["environment_url"], s["log_url"]) for s in posted] == [
        ("in_progress", "https://web.example", "https://ci.example/runs/1"),
        ("success", "https://web.example", "https://ci.example/runs/1")]
    assert github.api.calls("POST", f"/repos/Codertocat/Hello-World/deployments/{DEPLOYMENT_ID}/statuses")


@pytest.mark.parametrize("outcome,state", [("failure", "failure"), ("error", "error"), ("cancel", "error")])
async def test_deployment_status_states_per_outcome(github, outcome, state):
    await report("githubDeploymentStatus", {"environment": "production"},
                 context("finished", outcomes.Result(outcome, "why"), event=DEPLOYMENT))
    assert [(s["state"], s["environment"]) for s in github.api.deployment_statuses[DEPLOYMENT_ID]] \
        == [(state, "production")]


async def test_deployment_status_of_a_deployment_status_trigger(github):
    await report("githubDeploymentStatus", {}, context("started", event=("deployment_status/payload.json",
                                                                         "deployment_status")))
    assert [s["state"] for s in github.api.deployment_statuses[DEPLOYMENT_ID]] == ["in_progress"]


async def test_a_run_without_a_deployment_is_skipped_with_why(github):
    with pytest.raises(reporters.Skip, match="com.github.workflow_run.completed, not a GitHub deployment"):
        await report("githubDeploymentStatus", {}, context("started"))
    assert github.api.requests == []


def test_unknown_params_are_errors():
    with pytest.raises(pydantic.ValidationError):
        github_status.Status.model_validate({"state": "success"})
    with pytest.raises(pydantic.ValidationError):
        github_deployment_status.DeploymentStatus.model_validate({"environment_url": "x", "autoInactive": True})
