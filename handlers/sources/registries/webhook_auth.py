"""The two ways registries present a shared secret, checked in constant time (``plugins.auth``).

Registries that cannot sign (Docker Hub, Quay) are given a URL with a secret last path segment:
``/webhooks/dockerhub/<secret>``. Registries that can send a header (Harbor, distribution, ECR API
destinations, ACR custom headers) send ``Authorization: Bearer <secret>`` (or just ``<secret>``).
Refusals never echo what was presented.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import SecretStr

from router.plugins import Delivery, Settings, auth, errors


def path_token(delivery: Delivery, secrets: list[SecretStr], setting: str) -> None:
    if not secrets:
        raise errors.Unauthorized(f"no webhook secret is configured ({setting})")
    if not delivery.path_token:
        raise errors.Unauthorized("missing secret path segment: deliver to /webhooks/<source>/<secret>")
    if not auth.token_matches(delivery.path_token, secrets):
        raise errors.Unauthorized("the secret path segment does not match any configured secret")


def authorization_header(delivery: Delivery, secrets: list[SecretStr], setting: str) -> None:
    if not secrets:
        raise errors.Unauthorized(f"no webhook secret is configured ({setting})")
    presented = delivery.headers.get("Authorization")
    if not presented:
        raise errors.Unauthorized("missing Authorization header")
    scheme, _, value = presented.strip().partition(" ")
    token = value.strip() if scheme.lower() == "bearer" and value else presented.strip()
    if not auth.token_matches(token, secrets):
        raise errors.Unauthorized("Authorization does not match any configured secret")


class SharedSecretSource:
    """Base of the registry adapters authenticated by one shared secret.

    Subclasses name their ``registries.<name>`` section and where the secret travels; ids come from
    the payload, so there is no delivery header to report.
    """

    name: ClassVar[str]
    secret_in: ClassVar[Literal["header", "path"]] = "header"

    def __init__(self, settings: Settings) -> None:
        self.secrets = getattr(settings.registries, self.name).secrets
        self.untagged = settings.registries.untagged

    def delivery_id(self, delivery: Delivery) -> str:
        return ""

    def authenticate(self, delivery: Delivery) -> None:
        check = path_token if self.secret_in == "path" else authorization_header
        check(delivery, self.secrets, f"registries.{self.name}.secrets")
