"""``serve`` configured exactly as in a pod works against the control plane, and shuts down clean.

The router runs as its own process with what a pod gets and nothing else: the
``KUBERNETES_SERVICE_HOST`` / ``_PORT`` variables, and a ServiceAccount directory with ``token``
(a TokenRequest token of the ``trigger-router`` ServiceAccount, bound by the chart's RBAC as
``deploy/kustomize`` renders it), ``ca.crt`` and ``namespace``, at ``kubernetes.service_account_dir``
instead of ``/var/run/secrets/kubernetes.io/serviceaccount``. No kubeconfig is reachable. Through
that identity it must watch a rollout (an event on the bus), run a ``kubernetesJob`` (a Job in the
cluster) and a ``rolloutCheck``, both ending ``success``, and pick up a TriggerRule object, run it
and write its ``status.lastRun`` (holding the status Lease in its own namespace). SIGTERM then ends it with status 0 and
without aiohttp's ``Unclosed client session`` / ``Unclosed connector`` in its log.

The apiserver's serving certificate names 127.0.0.1 (``tests/kubeplane/pki.py``), where the
service host points; in a pod it would be the ``kubernetes`` Service's IP, also in the certificate.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import textwrap
import time
from urllib.parse import urlsplit

import nats
import nats.js.errors
import pytest

from handlers.actions import kubernetes_job
from handlers.kubernetes import client as kube
from router import errors
from router.bus import kv as kv_bucket
from router.model.bindings import nats as nats_binding
from router.rules import crd
from tests.integration.k8s import manifests
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.integration.k8s.test_crd import install as install_crds
from tests.support import routers

DIGEST = "sha256:" + "c4" * 32
ROUTER_NAMESPACE = manifests.ROUTER_NAMESPACE
CR_RULE = {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": "TriggerRule", "metadata": {"name": "cr-verify"},
           "spec": {"filters": [{"exact": {"type": "io.k8s.deployment.rollout_completed"}}],
                    "action": {"rolloutCheck": {"namespace": "{{ data.namespace }}", "name": "{{ data.name }}",
                                                "timeout": "30s", "expectedDigest": "{{ data.images[0].digest }}"}}}}
"""The same check as the file rule ``verify``, as a TriggerRule in the test's namespace."""
BAD_RULE = {**CR_RULE, "metadata": {"name": "bad"},
            "spec": {**CR_RULE["spec"], "filters": [{"regex": {"type": "io.k8s.*"}}]}}
"""Invalid: it must show Accepted=False with the validation message, and disturb nothing."""
RULES = """
kind: TriggerRule
metadata: {name: smoke}
spec:
  filters: [{exact: {type: io.k8s.deployment.rollout_completed}}]
  policy: {timeout: 60s}
  action:
    kubernetesJob:
      namespace: "{{ data.namespace }}"
      digest: "{{ data.images[0].digest }}"
      job:
        metadata: {name: smoke}
        spec:
          template:
            spec:
              containers:
                - name: smoke
                  image: registry.invalid/web-smoke:1
                  resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}
---
kind: TriggerRule
metadata: {name: verify}
spec:
  filters: [{exact: {type: io.k8s.deployment.rollout_completed}}]
  policy: {timeout: 60s}
  action:
    rolloutCheck:
      namespace: "{{ data.namespace }}"
      name: "{{ data.name }}"
      timeout: 30s
      expectedDigest: "{{ data.images[0].digest }}"
"""


