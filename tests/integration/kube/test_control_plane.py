"""The local control plane is real: controllers, scheduler, kwok, RBAC, compaction, clean-up.

Later tests trust this harness to behave like a cluster (Deployments roll out, Jobs finish or
fail, RBAC denies, old resourceVersions expire), so each of those is checked here once, plus
the promise that no harness process outlives its owner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kubeplane import fixture as kube_fixture

TIMEOUT = 120.0
REPO = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "ab" * 32


def wait_for(what: str, probe, timeout: float = TIMEOUT):
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def api(kube_cluster):
    with kube_cluster.api_client() as api_client:
        yield api_client


@pytest.fixture
def namespace(api):
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for("default ServiceAccount", lambda: _exists(
        lambda: core.read_namespaced_service_account("default", name)))
    yield name
    core.delete_namespace(name)


def _exists(read) -> bool:
    try:
        read()
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise


def _container(name: str, image: str) -> client.V1Container:
    return client.V1Container(name=name, image=image)


def test_deployment_becomes_available(api, namespace):
    labels = {"app": "web"}
    image = f"registry.invalid/web@{DIGEST}"
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[_container("web", image)]))))
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment)

    def available():
        status = apps.read_namespaced_deployment("web", namespace).status
        conditions = {c.type: c.status for c in status.conditions or []}
        return status.available_replicas == 2 and conditions.get("Available") == "True"

    wait_for("Deployment web to be Available with 2 replicas", available)
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name == "kwok-node-0"
        (status,) = pod.status.container_statuses
        assert status.ready and status.state.running
        assert status.image_id == f"registry.invalid/web@{DIGEST}"


@pytest.mark.asyncio
async def test_async_client_sees_the_ready_kwok_node(kube_cluster):
    from kubernetes.aio import client as aio_client

    async with await kube_cluster.aio_client() as api_client:
        nodes = (await aio_client.CoreV1Api(api_client).list_node()).items
    ready = {n.metadata.name for n in nodes
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)}
    assert "kwok-node-0" in ready


def test_image_id_is_derived_from_the_image_or_the_annotation(api, namespace):
    core = client.CoreV1Api(api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="ids", annotations={
            "kwok.trigger-router.dev/image-id.override": f"example.invalid/other@{DIGEST}"}),
        spec=client.V1PodSpec(containers=[
            _container("pinned", f"registry.invalid/app:1.2@{DIGEST}"),
            _container("tagged", "registry.invalid:5000/app:1.2"),
            _container("override", "registry.invalid/app:latest"),
        ]))
    core.create_namespaced_pod(namespace, pod)

    def image_ids():
        statuses = core.read_namespaced_pod("ids", namespace).status.container_statuses
        return {s.name: s.image_id for s in statuses or []}

    ids = wait_for("container statuses", image_ids)
    assert ids["pinned"] == f"registry.invalid/app@{DIGEST}"
    assert ids["tagged"].startswith("registry.invalid:5000/app@sha256:")
    assert len(ids["tagged"].split("@sha256:")[1]) == 64
    assert ids["override"] == f"example.invalid/other@{DIGEST}"


def _job(name: str, annotations: dict[str, str]) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations),
                spec=client.V1PodSpec(restart_policy="Never",
                                      containers=[_container("main", "registry.invalid/job:1")]))))


def test_jobs_complete_fail_or_hang_as_annotated(api, namespace):
    batch = client.BatchV1Api(api)
    core = client.CoreV1Api(api)
    batch.create_namespaced_job(namespace, _job("ok", {"kwok.trigger-router.dev/delay": "1s"}))
    batch.create_namespaced_job(namespace, _job("bad", {"kwok.trigger-router.dev/outcome": "fail"}))
    batch.create_namespaced_job(namespace, _job("stuck", {"kwok.trigger-router.dev/outcome": "hang"}))

    def finished(name):
        conditions = batch.read_namespaced_job(name, namespace).status.conditions or []
        done = {c.type for c in conditions if c.status == "True"} & {"Complete", "Failed"}
        return done.pop() if done else None

    assert wait_for("Job ok to finish", lambda: finished("ok")) == "Complete"
    assert wait_for("Job bad to finish", lambda: finished("bad")) == "Failed"

    def pod_of(job):
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        return pods[0] if pods else None

    (failed,) = pod_of("bad").status.container_statuses
    assert failed.state.terminated.exit_code == 1
    (succeeded,) = pod_of("ok").status.container_statuses
    assert succeeded.state.terminated.exit_code == 0
    stuck = wait_for("Job stuck's pod to run", lambda: (p := pod_of("stuck")) and
                     p.status.phase == "Running" and p)
    assert stuck.status.container_statuses[0].state.running
    assert finished("stuck") is None


def test_service_account_token_is_confined_by_rbac(api, namespace, kube_cluster):
    core = client.CoreV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="lister")))
    rbac.create_namespaced_role(namespace, client.V1Role(
        metadata=client.V1ObjectMeta(name="pod-lister"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])]))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="lister-lists-pods"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                  name="pod-lister"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="lister",
                                       namespace=namespace)]))
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="hidden"), string_data={"k": "v"}))
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    token = core.create_namespaced_service_account_token("lister", namespace, request).status.token

    with kube_cluster.api_client(token=token) as as_lister:
        lister = client.CoreV1Api(as_lister)
        lister.list_namespaced_pod(namespace)
        with pytest.raises(ApiException) as denied:
            lister.read_namespaced_secret("hidden", namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:lister" in denied.value.body


def test_watch_from_compacted_resource_version_is_gone(api, namespace, kube_cluster):
    core = client.CoreV1Api(api)
    old = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="counter"), data={"n": "0"}))
    for n in range(1, 4):
        core.patch_namespaced_config_map("counter", namespace, {"data": {"n": str(n)}})
    try:
        kube_cluster.compact()
    except kube_fixture.NotLocalCluster as error:
        pytest.skip(str(error))

    def gone_status():
        try:
            response = core.list_namespaced_config_map(
                namespace, watch=True, resource_version=old.metadata.resource_version,
                timeout_seconds=5, _preload_content=False)
        except ApiException as error:
            return error.status
        with response:
            first = json.loads(next(response.stream(decode_content=True)).splitlines()[0])
        assert first["type"] == "ERROR", first
        return first["object"]["code"]

    assert gone_status() == 410


@pytest.mark.skipif(bool(os.environ.get(kube_fixture.EXTERNAL_ENV)),
                    reason="checks the harness's own processes, not an external cluster")
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_no_component_outlives_the_harness(tmp_path, kube_cluster, stop_signal):
    # kube_cluster is only asked for so a cold binary cache is built, with progress shown, by
    # the fixture rather than silently inside the subprocess below.
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    harness = subprocess.Popen(
        [sys.executable, "-m", "tests.kubeplane", "up", "--workdir", str(workdir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        kubeconfig = harness.stdout.readline().strip()
        if not kubeconfig:
            pytest.fail("harness did not come up:\n" + harness.stderr.read()[-4000:])
        pids = json.loads((workdir / "pids.json").read_text())
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager",
                             "kube-scheduler", "kwok"}
        assert all(_alive(pid) for pid in pids.values())
        harness.send_signal(stop_signal)
        harness.wait(TIMEOUT)
        wait_for("every component to exit", lambda: not any(map(_alive, pids.values())), 30)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        harness.stdout.close()
        harness.stderr.close()


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie awaiting its reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
