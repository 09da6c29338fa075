"""Which changes become events: table-driven over (what was known, the new object)."""

from __future__ import annotations

import pytest

from handlers.kubernetes.settings import Condition
from handlers.sources.kubernetes import transitions
from router import errors

WORKLOAD = transitions.OBSERVERS["Deployment"]


def deployment(image="web:1", replicas=2, generation=1, complete=True):
    ready = replicas if complete else 0
    return {"kind": "Deployment", "metadata": {"generation": generation, "uid": "u"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": ready, "availableReplicas": ready}}


def run(observer, old_obj, new_obj, baseline=False):
    old = None
    if old_obj is not None:
        old = observer.summarize(old_obj, None)
        old = observer.baseline(old) if baseline else old
    new = observer.summarize(new_obj, old)
    return [(t.name, t.identity) for t in observer.transitions(old, new, new_obj)], new


@pytest.mark.parametrize("old,new,expected", [
    (None, deployment(complete=False), [("rollout_started", "1")]),
    (None, deployment(), [("rollout_started", "1"), ("rollout_completed", "1")]),
    (deployment(), deployment(image="web:2", generation=2, complete=False),
     [("rollout_started", "2"), ("image_changed", "2")]),
    (deployment(), deployment(replicas=3, generation=2), [("scaled", "2")]),
    (deployment(), deployment(), []),
])
def test_workload_transitions(old, new, expected):
    found, _ = run(WORKLOAD, old, new, baseline=True)
    assert found == expected


def test_completion_is_emitted_once_per_template():
    _, summary = run(WORKLOAD, None, deployment(complete=False))
    done = WORKLOAD.summarize(deployment(), summary)
    assert [t.name for t in WORKLOAD.transitions(summary, done, deployment())] == ["rollout_completed"]
    again = WORKLOAD.summarize(deployment(), done)
    assert WORKLOAD.transitions(done, again, deployment()) == []


def test_failed_rollout():
    stuck = deployment(complete=False)
    stuck["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
    found, _ = run(WORKLOAD, deployment(complete=False), stuck)
    assert found == [("rollout_failed", "1")]


DIGEST = "sha256:" + "ab" * 32


def test_a_failed_rollout_names_the_digest_its_template_asks_for():
    """So a rule on rollout_failed can report on the commit that digest was built from."""
    stuck = deployment(image=f"127.0.0.1:5000/web@{DIGEST}", complete=False)
    stuck["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
    old = WORKLOAD.summarize(deployment(image=f"127.0.0.1:5000/web@{DIGEST}", complete=False), None)
    [failed] = [t for t in WORKLOAD.transitions(old, WORKLOAD.summarize(stuck, old), stuck) if t.name == "rollout_failed"]
    assert failed.data["images"] == [{"container": "app", "image": f"127.0.0.1:5000/web@{DIGEST}",
                                      "repository": "127.0.0.1:5000/web", "digest": DIGEST}]


def test_a_crashloop_names_the_digest_the_container_runs():
    observer = transitions.OBSERVERS["Pod"]
    crashing = pod("CrashLoopBackOff", 3)
    crashing["spec"] = {"containers": [{"name": "app", "image": "registry.example/web:1"}]}
    crashing["status"]["containerStatuses"][0].update(image="registry.example/web:1",
                                                      imageID=f"registry.example/web@{DIGEST}")
    old = observer.summarize(pod(), None)
    [crash] = observer.transitions(old, observer.summarize(crashing, old), crashing)
    assert crash.data["images"] == [{"container": "app", "image": "registry.example/web:1",
                                     "repository": "registry.example/web", "digest": DIGEST}]


def pod(waiting=None, restarts=0, ready=True):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"uid": "p", "ownerReferences": []}, "status": {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "app", "restartCount": restarts, "state": state}]}}


def test_pod_crashloop_once_per_restart_count():
    observer = transitions.OBSERVERS["Pod"]
    found, summary = run(observer, pod(), pod("CrashLoopBackOff", 3))
    assert found == [("crashloop", "app:3")]
    same = observer.summarize(pod("CrashLoopBackOff", 3), summary)
    assert observer.transitions(summary, same, pod("CrashLoopBackOff", 3)) == []


def test_repeated_readiness_failure():
    observer = transitions.OBSERVERS["Pod"]
    summary, emitted = observer.summarize(pod(), None), []
    for ready in [False, True, False, True, False, True, False]:
        new = observer.summarize(pod(ready=ready), summary)
        emitted += [t.name for t in observer.transitions(summary, new, pod(ready=ready))]
        summary = new
    assert emitted == ["readiness_failed"]


def test_generic_changed_and_condition():
    observer = transitions.generic([Condition(name="ready", path="status.conditions[?type==Ready].status",
                                              equals="True")])
    def obj(generation, ready):
        return {"metadata": {"generation": generation},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}}
    found, summary = run(observer, obj(1, "False"), obj(2, "True"))
    assert found == [("changed", "2"), ("ready", "2")]


@pytest.mark.parametrize("path,value", [
    ("spec.replicas", 3), ("spec.list[1]", "b"), ("spec.list[5]", None), ("status.conditions[?type==X]", None),
    ("missing.path", None),
])
def test_dig(path, value):
    document = {"spec": {"replicas": 3, "list": ["a", "b"]}, "status": {"conditions": []}}
    assert transitions.dig(document, path) == value


def test_conditions_on_a_built_in_kind_are_refused():
    from handlers.kubernetes.settings import KubernetesSettings, Watch
    from handlers.sources.kubernetes.watcher import ResourceWatch

    class FakeClient:
        cluster = "c"
    spec = Watch(group="apps", kind="Deployment", conditions=[{"name": "x", "path": "a", "equals": 1}])
    with pytest.raises(errors.ConfigError, match="conditions are for kinds without built-in transitions"):
        ResourceWatch(FakeClient(), None, None, spec, None, KubernetesSettings())
