"""Constant-time checks of webhook secrets and signatures, on bytes.

Every candidate secret is compared even after a match, so the time taken does not tell an attacker
which of several rotated secrets exists or how much of a guess was right.

What a sender presents is compared as the bytes it sent: aiohttp decodes header bytes that are not
UTF-8 with ``surrogateescape``, and :func:`wire_bytes` undoes exactly that, so a header of arbitrary
bytes is simply a wrong secret (never an encoding error, which would be a 500 before
authentication). A lone surrogate that is not such an escape is kept as ``surrogatepass`` bytes,
which no secret's UTF-8 can equal.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

from pydantic import SecretStr


def wire_bytes(text: str) -> bytes:
    """``text`` as the bytes it was received as; never raises."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def token_matches(presented: str | None, accepted: Iterable[SecretStr]) -> bool:
    if presented is None:
        return False
    given = wire_bytes(presented)
    matched = False
    for secret in accepted:
        matched |= hmac.compare_digest(given, wire_bytes(secret.get_secret_value()))
    return matched


def hmac_sha256_matches(body: bytes, signature_hex: str, secrets: Iterable[SecretStr]) -> bool:
    given = wire_bytes(signature_hex.strip().lower())
    matched = False
    for secret in secrets:
        expected = hmac.new(wire_bytes(secret.get_secret_value()), body, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(given, expected.encode())
    return matched
