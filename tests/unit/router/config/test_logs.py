"""Masking of secrets in log lines and in ``config check`` output (README, "Secrets in logs and answers")."""

from __future__ import annotations

import io
import json
import logging

import pytest

from router.config import logs
from router.config import settings as settings_mod
from router.config.settings import LogSettings
from router.plugins import catalog


@pytest.mark.parametrize("line, shown", [
    ("POST /webhooks/dockerhub/s3cret-token refused (401)", "POST /webhooks/dockerhub/*** refused (401)"),
    ("POST /webhooks/quay/abc?x=1 refused", "POST /webhooks/quay/***?x=1 refused"),
    ("'/webhooks/gar/tok', next", "'/webhooks/gar/***', next"),
    ("POST /webhooks/github refused", "POST /webhooks/github refused"),
    ("cannot reach nats://user:pw@host:4222,tls://tok@other", "cannot reach nats://***@host:4222,tls://***@other"),
    ("mail ops@example.com", "mail ops@example.com"),
    ("the token is events-token-1 and also events-token-1-longer",
     "the token is *** and also ***"),
    ("no secret here", "no secret here"),
])
def test_redactor(line, shown):
    assert logs.Redactor({"events-token-1", "events-token-1-longer"})(line) == shown


def configured(fmt: str, secrets: set[str]) -> io.StringIO:
    logs.configure(LogSettings(format=fmt), secrets)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    return stream


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_line_and_traceback_is_masked(fmt):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        stream = configured(fmt, {"hunter2-password"})
        try:
            raise RuntimeError("login with hunter2-password failed")
        except RuntimeError:
            logging.getLogger("aiohttp.server").exception("request to /webhooks/quay/qtoken failed")
        text = stream.getvalue()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert "hunter2-password" not in text and "qtoken" not in text
    assert "/webhooks/quay/***" in text and "login with *** failed" in text
    if fmt == "json":
        assert json.loads(text)["level"] == "error"


def test_secret_values_and_config_check_cover_every_section(tmp_path):
    catalog.load()
    (tmp_path / "tekton").write_text("tekton-token-1\ntekton-token-2\n")
    env = {"TRIGGER_ROUTER_NATS__URL": "nats://router:url-pass%40word@127.0.0.1:4222",
           "TRIGGER_ROUTER_NATS__PASSWORD": "field-password",
           "TRIGGER_ROUTER_GITHUB__SECRETS": '["github-secret"]',
           "TRIGGER_ROUTER_REGISTRIES__QUAY__PASSWORD": "quay-password",
           "TRIGGER_ROUTER_EVENTS_AUTH__CLIENTS": json.dumps(
               [{"name": "tekton", "tokens_file": str(tmp_path / "tekton"), "types": ["dev.cdevents."]}])}
    settings = settings_mod.load(None, env=env)
    assert [t.get_secret_value() for t in settings.events_auth.clients[0].tokens] == ["tekton-token-1",
                                                                                       "tekton-token-2"]
    found = logs.secret_values(settings)
    assert {"url-pass@word", "url-pass%40word", "field-password", "github-secret", "quay-password",
            "tekton-token-1", "tekton-token-2"} <= found
    printed = json.dumps(settings_mod.redacted(settings))
    assert not [secret for secret in found if secret in printed]
    assert "nats://***@127.0.0.1:4222" in printed and '"name": "tekton"' in printed


def test_a_missing_client_token_file_names_its_path(tmp_path):
    catalog.load()
    env = {"TRIGGER_ROUTER_EVENTS_AUTH__CLIENTS": json.dumps([{"name": "x", "tokens_file": str(tmp_path / "no")}])}
    with pytest.raises(Exception) as failed:
        settings_mod.load(None, env=env)
    assert "events_auth.clients.0.tokens_file" in str(failed.value)
