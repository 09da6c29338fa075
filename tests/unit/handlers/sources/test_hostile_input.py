"""Every webhook source under hostile input (issue #13, point 3): a 400 naming the field, never a crash.

A normalizer either refuses with an ``IngestError`` below 500 whose ``detail``/``field`` can go in a
JSON body, or returns events that can all be published (encoded as NATS headers and JSON), or, for
the distribution registry's multi-event envelope, dead-letters the bad item (``Rejected``) and keeps
the rest. Authentication never raises anything but ``Unauthorized``, whatever bytes a header holds.
The table holds each finding of the issue's fuzz run and code review; the properties put arbitrary
JSON values into the real payloads of ``/work/shared/fixtures`` and ``tests/fixtures``.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.sources.registries import digests
from router import errors
from router.config import settings as config
from router.model import events
from router.model.bindings import nats as nats_binding
from router.plugins import Delivery, Rejected, catalog
from tests.support import hostile

DIGEST = "sha256:" + "ab" * 32
V2 = "application/vnd.docker.distribution.manifest.v2+json"
SECRET = "s3cret"
ENV = {"TRIGGER_ROUTER_GITHUB__SECRETS": json.dumps([SECRET]), "TRIGGER_ROUTER_GITLAB__TOKENS": json.dumps([SECRET]),
       "TRIGGER_ROUTER_REGISTRIES__RESOLVE_ATTEMPTS": "1", "TRIGGER_ROUTER_REGISTRIES__RESOLVE_TIMEOUT": "1s",
       **{f"TRIGGER_ROUTER_REGISTRIES__{name}__SECRETS": json.dumps([SECRET])
          for name in ("DOCKERHUB", "QUAY", "HARBOR", "DISTRIBUTION", "ECR", "GAR", "ACR")}}
GITHUB = hostile.SHARED_FIXTURES / "github"
GITLAB = hostile.SHARED_FIXTURES / "gitlab"
REGISTRY = hostile.REGISTRY_FIXTURES


def source(name: str, **env: str):
    return catalog.load().webhook_sources[name](config.load(None, env={**ENV, **env}))


@contextlib.contextmanager
def resolving_offline():
    """Tag -> digest without a registry: the name must already be valid when a request would be made."""
    async def digest(self, repository: str, tag: str) -> str:
        assert digests.artifacts.is_digest(DIGEST) and repository and tag
        return DIGEST
    with mock.patch.object(digests.Resolver, "digest", digest):
        yield


async def run(name: str, body: bytes | dict, headers: dict | None = None, **env: str) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with resolving_offline():
        result = source(name, **env).normalize(Delivery(headers or {}, raw, path_token=SECRET))
        return await result if inspect.isawaitable(result) else result


def publishable(item) -> None:
    """What the bus would do with an accepted event: binary-mode headers in UTF-8, JSON data."""
    if isinstance(item, Rejected):
        json.dumps({"reason": item.reason, "field": item.field, "index": item.index})
        return
    hdrs, payload = nats_binding.to_binary(item)
    for key, value in hdrs.items():
        key.encode("ascii"), value.encode("utf-8")
    assert isinstance(payload, bytes)
    events.dumps(item)


async def outcome(name: str, body: bytes, headers: dict | None = None, **env: str) -> str:
    try:
        produced = await run(name, body, headers, **env)
    except errors.IngestError as exc:
        assert exc.status < 500, (exc.status, exc.detail)
        json.dumps({"detail": exc.detail, "field": exc.field}, ensure_ascii=False).encode()
        return f"refused {exc.field}"
    for item in produced:
        publishable(item)
    return "accepted"


GH = {"X-GitHub-Event": "registry_package", "X-GitHub-Delivery": "d-1"}
PACKAGE = {"action": "published", "repository": {"html_url": "https://github.com/acme/app"},
           "registry_package": {"package_type": "CONTAINER", "name": "app", "package_version": {
               "version": DIGEST, "package_url": "ghcr.io/acme/app:v1",
               "container_metadata": {"tag": {"name": "v1"}, "manifest": {"media_type": V2}}}}}
RUN = {"action": "completed", "repository": {"html_url": "https://github.com/acme/web"},
       "workflow_run": {"id": 7, "name": "build", "conclusion": "success", "head_sha": "abc",
                        "html_url": "https://github.com/acme/web/actions/runs/7"}}
GL = {"Idempotency-Key": "k-1"}
PIPELINE = {"object_kind": "pipeline", "project": {"web_url": "https://gitlab.com/acme/web"},
            "object_attributes": {"id": 3, "status": "success", "sha": "abc"}}
HARBOR = {"type": "PUSH_ARTIFACT", "occur_at": 1586922308, "event_data": {
    "repository": {"repo_full_name": "lib/app"},
    "resources": [{"digest": DIGEST, "tag": "v1", "resource_url": "harbor.local/lib/app:v1"}]}}
ITEM = {"id": "e1", "action": "push", "request": {"host": "reg.local"},
        "target": {"mediaType": V2, "repository": "app", "digest": DIGEST, "tag": "v1"}}
ACR = {"id": "e1", "action": "push", "request": {"host": "acme.azurecr.io"},
       "target": {"repository": "web", "digest": DIGEST, "tag": "v1", "mediaType": V2}}
ECR = {"id": "e1", "detail-type": "ECR Image Action", "account": "1", "region": "us-west-2",
       "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "app", "image-digest": DIGEST,
                  "image-tag": "v1", "manifest-media-type": V2}}
IMAGE = "us-east1-docker.pkg.dev/p/r/app"


def with_(document: dict, *path_and_value) -> dict:
    """A copy of ``document`` with the member at ``path`` set to ``value`` (the last argument)."""
    copy = json.loads(json.dumps(document))
    *path, last, value = path_and_value
    node = copy
    for key in path:
        node = node[key]
    node[last] = value
    return copy


def gar(notification) -> dict:
    return {"message": {"messageId": "m1", "data": base64.b64encode(json.dumps(notification).encode()).decode()}}


def deep(levels: int) -> bytes:
    return b'{"object_kind": "push", "x": ' + b"[" * levels + b"]" * levels + b"}"


# (source, headers, body, outcome): each a finding that crashed (500) or was accepted when it must
# not be; all refused with the field named, or accepted and publishable.
FINDINGS = [
    ("github", GH, with_(PACKAGE, "registry_package", "package_version", ["x"]),
     "refused registry_package.package_version"),
    ("github", GH, with_(PACKAGE, "registry_package", "package_version", "package_url", 5),
     "refused registry_package.package_version.package_url"),
    ("github", GH, with_(PACKAGE, "registry_package", "package_version", "container_metadata", "tag", "name", 5),
     "refused registry_package.package_version.container_metadata.tag.name"),
    ("github", GH, with_(PACKAGE, "registry_package", "package_version", "container_metadata", "manifest",
                         "media_type", [V2]), "refused registry_package.package_version.container_metadata.manifest.media_type"),
    ("github", {**GH, "X-GitHub-Event": "workflow_run"}, with_(RUN, "workflow_run", "conclusion", ["failure"]),
     "refused workflow_run.conclusion"),
    ("github", {**GH, "X-GitHub-Event": "workflow_run"}, with_(RUN, "workflow_run", "html_url", {"a": 1}),
     "refused workflow_run.html_url"),
    ("github", {**GH, "X-GitHub-Event": "push"}, {"ref": {"name": "main"}}, "refused ref"),
    ("github", {**GH, "X-GitHub-Event": "push"}, {"action": "opened.now"}, "refused action"),
    ("github", {**GH, "X-GitHub-Event": "push" * 1250}, {}, "refused X-GitHub-Event"),  # 5,000 characters
    ("github", {**GH, "X-GitHub-Event": "push\udcff"}, {}, "refused X-GitHub-Event"),  # a byte that is not UTF-8
    ("github", {**GH, "X-GitHub-Delivery": "d-\udcff"}, {}, "refused X-GitHub-Delivery"),
    ("github", GH, b'{"action": "published", "zen": "\\ud800"}', "refused zen"),
    ("github", GH, b'{"a": ' + b"[" * 1200 + b"]" * 1200 + b"}", "refused None"),  # RecursionError
    ("github", GH, b'{"a": 1e400}', "refused a"),
    ("github", GH, b'{"a": NaN}', "refused a"),
    ("github", GH, b'{"a": "\xed\xa0\x80"}', "refused None"),  # an encoded surrogate is not UTF-8
    ("gitlab", GL, with_(PIPELINE, "object_attributes", ["x"]), "refused object_attributes"),
    ("gitlab", GL, with_(PIPELINE, "object_attributes", "status", ["success"]), "refused object_attributes.status"),
    ("gitlab", GL, with_(PIPELINE, "object_attributes", "url", 5), "refused object_attributes.url"),
    ("gitlab", GL, {"object_kind": "push.forged"}, "refused object_kind"),
    ("gitlab", GL, {"object_kind": "x" * 5000}, "refused object_kind"),
    ("gitlab", GL, {"object_kind": "push", "ref": ["a"]}, "refused ref"),
    ("gitlab", {"Idempotency-Key": "k\udcff"}, {"object_kind": "push"}, "refused Idempotency-Key"),
    ("gitlab", GL, deep(1000), "refused None"),
    ("harbor", {}, with_(HARBOR, "occur_at", 1e308), "accepted"),  # an unreadable time is dropped
    ("harbor", {}, with_(HARBOR, "occur_at", 1586922308000), "accepted"),  # epoch milliseconds
    ("harbor", {}, json.dumps(HARBOR).replace("1586922308", "Infinity").encode(), "refused occur_at"),
    ("harbor", {}, with_(HARBOR, "event_data", "resources", 0, "tag", 5), "refused event_data.resources[0].tag"),
    ("harbor", {}, with_(HARBOR, "event_data", "resources", 0, "tag", ["v1"]), "refused event_data.resources[0].tag"),
    ("acr", {}, with_(ACR, "target", "mediaType", [V2]), "refused target.mediaType"),
    ("acr", {}, with_(ACR, "target", "tag", {"v": 1}), "refused target.tag"),
    ("acr", {}, with_(ACR, "timestamp", 1e300), "accepted"),
    ("ecr", {}, with_(ECR, "detail", "manifest-media-type", [V2]), "refused detail.manifest-media-type"),
    ("ecr", {}, with_(ECR, "detail", "image-tag", 5), "refused detail.image-tag"),
    ("gar", {}, gar({"action": "INSERT", "digest": f"@{DIGEST}"}), "refused digest"),
    ("gar", {}, gar({"action": "INSERT", "digest": f"{IMAGE}@{DIGEST}", "tag": 5}), "refused tag"),
    ("gar", {}, {"message": {"messageId": "m1", "data": base64.b64encode(b"[" * 2000 + b"]" * 2000).decode()}},
     "refused message.data"),
    ("dockerhub", {}, {"repository": {"repo_name": "../../v2/token?x="}, "push_data": {"tag": "v1"}},
     "refused repository.repo_name"),
    ("dockerhub", {}, {"repository": {"repo_name": "acme/app"}, "push_data": {"tag": "v1/../../x"}},
     "refused push_data.tag"),
    ("quay", {}, {"docker_url": "quay.io/a/b", "updated_tags": ["v 1"]}, "refused updated_tags"),
    ("quay", {}, {"docker_url": "quay.io/A B/c", "updated_tags": ["v1"]}, "refused docker_url"),
]


@pytest.mark.parametrize("name,headers,body,expected", FINDINGS)
async def test_findings(name, headers, body, expected):
    assert await outcome(name, body if isinstance(body, bytes) else json.dumps(body).encode(), headers) == expected


@pytest.mark.parametrize("item,field", [
    ({**ITEM, "target": {**ITEM["target"], "mediaType": [V2]}}, "events[0].target.mediaType"),
    ({**ITEM, "target": {**ITEM["target"], "tag": 5}}, "events[0].target.tag"),
])
async def test_distribution_dead_letters_a_wrongly_typed_item_and_keeps_the_rest(item, field):
    published = await run("distribution", {"events": [item, {**ITEM, "id": "e2"}]})
    assert [(p.field, p.index) if isinstance(p, Rejected) else p.subject for p in published][:2] == [(field, 0), "v1"]


# The members each normalizer reads, so that substitutions hit them often (they need not exist).
GITHUB_FOCUS = {
    "registry_package": (("action",), ("registry_package",), ("registry_package", "package_version"),
                         ("registry_package", "package_version", "package_url"),
                         ("registry_package", "package_version", "container_metadata"),
                         ("registry_package", "package_version", "version"), ("repository", "html_url")),
    "workflow_run": (("action",), ("workflow_run",), ("workflow_run", "conclusion"), ("workflow_run", "html_url"),
                     ("workflow_run", "id"), ("workflow_run", "updated_at"), ("workflow_run", "head_sha")),
}
GITHUB_CASES = [(path.parent.name, path) for path in sorted(GITHUB.glob("*/*.json"))]


@pytest.mark.parametrize("event,fixture", GITHUB_CASES, ids=[f"{e}/{p.name}" for e, p in GITHUB_CASES])
@hostile.bounded(15)
@given(data=st.data())
async def test_github_payloads_with_arbitrary_values(event, fixture, data):
    document = hostile.load(fixture)
    body = data.draw(hostile.mutated(document, GITHUB_FOCUS.get(event, (("action",), ("repository",)))))
    await outcome("github", body, {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-1"})


GITLAB_FOCUS = (("object_kind",), ("object_attributes",), ("object_attributes", "status"),
                ("object_attributes", "url"), ("project", "web_url"), ("commits",), ("ref",))


@pytest.mark.parametrize("fixture", sorted(GITLAB.glob("*.json")), ids=lambda p: p.name)
@hostile.bounded(20)
@given(data=st.data())
async def test_gitlab_payloads_with_arbitrary_values(fixture, data):
    body = data.draw(hostile.mutated(hostile.load(fixture), GITLAB_FOCUS))
    await outcome("gitlab", body, GL)


REGISTRY_CASES = {
    "harbor": ("harbor/push_artifact.json", (("occur_at",), ("event_data", "resources", 0, "tag"),
                                             ("event_data", "resources", 0))),
    "distribution": ("distribution/mixed.json", (("events", 0, "target", "mediaType"), ("events", 0, "target"),
                                                 ("events", 1, "target", "tag"), ("events", 0, "timestamp"))),
    "ecr": ("ecr/image-push.json", (("detail", "image-tag"), ("detail", "manifest-media-type"), ("time",))),
    "acr": ("acr/push.json", (("target", "tag"), ("target", "mediaType"), ("timestamp",), ("target",))),
    "dockerhub": ("dockerhub/push.json", (("repository", "repo_name"), ("push_data", "tag"),
                                          ("push_data", "pushed_at"))),
    "quay": ("quay/push.json", (("docker_url",), ("updated_tags",), ("updated_tags", 0))),
    "gar": ("gar/pubsub-push.json", (("message", "data"), ("message", "messageId"), ("message", "publishTime"))),
}


@pytest.mark.parametrize("name", sorted(REGISTRY_CASES))
@hostile.bounded(25)
@given(data=st.data())
async def test_registry_payloads_with_arbitrary_values(name, data):
    fixture, focus = REGISTRY_CASES[name]
    await outcome(name, data.draw(hostile.mutated(hostile.load(REGISTRY / fixture), focus)))


@hostile.bounded(40)
@given(data=st.data())
async def test_gar_messages_with_arbitrary_values(data):
    """The Pub/Sub message's ``data`` is a second JSON document, base64-encoded: mutated inside."""
    envelope = hostile.load(REGISTRY / "gar/pubsub-push.json")
    notification = json.loads(base64.b64decode(envelope["message"]["data"]))
    inner = data.draw(hostile.mutated(notification, (("digest",), ("tag",), ("action",))))
    envelope["message"]["data"] = base64.b64encode(inner).decode()
    await outcome("gar", json.dumps(envelope).encode())


