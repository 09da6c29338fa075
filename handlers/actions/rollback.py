"""``rollback``: put a workload back to its previous revision *as a bundle*, then prove it runs.

``kubectl rollout undo`` restores the pod template and leaves the ConfigMaps and Secrets that
changed with it; the old pods then start with the new configuration. This action restores, from the
snapshot the Kubernetes source recorded when the previous revision rolled out
(``handlers/kubernetes/bundles.py``): the referenced ConfigMaps and Secrets first (their content as
snapshotted, annotated with this run), then the pod template, then waits for the rollout and checks
the pods run the snapshot's digest (``rolloutCheck``'s own code).

It refuses, ending ``error`` with the reason, when there is no snapshot of the current revision
(its predecessor is then unknown), none of the revision before it, or when the current revision is
itself a rollback's (the revision "before" it is the one that rollback undid). Carried out again (a retry, a
redelivery), it reads its own annotation on the workload and verifies instead of rolling back a
second time, which would roll *forward* to the revision just undone.

``io.k8s.<kind>.rolled_back`` says what was restored: names and content hashes, never Secret values.
"""

from __future__ import annotations

from typing import Any, Literal

from handlers.actions import rollout_check
from handlers.kubernetes import bundles, helm
from handlers.kubernetes import client as kube
from handlers.kubernetes import workloads
from router import plugins
from router.plugins import Duration, actions, cdevents, errors, event_types, events, references

RUN = "trigger-router.dev/rolled-back-by"
TARGET = "trigger-router.dev/rolled-back-to"
PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


class Rollback(actions.Params):
    namespace: str
    name: str
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    timeout: Duration = 120.0
    """How long the restored rollout may take to complete (bounded by the rule's policy.timeout)."""
    helm: bool = True
    """A Helm-managed workload (``meta.helm.sh/release-name``) is rolled back with ``helm rollback``
    of its release, so Helm's record stays true; false: restore the bundle from snapshots even then."""


def _target(snapshots: list[dict[str, Any]], obj: dict[str, Any], run_id: str, label: str) -> dict[str, Any]:
    annotations = obj["metadata"].get("annotations") or {}
    if annotations.get(RUN) == run_id:  # this run restored it already: verify, do not roll back again
        for snapshot in snapshots:
            if snapshot["revision"] == annotations.get(TARGET):
                return snapshot
    current = bundles.revision(obj["spec"]["template"])
    if annotations.get(TARGET) == current:
        # The newest snapshot is now this restored revision, and the one "before" it the revision
        # just undone: a second rollback (a rollout_failed or crashloop rule firing again) would
        # roll forward to it.
        raise errors.PermanentError(f"{label}: the current revision {current} was restored by rollback run "
                                    f"{annotations.get(RUN)}; rolling back again would roll forward to the "
                                    "revision it undid")
    revisions = [s["revision"] for s in snapshots]
    if current not in revisions:
        raise errors.PermanentError(f"{label}: no snapshot of the current revision {current}, so the revision "
                                    f"before it is unknown (snapshots: {', '.join(revisions) or 'none'}; "
                                    "kubernetes.snapshots.enabled records one at every rollout)")
    position = revisions.index(current)
    if position + 1 >= len(snapshots):
        raise errors.PermanentError(f"{label}: no snapshot of the revision before {current} "
                                    f"(the oldest kept is {revisions[-1]})")
    return snapshots[position + 1]


