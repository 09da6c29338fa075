"""``helm rollback`` of a release, for workloads Helm manages (``meta.helm.sh/release-name``).

Restoring such a workload's objects behind Helm's back would leave Helm's own record (the release
Secrets) describing the revision that was undone, and the next ``helm upgrade`` would compute its
diff from a lie. For them the rollback is Helm's: ``helm rollback <release> 0`` (the previous
revision) with the router's own cluster credentials, the same kubeconfig and context the client
uses (in a pod, Helm reads the ServiceAccount like the router does). The binary is
``kubernetes.snapshots.helm_binary``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from router.plugins import errors

RELEASE = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"


def release_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(release, its namespace) of a Helm-managed object, else None."""
    annotations = obj["metadata"].get("annotations") or {}
    if not annotations.get(RELEASE):
        return None
    return annotations[RELEASE], annotations.get(RELEASE_NAMESPACE) or obj["metadata"]["namespace"]


async def rollback(settings: Any, release: str, namespace: str, timeout: float) -> str:
    """Run ``helm rollback``; its output, or a PermanentError with its last lines."""
    argv = [settings.snapshots.helm_binary, "rollback", release, "0", "--namespace", namespace,
            "--timeout", f"{max(int(timeout), 1)}s"]
    if settings.kubeconfig:
        argv += ["--kubeconfig", str(settings.kubeconfig)]
    if settings.context:
        argv += ["--kube-context", settings.context]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "KUBERNETES_SERVICE_HOST",
                                                        "KUBERNETES_SERVICE_PORT", "HELM_CACHE_HOME",
                                                        "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT, env=env)
    except OSError as exc:
        raise errors.PermanentError(f"helm rollback: cannot run {argv[0]!r}: {exc}") from exc
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout + 10)
    except asyncio.TimeoutError:
        raise errors.PermanentError(f"helm rollback {release}: no answer after {timeout + 10:g}s") from None
    finally:
        if process.returncode is None:  # timed out or the run was cancelled: no helm outlives it
            process.kill()
            await process.wait()
    text = output.decode(errors="replace").strip()
    if process.returncode != 0:
        raise errors.PermanentError(f"helm rollback {release} (namespace {namespace}) exited "
                                    f"{process.returncode}: {text[-500:]}")
    return text