AUTH_HEADERS = ("X-Hub-Signature-256", "X-Gitlab-Token", "Authorization")


@pytest.mark.parametrize("name", ["github", "gitlab", "harbor", "distribution", "ecr", "acr", "dockerhub", "quay",
                                  "gar"])
@hostile.bounded(30)
@given(values=st.lists(hostile.header_bytes, min_size=3, max_size=3), token=st.none() | hostile.texts.filter(lambda t: t != SECRET) | hostile.header_bytes.map(hostile.as_header),
       oidc=st.booleans())
def test_authentication_of_arbitrary_header_bytes_is_only_ever_unauthorized(name, values, token, oidc):
    env = {"TRIGGER_ROUTER_REGISTRIES__GAR__OIDC__AUDIENCE": "https://router/gar"} if oidc else {}
    headers = {header: hostile.as_header(raw) for header, raw in zip(AUTH_HEADERS, values)}
    with pytest.raises(errors.Unauthorized):
        source(name, **env).authenticate(Delivery(headers, b"{}", path_token=token))


@pytest.mark.parametrize("name,header,value", [
    ("gitlab", "X-Gitlab-Token", "s3cret\udcff"),  # raised UnicodeEncodeError before authentication
    ("github", "X-Hub-Signature-256", "sha256=\udcff\udcfe"),
    ("harbor", "Authorization", "Bearer \udc80"),
    ("gar", "Authorization", "Bearer " + ".".join(base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode()
                                                 for _ in range(3))),  # RecursionError in the JWT header
])
def test_authentication_findings(name, header, value):
    env = {"TRIGGER_ROUTER_REGISTRIES__GAR__OIDC__AUDIENCE": "https://router/gar"}
    with pytest.raises(errors.Unauthorized):
        source(name, **env).authenticate(Delivery({header: value}, b"{}", path_token=SECRET))