async def service_account_dir(client, kube_cluster, directory):
    """What the kubelet mounts into a pod of the ``trigger-router`` ServiceAccount."""
    answer = await client.request(
        "POST", f"/api/v1/namespaces/{ROUTER_NAMESPACE}/serviceaccounts/trigger-router/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    directory.mkdir()
    (directory / "token").write_text(answer["status"]["token"])
    (directory / "ca.crt").write_bytes(kube_cluster.ca_file.read_bytes())
    (directory / "namespace").write_text(ROUTER_NAMESPACE)
    return answer["status"]["token"]


async def bound(kube_cluster, token: str, namespace: str) -> None:
    """Wait until the RoleBinding is in force (the authorizer's cache follows within moments)."""
    client = kube.Client(await kube_cluster.aio_client(token))
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    await client.request("GET", kubernetes_job.jobs_path(namespace))
                    return
                except errors.KubernetesRefused:
                    await asyncio.sleep(0.3)
    finally:
        await client.close()


def start_in_pod(tmp_path, nats_url: str, port: int, server: str, secrets, namespace: str) -> subprocess.Popen:
    """``trigger-router serve`` with a pod's environment: no kubeconfig, no settings of the test's."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(RULES))
    address = urlsplit(server)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KUBE", "TEST_KUBE", "TRIGGER_ROUTER_"))}
    env.update({
        "HOME": str(tmp_path / "home"),  # no ~/.kube/config either
        "KUBERNETES_SERVICE_HOST": address.hostname, "KUBERNETES_SERVICE_PORT": str(address.port),
        "TRIGGER_ROUTER_KUBERNETES__SERVICE_ACCOUNT_DIR": str(secrets),
        "TRIGGER_ROUTER_KUBERNETES__CLUSTER": "kubeplane",
        "TRIGGER_ROUTER_KUBERNETES__WATCHES": json.dumps([{"group": "apps", "kind": "Deployment",
                                                          "namespaces": [namespace]}]),
        "TRIGGER_ROUTER_KUBERNETES__MAX_BACKOFF": "2s",
        "TRIGGER_ROUTER_KUBERNETES__TRIGGER_RULES__ENABLED": "true",
        "TRIGGER_ROUTER_KUBERNETES__TRIGGER_RULES__NAMESPACES": json.dumps([namespace]),
        "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
        "TRIGGER_ROUTER_RULES__PATHS": json.dumps([str(rules)]), "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / "state"),
    })
    with open(tmp_path / "router.log", "a") as log:
        return subprocess.Popen(routers.CLI, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def wait_for(predicate, what: str, process: subprocess.Popen, tmp_path, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        found = await predicate()
        if found:
            return found
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen (router exit status {process.poll()}); its log:\n"
                                 + routers.log_tail(tmp_path, "router", 40))
        await asyncio.sleep(0.3)


async def event_types(nats_url: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        stored = await routers.Probe(nc.jetstream()).messages("TR_EVENTS")
    finally:
        await nc.close()
    return [nats_binding.from_message(m.headers, m.data).type for m in stored]


async def watching(nats_url: str) -> bool:
    """The watch has listed what exists (its baseline) and stored its position: changes from now are news."""
    nc = await nats.connect(nats_url)
    try:
        found = kv_bucket.Bucket(await nc.jetstream().key_value("TR_KUBE_WATCH"), "watch state")
        return bool(await found.keys())
    except (nats.js.errors.NotFoundError, nats.js.errors.NoKeysError):
        return False
    finally:
        await nc.close()


async def test_serve_as_in_a_pod(nats_server, tmp_path, kube_cluster, kube_client, namespace, free_port):
    if kube_cluster.ca_file is None:
        pytest.skip("needs the cluster CA to write the ServiceAccount's ca.crt")
    await manifests.apply_identity(kube_client, namespace)
    await install_crds(kube_client)
    for body in (CR_RULE, BAD_RULE):
        await kube_client.request("POST", f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/triggerrules",
                                  body=body)
    secrets = tmp_path / "serviceaccount"
    await bound(kube_cluster, await service_account_dir(kube_client, kube_cluster, secrets), namespace)
    process = start_in_pod(tmp_path, nats_server.url, free_port, kube_cluster.server, secrets, namespace)
    try:
        await wait_for(lambda: watching(nats_server.url), "the watch's stored position", process, tmp_path)
        await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{DIGEST}", 1))

        async def finished() -> list[dict]:
            async with routers.connected(nats_server.url) as probe:
                found = await probe.finished()
            return found if len(found) >= 3 else []

        outcomes = await wait_for(finished, "three finished runs", process, tmp_path)

        async def last_run() -> dict | None:  # written by the Lease holder, this process
            cr = await kube_client.request(
                "GET", f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/triggerrules/cr-verify")
            return (cr.get("status") or {}).get("lastRun")
        cr_run = await wait_for(last_run, "the TriggerRule's status.lastRun", process, tmp_path)

        async def refused() -> dict | None:
            cr = await kube_client.request("GET", f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/triggerrules/bad")
            return next((c for c in (cr.get("status") or {}).get("conditions") or [] if c["type"] == "Accepted"), None)
        bad = await wait_for(refused, "Accepted on the invalid TriggerRule", process, tmp_path)
        types = await event_types(nats_server.url)
        jobs = (await kube_client.request("GET", kubernetes_job.jobs_path(namespace)))["items"]
        process.send_signal(signal.SIGTERM)  # the process group leader: what a kubelet signals
        status = await asyncio.to_thread(process.wait, 30)
    finally:
        routers.stop_router(process)
    log = (tmp_path / "router.log").read_text()
    assert types.count("io.k8s.deployment.rollout_completed") == 1
    by_rule = {o["customData"]["rule"]: o["subject"]["content"] for o in outcomes}
    assert {rule: content["outcome"] for rule, content in by_rule.items()} == {
        "smoke": "success", "verify": "success", f"{namespace}/cr-verify": "success"}, by_rule
    assert cr_run["outcome"] == "success"
    assert bad["status"] == "False" and bad["message"] == (
        f"TriggerRule {namespace}/bad: rule {namespace}/bad, field spec.filters[0].regex: unknown filter dialect "
        "'regex' (known: all, any, cel, cesql, exact, not, prefix, sql, suffix)"), bad
    [job] = jobs
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/web-smoke:1@{DIGEST}"
    assert (f"in-cluster configuration: {kube_cluster.server}, ServiceAccount files in {secrets} "
            f"(namespace {ROUTER_NAMESPACE})") in log
    assert status == 0, log[-3000:]
    assert "Unclosed" not in log, log[-3000:]
