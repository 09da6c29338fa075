"""A local HTTP server that speaks the part of GitHub's REST API the GitHub reporters use.

Real GitHub cannot be reached from the tests, so this server holds them to GitHub's documented
contract instead of to whatever the reporters happen to send:

- ``/app/*`` takes only an App JWT (RS256, signed with the App's private key, checked against its
  public key; ``iss`` the app ID or client ID; ``iat`` not in the future; ``exp`` in the future and
  at most 10 minutes ahead): anything else is GitHub's 401 JSON;
- ``POST /app/installations/{id}/access_tokens`` issues installation tokens with an ``expires_at``;
  ``GET /repos/{o}/{r}/installation`` names the App's installation on a repository;
- repository endpoints take ``Authorization: Bearer|token <t>`` with a live installation token or
  the configured personal token (check runs: installation tokens only, as on GitHub), else 401;
- bodies are validated as documented (an unknown state, a missing conclusion, a description over
  140 characters: 422 "Validation Failed");
- check runs, commit statuses and deployment statuses are stored, and every request is recorded
  (method, path, query, headers, JSON body, time, the status answered) for assertions;
- :meth:`GithubApi.limit` answers the next N matching requests with a primary or secondary rate
  limit (403/429 with ``Retry-After``, or ``x-ratelimit-remaining: 0`` and a reset, or only the
  secondary-limit message).
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

DOCS = "https://docs.github.com/rest"
CHECK_STATUSES = {"queued", "in_progress", "completed"}
ACTIONS_ONLY_STATUSES = {"waiting", "requested", "pending"}
CONCLUSIONS = {"action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"}
COMMIT_STATES = {"error", "failure", "pending", "success"}
DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
SUMMARY_LIMIT = 65535
DESCRIPTION_LIMIT = 140
SHA = re.compile(r"^[0-9a-f]{40}$")
BODY = web.RequestKey("body", object)
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                     "If you reach out to GitHub Support for help, please include the request ID.")


def generate_key(path: Path) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key written to ``path`` as GitHub hands App keys out (PEM, unencrypted)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return key


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, "documentation_url": DOCS, **extra}, status=status)


def _invalid(resource: str, field_name: str, message: str) -> web.Response:
    return _error(422, "Validation Failed", errors=[
        {"resource": resource, "code": "custom", "field": field_name, "message": message}])


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    time: float
    status: int = 0


@dataclass
class _Limit:
    times: int
    status: int
    method: str | None
    path: re.Pattern
    retry_after: float | None
    reset_in: float | None
    secondary: bool


@dataclass
class GithubApi:
    app_id: int
    public_key: rsa.RSAPublicKey
    client_id: str | None = None
    personal_token: str | None = None
    installations: dict[str, int] = field(default_factory=lambda: {"*": 1})
    """``owner/repo`` -> installation id; ``"*"``: every repository."""
    token_lifetime: float = 3600.0
    requests: list[Recorded] = field(default_factory=list)
    check_runs: dict[int, dict] = field(default_factory=dict)
    statuses: list[dict] = field(default_factory=list)
    deployment_statuses: dict[int, list[dict]] = field(default_factory=dict)
    deployments: set[int] | None = None
    """Deployment ids that exist (``None``: any)."""

    def __post_init__(self) -> None:
        self.tokens: dict[str, tuple[int, float]] = {}
        self._ids = itertools.count(1000)
        self._limits: list[_Limit] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- scripting and assertions ------------------------------------------------------------

    def limit(self, times: int = 1, *, status: int = 429, method: str | None = None, path: str = ".*",
              retry_after: float | None = None, reset_in: float | None = None, secondary: bool = False) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path`` (a regex) with a rate limit."""
        self._limits.append(_Limit(times, status, method, re.compile(path), retry_after, reset_in, secondary))

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def calls(self, method: str | None = None, path: str = ".*") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and re.search(path, r.path)]

    # -- the server ---------------------------------------------------------------------------

    async def start(self) -> "GithubApi":
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/app/installations/{installation}/access_tokens", self.access_token)
        app.router.add_get("/app", self.app_info)
        app.router.add_get("/repos/{owner}/{repo}/installation", self.repo_installation)
        app.router.add_post("/repos/{owner}/{repo}/check-runs", self.create_check_run)
        app.router.add_patch("/repos/{owner}/{repo}/check-runs/{id}", self.update_check_run)
        app.router.add_get("/repos/{owner}/{repo}/commits/{ref}/check-runs", self.list_check_runs)
        app.router.add_post("/repos/{owner}/{repo}/statuses/{sha}", self.create_status)
        app.router.add_post("/repos/{owner}/{repo}/deployments/{id}/statuses", self.create_deployment_status)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            text = await request.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                return _error(400, "Problems parsing JSON")
        entry = Recorded(request.method, request.path, dict(request.query), dict(request.headers), body, time.time())
        self.requests.append(entry)
        request[BODY] = body
        response = self._limited(request) or await handler(request)
        entry.status = response.status
        return response

    def _limited(self, request: web.Request) -> web.Response | None:
        for rule in self._limits:
            if rule.times > 0 and (rule.method in (None, request.method)) and rule.path.search(request.path):
                rule.times -= 1
                headers = {"x-ratelimit-limit": "5000", "x-ratelimit-resource": "core"}
                if rule.retry_after is not None:
                    headers["Retry-After"] = f"{rule.retry_after:g}"
                if rule.reset_in is not None:
                    headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
                                    "x-ratelimit-reset": str(int(time.time() + rule.reset_in))})
                message = SECONDARY_MESSAGE if rule.secondary else "API rate limit exceeded for installation ID 1."
                return web.json_response({"message": message, "documentation_url": DOCS},
                                         status=rule.status, headers=headers)
        return None

    # -- authentication -----------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") and value.strip() else None

    def jwt_problem(self, token: str | None, now: float | None = None) -> str | None:
        """Why GitHub would refuse ``token`` as this App's JWT, or ``None`` if it is accepted."""
        now = time.time() if now is None else now
        try:
            header_part, claims_part, signature_part = (token or "").split(".")
            header, claims = json.loads(_unb64(header_part)), json.loads(_unb64(claims_part))
            signature = _unb64(signature_part)
        except ValueError:
            return "A JSON web token could not be decoded"
        if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
            return "A JSON web token could not be decoded"
        try:
            self.public_key.verify(signature, f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
        except InvalidSignature:
            return "A JSON web token could not be decoded"
        if str(claims.get("iss")) not in {str(self.app_id), *([self.client_id] if self.client_id else [])}:
            return "'Issuer' claim ('iss') must be the GitHub App's client ID or app ID"
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or iat > now + 1:
            return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        if not isinstance(exp, int) or exp <= now or exp > now + 600 or exp - iat > 660:
            return ("'Expiration time' claim ('exp') must be a numeric value representing the future time at which "
                    "the assertion expires, and at most 10 minutes ahead")
        return None

    def _app_refusal(self, request: web.Request) -> web.Response | None:
        problem = self.jwt_problem(self._bearer(request))
        return _error(401, problem) if problem else None

    def _repo_auth(self, request: web.Request, *, app_only: bool = False) -> web.Response | None:
        token = self._bearer(request)
        repository = f"{request.match_info['owner']}/{request.match_info['repo']}"
        if token is not None and token == self.personal_token:
            if app_only:
                return _error(403, "Resource not accessible by personal access token")
            return None
        issued = self.tokens.get(token or "")
        if issued is None or issued[1] <= time.time():
            return _error(401, "Bad credentials")
        if self.installations.get(repository, self.installations.get("*")) != issued[0]:
            return _error(404, "Not Found")
        return None

    async def app_info(self, request: web.Request) -> web.Response:
        return self._app_refusal(request) or web.json_response({"id": self.app_id, "client_id": self.client_id})

    async def access_token(self, request: web.Request) -> web.Response:
        refused = self._app_refusal(request)
        if refused:
            return refused
        installation = int(request.match_info["installation"]) if request.match_info["installation"].isdigit() else -1
        if installation not in self.installations.values():
            return _error(404, "Not Found")
        token = "ghs_" + secrets.token_urlsafe(27)
        expires = time.time() + self.token_lifetime
        self.tokens[token] = (installation, expires)
        return web.json_response({"token": token, "expires_at": _iso(expires),
                                  "permissions": {"checks": "write", "statuses": "write", "deployments": "write"},
                                  "repository_selection": "all"}, status=201)

    async def repo_installation(self, request: web.Request) -> web.Response:
        refused = self._app_refusal(request)
        if refused:
            return refused
        repository = f"{request.match_info['owner']}/{request.match_info['repo']}"
        installation = self.installations.get(repository, self.installations.get("*"))
        if installation is None:
            return _error(404, "Not Found")
        return web.json_response({"id": installation, "app_id": self.app_id,
                                  "account": {"login": request.match_info["owner"]}})

    # -- validation as documented ------------------------------------------------------------

    @staticmethod
    def _check_run_problem(body: Any, *, creating: bool) -> web.Response | None:
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON")
        if creating:
            for name in ("name", "head_sha"):
                if not isinstance(body.get(name), str) or not body[name]:
                    return _invalid("CheckRun", name, f"{name} wasn't supplied.")
        status, conclusion = body.get("status"), body.get("conclusion")
        if status in ACTIONS_ONLY_STATUSES:
            return _invalid("CheckRun", "status", f"status {status} can only be set by GitHub Actions")
        if status is not None and status not in CHECK_STATUSES:
            return _invalid("CheckRun", "status", f"{status!r} is not a valid status")
        if conclusion is not None and conclusion not in CONCLUSIONS:
            return _invalid("CheckRun", "conclusion", f"{conclusion!r} is not a valid conclusion")
        if (status == "completed" or body.get("completed_at")) and conclusion is None:
            return _invalid("CheckRun", "conclusion", "conclusion is required when status is completed")
        for name in ("started_at", "completed_at"):
            if name in body:
                try:
                    datetime.datetime.fromisoformat(str(body[name]).replace("Z", "+00:00"))
                except ValueError:
                    return _invalid("CheckRun", name, f"{name} is not an ISO 8601 timestamp")
        output = body.get("output")
        if output is not None:
            if not isinstance(output, dict) or not isinstance(output.get("title"), str) \
                    or not isinstance(output.get("summary"), str):
                return _invalid("CheckRun", "output", "output needs a title and a summary")
            for name in ("summary", "text"):
                if len(output.get(name) or "") > SUMMARY_LIMIT:
                    return _invalid("CheckRun", f"output.{name}", f"{name} is too long (maximum is {SUMMARY_LIMIT})")
        return None

    # -- check runs ----------------------------------------------------------------------------

    async def create_check_run(self, request: web.Request) -> web.Response:
        refused = self._repo_auth(request, app_only=True)
        if refused:
            return refused
        body = request[BODY]
        problem = self._check_run_problem(body, creating=True)
        if problem:
            return problem
        if not SHA.match(body["head_sha"]):
            return _invalid("CheckRun", "head_sha", "No commit found for SHA: " + body["head_sha"])
        run = {"id": next(self._ids), "status": "queued", "conclusion": None, "external_id": "",
               "details_url": None, "started_at": _iso(time.time()), "completed_at": None, "output": None,
               "repository": f"{request.match_info['owner']}/{request.match_info['repo']}", **body}
        if run.get("conclusion"):
            run["status"] = "completed"
        self.check_runs[run["id"]] = run
        return web.json_response(run, status=201)

    async def update_check_run(self, request: web.Request) -> web.Response:
        refused = self._repo_auth(request, app_only=True)
        if refused:
            return refused
        run = self.check_runs.get(int(request.match_info["id"])) if request.match_info["id"].isdigit() else None
        if run is None:
            return _error(404, "Not Found")
        body = request[BODY]
        problem = self._check_run_problem(body, creating=False)
        if problem:
            return problem
        run.update(body)
        if run.get("conclusion"):
            run["status"] = "completed"
        return web.json_response(run)

    async def list_check_runs(self, request: web.Request) -> web.Response:
        refused = self._repo_auth(request)
        if refused:
            return refused
        repository = f"{request.match_info['owner']}/{request.match_info['repo']}"
        name = request.query.get("check_name")
        found = [run for run in self.check_runs.values()
                 if run["repository"] == repository and run["head_sha"] == request.match_info["ref"]
                 and (name is None or run["name"] == name)]
        return web.json_response({"total_count": len(found), "check_runs": found})

    # -- statuses ------------------------------------------------------------------------------

    async def create_status(self, request: web.Request) -> web.Response:
        refused = self._repo_auth(request)
        if refused:
            return refused
        body = request[BODY]
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON")
        if body.get("state") not in COMMIT_STATES:
            return _invalid("Status", "state", f"state is not included in the list ({sorted(COMMIT_STATES)})")
        if len(body.get("description") or "") > DESCRIPTION_LIMIT:
            return _invalid("Status", "description", f"description is too long (maximum is {DESCRIPTION_LIMIT} characters)")
        if not SHA.match(request.match_info["sha"]):
            return _invalid("Status", "sha", "No commit found for SHA: " + request.match_info["sha"])
        status = {"id": next(self._ids), "context": "default", "target_url": None, "description": None, **body,
                  "sha": request.match_info["sha"], "created_at": _iso(time.time())}
        self.statuses.append(status)
        return web.json_response(status, status=201)

    async def create_deployment_status(self, request: web.Request) -> web.Response:
        refused = self._repo_auth(request)
        if refused:
            return refused
        deployment = int(request.match_info["id"]) if request.match_info["id"].isdigit() else -1
        if deployment < 0 or (self.deployments is not None and deployment not in self.deployments):
            return _error(404, "Not Found")
        body = request[BODY]
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON")
        if body.get("state") not in DEPLOYMENT_STATES:
            return _invalid("DeploymentStatus", "state", "state is not included in the list")
        if len(body.get("description") or "") > DESCRIPTION_LIMIT:
            return _invalid("DeploymentStatus", "description", "description is too long (maximum is 140 characters)")
        status = {"id": next(self._ids), **body, "created_at": _iso(time.time())}
        self.deployment_statuses.setdefault(deployment, []).append(status)
        return web.json_response(status, status=201)
