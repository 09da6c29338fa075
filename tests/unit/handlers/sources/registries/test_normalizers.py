"""Container-registry webhooks through each adapter: vendor example payloads in, push events out.

Subjects, times, purls and ``customData`` are worked out by hand from the fixtures (their README) and
the adapters' docstrings; event ids are pinned in ``tests/unit/test_stable_ids.py``. Docker Hub and Quay
resolve tags over HTTP: only their refusals before any request are here (``tests/integration/registries``).
"""

from __future__ import annotations

import base64
import inspect
import json
from pathlib import Path

import pytest

from router import errors
from router.config import settings as config
from router.plugins import Delivery, Rejected, catalog

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "registry"
ARTIFACT = "dev.cdevents.artifact.published.0.3.0"
DIGEST = "sha256:" + "0123456789abcdef" * 4
V2 = "application/vnd.docker.distribution.manifest.v2+json"
UNTAGGED = {"TRIGGER_ROUTER_REGISTRIES__UNTAGGED": "true"}
H = "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"
D = "sha256:af06af3514c44a964d3b905b498cf6493db8f1cde7c10e078213a89c87308ba0"
E = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12340000"
G = "sha256:6ec128e26cd5a3ba7b4f3d7c4fbb8f4ab4a5d0e0b2b0cd8bb1c8a8d9e8f7a6b5"
A = "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"
ECR_HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
GAR_IMAGE = "us-east1-docker.pkg.dev/my-project/my-repo/hello-world"


def source(name: str, env: dict[str, str] | None = None):
    return catalog.load().webhook_sources[name](config.load(None, env=env or {}))


async def normalize(name: str, body: bytes | dict, env: dict[str, str] | None = None) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = source(name, env).normalize(Delivery({}, raw, path_token=None))
    return await result if inspect.isawaitable(result) else result


def observed(item) -> tuple:
    if isinstance(item, Rejected):
        return item.reason, item.field, item.index
    return item.type, item.subject, item.attributes.get("time")


def custom(registry: str, repository: str, digest: str, tag: str, media_type: str | None = None) -> dict:
    return {"registry": registry, "repository": repository, "digest": digest, "tag": tag,
            "mediaType": media_type, "index": False}


@pytest.mark.parametrize("name,fixture,origin,expected,custom_data", [
    ("harbor", "harbor/push_artifact.json", "https://hub.harbor.com/test-webhook/debian",
     [("io.goharbor.push", "latest", "2020-04-15T03:45:08Z"),  # occur_at is epoch seconds
      (ARTIFACT, f"pkg:oci/debian@{H}?repository_url=hub.harbor.com/test-webhook/debian&tag=latest",
       "2020-04-15T03:45:08Z")], custom("harbor", "hub.harbor.com/test-webhook/debian", H, "latest")),
    ("distribution", "distribution/mixed.json", "https://registry.test:5000/root/test",
     [("dev.cncf.distribution.push", "more-auth", "2023-01-25T14:45:54.173270+11:00"),
      (ARTIFACT, f"pkg:oci/test@{D}?repository_url=registry.test:5000/root/test&tag=more-auth",
       "2023-01-25T14:45:54.173270+11:00"),
      ("payload has no target.digest", "events[3].target.digest", 3)],  # the pull and the blob: skipped
     custom("distribution", "registry.test:5000/root/test", D, "more-auth", V2)),
    ("ecr", "ecr/image-push.json", f"https://{ECR_HOST}/my-repository-name",
     [("com.amazonaws.ecr.push", "latest", "2019-11-16T01:54:34Z"),
      (ARTIFACT, f"pkg:oci/my-repository-name@{E}?repository_url={ECR_HOST}/my-repository-name&tag=latest",
       "2019-11-16T01:54:34Z")], custom("ecr", f"{ECR_HOST}/my-repository-name", E, "latest")),
    ("gar", "gar/pubsub-push.json", f"https://{GAR_IMAGE}",
     [("com.google.artifactregistry.push", "1.1", "2021-02-26T19:13:55.749000Z"),
      (ARTIFACT, f"pkg:oci/hello-world@{G}?repository_url={GAR_IMAGE}&tag=1.1", "2021-02-26T19:13:55.749000Z")],
     custom("gar", GAR_IMAGE, G, "1.1")),
    ("acr", "acr/push.json", "https://myregistry.azurecr.io/hello-world",
     [("com.azure.containerregistry.push", "v1", "2017-11-17T16:52:01.343145Z"),  # nanoseconds cut
      (ARTIFACT, f"pkg:oci/hello-world@{A}?repository_url=myregistry.azurecr.io/hello-world&tag=v1",
       "2017-11-17T16:52:01.343145Z")], custom("acr", "myregistry.azurecr.io/hello-world", A, "v1", V2)),
])
async def test_fixture_events(name, fixture, origin, expected, custom_data):
    published = await normalize(name, (FIXTURES / fixture).read_bytes())
    assert [observed(item) for item in published] == expected
    assert {item.source for item in published if not isinstance(item, Rejected)} == {origin}
    artifact = published[1].json()
    assert (artifact["customData"], artifact["subject"]["source"]) == (custom_data, origin)


