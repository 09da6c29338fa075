"""``githubCheckRun``: a run's progress and verdict as a GitHub check run on the run's commit.

A check run is what branch protection and the pull-request "Checks" tab read, so a deployment's
smoke test can gate a merge or a promotion like any CI job. At ``started`` the check run is created
``in_progress``; at ``finished`` it is completed with a conclusion and a Markdown summary of every
check the action ran. How an outcome becomes a conclusion (GitHub's set: success, failure,
neutral, cancelled, skipped, timed_out, action_required):

- ``success`` → ``success``, or ``neutral`` when the action verified nothing (no checks at all):
  neither green nor red, because nothing was looked at;
- ``failure`` → ``failure``;
- ``error`` → ``failure``: the verification could not run (bad parameters, an unreachable cluster),
  so nothing shows the deployment works, and a required check must not pass. (``neutral`` would:
  branch protection counts neutral as passing.) The title says it was an error, not a finding;
- ``cancel`` → ``cancelled`` (a newer run replaced this one).

Repeats make no second check run: the run id is the check run's ``external_id``, and with no
check-run id stored for the run (``started`` never reported, or its answer lost) the commit's
check runs of that name are searched for it before one is created; a stage already done is not
sent again.
"""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import Field

from handlers.reporters import github_api, github_app
from router import plugins
from router.plugins import reporters

SUMMARY_LIMIT = 65535
"""GitHub's maximum for ``output.summary`` (and ``output.text``), in characters."""
TITLE_LIMIT = 250

CONCLUSIONS = {"success": "success", "failure": "failure", "error": "failure", "cancel": "cancelled"}
ICONS = {True: "✅", False: "❌"}


class CheckRun(plugins.Params):
    name: str | None = Field(None, min_length=1, max_length=200)
    """The check run's name in GitHub's UI (and for branch protection); default: the rule's name."""
    details_url: str | None = Field(None, alias="detailsUrl")
    """Where "Details" links to (templated: ``https://ci.example/runs/{{ id }}``); default: the App's page."""
    title: str | None = Field(None, max_length=TITLE_LIMIT)
    """The output's title; default: the outcome and the run's reason."""


def conclusion(outcome: str, checks: list[dict[str, Any]]) -> str:
    if outcome == "success" and not checks:
        return "neutral"
    return CONCLUSIONS[outcome]


def _cell(value: Any) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def summary(context: reporters.Context, limit: int = SUMMARY_LIMIT) -> str:
    """The run's reason, one table row per check, and where to see the rest, within ``limit``."""
    result = context.result
    assert result is not None
    head = f"**{result.outcome}**" + (f": {_cell(result.reason)}" if result.reason else "") + "\n\n"
    foot = (f"\n\nRun `{context.run_id}` of rule `{context.rule}` ({context.action}), "
            f"{context.run_attempts} attempt(s), {context.duration:.1f} s: `trigger-router runs show {context.run_id}`.")
    rows = ["| | check | detail |", "|---|---|---|"] if result.checks else []
    budget = limit - len(head) - len(foot) - 80  # room for the "not shown" line
    used = sum(len(r) + 1 for r in rows)
    for index, check in enumerate(result.checks):
        detail = check.get("detail") or check.get("error") or ""
        row = f"| {ICONS[bool(check.get('passed'))]} | {_cell(check.get('name', f'check {index + 1}'))} | {_cell(detail)} |"
        if used + len(row) + 1 > budget:
            rows.append(f"\n… {len(result.checks) - index} more check(s) not shown (the summary is limited to "
                        f"{limit} characters)")
            break
        rows.append(row)
        used += len(row) + 1
    text = head + ("\n".join(rows) if rows else "No checks were run.") + foot
    return text[:limit]


def _title(params: CheckRun, context: reporters.Context) -> str:
    if params.title:
        return params.title
    result = context.result
    if result is None:
        return "Verifying"
    label = "error (could not verify)" if result.outcome == "error" else result.outcome
    return github_api.short(f"{label}: {result.reason}" if result.reason else label, TITLE_LIMIT)


async def _find(app: github_app.App, context: reporters.Context, repository: str, sha: str, name: str) -> dict | None:
    """This run's check run on the commit, if an earlier attempt created it."""
    found = await app.call(context, "GET", repository, f"/commits/{sha}/check-runs", app_only=True,
                           query={"check_name": name, "filter": "all", "per_page": "100"})
    for run in (found or {}).get("check_runs") or []:
        if isinstance(run, dict) and run.get("external_id") == context.run_id:
            return run
    return None


def _time(context: reporters.Context) -> str | None:
    """The stage's time as GitHub writes timestamps (``YYYY-MM-DDTHH:MM:SSZ``): the outcome event's,
    so a repeated report sends the same one."""
    value = context.outcome.attributes.get("time") if context.outcome is not None else None
    try:
        when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@plugins.reporter("githubCheckRun", params=CheckRun, reacts=("started", "finished"))
async def report(params: CheckRun, context: reporters.Context, state: dict) -> dict | None:
    commit = github_api.commit_of(context)
    app = github_app.current()
    name = params.name or context.rule
    if state.get("completed") or (context.stage == "started" and state.get("id")):
        return None  # this stage (or a later one) is on GitHub already
    check_id = state.get("id")
    if check_id is None:
        existing = await _find(app, context, commit.repository, commit.sha, name)
        if existing is not None:
            check_id = existing["id"]
            if existing.get("status") == "completed" or context.stage == "started":
                return {"id": check_id, "completed": existing.get("status") == "completed"}
    body: dict[str, Any] = {"name": name}
    if params.details_url:
        body["details_url"] = params.details_url
    if context.stage == "started":
        body.update(status="in_progress", output={"title": _title(params, context), "summary": (
            f"Verifying with `{context.action}` (rule `{context.rule}`, run `{context.run_id}`).")})
        if _time(context):
            body["started_at"] = _time(context)
    else:
        result = context.result
        if result is None:
            raise plugins.errors.PermanentError("finished was reported without the run's result")
        body.update(status="completed", conclusion=conclusion(result.outcome, result.checks),
                    output={"title": _title(params, context), "summary": summary(context)})
        if _time(context):
            body["completed_at"] = _time(context)
    if check_id is None:
        body.update(head_sha=commit.sha, external_id=context.run_id)
        created = await app.call(context, "POST", commit.repository, "/check-runs", body=body, app_only=True)
        check_id = (created or {}).get("id")
    else:
        await app.call(context, "PATCH", commit.repository, f"/check-runs/{check_id}", body=body, app_only=True)
    return {"id": check_id, "completed": context.stage == "finished"}
