"""Plug-in settings sections: registered next to their plug-in, composed into the settings model.

Each test registers its own sections inside ``catalog.isolated()``, which starts from the core
sections only and puts the real plug-ins' sections back afterwards.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from router import errors, plugins
from router.config import settings as config
from router.plugins import catalog


class Shared(plugins.Section):
    untagged: bool = False


class Child(plugins.Section):
    secrets: list[SecretStr] = []
    host: str = "h.test"


class Grandchild(plugins.Section):
    audience: str | None = None


@pytest.fixture
def isolated():
    with catalog.isolated() as fresh:
        yield fresh


def test_nested_sections_compose_and_load_from_file_and_env(isolated, tmp_path):
    plugins.settings_section("shared")(Shared)
    plugins.settings_section("shared.child")(Child)
    plugins.settings_section("shared.child.oidc")(Grandchild)
    (tmp_path / "secret").write_text("s3cret\n")
    (tmp_path / "config.yaml").write_text("shared: {untagged: true, child: {host: x.test}}\n")
    loaded = config.load(tmp_path / "config.yaml", env={
        "TRIGGER_ROUTER_SHARED__CHILD__SECRETS_FILE": str(tmp_path / "secret"),
        "TRIGGER_ROUTER_SHARED__CHILD__OIDC__AUDIENCE": "aud"})
    assert loaded.shared.untagged is True and loaded.shared.child.host == "x.test"
    assert [s.get_secret_value() for s in loaded.shared.child.secrets] == ["s3cret"]
    assert loaded.shared.child.oidc.audience == "aud"
    assert loaded.nats.url is None  # the core sections are still there


def test_a_section_left_out_of_the_file_has_its_defaults(isolated):
    plugins.settings_section("shared")(Shared)
    plugins.settings_section("shared.child")(Child)
    assert config.load(None, env={}).shared.child.host == "h.test"


@pytest.mark.parametrize("env,path,message", [
    ({"TRIGGER_ROUTER_SHARED__CHILD__HOSTNAME": "x"}, "shared.child.hostname", "unknown key"),
    ({"TRIGGER_ROUTER_SHARED__UNTAGGED": "maybe"}, "shared.untagged", "valid boolean"),
    ({"TRIGGER_ROUTER_SHARED__CHILD__HOST_FILE": "/x"}, "shared.child.host_file", "only secrets load from files"),
    ({"TRIGGER_ROUTER_OTHER__X": "1"}, "other", "unknown key"),
])
def test_errors_name_the_key_path(isolated, env, path, message):
    plugins.settings_section("shared")(Shared)
    plugins.settings_section("shared.child")(Child)
    with pytest.raises(errors.ConfigError) as refused:
        config.load(None, env=env)
    assert refused.value.path == path and message in str(refused.value)


def test_without_plugins_an_unknown_section_says_to_load_them(isolated):
    with pytest.raises(errors.ConfigError) as refused:
        config.load(None, env={"TRIGGER_ROUTER_GITHUB__SECRETS": '["x"]'})
    assert refused.value.path == "github" and "load the plug-ins first" in str(refused.value)


@pytest.mark.parametrize("path,section,error,message", [
    ("nats", Shared, ValueError, "registered twice"),              # a core section
    ("shared", Shared, ValueError, "registered twice"),            # registered just before
    ("plain", dict, TypeError, "must be a router.plugins.Section subclass"),
])
def test_registration_mistakes(isolated, path, section, error, message):
    plugins.settings_section("shared")(Shared)
    with pytest.raises(error, match=message):
        plugins.settings_section(path)(section)


def test_a_section_without_its_parent_is_refused(isolated):
    plugins.settings_section("missing.child")(Child)
    with pytest.raises(ValueError, match="no registered parent section"):
        config.model()


def test_config_check_shows_plugin_sections_after_http(isolated):
    plugins.settings_section("shared")(Shared)
    plugins.settings_section("shared.child")(Child)
    shown = config.redacted(config.load(None, env={"TRIGGER_ROUTER_SHARED__CHILD__SECRETS": '["x"]'}))
    keys = list(shown)
    assert keys[keys.index("http") + 1] == "shared"
    assert shown["shared"]["child"]["secrets"] == ["***"]


def test_isolation_restores_the_real_sections():
    with catalog.isolated():
        assert config.sections() == {}
    assert {"github", "gitlab", "kubernetes", "registries", "registries.dockerhub"} <= set(config.sections())
