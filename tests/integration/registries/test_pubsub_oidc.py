"""Artifact Registry via a Pub/Sub push subscription with OIDC authentication, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.registries.conftest import SECRET
from tests.unit.handlers.sources.registries.test_oidc import AUDIENCE, KEY, OTHER_KEY, token

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "registry" / "gar" / "pubsub-push.json"


@pytest.fixture
def registry_settings(tmp_path):
    key_file = tmp_path / "google.pem"
    key_file.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"REGISTRIES__GAR__OIDC__AUDIENCE": AUDIENCE,
            "REGISTRIES__GAR__OIDC__PUBLIC_KEY_FILES": json.dumps([str(key_file)])}


@pytest.mark.parametrize("authorization,status", [
    (token(), 202),
    (token(key=OTHER_KEY), 401),
    (token(aud="https://elsewhere.example"), 401),
    (None, 401),
])
async def test_push_needs_both_the_path_secret_and_a_valid_token(edge, authorization, status):
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    response = await edge.http.post(f"{edge.url}/webhooks/gar/{SECRET}", data=FIXTURE.read_bytes(), headers=headers)
    assert response.status == status, await response.text()
    assert len(await edge.stored()) == (2 if status == 202 else 0)


async def test_valid_token_without_the_path_secret_is_refused(edge):
    response = await edge.http.post(f"{edge.url}/webhooks/gar", data=FIXTURE.read_bytes(),
                                    headers={"Content-Type": "application/json", "Authorization": token()})
    assert response.status == 401
