"""What applying would change: server-managed fields left out, named lists by name, Secret values never."""

from __future__ import annotations

import pytest

from handlers.kubernetes import manifests
from router import errors


def deployment(replicas=1, image="web:1", **metadata):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod", **metadata},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "proxy:1"}, {"name": "app", "image": image}]}}},
            "status": {"readyReplicas": replicas}}


SERVER = {"resourceVersion": "9", "generation": 4, "uid": "u", "creationTimestamp": "2026-12-01T00:00:00Z",
          "managedFields": [{"manager": "helm"}], "annotations": {"deployment.kubernetes.io/revision": "3"}}


@pytest.mark.parametrize("live,desired,changes", [
    (deployment(**SERVER), deployment(), []),
    (deployment(3, **SERVER), deployment(1), [{"path": "spec.replicas", "live": 3, "desired": 1}]),
    (deployment(image="web:hotfix"), deployment(),
     [{"path": "spec.template.spec.containers[name=app].image", "live": "web:hotfix", "desired": "web:1"}]),
    (deployment(annotations={"team": "a"}), deployment(),
     [{"path": "metadata.annotations", "live": {"team": "a"}, "desired": None}]),
])
def test_diff(live, desired, changes):
    assert manifests.diff(manifests.Applied(desired, live)) == changes


def test_no_live_object_no_diff():
    assert manifests.diff(manifests.Applied(deployment(), None)) == []


def test_secret_values_are_never_in_a_change():
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "bGl2ZQ=="}}
    desired = {**live, "data": {"password": "bmV3", "user": "YXBw"}}
    assert manifests.diff(manifests.Applied(desired, live)) == [
        {"path": "data.password", "redacted": True}, {"path": "data.user", "redacted": True}]


def test_parse_unpacks_lists_and_documents():
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n" \
           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"
    assert [o["metadata"]["name"] for o in manifests.parse(text, "f")] == ["a", "b"]
    with pytest.raises(errors.PermanentError, match="every manifest needs apiVersion and kind"):
        manifests.parse("just: data\n", "f")