async def _restore(client: kube.Client, namespace: str, plural: str, name: str, content: dict[str, Any],
                   run_id: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/{plural}"
    try:
        found = await client.request("GET", f"{path}/{name}")
    except errors.KubernetesRefused as exc:
        if exc.status != 404:
            raise
        await client.request("POST", path, body={"metadata": {"name": name, "annotations": {RUN: run_id}},
                                                 **content})
        return
    for field in ("data", "binaryData"):
        found.pop(field, None)
    found.update({k: v for k, v in content.items() if k != "type"})
    found["metadata"].setdefault("annotations", {})[RUN] = run_id
    await client.request("PUT", f"{path}/{name}", body=found)


def _expected_digest(template: dict[str, Any]) -> str | None:
    """The one digest every container of the snapshot's template is pinned to, if there is one."""
    found = set()
    for container in template["spec"]["containers"]:
        try:
            found.add(references.digest(container.get("image", "")))
        except references.NotADigest:
            return None
    return found.pop() if len(found) == 1 else None


@plugins.action("rollback", params=Rollback)
async def rollback(params: Rollback, context: actions.Context) -> actions.Result:
    client = await kube.shared()
    settings = kube.configured()
    label = f"{params.kind} {params.namespace}/{params.name}"
    path = f"/apis/{workloads.WORKLOAD_KINDS[params.kind]}/v1/namespaces/{params.namespace}/" \
           f"{PLURALS[params.kind]}/{params.name}"
    obj = await client.request("GET", path)
    release = helm.release_of(obj) if params.helm else None
    if release is not None:
        return await _helm_rollback(params, context, client, settings, path, obj, release, label)
    snapshots = await bundles.load(client, bundles.store_namespace(settings), client.cluster,
                                   params.kind, params.namespace, params.name)
    target = _target(snapshots, obj, context.run_id, label)
    current = bundles.revision(obj["spec"]["template"])
    if (obj["metadata"].get("annotations") or {}).get(RUN) != context.run_id:
        for plural, kind in (("configmaps", "configMaps"), ("secrets", "secrets")):
            for name, content in sorted(target[kind].items()):
                if content is not None:
                    await _restore(client, params.namespace, plural, name, content, context.run_id)
        obj["spec"]["template"] = target["template"]
        obj["metadata"].setdefault("annotations", {}).update({RUN: context.run_id, TARGET: target["revision"]})
        try:
            await client.request("PUT", path, body=obj)
        except errors.KubernetesRefused as exc:
            if exc.status == 409:  # changed since read: read again and retry
                raise errors.TemporaryError(f"{label} changed while rolling back; retrying") from exc
            raise
    restored = bundles.summary(target)
    await _announce(params, context, client.cluster, {
        "from": current if current != target["revision"] else None, "to": target["revision"], "restored": restored})
    checks: list[dict[str, Any]] = [
        {"name": f"restored {kind[:-1]} {entry['name']}", "hash": entry["hash"], "passed": True}
        for kind in ("configMaps", "secrets") for entry in restored[kind] if entry["hash"] is not None]
    checks.append({"name": f"restored pod template {target['revision']}", "passed": True})
    verified = await _verify(params, context, target["template"])
    counts = f"{len(restored['configMaps'])} ConfigMap(s), {len(restored['secrets'])} Secret(s)"
    return actions.Result(verified.outcome, f"{label} rolled back to revision {target['revision']} ({counts} "
                          f"restored): {verified.reason}", checks + verified.checks, severity=verified.severity)


async def _announce(params: Rollback, context: actions.Context, cluster: str, what: dict[str, Any]) -> None:
    """``io.k8s.<kind>.rolled_back``, once per run (its id is the run's)."""
    if context.publish is None:
        return
    await context.publish(events.make({
        "id": cdevents.deterministic_id("rollback", context.run_id),
        "source": f"k8s://{cluster}/namespaces/{params.namespace}/{PLURALS[params.kind]}/{params.name}",
        "type": event_types.kubernetes(params.kind, "rolled_back"),
        "subject": f"{params.namespace}/{params.name}", "time": cdevents.now()},
        {"cluster": cluster, "kind": params.kind, "namespace": params.namespace, "name": params.name,
         "runId": context.run_id, **what}))


async def _verify(params: Rollback, context: actions.Context, template: dict[str, Any]) -> actions.Result:
    expected = _expected_digest(template)
    verify = {"namespace": params.namespace, "name": params.name, "kind": params.kind, "timeout": params.timeout}
    if expected:
        verify["expectedDigest"] = expected
    return await rollout_check.rollout_check(rollout_check.RolloutCheck.model_validate(verify), context)


async def _helm_rollback(params: Rollback, context: actions.Context, client: kube.Client, settings: Any, path: str,
                         obj: dict[str, Any], release: tuple[str, str], label: str) -> actions.Result:
    name, namespace = release
    annotations = obj["metadata"].get("annotations") or {}
    before = bundles.revision(obj["spec"]["template"])
    if annotations.get(RUN) != context.run_id:  # carried out again: helm rollback 0 would undo the undo
        if annotations.get(TARGET) == before:
            raise errors.PermanentError(f"{label}: the current revision {before} was restored by rollback run "
                                        f"{annotations.get(RUN)}; rolling back again would roll forward")
        output = await helm.rollback(settings, name, namespace, params.timeout)
        obj = await client.request("GET", path)
        await client.request("PATCH", path, body={"metadata": {"annotations": {
            RUN: context.run_id, TARGET: bundles.revision(obj["spec"]["template"])}}},
            content_type="application/merge-patch+json")
    else:
        output = "rolled back by an earlier attempt of this run"
    after = bundles.revision(obj["spec"]["template"])
    await _announce(params, context, client.cluster, {"from": before if before != after else None, "to": after,
                                                       "helm": {"release": name, "namespace": namespace}})
    verified = await _verify(params, context, obj["spec"]["template"])
    checks = [{"name": f"helm rollback {name}", "passed": True, "output": output[-500:]}]
    return actions.Result(verified.outcome, f"{label} rolled back with helm rollback of release {namespace}/{name}: "
                          f"{verified.reason}", checks + verified.checks, severity=verified.severity)
