"""What a pushed container image looks like on the bus, whichever registry reported it.

Docker Hub, Quay, Harbor, the CNCF distribution registry, ECR, Artifact Registry, ACR and GHCR (through
the GitHub source) each describe a push in their own shape. This module is the one place that decides
the shape trigger-router publishes for it, so that a rule written against one registry's pushes works
for every other: a CDEvents ``artifact.published`` whose subject id is the purl
``pkg:oci/<name>@sha256:<hex>?repository_url=<host>/<path>&tag=<tag>``, linked to the registry's own
event (which keeps the sender's payload), with the facts a rule needs in ``customData``.

Only a real ``sha256:<64 hex>`` digest makes an artifact: a tag names whatever was pushed last, so an
event that passed a tag off as a digest would let a later push be verified in place of this one.
Reading a digest out of other spellings (a purl, ``sha256%3A``, an image reference) is
``references.digest``'s job; the canonical form is defined there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.model import cdevents, event_types, events, references

# Manifests and indexes (the things a tag or a digest reference can name); anything else a registry
# reports (layers, configs: blobs) is not an artifact.
MANIFEST_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.artifact.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
})
INDEX_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})


def is_digest(value: object) -> bool:
    return references.is_sha256(value)


@dataclass(frozen=True, slots=True)
class Push:
    """One manifest stored in a registry under ``repository`` (``<host>/<path>``)."""

    registry: str
    """Which source reported it (``dockerhub``, ``distribution``, ``github``...)."""
    repository: str
    digest: str
    tag: str | None = None
    media_type: str | None = None

    def __post_init__(self) -> None:
        if not is_digest(self.digest):
            raise ValueError(f"{self.digest!r} is not a sha256 digest")
        if self.tag is not None and (not self.tag or is_digest(self.tag)):
            # Some registries (Harbor, for pushes by digest) repeat the digest as the "tag".
            object.__setattr__(self, "tag", None)

    @property
    def purl(self) -> str:
        return cdevents.oci_purl(self.repository, self.digest, self.tag)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


def published(trigger: events.CloudEvent, push: Push) -> events.CloudEvent:
    """``artifact.published`` for ``push``, caused by the registry's event ``trigger``."""
    return cdevents.derive(
        trigger, event_types.ARTIFACT_PUBLISHED, subject_id=push.purl, content={},
        subject_source=trigger.source,
        custom_data={
            "registry": push.registry,
            "repository": push.repository.lower(),
            "digest": push.digest,
            "tag": push.tag,
            "mediaType": push.media_type,
            "index": push.is_index,
        },
    )
