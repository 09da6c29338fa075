"""Settings: YAML + environment + secret files, errors that name the key path."""

from __future__ import annotations

import pytest

from router import errors
from router.config import settings


def test_environment_overrides_nested_fields_and_lists(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("http:\n  port: 8000\nnats:\n  tls:\n    ca_file: /etc/ca.pem\n")
    loaded = settings.load(config, env={
        "TRIGGER_ROUTER_HTTP__PORT": "9001",
        "TRIGGER_ROUTER_NATS__TLS__CERT_FILE": "/etc/cert.pem",
        "TRIGGER_ROUTER_GITHUB__SECRETS": '["one", "two"]',
        "TRIGGER_ROUTER_BUS__DUPLICATE_WINDOW": "2h",
    })
    assert loaded.http.port == 9001
    assert str(loaded.nats.tls.ca_file) == "/etc/ca.pem" and str(loaded.nats.tls.cert_file) == "/etc/cert.pem"
    assert [s.get_secret_value() for s in loaded.github.secrets] == ["one", "two"]
    assert loaded.bus.duplicate_window == 7200


def test_secret_files_are_read(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "tokens").write_text("a\n\nb\n")
    loaded = settings.load(None, env={"TRIGGER_ROUTER_NATS__PASSWORD_FILE": str(tmp_path / "pw"),
                                      "TRIGGER_ROUTER_GITLAB__TOKENS_FILE": str(tmp_path / "tokens")})
    assert loaded.nats.password.get_secret_value() == "s3cret"
    assert [t.get_secret_value() for t in loaded.gitlab.tokens] == ["a", "b"]


@pytest.mark.parametrize("yaml_text,env,path,message", [
    ("http:\n  prot: 1\n", {}, "http.prot", "unknown key"),
    ("bus:\n  max_age: soon\n", {}, "bus.max_age", "not a duration"),
    ("nats:\n  url_file: /x\n", {}, "nats.url_file", "not a secret"),
    ("gitlab:\n  tokens_file: /does/not/exist\n", {}, "gitlab.tokens_file", "cannot read"),
    ("- a list\n", {}, "", "must be a mapping"),
])
def test_errors_name_the_key(tmp_path, yaml_text, env, path, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    with pytest.raises(errors.ConfigError) as caught:
        settings.load(config, env=env)
    assert caught.value.path == path
    assert message in str(caught.value) and str(config) in str(caught.value)


# (environment, the error's key path, the line `config check` prints, without the file's name)
FROM_ENVIRONMENT = {
    "a bad value": ({"TRIGGER_ROUTER_HTTP__PORT": "eighty"}, "http.port",
                    "TRIGGER_ROUTER_HTTP__PORT: http.port: Input should be a valid integer"),
    "out of range": ({"TRIGGER_ROUTER_HTTP__PORT": "70000"}, "http.port",
                     "TRIGGER_ROUTER_HTTP__PORT: http.port: Input should be less than or equal to 65535"),
    "a bad duration": ({"TRIGGER_ROUTER_BUS__MAX_AGE": "soon"}, "bus.max_age",
                       "TRIGGER_ROUTER_BUS__MAX_AGE: bus.max_age: Value error, 'soon' is not a duration"),
    "an unknown key": ({"TRIGGER_ROUTER_HTTP__PROT": "1"}, "http.prot", "TRIGGER_ROUTER_HTTP__PROT: http.prot: unknown key"),
    "inside a JSON list": ({"TRIGGER_ROUTER_EVENTS_AUTH__CLIENTS": '[{"name": "a b", "tokens": ["t"]}]'},
                           "events_auth.clients.0.name", "TRIGGER_ROUTER_EVENTS_AUTH__CLIENTS: events_auth.clients.0.name: "),
    "a secret file that is not there": ({"TRIGGER_ROUTER_GITLAB__TOKENS_FILE": "/does/not/exist"},
                                        "gitlab.tokens_file",
                                        "TRIGGER_ROUTER_GITLAB__TOKENS_FILE: gitlab.tokens_file: cannot read secret file"),
}


@pytest.mark.parametrize(("env", "path", "line"), FROM_ENVIRONMENT.values(), ids=FROM_ENVIRONMENT.keys())
def test_errors_in_the_environment_name_the_variable(tmp_path, env, path, line):
    config = tmp_path / "c.yaml"
    config.write_text("http:\n  port: 8000\n")  # the file is fine: it must not be blamed
    with pytest.raises(errors.ConfigError) as caught:
        settings.load(config, env=env)
    assert caught.value.path == path
    assert str(caught.value).startswith(line) and str(config) not in str(caught.value)


def test_errors_in_the_file_still_name_the_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("http:\n  port: eighty\n")
    with pytest.raises(errors.ConfigError) as caught:
        settings.load(config, env={"TRIGGER_ROUTER_HTTP__HOST": "0.0.0.0"})
    assert str(caught.value).startswith(f"{config}: http.port: Input should be a valid integer")


def test_redacted_hides_every_secret():
    loaded = settings.load(None, env={"TRIGGER_ROUTER_NATS__TOKEN": "Xy7-secret-token", "TRIGGER_ROUTER_GITHUB__SECRETS": '["x"]'})
    shown = settings.redacted(loaded)
    assert shown["nats"]["token"] == "***" and shown["github"]["secrets"] == ["***"]
    assert "Xy7-secret-token" not in repr(shown)
