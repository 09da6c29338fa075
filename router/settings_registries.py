"""Settings of the container-registry webhook sources (the ``registries:`` section).

Kept apart from ``router.settings`` because eight registries with their secrets, digest-resolution
credentials and Pub/Sub token checks would double that module. The rules are the same as there:
unknown keys are errors, and every secret (``secrets``, ``password``) may instead be given as
``<name>_file`` pointing at a mounted Secret (one value per line for lists).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from router.settings_base import Duration, Section



class WebhookSecrets(Section):
    secrets: list[SecretStr] = []
    """Accepted shared secrets (several, so one can be rotated). None configured = every delivery
    is refused with 401. Where the registry presents it depends on the registry (path or header)."""


class ResolvingRegistry(WebhookSecrets):
    """A registry whose webhook names a tag but not the digest it points to."""

    api_url: str
    """Base URL of the registry's HTTP API v2, used to resolve tag -> digest (HEAD manifest)."""
    username: str | None = None
    """Pull credentials for private repositories (basic auth, or the bearer-token flow's login)."""
    password: SecretStr | None = None


class DockerHubSettings(ResolvingRegistry):
    api_url: str = "https://registry-1.docker.io"


class QuaySettings(ResolvingRegistry):
    api_url: str = ""
    """Default: ``https://<host of the payload's docker_url>`` (quay.io or a self-hosted Quay)."""


class DistributionSettings(WebhookSecrets):
    host: str | None = None
    """Registry host name written into artifact purls; default the ``request.host`` of each event
    (what the pushing client used, which behind a proxy may be an internal name)."""


class EcrSettings(WebhookSecrets):
    pass


class PubSubOidcSettings(Section):
    audience: str | None = None
    """Expected ``aud`` of the push subscription's OIDC token; setting it turns verification on."""
    issuers: list[str] = ["https://accounts.google.com", "accounts.google.com"]
    public_key_files: list[Path] = []
    """PEM public keys or X.509 certificates that may sign the token (Google's signing certs,
    refreshed out of band); keys are not fetched at runtime."""
    service_accounts: list[str] = []
    """Accepted ``email`` claims (the subscription's service account); empty accepts any."""
    leeway: Duration = 60.0


class GarSettings(WebhookSecrets):
    oidc: PubSubOidcSettings = PubSubOidcSettings()


class RegistriesSettings(Section):
    dockerhub: DockerHubSettings = DockerHubSettings()
    quay: QuaySettings = QuaySettings()
    harbor: WebhookSecrets = WebhookSecrets()
    distribution: DistributionSettings = DistributionSettings()
    ecr: EcrSettings = EcrSettings()
    gar: GarSettings = GarSettings()
    acr: WebhookSecrets = WebhookSecrets()
    untagged: bool = False
    """Also publish ``artifact.published`` for manifests pushed without a tag (the per-platform
    manifests of a multi-architecture index, referrers such as signatures pushed by digest)."""
    resolve_timeout: Duration = 5.0
    """Per request to a registry while resolving a tag to its digest."""
    resolve_attempts: int = Field(3, ge=1, le=10)
    """Attempts (with exponential backoff from 0.5s) before the delivery is answered 503."""
