"""``githubStatus``: a run's progress and verdict as a commit status on the run's commit.

Commit statuses are the older, simpler sibling of check runs: one line (a state, a description of
at most 140 characters, a link) per ``context`` name, the newest one winning. Unlike check runs,
they can be written with a plain token (``reporters.github.token_file``), which is why this
reporter exists beside ``githubCheckRun``. ``pending`` is posted at ``queued`` and ``started``;
at ``finished``: success → ``success``, failure → ``failure``, error → ``error`` (the verification
could not run), cancel → ``error`` with "cancelled" in the description (the commit-status API has
no cancelled state, and a required status must not pass on a run that did not finish).

A status is a new record each time it is posted, so a repeat is harmless to GitHub; the stage
already posted is kept in the reporter's state and not sent twice anyway.
"""

from __future__ import annotations

from pydantic import Field

from handlers.reporters import github_api, github_app
from router import plugins
from router.plugins import reporters

DESCRIPTION_LIMIT = 140
"""GitHub's maximum for a commit status's ``description``, in characters."""
STATES = {"success": "success", "failure": "failure", "error": "error", "cancel": "error"}


class Status(plugins.Params):
    context: str | None = Field(None, min_length=1, max_length=255)
    """The status's name on the commit (what branch protection requires); default ``trigger-router/<rule>``."""
    target_url: str | None = Field(None, alias="targetUrl")
    """Where the status links to (templated)."""
    description: str | None = None
    """The line shown beside the state; default: the stage, or the run's reason. Cut to 140 characters."""


def describe(params: Status, context: reporters.Context) -> str:
    if params.description:
        text = params.description
    elif context.result is None:
        text = f"{context.stage}: {context.action} ({context.run_id[:12]})"
    else:
        label = "cancelled" if context.result.outcome == "cancel" else context.result.outcome
        text = f"{label}: {context.result.reason}" if context.result.reason else label
    return github_api.short(text, DESCRIPTION_LIMIT)


@plugins.reporter("githubStatus", params=Status, reacts=("queued", "started", "finished"))
async def report(params: Status, context: reporters.Context, state: dict) -> dict | None:
    commit = github_api.commit_of(context)
    if state.get("posted") == context.stage:
        return None
    if context.stage == "finished":
        if context.result is None:
            raise plugins.errors.PermanentError("finished was reported without the run's result")
        value = STATES[context.result.outcome]
    else:
        value = "pending"
    body = {"state": value, "context": params.context or f"trigger-router/{context.rule}",
            "description": describe(params, context)}
    if params.target_url:
        body["target_url"] = params.target_url
    await github_app.current().call(context, "POST", commit.repository, f"/statuses/{commit.sha}", body=body)
    return {"posted": context.stage, "state": value}
