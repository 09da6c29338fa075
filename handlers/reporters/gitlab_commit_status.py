"""``gitlabCommitStatus``: a run's progress and verdict as a GitLab commit status (issue 16).

``POST <url>/api/v4/projects/<URL-encoded path_with_namespace>/statuses/<sha>`` with a
``PRIVATE-TOKEN`` header, once per stage: ``queued`` → ``pending``, ``started`` → ``running``,
``finished`` → ``success`` / ``failed`` (a failure or an error) / ``canceled``. The status is named
``trigger-router/<rule>`` unless the rule names it, so each rule has its own line in the merge
request's pipeline widget.

GitLab keeps a status with the same (sha, name, ref) while it is pending or running and moves it
through its state machine; posting the state it already has answers ``400 Cannot transition status
via :run from :running``. A repeat is what a redelivered stage sends, so that answer (or one saying
the status is already further along) counts as done, as does a stage whose state this reporter's
stored ``state`` says it already posted: every call is safe to repeat.

429, 409 (a concurrent update of the same status) and 5xx answers are ``TemporaryError`` with the delay GitLab asked for (``Retry-After``, or
``RateLimit-Remaining: 0`` + ``RateLimit-Reset``: ``plugins.ratelimits``); 401/403/404/422 and
other refusals that no retry fixes are ``PermanentError`` naming the project and what to check,
never the token.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from typing import Any

import aiohttp
from pydantic import Field, SecretStr
from yarl import URL

from router import plugins
from router.plugins import Duration, Params, Section, errors, ratelimits, reporters


@plugins.settings_section("reporters.gitlab")
class GitLabSettings(Section):
    url: str = "https://gitlab.com"
    """Base URL of the GitLab instance (self-managed: ``https://gitlab.example.com``, with a relative
    root if it has one). Images whose source label is under it report here."""
    hosts: list[str] = []
    """More hosts (``host[:port]``, or base URLs) whose repository URLs are this GitLab's projects:
    another name of the same instance, an SSH host."""
    token: SecretStr | None = None
    """An access token with the ``api`` scope and at least the Developer role (``token_file``:
    read from a mounted Secret)."""
    timeout: Duration = 10.0
    """Seconds per request to GitLab."""


_settings = GitLabSettings()


@plugins.on_settings("gitlabCommitStatus")
def configure(settings: plugins.Settings) -> None:
    global _settings
    _settings = settings.reporters.gitlab


class GitLabStatus(Params):
    name: str | None = None
    """The status's name (GitLab's ``name``/``context``); default ``trigger-router/<rule>``."""
    target_url: str | None = Field(None, alias="targetUrl")
    description: str | None = None
    """Default: the stage, and for ``finished`` the run's reason."""
    ref: str | None = None
    """The branch or tag the commit is on, for GitLab's per-ref status lists."""
    pipeline_id: int | None = Field(None, alias="pipelineId")
    """Attach the status to this pipeline instead of the commit's latest."""


STARTED = {"queued": "pending", "started": "running"}
FINISHED = {"success": "success", "failure": "failed", "error": "failed", "cancel": "canceled"}
_ORDER = {"pending": 0, "running": 1, "success": 2, "failed": 2, "canceled": 2}
_TRANSITION = re.compile(r"Cannot transition status via :\w+ from :(\w+)")
MAX_DESCRIPTION = 255
"""GitLab stores at most 255 characters of a description."""


def gitlab_state(context: reporters.Context) -> str:
    if context.stage in STARTED:
        return STARTED[context.stage]
    outcome = context.result.outcome if context.result else "error"
    return FINISHED[outcome]


def _description(params: GitLabStatus, context: reporters.Context) -> str:
    if params.description is not None:
        text = params.description
    elif context.stage == "finished" and context.result is not None:
        text = f"{context.result.outcome}: {context.result.reason}" if context.result.reason else context.result.outcome
    else:
        text = f"{context.action} {context.stage}"
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"


def _message(body: str) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(document, dict):
        found = document.get("message", document.get("error", document))
        return found if isinstance(found, str) else json.dumps(found, sort_keys=True)[:200]
    return str(document)[:200]


def statuses_url(base: str, project: str, sha: str) -> URL:
    """The statuses URL, with the project path encoded as GitLab wants it (``group%2Fapp``), kept encoded."""
    return URL(f"{base.rstrip('/')}/api/v4/projects/{urllib.parse.quote(project, safe='')}/statuses/{sha}",
               encoded=True)


@plugins.reporter("gitlabCommitStatus", params=GitLabStatus)
async def report(params: GitLabStatus, context: reporters.Context, state: dict) -> dict | None:
    commit = context.commit
    if commit is None:
        raise reporters.Skip(context.commit_why)
    if commit.provider != "gitlab":
        raise reporters.Skip(f"the run's commit is on {commit.provider}, not GitLab: {commit.describe()}")
    wanted = gitlab_state(context)
    posted = state.get("state")
    if posted == wanted or (posted in _ORDER and _ORDER[posted] > _ORDER[wanted]):
        return None  # a redelivered stage, or an older one arriving late
    settings = _settings
    if settings.token is None:
        raise errors.PermanentError("reporters.gitlab.token (or token_file) is not set: GitLab needs a token "
                                    "with the api scope to set commit statuses")
    body: dict[str, Any] = {"state": wanted, "name": params.name or f"trigger-router/{context.rule}",
                            "description": _description(params, context)}
    for key, value in (("target_url", params.target_url), ("ref", params.ref), ("pipeline_id", params.pipeline_id)):
        if value is not None:
            body[key] = value
    url = statuses_url(settings.url, commit.repository, commit.sha)
    where = f"{commit.repository} @ {commit.sha[:12]} on {settings.url}"
    headers = {"PRIVATE-TOKEN": settings.token.get_secret_value(), "Accept": "application/json"}
    session = context.session
    own = session is None
    if own:
        session = aiohttp.ClientSession()
    try:
        async with session.post(url, json=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=settings.timeout)) as response:
            status, answer_headers, text = response.status, dict(response.headers), await response.text()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise errors.TemporaryError(f"GitLab commit status for {where} not set: "
                                    f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from exc
    finally:
        if own:
            await session.close()
    if status in (200, 201):
        try:
            created = json.loads(text)
        except ValueError:
            created = {}
        return {"state": wanted, "id": created.get("id") if isinstance(created, dict) else None}
    message = _message(text)
    if status == 400:
        already = _TRANSITION.search(message)
        if already and already.group(1) in _ORDER and _ORDER[already.group(1)] >= _ORDER[wanted]:
            return {"state": already.group(1) if _ORDER[already.group(1)] > _ORDER[wanted] else wanted,
                    "repeated": True}
    if status in (409, 429) or status >= 500:  # 409: the same status updated concurrently (a racing router)
        raise errors.TemporaryError(f"GitLab answered {status} for the commit status of {where}: {message}",
                                    delay=ratelimits.delay(status, answer_headers, text))
    raise errors.PermanentError(f"GitLab refused the commit status {wanted!r} for {where}: {status} {message}"
                                f"{_HINTS.get(status, '')}")


_HINTS = {
    401: " (the token in reporters.gitlab.token is wrong, expired or revoked)",
    403: " (the token needs the api scope and at least the Developer role in the project)",
    404: " (no such project or commit there, or the token cannot see the project: check the image's "
         "org.opencontainers.image.source label and reporters.gitlab.url)",
}
