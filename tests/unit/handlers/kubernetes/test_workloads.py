"""Reading workloads: rollout completion, image references and digests, pod problems, Job manifests."""

from __future__ import annotations

import pytest

from handlers.kubernetes import jobs, workloads

DIGEST = "sha256:" + "ab" * 32


def deployment(generation=2, observed=2, replicas=2, updated=2, ready=2, available=2, total=2, conditions=()):
    return {"kind": "Deployment", "metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": available, "conditions": list(conditions)}}


@pytest.mark.parametrize("obj,complete,failed", [
    (deployment(), True, None),
    (deployment(observed=1), False, None),                # the controller has not seen the new spec
    (deployment(updated=1), False, None),
    (deployment(ready=1), False, None),
    (deployment(available=1), False, None),
    (deployment(total=3), False, None),                   # an old replica is still there
    (deployment(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                             "message": "too slow"}]), False, "ProgressDeadlineExceeded: too slow"),
    ({**deployment(), "kind": "StatefulSet",
      "status": {**deployment()["status"], "currentRevision": "a", "updateRevision": "b"}}, False, None),
    ({**deployment(), "kind": "StatefulSet",
      "status": {**deployment()["status"], "currentRevision": "b", "updateRevision": "b"}}, True, None),
    ({"kind": "DaemonSet", "metadata": {"generation": 1}, "status": {
        "observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberReady": 3,
        "numberAvailable": 2}}, False, None),
])
def test_rollout(obj, complete, failed):
    state = workloads.rollout(obj)
    assert (state.complete, state.failed) == (complete, failed)


@pytest.mark.parametrize("image,repository,tag", [
    ("nginx", "docker.io/library/nginx", None),
    ("nginx:1.27", "docker.io/library/nginx", "1.27"),
    ("team/web:2", "docker.io/team/web", "2"),
    ("registry.invalid:5000/team/web:2@" + DIGEST, "registry.invalid:5000/team/web", "2"),
    ("localhost/web@" + DIGEST, "localhost/web", None),
    ("ghcr.io/o/r/web", "ghcr.io/o/r/web", None),
])
def test_image_reference(image, repository, tag):
    assert workloads.repository_of(image) == repository
    assert workloads.tag_of(image) == tag


@pytest.mark.parametrize("image_id,digest", [
    (f"registry.invalid/web@{DIGEST}", DIGEST),
    (f"docker-pullable://registry.invalid/web@{DIGEST}", DIGEST),
    (DIGEST, DIGEST),
    ("", None),
    ("registry.invalid/web:latest", None),
])
def test_digest_of(image_id, digest):
    assert workloads.digest_of(image_id) == digest


def test_pod_problems_and_owner():
    pod = {"metadata": {"labels": {"pod-template-hash": "5d9c"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c", "controller": True}]},
           "status": {"containerStatuses": [
               {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "OOMKilled"}}},
               {"name": "b", "state": {"waiting": {"reason": "ErrImagePull"}}},
               {"name": "c", "state": {"running": {}}}]}}
    assert workloads.problems(pod) == [("a", "crashloop", "CrashLoopBackOff"), ("a", "oomkilled", "OOMKilled"),
                                       ("b", "image_pull_failed", "ErrImagePull")]
    assert workloads.owner(pod) == ("Deployment", "web")


def test_selector():
    obj = {"spec": {"selector": {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]}, {"key": "canary", "operator": "DoesNotExist"}]}}}
    assert workloads.selector(obj) == "a=1,b=2,tier in (web,api),!canary"


BOUNDED = {"requests": {"cpu": "10m"}, "limits": {"cpu": "100m"}}


@pytest.mark.parametrize("containers,problem", [
    ([{"name": "t", "image": "x", "resources": BOUNDED}], None),
    ([{"name": "t", "image": "x"}], "containers[0] (t) has no resources.requests or resources.limits"),
    ([{"name": "t", "image": "x", "resources": {"requests": {"cpu": "1"}}}], "(t) has no resources.limits"),
    ([], "has no spec.template.spec.containers"),
])
def test_check_template(containers, problem):
    job = {"spec": {"template": {"spec": {"containers": containers}}}}
    if problem is None:
        jobs.check_template(job, allow_unbounded=False)
    else:
        with pytest.raises(ValueError) as refused:
            jobs.check_template(job, allow_unbounded=False)
        assert problem in str(refused.value)


def test_build_names_pins_and_labels():
    template = {"metadata": {"name": "Smoke_Test"}, "spec": {"template": {"spec": {"containers": [
        {"name": "t", "image": "registry.invalid/smoke:1@sha256:" + "00" * 32, "resources": BOUNDED}]}}}}
    job = jobs.build(template, namespace="ns", run_id="0123456789abcdef" * 2, rule="r", event_id="e",
                     event_source="/s", event_type="t", image=None, container=None, digest=DIGEST,
                     backoff_limit=0, active_deadline_seconds=60, ttl_seconds_after_finished=None)
    assert job["metadata"]["name"] == "smoke-test-0123456789ab"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/smoke:1@{DIGEST}"
    assert job["spec"]["template"]["metadata"]["labels"][jobs.LABEL_RUN] == "0123456789abcdef" * 2
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert template["metadata"]["name"] == "Smoke_Test"  # the rule's template is not modified
    assert jobs.pin("registry.invalid/smoke:1", None) == "registry.invalid/smoke:1"  # no digest asked for
    with pytest.raises(ValueError, match="'' is not a sha256 digest"):  # asked for, and empty: never "no pin"
        jobs.pin("registry.invalid/smoke:1", "")
