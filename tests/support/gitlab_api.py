"""A GitLab commit-status API that holds the reporter to GitLab's contract: tokens, fields, transitions.

Written from GitLab's API documentation (``POST /projects/:id/statuses/:sha``) and from what its
``commit_statuses`` endpoint does: a status is found by (sha, name, ref) only while it is
``pending`` or ``running``, otherwise a new one is created, and the state machine moves it with
``enqueue`` (→ pending), ``run`` (pending → running), ``success``, ``drop`` (→ failed) and
``cancel``; a move it cannot make answers 400 with the state machine's message, so posting the state
a status already has (``running`` twice) is ``Cannot transition status via :run from :running``.

- ``PRIVATE-TOKEN`` (or ``Authorization: Bearer``) must be one of ``tokens``: else 401
  ``{"message": "401 Unauthorized"}``; a token without write access to the project: 403.
- ``:id`` is a numeric id or the URL-encoded ``path_with_namespace`` (checked in the raw path:
  ``group/app`` unencoded would be another route at GitLab, a 404 here too).
- ``state`` is required and one of ``pending running success failed canceled`` (400 as Grape
  words it), ``name`` (or ``context``) defaults to ``default``.
- Every request is recorded (method, raw path, JSON body, headers, time); :meth:`script` makes the
  next N requests answer something else, e.g. 429 with ``Retry-After`` or ``RateLimit-*``.
"""

from __future__ import annotations

import itertools
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

STATES = ("pending", "running", "success", "failed", "canceled")
EVENTS = {"pending": "enqueue", "running": "run", "success": "success", "failed": "drop", "canceled": "cancel"}
# event -> states it may start from (GitLab's CommitStatus state machine, the parts the API uses)
FROM = {"enqueue": ("created",), "run": ("pending",), "success": ("created", "pending", "running"),
        "drop": ("created", "pending", "running"), "cancel": ("created", "pending", "running")}
TO = {"enqueue": "pending", "run": "running", "success": "success", "drop": "failed", "cancel": "canceled"}
_SHA = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def transition_error(event: str, state: str) -> str:
    return f'Cannot transition status via :{event} from :{state} (Reason(s): Status cannot transition via "{event}")'


@dataclass
class Project:
    id: int
    path: str
    shas: set[str] | None = None
    """Commits that exist; ``None``: any full sha does."""


