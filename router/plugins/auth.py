"""Constant-time checks of webhook secrets and signatures.

Every candidate secret is compared even after a match, so the time taken does not tell an attacker
which of several rotated secrets exists or how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

from pydantic import SecretStr


def token_matches(presented: str | None, accepted: Iterable[SecretStr]) -> bool:
    if presented is None:
        return False
    given = presented.encode()
    matched = False
    for secret in accepted:
        matched |= hmac.compare_digest(given, secret.get_secret_value().encode())
    return matched


def hmac_sha256_matches(body: bytes, signature_hex: str, secrets: Iterable[SecretStr]) -> bool:
    given = signature_hex.strip().lower().encode()
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(given, expected.encode())
    return matched
