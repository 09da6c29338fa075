"""``kubernetesJob`` end to end: event -> rule -> Job on the local control plane -> outcome.

kwok plays the kubelet: a Job's pod succeeds (exit 0) unless annotated to fail (exit 1) or hang.
"""

from __future__ import annotations

import asyncio
import textwrap

import pytest
import yaml

from handlers.actions import kubernetes_job
from router import errors
from router.engine import runs
from router.model import events, tracecontext
from router.plugins import actions, catalog
from router.rules import loading as rules
from tests.integration.test_routing import outcomes_for, start_routing, stop
from tests.support import cdevents_schema

DIGEST = "sha256:" + "5e" * 32
RULE = """
kind: TriggerRule
metadata: {{name: smoke-{name}}}
spec:
  filters: [{{exact: {{type: dev.example.deployed}}}}]
  policy: {{timeout: 60s}}
  action:
    kubernetesJob:
      namespace: {namespace}
      digest: "{{{{ data.digest }}}}"
      activeDeadlineSeconds: {deadline}
      logTailLines: 5
      job:
        metadata: {{name: smoke}}
        spec:
          template:
            metadata:
              annotations: {annotations}
            spec:
              containers:
                - name: smoke
                  image: registry.invalid/smoke:1
                  args: ["--target", "{{{{ data.service }}}}"]
                  resources:
                    requests: {{cpu: 10m, memory: 16Mi}}
                    limits: {{cpu: 100m, memory: 64Mi}}
"""


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def deployed_event(event_id: str) -> events.CloudEvent:
    return events.make({"id": event_id, "source": "/tests/deployer", "type": "dev.example.deployed",
                        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
                       {"service": "web", "digest": DIGEST})


@pytest.mark.parametrize("name,annotations,deadline,outcome,reason", [
    ("ok", "{}", 30, "success", "complete"),
    ("fail", '{"kwok.trigger-router.dev/outcome": "fail"}', 30, "failure", "BackoffLimitExceeded"),
    ("hang", '{"kwok.trigger-router.dev/outcome": "hang"}', 2, "failure", "DeadlineExceeded"),
])
async def test_job_outcome(edge, tmp_path, kube_client, namespace, name, annotations, deadline, outcome, reason):
    tasks = await start_routing(edge, tmp_path, RULE.format(name=name, namespace=namespace,
                                                            annotations=annotations, deadline=deadline))
    try:
        trigger = deployed_event(f"deploy-{name}")
        await edge.bus.publish(trigger)
        *_, finished = await outcomes_for(edge, 3, timeout=60)
    finally:
        await stop(tasks)
    cdevents_schema.validate(finished)
    content = finished["subject"]["content"]
    assert content["outcome"] == outcome, content
    assert reason in content["reason"]
    [check] = finished["customData"]["checks"]
    run_id = runs.run_id(f"smoke-{name}", trigger)
    assert check["job"] == f"smoke-{run_id[:12]}"
    job = await kube_client.request("GET", f"{kubernetes_job.jobs_path(namespace)}/{check['job']}")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.invalid/smoke:1@{DIGEST}"
    assert container["args"] == ["--target", "web"]
    assert job["metadata"]["labels"]["trigger-router.dev/run-id"] == run_id
    assert job["metadata"]["annotations"]["trigger-router.dev/event-id"] == trigger.id
    assert job["spec"]["activeDeadlineSeconds"] == deadline and job["spec"]["ttlSecondsAfterFinished"] == 3600
    # The trigger's trace continues in the Job: on the Job, on its pods, and in the test's environment.
    traceparent = job["metadata"]["annotations"]["trigger-router.dev/traceparent"]
    assert tracecontext.trace_id(traceparent) == TRACE and not traceparent.endswith("00f067aa0ba902b7-01")
    assert job["spec"]["template"]["metadata"]["annotations"]["trigger-router.dev/traceparent"] == traceparent
    assert {"name": "TRACEPARENT", "value": traceparent} in container["env"]
    if name == "ok":
        [pod] = check["pods"]
        [status] = pod["containers"]
        assert status["exitCode"] == 0 and status["imageID"] == f"registry.invalid/smoke@{DIGEST}"
        assert status["logs"].startswith("(logs unavailable")
    if name == "fail":
        assert "=1" in content["reason"]  # the exit code is named


DIGEST_HEX = DIGEST.removeprefix("sha256:")
PURL = f"pkg:oci/smoke@sha256%3A{DIGEST_HEX}?repository_url=registry.invalid/smoke&tag=1"  # as CDEvents writes it


def published_event(event_id: str, digest: str) -> events.CloudEvent:
    return events.make({"id": event_id, "source": "/tests/registry", "type": "dev.example.deployed"},
                       {"service": "web", "customData": {"digest": digest}})


@pytest.mark.parametrize("name,value,outcome", [
    ("empty", "", "error"),
    ("tag", "registry.invalid/smoke:1", "error"),
    ("bare-tag", "latest", "error"),
    ("null", None, "error"),
    # Braces in the event's data pass rule-load validation as a template would; the action refuses them.
    ("braces", "{{ data.service }}", "error"),
    ("purl", PURL, "success"),
])
async def test_digest_is_parsed_never_guessed(edge, tmp_path, kube_client, namespace, name, value, outcome):
    """A digest asked for and not given is an error before any Job exists; a purl's digest pins the Job."""
    rule = RULE.format(name=name, namespace=namespace, annotations="{}", deadline=30) \
        .replace("{{ data.digest }}", "{{ data.customData.digest }}")
    tasks = await start_routing(edge, tmp_path, rule)
    try:
        trigger = published_event(f"published-{name}", value)
        await edge.bus.publish(trigger)
        queued, started, finished = await outcomes_for(edge, 3, timeout=60)
    finally:
        await stop(tasks)
    cdevents_schema.validate(finished)
    assert [c["context"]["type"].split(".")[3] for c in (queued, started, finished)] == \
        ["queued", "started", "finished"]
    content = finished["subject"]["content"]
    assert content["outcome"] == outcome, content
    listing = await kube_client.request("GET", kubernetes_job.jobs_path(namespace))
    if outcome == "error":
        assert f"{value!r} is not a sha256 digest" in content["reason"], content["reason"]
        assert listing["items"] == []
        return
    [job] = listing["items"]
    assert job["metadata"]["name"] == f"smoke-{runs.run_id(f'smoke-{name}', trigger)[:12]}"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/smoke:1@{DIGEST}"


def test_a_literal_that_is_no_digest_is_refused_at_rule_load(tmp_path):
    path = tmp_path / "rule.yaml"
    path.write_text(RULE.format(name="literal", namespace="default", annotations="{}", deadline=30)
                    .replace("{{ data.digest }}", "registry.invalid/smoke:1"))
    with pytest.raises(errors.RuleError) as refused:
        rules.load([str(path)], catalog.load().actions)
    assert "field spec.action.kubernetesJob.digest" in str(refused.value)
    assert "'registry.invalid/smoke:1' is not a sha256 digest" in str(refused.value)


async def test_redelivered_run_finds_its_job(kube_client, namespace):
    params = kubernetes_job.KubernetesJob.model_validate(_params(namespace))
    context = actions.Context("a" * 32, "again", deployed_event("again"), 30.0)
    first = await kubernetes_job.run_job(params, context)
    second = await kubernetes_job.run_job(params, context)
    assert first.outcome == second.outcome == "success"
    listing = await kube_client.request("GET", kubernetes_job.jobs_path(namespace))
    assert [j["metadata"]["name"] for j in listing["items"]] == ["smoke-aaaaaaaaaaaa"]


async def test_cancelled_run_deletes_its_job(kube_client, namespace):
    params = kubernetes_job.KubernetesJob.model_validate(_params(namespace, hang=True))
    context = actions.Context("b" * 32, "cancelled", deployed_event("cancelled"), 60.0)
    task = asyncio.create_task(kubernetes_job.run_job(params, context))
    path = f"{kubernetes_job.jobs_path(namespace)}/smoke-bbbbbbbbbbbb"
    async with asyncio.timeout(30):
        while True:
            try:
                await kube_client.request("GET", path)
                break
            except errors.KubernetesRefused:
                await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(30):  # background propagation: the Job goes first, then its pods
        while True:
            try:
                job = await kube_client.request("GET", path)
                assert job["metadata"].get("deletionTimestamp")
                await asyncio.sleep(0.2)
            except errors.KubernetesRefused as exc:
                assert exc.status == 404
                break


@pytest.mark.parametrize("where", ["jobConfigMap", "jobFile"])
async def test_job_template_from_config_map_or_file(kube_client, namespace, tmp_path, where):
    template = _params(namespace)["job"]
    template["spec"]["template"]["spec"]["containers"][0]["args"] = ["{{ data.service }}"]
    if where == "jobConfigMap":
        await kube_client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
            "metadata": {"name": "smoke"}, "data": {"job.yaml": yaml.safe_dump(template)}})
        source = {"jobConfigMap": {"name": "smoke"}}
    else:
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(template))
        source = {"jobFile": str(tmp_path / "job.yaml")}
    params = kubernetes_job.KubernetesJob.model_validate({"namespace": namespace, **source})
    result = await kubernetes_job.run_job(params, actions.Context("c" * 32, "t", deployed_event("t"), 30.0))
    assert result.outcome == "success", result.reason
    job = await kube_client.request("GET", f"{kubernetes_job.jobs_path(namespace)}/smoke-cccccccccccc")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["web"]


