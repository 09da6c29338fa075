"""``kubernetesJob`` with ``eventFile``: the event goes into the pods, checks come back out.

Against the local control plane: the apiserver stores what the action creates, the Job
controller makes the pods and the garbage collector follows owner references. kwok plays the
kubelet; it cannot run a container, so the termination message a container would write is set
by the ``kwok.trigger-router.dev/termination-message`` pod annotation (tests/kubeplane/stages.yaml),
which kwok copies into ``state.terminated.message`` exactly where a kubelet puts it.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from handlers.actions import kubernetes_job
from router import errors
from router.model import events
from router.plugins import actions

REPORT = {"checks": [{"name": "checkout", "passed": True, "ms": 120},
                     {"name": "search", "passed": False, "detail": "p99 900 ms"}],
          "reason": "1 of 2 journeys failed"}


def event(event_id: str = "e-1") -> events.CloudEvent:
    return events.make({"id": event_id, "source": "/tests/deployer", "type": "dev.example.deployed"},
                       {"service": "web", "digest": "sha256:" + "5e" * 32})


def params(namespace: str, *, outcome: str | None = None, message: str | None = None, **more) -> dict:
    annotations = {}
    if outcome:
        annotations["kwok.trigger-router.dev/outcome"] = outcome
    if message is not None:
        annotations["kwok.trigger-router.dev/termination-message"] = message
    return {"namespace": namespace, "eventFile": True, **more, "job": {"metadata": {"name": "fn"}, "spec": {
        "template": {"metadata": {"annotations": annotations}, "spec": {"containers": [{
            "name": "journeys", "image": "registry.invalid/journeys:1", "resources": {
                "requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}}]}}}}}


async def run(namespace: str, run_id: str, **kwargs) -> actions.Result:
    checked = kubernetes_job.KubernetesJob.model_validate(params(namespace, **kwargs))
    return await kubernetes_job.run_job(checked, actions.Context(run_id, "fn", event(), 60.0))


async def test_the_pod_mounts_the_event_file_and_the_config_map_is_owned_by_the_job(kube_client, namespace):
    result = await run(namespace, "1" * 32, message=json.dumps(REPORT))
    job = await kube_client.request("GET", f"{kubernetes_job.jobs_path(namespace)}/fn-111111111111")
    config_map = await kube_client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/fn-111111111111-event")
    # The ConfigMap is the Job's: the garbage collector deletes it with the Job.
    assert config_map["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "fn-111111111111", "uid": job["metadata"]["uid"]}]
    written = json.loads(config_map["data"]["event.json"])
    assert (written["id"], written["source"], written["type"], written["data"]) == (
        "e-1", "/tests/deployer", "dev.example.deployed", {"service": "web", "digest": "sha256:" + "5e" * 32})
    # The pod the Job controller made (not only the template) mounts it and has the two variables.
    listing = await kube_client.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={
        "labelSelector": f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"})
    (pod,) = listing["items"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "trigger-router-event")
    assert volume["configMap"]["name"] == "fn-111111111111-event"
    assert volume["configMap"]["items"] == [{"key": "event.json", "path": "event.json"}]
    (container,) = pod["spec"]["containers"]
    assert {"name": "trigger-router-event", "mountPath": "/etc/trigger-router", "readOnly": True} in \
        container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["TRIGGER_ROUTER_RUN_ID"], env["TRIGGER_ROUTER_EVENT_ID"]) == ("1" * 32, "e-1")
    # Exit 0 decides success; the termination message's checks and reason join the outcome.
    assert result.outcome == "success"
    assert result.reason == f"Job {namespace}/fn-111111111111 complete: 1 of 2 journeys failed"
    assert result.checks[1:] == [{"name": "checkout", "passed": True, "ms": 120, "container": "journeys"},
                                 {"name": "search", "passed": False, "detail": "p99 900 ms", "container": "journeys"}]
    assert result.checks[0]["pods"][0]["containers"][0]["reportedChecks"] == 2


async def test_a_failing_job_reports_its_checks_too(kube_client, namespace):
    report = {"checks": [{"name": "login", "passed": False}], "reason": "login returns 500"}
    result = await run(namespace, "2" * 32, outcome="fail", message=json.dumps(report))
    assert result.outcome == "failure"
    assert result.reason.endswith("(exit codes " + result.checks[0]["pods"][0]["name"] + "/journeys=1): "
                                  "login returns 500")
    assert result.checks[1:] == [{"name": "login", "passed": False, "container": "journeys"}]


async def test_a_message_outside_the_contract_is_kept_as_text(kube_client, namespace):
    result = await run(namespace, "3" * 32, message="all 12 journeys passed")
    assert result.outcome == "success" and len(result.checks) == 1
    assert result.checks[0]["pods"][0]["containers"][0]["terminationMessage"] == "all 12 journeys passed"


async def test_a_redelivered_run_finds_its_job_and_config_map(kube_client, namespace):
    first = await run(namespace, "4" * 32)
    second = await run(namespace, "4" * 32)
    assert first.outcome == second.outcome == "success"
    maps = await kube_client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", query={
        "labelSelector": "trigger-router.dev/run-id=" + "4" * 32})
    assert [m["metadata"]["name"] for m in maps["items"]] == ["fn-444444444444-event"]
    jobs = await kube_client.request("GET", kubernetes_job.jobs_path(namespace))
    assert [j["metadata"]["name"] for j in jobs["items"]] == ["fn-444444444444"]


async def test_the_config_map_goes_with_its_job(kube_client, namespace):
    await run(namespace, "5" * 32)
    await kubernetes_job.delete_job(namespace, "fn-555555555555")
    path = f"/api/v1/namespaces/{namespace}/configmaps/fn-555555555555-event"
    async with asyncio.timeout(60):
        while True:
            try:
                await kube_client.request("GET", path)
                await asyncio.sleep(0.5)
            except errors.KubernetesRefused as exc:
                assert exc.status == 404
                break


async def test_a_template_that_already_uses_the_mount_is_refused_before_any_job(kube_client, namespace):
    clashing = params(namespace)
    clashing["job"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "mine", "mountPath": "/etc/trigger-router/"}]
    checked = kubernetes_job.KubernetesJob.model_validate(clashing)
    with pytest.raises(errors.PermanentError, match="already mounts /etc/trigger-router; no Job created"):
        await kubernetes_job.run_job(checked, actions.Context("6" * 32, "fn", event(), 30.0))
    jobs = await kube_client.request("GET", kubernetes_job.jobs_path(namespace))
    assert jobs["items"] == []
