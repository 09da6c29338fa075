"""``manifestCheck`` on the local control plane: the apiserver's refusals, policies, the diff against live."""

from __future__ import annotations

import copy

from aiohttp import web

from handlers.actions import manifest_check
from router.model import events
from router.plugins import actions
from tests.integration.k8s.conftest import deployment
from tests.integration.test_routing import outcomes_for, start_routing, stop
from tests.support.httpserver import serving

LIMITS = {"name": "limits", "expression": "object.spec.template.spec.containers.all(c, has(c.resources.limits))",
          "message": "every container needs resource limits"}
NO_LATEST = {"name": "no-latest", "expression": "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
             "message": "images must not use :latest"}


def context(data=None) -> actions.Context:
    return actions.Context("r" * 32, "gate", events.make(
        {"id": "e", "source": "/tests", "type": "dev.example.published"}, data or {}), 60)


async def run(namespace: str, objects, **params) -> actions.Result:
    model = manifest_check.ManifestCheck.model_validate({"manifests": objects, "namespace": namespace, **params})
    return await manifest_check.manifest_check(model, context())


def limited(name="web", image="registry.invalid/web:1"):
    manifest = deployment(name, image, 1)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "100m", "memory": "64Mi"}}
    return manifest


async def test_unknown_field_and_wrong_type_fail_with_the_apiservers_messages(kube_client, namespace):
    unknown, wrong = limited("unknown"), limited("wrong")
    unknown["spec"]["replicaz"] = 2
    wrong["spec"]["replicas"] = "two"
    result = await run(namespace, [unknown, wrong])
    assert result.outcome == "failure"
    dry = {c["object"]: c for c in result.checks if c["name"].endswith(": dry-run")}
    assert dry[f"Deployment {namespace}/unknown"]["passed"] is False
    assert dry[f"Deployment {namespace}/unknown"]["error"].endswith(".spec.replicaz: field not declared in schema")
    assert "spec.replicas: expected numeric (int or float), got string" in dry[f"Deployment {namespace}/wrong"]["error"]
    assert "dry-run: " in result.reason
    # Nothing was stored.
    listed = await kube_client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")
    assert listed["items"] == []


async def test_a_manifest_without_limits_fails_with_the_policys_message(kube_client, namespace):
    result = await run(namespace, [deployment("web", "registry.invalid/web:1", 1)], policies=[LIMITS, NO_LATEST])
    assert result.outcome == "failure"
    assert result.reason.endswith(f"Deployment {namespace}/web: policy limits: every container needs resource limits")
    by_name = {c["name"]: c for c in result.checks}
    assert by_name[f"Deployment {namespace}/web: dry-run"]["passed"] is True
    assert by_name[f"Deployment {namespace}/web: policy no-latest"]["passed"] is True
    assert by_name[f"Deployment {namespace}/web: policy limits"] == {
        "name": f"Deployment {namespace}/web: policy limits", "object": f"Deployment {namespace}/web",
        "policy": "limits", "passed": False, "message": "every container needs resource limits"}
    report = await run(namespace, [deployment("web", "registry.invalid/web:1", 1)], policies=[LIMITS], mode="report")
    assert report.outcome == "success" and report.reason.startswith("report: ")


async def test_the_diff_against_an_edited_live_object_lists_exactly_the_edited_fields(kube_client, namespace):
    manifest = limited()
    collection = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    await kube_client.request("POST", collection, query={"fieldManager": "helm"}, body=copy.deepcopy(manifest))
    clean = await run(namespace, [manifest], policies=[LIMITS])
    assert clean.outcome == "success", clean.reason
    assert [c["changes"] for c in clean.checks if "changes" in c] == [[]]
    await kube_client.request("PATCH", f"{collection}/web", query={"fieldManager": "kubectl-edit"},
                              content_type="application/strategic-merge-patch+json", body={"spec": {
                                  "replicas": 3, "template": {"spec": {"containers": [
                                      {"name": "app", "image": "registry.invalid/web:hotfix"}]}}}})
    result = await run(namespace, [manifest], policies=[LIMITS])
    assert result.outcome == "success", result.reason  # a diff is reported, not a failure
    [diff] = [c for c in result.checks if "changes" in c]
    assert diff["changes"] == [
        {"path": "spec.replicas", "live": 3, "desired": 1},
        {"path": "spec.template.spec.containers[name=app].image", "live": "registry.invalid/web:hotfix",
         "desired": "registry.invalid/web:1"}]
    strict = await run(namespace, [manifest], failOnDiff=True)
    assert strict.outcome == "failure"
    assert strict.reason.endswith("2 field(s) differ from the live object: spec.replicas, "
                                  "spec.template.spec.containers[name=app].image")


