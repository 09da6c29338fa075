"""Did any pod of a Deployment's new ReplicaSet restart within N minutes of the rollout?

The new ReplicaSet is the one the Deployment owns with its current revision
(``deployment.kubernetes.io/revision``); its pods are those carrying its ``pod-template-hash``.
The pods are watched for ``params.minutes`` (bounded by the run's timeout): the check fails as
soon as a container's restart count exceeds ``params.maxRestarts`` (0), and passes when the window
ends without one. A crash loop that starts a minute after "rollout complete" is caught here.

params: ``namespace``, ``deployment``, ``minutes`` (5), ``maxRestarts`` (0), ``interval`` seconds (10).
"""

from __future__ import annotations

import asyncio
import time

from router.functions import Check, Context, Event, PermanentError, Result

REVISION = "deployment.kubernetes.io/revision"


async def new_replicaset(kube, namespace: str, deployment: str) -> dict:
    found = await kube.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
    revision = found["metadata"].get("annotations", {}).get(REVISION)
    uid = found["metadata"]["uid"]
    listing = await kube.request("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets")
    for replicaset in listing["items"]:
        meta = replicaset["metadata"]
        owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences", []))
        if owned and meta.get("annotations", {}).get(REVISION) == revision:
            return replicaset
    raise PermanentError(f"deployment {namespace}/{deployment} has no ReplicaSet of revision {revision}")


def restarts(pods: list[dict]) -> dict[str, int]:
    """``pod/container -> restart count`` of every container."""
    return {f"{pod['metadata']['name']}/{status['name']}": status.get("restartCount", 0)
            for pod in pods for status in pod.get("status", {}).get("containerStatuses", [])}


async def no_restarts(event: Event, ctx: Context) -> Result:
    namespace, deployment = ctx.params["namespace"], ctx.params["deployment"]
    limit = int(ctx.params.get("maxRestarts", 0))
    kube = await ctx.kubernetes()
    replicaset = await new_replicaset(kube, namespace, deployment)
    selector = f"pod-template-hash={replicaset['metadata']['labels']['pod-template-hash']}"
    window_ends = time.monotonic() + min(float(ctx.params.get("minutes", 5)) * 60, max(ctx.remaining() - 1, 0))
    while True:
        pods = (await kube.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                   query={"labelSelector": selector}))["items"]
        counts = restarts(pods)
        over = {name: count for name, count in counts.items() if count > limit}
        if over:
            checks = [Check(f"container {name}", count <= limit, detail=f"{count} restart(s)",
                            error=None if count <= limit else f"{count} restart(s), at most {limit}")
                      for name, count in counts.items()]
            worst = max(over, key=over.get)
            return Result.failure(f"{worst} restarted {over[worst]} time(s) after the rollout of "
                                  f"{replicaset['metadata']['name']}", checks)
        if time.monotonic() >= window_ends:
            checks = [Check(f"container {name}", True, detail=f"{count} restart(s)") for name, count in counts.items()]
            return Result.success(f"no restart in {len(pods)} pod(s) of {replicaset['metadata']['name']}", checks)
        await asyncio.sleep(min(float(ctx.params.get("interval", 10)), max(window_ends - time.monotonic(), 0)))
