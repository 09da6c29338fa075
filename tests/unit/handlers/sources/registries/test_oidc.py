"""Pub/Sub push OIDC tokens: tokens signed here with our own RSA key, checked claim by claim."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from handlers.sources.registries import oidc
from handlers.sources.registries.oidc import PubSubOidcSettings
from router import errors

AUDIENCE = "https://trigger-router.example/webhooks/gar"
ACCOUNT = "ar-push@my-project.iam.gserviceaccount.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(key=KEY, alg="RS256", **overrides) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": ACCOUNT, "email_verified": True,
              "iat": now, "exp": now + 3600, "sub": "1137"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    head = f"{b64(json.dumps({'alg': alg, 'kid': 'k1', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"Bearer {head}.{b64(key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "google.pem"
    path.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


CONFIG = PubSubOidcSettings(audience=AUDIENCE, service_accounts=[ACCOUNT])


def test_a_token_signed_by_a_configured_key_is_accepted(key_file):
    claims = oidc.verify(token(), CONFIG, oidc.load_keys([key_file]))
    assert claims["email"] == ACCOUNT


@pytest.mark.parametrize("authorization,reason", [
    (None, "missing Authorization"),
    ("Basic dXNlcjpwYXNz", "missing Authorization"),
    ("Bearer not.a-jwt", "not a JWT"),
    (token(alg="HS256"), "not an RS256 JWT"),
    (token(key=OTHER_KEY), "not signed by a configured key"),
    (token(iss="https://evil.example"), "unexpected issuer"),
    (token(aud="https://elsewhere.example"), "another audience"),
    (token(exp=int(time.time()) - 3600), "expired"),
    (token(exp=None), "expired"),
    (token(iat=int(time.time()) + 3600), "not valid yet"),
    (token(email="someone@else.iam.gserviceaccount.com"), "another service account"),
    (token(email_verified=False), "another service account"),
])
def test_every_wrong_claim_is_refused(key_file, authorization, reason):
    with pytest.raises(errors.Unauthorized, match=reason):
        oidc.verify(authorization, CONFIG, oidc.load_keys([key_file]))


def test_tampered_claims_break_the_signature(key_file):
    scheme, _, jwt = token().partition(" ")
    head, claims, signature = jwt.split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["email"] = "attacker@evil.example"
    tampered = f"Bearer {head}.{b64(json.dumps(forged).encode())}.{signature}"
    with pytest.raises(errors.Unauthorized, match="not signed"):
        oidc.verify(tampered, PubSubOidcSettings(audience=AUDIENCE), oidc.load_keys([key_file]))


def test_a_file_that_is_not_a_key_is_a_config_error(tmp_path):
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(errors.ConfigError, match="registries.gar.oidc.public_key_files"):
        oidc.load_keys([tmp_path / "junk.pem"])
