"""Verification of the OIDC token Pub/Sub attaches to authenticated push requests.

A push subscription with authentication sends ``Authorization: Bearer <JWT>``, an RS256 token signed
by Google whose ``aud`` is the audience configured on the subscription, ``iss`` is
``https://accounts.google.com`` and ``email`` is the subscription's service account. The token is
checked here against public keys from configuration (``registries.gar.oidc.public_key_files``, PEM
keys or certificates), not fetched from Google at request time: ingest must not depend on a third
network service, and tests can sign their own tokens. Every check failure is ``Unauthorized``, and
so is every token that cannot be read (not base64, not JSON, nested too deep: ``events.load_json``).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from router.plugins import Duration, Section, errors, events


class PubSubOidcSettings(Section):
    """``registries.gar.oidc``: how the Pub/Sub push subscription's OIDC token is checked."""

    audience: str | None = None
    """Expected ``aud`` of the push subscription's OIDC token; setting it turns verification on."""
    issuers: list[str] = ["https://accounts.google.com", "accounts.google.com"]
    public_key_files: list[Path] = []
    """PEM public keys or X.509 certificates that may sign the token (Google's signing certs,
    refreshed out of band); keys are not fetched at runtime."""
    service_accounts: list[str] = []
    """Accepted ``email`` claims (the subscription's service account); empty accepts any."""
    leeway: Duration = 60.0


def load_keys(files: list[Path]) -> list[rsa.RSAPublicKey]:
    keys = []
    for path in files:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise errors.ConfigError(f"cannot read public key: {exc.strerror}",
                                     path="registries.gar.oidc.public_key_files") from exc
        try:
            key = (x509.load_pem_x509_certificate(data).public_key() if b"CERTIFICATE" in data
                   else serialization.load_pem_public_key(data))
        except ValueError as exc:
            raise errors.ConfigError(f"{path} is not a PEM public key or certificate",
                                     path="registries.gar.oidc.public_key_files") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise errors.ConfigError(f"{path} is not an RSA key (Pub/Sub signs with RS256)",
                                     path="registries.gar.oidc.public_key_files")
        keys.append(key)
    return keys


def verify(authorization: str | None, config: PubSubOidcSettings, keys: list[rsa.RSAPublicKey],
           *, now: float | None = None) -> dict[str, Any]:
    """The token's claims, once signature, issuer, audience, lifetime and email are right."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthorized("missing Authorization: Bearer <OIDC token> from the push subscription")
    try:
        header_b64, claims_b64, signature_b64 = token.strip().split(".")
        header = events.load_json(_b64(header_b64), what="token header")
        claims = events.load_json(_b64(claims_b64), what="token claims")
        signature = _b64(signature_b64)
    except (ValueError, errors.BadRequest) as exc:  # binascii.Error is a ValueError
        raise errors.Unauthorized("the bearer token is not a JWT") from exc
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
        raise errors.Unauthorized("the bearer token is not an RS256 JWT")
    signed = f"{header_b64}.{claims_b64}".encode()
    if not any(_signature_ok(key, signature, signed) for key in keys):
        raise errors.Unauthorized("the bearer token is not signed by a configured key")
    if claims.get("iss") not in config.issuers:
        raise errors.Unauthorized("the bearer token has an unexpected issuer")
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    if config.audience not in audiences:
        raise errors.Unauthorized("the bearer token is for another audience")
    now = time.time() if now is None else now
    expires, issued = claims.get("exp"), claims.get("iat", 0)
    if not isinstance(expires, (int, float)) or expires + config.leeway < now:
        raise errors.Unauthorized("the bearer token has expired")
    if isinstance(issued, (int, float)) and issued - config.leeway > now:
        raise errors.Unauthorized("the bearer token is not valid yet")
    if config.service_accounts and (claims.get("email") not in config.service_accounts
                                    or claims.get("email_verified") is not True):
        raise errors.Unauthorized("the bearer token is for another service account")
    return claims


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _signature_ok(key: rsa.RSAPublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False