async def test_gar_event_data_is_the_decoded_message_not_the_envelope():
    [push, _] = await normalize("gar", (FIXTURES / "gar/pubsub-push.json").read_bytes())
    assert push.json() == {"action": "INSERT", "digest": f"{GAR_IMAGE}@{G}", "tag": f"{GAR_IMAGE}:1.1"}


def acr(action: str = "push", **target) -> dict:
    return {"id": "e1", "action": action, "target": {"repository": "web", "digest": DIGEST, **target},
            "request": {"host": "acme.azurecr.io"}}


def harbor(*resources, kind: str = "PUSH_ARTIFACT", **event_data) -> dict:
    """A Harbor notification; ``repository=None`` (JSON null) stands for a missing member."""
    return {"type": kind, "event_data": {"repository": {"repo_full_name": "lib/app"}, "resources": list(resources),
                                         **event_data}}


def ecr(action: str = "PUSH", result: str = "SUCCESS", region: str = "us-west-2", **detail) -> dict:
    return {"id": "e1", "detail-type": "ECR Image Action", "account": "1", "region": region,
            "detail": {"action-type": action, "result": result, "repository-name": "app",
                       "image-digest": DIGEST, **detail}}


def gar(message=None, **fields) -> dict:
    data = base64.b64encode(message if isinstance(message, bytes) else json.dumps(message).encode()).decode()
    return {"message": {"messageId": "m1", "data": data, **fields}}


def distribution(*items, **target) -> dict:
    item = {"id": "e1", "action": "push", "request": {"host": "reg.local:5000"},
            "target": {"mediaType": V2, "repository": "app", "digest": DIGEST, **target}}
    return {"events": list(items) if items else [item]}


RES = {"digest": DIGEST, "resource_url": "harbor.local/lib/app:v1", "tag": "v1"}
INSERT = {"action": "INSERT", "digest": f"{GAR_IMAGE}@{DIGEST}"}


@pytest.mark.parametrize("name,env,body,expected", [
    ("acr", {}, acr(), [("com.azure.containerregistry.push", DIGEST)]),  # by digest: no artifact by default
    ("acr", UNTAGGED, acr(), [("com.azure.containerregistry.push", DIGEST),
                              (ARTIFACT, f"pkg:oci/web@{DIGEST}?repository_url=acme.azurecr.io/web")]),
    ("harbor", {}, harbor({**RES, "tag": DIGEST}), [("io.goharbor.push", DIGEST)]),  # digest repeated as tag
    ("harbor", {}, harbor(RES, {**RES, "tag": "v2"}),
     [("io.goharbor.push", "v1"), (ARTIFACT, f"pkg:oci/app@{DIGEST}?repository_url=harbor.local/lib/app&tag=v1"),
      ("io.goharbor.push", "v2"), (ARTIFACT, f"pkg:oci/app@{DIGEST}?repository_url=harbor.local/lib/app&tag=v2")]),
    ("ecr", {}, ecr(region="cn-north-1", **{"image-tag": "v1"}),
     [("com.amazonaws.ecr.push", "v1"),
      (ARTIFACT, f"pkg:oci/app@{DIGEST}?repository_url=1.dkr.ecr.cn-north-1.amazonaws.com.cn/app&tag=v1")]),
    ("ecr", {}, ecr(), [("com.amazonaws.ecr.push", DIGEST)]),
    ("gar", {}, gar(INSERT), [("com.google.artifactregistry.push", DIGEST)]),
    ("distribution", {"TRIGGER_ROUTER_REGISTRIES__DISTRIBUTION__HOST": "registry.example.com"},
     distribution(tag="v1"), [("dev.cncf.distribution.push", "v1"),
                              (ARTIFACT, f"pkg:oci/app@{DIGEST}?repository_url=registry.example.com/app&tag=v1")]),
    ("distribution", {}, distribution(mediaType=None, tag="v1", url=f"http://r/v2/app/manifests/{DIGEST}"),
     [("dev.cncf.distribution.push", "v1"),
      (ARTIFACT, f"pkg:oci/app@{DIGEST}?repository_url=reg.local:5000/app&tag=v1")]),
])
async def test_push_variants(name, env, body, expected):
    assert [(e.type, e.subject) for e in await normalize(name, body, env)] == expected


