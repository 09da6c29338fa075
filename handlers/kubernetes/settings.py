"""Settings of the Kubernetes integration (the ``kubernetes:`` section).

Registered by the Kubernetes plug-ins themselves (the watch source and the ``kubernetesJob`` /
``rolloutCheck`` actions share it): what to watch is a list of resource descriptions with their
own validation, and the client configuration. One process talks to one cluster; the
cluster's name goes into every event's source and into the CDEvents environment, so two routers
watching two clusters never produce colliding event ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from router import plugins
from router.plugins import Duration, Section


class Condition(Section):
    """A transition of any kind: emitted once when the value at ``path`` becomes ``equals``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    """The transition name: the event type is ``io.k8s.<kind>.<name>``."""
    path: str
    """Dotted path into the object, ``[?type==Ready]`` selects a list item: ``status.conditions[?type==Ready].status``."""
    equals: Any
    """The value that makes the condition true (compared after JSON decoding: ``"True"``, ``3``)."""


class Watch(Section):
    group: str = ""
    """API group (``apps``, ``batch``, ``""`` for the core group, a CRD's group)."""
    version: str = "v1"
    kind: str
    """Kind as written in manifests (``Deployment``); the plural is looked up by discovery."""
    namespaces: list[str] = []
    """Namespaces to watch; empty: every namespace."""
    label_selector: str | None = None
    """Only objects with these labels (``team=web,tier!=batch``)."""
    conditions: list[Condition] = []
    """Extra transitions for this kind (most useful for CRDs)."""


class LeaderElection(Section):
    """One watcher per watch among replicas, by a ``coordination.k8s.io/v1`` Lease each."""

    enabled: bool = True
    """Off: every replica watches everything (each transition is published by each and stored once)."""
    namespace: str | None = None
    """Where the Leases live; unset: the pod's namespace (from the ServiceAccount), else ``default``."""
    lease_duration: Duration = Field(15.0, ge=2.0)
    """A holder renews every third of it; after SIGKILL another replica takes over after about this long."""
    identity: str | None = None
    """This process in the Lease's ``holderIdentity``; unset: ``<hostname>_<pid>`` (hostname = pod name)."""


class Drift(Section):
    """``io.k8s.<kind>.drifted`` when a workload's spec is changed by a field manager that is not a deployer."""

    enabled: bool = True
    """Off: no spec is remembered and no ``drifted`` event is emitted."""
    deployers: list[str] = ["helm", "argocd-controller", "kustomize-controller", "kubectl-client-side-apply"]
    """Field managers (``metadata.managedFields[].manager``) whose writes are deploys; every other one is drift
    (``kubectl-edit``, ``kubectl-patch``, ``kubectl-set``, unknown ones). Add an autoscaler's manager if it scales."""


class TriggerRulesSettings(Section):
    """TriggerRule / ClusterTriggerRule objects as rules, beside rule files (needs ``deploy/crds/``)."""

    enabled: bool = False
    namespaces: list[str] = []
    """Namespaces whose TriggerRules are read; empty: every namespace."""
    cluster_rules: bool = True
    """Also read ClusterTriggerRules (which may act in any namespace)."""
    status_rate: float = Field(10.0, gt=0, le=100)
    """Status writes per second at most (the Lease holder writes them all)."""


class Snapshots(Section):
    """Bundle snapshots for ``rollback``: pod template, ConfigMaps and Secrets of each rollout."""

    enabled: bool = False
    """Record a snapshot at every ``rollout_started`` (needs ``get`` on the referenced ConfigMaps and
    Secrets, and ``create``/``list``/``delete`` on Secrets in ``namespace``)."""
    namespace: str | None = None
    """Where the snapshot Secrets live; unset: the router's own namespace (from the ServiceAccount),
    else ``default``. Only the router should be able to read it: it holds Secret data."""
    keep: int = Field(5, ge=2, le=100)
    """Snapshots kept per workload (the newest ones); a rollback needs at least the previous one."""
    helm_binary: str = "helm"
    """The ``helm`` that ``rollback`` runs for a Helm-managed workload (``meta.helm.sh/release-name``)."""


@plugins.settings_section("kubernetes")
class KubernetesSettings(Section):
    kubeconfig: Path | None = None
    """Client configuration; unset: the in-cluster ServiceAccount, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    context: str | None = None
    """kubeconfig context; unset: the current context."""
    cluster: str = "default"
    """This cluster's name in event sources and in CDEvents environments (``<cluster>/<namespace>``)."""
    watches: list[Watch] = []
    """Resources turned into ``io.k8s.*`` events; empty: no watch runs."""
    state_bucket: str = "TR_KUBE_WATCH"
    """JetStream KV bucket with each watch's last resourceVersion and what it knew of each object."""
    trigger_rules: TriggerRulesSettings = TriggerRulesSettings()
    """Rules as Kubernetes objects (see ``handlers/sources/kubernetes/triggerrules.py``)."""
    leader_election: LeaderElection = LeaderElection()
    """Which replica runs each watch (see ``handlers/sources/kubernetes/leases.py``)."""
    drift: Drift = Drift()
    """Who changed a watched workload's spec outside a deploy (see ``handlers/sources/kubernetes/drift.py``)."""
    snapshots: Snapshots = Snapshots()
    """Bundle snapshots the ``rollback`` action restores (see ``handlers/kubernetes/bundles.py``)."""
    watch_timeout: Duration = 300.0
    """Server-side timeout of one watch request; the watch then resumes from where it was."""
    max_backoff: Duration = 30.0
    """Longest pause between reconnect attempts (exponential from 0.2s, full jitter)."""
    max_object_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """Longest watch event (one JSON line) taken in; a longer one is skipped, logged and counted.

    The default is above anything the apiserver can store: etcd refuses objects over ~1.5 MiB, and
    the apiserver's JSON escapes ``<``, ``>``, ``&`` and control characters as 6-byte ``\\u00XX``,
    so a 1.5 MiB object can be a ~9.4 MiB line. Lower it to bound memory per watch."""
    service_account_dir: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    """In-cluster: where the ServiceAccount's ``token``, ``ca.crt`` and ``namespace`` files are."""
