"""A small token server speaking the distribution token protocol, for a registry with ``auth: token``.

The registry answers 401 with ``WWW-Authenticate: Bearer realm=<this server>/token,service=...,scope=...``;
clients fetch ``GET /token?service=...&scope=...`` (with basic credentials if they have them) and get
``{"token": <JWT>}``. The JWT is RS256-signed by a self-signed certificate that the registry trusts
through ``rootcertbundle`` and carries in its ``x5c`` header, with the ``access`` the scopes asked for.
The real registry verifies every token, so a wrong token here fails the test.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER = "trigger-router-test-issuer"
SERVICE = "trigger-router-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    users: dict[str, str]
    """Accepted basic credentials; anonymous requests get a token too (with no access)."""
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trigger-router test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def registry_auth(self, url: str, bundle: Path) -> dict:
        return {"realm": f"{url}/token", "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(bundle)}

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def token(self, request: web.Request) -> web.Response:
        user = None
        if request.headers.get("Authorization", "").startswith("Basic "):
            user, _, password = base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
            if self.users.get(user) != password:
                return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        scopes = request.query.getall("scope", [])
        self.requests.append({"user": user, "service": request.query.get("service"), "scopes": scopes})
        access = []
        for scope in scopes if user else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        token = self.sign({"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                           "iat": now, "jti": str(uuid.uuid4()), "access": access})
        return web.json_response({"token": token, "access_token": token, "expires_in": 300})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self.token)
        return app
