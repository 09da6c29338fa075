"""``githubCheckRun`` against the contract server: lifecycle, conclusions, repeats, summaries.

Expected requests and conclusions are written from GitHub's Checks API documentation and the
module docstring's table (error -> failure, nothing verified -> neutral), not read off the code.
"""

from __future__ import annotations

import pydantic
import pytest

from handlers.reporters import github_check_run
from router.model import outcomes
from router.plugins import errors, reporters
from tests.unit.handlers.reporters.conftest import RUN_ID, WORKFLOW_REPO, WORKFLOW_SHA, context, report

CHECKS = f"/repos/{WORKFLOW_REPO}/check-runs"


def requests(github) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in github.api.requests]


async def test_started_then_finished_is_one_check_run_in_progress_then_completed(github):
    params = {"name": "smoke", "detailsUrl": "https://ci.example/runs/1"}
    state = await report("githubCheckRun", params, context("started"))
    state = await report("githubCheckRun", params, context("finished"), state)

    assert requests(github) == [
        ("GET", f"/repos/{WORKFLOW_REPO}/installation"),
        ("POST", "/app/installations/1/access_tokens"),
        ("GET", f"/repos/{WORKFLOW_REPO}/commits/{WORKFLOW_SHA}/check-runs"),  # none of this run yet
        ("POST", CHECKS),
        ("PATCH", f"{CHECKS}/{state['id']}"),
    ]
    created, completed = github.api.requests[3].json, github.api.requests[4].json
    assert (created["name"], created["head_sha"], created["status"], created["external_id"], created["details_url"]) \
        == ("smoke", WORKFLOW_SHA, "in_progress", RUN_ID, "https://ci.example/runs/1")
    assert (completed["status"], completed["conclusion"]) == ("completed", "success")
    run = github.api.check_runs[state["id"]]
    assert (run["status"], run["conclusion"], run["head_sha"]) == ("completed", "success", WORKFLOW_SHA)
    assert "GET /health" in run["output"]["summary"] and state == {"id": run["id"], "completed": True}


@pytest.mark.parametrize("outcome,checks,expected", [
    ("success", [{"name": "a", "passed": True}], "success"),
    ("success", [], "neutral"),                       # nothing was verified
    ("failure", [{"name": "a", "passed": False}], "failure"),
    ("error", [], "failure"),                         # could not verify: a required check must not pass
    ("cancel", [], "cancelled"),
])
async def test_outcomes_become_github_conclusions(github, outcome, checks, expected):
    await report("githubCheckRun", {}, context("finished", outcomes.Result(outcome, "why", checks)))
    (run,) = github.api.check_runs.values()
    assert (run["name"], run["conclusion"]) == ("smoke-web", expected)  # name defaults to the rule


async def test_a_failing_check_is_in_the_summary_with_its_reason(github):
    result = outcomes.Result("failure", "1 of 2 check(s) still failing after 3 attempt(s): version: status 404 not in [200]",
                             [{"name": "health", "passed": True}, {"name": "version", "passed": False,
                                                                  "error": "status 404 not in [200]"}])
    await report("githubCheckRun", {"name": "smoke"}, context("finished", result))
    (run,) = github.api.check_runs.values()
    summary = run["output"]["summary"]
    assert run["conclusion"] == "failure" and "still failing after 3 attempt(s)" in summary
    assert "| ❌ | version | status 404 not in [200] |" in summary and "| ✅ | health |  |" in summary
    assert run["output"]["title"].startswith("failure: 1 of 2 check(s)")


async def test_finished_twice_makes_one_check_run_and_one_completion(github):
    state = await report("githubCheckRun", {}, context("finished"))
    again = await report("githubCheckRun", {}, context("finished"), state)
    lost = await report("githubCheckRun", {}, context("finished"))  # the stored state was lost too
    assert len(github.api.calls("POST", "/check-runs$")) == 1 and len(github.api.calls("PATCH")) == 0
    assert again is None and lost == state and len(github.api.check_runs) == 1


async def test_finished_without_started_still_makes_exactly_one_completed_check_run(github):
    state = await report("githubCheckRun", {"title": "Smoke test"}, context("finished"))
    (run,) = github.api.check_runs.values()
    assert (run["status"], run["conclusion"], run["external_id"], run["output"]["title"]) \
        == ("completed", "success", RUN_ID, "Smoke test")
    assert len(github.api.calls("POST", "/check-runs$")) == 1 and state["completed"]


async def test_started_retried_after_a_lost_answer_finds_its_check_run(github):
    await report("githubCheckRun", {}, context("started"))
    state = await report("githubCheckRun", {}, context("started"))  # no state stored from the first
    await report("githubCheckRun", {}, context("finished"), state)
    assert len(github.api.check_runs) == 1 and len(github.api.calls("POST", "/check-runs$")) == 1
    assert next(iter(github.api.check_runs.values()))["conclusion"] == "success"


async def test_another_runs_check_run_of_the_same_name_is_not_taken_over(github):
    await report("githubCheckRun", {}, context("finished", run_id="run-other"))
    await report("githubCheckRun", {}, context("finished"))
    assert sorted(r["external_id"] for r in github.api.check_runs.values()) == sorted(["run-other", RUN_ID])


async def test_the_summary_is_cut_to_githubs_limit_and_says_so(github):
    checks = [{"name": f"check {i}", "passed": False, "error": "x" * 500} for i in range(400)]
    await report("githubCheckRun", {}, context("finished", outcomes.Result("failure", "many", checks)))
    (run,) = github.api.check_runs.values()  # the server refuses a summary over 65535 characters
    summary = run["output"]["summary"]
    assert len(summary) <= github_check_run.SUMMARY_LIMIT and "more check(s) not shown" in summary
    assert summary.endswith(f"`trigger-router runs show {RUN_ID}`.")


async def test_no_commit_or_not_github_is_a_skip_with_why(github):
    no_commit = context("finished", commit=None, commit_why="com.example.push names no commit of its own")
    with pytest.raises(reporters.Skip, match="names no commit"):
        await report("githubCheckRun", {}, no_commit)
    gitlab = context("finished")
    gitlab = context("finished", commit=type(gitlab.commit)("gitlab", "g/p", WORKFLOW_SHA, "data.after"))
    with pytest.raises(reporters.Skip, match="on gitlab, not GitHub"):
        await report("githubCheckRun", {}, gitlab)
    assert github.api.requests == []


async def test_a_token_alone_cannot_write_check_runs(github):
    github.configure(app_id="", private_key_file="", token="github_pat_test_only_0123456789")
    with pytest.raises(errors.PermanentError, match="only Apps write check runs"):
        await report("githubCheckRun", {}, context("started"))


def test_unknown_params_are_errors():
    with pytest.raises(pydantic.ValidationError, match="detailsURL"):
        github_check_run.CheckRun.model_validate({"detailsURL": "https://x"})
