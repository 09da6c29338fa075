"""The image-labels commit finder against a real registry (docker-registry, images pushed by skopeo).

An image whose config carries ``org.opencontainers.image.revision``/``source`` gives exactly that
commit and repository; one without them gives ``None`` and a reason that says what to set. The
KV cache is shown by stopping the registry: a digest seen once is answered without it, and an
unreachable registry's answer is not kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import types

import nats
import pytest
from aiohttp import web

from handlers.sources.registries import revisions
from router.config import settings as settings_mod
from router.plugins import artifacts, errors, events
from tests.support import ociimage
from tests.support.registryserver import RegistryServer
from tests.support.tokenserver import TokenServer

SHA = "0a2c3e4f5b6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"
OTHER = "ffeeddccbbaa99887766554433221100ffeeddcc"
GITLAB = "https://gitlab.example.com"
LABELS = {revisions.REVISION: SHA, revisions.SOURCE: f"{GITLAB}/platform/web",
          "org.opencontainers.image.title": "web"}


@pytest.fixture(autouse=True)
def configured():
    revisions.configure(settings_mod.load(env={"TRIGGER_ROUTER_REPORTERS__GITLAB__URL": GITLAB,
                                               "TRIGGER_ROUTER_REGISTRIES__RESOLVE_ATTEMPTS": "1",
                                               "TRIGGER_ROUTER_REGISTRIES__RESOLVE_TIMEOUT": "2s"}))
    yield
    revisions.configure(settings_mod.load(env={}))


@pytest.fixture
async def bus(nats_server):
    nc = await nats.connect(nats_server.url)
    yield types.SimpleNamespace(js=nc.jetstream())
    await nc.close()


async def push(tmp_path, registry, name: str, labels: dict | None) -> str:
    root = tmp_path / f"image-{name}"
    ociimage.layout(root, "v1", name, labels)
    return await asyncio.to_thread(ociimage.push, root, "v1", f"{registry.host}/{name}:v1")


def published(registry, name: str, digest: str) -> events.CloudEvent:
    """artifact.published exactly as the registry sources build it."""
    original = events.make({"id": f"push-{name}", "source": f"https://{registry.host}/{name}",
                            "type": "dev.cncf.distribution.push", "subject": "v1"}, {})
    return artifacts.published(original, artifacts.Push("distribution", f"{registry.host}/{name}", digest, "v1"))


def rollout(registry, name: str, digest: str) -> events.CloudEvent:
    """rollout_completed as the Kubernetes source builds it: the digest the pods run, per container."""
    return events.make({"id": "r1", "source": "k8s://test/namespaces/apps/deployments/web",
                        "type": "io.k8s.apps.v1.deployment.rollout_completed", "subject": "apps/web"},
                       {"kind": "Deployment", "images": [
                           {"container": "web", "image": f"{registry.host}/{name}@{digest}",
                            "repository": f"{registry.host}/{name}", "digest": digest, "digests": [digest]}]})


async def test_labels_give_exactly_that_commit_and_project(oci_registry, tmp_path, bus):
    digest = await push(tmp_path, oci_registry, "web", LABELS)
    for event in (published(oci_registry, "web", digest), rollout(oci_registry, "web", digest)):
        commit, why = await revisions.find(event, bus)
        assert (commit.provider, commit.repository, commit.sha) == ("gitlab", "platform/web", SHA)
        assert commit.found == (f"label org.opencontainers.image.revision of {digest[:19]}… "
                                f"in {oci_registry.host}/web")
        assert why == "found"


async def test_a_github_source_gives_the_github_repository(oci_registry, tmp_path):
    digest = await push(tmp_path, oci_registry, "api", {revisions.REVISION: SHA,
                                                        revisions.SOURCE: "https://github.com/acme/api.git"})
    commit, _ = await revisions.find(published(oci_registry, "api", digest), None)
    assert (commit.provider, commit.repository, commit.sha) == ("github", "acme/api", SHA)


@pytest.mark.parametrize("labels, says", [
    (None, "has no label org.opencontainers.image.revision (its labels: none); set it at build time, "
           "e.g. docker buildx build --label org.opencontainers.image.revision=$(git rev-parse HEAD)"),
    ({"org.opencontainers.image.title": "web", "maintainer": "ops"},
     "has no label org.opencontainers.image.revision (its labels: maintainer, org.opencontainers.image.title)"),
    ({revisions.REVISION: "v1.4.2", revisions.SOURCE: f"{GITLAB}/platform/web"},
     "is 'v1.4.2', not a full commit sha"),
    ({revisions.REVISION: SHA}, "but the image has no label org.opencontainers.image.source"),
    ({revisions.REVISION: SHA, revisions.SOURCE: "https://git.example.org/platform/web"},
     "label org.opencontainers.image.source of sha256:"),
])
async def test_without_usable_labels_there_is_no_commit_and_the_reason_says_why(oci_registry, tmp_path, labels, says):
    digest = await push(tmp_path, oci_registry, "web", labels)
    commit, why = await revisions.find(published(oci_registry, "web", digest), None)
    assert commit is None
    assert says in why and f"{digest[:19]}… in {oci_registry.host}/web" in why
    if labels and "git.example.org" in str(labels):
        assert "'https://git.example.org/platform/web'" in why and "reporters.gitlab.hosts" in why


async def test_an_index_gives_the_linux_amd64_image_labels(oci_registry, tmp_path):
    root = tmp_path / "multi"
    digest, platforms = ociimage.index(root, "v1", {
        ("linux", "arm64"): {revisions.REVISION: OTHER, revisions.SOURCE: f"{GITLAB}/platform/web"},
        ("linux", "amd64"): {revisions.REVISION: SHA, revisions.SOURCE: f"{GITLAB}/platform/web"}})
    pushed = await asyncio.to_thread(ociimage.push, root, "v1", f"{oci_registry.host}/multi:v1", all_images=True)
    assert pushed == digest
    commit, _ = await revisions.find(published(oci_registry, "multi", digest), None)
    assert commit.sha == SHA
    assert f"(its linux/amd64 image {platforms['linux/amd64'][:19]}…)" in commit.found


async def test_an_index_without_amd64_gives_its_first_platform(oci_registry, tmp_path):
    root = tmp_path / "arm"
    digest, _ = ociimage.index(root, "v1", {
        ("linux", "arm64"): {revisions.REVISION: OTHER, revisions.SOURCE: "https://github.com/acme/web"},
        ("linux", "s390x"): {revisions.REVISION: SHA, revisions.SOURCE: "https://github.com/acme/web"}})
    await asyncio.to_thread(ociimage.push, root, "v1", f"{oci_registry.host}/arm:v1", all_images=True)
    commit, _ = await revisions.find(published(oci_registry, "arm", digest), None)
    assert commit.sha == OTHER and "linux/arm64" in commit.found


async def test_a_second_lookup_is_answered_from_the_cache_without_the_registry(oci_registry, tmp_path, bus):
    labelled = await push(tmp_path, oci_registry, "web", LABELS)
    bare = await push(tmp_path, oci_registry, "bare", None)
    first = await revisions.find(published(oci_registry, "web", labelled), bus)
    no_labels = await revisions.find(published(oci_registry, "bare", bare), bus)
    oci_registry.stop()  # from here on, any registry request fails
    assert await revisions.find(rollout(oci_registry, "web", labelled), bus) == first
    assert await revisions.find(published(oci_registry, "bare", bare), bus) == no_labels  # "no labels" is kept too
    bucket = await bus.js.key_value(revisions.LabelSettings().cache_bucket)
    assert sorted(await bucket.keys()) == sorted(d.replace(":", "_") for d in (labelled, bare))


async def test_an_unreachable_registry_is_temporary_and_not_cached(oci_registry, tmp_path, bus):
    digest = await push(tmp_path, oci_registry, "web", LABELS)
    oci_registry.stop()
    with pytest.raises(errors.TemporaryError) as raised:  # the engine reports the stage later
        await revisions.find(published(oci_registry, "web", digest), bus)
    assert str(raised.value).startswith(
        f"registry unreachable (temporary, not cached): registry http://{oci_registry.host} unreachable or "
        f"refusing: cannot read the image config of web@{digest}")
    assert await (await revisions._bucket(bus)).get(digest.replace(":", "_")) is None
    oci_registry.start()
    commit, _ = await revisions.find(published(oci_registry, "web", digest), bus)
    assert commit is not None and commit.sha == SHA


async def test_an_event_without_a_digest_is_not_the_finders(bus):
    push_event = events.make({"id": "1", "source": "https://github.com/acme/web", "type": "com.github.push"},
                             {"after": SHA})
    assert await revisions.find(push_event, bus) is None


# -- rules test: which commit a rule would report to, without a bus -----------------------------------------

RULE = ("kind: TriggerRule\nmetadata: {name: verify-web}\nspec:\n"
        "  filters: [{prefix: {type: dev.cdevents.artifact.published}}]\n"
        "  action: {exec: {command: [echo]}}\n")


def rules_test(tmp_path, event: events.CloudEvent, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "rule.yaml").write_text(RULE)
    (tmp_path / "event.json").write_bytes(events.dumps(event))
    env = {**os.environ, "TRIGGER_ROUTER_REPORTERS__GITLAB__URL": GITLAB, "TRIGGER_ROUTER_REGISTRIES__RESOLVE_ATTEMPTS": "1"}
    return subprocess.run([sys.executable, "-m", "router.cli", "rules", "test", str(tmp_path / "rule.yaml"),
                           "--event", str(tmp_path / "event.json"), *extra],
                          capture_output=True, text=True, env=env, timeout=60)


async def test_rules_test_shows_the_repository_and_sha_from_the_labels(oci_registry, tmp_path):
    digest = await push(tmp_path, oci_registry, "web", LABELS)
    result = await asyncio.to_thread(rules_test, tmp_path, published(oci_registry, "web", digest))
    assert result.returncode == 0, result.stderr
    assert (f"commit: gitlab platform/web @ {SHA[:12]} (from label org.opencontainers.image.revision of "
            f"{digest[:19]}… in {oci_registry.host}/web)") in result.stdout
    as_json = await asyncio.to_thread(rules_test, tmp_path, published(oci_registry, "web", digest), "--json")
    [entry] = json.loads(as_json.stdout)
    assert entry["commit"]["provider"] == "gitlab" and entry["commit"]["repository"] == "platform/web"
    assert entry["commit"]["sha"] == SHA


async def test_rules_test_says_why_nothing_would_be_reported_without_labels(oci_registry, tmp_path):
    digest = await push(tmp_path, oci_registry, "web", None)
    result = await asyncio.to_thread(rules_test, tmp_path, published(oci_registry, "web", digest))
    assert result.returncode == 0, result.stderr
    assert (f"commit: none: image {digest[:19]}… in {oci_registry.host}/web has no label "
            "org.opencontainers.image.revision (its labels: none)") in result.stdout


async def test_rules_test_says_the_registry_is_unreachable_and_that_this_is_temporary(oci_registry, tmp_path):
    digest = await push(tmp_path, oci_registry, "web", LABELS)
    oci_registry.stop()
    result = await asyncio.to_thread(rules_test, tmp_path, published(oci_registry, "web", digest))
    assert result.returncode == 0, result.stderr
    assert (f"commit: none: registry unreachable (temporary, not cached): registry http://{oci_registry.host} "
            f"unreachable or refusing: cannot read the image config of web@{digest}") in result.stdout
    assert "(temporary: the reporting engine asks again later)" in result.stdout


# -- private registries: the digest resolver's basic and bearer-token authentication ---------------------

USER, PASSWORD = "puller", "pull-password"


@pytest.fixture(params=["htpasswd", "token"])
async def private_registry(request, tmp_path):
    runner = None
    if request.param == "htpasswd":
        htpasswd = tmp_path / "htpasswd"
        htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                           capture_output=True, text=True).stdout)
        server = RegistryServer(tmp_path / "private", htpasswd=htpasswd)
    else:
        tokens = TokenServer({USER: PASSWORD})
        runner = web.AppRunner(tokens.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        server = RegistryServer(tmp_path / "private",
                                token=tokens.registry_auth(url, tokens.write_bundle(tmp_path / "bundle.pem")))
        server.tokens = tokens
    yield server.start()
    server.stop()
    if runner:
        await runner.cleanup()


def configure_credentials(registry, **credentials) -> None:
    revisions.configure(settings_mod.load(env={
        "TRIGGER_ROUTER_REPORTERS__GITLAB__URL": GITLAB, "TRIGGER_ROUTER_REGISTRIES__RESOLVE_ATTEMPTS": "1",
        "TRIGGER_ROUTER_REGISTRIES__LABELS__REGISTRIES": json.dumps([{"host": registry.host, "api_url": registry.url,
                                                                        **credentials}])}))


async def test_a_private_registry_is_read_with_the_configured_credentials(private_registry, tmp_path):
    root = tmp_path / "image-private"
    ociimage.layout(root, "v1", "private", LABELS)
    digest = await asyncio.to_thread(ociimage.push, root, "v1", f"{private_registry.host}/team/web:v1",
                                     creds=f"{USER}:{PASSWORD}")
    configure_credentials(private_registry, username=USER, password=PASSWORD)
    if hasattr(private_registry, "tokens"):
        private_registry.tokens.requests.clear()
    commit, _ = await revisions.find(published(private_registry, "team/web", digest), None)
    assert (commit.repository, commit.sha) == ("platform/web", SHA)
    if hasattr(private_registry, "tokens"):  # one token for the manifest and the config blob
        assert private_registry.tokens.requests == [{"user": USER, "service": "trigger-router-test-registry",
                                                     "scopes": ["repository:team/web:pull"]}]


async def test_a_private_registry_without_credentials_is_temporary_and_says_so(private_registry, tmp_path):
    root = tmp_path / "image-private"
    ociimage.layout(root, "v1", "private", LABELS)
    digest = await asyncio.to_thread(ociimage.push, root, "v1", f"{private_registry.host}/team/web:v1",
                                     creds=f"{USER}:{PASSWORD}")
    configure_credentials(private_registry)
    with pytest.raises(errors.TemporaryError, match="basic credentials|refused the credentials|answered 401"):
        await revisions.find(published(private_registry, "team/web", digest), None)