async def test_a_secrets_diff_names_the_keys_never_the_values(kube_client, namespace):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "stringData": {"password": "live-hunter2", "user": "app"}}
    await kube_client.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=secret)
    desired = {**secret, "stringData": {"password": "desired-s3cret", "user": "app"}}
    result = await run(namespace, [desired], policies=[{"name": "typed", "expression": "object.type == 'Opaque'"}])
    assert result.outcome == "success", result.reason
    [diff] = [c for c in result.checks if "changes" in c]
    assert diff["changes"] == [{"path": "data.password", "redacted": True}]
    shown = repr(result)
    for value in ("live-hunter2", "desired-s3cret", "bGl2ZS1odW50ZXIy", "ZGVzaXJlZC1zM2NyZXQ="):
        assert value not in shown


TEMPLATED = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: "registry.invalid/web@{{ data.digest }}"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {level: info}
"""
DIGEST = "sha256:" + "ab" * 32
PINNED = {"name": "pinned", "kinds": ["Deployment"], "message": "images must be pinned by digest",
          "expression": "object.spec.template.spec.containers.all(c, c.image.contains('@sha256:'))"}


async def _from(namespace: str, **source) -> actions.Result:
    model = manifest_check.ManifestCheck.model_validate({"namespace": namespace, "policies": [PINNED], **source})
    return await manifest_check.manifest_check(model, context({"digest": DIGEST}))


def _passed(result: actions.Result) -> list[str]:
    assert result.outcome == "success", result.reason
    return [c["name"] for c in result.checks if c["passed"]]


async def test_manifests_from_a_file_a_configmap_and_a_url_with_auth_are_templated(kube_client, namespace, tmp_path):
    expected = [f"Deployment {namespace}/web: dry-run", f"Deployment {namespace}/web: policy pinned",
                f"ConfigMap {namespace}/settings: dry-run"]
    (tmp_path / "manifests.yaml").write_text(TEMPLATED)
    assert _passed(await _from(namespace, manifestFile=str(tmp_path / "manifests.yaml"))) == expected

    await kube_client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
        "metadata": {"name": "release"}, "data": {"manifests.yaml": TEMPLATED}})
    assert _passed(await _from(namespace, manifestConfigMap={"name": "release", "namespace": namespace})) == expected

    seen = []

    async def raw(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(text=TEMPLATED)

    app = web.Application()
    app.router.add_get("/team/app/raw/main/deploy.yaml", raw)
    (tmp_path / "token").write_text("glpat-secret\n")
    async with serving(app) as url:
        result = await _from(namespace, manifestUrl={"url": f"{url}/team/app/raw/main/deploy.yaml",
                                                     "authFile": str(tmp_path / "token")})
    assert _passed(result) == expected and seen == ["Bearer glpat-secret"]


GATE_RULE = """
kind: TriggerRule
metadata: {{name: gate}}
spec:
  filters: [{{exact: {{type: dev.example.published}}}}]
  policy: {{timeout: 60s}}
  action:
    manifestCheck:
      namespace: {namespace}
      policies:
        - {{name: pinned, message: images must be pinned by digest,
           expression: "object.spec.template.spec.containers.all(c, c.image.contains('@sha256:'))"}}
      manifests:
        - apiVersion: apps/v1
          kind: Deployment
          metadata: {{name: web}}
          spec:
            replicas: 1
            selector: {{matchLabels: {{app: web}}}}
            template:
              metadata: {{labels: {{app: web}}}}
              spec:
                containers: [{{name: app, image: "{{{{ data.image }}}}"}}]
"""


async def test_a_rule_gates_on_the_rendered_manifest_and_reports_each_check(edge, tmp_path, kube_client, namespace):
    tasks = await start_routing(edge, tmp_path, GATE_RULE.format(namespace=namespace))
    try:
        for event_id, image in (("tagged", "registry.invalid/web:1"), ("pinned", f"registry.invalid/web@{DIGEST}")):
            await edge.bus.publish(events.make({"id": event_id, "source": "/tests", "type": "dev.example.published"},
                                               {"image": image}))
        finished = [o for o in await outcomes_for(edge, 6, timeout=60) if o["context"]["type"].endswith("finished.0.3.0")]
    finally:
        await stop(tasks)
    outcomes = sorted((o["subject"]["content"]["outcome"], o["subject"]["content"]["reason"]) for o in finished)
    assert outcomes == [
        ("failure", f"1 object(s), 1/2 checks passed; Deployment {namespace}/web: policy pinned: "
                    "images must be pinned by digest"),
        ("success", "1 object(s), 2/2 checks passed")]
