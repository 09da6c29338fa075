"""``rolloutCheck``: does the cluster really run what was deployed?

"The pipeline succeeded" says a manifest was applied. This check says the rollout completed within
a deadline, no pod of it is crash-looping or restarting beyond a threshold, and every running pod
runs the expected image *digest* as reported by the kubelet (``status.containerStatuses[].imageID``):
a tag moved between build and deploy shows up here as
``expected sha256:aaa… running sha256:bbb… in pod X``.

``expectedDigest`` is read by ``references.digest`` (a bare or ``sha256%3A`` digest, a purl, an image
reference with a digest); given but empty, a tag or null, the run ends ``error``: a digest check
that quietly became "no digest check" would pass a moved tag.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from handlers.kubernetes import client as kube
from handlers.kubernetes import workloads
from router import plugins
from router.plugins import Duration, actions, errors, references


class RolloutCheck(actions.Params):
    namespace: str
    name: str
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    timeout: Duration = 120.0
    """How long the rollout may take to complete (bounded by the rule's policy.timeout)."""
    expected_digest: Annotated[str | None, AfterValidator(references.digest_or_template)] = Field(
        None, alias="expectedDigest")
    """The digest every pod must run (``references.digest``: bare, ``sha256%3A``, purl, image reference).
    Absent: no digest check; given but empty, a tag or null: the run ends ``error``."""
    container: str | None = None
    """Compare only this container's digest (default: every container)."""
    max_restarts: int = Field(0, alias="maxRestarts", ge=0)
    """Restarts per container above this fail the check."""


def short(digest: str | None) -> str:
    return f"{digest[:19]}…" if digest else "no digest"


@plugins.action("rolloutCheck", params=RolloutCheck)
async def rollout_check(params: RolloutCheck, context: actions.Context) -> actions.Result:
    expected = None
    if "expected_digest" in params.model_fields_set:
        try:
            expected = references.digest(params.expected_digest)
        except references.NotADigest as exc:
            raise errors.PermanentError(f"expectedDigest: {exc}") from exc
    client = await kube.shared()
    group = workloads.WORKLOAD_KINDS[params.kind]
    collection = await client.collection_path(group, "v1", params.kind, params.namespace)
    target = f"{params.kind} {params.namespace}/{params.name}"

    def settled(obj: dict[str, Any]) -> bool:
        state = workloads.rollout(obj)
        return state.complete or state.failed is not None

    timeout = min(params.timeout, max(context.timeout - 2, 1))
    try:
        obj = await client.wait_for(collection, params.name, settled, timeout)
    except asyncio.TimeoutError:
        obj = await client.request("GET", f"{collection}/{params.name}")
        state = workloads.rollout(obj)
        return actions.Result("failure", f"{target}: rollout not complete after {timeout:g}s ({state.describe()})",
                              [{"name": "rollout complete", "passed": False, "detail": state.describe()}],
                              severity="high")
    state = workloads.rollout(obj)
    checks: list[dict[str, Any]] = [{"name": "rollout complete", "passed": state.complete,
                                     "detail": state.describe(), "generation": obj["metadata"].get("generation")}]
    if not state.complete:
        return actions.Result("failure", f"{target}: rollout failed: {state.failed}", checks, severity="high")
    listing = await client.request("GET", f"/api/v1/namespaces/{params.namespace}/pods",
                                   query={"labelSelector": workloads.selector(obj)})
    pods = workloads.current_pods(obj, listing["items"])
    failures: list[str] = []
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        for container, transition, reason in workloads.problems(pod):
            failures.append(f"pod {pod_name} container {container}: {reason}")
        for running in workloads.running_images(pod):
            if params.container and running["container"] != params.container:
                continue
            check = {"name": f"pod {pod_name} container {running['container']}", **running,
                     "expectedDigest": expected}
            problems = []
            if running["restartCount"] > params.max_restarts:
                problems.append(f"{running['restartCount']} restarts (at most {params.max_restarts})")
            if expected and running["digest"] != expected:
                problems.append(f"expected {short(expected)} running {short(running['digest'])} in pod {pod_name}")
            check["passed"] = not problems
            if problems:
                check["error"] = "; ".join(problems)
                failures.append(check["error"] if expected and running["digest"] != expected
                                else f"pod {pod_name} container {running['container']}: {check['error']}")
            checks.append(check)
    if not pods:
        failures.append("no running pod of the current template")
    if failures:
        return actions.Result("failure", f"{target}: {failures[0]}"
                              + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""),
                              checks, severity="critical" if expected else "high")
    digest_note = f", every pod runs {short(expected)}" if expected else ""
    return actions.Result("success", f"{target}: rollout complete ({state.describe()}){digest_note}", checks)
