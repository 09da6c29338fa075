"""Allow-list and reserved-type matching of ``POST /events`` tokens, table by table (README, "Authenticating /events")."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from router import errors
from router.config.settings import EventsAuthSettings, EventsClient
from router.edge import tokens
from router.model import events


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False),
    ("router.example.com", False),
])
def test_loopback_hosts(host, loopback):
    assert tokens.is_loopback(host) is loopback


@pytest.mark.parametrize("event_type, family", [
    ("com.github.push", "com.github."),
    ("com.github.pull_request.opened", "com.github."),
    ("COM.GitHub.push", "com.github."),
    ("com.gitlab.pipeline", "com.gitlab."),
    ("io.k8s.deployment.rollout_completed", "io.k8s."),
    ("com.docker.hub.push", "com.docker.hub."),
    ("io.quay.push", "io.quay."),
    ("io.goharbor.push", "io.goharbor."),
    ("dev.cncf.distribution.push", "dev.cncf.distribution."),
    ("com.amazonaws.ecr.push", "com.amazonaws.ecr."),
    ("com.google.artifactregistry.push", "com.google.artifactregistry."),
    ("com.azure.containerregistry.push", "com.azure.containerregistry."),
    ("dev.cdevents.pipelinerun.finished.0.3.0", "dev.cdevents.pipelinerun."),
    ("dev.cdevents.pipelinerun.finished.0.4.0", "dev.cdevents.pipelinerun."),
    ("dev.cdevents.artifact.published.0.3.0", "dev.cdevents.artifact."),
    ("dev.cdevents.service.deployed.0.3.0", "dev.cdevents.service."),
    ("dev.cdevents.testsuiterun.finished.0.3.0", "dev.cdevents.testsuiterun."),
    ("dev.triggerrouter.correlation.expired", "dev.triggerrouter."),
    ("dev.cdevents.change.merged.0.2.0", None),
    ("com.example.deploy", None),
    ("com.githubx.push", None),
    ("io.k8", None),
])
def test_reserved_families(event_type, family):
    assert tokens.reserved_family(event_type) == family


TEKTON = tokens.Grant("tekton", sources=("tekton/",), types=("dev.cdevents.pipelinerun.",))
MIRROR = tokens.Grant("mirror", types=("com.github.",))
BROAD = tokens.Grant("broad", types=("com.", ""))
OPEN = tokens.Grant("default")


@pytest.mark.parametrize("grant, source, event_type, expected", [
    # No lists: anything that is not reserved.
    (OPEN, "/ci", "com.example.deploy", None),
    (OPEN, "https://github.com/acme/web", "com.github.push", (403, "type")),
    (OPEN, "/ci", "COM.GITHUB.push", (403, "type")),
    (tokens.ANONYMOUS, "/ci", "com.example.deploy", None),
    (tokens.ANONYMOUS, "https://github.com/acme/web", "com.github.push", (401, "type")),
    # A types prefix inside the reserved family unlocks it; a broader one does not.
    (MIRROR, "https://github.com/acme/web", "com.github.push", None),
    (tokens.Grant("m", types=("com.github.push",)), "/s", "com.github.push", None),
    (tokens.Grant("m", types=("com.github.push",)), "/s", "com.github.release", (403, "type")),
    (MIRROR, "/s", "com.GITHUB.push", (403, "type")),
    (MIRROR, "/s", "com.example.deploy", (403, "type")),
    (BROAD, "/s", "com.github.push", (403, "type")),
    (BROAD, "/s", "com.example.deploy", None),
    # Both lists must match; sources are prefixes, case-sensitive.
    (TEKTON, "tekton/pipelines", "dev.cdevents.pipelinerun.finished.0.3.0", None),
    (TEKTON, "https://github.com/acme/web", "dev.cdevents.pipelinerun.finished.0.3.0", (403, "source")),
    (TEKTON, "Tekton/pipelines", "dev.cdevents.pipelinerun.finished.0.3.0", (403, "source")),
    (TEKTON, "tekton/pipelines", "dev.cdevents.artifact.published.0.3.0", (403, "type")),
    (TEKTON, "tekton/pipelines", "com.example.deploy", (403, "type")),
])
def test_grant_refusal(grant, source, event_type, expected):
    refused = grant.refusal(source, event_type)
    assert (refused[0], refused[2]) == expected if expected else refused is None


def auth(**fields) -> EventsAuthSettings:
    return EventsAuthSettings(**fields)


def event(event_type="com.example.deploy", source="/ci", event_id="e1"):
    return events.make({"id": event_id, "source": source, "type": event_type}, {})


CLIENTS = auth(tokens=[SecretStr("old-default-token"), SecretStr("new-default-token")],
               clients=[EventsClient(name="tekton", tokens=[SecretStr("tekton-token-1")], sources=["tekton/"],
                                     types=["dev.cdevents.pipelinerun."])])


@pytest.mark.parametrize("settings, host, header, expected", [
    # (settings, http.host, Authorization, grant name or (status, words in the detail))
    (auth(), "127.0.0.1", None, "anonymous"),
    (auth(), "0.0.0.0", None, (401, "events_auth.tokens")),
    (auth(required=False), "0.0.0.0", None, "anonymous"),
    (auth(required=True), "127.0.0.1", None, (401, "events_auth.tokens")),
    (CLIENTS, "0.0.0.0", None, (401, "Bearer")),
    (CLIENTS, "127.0.0.1", None, "anonymous"),
    (CLIENTS, "127.0.0.1", "Bearer wrong", (401, "not valid")),
    (CLIENTS, "0.0.0.0", "Bearer old-default-token", "default"),
    (CLIENTS, "0.0.0.0", "bearer   new-default-token  ", "default"),
    (CLIENTS, "0.0.0.0", "Bearer tekton-token-1", "tekton"),
    (CLIENTS, "0.0.0.0", "Basic dGVrdG9uOng=", (401, "Bearer <token>")),
    (CLIENTS, "0.0.0.0", "Bearer", (401, "Bearer <token>")),
    (CLIENTS, "0.0.0.0", "Bearer \udcff\udcfe", (401, "not valid")),
    (CLIENTS, "0.0.0.0", "Bearer \ud800", (401, "not valid")),
])
def test_authenticate(settings, host, header, expected):
    gate = tokens.Gate(settings, host)
    if isinstance(expected, str):
        assert gate.authenticate(header).name == expected
        return
    with pytest.raises(errors.Unauthorized) as refused:
        gate.authenticate(header)
    assert refused.value.status == expected[0] and expected[1] in refused.value.detail
    assert "token-1" not in refused.value.detail and "default-token" not in refused.value.detail


def test_a_batch_is_refused_by_its_first_forbidden_event_naming_its_index():
    gate = tokens.Gate(CLIENTS, "0.0.0.0")
    batch = [event("dev.cdevents.pipelinerun.queued.0.3.0", "tekton/a", "1"),
             event("com.github.push", "tekton/a", "2")]
    with pytest.raises(errors.Forbidden) as refused:
        gate.authorize("Bearer tekton-token-1", batch)
    assert refused.value.status == 403 and refused.value.field == "type"
    assert refused.value.detail.startswith("event 1: type 'com.github.push' is reserved")
    assert "tekton-token-1" not in refused.value.detail
    assert gate.authorize("Bearer tekton-token-1", batch[:1]).name == "tekton"


@pytest.mark.parametrize("fields, words", [
    ({"tokens": ["same-token", "same-token"]}, "one client only"),
    ({"tokens": ["a-token"], "clients": [{"name": "x", "tokens": ["a-token"]}]}, "one client only"),
    ({"tokens": [""]}, "non-empty"),
    ({"clients": [{"name": "x", "tokens": ["t1"]}, {"name": "x", "tokens": ["t2"]}]}, "same name"),
    ({"clients": [{"name": "x", "tokens": []}]}, "at least 1"),
    ({"clients": [{"name": "has space", "tokens": ["t"]}]}, "pattern"),
    ({"required": "sometimes"}, "auto"),
])
def test_invalid_settings(fields, words):
    with pytest.raises(ValueError) as invalid:
        EventsAuthSettings(**fields)
    message = invalid.value.errors()[0]["msg"]  # what settings.load shows (never the input)
    assert words in message
    assert "same-token" not in message and "a-token" not in message
