"""Signing in to GitHub as a GitHub App (or with a token), shared by the GitHub reporters.

Check runs can only be written by a GitHub App, which signs in in two steps (GitHub's "Authenticating
as a GitHub App installation"): a JWT signed RS256 with the App's private key (``iat`` 60 s in the
past against clock drift, ``exp`` under GitHub's 10-minute maximum, ``iss`` the client or app ID)
buys an installation access token (``POST /app/installations/{id}/access_tokens``, valid about an
hour), and that token authorizes the repository calls. Minting a token per report would spend the
App's rate limit and add a round trip to every report, so tokens are cached per installation until
shortly before their ``expires_at``, and only one refresh runs at a time (a lock per installation:
ten reports arriving together make one token request, not ten). A 401 on a repository call means
the cached token was revoked or expired early: it is dropped once and the call retried with a new
one; a second 401 is permanent.

The installation is ``reporters.github.installation_id`` or, unset, the one installed on the run's
repository (``GET /repos/{owner}/{repo}/installation``), cached per repository.

Reporters receive no settings; the CLI tells them once loaded (``@plugins.on_settings``), and the
private key is checked then, so ``serve`` (like any command) refuses to start with a key that is not
a PEM RSA key, in one line naming the setting, instead of failing every report later.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from handlers.reporters import github_api
from handlers.reporters.github_settings import GithubSettings
from router import plugins
from router.plugins import Settings, errors, ratelimits, reporters

log = logging.getLogger(__name__)

JWT_BACKDATE = 60
"""Seconds ``iat`` is set in the past (GitHub's advice against clock drift)."""
JWT_LIFETIME = 540
"""Seconds from now to ``exp``: under GitHub's 10-minute maximum, with room for a fast clock."""
REFRESH_BEFORE = 300.0
"""A cached installation token is replaced this many seconds before its ``expires_at``."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Token:
    value: str
    expires: float


class App:
    """Credentials of one ``reporters.github`` section, with its token and installation caches."""

    def __init__(self, settings: GithubSettings) -> None:
        self.settings = settings
        self.api_url = settings.api_url.rstrip("/")
        self._key: rsa.RSAPrivateKey | None = None
        self._tokens: dict[int, _Token] = {}
        self._installations: dict[str, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._quiet_until = 0.0
        """GitHub asked us (any report) to send nothing before this ``time.time()``."""

    def private_key(self) -> rsa.RSAPrivateKey:
        """The App's key, parsed once; an unreadable key is permanent and named without its content."""
        if self._key is None:
            if self.settings.private_key is None:
                raise errors.PermanentError("no GitHub App is configured (reporters.github.app_id and private_key)")
            try:
                key = serialization.load_pem_private_key(
                    self.settings.private_key.get_secret_value().encode(), password=None)
            except (ValueError, TypeError):
                raise errors.PermanentError(
                    "reporters.github.private_key is not a PEM private key without a passphrase "
                    "(download a new one from the App's settings page)") from None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise errors.PermanentError("reporters.github.private_key is not an RSA key; GitHub signs Apps with RS256")
            self._key = key
        return self._key

    def jwt(self, now: float | None = None) -> str:
        now = int(time.time() if now is None else now)
        app_id = self.settings.app_id or ""
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME,
                  "iss": int(app_id) if app_id.isdigit() else app_id}
        signing_input = (f"{_b64url(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}."
                         f"{_b64url(json.dumps(claims, separators=(',', ':')).encode())}")
        signature = self.private_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def _send(self, http: Any, method: str, url: str, what: str, **request: Any) -> github_api.Answer:
        """One request, unless GitHub's last rate limit still holds: then the wait left, without asking.

        A rate limit is the App's (its installation's, its token's), not one report's: a ``finished``
        arriving while ``started`` waits out a ``retry-after`` must wait too, or it is the early
        retry GitHub's documentation warns escalates to a ban."""
        left = self._quiet_until - time.time()
        if left > 0:
            raise errors.TemporaryError(f"{what}: waiting out GitHub's rate limit ({left:.1f} s left)", delay=left)
        answer = await github_api.send(http, method, url, timeout=self.settings.request_timeout, **request)
        wait = ratelimits.delay(answer.status, answer.headers, answer.text) if answer.status >= 400 else None
        if wait is not None:
            self._quiet_until = max(self._quiet_until, time.time() + wait)
        return answer

    async def _as_app(self, http: Any, method: str, path: str) -> github_api.Answer:
        """A request signed with the App's JWT; its answer if 2xx or 404 (the caller says what is missing)."""
        answer = await self._send(http, method, self.api_url + path, f"{method} {path}",
                                  authorization=f"Bearer {self.jwt()}")
        if answer.status == 401:
            # The JWT itself: wrong key for this App, wrong app_id, or a clock far off.
            raise errors.PermanentError(
                f"{method} {path}: GitHub refused the App's JWT ({answer.message()}); check that "
                f"reporters.github.private_key belongs to app_id {self.settings.app_id} and that the clock is right")
        if answer.status >= 400 and answer.status != 404:
            raise github_api.refuse(answer, f"{method} {path}")
        return answer

    async def installation(self, http: Any, repository: str) -> int:
        if self.settings.installation_id is not None:
            return self.settings.installation_id
        if repository not in self._installations:
            answer = await self._as_app(http, "GET", f"/repos/{repository}/installation")
            if answer.status == 404:
                raise errors.PermanentError(f"the GitHub App {self.settings.app_id} is not installed on {repository}")
            found = (answer.json() or {}).get("id")
            if not isinstance(found, int):
                raise errors.TemporaryError(f"GET /repos/{repository}/installation: no installation id in the answer")
            self._installations[repository] = found
        return self._installations[repository]

    async def token(self, http: Any, installation: int) -> str:
        cached = self._tokens.get(installation)
        if cached is not None and cached.expires - time.time() > REFRESH_BEFORE:
            return cached.value
        lock = self._locks.setdefault(installation, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation)  # another report may have refreshed it meanwhile
            if cached is not None and cached.expires - time.time() > REFRESH_BEFORE:
                return cached.value
            path = f"/app/installations/{installation}/access_tokens"
            answer = await self._as_app(http, "POST", path)
            if answer.status == 404:
                raise errors.PermanentError(f"POST {path}: GitHub App {self.settings.app_id} has no installation "
                                            f"{installation} (reporters.github.installation_id)")
            data = answer.json() or {}
            value, expires_at = data.get("token"), data.get("expires_at")
            if not isinstance(value, str) or not value:
                raise errors.TemporaryError(f"POST {path}: no token in GitHub's answer")
            try:
                expires = datetime.datetime.fromisoformat(str(expires_at).replace("Z", "+00:00")).timestamp()
            except ValueError:
                expires = time.time() + 3600 - REFRESH_BEFORE  # GitHub's documented hour, conservatively
            self._tokens[installation] = _Token(value, expires)
            log.info("GitHub App %s: new installation token for installation %d (expires %s)",
                     self.settings.app_id, installation, expires_at)
            return value

    def drop(self, installation: int, value: str) -> None:
        """Forget a token GitHub refused (unless a newer one replaced it already)."""
        cached = self._tokens.get(installation)
        if cached is not None and cached.value == value:
            del self._tokens[installation]

    async def call(self, context: reporters.Context, method: str, repository: str, path: str, *,
                   body: Any = None, query: dict[str, str] | None = None, app_only: bool = False) -> Any:
        """``method`` on ``/repos/{repository}{path}`` signed in as the App's installation (or the
        token, unless ``app_only``); GitHub's JSON answer, or the error the answer means."""
        if not self.settings.app and (app_only or self.settings.token is None):
            needs = "a GitHub App (reporters.github.app_id, private_key_file)"
            raise errors.PermanentError(f"{needs} is needed" + (
                ": GitHub lets only Apps write check runs" if app_only else ", or reporters.github.token_file"))
        what = f"{method} /repos/{repository}{path}"
        async with github_api.session(context) as http:
            for attempt in (1, 2):
                installation = None
                if self.settings.app:
                    installation = await self.installation(http, repository)
                    secret = await self.token(http, installation)
                else:
                    secret = self.settings.token.get_secret_value()  # type: ignore[union-attr]
                answer = await self._send(http, method, f"{self.api_url}/repos/{repository}{path}", what,
                                          authorization=f"Bearer {secret}", body=body, query=query)
                if answer.status == 401 and installation is not None and attempt == 1:
                    log.info("%s: GitHub refused the cached installation token; fetching a new one", what)
                    self.drop(installation, secret)
                    continue
                if answer.status == 401:
                    source = "the installation token" if installation is not None else "reporters.github.token"
                    raise errors.PermanentError(f"{what}: GitHub refused {source} ({answer.message()})")
                if answer.status >= 400:
                    raise github_api.refuse(answer, what)
                return answer.json()
        raise AssertionError("unreachable")  # pragma: no cover


_app: App | None = None


def configure(settings: GithubSettings) -> App:
    """Use ``settings`` from now on; the token and installation caches are kept unless they changed."""
    global _app
    if _app is None or _app.settings != settings:
        _app = App(settings)
    return _app


def current() -> App:
    """The configured App; unconfigured, the defaults (which sign in as nothing and say so)."""
    return _app if _app is not None else configure(GithubSettings())


@plugins.on_settings("reporters.github")
def configured(settings: Settings) -> None:
    """Hand ``reporters.github`` to the reporters, and check the key now rather than at the first report."""
    app = configure(settings.reporters.github)
    if app.settings.app:
        try:
            app.private_key()
        except errors.PermanentError as exc:
            raise errors.ConfigError(str(exc), path="reporters.github.private_key") from None
