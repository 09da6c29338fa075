"""Issue 16 acceptance: a registry push to a rollout to a GitLab commit status on exactly that revision.

Everything is real except GitLab (the contract server, tests/support/gitlab_api.py): a
docker-registry notifying a real ``serve`` of a skopeo push (``artifact.published``), the local
Kubernetes control plane where kwok runs the Deployment's pods (``rollout_completed``), a
correlated rule joining the two by digest that runs ``rolloutCheck``, and the reporting engine
posting ``gitlabCommitStatus``. The commit comes from nowhere but the image's labels.

Point 3: a Deployment that cannot roll out (``rollout_failed``) and a crash-looping pod
(``crashloop``) report ``failed`` on the commit their digest was built from. An image built without
labels gets no status: its reports are ``skipped`` with the reason ``rules test`` gives as well.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest

from router.config import settings as settings_mod
from router.engine import queries
from router.model import events
from router.model.bindings import nats as nats_binding

from tests.integration.k8s.conftest import CLUSTER, apply_deployment, deployment
from tests.support import ociimage, routers
from tests.support.gitlab_api import GitLabAPI
from tests.support.registryserver import RegistryServer, free_port

TOKEN = "glpat-e2e-token-abcdefghijklmnop"
SECRET = "registry-notify-secret"
PROJECT = "platform/web"
BUILT = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
FAILING = "9c9d5e5b3f3b2a1f0e6d7c8b9a0f1e2d3c4b5a69"
CRASHING = "51c0ffee51c0ffee51c0ffee51c0ffee51c0ffee"


def rules(path, namespace: str) -> str:
    verify = {"kind": "TriggerRule", "metadata": {"name": "verify-web"}, "spec": {
        "correlate": {
            "key": "{{ data.images[0].digest }}", "within": "5m",
            "require": [
                {"name": "published", "filters": [{"exact": {"type": "dev.cdevents.artifact.published.0.3.0"}}],
                 "key": "{{ data.customData.digest }}"},
                {"name": "deployed", "filters": [{"exact": {"type": "io.k8s.deployment.rollout_completed"}}]}]},
        "action": {"rolloutCheck": {"namespace": namespace, "name": "{{ events.deployed.data.name }}",
                                    "expectedDigest": "{{ events.published.data.customData.digest }}",
                                    "timeout": "20s"}},
        "report": [{"gitlabCommitStatus": {"name": "verify/{{ events.deployed.data.name }}",
                                           "targetUrl": "https://ci.example/verify/{{ events.deployed.data.name }}"}}]}}
    failed = {"kind": "TriggerRule", "metadata": {"name": "rollout-failed"}, "spec": {
        "filters": [{"exact": {"type": "io.k8s.deployment.rollout_failed"}}],
        "action": {"rolloutCheck": {"namespace": namespace, "name": "{{ data.name }}",
                                    "expectedDigest": "{{ data.images[0].digest }}", "timeout": "5s"}},
        "report": [{"gitlabCommitStatus": {"name": "rollout/{{ data.name }}"}}]}}
    crashing = {"kind": "TriggerRule", "metadata": {"name": "crashloop"}, "spec": {
        "filters": [{"exact": {"type": "io.k8s.pod.crashloop"}}],
        "action": {"exec": {"command": ["/bin/sh", "-c", "echo $0 is crash-looping; exit 3", "{{ data.container }}"]}},
        "report": [{"gitlabCommitStatus": {"name": "crashloop/{{ data.owner.name }}"}}]}}
    file = path / "rules.yaml"
    file.write_text("\n---\n".join(json.dumps(rule) for rule in (verify, failed, crashing)))
    return str(file)


@pytest.fixture
async def gitlab():
    async with GitLabAPI(tokens={TOKEN: None}) as server:
        server.project(PROJECT)
        yield server


@pytest.fixture
async def stack(tmp_path, nats_server, kube_cluster, kube_client, namespace, gitlab):
    """(registry, router log) once the router is ready: a registry notifying a serve that watches ``namespace``."""
    port = free_port()
    registry = RegistryServer(tmp_path / "registry", notify_url=f"http://127.0.0.1:{port}/webhooks/distribution",
                              notify_authorization=f"Bearer {SECRET}").start()
    watches = [{"group": "apps", "kind": "Deployment", "namespaces": [namespace]},
               {"group": "", "kind": "Pod", "namespaces": [namespace]}]
    router = routers.start_router(
        nats_server.url, rules(tmp_path, namespace), port, tmp_path, "router",
        REGISTRIES__DISTRIBUTION__SECRETS=json.dumps([SECRET]), KUBERNETES__KUBECONFIG=str(kube_cluster.kubeconfig),
        KUBERNETES__CLUSTER=CLUSTER, KUBERNETES__WATCHES=json.dumps(watches), KUBERNETES__MAX_BACKOFF="2s",
        REPORTERS__GITLAB__URL=gitlab.url, REPORTERS__GITLAB__TOKEN=TOKEN, REPORTING__BACKOFF="0.2s")
    log = tmp_path / "router.log"
    try:
        await routers.until(lambda: _ready(port), 60, "the router is ready", log)
        yield registry, log
    finally:
        routers.stop_router(router)
        registry.stop()
    assert TOKEN not in log.read_text()


async def push(tmp_path, registry: RegistryServer, name: str, revision: str, gitlab: GitLabAPI) -> str:
    root = tmp_path / f"image-{name}"
    ociimage.layout(root, "v1", name, {"org.opencontainers.image.revision": revision,
                                        "org.opencontainers.image.source": f"{gitlab.url}/{PROJECT}"})
    return await asyncio.to_thread(ociimage.push, root, "v1", f"{registry.host}/{name}:v1")


async def statuses(gitlab: GitLabAPI, sha: str, final: str, log, name: str | None = None) -> list[dict]:
    """The statuses (named ``name``, if given) on ``sha`` once the newest of them is ``final``."""
    async def look():
        found = [s for s in gitlab.statuses.get((PROJECT, sha), []) if name is None or s["name"] == name]
        return found if found and found[-1]["status"] == final else None
    return await routers.until(look, 120, f"a {final} status on {sha[:12]}", log)


async def test_a_push_then_its_rollout_is_reported_success_on_exactly_that_revision(stack, gitlab, tmp_path,
                                                                                     kube_client, namespace):
    registry, log = stack
    digest = await push(tmp_path, registry, "web", BUILT, gitlab)
    await apply_deployment(kube_client, namespace, deployment("web", f"{registry.host}/web@{digest}", 1))

    [status] = await statuses(gitlab, BUILT, "success", log)
    assert (status["name"], status["target_url"]) == ("verify/web", "https://ci.example/verify/web")
    posted = [r for r in gitlab.requests if r["method"] == "POST"]
    assert {r["path"] for r in posted} == {f"/api/v4/projects/platform%2Fweb/statuses/{BUILT}"}
    assert [r["json"]["state"] for r in posted] == ["pending", "running", "success"]
    assert all(r["headers"]["PRIVATE-TOKEN"] == TOKEN for r in posted)
    assert set(gitlab.statuses) == {(PROJECT, BUILT)}  # no status anywhere else


async def test_a_failed_rollout_is_reported_failed_on_the_commit_its_digest_was_built_from(
        stack, gitlab, tmp_path, kube_client, namespace):
    registry, log = stack
    digest = await push(tmp_path, registry, "stuck", FAILING, gitlab)
    stuck = deployment("stuck", f"{registry.host}/stuck@{digest}", 1)
    stuck["spec"]["progressDeadlineSeconds"] = 1
    stuck["spec"]["template"]["spec"]["nodeSelector"] = {"nowhere": "true"}  # never scheduled
    await apply_deployment(kube_client, namespace, stuck)

    [status] = await statuses(gitlab, FAILING, "failed", log)
    assert status["name"] == "rollout/stuck"
    assert "rollout failed" in status["description"] and "ProgressDeadlineExceeded" in status["description"]
    assert set(gitlab.statuses) == {(PROJECT, FAILING)}


async def test_a_crashloop_is_reported_failed_on_the_commit_its_digest_was_built_from(
        stack, gitlab, tmp_path, kube_client, namespace):
    registry, log = stack
    digest = await push(tmp_path, registry, "crash", CRASHING, gitlab)
    image = f"{registry.host}/crash@{digest}"
    await apply_deployment(kube_client, namespace, deployment("crash", image, 1))
    pod = await _running_pod(kube_client, namespace, "crash")
    # kwok never crashes a container; the status a kubelet would write is written here instead.
    await kube_client.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
                              content_type="application/merge-patch+json", body={"status": {"containerStatuses": [{
                                  "name": "app", "image": image, "imageID": "", "ready": False, "restartCount": 4,
                                  "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})

    [status] = await statuses(gitlab, CRASHING, "failed", log, "crashloop/crash")
    assert status["description"] == "failure: exit code 3"
    assert set(gitlab.statuses) == {(PROJECT, CRASHING)}  # verify-web's success for the rollout is here too


async def _running_pod(client, namespace: str, app: str) -> str:
    async with asyncio.timeout(60):
        while True:
            pods = (await client.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                         query={"labelSelector": f"app={app}"}))["items"]
            if pods and pods[0].get("status", {}).get("phase") == "Running":
                return pods[0]["metadata"]["name"]
            await asyncio.sleep(0.2)


async def test_without_labels_nothing_is_reported_and_rules_test_says_why(stack, gitlab, tmp_path, kube_client,
                                                                         namespace, nats_server):
    registry, log = stack
    root = tmp_path / "image-bare"
    ociimage.layout(root, "v1", "bare")  # built without --label
    digest = await asyncio.to_thread(ociimage.push, root, "v1", f"{registry.host}/bare:v1")
    await apply_deployment(kube_client, namespace, deployment("bare", f"{registry.host}/bare@{digest}", 1))
    why = f"image {digest[:19]}… in {registry.host}/bare has no label org.opencontainers.image.revision (its labels: none)"
    settings = settings_mod.load(env={"TRIGGER_ROUTER_NATS__URL": nats_server.url})

    async def skipped():
        async with routers.connected(nats_server.url) as probe:
            runs, _ = await queries.list_runs(probe.js, settings, "verify-web")
            shown = [await queries.get_run(probe.js, settings, run["runId"]) for run in runs]
        attempts = [a for run in shown if run for report in run.get("reports", [])[1:] for a in report["attempts"]]
        return attempts if attempts and all(a["result"] == "skipped" for a in attempts) and \
            {a["stage"] for a in attempts} == {"queued", "started", "finished"} else None

    attempts = await routers.until(skipped, 120, "the reports skipped", log)
    assert all(why in a["detail"] for a in attempts), attempts
    assert gitlab.requests == []

    async with routers.connected(nats_server.url) as probe:  # the artifact.published the registry caused
        message = await probe.js.get_last_msg("TR_EVENTS", "tr.events.dev.cdevents.artifact.published.0.3.0")
    (tmp_path / "published.json").write_bytes(events.dumps(nats_binding.from_message(message.headers, message.data)))
    dry_run = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "router.cli", "rules", "test", str(tmp_path / "rules.yaml"),
        "--event", str(tmp_path / "published.json")], capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    assert f"commit: none: {why}" in dry_run.stdout


async def _ready(port: int) -> bool:
    """The edge answers /readyz (else the registry's notification would wait for its retry)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False