@dataclass
class GitLabAPI:
    tokens: dict[str, set[str] | None] = field(default_factory=dict)
    """token -> project paths it may write to (``None``: every project)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    """(project path, sha) -> every status created there, oldest first."""

    def __post_init__(self) -> None:
        self.projects: dict[str, Project] = {}
        self._ids = itertools.count(1)
        self._scripted: list[tuple[int, dict[str, str], str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    def project(self, path: str, shas: set[str] | None = None) -> Project:
        self.projects[path] = Project(len(self.projects) + 1, path, shas)
        return self.projects[path]

    def script(self, status: int, count: int = 1, headers: dict[str, str] | None = None, body: str = "") -> None:
        """Answer the next ``count`` requests with ``status`` (before any check, as a proxy or Rack::Attack would)."""
        self._scripted += [(status, dict(headers or {}), body)] * count

    def rate_limit(self, count: int = 1, *, retry_after: int | None = None, reset_in: int | None = None) -> None:
        """429 ``Retry later`` like GitLab's throttle: ``Retry-After``, or ``RateLimit-Remaining: 0`` + reset epoch."""
        headers = {"RateLimit-Limit": "600", "RateLimit-Observed": "601", "Content-Type": "text/plain"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if reset_in is not None:
            reset = int(time.time()) + reset_in
            headers.update({"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset),
                            "RateLimit-ResetTime": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(reset))})
        self.script(429, count, headers, "Retry later\n")

    def states(self, project: str, sha: str, name: str | None = None) -> list[str]:
        return [s["status"] for s in self.statuses.get((project, sha), []) if name is None or s["name"] == name]

    # -- server ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(r"/api/v4/projects/{id:[^/]+}/statuses/{sha}", self._post)
        app.router.add_get(r"/api/v4/projects/{id:[^/]+}/repository/commits/{sha}/statuses", self._list)
        return app

    async def __aenter__(self) -> "GitLabAPI":
        self.runner = web.AppRunner(self.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _project(self, request: web.Request) -> Project | None:
        # The raw path, not the decoded match: GitLab wants the path encoded (group%2Fapp).
        raw = request.raw_path.split("/api/v4/projects/", 1)[1].split("/", 1)[0]
        key = urllib.parse.unquote(raw)
        if key.isdigit():
            return next((p for p in self.projects.values() if p.id == int(key)), None)
        return self.projects.get(key)

    async def _record(self, request: web.Request) -> dict[str, Any]:
        entry: dict[str, Any] = {"method": request.method, "path": request.raw_path, "headers": dict(request.headers),
                                 "time": time.time(), "json": None}
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    entry["json"] = await request.json()
                except ValueError:
                    entry["json"] = "<not JSON>"
            else:
                entry["json"] = dict(await request.post())
        self.requests.append(entry)
        return entry

    def _refusal(self, request: web.Request, project: Project | None) -> web.Response | None:
        token = request.headers.get("PRIVATE-TOKEN") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return web.json_response({"message": "401 Unauthorized"}, status=401)
        if project is None:
            return web.json_response({"message": "404 Project Not Found"}, status=404)
        allowed = self.tokens[token]
        if allowed is not None and project.path not in allowed:
            return web.json_response({"message": "403 Forbidden"}, status=403)
        return None

    async def _post(self, request: web.Request) -> web.Response:
        entry = await self._record(request)
        if self._scripted:
            status, headers, body = self._scripted.pop(0)
            return web.Response(status=status, headers=headers, text=body)
        project = self._project(request)
        refused = self._refusal(request, project)
        if refused is not None:
            return refused
        sha = request.match_info["sha"]
        if not _SHA.match(sha) or (project.shas is not None and sha not in project.shas):
            return web.json_response({"message": "404 Commit Not Found"}, status=404)
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        state = body.get("state")
        if state in (None, ""):
            return web.json_response({"error": "state is missing"}, status=400)
        if state not in STATES:
            return web.json_response({"error": "state does not have a valid value"}, status=400)
        for key in ("name", "context", "ref", "target_url", "description"):
            if key in body and not isinstance(body[key], str):
                return web.json_response({"error": f"{key} is invalid"}, status=400)
        if "pipeline_id" in body and not isinstance(body["pipeline_id"], int):
            return web.json_response({"error": "pipeline_id is invalid"}, status=400)
        if body.get("target_url") and not re.match(r"^https?://", body["target_url"]):
            return web.json_response({"message": {"target_url": ["is blocked: Only allowed schemes are http, https"]}},
                                     status=400)
        name = body.get("name") or body.get("context") or "default"
        ref = body.get("ref")
        kept = self.statuses.setdefault((project.path, sha), [])
        status = next((s for s in reversed(kept) if s["name"] == name and s["ref"] == ref
                       and s["status"] in ("pending", "running")), None)
        current = status["status"] if status else "created"
        event = EVENTS[state]
        if state == "running" and current == "created":
            current = "pending"  # the API enqueues first (``status.enqueue``), then runs
        if current not in FROM[event]:
            return web.json_response({"message": transition_error(event, current)}, status=400)
        if status is None:
            status = {"id": next(self._ids), "sha": sha, "ref": ref, "name": name, "allow_failure": False,
                      "created_at": _now(), "started_at": None, "finished_at": None, "coverage": None,
                      "author": {"username": "reporter"}}
            kept.append(status)
        status.update(status=TO[event], target_url=body.get("target_url"), description=body.get("description"),
                      pipeline_id=body.get("pipeline_id"))
        if TO[event] == "running":
            status["started_at"] = _now()
        if TO[event] in ("success", "failed", "canceled"):
            status["finished_at"] = _now()
        return web.json_response(status, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        await self._record(request)
        project = self._project(request)
        refused = self._refusal(request, project)
        if refused is not None:
            return refused
        return web.json_response(list(reversed(self.statuses.get((project.path, request.match_info["sha"]), []))))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