@pytest.mark.parametrize("name,body", [
    ("harbor", harbor(RES, kind="PULL_ARTIFACT")), ("harbor", {"type": "SCANNING_STOPPED"}),
    ("acr", acr("delete")), ("acr", {"action": "ping"}), ("acr", {"action": "chart_push"}),
    ("ecr", {"detail-type": "ECR Image Scan"}), ("ecr", ecr(result="FAILURE")), ("ecr", ecr(action="DELETE")),
    ("gar", gar({**INSERT, "action": "DELETE"})), ("distribution", {"events": []}),
    ("distribution", distribution({"action": "pull", "target": {"mediaType": V2}})),
    ("distribution", distribution({"action": "push", "target": {"mediaType": "application/octet-stream"}})),
    ("distribution", distribution({"action": "push", "target": {"url": "http://r/v2/app/blobs/sha256:1"}})),
])
async def test_other_notifications_are_accepted_and_not_published(name, body):
    assert await normalize(name, body) == []


@pytest.mark.parametrize("name,body,field", [
    *[(name, body, None) for name in ("harbor", "distribution", "ecr", "gar", "acr", "dockerhub", "quay")
      for body in (b"", b"{not json", b"[]", b'"push"')],
    ("harbor", {}, "type"), ("harbor", {"type": 5}, "type"),
    ("harbor", harbor(repository=None), "event_data.repository.repo_full_name"),
    ("harbor", harbor(repository={"repo_full_name": 5}), "event_data.repository.repo_full_name"),
    ("harbor", harbor(resources=None), "event_data.resources"), ("harbor", harbor(resources={}), "event_data.resources"),
    ("harbor", harbor({}), "event_data.resources[0].digest"), ("harbor", harbor("x"), "event_data.resources[0].digest"),
    ("harbor", harbor({**RES, "digest": "sha256:abc"}), "event_data.resources[0].digest"),
    ("harbor", harbor(RES, {"digest": DIGEST}), "event_data.resources[1].resource_url"),
    ("distribution", {}, "events"), ("distribution", {"events": {"id": "e1"}}, "events"),
    ("ecr", {}, "detail-type"), ("ecr", {"detail-type": "ECR Image Action"}, "detail"),
    ("ecr", {"detail-type": "ECR Image Action", "detail": "PUSH"}, "detail"), ("ecr", {**ecr(), "id": None}, "id"),
    ("ecr", ecr(**{"image-digest": "latest"}), "detail.image-digest"),
    ("ecr", ecr(**{"repository-name": ""}), "detail.repository-name"),
    ("ecr", {**ecr(), "account": None}, "account"), ("ecr", {**ecr(), "region": 5}, "region"),
    ("gar", {}, "message.messageId"), ("gar", {"message": "x"}, "message.messageId"),
    ("gar", {"message": {"messageId": "m1"}}, "message.data"),
    ("gar", {"message": {"messageId": "m1", "data": 5}}, "message.data"),
    ("gar", {"message": {"messageId": "m1", "data": "%%%"}}, "message.data"),
    ("gar", gar(b"not json"), "message.data"), ("gar", gar(b"\xff\xfe"), "message.data"),
    ("gar", gar([1]), "message.data"), ("gar", gar({}), "action"), ("gar", gar({"action": "INSERT"}), "digest"),
    ("gar", gar({"action": "INSERT", "digest": f"{GAR_IMAGE}:1.1"}), "digest"),
    ("gar", gar({**INSERT, "tag": f"{GAR_IMAGE}-other:1.1"}), "tag"), ("gar", gar({**INSERT, "tag": GAR_IMAGE}), "tag"),
    ("acr", {}, "action"), ("acr", {"action": 5}, "action"), ("acr", {**acr(), "id": ""}, "id"),
    ("acr", acr(digest=None), "target.digest"), ("acr", acr(digest="sha256:ABC"), "target.digest"),
    ("acr", acr(repository=None), "target.repository"), ("acr", {**acr(), "request": {}}, "request.host"),
    ("dockerhub", {}, "repository.repo_name"), ("dockerhub", {"repository": {"repo_name": "a/b"}}, "push_data.tag"),
    ("dockerhub", {"repository": {"repo_name": 5}, "push_data": {"tag": "v1"}}, "repository.repo_name"),
    ("dockerhub", {"repository": {"repo_name": "a/b"}, "push_data": {"tag": ""}}, "push_data.tag"),
    ("quay", {}, "docker_url"), ("quay", {"docker_url": 5}, "docker_url"),
    ("quay", {"docker_url": "quay.io/", "updated_tags": ["v1"]}, "docker_url"),
    ("quay", {"docker_url": "quay.io/a/b"}, "updated_tags"),
    ("quay", {"docker_url": "quay.io/a/b", "updated_tags": []}, "updated_tags"),
    ("quay", {"docker_url": "quay.io/a/b", "updated_tags": ["v1", 5]}, "updated_tags"),
])
async def test_refusals_name_the_field(name, body, field):
    with pytest.raises(errors.BadRequest) as caught:
        await normalize(name, body)
    assert caught.value.field == field


