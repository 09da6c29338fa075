"""Quay's pull credentials go only to configured hosts, never to the host a notification names.

With ``registries.quay.username/password`` set and no ``api_url``, the tag used to be resolved at
``https://<host of docker_url>``, so a notification naming another host (a forged one, or one sent
to the wrong router) made the router answer that host's Basic challenge with the password (issue
#13, point 5). Here that host is a real TLS server on another loopback port, trusted by the client
and asking for Basic credentials: it must receive no request at all unless it is configured.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
from unittest import mock

import aiohttp.connector
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router import errors
from router.config import settings as config
from router.plugins import Delivery, catalog

DIGEST = "sha256:" + "cd" * 32
PASSWORD = "quay-robot-password"


def self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client context that trusts it (and nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server, ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))


class Registry:
    """A registry API that asks for Basic credentials and records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []

    async def manifest(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        if "Authorization" not in request.headers:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="registry"'})
        return web.Response(headers={"Docker-Content-Digest": DIGEST})

    def credentials_seen(self) -> bool:
        return any(PASSWORD in (r.get("Authorization", "") + " " + _basic(r)) for r in self.requests)


def _basic(headers: dict[str, str]) -> str:
    value = headers.get("Authorization", "")
    if value.startswith("Basic "):
        try:
            return base64.b64decode(value[6:]).decode()
        except ValueError:
            return ""
    return ""


@pytest.fixture
async def registries(tmp_path):
    """(elsewhere, configured): a TLS registry on one loopback port, a plain one on another."""
    server_tls, client_tls = self_signed(tmp_path)
    runners, found = [], []
    for tls in (server_tls, None):
        registry = Registry()
        app = web.Application()
        app.router.add_route("*", "/v2/{name:.+}/manifests/{reference}", registry.manifest)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        registry.port = runner.addresses[0][1]
        runners.append(runner)
        found.append(registry)
    with mock.patch.object(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", client_tls):
        yield tuple(found)
    for runner in runners:
        await runner.cleanup()


def quay(**settings: str):
    env = {"TRIGGER_ROUTER_REGISTRIES__QUAY__SECRETS": '["s"]', "TRIGGER_ROUTER_REGISTRIES__QUAY__USERNAME": "robot",
           "TRIGGER_ROUTER_REGISTRIES__QUAY__PASSWORD": PASSWORD, "TRIGGER_ROUTER_REGISTRIES__RESOLVE_ATTEMPTS": "1",
           **{f"TRIGGER_ROUTER_REGISTRIES__QUAY__{k.upper()}": v for k, v in settings.items()}}
    return catalog.load().webhook_sources["quay"](config.load(None, env=env))


def notification(port: int) -> Delivery:
    body = {"docker_url": f"127.0.0.1:{port}/acme/app", "updated_tags": ["v1"]}
    return Delivery({}, json.dumps(body).encode(), path_token="s")


async def test_a_host_named_only_by_the_payload_gets_no_request(registries):
    elsewhere, _ = registries
    try:
        await quay().normalize(notification(elsewhere.port))
        refused = None
    except errors.BadRequest as exc:
        refused = exc.field
    assert not elsewhere.credentials_seen()
    assert (refused, elsewhere.requests) == ("docker_url", [])


async def test_with_api_url_the_payload_host_is_never_asked(registries):
    elsewhere, configured = registries
    published = await quay(api_url=f"http://127.0.0.1:{configured.port}").normalize(notification(elsewhere.port))
    # the repository is still the one the notification names; only the API asked is configuration
    assert [e.subject for e in published] == [
        "v1", f"pkg:oci/app@{DIGEST}?repository_url=127.0.0.1:{elsewhere.port}/acme/app&tag=v1"]
    assert elsewhere.requests == [] and configured.credentials_seen()


async def test_a_configured_host_is_asked_with_the_credentials(registries):
    """The control: the same server does get the credentials once it is configured (``hosts``)."""
    elsewhere, _ = registries
    published = await quay(hosts=json.dumps([f"127.0.0.1:{elsewhere.port}"])).normalize(notification(elsewhere.port))
    assert len(published) == 2 and elsewhere.credentials_seen()