async def test_unbounded_config_map_template_is_an_error(kube_client, namespace):
    template = _params(namespace)["job"]
    del template["spec"]["template"]["spec"]["containers"][0]["resources"]
    await kube_client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
        "metadata": {"name": "smoke"}, "data": {"job.yaml": yaml.safe_dump(template)}})
    params = kubernetes_job.KubernetesJob.model_validate({"namespace": namespace, "jobConfigMap": {"name": "smoke"}})
    with pytest.raises(errors.PermanentError, match="has no resources.requests or resources.limits"):
        await kubernetes_job.run_job(params, actions.Context("e" * 32, "t", deployed_event("t"), 30.0))


def _params(namespace: str, hang: bool = False) -> dict:
    annotations = {"kwok.trigger-router.dev/outcome": "hang"} if hang else {}
    return {"namespace": namespace, "job": {"metadata": {"name": "smoke"}, "spec": {"template": {
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "smoke", "image": "registry.invalid/smoke:1", "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}}]}}}}}


def test_rule_without_limits_is_refused_at_load(tmp_path):
    rule = textwrap.dedent("""
        kind: TriggerRule
        metadata: {name: unbounded}
        spec:
          action:
            kubernetesJob:
              namespace: default
              job:
                spec:
                  template:
                    spec:
                      containers: [{name: smoke, image: "registry.invalid/smoke:1"}]
        """)
    path = tmp_path / "rule.yaml"
    path.write_text(rule)
    with pytest.raises(errors.RuleError) as refused:
        rules.load([str(path)], catalog.load().actions)
    assert "containers[0] (smoke) has no resources.requests or resources.limits" in str(refused.value)
    assert "allowUnbounded" in str(refused.value)
    job_file = tmp_path / "job.yaml"
    job_file.write_text("spec: {template: {spec: {containers: [{name: smoke, image: x}]}}}")
    path.write_text(f"""
        kind: TriggerRule
        metadata: {{name: unbounded-file}}
        spec: {{action: {{kubernetesJob: {{namespace: default, jobFile: "{job_file}"}}}}}}
        """)
    with pytest.raises(errors.RuleError, match="containers.0. .smoke. has no resources"):
        rules.load([str(path)], catalog.load().actions)
    path.write_text(rule.replace("namespace: default", "namespace: default\n      allowUnbounded: true"))
    [loaded] = rules.load([str(path)], catalog.load().actions)
    assert loaded.name == "unbounded"


async def test_a_run_cancelled_while_its_post_is_unanswered_deletes_the_job(kube_client, namespace, monkeypatch):
    """The POST reaches the apiserver (the Job is created) but its answer never comes back before the
    run is cancelled: the Job must still be deleted, not left running for a run that ended."""
    params = kubernetes_job.KubernetesJob.model_validate(_params(namespace, hang=True))
    context = actions.Context("e" * 32, "lost-answer", deployed_event("lost-answer"), 60.0)
    posted = asyncio.Event()
    original = kube_client.request

    async def request(method, path, **kwargs):
        answer = await original(method, path, **kwargs)
        if method == "POST" and path.endswith("/jobs"):
            posted.set()
            await asyncio.Event().wait()  # the answer is lost: cancelled while waiting for it
        return answer
    monkeypatch.setattr(kube_client, "request", request)
    task = asyncio.create_task(kubernetes_job.run_job(params, context))
    async with asyncio.timeout(30):
        await posted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()
    path = f"{kubernetes_job.jobs_path(namespace)}/smoke-eeeeeeeeeeee"
    async with asyncio.timeout(30):
        while True:
            try:
                job = await kube_client.request("GET", path)
                assert job["metadata"].get("deletionTimestamp"), "the Job was left behind"
                await asyncio.sleep(0.2)
            except errors.KubernetesRefused as exc:
                assert exc.status == 404
                break
