"""Who may read the web view: bearer tokens and basic-auth users, compared in constant time.

Run history names services, commits and whatever webhook payloads carried, so beyond loopback the
view is never open: ``config.web.check_exposure`` refuses to start without credentials there. On
loopback it is open unless credentials are configured; configured ones are always required.

Browsers get ``WWW-Authenticate: Basic`` (they prompt) when ``web.users`` is set, otherwise
``Bearer`` (a proxy or script adds the header). Every configured secret is compared even after a
match, so the time taken does not tell which one exists (``plugins.auth`` does the same for
webhook secrets).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from router import errors
from router.config.web import WebSettings
from router.plugins import auth

__all__ = ["REALM", "Access"]

REALM = "trigger-router web view"


class Access:
    """The compiled ``web`` credentials; :meth:`check` answers who is reading or refuses."""

    def __init__(self, web: WebSettings) -> None:
        self.open = not web.has_credentials()
        self.tokens = list(web.tokens)
        self.users = [(auth.wire_bytes(u.name), auth.wire_bytes(u.password.get_secret_value()), u.name)
                      for u in web.users]
        self.challenge = (f'Basic realm="{REALM}", charset="UTF-8"' if self.users else f'Bearer realm="{REALM}"')

    def check(self, authorization: str | None) -> str:
        """The reader's name (a user's, ``token`` or ``anonymous``); ``errors.Unauthorized`` otherwise."""
        if self.open:
            return "anonymous"
        if authorization is None:
            raise errors.Unauthorized("the web view needs credentials: " + (
                "a web.users name and password" if self.users else "Authorization: Bearer <one of web.tokens>"),
                field="Authorization", challenge=self.challenge)
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.tokens and auth.token_matches(value.strip(), self.tokens):
            return "token"
        if scheme == "basic" and self.users:
            name = self._user(value.strip())
            if name is not None:
                return name
        raise errors.Unauthorized("the credentials are not valid for the web view", field="Authorization",
                                  challenge=self.challenge)

    def _user(self, value: str) -> str | None:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        name, colon, password = decoded.partition(b":")
        if not colon:
            return None
        found = None
        for accepted_name, accepted_password, shown in self.users:  # every user compared: the time tells nothing
            matched = hmac.compare_digest(name, accepted_name) & hmac.compare_digest(password, accepted_password)
            if matched and found is None:
                found = shown
        return found
