"""The Helm chart (deploy/helm/trigger-router) installed on the local control plane, as README says.

``helm lint`` in both modes; ``helm template`` applied with ``kubectl apply --dry-run=server`` (the
apiserver validates every object, the CRDs' schemas included); ``helm install`` in both modes
creates every object, and the Deployment's pods are scheduled onto kwok's node and Running;
``helm uninstall`` removes everything but the CRDs. The kustomize base is checked the same way.

kwok plays the kubelet, so "Running" means scheduled, volumes bound and admitted: the image is not
pulled (there is no container runtime here; the image itself is tested in tests/integration).
Embedded mode needs its PersistentVolumeClaim bound: the test offers a hostPath PersistentVolume,
as a storage class's provisioner would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.kubeplane import build
from tests.kubeplane import fixture as kube_fixture

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "trigger-router"
KUSTOMIZE = ROOT / "deploy" / "kustomize"
EXTERNAL = ["--set", "mode=external", "--set", "nats.url=nats://nats.nats.svc:4222", "--set", "replicaCount=3",
            "--set", "bus.replicas=3"]
CRDS = {"triggerrules.trigger-router.dev", "clustertriggerrules.trigger-router.dev"}


@pytest.fixture(scope="module")
def tools(request) -> build.Tools:
    with kube_fixture._uncaptured(request):
        return build.ensure_tools()


@pytest.fixture
def run(tmp_path, tools, kube_cluster):
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(kube_cluster.kubeconfig)}

    def run(tool: str, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        binary = {"helm": tools.helm, "kubectl": tools.kubectl}[tool]
        done = subprocess.run([str(binary), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{tool} {' '.join(map(str, args))}: {done.stderr}{done.stdout[-2000:]}"
        return done
    run.tmp = tmp_path
    return run


def kinds(manifest: str) -> list[str]:
    return sorted(d["kind"] for d in yaml.safe_load_all(manifest) if d)


@pytest.mark.parametrize("mode", [[], EXTERNAL], ids=["embedded", "external"])
def test_lint_and_server_side_dry_run(run, mode):
    assert "0 chart(s) failed" in run("helm", "lint", CHART, *mode).stdout
    rendered = run("helm", "template", "tr", CHART, "--namespace", "default", "--include-crds", *mode).stdout
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "ClusterRole", "Role", "RoleBinding",
            "NetworkPolicy", "CustomResourceDefinition"} <= set(kinds(rendered))
    assert ("PersistentVolumeClaim" in kinds(rendered)) == (mode == [])
    assert ("PodDisruptionBudget" in kinds(rendered)) == (mode == EXTERNAL)
    dry = run("kubectl", "apply", "--dry-run=server", "-f", _write(run, rendered))
    assert "(server dry run)" in dry.stdout


def test_values_that_cannot_work_are_refused(run):
    done = run("helm", "template", "tr", CHART, "--set", "replicaCount=2", check=False)
    assert done.returncode != 0 and "replicaCount" in done.stderr, done.stderr
    done = run("helm", "template", "tr", CHART, "--set", "mode=external", check=False)
    assert done.returncode != 0 and "nats" in done.stderr, done.stderr
    done = run("helm", "template", "tr", CHART, "--set", "mode=sideways", check=False)
    assert done.returncode != 0 and "mode" in done.stderr, done.stderr


def _write(run, text: str) -> Path:
    path = run.tmp / f"{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(text)
    return path


def wait_running(run, namespace: str, selector: str, count: int, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        pods = json.loads(run("kubectl", "-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout)["items"]
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
        if len(running) >= count:
            return running
        if time.monotonic() > deadline:
            described = run("kubectl", "-n", namespace, "describe", "pods", "-l", selector, check=False).stdout
            raise AssertionError(f"{len(running)} of {count} pods Running after {timeout}s:\n{described[-3000:]}")
        time.sleep(0.5)


def release_objects(run, namespace: str, release: str) -> set[str]:
    """Every object labelled as the release's, namespaced and cluster-scoped."""
    selector = f"app.kubernetes.io/instance={release}"
    found = set()
    for scope in (["-n", namespace], []):
        kinds_ = "deployment,service,configmap,secret,serviceaccount,role,rolebinding,networkpolicy,pvc,pdb" \
            if scope else "clusterrole,clusterrolebinding"
        listed = json.loads(run("kubectl", *scope, "get", kinds_, "-l", selector, "-o", "json").stdout)["items"]
        found |= {f"{item['kind']}/{item['metadata']['name']}" for item in listed}
    return found


