"""One request to GitHub's REST API and the one reading of its answer, for the GitHub reporters.

Every GitHub reporter talks to the API the same way, so what an answer means is decided here
once: a rate limit (primary: 403/429 with ``x-ratelimit-remaining: 0``; secondary: 403/429 with
``retry-after`` or only GitHub's message) is a ``TemporaryError`` carrying the wait GitHub asked
for (:mod:`router.plugins.ratelimits`), so the stage is retried no earlier; a 5xx, a timeout or a
refused connection is temporary; any other 4xx (no permission, no such repository, a 422) cannot
succeed by asking again and is a ``PermanentError`` with GitHub's own ``message``. Errors name the
request (method and path), never a header: the ``Authorization`` value is a secret.

Also where a run's repository comes from: the run's commit (``context.commit``) when it is on
GitHub, else :class:`~router.plugins.reporters.Skip` with why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import aiohttp

from router.plugins import commits, errors, ratelimits, reporters

log = logging.getLogger(__name__)

USER_AGENT = "trigger-router"
"""GitHub refuses requests without a User-Agent; this one names us in the App's audit log."""
API_VERSION = "2022-11-28"
MESSAGE_LIMIT = 300
"""Characters of GitHub's ``message`` kept in an error (a 422 can list many field errors)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None

    def message(self) -> str:
        """GitHub's ``message`` (and field errors of a 422), or the start of the body."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            text = data["message"]
            details = [e.get("message") or f"{e.get('field')} {e.get('code')}"
                       for e in data.get("errors") or [] if isinstance(e, dict)]
            if details:
                text += ": " + "; ".join(str(d) for d in details)
        else:
            text = self.text.strip() or "(empty body)"
        return text[:MESSAGE_LIMIT]


@contextlib.asynccontextmanager
async def session(context: reporters.Context) -> AsyncIterator[aiohttp.ClientSession]:
    """The core's shared session, or one of our own for this report (a reporter called directly)."""
    if context.session is not None:
        yield context.session
        return
    async with aiohttp.ClientSession() as own:
        yield own


async def send(http: aiohttp.ClientSession, method: str, url: str, *, authorization: str,
               timeout: float, body: Any = None, query: Mapping[str, str] | None = None) -> Answer:
    """One request; a connection that fails or times out is a ``TemporaryError``."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
               "User-Agent": USER_AGENT, "Authorization": authorization}
    try:
        async with http.request(method, url, headers=headers, json=body, params=query,
                                timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=True) as response:
            text = await response.text(errors="replace")
            answer = Answer(response.status, dict(response.headers), text)
    except asyncio.TimeoutError as exc:
        raise errors.TemporaryError(f"{method} {_path(url)}: GitHub did not answer within {timeout:g} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise errors.TemporaryError(f"{method} {_path(url)}: cannot reach GitHub: {exc.__class__.__name__}") from exc
    log.debug("GitHub %s %s -> %d", method, _path(url), answer.status)
    return answer


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url


def refuse(answer: Answer, what: str) -> errors.DispatchError:
    """The error an answer of 400 or more means (returned, for the caller to raise)."""
    wait = ratelimits.delay(answer.status, answer.headers, answer.text)
    if wait is not None:
        return errors.TemporaryError(f"{what}: GitHub rate limit ({answer.status} {answer.message()}); "
                                     f"retry in {wait:.0f} s", delay=wait)
    if answer.status >= 500 or answer.status == 408:
        return errors.TemporaryError(f"{what}: GitHub answered {answer.status}: {answer.message()}")
    return errors.PermanentError(f"{what}: GitHub answered {answer.status}: {answer.message()}")


def commit_of(context: reporters.Context) -> commits.Commit:
    """The run's commit if it is on GitHub; otherwise there is nothing to report there."""
    commit = context.commit
    if commit is None:
        raise reporters.Skip(context.commit_why or "the run names no commit")
    if commit.provider != "github":
        raise reporters.Skip(f"the run's commit is on {commit.provider}, not GitHub: {commit.describe()}")
    return commit


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (GitHub refuses a longer description)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
