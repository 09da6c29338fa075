"""``githubDeploymentStatus``: a run's verdict as a status of the GitHub deployment that triggered it.

When GitHub itself tracks the deployment (an Actions environment, a ``POST .../deployments``), the
run verifying it belongs on that deployment's timeline: the environment page then shows
"in progress" while the smoke test runs and "success" or "failure" after it. That needs the
deployment's id, so the trigger (or one of a correlated run's joined events) must be a GitHub
``deployment`` or ``deployment_status`` event (``data.deployment.id``); for any other run there is
nothing to report and the reporter says so (``Skip``).

``in_progress`` is posted at ``started``; at ``finished``: success → ``success``, failure →
``failure``, error and cancel → ``error`` (the deployment was not verified). Each stage is posted
once (kept in the reporter's state); a repeat would only add the same line to the timeline again.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from handlers.reporters import github_api, github_app
from router import plugins
from router.plugins import CloudEvent, event_types, reporters

DESCRIPTION_LIMIT = 140
STATES = {"success": "success", "failure": "failure", "error": "error", "cancel": "error"}
DEPLOYMENT_EVENTS = ("deployment", "deployment_status")


class DeploymentStatus(plugins.Params):
    environment_url: str | None = Field(None, alias="environmentUrl")
    """The deployed environment's address (the "View deployment" button), templated."""
    log_url: str | None = Field(None, alias="logUrl")
    """Where the run's details are (templated)."""
    environment: str | None = Field(None, min_length=1)
    """Move the deployment to this environment name (GitHub's ``environment``); default: unchanged."""


def _deployment(event: CloudEvent) -> tuple[int, str] | None:
    """(deployment id, ``owner/repo``) of a GitHub deployment event, or ``None``."""
    if not event.type.startswith(event_types.GITHUB_PREFIX):
        return None
    if event.type[len(event_types.GITHUB_PREFIX):].split(".", 1)[0] not in DEPLOYMENT_EVENTS:
        return None
    try:
        data: Any = event.json()
    except Exception:  # noqa: BLE001 - data that is not JSON names no deployment
        return None
    deployment = data.get("deployment") if isinstance(data, dict) else None
    repository = (data.get("repository") or {}).get("full_name") if isinstance(data, dict) else None
    if isinstance(deployment, dict) and isinstance(deployment.get("id"), int) and isinstance(repository, str):
        return deployment["id"], repository
    return None


def deployment_of(context: reporters.Context) -> tuple[int, str]:
    for event in (context.trigger, *context.joined.values()):
        found = _deployment(event)
        if found is not None:
            return found
    raise reporters.Skip(f"the run was triggered by {context.trigger.type}, not a GitHub deployment or "
                         f"deployment_status event (data.deployment.id)")


@plugins.reporter("githubDeploymentStatus", params=DeploymentStatus, reacts=("started", "finished"))
async def report(params: DeploymentStatus, context: reporters.Context, state: dict) -> dict | None:
    deployment, repository = deployment_of(context)
    if state.get("posted") == context.stage:
        return None
    if context.stage == "finished":
        if context.result is None:
            raise plugins.errors.PermanentError("finished was reported without the run's result")
        value = STATES[context.result.outcome]
        label = "cancelled" if context.result.outcome == "cancel" else context.result.outcome
        text = f"{label}: {context.result.reason}" if context.result.reason else label
    else:
        value, text = "in_progress", f"verifying with {context.action} (rule {context.rule})"
    body: dict[str, Any] = {"state": value, "description": github_api.short(text, DESCRIPTION_LIMIT)}
    for key, given in (("environment_url", params.environment_url), ("log_url", params.log_url),
                       ("environment", params.environment)):
        if given:
            body[key] = given
    await github_app.current().call(context, "POST", repository, f"/deployments/{deployment}/statuses", body=body)
    return {"posted": context.stage, "state": value, "deployment": deployment}
