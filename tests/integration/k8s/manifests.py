"""The install's identity as tests apply it: ServiceAccount and RBAC of the kustomize base.

``deploy/kustomize`` is rendered from the Helm chart (``deploy/render.py``; a test keeps them equal),
so applying its ServiceAccount and RBAC is applying the chart's. Only those kinds (and the
namespace) are applied: tests run the router themselves. The RoleBinding that lets the router run
smoke-test Jobs is moved to the test's namespace, as an install lists its job namespaces.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from router import errors

BASE = Path(__file__).resolve().parents[3] / "deploy" / "kustomize"
KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
JOBS_BINDING = "trigger-router-jobs"
ROUTER_NAMESPACE = "trigger-router"


def identity_documents(jobs_namespace: str) -> list[dict]:
    documents = []
    for name in ("namespace.yaml", "trigger-router.yaml"):
        for document in yaml.safe_load_all((BASE / name).read_text()):
            if not document or document["kind"] not in KINDS:
                continue
            if document["kind"] == "RoleBinding" and document["metadata"]["name"] == JOBS_BINDING:
                document["metadata"]["namespace"] = jobs_namespace
            documents.append(document)
    return documents


async def apply_identity(client, jobs_namespace: str) -> None:
    """Create, or update what exists (the cluster is shared by the test session), the base's
    ServiceAccount and RBAC, the jobs RoleBinding in ``jobs_namespace``."""
    for document in identity_documents(jobs_namespace):
        metadata = document["metadata"]
        api = "/api/v1" if document["apiVersion"] == "v1" else f"/apis/{document['apiVersion']}"
        scope = f"/namespaces/{metadata['namespace']}" if metadata.get("namespace") else ""
        collection = f"{api}{scope}/{document['kind'].lower()}s"
        try:
            await client.request("POST", collection, body=document)
        except errors.KubernetesRefused as exc:
            if exc.status != 409:
                raise
            await client.request("PATCH", f"{collection}/{metadata['name']}", body=document,
                                 content_type="application/merge-patch+json")
