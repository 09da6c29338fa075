"""The ``registries:`` settings section: what every container-registry adapter shares.

Each adapter declares and registers its own sub-section next to itself
(``registries.<name>``, e.g. ``QuaySettings`` in ``quay.py``), built from the bases here. The rules
are those of every section: unknown keys are errors, and every secret (``secrets``, ``password``)
may instead be given as ``<name>_file`` pointing at a mounted Secret (one value per line for lists).
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from router import plugins
from router.plugins import Duration, Section


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


@plugins.settings_section("registries")
class RegistriesSettings(Section):
    untagged: bool = False
    """Also publish ``artifact.published`` for manifests pushed without a tag (the per-platform
    manifests of a multi-architecture index, referrers such as signatures pushed by digest)."""
    resolve_timeout: Duration = 5.0
    """Per request to a registry while resolving a tag to its digest."""
    resolve_attempts: int = Field(3, ge=1, le=10)
    """Attempts (with exponential backoff from 0.5s) before the delivery is answered 503."""
