"""The ``web`` section: off by default, and never open beyond loopback without credentials."""

from __future__ import annotations

import pytest

from router import errors
from router.config import settings

USERS = '[{"name": "ops", "password": "pw"}]'


@pytest.mark.parametrize("env,enabled", [
    ({}, False),
    ({"WEB__ENABLED": "true"}, True),                                           # loopback: may be open
    ({"WEB__ENABLED": "true", "HTTP__HOST": "localhost"}, True),
    ({"WEB__ENABLED": "true", "HTTP__HOST": "::1"}, True),
    ({"WEB__ENABLED": "true", "HTTP__HOST": "0.0.0.0", "WEB__TOKENS": '["t"]'}, True),
    ({"WEB__ENABLED": "true", "HTTP__HOST": "10.1.2.3", "WEB__USERS": USERS}, True),
    ({"HTTP__HOST": "0.0.0.0"}, False),                                          # disabled: nothing to guard
])
def test_accepted(env, enabled):
    loaded = settings.load(None, env={f"TRIGGER_ROUTER_{k}": v for k, v in env.items()})
    assert loaded.web.enabled is enabled


@pytest.mark.parametrize("env,path,message", [
    ({"WEB__ENABLED": "true", "HTTP__HOST": "0.0.0.0"}, "web", "http.host '0.0.0.0' is beyond loopback"),
    ({"WEB__ENABLED": "true", "HTTP__HOST": ""}, "web", "neither web.tokens nor web.users"),
    ({"WEB__ENABLED": "true", "HTTP__HOST": "router.internal"}, "web", "bind http.host to 127.0.0.1"),
    ({"WEB__USERS": '[{"name": "a", "password": "x"}, {"name": "a", "password": "y"}]'}, "web",
     "same name"),
    ({"WEB__TOKENS": '[""]'}, "web", "must not be empty"),
    ({"WEB__USERS": '[{"name": "bad name", "password": "x"}]'}, "web.users.0.name", "pattern"),
    ({"WEB__MAX_RUNS": "0"}, "web.max_runs", "greater than or equal to 1"),
])
def test_refused_with_the_key(env, path, message):
    with pytest.raises(errors.ConfigError) as refused:
        settings.load(None, env={f"TRIGGER_ROUTER_{k}": v for k, v in env.items()})
    assert refused.value.path == path and message in str(refused.value)


def test_passwords_and_tokens_from_files(tmp_path):
    (tmp_path / "pw").write_text("from-a-secret\n")
    (tmp_path / "tokens").write_text("one\ntwo\n")
    loaded = settings.load(None, env={
        "TRIGGER_ROUTER_WEB__USERS": f'[{{"name": "ops", "password_file": "{tmp_path / "pw"}"}}]',
        "TRIGGER_ROUTER_WEB__TOKENS_FILE": str(tmp_path / "tokens")})
    assert loaded.web.users[0].password.get_secret_value() == "from-a-secret"
    assert [t.get_secret_value() for t in loaded.web.tokens] == ["one", "two"]
    assert settings.redacted(loaded)["web"]["users"][0]["password"] == "***"
