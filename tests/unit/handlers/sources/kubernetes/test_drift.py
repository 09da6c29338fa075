"""Drift from managedFields: who changed which spec fields, from what to what; deployers are not drift."""

from __future__ import annotations

import pytest

from handlers.sources.kubernetes import drift, emit

DEPLOYERS = frozenset({"helm", "argocd-controller", "kustomize-controller", "kubectl-client-side-apply"})
APP = 'k:{"name":"app"}'


def container_fields(*names):
    return {"f:spec": {"f:template": {"f:spec": {"f:containers": {APP: {".": {}, **{f"f:{n}": {} for n in names}}}}}}}


def deployment(generation, replicas, image, managers, env=None):
    container = {"name": "app", "image": image, **({"env": env} if env else {})}
    return {"kind": "Deployment", "metadata": {"generation": generation, "uid": "u", "managedFields": managers},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}}}


def entry(manager, fields, operation="Update", time="2026-12-01T10:00:00Z"):
    return {"manager": manager, "operation": operation, "apiVersion": "apps/v1", "time": time,
            "fieldsType": "FieldsV1", "fieldsV1": fields}


def both(*fields):
    """FieldsV1 sets merged (one manager owning all of them)."""
    merged: dict = {}
    for f in fields:
        for key, value in f.items():
            merged[key] = both(merged[key], value) if key in merged else value
    return merged


CREATED = deployment(1, 1, "web:1", [entry("helm", both({"f:spec": {"f:replicas": {}}}, container_fields("name", "image")))])


def run(old_obj, new_obj, deployers=DEPLOYERS):
    old = {"drift": drift.remember(old_obj)} if old_obj else None
    return drift.transitions(old, {"drift": drift.remember(new_obj)}, new_obj, deployers)


def edited(manager):
    # What the apiserver records after `kubectl edit` set replicas and image: ownership moved to the editor.
    return deployment(2, 3, "web:2", [
        entry("helm", container_fields("name")),
        entry(manager, both({"f:spec": {"f:replicas": {}}}, container_fields("image")), time="2026-12-01T10:05:00Z")])


def test_kubectl_edit_of_replicas_and_image_is_one_drift_naming_the_manager_and_both_paths():
    [found] = run(CREATED, edited("kubectl-edit"))
    assert found.name == "drifted" and found.identity == "2:kubectl-edit:Update"
    assert found.data == {
        "manager": "kubectl-edit", "operation": "Update", "subresource": None, "time": "2026-12-01T10:05:00Z",
        "paths": ["spec.replicas", "spec.template.spec.containers[name=app].image"],
        "changes": [{"path": "spec.replicas", "from": 1, "to": 3},
                    {"path": "spec.template.spec.containers[name=app].image", "from": "web:1", "to": "web:2"}]}


@pytest.mark.parametrize("manager,drifts", [("helm", False), ("argocd-controller", False),
                                            ("kubectl-client-side-apply", False), ("kubectl-patch", True),
                                            ("kubectl-set", True), ("somebody-else", True)])
def test_deployers_are_not_drift_everyone_else_is(manager, drifts):
    assert bool(run(CREATED, edited(manager))) is drifts


def test_deployers_are_configurable():
    assert run(CREATED, edited("kubectl-edit"), DEPLOYERS | {"kubectl-edit"}) == []


def test_first_sight_and_unchanged_generation_are_not_drift():
    assert run(None, edited("kubectl-edit")) == []
    assert drift.transitions({"summary": "from an older release"}, {"drift": drift.remember(CREATED)},
                             CREATED, DEPLOYERS) == []
    assert run(CREATED, CREATED) == []


def test_env_values_are_never_copied_only_their_path():
    env_fields = {"f:spec": {"f:template": {"f:spec": {"f:containers": {APP: {"f:env": {
        'k:{"name":"DB_PASSWORD"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}}}
    old = deployment(1, 1, "web:1", [], env=[{"name": "DB_PASSWORD", "value": "hunter2"}])
    new = deployment(2, 1, "web:1", [entry("kubectl-edit", env_fields)], env=[{"name": "DB_PASSWORD", "value": "s3cret"}])
    [found] = run(old, new)
    assert found.data["changes"] == [{"path": "spec.template.spec.containers[name=app].env[name=DB_PASSWORD].value",
                                      "redacted": True}]
    assert "hunter2" not in repr(found.data) and "s3cret" not in repr(found.data)


def test_long_values_become_a_fingerprint():
    fields = container_fields("args")
    old, new = deployment(1, 1, "web:1", []), deployment(2, 1, "web:1", [entry("kubectl-edit", fields)])
    new["spec"]["template"]["spec"]["containers"][0]["args"] = ["x" * 600]
    [change] = run(old, new)[0].data["changes"]
    assert change["from"] is None and set(change["to"]) == {"fingerprint"}


@pytest.mark.parametrize("segments,readable", [
    (("f:spec", "f:replicas"), "spec.replicas"),
    (("f:spec", "f:template", "f:spec", "f:containers", APP, "f:image"), "spec.template.spec.containers[name=app].image"),
    (("f:spec", "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}', "f:name"), "spec.ports[containerPort=80,protocol=TCP].name"),
    (("f:spec", "f:finalizers", 'v:"a"'), "spec.finalizers[=a]"),
])
def test_fieldsv1_paths_read_like_the_docs(segments, readable):
    assert drift.readable(segments) == readable


def test_drift_event_id_is_pinned():
    # Golden: every replica and every re-list derives this id for this drift, so JetStream keeps one.
    [found] = run(CREATED, edited("kubectl-edit"))
    assert emit.event_id("prod", "u", found) == "0ecbf0c9-c0ad-5f35-a509-4d138c098cd8"