def offer_volume(run, name: str, size: str = "2Gi") -> None:
    run("kubectl", "apply", "-f", _write(run, yaml.safe_dump({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": f"/tmp/{name}"}}})))


@pytest.mark.parametrize("mode", [[], EXTERNAL], ids=["embedded", "external"])
def test_install_runs_and_uninstall_leaves_only_the_crds(run, mode):
    namespace, release = f"chart-{uuid.uuid4().hex[:6]}", "tr"
    run("kubectl", "create", "namespace", namespace)
    if not mode:
        offer_volume(run, f"pv-{namespace}")
    values = ["--set", f"rbac.jobNamespaces={{{namespace}}}", "--set", "secrets.eventsTokens={token-1}",
              "--set", "secrets.githubSecrets={gh-secret}"]
    run("helm", "install", release, CHART, "--namespace", namespace, *values, *mode, "--wait=false", timeout=180)
    replicas = 3 if mode else 1
    pods = wait_running(run, namespace, f"app.kubernetes.io/instance={release}", replicas)
    assert all(p["spec"]["nodeName"] == "kwok-node-0" for p in pods)
    created = release_objects(run, namespace, release)
    expected = {"Deployment/tr-trigger-router", "Service/tr-trigger-router", "ConfigMap/tr-trigger-router",
                "Secret/tr-trigger-router", "ServiceAccount/tr-trigger-router", "Role/tr-trigger-router-leases",
                "RoleBinding/tr-trigger-router-leases", "RoleBinding/tr-trigger-router-jobs",
                "NetworkPolicy/tr-trigger-router", "ClusterRole/tr-trigger-router-watch",
                "ClusterRole/tr-trigger-router-jobs", "ClusterRoleBinding/tr-trigger-router-watch"}
    expected |= {"PodDisruptionBudget/tr-trigger-router"} if mode else {"PersistentVolumeClaim/tr-trigger-router-state"}
    assert expected <= created, expected - created
    crds = json.loads(run("kubectl", "get", "crd", "-o", "json").stdout)["items"]
    assert CRDS <= {c["metadata"]["name"] for c in crds}

    config = yaml.safe_load(json.loads(run("kubectl", "-n", namespace, "get", "configmap", "tr-trigger-router",
                                           "-o", "json").stdout)["data"]["config.yaml"])
    assert config["http"]["host"] == "0.0.0.0" and config["events_auth"]["tokens_file"].endswith("events-tokens")
    assert (config.get("nats") or {}).get("url") == ("nats://nats.nats.svc:4222" if mode else None)

    run("helm", "uninstall", release, "--namespace", namespace, "--wait", timeout=180)
    assert release_objects(run, namespace, release) == set()
    crds = json.loads(run("kubectl", "get", "crd", "-o", "json").stdout)["items"]
    assert CRDS <= {c["metadata"]["name"] for c in crds}, "helm uninstall must leave the CRDs"
    run("kubectl", "delete", "namespace", namespace, "--wait=false")


def test_the_kustomize_base_is_the_chart_rendered(tools):
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "render.py"), "--check", "--helm", str(tools.helm)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_apply_k_creates_every_object_and_the_pod_runs(run):
    """``kubectl apply -k deploy/kustomize`` exactly as README says: namespace trigger-router."""
    offer_volume(run, f"pv-kustomize-{uuid.uuid4().hex[:6]}")
    applied = run("kubectl", "apply", "-k", KUSTOMIZE, timeout=180).stdout
    for kind_name in ("namespace/trigger-router", "serviceaccount/trigger-router", "deployment.apps/trigger-router",
                      "service/trigger-router", "persistentvolumeclaim/trigger-router-state",
                      "customresourcedefinition.apiextensions.k8s.io/triggerrules.trigger-router.dev",
                      "role.rbac.authorization.k8s.io/trigger-router-leases",
                      "clusterrole.rbac.authorization.k8s.io/trigger-router-watch"):
        assert kind_name in applied, applied
    try:
        (pod,) = wait_running(run, "trigger-router", "app.kubernetes.io/instance=trigger-router", 1)
        assert pod["spec"]["serviceAccountName"] == "trigger-router"
    finally:
        # Only what no other test shares: the RBAC objects and the namespace stay (same content as
        # the other tests apply), the workload and its claim go.
        run("kubectl", "-n", "trigger-router", "delete", "deployment/trigger-router", "pvc/trigger-router-state",
            "--wait=false")


def test_reporter_secrets_and_monitoring_render_into_a_config_serve_accepts(run, tmp_path):
    """The chart's names for the reporters' secret files must be settings that exist: the rendered
    config, with the Secret's keys written where the pod would mount them, passes ``config check``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "secrets": {"eventsTokens": ["t0ken-for-events"], "githubAppPrivateKey": key, "githubToken": "ghp-token",
                    "gitlabReporterToken": "glpat-token", "subscriptionsTokens": ["subs-token-1"]},
        "config": {"reporters": {"github": {"app_id": 12345}, "gitlab": {"url": "https://gitlab.example.com"}}},
        "prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}))
    rendered = [d for d in yaml.safe_load_all(run("helm", "template", "tr", CHART, "-f", values).stdout) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in rendered}
    assert ("PrometheusRule", "tr-trigger-router") in by_kind
    dashboard = by_kind[("ConfigMap", "tr-trigger-router-dashboard")]
    assert json.loads(dashboard["data"]["trigger-router.json"])["uid"] == "trigger-router"
    secret = by_kind[("Secret", "tr-trigger-router")]["stringData"]
    mounted = tmp_path / "secrets"
    mounted.mkdir()
    for name, content in secret.items():
        (mounted / name).write_text(content)
    config = by_kind[("ConfigMap", "tr-trigger-router")]["data"]["config.yaml"]
    config = config.replace("/var/run/secrets/trigger-router", str(mounted)).replace("/var/lib/trigger-router",
                                                                                     str(tmp_path / "state"))
    (tmp_path / "config.yaml").write_text(config)
    parsed = yaml.safe_load(config)
    assert parsed["reporters"]["github"]["private_key_file"].endswith("github-app-private-key")
    assert parsed["reporters"]["gitlab"]["token_file"].endswith("gitlab-reporter-token")
    assert parsed["subscriptions"]["tokens_file"].endswith("subscriptions-tokens")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_ROUTER_")}
    checked = subprocess.run([sys.executable, "-m", "router.cli", "--config", str(tmp_path / "config.yaml"),
                              "config", "check"], capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "ghp-token" not in checked.stdout and "glpat-token" not in checked.stdout and "PRIVATE KEY" not in checked.stdout


def test_manifest_check_rbac_is_opt_in_and_valid(run):
    default = [d for d in yaml.safe_load_all(run("helm", "template", "tr", CHART).stdout) if d]
    assert not [d for d in default if d["metadata"]["name"].endswith("-manifestcheck")]
    rendered = run("helm", "template", "tr", CHART, "--namespace", "default",
                   "--set", "rbac.manifestCheck.enabled=true").stdout
    role, binding = [d for d in yaml.safe_load_all(rendered) if d and d["metadata"]["name"].endswith("-manifestcheck")]
    assert role["kind"] == "ClusterRole" and binding["kind"] == "ClusterRoleBinding"
    assert {tuple(r["verbs"]) for r in role["rules"]} == {("get", "patch")}
    assert ["deployments", "statefulsets", "daemonsets"] in [r["resources"] for r in role["rules"]]
    dry = run("kubectl", "apply", "--dry-run=server", "-f", _write(run, rendered))
    assert "clusterrole.rbac.authorization.k8s.io/tr-trigger-router-manifestcheck created (server dry run)" in dry.stdout


def test_rollback_rbac_grants_snapshots_and_restores_and_no_more(run):
    """``rbac.rollbackNamespaces``: read and restore ConfigMaps, Secrets and workloads there, and
    keep snapshot Secrets in the release's namespace; nothing elsewhere, no deletes where apps run."""
    suffix = uuid.uuid4().hex[:6]
    release_ns, app_ns = f"tr-{suffix}", f"apps-{suffix}"
    rendered = run("helm", "template", "rb", CHART, "--namespace", release_ns,
                   "--set", f"rbac.rollbackNamespaces={{{app_ns}}}").stdout
    rbac = [d for d in yaml.safe_load_all(rendered)
            if d and d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    for document in rbac:
        if document["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            document["metadata"].setdefault("namespace", release_ns)
    [account] = [d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount"]
    objects = _write(run, yaml.safe_dump_all(rbac))
    for namespace in (release_ns, app_ns):
        run("kubectl", "create", "namespace", namespace)
    try:
        run("kubectl", "apply", "-f", objects)

        def can(verb: str, resource: str, namespace: str) -> bool:
            done = run("kubectl", "auth", "can-i", verb, resource, "-n", namespace,
                       f"--as=system:serviceaccount:{release_ns}:{account}", check=False)
            return done.stdout.strip() == "yes"

        granted = [("get", "secrets", app_ns), ("update", "secrets", app_ns), ("update", "configmaps", app_ns),
                   ("create", "configmaps", app_ns), ("update", "deployments.apps", app_ns),
                   ("patch", "deployments.apps", app_ns), ("create", "secrets", release_ns),
                   ("list", "secrets", release_ns), ("delete", "secrets", release_ns)]
        refused = [("delete", "secrets", app_ns), ("list", "secrets", app_ns), ("delete", "deployments.apps", app_ns),
                   ("get", "secrets", "default"), ("update", "deployments.apps", "default"),
                   ("create", "secrets", "default")]
        assert [g for g in granted if not can(*g)] == []
        assert [r for r in refused if can(*r)] == []
    finally:
        run("kubectl", "delete", "-f", objects, "--ignore-not-found", check=False)
        for namespace in (release_ns, app_ns):
            run("kubectl", "delete", "namespace", namespace, "--wait=false", check=False)
