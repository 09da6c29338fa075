"""The two ways registries present a shared secret, checked in constant time (``router.auth``).

Registries that cannot sign (Docker Hub, Quay) are given a URL with a secret last path segment:
``/webhooks/dockerhub/<secret>``. Registries that can send a header (Harbor, distribution, ECR API
destinations, ACR custom headers) send ``Authorization: Bearer <secret>`` (or just ``<secret>``).
Refusals never echo what was presented.
"""

from __future__ import annotations

from pydantic import SecretStr

from router import auth, errors
from router.registry import Delivery


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