ITEM = {"id": "e1", "action": "push", "target": {"mediaType": V2, "repository": "app", "digest": DIGEST}}


@pytest.mark.parametrize("item,reason,field", [
    (5, "payload has no id", "events[0].id"),  # too broken to tell what it is: kept, not skipped
    ({"id": "e1"}, "payload has no target.digest", "events[0].target.digest"),
    ({"id": "e1", "action": "push", "target": "app"}, "payload has no target.digest", "events[0].target.digest"),
    ({**ITEM, "id": 5}, "id must be a str", "events[0].id"),
    ({**ITEM, "target": {**ITEM["target"], "digest": "sha256:x"}},
     "target.digest is not a sha256:<64 hex> digest", "events[0].target.digest"),
    ({**ITEM, "target": {**ITEM["target"], "repository": ""}}, "payload has no target.repository",
     "events[0].target.repository"),
    (ITEM, "payload has no request.host", "events[0].request.host"),
])
async def test_distribution_dead_letters_a_bad_item_and_keeps_the_rest(item, reason, field):
    good = {**ITEM, "id": "e2", "request": {"host": "reg.local"}, "target": {**ITEM["target"], "tag": "v1"}}
    published = await normalize("distribution", distribution(item, good))
    assert [observed(p) if isinstance(p, Rejected) else (p.type, p.subject) for p in published] == [
        (reason, field, 0), ("dev.cncf.distribution.push", "v1"),
        (ARTIFACT, f"pkg:oci/app@{DIGEST}?repository_url=reg.local/app&tag=v1")]


def secret_env(name: str, secrets: list[str]) -> dict[str, str]:
    return {f"TRIGGER_ROUTER_REGISTRIES__{name.upper()}__SECRETS": json.dumps(secrets)}


@pytest.mark.parametrize("name", ["harbor", "distribution", "ecr", "acr"])
@pytest.mark.parametrize("secrets,authorization,accepted", [
    (["s3cret"], "Bearer s3cret", True), (["s3cret"], "bearer  s3cret ", True), (["s3cret"], "s3cret", True),
    (["old", "new"], "Bearer old", True),  # rotation: any configured secret
    (["s3cret"], "Bearer other", False), (["s3cret"], "Basic s3cret", False), (["s3cret"], "Bearer", False),
    (["s3cret"], "", False), (["s3cret"], None, False), ([], "Bearer s3cret", False),
])
def test_authorization_header(name, secrets, authorization, accepted):
    headers = {"Authorization": authorization} if authorization is not None else {}
    check_auth(source(name, secret_env(name, secrets)), Delivery(headers, b"{}", path_token="s3cret"), accepted)


@pytest.mark.parametrize("name", ["dockerhub", "quay", "gar"])
@pytest.mark.parametrize("secrets,token,accepted", [
    (["s3cret"], "s3cret", True), (["old", "new"], "new", True),
    (["s3cret"], "other", False), (["s3cret"], "", False), (["s3cret"], None, False), ([], "s3cret", False),
])
def test_path_token(name, secrets, token, accepted):
    delivery = Delivery({"Authorization": "Bearer s3cret"}, b"{}", path_token=token)
    check_auth(source(name, secret_env(name, secrets)), delivery, accepted)


@pytest.mark.parametrize("secrets,token", [([], None), (["s3cret"], "s3cret")])  # a right secret is not enough
def test_gar_with_oidc_wants_a_bearer_token(secrets, token):
    env = {"TRIGGER_ROUTER_REGISTRIES__GAR__OIDC__AUDIENCE": "https://router.example/webhooks/gar"}
    check_auth(source("gar", {**env, **secret_env("gar", secrets)}), Delivery({}, b"{}", path_token=token), False)


def check_auth(adapter, delivery: Delivery, accepted: bool) -> None:
    if accepted:
        assert adapter.authenticate(delivery) is None
    else:
        with pytest.raises(errors.Unauthorized):
            adapter.authenticate(delivery)
    assert adapter.delivery_id(delivery) == ""  # registries' ids come from the payload
