"""Who gets in: bearer tokens, basic-auth users, and the open view on loopback without credentials."""

from __future__ import annotations

import base64

import pytest

from router import errors
from router.config.web import WebSettings
from router.web import access

USERS = [{"name": "ops", "password": "pa:ss wörd"}, {"name": "dev", "password": "other"}]


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize("settings,authorization,reader", [
    ({}, None, "anonymous"),                                          # loopback, nothing configured: open
    ({}, "Bearer anything", "anonymous"),
    ({"tokens": ["t1", "t2"]}, "Bearer t2", "token"),
    ({"tokens": ["t1"]}, "bearer  t1 ", "token"),
    ({"users": USERS}, basic("ops:pa:ss wörd".encode()), "ops"),       # a colon in the password is kept
    ({"users": USERS}, basic(b"dev:other"), "dev"),
    ({"users": USERS, "tokens": ["t1"]}, "Bearer t1", "token"),
])
def test_admitted(settings, authorization, reader):
    assert access.Access(WebSettings(**settings)).check(authorization) == reader


@pytest.mark.parametrize("settings,authorization,challenge", [
    ({"tokens": ["t1"]}, None, 'Bearer realm="trigger-router web view"'),
    ({"tokens": ["t1"]}, "Bearer t11", 'Bearer realm="trigger-router web view"'),
    ({"tokens": ["t1"]}, basic(b"ops:t1"), 'Bearer realm="trigger-router web view"'),  # no users: no basic
    ({"users": USERS}, None, 'Basic realm="trigger-router web view", charset="UTF-8"'),
    ({"users": USERS}, basic(b"ops:other"), 'Basic realm="trigger-router web view", charset="UTF-8"'),  # dev's
    ({"users": USERS}, basic(b"ops"), 'Basic realm="trigger-router web view", charset="UTF-8"'),
    ({"users": USERS}, "Basic !!!not-base64", 'Basic realm="trigger-router web view", charset="UTF-8"'),
    ({"users": USERS}, "Bearer pa:ss", 'Basic realm="trigger-router web view", charset="UTF-8"'),
    ({"users": USERS}, "Digest x", 'Basic realm="trigger-router web view", charset="UTF-8"'),
])
def test_refused_with_a_challenge(settings, authorization, challenge):
    with pytest.raises(errors.Unauthorized) as refused:
        access.Access(WebSettings(**settings)).check(authorization)
    assert refused.value.challenge == challenge
    assert "pa:ss" not in refused.value.detail and "t1" not in refused.value.detail  # never a secret
