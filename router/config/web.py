"""The ``web`` settings: the read-only run-history web view under ``/ui/`` of the HTTP edge.

Its own module to keep ``settings`` short; it is a core section like ``reporting``. The view shows
event data (attacker-controlled webhook payloads), rule names and check details, so it is off by
default, and once it listens beyond loopback it must have credentials: :func:`check_exposure` is
called while the settings are validated, so ``serve`` (and ``config check``) refuse such a file
with one line instead of serving run history to anyone who reaches the webhook port.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from router.config.base import Section

__all__ = ["WebSettings", "WebUser", "check_exposure", "is_loopback"]


class WebUser(Section):
    """One person (or proxy) allowed in with HTTP basic auth."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    password: SecretStr
    """``password_file``: read from a mounted Secret."""


class WebSettings(Section):
    enabled: bool = False
    """Serve the run-history pages under ``/ui/`` of the HTTP edge (GET only)."""
    tokens: list[SecretStr] = []
    """Bearer tokens (``Authorization: Bearer <token>``) that may read the pages; ``tokens_file``:
    one per line. For proxies and scripts; browsers use ``users``."""
    users: list[WebUser] = []
    """Basic-auth users (browsers prompt for them)."""
    max_runs: int = Field(1000, ge=1, le=100_000)
    """Run states read per page, the most recently written first; the pages say when there are more."""

    @model_validator(mode="after")
    def _distinct(self) -> "WebSettings":
        names = [user.name for user in self.users]
        if len(set(names)) != len(names):
            raise ValueError("two web.users have the same name")
        if any(not t.get_secret_value() for t in self.tokens) or any(
                not u.password.get_secret_value() for u in self.users):
            raise ValueError("web tokens and passwords must not be empty")
        return self

    def has_credentials(self) -> bool:
        return bool(self.tokens or self.users)


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``; ``0.0.0.0``, ``""`` (every interface) and names are not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(web: WebSettings, host: str) -> WebSettings:
    """``web`` unless it is enabled on a non-loopback ``host`` without credentials (then an error)."""
    if web.enabled and not is_loopback(host) and not web.has_credentials():
        raise PydanticCustomError(
            "web_exposed", "the web view is enabled and http.host '{host}' is beyond loopback, but neither "
            "web.tokens nor web.users is set: configure one, or bind http.host to 127.0.0.1",
            {"host": host})
    return web
