"""The example Kubernetes function against a fake client, as a function author unit-tests one:
``router.functions.Context`` takes the services behind it as an argument."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from router.functions import Context, Event

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "functions"))
from deploychecks import restarts, version  # noqa: E402

NAMESPACE, NAME = "prod", "shop"


class FakeKube:
    def __init__(self, restart_counts: list[int]) -> None:
        self.restart_counts = restart_counts
        self.pod_lists = 0

    async def request(self, method, path, query=None):
        if path.endswith(f"/deployments/{NAME}"):
            return {"metadata": {"uid": "d1", "annotations": {restarts.REVISION: "3"}}}
        if path.endswith("/replicasets"):
            owned = [{"uid": "d1"}]
            return {"items": [
                {"metadata": {"name": "shop-old", "ownerReferences": owned, "annotations": {restarts.REVISION: "2"},
                              "labels": {"pod-template-hash": "old"}}},
                {"metadata": {"name": "shop-new", "ownerReferences": owned, "annotations": {restarts.REVISION: "3"},
                              "labels": {"pod-template-hash": "new"}}}]}
        assert query == {"labelSelector": "pod-template-hash=new"}
        count = self.restart_counts[min(self.pod_lists, len(self.restart_counts) - 1)]
        self.pod_lists += 1
        return {"items": [{"metadata": {"name": "shop-new-a"},
                           "status": {"containerStatuses": [{"name": "app", "restartCount": count}]}}]}


class Services:
    def __init__(self, kube) -> None:
        self.kube = kube

    async def kubernetes(self):
        return self.kube


def context(kube, **params) -> Context:
    return Context(run_id="r1", rule="soak", attempt=1, deadline=time.monotonic() + 30,
                   params={"namespace": NAMESPACE, "deployment": NAME, **params}, events={},
                   log=logging.LoggerAdapter(logging.getLogger("test"), {}), traceparent=None, helpers=Services(kube))


EVENT = Event("e1", "k8s://test", "io.k8s.deployment.rollout_completed", None, None, {}, {})


async def test_no_restart_during_the_window_passes():
    kube = FakeKube([0])
    result = await restarts.no_restarts(EVENT, context(kube, minutes=0.002, interval=0.02))
    assert result.passed and result.reason == "no restart in 1 pod(s) of shop-new"
    assert kube.pod_lists >= 2, "the pods were watched over the window, not looked at once"


async def test_a_restart_during_the_window_fails_at_once():
    kube = FakeKube([0, 0, 2])
    result = await restarts.no_restarts(EVENT, context(kube, minutes=1, interval=0.01))
    assert not result.passed
    assert result.reason == "shop-new-a/app restarted 2 time(s) after the rollout of shop-new"
    assert [c.error for c in result.checks] == ["2 restart(s), at most 0"]


@pytest.mark.parametrize("data, commit", [
    ({"after": "abc"}, "abc"), ({"workflow_run": {"head_sha": "def"}}, "def"), ({"checkout_sha": "0a1"}, "0a1"),
    ({"ref": "refs/heads/main"}, None),
])
def test_the_commit_of_an_event(data, commit):
    assert version.commit_of(data) == commit
