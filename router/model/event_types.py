"""Every CloudEvent type trigger-router emits, in one place.

Source-specific types are built from the sender's own vocabulary (``com.github.<event>[.<action>]``,
``com.gitlab.<object_kind>``); CDEvents types are fixed by the CDEvents 0.5.1 schemas.
"""

from __future__ import annotations

GITHUB_PREFIX = "com.github."
GITLAB_PREFIX = "com.gitlab."

CDEVENTS_SPECVERSION = "0.5.1"
PIPELINERUN_QUEUED = "dev.cdevents.pipelinerun.queued.0.3.0"
PIPELINERUN_STARTED = "dev.cdevents.pipelinerun.started.0.3.0"
PIPELINERUN_FINISHED = "dev.cdevents.pipelinerun.finished.0.3.0"
ARTIFACT_PUBLISHED = "dev.cdevents.artifact.published.0.3.0"
ARTIFACT_DELETED = "dev.cdevents.artifact.deleted.0.2.0"

# Container registry pushes, one CloudEvent per pushed manifest, in the registry's own words.
DOCKERHUB_PUSH = "com.docker.hub.push"
QUAY_PUSH = "io.quay.push"
HARBOR_PUSH = "io.goharbor.push"
# Harbor image scan results (SCANNING_COMPLETED / SCANNING_FAILED): digest and severity counts.
HARBOR_SCANNING_COMPLETED = "io.goharbor.scanning_completed"
HARBOR_SCANNING_FAILED = "io.goharbor.scanning_failed"
DISTRIBUTION_PUSH = "dev.cncf.distribution.push"
ECR_PUSH = "com.amazonaws.ecr.push"
GAR_PUSH = "com.google.artifactregistry.push"
ACR_PUSH = "com.azure.containerregistry.push"
# An item of a multi-event delivery that could not be ingested (stored in the dead-letter stream).
INGEST_REJECTED = "dev.triggerrouter.ingest.rejected"
# A correlation rule's partial join whose window ended before every required event arrived.
CORRELATION_EXPIRED = "dev.triggerrouter.correlation.expired"
# Kubernetes watch transitions: io.k8s.<kind>.<transition>, e.g. io.k8s.deployment.rollout_completed
# (handlers/sources/kubernetes/); a completed rollout is also a CDEvent service.deployed/upgraded.
KUBERNETES_PREFIX = "io.k8s."
SERVICE_DEPLOYED = "dev.cdevents.service.deployed.0.3.0"
SERVICE_UPGRADED = "dev.cdevents.service.upgraded.0.3.0"
TESTSUITERUN_QUEUED = "dev.cdevents.testsuiterun.queued.0.3.0"
TESTSUITERUN_STARTED = "dev.cdevents.testsuiterun.started.0.3.0"
TESTSUITERUN_FINISHED = "dev.cdevents.testsuiterun.finished.0.3.0"


def github(event: str, action: str | None = None) -> str:
    return f"{GITHUB_PREFIX}{event}.{action}" if action else f"{GITHUB_PREFIX}{event}"


def gitlab(object_kind: str) -> str:
    return f"{GITLAB_PREFIX}{object_kind}"


def kubernetes(kind: str, transition: str) -> str:
    return f"{KUBERNETES_PREFIX}{kind.lower()}.{transition}"
